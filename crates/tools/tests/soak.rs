//! The soak: `om-ca serve` for minutes while agents drop requests continuously (some copied
//! in slowly), killed with SIGKILL at random moments and started again, then stopped as
//! systemd stops it. It must end with every request issued exactly once, no temporary file
//! anywhere, and memory flat. Ignored by the README's test command (it takes minutes); CI
//! runs it with `cargo test -p opsmgr-tools --test soak -- --ignored`, for
//! `OPSMGR_SOAK_SECONDS` (default 180); `OPSMGR_SOAK_SEED` replays a run's random choices.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::{ok, request_pem, run, text};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// xorshift64*: the run's random choices, replayable from the seed it prints.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// The resident memory of a process, in KiB (Linux's /proc).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn start(ca: &Path, share: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(common::bin("ca"))
        .args([
            "serve",
            "--share",
            &s(share),
            "--ca",
            &s(ca),
            "--settle",
            "1s",
            "--sweep",
            "2s",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// Every file under `dir`, with its path.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

#[test]
#[ignore = "minutes long: CI runs it with --ignored"]
fn serve_killed_and_restarted_issues_every_request_exactly_once() {
    let seconds: u64 = std::env::var("OPSMGR_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    let seed: u64 = std::env::var("OPSMGR_SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("soak: {seconds} s, OPSMGR_SOAK_SEED={seed}");
    let mut random = Random(seed);
    // On the machine's disk, not only tmpfs: where a CA's folder lives.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (ca, share) = (dir.path().join("ca"), dir.path().join("share"));
    std::fs::create_dir(&share).unwrap();
    ok(&run(
        common::bin("ca"),
        &["init", &s(&ca), "--name", "SOAK", "--auto-issue"],
    ));

    // Agents: a request every 20 to 150 ms, one in four copied in two halves with a pause.
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (stop, dropped, share) = (Arc::clone(&stop), Arc::clone(&dropped), share.clone());
        let mut random = Random(seed ^ 0x9e37_79b9_7f4a_7c15);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let n = dropped.load(Ordering::SeqCst);
                let host = format!("soak{n:05}.company.local");
                let pem = request_pem(&host);
                let path = share.join(format!("{host}.req"));
                if random.between(0, 3) == 0 {
                    let mut f = std::fs::File::create(&path).unwrap();
                    f.write_all(&pem.as_bytes()[..pem.len() / 2]).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(random.between(100, 600)));
                    f.write_all(&pem.as_bytes()[pem.len() / 2..]).unwrap();
                } else {
                    std::fs::write(&path, &pem).unwrap();
                }
                dropped.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(random.between(20, 150)));
            }
        })
    };

    // The service, killed at random and started again; its memory sampled all along.
    let log = dir.path().join("serve.log");
    let begun = Instant::now();
    let mut lives: Vec<Vec<u64>> = Vec::new();
    let mut kills = 0;
    while begun.elapsed() < Duration::from_secs(seconds) {
        let mut child = start(&ca, &share, &log);
        let life = Duration::from_millis(random.between(2_000, 15_000));
        let born = Instant::now();
        let mut samples = Vec::new();
        while born.elapsed() < life {
            std::thread::sleep(Duration::from_millis(250));
            if let Some(kib) = rss_kib(child.id()) {
                samples.push(kib);
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        lives.push(samples);
    }
    stop.store(true, Ordering::SeqCst);
    producer.join().unwrap();
    let total = dropped.load(Ordering::SeqCst);

    // A last life, stopped as systemd stops it, once the share holds no request.
    let mut child = start(&ca, &share, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(kib) = rss_kib(child.id()) {
            last.push(kib);
        }
        let left = std::fs::read_dir(&share)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".req")
            })
            .count();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} requests still in the share; the log: {}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    lives.push(last);
    println!("soak: {total} requests, {kills} kills");

    // Every request issued exactly once: one record per host, issued, its certificate in the
    // share.
    let view = ok(&run(
        common::bin("certutil"),
        &["-config", &s(&ca), "-view", "--json"],
    ));
    let records: Vec<serde_json::Value> = serde_json::from_str(&view).unwrap();
    let mut per_host = std::collections::BTreeMap::<String, Vec<String>>::new();
    for r in &records {
        per_host
            .entry(r["common_name"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["disposition"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_host.len(), total, "hosts on record");
    for (host, dispositions) in &per_host {
        assert_eq!(dispositions, &["issued"], "{host}");
        assert!(share.join(format!("{host}.cer")).is_file(), "{host}.cer");
    }
    // No temporary file anywhere, and no error said.
    let mut all = Vec::new();
    walk(&share, &mut all);
    walk(&ca, &mut all);
    for f in &all {
        let name = f.file_name().unwrap().to_string_lossy();
        assert!(
            !name.starts_with('.'),
            "a temporary file is left: {}",
            f.display()
        );
    }
    let said = std::fs::read_to_string(&log).unwrap();
    let errors: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("\"event\":\"error\"") || !l.starts_with('{'))
        .collect();
    assert!(errors.is_empty(), "errors said: {errors:#?}");

    // Memory flat: no life ends far above where the first settled, nor above where it
    // itself settled.
    let settled = |samples: &[u64]| {
        let mut head: Vec<u64> = samples[..samples.len().min(8)].to_vec();
        head.sort_unstable();
        head[head.len() / 2]
    };
    let first = settled(&lives[0]);
    for (i, life) in lives.iter().enumerate().filter(|(_, l)| l.len() >= 4) {
        let peak = *life.iter().max().unwrap();
        let bound = first.max(settled(life)) * 3 / 2 + 16 * 1024;
        assert!(
            peak <= bound,
            "life {i}: resident memory rose to {peak} KiB (settled at {} KiB, the first life at {first} KiB)",
            settled(life)
        );
    }
    let peak = lives.iter().flatten().max().copied().unwrap_or(0);
    println!(
        "soak: resident memory settled at {first} KiB, peaked at {peak} KiB; {}",
        text(&run(common::bin("ca"), &["status", "--ca", &s(&ca)]).stdout)
            .lines()
            .nth(1)
            .unwrap_or_default()
    );
}

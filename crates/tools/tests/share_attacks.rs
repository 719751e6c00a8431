//! The drop share as an attacker with write access to it sees it (issue 12): links planted at
//! the names the CA writes, `processed/` and `rejected/` pointing elsewhere, pipes, folders
//! and devices where files should be, case-variant and misnamed copies of requests, extra
//! names, servers, hosts that already hold a certificate, control characters, partial uploads.
//!
//! Each test does what the attacker does, then runs `om-ca process` as a child with a time
//! bound this file enforces (the child is killed and the test fails past it), and asserts:
//! the CA's own files are byte-for-byte what they were (the database stays a sound SQLite
//! file), nothing outside the share changed, every honest host of the batch is issued, and a
//! later run still works.

#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsmgr_ca::agent::read_bundle;
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::dropfolder::DROP_LOCK;
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy, request_to_pem};
use serde_json::Value;

mod common;
use common::text;

/// How long one `om-ca process` may take before the test kills it and fails.
const LIMIT: Duration = Duration::from_secs(20);

fn om_ca() -> &'static str {
    env!("CARGO_BIN_EXE_om-ca")
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// What one run of a tool printed and how it ended.
struct Ran {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Ran {
    fn out(&self) -> String {
        text(&self.stdout)
    }
    fn err(&self) -> String {
        text(&self.stderr)
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
                self.code,
                self.out(),
                self.err()
            )
        })
    }
    fn describe(&self) -> String {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.out(),
            self.err()
        )
    }
}

fn spawn(bin: &str, args: &[String]) -> Child {
    Command::new(bin)
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tool starts")
}

/// Waits for `child`, killing it (and failing) after [`LIMIT`]; `while_running` is called in
/// the meantime (an attacker busy in the share).
fn finish(mut child: Child, what: &str, mut while_running: impl FnMut(u32)) -> Ran {
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let reader_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {LIMIT:?}: killed (a hang)");
        }
        while_running(pid);
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code: status.code(),
        stdout: reader_out.join().unwrap(),
        stderr: reader_err.join().unwrap(),
    }
}

fn run_timed(bin: &str, args: &[String]) -> Ran {
    finish(spawn(bin, args), &format!("{bin} {args:?}"), |_| {})
}

/// An entry of a tree as it was, without following links.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File(Vec<u8>, u32),
    Link(PathBuf),
    Dir(u32),
    Other(u32),
}

fn snapshot_into(root: &Path, at: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, Node>) {
    for entry in std::fs::read_dir(at).unwrap() {
        let path = entry.unwrap().path();
        if skip.iter().any(|s| s == &path) {
            continue;
        }
        let md = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap().to_owned();
        let mode = md.mode() & 0o7777;
        let node = if md.file_type().is_symlink() {
            Node::Link(std::fs::read_link(&path).unwrap())
        } else if md.is_dir() {
            snapshot_into(root, &path, skip, out);
            Node::Dir(mode)
        } else if md.is_file() {
            Node::File(std::fs::read(&path).unwrap(), mode)
        } else {
            Node::Other(mode)
        };
        out.insert(rel, node);
    }
}

/// A CA, a share, and a folder outside both (where links point).
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.share()).unwrap();
        std::fs::create_dir_all(w.outside()).unwrap();
        std::fs::write(w.outside().join("victim.txt"), b"not the CA's to write\n").unwrap();
        let r = run_timed(
            om_ca(),
            &["init".into(), s(&w.ca()), "--name".into(), "JAMA00".into()],
        );
        assert_eq!(r.code, Some(0), "{}", r.describe());
        w
    }
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca")
    }
    fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }
    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }
    fn ca_file(&self, name: &str) -> PathBuf {
        self.ca().join(name)
    }

    /// Everything but the share and the files a batch legitimately changes (the database and
    /// its WAL, the lock, the installers, the last batch's record): the CA's key, certificate and configuration, and
    /// the outside.
    fn snapshot(&self) -> BTreeMap<PathBuf, Node> {
        let skip: Vec<PathBuf> = std::iter::once(self.share())
            .chain(
                [
                    "ca.db",
                    "ca.db-wal",
                    "ca.db-shm",
                    "ca.crl",
                    DROP_LOCK,
                    "installers",
                    "last-batch.json",
                ]
                .iter()
                .map(|n| self.ca_file(n)),
            )
            .collect();
        let mut out = BTreeMap::new();
        snapshot_into(self.dir.path(), self.dir.path(), &skip, &mut out);
        for name in ["ca.key", "ca.cer", "config.json"] {
            assert!(
                out.contains_key(Path::new("ca").join(name).as_path()),
                "{name} missing from the CA's folder"
            );
        }
        out
    }

    /// The CA's files and the outside are what they were; the database is still a sound
    /// SQLite file in its place (never written through a link).
    fn assert_untouched(&self, before: &BTreeMap<PathBuf, Node>) {
        let after = self.snapshot();
        for (path, node) in before {
            assert_eq!(
                after.get(path),
                Some(node),
                "{} changed (or vanished) outside the share",
                path.display()
            );
        }
        let new: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        assert!(new.is_empty(), "written outside the share: {new:?}");
        // The installers' folder holds regular files named for hosts, and nothing else.
        if let Ok(entries) = std::fs::read_dir(self.ca_file("installers")) {
            for entry in entries {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                let host = name
                    .strip_suffix(".install.ps1")
                    .or_else(|| name.strip_suffix(".install.cmd"))
                    .unwrap_or_else(|| panic!("{name} in installers/"));
                assert!(
                    opsmgr_model::HostName::new(host).is_ok(),
                    "{name} in installers/"
                );
                assert!(
                    entry.file_type().unwrap().is_file(),
                    "{name} in installers/"
                );
            }
        }
        let db = self.ca_file("ca.db");
        let md = std::fs::symlink_metadata(&db).unwrap();
        assert!(md.is_file(), "ca.db is not a regular file any more");
        let head = std::fs::read(&db).unwrap();
        assert!(head.starts_with(b"SQLite format 3\0"), "ca.db overwritten");
        assert_eq!(self.sql("PRAGMA integrity_check"), "ok\n");
    }

    /// A query on the database, opened read-only by the sqlite3 shell.
    fn sql(&self, query: &str) -> String {
        let out = Command::new("sqlite3")
            .args(["-readonly", &s(&self.ca_file("ca.db")), query])
            .output()
            .unwrap();
        assert!(out.status.success(), "sqlite3: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// A request for `host` (library-made, P-256), `extra` appended to its INF.
    fn request(host: &str, extra: &str) -> String {
        let inf = format!(
            "[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\nMachineKeySet = TRUE\n{extra}"
        );
        let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
        let key = PrivateKey::generate(policy.key).unwrap();
        request_to_pem(&build_request(&policy, &key).unwrap()).unwrap()
    }

    /// An honest host drops its request as `<host>.req`, an hour old (settled).
    fn drop_request(&self, host: &str) -> String {
        let pem = Self::request(host, "");
        let path = self.share().join(format!("{host}.req"));
        std::fs::write(&path, &pem).unwrap();
        age(&path);
        pem
    }

    fn process_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "process".into(),
            "--share".into(),
            s(&self.share()),
            "--ca".into(),
            s(&self.ca()),
        ];
        if !extra.contains(&"--settle") {
            args.extend(["--settle".into(), "0s".into()]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    }

    /// `om-ca process` within the time bound.
    fn process(&self, extra: &[&str]) -> Ran {
        run_timed(om_ca(), &self.process_args(extra))
    }

    /// The honest `host` was issued: so says the summary, and `<host>.cer` and
    /// `<host>.bundle` are regular files in the share holding its certificate, signed by the
    /// CA.
    fn assert_issued(&self, summary: &Value, host: &str) {
        let f = entry(summary, &format!("{host}.req"));
        assert_eq!(f["result"], "issued", "{host}: {f}");
        let cer = self.share().join(format!("{host}.cer"));
        let md = std::fs::symlink_metadata(&cer).unwrap();
        assert!(md.is_file(), "{host}.cer is {:?}", md.file_type());
        let cert = CertInfo::parse(&std::fs::read(&cer).unwrap()).unwrap();
        assert_eq!(cert.common_name.as_deref(), Some(host));
        assert!(cert.names_host(host));
        let ca = CertInfo::parse(&std::fs::read(self.ca_file("ca.cer")).unwrap()).unwrap();
        assert_eq!(cert.issuer, ca.subject, "{host}");
        let verified = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(self.ca_file("ca.cer"))
            .arg(&cer)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "{host}.cer is not signed by the CA: {}{}",
            text(&verified.stdout),
            text(&verified.stderr)
        );
        let bundle_path = self.share().join(format!("{host}.bundle"));
        assert!(std::fs::symlink_metadata(&bundle_path).unwrap().is_file());
        let bundle = read_bundle(&std::fs::read(&bundle_path).unwrap()).unwrap();
        assert_eq!(bundle.leaf.der, cert.der, "{host}.bundle");
        assert_eq!(bundle.root.der, ca.der, "{host}.bundle");
        assert!(
            !self.share().join(format!("{host}.req")).exists(),
            "{host}.req still in the share"
        );
    }

    fn names(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.share().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Sets a file's modification time an hour into the past (not following a link).
fn age(path: &Path) {
    let st = Command::new("touch")
        .args(["-h", "-d", "1 hour ago"])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// The summary's entry for the request file `file`.
fn entry(summary: &Value, file: &str) -> Value {
    summary["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no files[] in {summary}"))
        .iter()
        .find(|x| x["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in the summary: {summary:#}"))
        .clone()
}

/// The last process id the kernel handed out (to guess the CA's temporary names).
fn last_pid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(std::process::id)
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

// ---------------------------------------------------------------------------------------------
// 1. Links in the share.

#[test]
fn links_at_the_certificate_bundle_and_temporary_names_are_replaced_never_written_through() {
    let w = World::new();
    let victim = "agent01.company.local";
    let honest = ["agent02.company.local", "agent03.company.local"];
    w.drop_request(victim);
    for h in honest {
        w.drop_request(h);
    }
    let share = w.share();
    // The certificate and the bundle of the victim point at the CA's configuration and key;
    // an honest host's certificate at the CA's database.
    symlink(
        w.ca_file("config.json"),
        share.join(format!("{victim}.cer")),
    )
    .unwrap();
    symlink(w.ca_file("ca.key"), share.join(format!("{victim}.bundle"))).unwrap();
    symlink(w.ca_file("ca.db"), share.join(format!("{}.cer", honest[0]))).unwrap();
    symlink(
        w.ca_file("ca.cer"),
        share.join(format!("{}.bundle", honest[0])),
    )
    .unwrap();
    // Every temporary name the CA plausibly uses: `.<name>.<pid>.<n>.tmp` for the next pids,
    // the seed's `.<name>.<pid>.tmp`, and plain `.<name>.tmp`.
    let first = last_pid() + 1;
    let targets = [w.ca_file("config.json"), w.ca_file("ca.key")];
    let mut planted = Vec::new();
    for host in [victim, honest[0]] {
        for (ext, target) in ["cer", "bundle"].iter().zip(&targets) {
            let mut names = vec![format!(".{host}.{ext}.tmp")];
            for pid in first..first + 64 {
                names.push(format!(".{host}.{ext}.{pid}.tmp"));
                for n in 0..8 {
                    names.push(format!(".{host}.{ext}.{pid}.{n}.tmp"));
                }
            }
            for name in names {
                symlink(target, share.join(&name)).unwrap();
                planted.push(name);
            }
        }
    }
    // Stale-temporary sweep: a link named like a temporary file pointing at a file outside,
    // and a dangling one pointing where the sweep must not create anything.
    symlink(
        w.outside().join("victim.txt"),
        share.join(".junk.cer.1.2.tmp"),
    )
    .unwrap();
    symlink(
        w.outside().join("created"),
        share.join(".dangling.cer.3.4.tmp"),
    )
    .unwrap();
    planted.push(".junk.cer.1.2.tmp".into());
    planted.push(".dangling.cer.3.4.tmp".into());
    let before = w.snapshot();

    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, victim);
    for h in honest {
        w.assert_issued(&v, h);
    }
    // The planted temporary links are gone (the links, not their targets), dangling ones too.
    for name in &planted {
        assert!(
            std::fs::symlink_metadata(share.join(name)).is_err(),
            "{name} left in the share"
        );
    }
    assert!(!w.outside().join("created").exists());
    let leftovers: Vec<String> = w
        .names(".")
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A later run is clean.
    let again = w.process(&["--issue", "--json"]);
    assert_eq!(again.code, Some(0), "{}", again.describe());
    w.assert_untouched(&before);
}

#[test]
fn links_planted_at_the_temporary_names_while_the_batch_runs_are_never_written_through() {
    let w = World::new();
    let victim = "agent11.company.local";
    let honest = ["agent12.company.local", "agent13.company.local"];
    w.drop_request(victim);
    for h in honest {
        w.drop_request(h);
    }
    let before = w.snapshot();
    let share = w.share();
    let targets = [w.ca_file("config.json"), w.ca_file("ca.key")];
    // The attacker learns the CA's pid (ps) and keeps planting links at every temporary name
    // it could use for the victim, after the stale-file sweep as well as before.
    let child = spawn(om_ca(), &w.process_args(&["--issue", "--json"]));
    let mut planted = 0;
    let r = finish(child, "om-ca process (under attack)", |pid| {
        for (ext, target) in ["cer", "bundle"].iter().zip(&targets) {
            for n in 0..24 {
                let name = share.join(format!(".{victim}.{ext}.{pid}.{n}.tmp"));
                if symlink(target, &name).is_ok() {
                    planted += 1;
                }
            }
        }
    });
    assert!(planted > 0, "no link was planted while the CA ran");
    w.assert_untouched(&before);
    let v = r.json();
    for h in honest {
        w.assert_issued(&v, h);
    }
    // The victim may have been refused its files this time (a link at its temporary name is
    // not written through), never anything else.
    let result = entry(&v, &format!("{victim}.req"))["result"].clone();
    assert!(
        result == "issued" || result == "failed",
        "{victim}: {}",
        r.describe()
    );
    for ext in ["cer", "bundle"] {
        let p = share.join(format!("{victim}.{ext}"));
        assert!(!is_link(&p), "{victim}.{ext} is a link");
    }
    // With the attacker gone, the next run sweeps the links and finishes the victim.
    let again = w.process(&["--issue", "--json"]);
    w.assert_untouched(&before);
    assert_eq!(again.code, Some(0), "{}", again.describe());
    if result == "failed" {
        w.assert_issued(&again.json(), victim);
    } else {
        assert!(
            std::fs::symlink_metadata(share.join(format!("{victim}.cer")))
                .unwrap()
                .is_file()
        );
    }
    let leftovers: Vec<String> = w
        .names(".")
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. processed/ and rejected/ pointing elsewhere.

#[test]
fn processed_and_rejected_planted_as_links_or_files_are_replaced_and_the_batch_goes_on() {
    for (sub, plant) in [
        ("processed", "link"),
        ("rejected", "link"),
        ("rejected", "dangling"),
        ("processed", "fifo"),
        ("rejected", "file"),
    ] {
        let w = World::new();
        let hosts = ["agent21.company.local", "agent22.company.local"];
        for h in hosts {
            w.drop_request(h);
        }
        // A junk request too, so that rejected/ is needed in this batch.
        std::fs::write(w.share().join("junk.company.local.req"), "junk").unwrap();
        age(&w.share().join("junk.company.local.req"));
        let at = w.share().join(sub);
        let elsewhere = w.outside().join("elsewhere");
        match plant {
            "link" => {
                std::fs::create_dir(&elsewhere).unwrap();
                symlink(&elsewhere, &at).unwrap();
            }
            "dangling" => symlink(&elsewhere, &at).unwrap(),
            "fifo" => mkfifo(&at),
            _ => std::fs::write(&at, b"a file").unwrap(),
        }
        let before = w.snapshot();
        let r = w.process(&["--issue", "--json"]);
        let case = format!("{sub} as a {plant}");
        // The planted entry is removed without being followed; a real folder takes its
        // place and every host's batch goes through.
        assert_eq!(r.code, Some(1), "{case}: {}", r.describe());
        let v = r.json();
        for h in hosts {
            w.assert_issued(&v, h);
        }
        assert_eq!(entry(&v, "junk.company.local.req")["result"], "rejected");
        let removed = v["removed"].to_string();
        assert!(
            removed.contains(&format!("at {sub}/ was removed and replaced by a folder")),
            "{case}: {removed}"
        );
        let md = std::fs::symlink_metadata(&at).unwrap();
        assert!(md.is_dir(), "{case}: {sub} is not a real folder now");
        w.assert_untouched(&before);
        if plant == "dangling" {
            assert!(!elsewhere.exists(), "{case}: the link's target was created");
        }
        if plant == "link" {
            assert_eq!(
                std::fs::read_dir(&elsewhere).unwrap().count(),
                0,
                "{case}: written outside the share"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Special files.

#[test]
fn pipes_folders_devices_links_and_oversized_requests_are_refused_for_their_host_alone() {
    let w = World::new();
    let share = w.share();
    let honest = ["agent31.company.local", "agent32.company.local"];
    for h in honest {
        w.drop_request(h);
    }
    // A FIFO at an honest host's certificate and bundle: replaced, never opened for writing.
    let fifo_cer = "agent33.company.local";
    w.drop_request(fifo_cer);
    mkfifo(&share.join(format!("{fifo_cer}.cer")));
    mkfifo(&share.join(format!("{fifo_cer}.bundle")));
    // A FIFO named like a request.
    mkfifo(&share.join("agent34.company.local.req"));
    // A folder at a certificate's name.
    let dir_cer = "agent35.company.local";
    w.drop_request(dir_cer);
    std::fs::create_dir(share.join(format!("{dir_cer}.cer"))).unwrap();
    std::fs::write(share.join(format!("{dir_cer}.cer/inside")), b"x").unwrap();
    // A request that is a link to /dev/zero (size 0 on metadata, endless on read).
    symlink("/dev/zero", share.join("agent36.company.local.req")).unwrap();
    // A request that is a link to a real request elsewhere.
    let elsewhere = w.outside().join("agent37.company.local.req");
    std::fs::write(&elsewhere, World::request("agent37.company.local", "")).unwrap();
    symlink(&elsewhere, share.join("agent37.company.local.req")).unwrap();
    // A folder named like a request.
    std::fs::create_dir(share.join("agent38.company.local.req")).unwrap();
    // An oversized request: a real one padded beyond 64 KiB.
    let mut big = World::request("agent39.company.local", "");
    big.push_str(&"\n".repeat(70 * 1024));
    std::fs::write(share.join("agent39.company.local.req"), big).unwrap();
    // A link to a FIFO outside.
    mkfifo(&w.outside().join("pipe"));
    symlink(
        w.outside().join("pipe"),
        share.join("agent40.company.local.req"),
    )
    .unwrap();
    for name in [
        "agent34.company.local.req",
        "agent36.company.local.req",
        "agent37.company.local.req",
        "agent38.company.local.req",
        "agent39.company.local.req",
        "agent40.company.local.req",
    ] {
        age(&share.join(name));
    }
    let before = w.snapshot();

    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    for h in honest.iter().chain(&[fifo_cer]) {
        w.assert_issued(&v, h);
    }
    for (file, result, why) in [
        ("agent34.company.local.req", "rejected", "named pipe"),
        ("agent36.company.local.req", "rejected", "symbolic link"),
        ("agent37.company.local.req", "rejected", "symbolic link"),
        ("agent38.company.local.req", "rejected", "folder"),
        (
            "agent39.company.local.req",
            "rejected",
            "larger than 65536 bytes",
        ),
        ("agent40.company.local.req", "rejected", "symbolic link"),
        ("agent35.company.local.req", "failed", "folder"),
    ] {
        let e = entry(&v, file);
        assert_eq!(e["result"], result, "{file}: {e}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(why),
            "{file}: the reason does not say '{why}': {m}"
        );
    }
    for h in [
        "agent34", "agent36", "agent37", "agent38", "agent39", "agent40",
    ] {
        assert!(
            !share.join(format!("{h}.company.local.cer")).exists(),
            "{h} got a certificate"
        );
    }
    // The request behind the link is untouched and was not issued.
    assert_eq!(
        w.sql("SELECT count(*) FROM requests WHERE common_name LIKE 'agent37%'"),
        "0\n"
    );
    assert!(share.join(format!("{dir_cer}.cer/inside")).is_file());

    // A later run works: a new host is issued though the folder is still in the way.
    w.drop_request("agent41.company.local");
    let r2 = w.process(&["--issue", "--json"]);
    assert_eq!(r2.code, Some(1), "{}", r2.describe());
    let v2 = r2.json();
    w.assert_issued(&v2, "agent41.company.local");
    assert_eq!(entry(&v2, &format!("{dir_cer}.req"))["result"], "failed");
    w.assert_untouched(&before);
    // The folder removed, the held-up host is finished.
    std::fs::remove_dir_all(share.join(format!("{dir_cer}.cer"))).unwrap();
    let r3 = w.process(&["--issue", "--json"]);
    assert_eq!(r3.code, Some(0), "{}", r3.describe());
    w.assert_issued(&r3.json(), dir_cer);
    w.assert_untouched(&before);
    assert_eq!(
        w.sql("SELECT count(*) FROM requests WHERE common_name = 'agent35.company.local' AND disposition = 'issued'"),
        "1\n"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. One request halts every batch: case-variant names.

#[test]
fn the_same_request_under_case_variant_names_is_issued_once_and_later_runs_work() {
    let w = World::new();
    let share = w.share();
    let pem = World::request("host10.company.local", "");
    for name in ["host10.company.local.req", "HOST10.company.local.req"] {
        std::fs::write(share.join(name), &pem).unwrap();
        age(&share.join(name));
    }
    // Two different requests for one host under case-variant names.
    for name in ["host11.company.local.req", "Host11.Company.Local.req"] {
        std::fs::write(share.join(name), World::request("host11.company.local", "")).unwrap();
        age(&share.join(name));
    }
    let honest = ["agent41.company.local", "agent42.company.local"];
    for h in honest {
        w.drop_request(h);
    }
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    for h in honest {
        w.assert_issued(&v, h);
    }
    let results: Vec<String> = ["host10.company.local.req", "HOST10.company.local.req"]
        .iter()
        .map(|f| entry(&v, f)["result"].as_str().unwrap().to_owned())
        .collect();
    // The host's own file (named as its request's CN is spelled) wins over the copy, whatever
    // the name order: the certificate lands where the agent looks for it.
    assert_eq!(results, ["issued", "duplicate"], "{v:#}");
    assert!(share.join("host10.company.local.cer").is_file());
    assert!(!share.join("HOST10.company.local.cer").exists());
    let mut results11: Vec<String> = ["host11.company.local.req", "Host11.Company.Local.req"]
        .iter()
        .map(|f| entry(&v, f)["result"].as_str().unwrap().to_owned())
        .collect();
    results11.sort();
    assert_eq!(results11, ["issued", "pending"], "{v:#}");
    let count = |host: &str, disposition: &str| {
        w.sql(&format!(
            "SELECT count(*) FROM requests WHERE lower(common_name) = '{host}' AND disposition = '{disposition}'"
        ))
    };
    assert_eq!(count("host10.company.local", "issued"), "1\n");
    assert_eq!(
        w.sql("SELECT count(*) FROM requests WHERE lower(common_name) = 'host10.company.local'"),
        "1\n",
        "one record for one request"
    );
    assert_eq!(count("host11.company.local", "issued"), "1\n");

    // Later runs: no error, new hosts issued, still one certificate per host.
    for round in 0..2 {
        let h = format!("agent4{}.company.local", 3 + round);
        w.drop_request(&h);
        let again = w.process(&["--issue", "--json"]);
        // host11's second request stays pending: exit 1, never 2.
        assert_eq!(again.code, Some(1), "round {round}: {}", again.describe());
        w.assert_issued(&again.json(), &h);
        w.assert_untouched(&before);
    }
    assert_eq!(count("host10.company.local", "issued"), "1\n");
    assert_eq!(count("host11.company.local", "issued"), "1\n");
}

// ---------------------------------------------------------------------------------------------
// "The name check comes before the deduplication."

#[test]
fn a_copy_of_another_hosts_request_under_a_wrong_name_is_rejected_as_a_name_mismatch() {
    let w = World::new();
    let share = w.share();
    let a = "agent51.company.local";
    let evil = "evil.company.local";
    let check_evil = |v: &Value, w: &World| {
        let e = entry(v, &format!("{evil}.req"));
        assert_eq!(e["result"], "rejected", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("{evil}.req")) && m.contains(a) && m.contains("its own name"),
            "{m}"
        );
        for ext in ["cer", "bundle"] {
            assert!(
                !share.join(format!("{evil}.{ext}")).exists(),
                "{evil}.{ext}"
            );
        }
        assert!(
            !w.names("processed").iter().any(|n| n.starts_with("evil")),
            "{:?}",
            w.names("processed")
        );
        assert!(w.names("rejected").contains(&format!("{evil}.req")));
        assert_eq!(
            w.sql("SELECT count(*) FROM requests WHERE requester LIKE 'evil%' OR common_name LIKE 'evil%'"),
            "0\n"
        );
    };

    // In the same batch as the real one.
    let pem = w.drop_request(a);
    w.drop_request("agent52.company.local");
    std::fs::write(share.join(format!("{evil}.req")), &pem).unwrap();
    age(&share.join(format!("{evil}.req")));
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, a);
    w.assert_issued(&v, "agent52.company.local");
    check_evil(&v, &w);

    // After the real one was issued in an earlier batch (its digest is in the database).
    std::fs::remove_dir_all(share.join("rejected")).unwrap();
    std::fs::write(share.join(format!("{evil}.req")), &pem).unwrap();
    age(&share.join(format!("{evil}.req")));
    w.drop_request("agent53.company.local");
    let cer_before = std::fs::read(share.join(format!("{a}.cer"))).unwrap();
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, "agent53.company.local");
    check_evil(&v, &w);
    assert_eq!(
        std::fs::read(share.join(format!("{a}.cer"))).unwrap(),
        cer_before
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Who gets a certificate.

fn inventory(w: &World) -> PathBuf {
    let path = w.dir.path().join("inventory.json");
    std::fs::write(
        &path,
        r#"{"management_group": "PROD",
            "servers": [{"name": "mgmt01.company.local", "role": "management"},
                        {"name": "gw01.company.local", "role": "gateway"}],
            "agents": [{"name": "host4.company.local", "primary": "mgmt01.company.local"},
                       {"name": "agent61.company.local", "primary": "mgmt01.company.local"},
                       {"name": "agent62.company.local", "primary": "mgmt01.company.local"}]}"#,
    )
    .unwrap();
    path
}

fn san_of(w: &World, cer: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(cer)
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn an_extra_name_of_another_host_is_never_certified() {
    let w = World::new();
    let inv = inventory(&w);
    let host = "host4.company.local";
    let pem = World::request(
        host,
        "[Extensions]\n2.5.29.17 = \"{text}dns=host4.company.local&dns=mgmt01.company.local&dns=outsider.example.com\"\n",
    );
    let req = w.share().join(format!("{host}.req"));
    std::fs::write(&req, pem).unwrap();
    age(&req);
    w.drop_request("agent61.company.local");
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json", "--inventory", &s(&inv)]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, host);
    w.assert_issued(&v, "agent61.company.local");
    let san = san_of(&w, &w.share().join(format!("{host}.cer")));
    assert!(san.contains("DNS:host4.company.local"), "{san}");
    assert!(
        !san.contains("mgmt01") && !san.contains("outsider"),
        "another host's name was certified: {san}"
    );
    let cert =
        CertInfo::parse(&std::fs::read(w.share().join(format!("{host}.cer"))).unwrap()).unwrap();
    assert_eq!(cert.dns_names, [host]);
}

/// The operator allows extra names below `suffixes` (config.json, as an operator edits it).
fn allow_suffixes(w: &World, suffixes: Value) {
    let config_path = w.ca_file("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["allowed_dns_suffixes"] = suffixes;
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

#[test]
fn an_extra_name_must_pass_the_suffix_allow_list_on_a_label_boundary() {
    let w = World::new();
    allow_suffixes(&w, serde_json::json!(["company.local"]));
    let host = "host5.company.local";
    let pem = World::request(
        host,
        "[Extensions]\n2.5.29.17 = \"{text}dns=host5.company.local&dns=www.evilcompany.local&dns=evilcompany.local&dns=alias5.company.local\"\n",
    );
    let req = w.share().join(format!("{host}.req"));
    std::fs::write(&req, pem).unwrap();
    age(&req);
    w.drop_request("agent63.company.local");
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json"]);
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, "agent63.company.local");
    if share_has(&w, &format!("{host}.cer")) {
        let san = san_of(&w, &w.share().join(format!("{host}.cer")));
        assert!(
            !san.contains("evilcompany"),
            "the suffix company.local admitted evilcompany.local: {san}"
        );
        // A name truly below the suffix is still allowed: the test is on the boundary.
        assert!(san.contains("DNS:alias5.company.local"), "{san}");
    } else {
        assert_ne!(entry(&v, &format!("{host}.req"))["result"], "issued");
    }
}

#[test]
fn a_suffix_allow_list_admitting_everything_is_refused_when_the_ca_opens() {
    for bad in [
        serde_json::json!([""]),
        serde_json::json!(["."]),
        serde_json::json!(["bad name!"]),
    ] {
        let w = World::new();
        allow_suffixes(&w, bad.clone());
        let pem = World::request(
            "host7.company.local",
            "[Extensions]\n2.5.29.17 = \"{text}dns=host7.company.local&dns=mgmt01.company.local&dns=www.bank.example\"\n",
        );
        let req = w.share().join("host7.company.local.req");
        std::fs::write(&req, pem).unwrap();
        age(&req);
        let before = w.snapshot();
        let r = w.process(&["--issue", "--json"]);
        w.assert_untouched(&before);
        if share_has(&w, "host7.company.local.cer") {
            let san = san_of(&w, &w.share().join("host7.company.local.cer"));
            panic!(
                "allowed_dns_suffixes = {bad} was accepted and certified {san}{}",
                r.describe()
            );
        }
        assert_eq!(
            r.code,
            Some(2),
            "allowed_dns_suffixes = {bad}: {}",
            r.describe()
        );
        assert!(
            r.err().contains("allowed_dns_suffixes"),
            "the error does not name the setting: {}",
            r.err()
        );
    }
}

fn share_has(w: &World, name: &str) -> bool {
    std::fs::symlink_metadata(w.share().join(name)).is_ok()
}

#[test]
fn management_servers_and_gateways_wait_for_an_operator() {
    let w = World::new();
    let inv = inventory(&w);
    for h in [
        "mgmt01.company.local",
        "gw01.company.local",
        "agent62.company.local",
    ] {
        w.drop_request(h);
    }
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json", "--inventory", &s(&inv)]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, "agent62.company.local");
    let mut ids = Vec::new();
    for h in ["mgmt01.company.local", "gw01.company.local"] {
        let e = entry(&v, &format!("{h}.req"));
        assert_eq!(e["result"], "pending", "{e}");
        let m = e["message"].as_str().unwrap();
        assert!(m.contains("operator") && m.contains("-resubmit"), "{m}");
        assert!(!share_has(&w, &format!("{h}.cer")), "{h}");
        assert!(w.share().join(format!("{h}.req")).is_file());
        ids.push(e["id"].as_i64().unwrap());
    }
    // Processing again does not issue them either.
    let r = w.process(&["--issue", "--json", "--inventory", &s(&inv)]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert_eq!(
        entry(&r.json(), "mgmt01.company.local.req")["result"],
        "pending"
    );
    assert!(!share_has(&w, "mgmt01.company.local.cer"));
    // The operator issues the management server.
    let out = run_timed(
        env!("CARGO_BIN_EXE_om-certutil"),
        &[
            "-config".into(),
            s(&w.ca()),
            "-resubmit".into(),
            ids[0].to_string(),
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.describe());
    let r = w.process(&["--issue", "--json", "--inventory", &s(&inv)]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_issued(&v, "mgmt01.company.local");
    assert_eq!(entry(&v, "gw01.company.local.req")["result"], "pending");
    assert!(!share_has(&w, "gw01.company.local.cer"));
    w.assert_untouched(&before);
}

#[test]
fn a_host_holding_a_valid_certificate_is_not_reissued_for_a_new_key() {
    let w = World::new();
    let host = "agent71.company.local";
    w.drop_request(host);
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    w.assert_issued(&r.json(), host);
    let cer = std::fs::read(w.share().join(format!("{host}.cer"))).unwrap();
    let bundle = std::fs::read(w.share().join(format!("{host}.bundle"))).unwrap();

    // Someone with write access drops a new request (a new key) in the host's name.
    w.drop_request(host);
    w.drop_request("agent72.company.local");
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, "agent72.company.local");
    let e = entry(&v, &format!("{host}.req"));
    assert_eq!(e["result"], "pending", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("already holds") && m.contains("-resubmit"),
        "{m}"
    );
    assert_eq!(
        std::fs::read(w.share().join(format!("{host}.cer"))).unwrap(),
        cer
    );
    assert_eq!(
        std::fs::read(w.share().join(format!("{host}.bundle"))).unwrap(),
        bundle
    );
    assert_eq!(
        w.sql(&format!(
            "SELECT count(*) FROM requests WHERE common_name = '{host}' AND disposition = 'issued'"
        )),
        "1\n"
    );
    // And on the next run as well.
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert_eq!(
        entry(&r.json(), &format!("{host}.req"))["result"],
        "pending"
    );
}

// ---------------------------------------------------------------------------------------------
// Control characters never reach a terminal or a reason file.

fn assert_no_control(what: &str, t: &str) {
    let bad: Vec<char> = t
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c))
        .collect();
    assert!(
        bad.is_empty(),
        "{what} carries raw control characters {bad:?}: {t:?}"
    );
}

#[test]
fn control_characters_in_names_never_reach_the_output_or_reason_files() {
    for json in [false, true] {
        let w = World::new();
        let share = w.share();
        let pem = World::request("agent81.company.local", "");
        let names = [
            "agent\n01.company.local.req",
            "\x1b[31m.req",
            "agent\r82.company.local.req",
            "\u{202e}qer.lacol.ynapmoc.58tnega.req",
            "agent83.company.local\x1b]0;pwned\x07.req",
        ];
        for name in names {
            std::fs::write(share.join(name), &pem).unwrap();
            age(&share.join(name));
        }
        // A request whose common name carries an escape, under an honest-looking name.
        let out = Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-utf8",
                "-subj",
                "/CN=agent84\x1b[2J\n.company.local",
                "-keyout",
                "/dev/null",
                "-out",
            ])
            .arg(share.join("agent84.company.local.req"))
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
        age(&share.join("agent84.company.local.req"));
        w.drop_request("agent85.company.local");
        let before = w.snapshot();
        let mut args = vec!["--issue"];
        if json {
            args.push("--json");
        }
        let r = w.process(&args);
        assert_eq!(r.code, Some(1), "{}", r.describe());
        w.assert_untouched(&before);
        assert_no_control("stdout", &r.out());
        assert_no_control("stderr", &r.err());
        if json {
            let v = r.json();
            w.assert_issued(&v, "agent85.company.local");
            let m = entry(&v, "agent84.company.local.req")["message"].clone();
            assert!(m.as_str().unwrap().contains("agent84\\u{1b}[2J"), "{m}");
        } else {
            let out = r.out();
            // One line per refused file, where the installers are (one host was issued), then
            // the total (and the first batch's CRL): no name split a line.
            let crl = usize::from(out.contains("\nCRL 1 published to "));
            assert!(
                out.contains("\ninstallers of the hosts issued are in "),
                "{out}"
            );
            assert_eq!(out.lines().count(), names.len() + 3 + crl, "{out}");
            assert!(out.contains("agent\\u{a}01.company.local.req"), "{out}");
            assert!(out.contains("\\u{1b}[31m.req"), "{out}");
            assert!(out.contains("\\u{202e}"), "{out}");
            assert!(out.contains("agent84\\u{1b}[2J"), "{out}");
            assert!(w.share().join("agent85.company.local.cer").is_file());
        }
        let reasons: Vec<String> = w
            .names("rejected")
            .into_iter()
            .filter(|n| n.ends_with(".reason.txt"))
            .collect();
        assert_eq!(reasons.len(), names.len() + 1, "{reasons:?}");
        for name in reasons {
            let t = std::fs::read_to_string(share.join("rejected").join(&name)).unwrap();
            assert_no_control(&format!("rejected/{name:?}"), &t);
            assert_eq!(t.lines().count(), 1, "{name:?}: {t:?}");
        }
        // The database's records carry no raw control characters either.
        assert_no_control(
            "ca.db",
            &w.sql("SELECT requester, subject, common_name, message FROM requests"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Partial uploads wait for the next run.

#[test]
fn a_request_still_being_written_is_left_for_the_next_run() {
    let w = World::new();
    let share = w.share();
    let host = "agent91.company.local";
    let pem = World::request(host, "");
    // One request arrived a while ago; half of another just now.
    w.drop_request("agent92.company.local");
    std::thread::sleep(Duration::from_millis(1200));
    let req = share.join(format!("{host}.req"));
    std::fs::write(&req, &pem.as_bytes()[..pem.len() / 2]).unwrap();
    let before = w.snapshot();
    let r = w.process(&["--issue", "--json", "--settle", "1s"]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    let v = r.json();
    w.assert_untouched(&before);
    w.assert_issued(&v, "agent92.company.local");
    let e = entry(&v, &format!("{host}.req"));
    assert_eq!(e["result"], "waiting", "{e}");
    assert!(req.is_file(), "a partial upload was moved");
    assert!(w.names("rejected").is_empty(), "{:?}", w.names("rejected"));
    // The rest arrives, with a modification time far ahead (a client's clock, or touch -d):
    // settling goes by the change time, which no one sets, so the next run after the settle
    // time issues it rather than waiting for 2099.
    std::fs::write(&req, &pem).unwrap();
    let st = Command::new("touch")
        .args(["-d", "2099-01-01"])
        .arg(&req)
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(1200));
    let r = w.process(&["--issue", "--json", "--settle", "1s"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    w.assert_issued(&r.json(), host);
    w.assert_untouched(&before);
}

#[test]
fn a_folder_planted_at_a_reason_files_name_does_not_block_the_rejection() {
    let w = World::new();
    let share = w.share();
    std::fs::create_dir_all(share.join("rejected/junk.company.local.req.reason.txt")).unwrap();
    std::fs::write(share.join("junk.company.local.req"), b"not a request").unwrap();
    age(&share.join("junk.company.local.req"));
    let r = w.process(&["--issue", "--json"]);
    let v = r.json();
    assert_eq!(
        entry(&v, "junk.company.local.req")["result"],
        "rejected",
        "{v:#}"
    );
    assert!(!share.join("junk.company.local.req").exists(), "moved out");
    let moved = share.join("rejected/junk.company.local.req.1");
    assert_eq!(std::fs::read(&moved).unwrap(), b"not a request");
    let reason =
        std::fs::read_to_string(share.join("rejected/junk.company.local.req.1.reason.txt"))
            .unwrap();
    assert!(reason.contains("certificate request"), "{reason}");
}

/// An installer planted in the share (or left there by an earlier release) is removed, and
/// the batch says so: administrators run installers only from the CA's installer folder.
#[test]
fn an_installer_in_the_share_is_removed_and_said() {
    let w = World::new();
    let share = w.share();
    std::fs::write(
        share.join("agent01.company.local.install.ps1"),
        "Start-Process evil.exe\r\n",
    )
    .unwrap();
    std::fs::write(
        share.join("AGENT02.company.local.INSTALL.CMD"),
        "evil.exe\r\n",
    )
    .unwrap();
    w.drop_request("agent03.company.local");
    let r = w.process(&["--issue", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let v = r.json();
    let removed = v["removed"].to_string();
    for name in [
        "agent01.company.local.install.ps1",
        "AGENT02.company.local.INSTALL.CMD",
    ] {
        assert!(!share.join(name).exists(), "{name} is still in the share");
        assert!(removed.contains(name), "{removed}");
    }
    w.assert_issued(&v, "agent03.company.local");
}

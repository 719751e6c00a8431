//! `om-ca serve` as its systemd unit runs it: the unit's own ExecStart (paths moved into a
//! temporary folder) started, requests dropped over time as agents drop them (some copied in
//! slowly, one that is not a request), then stopped with the unit's KillSignal; and
//! `om-ca status` afterwards, as text, JSON and an HTML page rendered by headless Chromium.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{have_tool, ok, request_pem, run, text};

const UNIT: &str = include_str!("../../../packaging/om-ca.service");

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The unit's `key=value` setting.
fn setting<'a>(key: &str) -> &'a str {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            let name = e.file_name().into_string().unwrap();
            out.extend(files(&e.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(e.file_name().into_string().unwrap());
        }
    }
    out.sort();
    out
}

/// Lines of the service's stdout, parsed, until `done` says enough.
fn read_until(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<serde_json::Value>,
    done: impl Fn(&[serde_json::Value]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}")),
            ),
            Err(_) => panic!("the service never got there; it said: {seen:#?}"),
        }
    }
}

fn outcomes<'a>(seen: &'a [serde_json::Value], result: &str) -> Vec<&'a str> {
    seen.iter()
        .filter(|v| v["event"] == "outcome" && v["result"] == result)
        .map(|v| v["file"].as_str().unwrap())
        .collect()
}

#[test]
fn the_unit_serves_requests_as_they_arrive_and_stops_on_its_kill_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, share) = (dir.path().join("ca"), dir.path().join("certrequests"));
    std::fs::create_dir(&share).unwrap();
    ok(&run(
        common::bin("ca"),
        &["init", &s(&ca), "--name", "JAMA00", "--auto-issue"],
    ));

    // The unit's command line, with our binary and folders in place of the installed ones.
    let exec = setting("ExecStart")
        .replace("/usr/local/bin/om-ca", common::bin("ca"))
        .replace("/srv/certrequests", &s(&share))
        .replace("/srv/ca", &s(&ca));
    let mut args: Vec<&str> = exec.split_whitespace().collect();
    let program = args.remove(0);
    args.push("--json");
    assert_eq!(setting("KillSignal"), "SIGTERM");
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    read_until(&lines, &mut seen, |s| {
        s.iter().any(|v| v["event"] == "start")
    });
    assert_eq!(seen[0]["event"], "serve", "{seen:#?}");
    assert_eq!(seen[1]["watching"], true, "{seen:#?}");

    // Three agents drop their requests at once.
    for host in ["agent01", "agent02", "agent03"] {
        let host = format!("{host}.company.local");
        std::fs::write(share.join(format!("{host}.req")), request_pem(&host)).unwrap();
    }
    read_until(&lines, &mut seen, |s| outcomes(s, "issued").len() == 3);

    // One copies its request in slowly (half, a pause, the rest): it waits until it settled,
    // and is issued whole. A file that is no request is refused.
    let slow = request_pem("agent04.company.local");
    let path = share.join("agent04.company.local.req");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&slow.as_bytes()[..slow.len() / 2]).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    f.write_all(&slow.as_bytes()[slow.len() / 2..]).unwrap();
    drop(f);
    std::fs::write(share.join("agent05.company.local.req"), "not a request\n").unwrap();
    read_until(&lines, &mut seen, |s| {
        outcomes(s, "issued").len() == 4 && !outcomes(s, "rejected").is_empty()
    });
    assert!(
        outcomes(&seen, "waiting").contains(&"agent04.company.local.req"),
        "{seen:#?}"
    );

    // Stopped as systemd stops it.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args([
            &format!("-{}", setting("KillSignal").trim_start_matches("SIG")),
            &pid,
        ])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", {
        let mut e = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut e).unwrap();
        e
    });
    read_until(&lines, &mut seen, |s| {
        s.last().is_some_and(|v| v["event"] == "stop")
    });

    // Every request issued exactly once, said once; the certificates and bundles in the
    // share, the requests moved out, no temporary file anywhere.
    let mut issued = outcomes(&seen, "issued");
    issued.sort_unstable();
    assert_eq!(
        issued,
        (1..=4)
            .map(|i| format!("agent0{i}.company.local.req"))
            .collect::<Vec<_>>(),
        "{seen:#?}"
    );
    let in_share = files(&share);
    for i in 1..=4 {
        for ext in ["cer", "bundle"] {
            assert!(
                in_share.contains(&format!("agent0{i}.company.local.{ext}")),
                "{in_share:?}"
            );
        }
    }
    assert!(
        !in_share
            .iter()
            .any(|f| f.ends_with(".req") && !f.contains('/')),
        "{in_share:?}"
    );
    for f in files(&share).iter().chain(&files(&ca)) {
        let name = f.rsplit('/').next().unwrap();
        assert!(!name.starts_with('.'), "a temporary file is left: {f}");
    }

    // The status after it: the counts, the last batch, and the unit file systemd would load.
    let status = ok(&run(
        common::bin("ca"),
        &["status", "--ca", &s(&ca), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["counts"]["issued"], 4, "{v:#}");
    assert_eq!(v["counts"]["current"], 4, "{v:#}");
    assert!(
        v["last_batch"]["at"].as_str().unwrap().ends_with('Z'),
        "{v:#}"
    );
    if have_tool("systemd-analyze", "OPSMGR_REQUIRE_SYSTEMD_ANALYZE") {
        let unit = dir.path().join("om-ca.service");
        std::fs::write(
            &unit,
            UNIT.replace("/usr/local/bin/om-ca", common::bin("ca")),
        )
        .unwrap();
        let checked = Command::new("systemd-analyze")
            .args(["verify", &s(&unit)])
            .output()
            .unwrap();
        let said = text(&checked.stderr);
        assert!(
            said.lines()
                .all(|l| l.contains("RequiresMountsFor") || l.contains("/srv/")),
            "systemd-analyze verify: {said}"
        );
    }
}

/// Chromium as the reader: headless, no network, a fresh profile; the page's DOM as it
/// rendered and every console message it logged.
fn render(page: &Path, profile: &Path) -> (String, Vec<String>) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let console = text(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (text(&out.stdout), console)
}

#[test]
fn status_says_what_stands_and_its_page_renders_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, share) = (dir.path().join("ca"), dir.path().join("share"));
    std::fs::create_dir(&share).unwrap();
    ok(&run(
        common::bin("ca"),
        &["init", &s(&ca), "--name", "JAMA00"],
    ));
    // Two agents issued, one revoked; a management server held for an operator.
    let inventory = dir.path().join("inventory.json");
    std::fs::write(
        &inventory,
        serde_json::to_vec(&serde_json::json!({
            "management_group": "PROD",
            "servers": [
                {"name": "RMS.prod.local", "role": "rms"},
                {"name": "MGT01.prod.local", "role": "management"}
            ],
            "agents": [
                {"name": "agent01.prod.local", "primary": "MGT01.prod.local"},
                {"name": "agent02.prod.local", "primary": "MGT01.prod.local"}
            ]
        }))
        .unwrap(),
    )
    .unwrap();
    for host in [
        "agent01.prod.local",
        "agent02.prod.local",
        "MGT01.prod.local",
    ] {
        std::fs::write(share.join(format!("{host}.req")), request_pem(host)).unwrap();
    }
    let batch = run(
        common::bin("ca"),
        &[
            "process",
            "--share",
            &s(&share),
            "--ca",
            &s(&ca),
            "--issue",
            "--settle",
            "0s",
            "--inventory",
            &s(&inventory),
        ],
    );
    assert_eq!(batch.status.code(), Some(1), "{}", text(&batch.stderr));
    let view = ok(&run(
        common::bin("certutil"),
        &["-config", &s(&ca), "-view", "--json"],
    ));
    let records: serde_json::Value = serde_json::from_str(&view).unwrap();
    let serial = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["common_name"] == "agent02.prod.local")
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&run(
        common::bin("certutil"),
        &["-config", &s(&ca), "-revoke", &serial, "KeyCompromise"],
    ));

    let page = dir.path().join("status.html");
    let said = ok(&run(
        common::bin("ca"),
        &[
            "status",
            "--ca",
            &s(&ca),
            "--within",
            "400d",
            "--html",
            &s(&page),
        ],
    ));
    for line in [
        "Certificate authority JAMA00, at ",
        "Requests: 1 pending, 1 issued (1 current), 0 denied, 1 revoked",
        "MGT01.prod.local",
        "Root: CN=JAMA00, thumbprint ",
        "CRL: number 2, this update ",
        "Current certificates expiring within 400 days: 1",
        "agent01.prod.local",
        "Last batch: ",
        "processed 3, issued 2, pending 1",
    ] {
        assert!(said.contains(line), "{line}: {said}");
    }
    assert!(!said.contains("Unix time"), "{said}");
    let json = ok(&run(
        common::bin("ca"),
        &["status", "--ca", &s(&ca), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["held"][0]["host"], "MGT01.prod.local", "{v:#}");
    assert!(
        v["held"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("management server"),
        "{v:#}"
    );
    assert_eq!(v["expiring_within_days"], 60);
    assert_eq!(v["crl"]["number"], 2);
    assert!(v["root"]["not_after"].as_str().unwrap().ends_with('Z'));
    let weeks: usize = v["issued_per_week"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(weeks, 1, "issued and not revoked this week: {v:#}");

    // The page is one file that fetches nothing, and every fact is on it as rendered.
    let html = std::fs::read_to_string(&page).unwrap();
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "{external} in the page");
    }
    if !have_tool("chromium", "OPSMGR_REQUIRE_CHROMIUM") {
        return;
    }
    let (dom, console) = render(&page, &dir.path().join("profile"));
    assert!(console.is_empty(), "console messages: {console:#?}");
    for fact in [
        "Certificate authority JAMA00",
        "MGT01.prod.local",
        "agent01.prod.local",
        "Certificates issued per week",
        "Current certificates ending per month",
        v["root"]["thumbprint"].as_str().unwrap(),
    ] {
        assert!(dom.contains(fact), "{fact} not on the rendered page");
    }
    // The console check is not one that passes on nothing: a page that breaks the policy
    // is caught.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        html.replace("</body>", "<img src=\"https://example.com/x.png\"></body>"),
    )
    .unwrap();
    let (_, console) = render(&bad, &dir.path().join("profile2"));
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "{console:#?}"
    );
}

/// Every time in every `--json` report of the CA's tools is RFC 3339 (`2027-12-05T20:09:31Z`):
/// never a person's form, never seconds since 1970.
#[test]
fn every_json_time_is_rfc3339() {
    fn times(v: &serde_json::Value, key: &str, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    times(x, k, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| times(x, key, out)),
            other => {
                let named = ["at", "received", "not_before", "not_after", "revoked_at"]
                    .contains(&key)
                    || key.ends_with("_update");
                let dated = other.as_str().is_some_and(|s| {
                    s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-'
                });
                // A chart's bucket is named by its day or month, not a moment.
                if (named || dated) && key != "label" {
                    out.push((key.to_owned(), other.clone()));
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, share) = (dir.path().join("ca"), dir.path().join("share"));
    std::fs::create_dir(&share).unwrap();
    let mut reports = vec![ok(&run(
        common::bin("ca"),
        &[
            "init",
            &s(&ca),
            "--name",
            "JAMA00",
            "--auto-issue",
            "--json",
        ],
    ))];
    std::fs::write(
        share.join("agent01.company.local.req"),
        request_pem("agent01.company.local"),
    )
    .unwrap();
    let ca_s = s(&ca);
    for args in [
        vec![
            "process",
            "--share",
            &s(&share),
            "--ca",
            &ca_s,
            "--settle",
            "0s",
            "--json",
        ],
        vec!["crl", "--ca", &ca_s, "--json"],
        vec!["status", "--ca", &ca_s, "--json"],
        vec!["expiring", "--ca", &ca_s, "--within", "2y", "--json"],
    ] {
        reports.push(ok(&run(common::bin("ca"), &args)));
    }
    reports.push(ok(&run(
        common::bin("certutil"),
        &["-config", &ca_s, "-view", "--json"],
    )));
    let mut found = Vec::new();
    for r in &reports {
        times(&serde_json::from_str(r).unwrap(), "", &mut found);
    }
    assert!(found.len() >= 10, "too few times to judge: {found:?}");
    for (key, value) in found {
        if value.is_null() {
            continue;
        }
        let t = value
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {value} is not a text time"));
        assert!(
            humantime::parse_rfc3339(t).is_ok() && t.ends_with('Z'),
            "{key}: {t} is not RFC 3339"
        );
    }
}

/// `status` reads the CA's public parts only: a CA whose key is encrypted reports without its
/// password, and with the key gone altogether.
#[test]
fn status_needs_neither_the_key_nor_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "a long CA key passphrase\n").unwrap();
    ok(&run(
        common::bin("ca"),
        &[
            "init",
            &s(&ca),
            "--name",
            "JAMA00",
            "--encrypt-key",
            "--password-file",
            &s(&pw),
        ],
    ));
    let said = ok(&run(common::bin("ca"), &["status", "--ca", &s(&ca)]));
    assert!(said.contains("Certificate authority JAMA00"), "{said}");
    std::fs::remove_file(ca.join("ca.key")).unwrap();
    let said = ok(&run(
        common::bin("ca"),
        &["status", "--ca", &s(&ca), "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(v["name"], "JAMA00");
    // A root that is not the pinned one is refused even here.
    let other = dir.path().join("other");
    ok(&run(
        common::bin("ca"),
        &["init", &s(&other), "--name", "JAMA00"],
    ));
    std::fs::copy(other.join("ca.cer"), ca.join("ca.cer")).unwrap();
    let refused = run(common::bin("ca"), &["status", "--ca", &s(&ca)]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("pinned when the CA was made"));
}

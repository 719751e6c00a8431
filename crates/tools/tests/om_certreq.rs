//! om-certreq -new driven as the seed's scripts do: `certreq -new -q -f certreq.inf <FQDN>.req`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod common;
use common::text;

#[path = "../../ca/tests/support/openssl.rs"]
mod openssl;
use openssl::{OpensslCa, Sign};

fn certreq(args: &[&str]) -> std::process::Output {
    common::run(env!("CARGO_BIN_EXE_om-certreq"), args)
}

fn seed_inf() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ca/tests/data/seed.inf"))
        .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn new_request_named_after_the_fqdn() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("server01");
    let inf = dir.path().join("certreq.inf");
    std::fs::write(&inf, seed_inf()).unwrap();
    let req = dir.path().join("server01.company.local.req");
    let (i, r, m) = (
        inf.to_str().unwrap(),
        req.to_str().unwrap(),
        machine.to_str().unwrap(),
    );

    let refused = certreq(&["-new", "-q", "-f", i, r, "--machine", m]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).ends_with(
            "KeyLength: 1024-bit RSA is broken for this purpose today (factorable with public effort); use 2048 or more, or pass --allow-legacy-rsa1024 to accept it anyway\n"
        ),
        "{}",
        text(&refused.stderr)
    );
    assert!(!req.exists());

    let made = certreq(&[
        "-new",
        "-q",
        "-f",
        i,
        r,
        "--machine",
        m,
        "--allow-legacy-rsa1024",
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    assert_eq!(text(&made.stdout), "CertReq: Request Created\n");
    let pem = std::fs::read_to_string(&req).unwrap();
    assert!(pem.starts_with("-----BEGIN NEW CERTIFICATE REQUEST-----\r\n"));
    let check = Command::new("openssl")
        .args(["req", "-in", r, "-verify", "-noout"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));

    let pending = machine.join("Certificates/Request");
    let files = entries(&pending);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert_eq!(
            std::fs::metadata(pending.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "{f}"
        );
    }

    // Without -f an existing request is kept.
    let kept = certreq(&["-new", i, r, "--machine", m, "--allow-legacy-rsa1024"]);
    assert_eq!(kept.status.code(), Some(2));
    assert!(text(&kept.stderr).contains("exists; -f overwrites it"));
    assert_eq!(std::fs::read_to_string(&req).unwrap(), pem);
}

#[test]
fn user_key_set_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("ws01");
    let inf = dir.path().join("user.inf");
    std::fs::write(&inf, "[NewRequest]\r\nSubject = \"CN=ws01.company.local\"\r\nKeyAlgorithm = ECDSA_P256\r\nMachineKeySet = FALSE\r\n").unwrap();
    let req = dir.path().join("ws01.company.local.req");
    let out = certreq(&[
        "--new",
        inf.to_str().unwrap(),
        req.to_str().unwrap(),
        "--machine",
        machine.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["key"], "ECDSA P-256");
    assert_eq!(v["dns_names"][0], "ws01.company.local");
    let id = v["pending_id"].as_str().unwrap();
    assert!(
        machine
            .join(format!("User/Certificates/Request/{id}.key"))
            .exists()
    );
    assert!(!machine.join("Certificates").exists());

    // Accepted, it goes to the user's My, and -accept says so: the agent would not find it.
    let mut ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
    let cer = dir.path().join("ws01.company.local.cer");
    ca.sign(&req, &cer, &Sign::default());
    let trusted = Command::new(env!("CARGO_BIN_EXE_om-certutil"))
        .args(["-addstore", "root"])
        .arg(&ca.cert)
        .args(["--machine", machine.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted.stderr));
    let accepted = certreq(&[
        "-accept",
        cer.to_str().unwrap(),
        "--machine",
        machine.to_str().unwrap(),
    ]);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        text(&accepted.stderr)
    );
    assert!(
        text(&accepted.stdout).contains("\n  Store: My of the user\n"),
        "{}",
        text(&accepted.stdout)
    );
    assert!(
        text(&accepted.stderr).contains(
            "om-certreq: warning: the certificate went to the user's My, where its key was pending (the request said MachineKeySet = FALSE); the agent reads only the machine's"
        ),
        "{}",
        text(&accepted.stderr)
    );
}

/// An OpenSSL CA signs our request; -accept refuses it until its root is trusted, then
/// installs it with its key; again is harmless; a certificate for a key this machine never had
/// is refused.
#[test]
fn accept_a_certificate_signed_by_an_openssl_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let machine = d("agent01");
    std::fs::write(d("certreq.inf"), "[NewRequest]\r\nSubject = \"CN=agent01.company.local\"\r\nKeyLength = 2048\r\nKeyUsage = 0xa0\r\nMachineKeySet = TRUE\r\n").unwrap();
    let made = certreq(&[
        "-new",
        "-q",
        "-f",
        &d("certreq.inf"),
        &d("agent01.company.local.req"),
        "--machine",
        &machine,
    ]);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));

    let mut ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
    ca.sign(
        Path::new(&d("agent01.company.local.req")),
        Path::new(&d("agent01.company.local.cer")),
        &Sign::default(),
    );

    let accept = || {
        certreq(&[
            "-accept",
            "-q",
            &d("agent01.company.local.cer"),
            "--machine",
            &machine,
        ])
    };
    // Its root is not trusted here: refused, nothing changes (certreq -accept says the chain
    // ends in an untrusted root).
    let untrusted = accept();
    assert_eq!(untrusted.status.code(), Some(2));
    assert!(
        text(&untrusted.stderr).contains(
            "is issued by CN=JAMA00, which is not in this machine's Root store; nothing was installed: add the CA's root first"
        ),
        "{}",
        text(&untrusted.stderr)
    );
    assert!(entries(&Path::new(&machine).join("Certificates/My")).is_empty());
    let trusted = Command::new(env!("CARGO_BIN_EXE_om-certutil"))
        .args(["-addstore", "root"])
        .arg(&ca.cert)
        .args(["--machine", &machine])
        .output()
        .unwrap();
    assert_eq!(trusted.status.code(), Some(0), "{}", text(&trusted.stderr));
    let out = accept();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Installed Certificate:\n  Serial Number: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("  Subject: CN=agent01.company.local\n"),
        "{stdout}"
    );
    let m = Path::new(&machine).join("Certificates");
    assert!(
        entries(&m.join("Request")).is_empty(),
        "the pending entry is gone"
    );
    let mine = entries(&m.join("My"));
    assert_eq!(mine.len(), 3, "{mine:?}");
    assert!(mine.iter().any(|f| f.ends_with(".key")) && mine.iter().any(|f| f.ends_with(".cer")));

    let again = certreq(&[
        "-accept",
        &d("agent01.company.local.cer"),
        "--machine",
        &machine,
        "--json",
    ]);
    assert_eq!(again.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["already_installed"], true);
    assert_eq!(v["store"], "machine");

    // A certificate for a key never requested here.
    openssl::openssl(
        dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=other.company.local",
            "-keyout",
            "other.key",
            "-out",
            "other.req",
        ],
    );
    ca.sign(
        Path::new(&d("other.req")),
        Path::new(&d("other.cer")),
        &Sign::default(),
    );
    let refused = certreq(&["-accept", &d("other.cer"), "--machine", &machine]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains(
            "no pending key on this machine matches the public key of CN=other.company.local"
        ),
        "{}",
        text(&refused.stderr)
    );
}

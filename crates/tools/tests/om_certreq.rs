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
        text(&refused.stderr).contains("--allow-legacy-rsa1024"),
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
}

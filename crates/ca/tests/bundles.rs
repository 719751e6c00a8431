//! Bundles prove themselves: an attacker who can replace `<host>.bundle` in the share holds the
//! agent's public key (it is in the `.req` beside it) and can run a CA of the same name. The
//! agent must install nothing from such a bundle: not its root, not its certificate, not its
//! channel setting. And `-addstore` never claims a signature it did not check.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use opsmgr_ca::Error;
use opsmgr_ca::agent::{install_bundle, write_bundle};
use opsmgr_ca::authority::{Authority, InitOptions};
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy};
use opsmgr_ca::store::{PendingInfo, Stores};

const HOST: &str = "agent01.company.local";

/// Every file below `dir` with its bytes: what "nothing changed" compares.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.insert(p.display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

struct Agent {
    machine: std::path::PathBuf,
    request: Vec<u8>,
}

fn agent(dir: &Path) -> Agent {
    let machine = dir.join("agent01");
    let inf = format!(
        "[NewRequest]\nSubject = \"CN={HOST}\"\nKeyAlgorithm = ECDSA_P256\nMachineKeySet = TRUE\n"
    );
    let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
    let key = PrivateKey::generate(policy.key).unwrap();
    let request = der::Encode::to_der(&build_request(&policy, &key).unwrap()).unwrap();
    let stores = Stores::open(&machine, true).unwrap();
    let lock = stores.lock().unwrap();
    let info = PendingInfo {
        subject: format!("CN={HOST}"),
        exportable: false,
        friendly_name: None,
        created: SystemTime::UNIX_EPOCH,
    };
    stores.add_pending(&lock, &key, &info).unwrap();
    Agent { machine, request }
}

/// Issues `request` at `now`: the test's one clock, so that a certificate is never dated
/// after the time the test installs it at.
fn issue(ca: &mut Authority, request: &[u8], now: SystemTime) -> Vec<u8> {
    let id = ca.submit(request, "x.req", now).unwrap().record.id;
    ca.resubmit(id, now).unwrap().certificate.unwrap()
}

#[test]
fn a_forged_bundle_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let mut real = Authority::init(&dir.path().join("real"), &InitOptions::default(), now).unwrap();
    // The attacker's CA has the same name: only keys tell them apart.
    let mut fake = Authority::init(&dir.path().join("fake"), &InitOptions::default(), now).unwrap();
    let a = agent(dir.path());
    let real_root = real.issuer().root().der.clone();
    let fake_root = fake.issuer().root().der.clone();
    let pin = real.issuer().root().thumbprint.clone();
    let genuine = issue(&mut real, &a.request, now);
    // The agent's own public key, certified by the attacker.
    let forged = issue(&mut fake, &a.request, now);

    let before = snapshot(&a.machine);
    let cases = [
        (
            "the attacker's root, with the operator's pin",
            write_bundle(&forged, &fake_root).unwrap(),
            Some(pin.as_str()),
        ),
        (
            "the attacker's root, without a pin",
            write_bundle(&forged, &fake_root).unwrap(),
            None,
        ),
        (
            "the real root beside a certificate the attacker signed",
            write_bundle(&forged, &real_root).unwrap(),
            Some(pin.as_str()),
        ),
    ];
    for (what, bundle, pin) in &cases {
        let err =
            install_bundle(&a.machine, bundle.as_bytes(), false, *pin, None, now).unwrap_err();
        match (what, &err) {
            (_, Error::UntrustedRoot { .. }) if what.starts_with("the attacker's root") => {}
            (_, Error::Certificate { message: m, .. }) if what.starts_with("the real root") => {
                assert!(
                    m.contains("cannot be the channel certificate")
                        && m.contains("does not chain to a trusted root"),
                    "{what}: {m}"
                );
            }
            _ => panic!("{what}: {err}"),
        }
        assert_eq!(snapshot(&a.machine), before, "{what}: the stores changed");
    }
    // With the real root already trusted, the forged root still gets nowhere.
    let genuine_bundle = write_bundle(&genuine, &real_root).unwrap();
    let done = install_bundle(
        &a.machine,
        genuine_bundle.as_bytes(),
        false,
        Some(&pin),
        None,
        now,
    )
    .unwrap();
    assert_eq!(done.channel.unwrap().der, genuine);
    let after_genuine = snapshot(&a.machine);
    let err = install_bundle(
        &a.machine,
        write_bundle(&forged, &fake_root).unwrap().as_bytes(),
        false,
        None,
        None,
        now,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::UntrustedRoot { pinned: false, .. }),
        "{err}"
    );
    assert_eq!(snapshot(&a.machine), after_genuine);
    // A wrong pin says so.
    let other = install_bundle(
        &dir.path().join("fresh"),
        genuine_bundle.as_bytes(),
        false,
        Some("00 11 22"),
        None,
        now,
    )
    .unwrap_err();
    assert!(
        matches!(other, Error::UntrustedRoot { pinned: true, .. }),
        "{other}"
    );
    assert!(
        other.to_string().contains("is not the pinned root"),
        "{other}"
    );
}

#[test]
fn addstore_checks_a_self_signature_before_claiming_it() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Authority::init(&dir.path().join("ca"), &InitOptions::default(), now).unwrap();
    let root = ca.issuer().root().der.clone();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let lock = stores.lock().unwrap();
    // The last byte of the signature, changed.
    let mut tampered = root.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    for force in [false, true] {
        let err = stores.add_root(&lock, &tampered, force).unwrap_err();
        let said = opsmgr_ca::error_chain(&err);
        assert!(
            said.contains("claims to be self-signed, but its signature fails: the signature (")
                && said.ends_with("does not verify: signature error"),
            "{said}"
        );
    }
    let added = stores.add_root(&lock, &root, false).unwrap();
    assert!(added.self_signature_verified && !added.already);
}

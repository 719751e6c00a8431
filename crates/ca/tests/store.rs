//! The machine's pending-request store: keys kept private and atomic, found again, and a
//! lock that makes two tools take turns.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::os::unix::fs::PermissionsExt;

use opsmgr_ca::{KeyType, PendingInfo, PrivateKey, Stores, key_id};

#[test]
fn pending_keys_round_trip_privately() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(dir.path(), true).unwrap();
    assert_eq!(
        std::fs::metadata(stores.root().join("Request"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let info = PendingInfo {
        subject: "CN=a.local".into(),
        exportable: false,
        friendly_name: Some("agent".into()),
        created: 1,
    };
    let id = {
        let lock = stores.lock().unwrap();
        stores.add_pending(&lock, &key, &info).unwrap()
    };
    assert_eq!(id, key_id(&key.public_key_der().unwrap()));
    let pending = stores.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].info, info);
    assert_eq!(
        pending[0].key.public_key_der().unwrap(),
        key.public_key_der().unwrap()
    );
    let key_file = stores.root().join(format!("Request/{id}.key"));
    assert_eq!(
        std::fs::metadata(key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !format!("{:?}", pending[0].key).contains("d:"),
        "keys never print"
    );
}

#[test]
fn the_lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(dir.path(), true).unwrap();
    let held = stores.lock().unwrap();
    let other = std::fs::File::options()
        .write(true)
        .open(stores.root().join(".lock"))
        .unwrap();
    assert!(other.try_lock().is_err(), "a second tool must wait");
    drop(held);
    assert!(other.try_lock().is_ok());
}

#[test]
fn accept_refuses_a_certificate_outside_its_validity_and_keeps_the_key() {
    use std::process::Command;
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let policy = opsmgr_ca::parse_policy(
        b"[NewRequest]\nSubject = \"CN=a.local\"\nKeyAlgorithm = ECDSA_P256\n",
        "a.inf",
        Default::default(),
    )
    .unwrap();
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let req = opsmgr_ca::request_to_pem(&opsmgr_ca::build_request(&policy, &key).unwrap()).unwrap();
    std::fs::write(d("a.req"), req).unwrap();
    let info = PendingInfo {
        subject: "CN=a.local".into(),
        exportable: true,
        friendly_name: None,
        created: 0,
    };
    let lock = stores.lock().unwrap();
    stores.add_pending(&lock, &key, &info).unwrap();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=CA",
            "-days",
            "10",
            "-keyout",
            &d("ca.key"),
            "-out",
            &d("ca.pem"),
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &d("a.req"),
            "-CA",
            &d("ca.pem"),
            "-CAkey",
            &d("ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            &d("a.cer"),
        ],
    ] {
        assert!(
            Command::new("openssl")
                .args(&args)
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    let cert = std::fs::read(d("a.cer")).unwrap();
    let later = SystemTime::now() + Duration::from_secs(10 * 86_400);
    let e = stores.accept(&lock, &cert, later).unwrap_err();
    assert!(e.to_string().contains("is not valid now"), "{e}");
    assert_eq!(stores.pending().unwrap().len(), 1, "the pending key stays");
    let done = stores.accept(&lock, &cert, SystemTime::now()).unwrap();
    assert!(!done.already);
    assert!(stores.pending().unwrap().is_empty());
    assert_eq!(done.cert.public_key, key.public_key_der().unwrap());
}

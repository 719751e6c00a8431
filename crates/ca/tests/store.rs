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

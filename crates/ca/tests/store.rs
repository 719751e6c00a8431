//! The machine's pending-request store: keys kept private and atomic, found again, and a
//! lock that makes two tools take turns.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use opsmgr_ca::Error;
use opsmgr_ca::request::{KeyType, PrivateKey};
use opsmgr_ca::store::{PendingInfo, StoreName, Stores, key_id};

mod support;
use support::openssl::{OpensslCa, Sign};

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
        created: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
    };
    let id = {
        let lock = stores.lock().unwrap();
        stores.add_pending(&lock, &key, &info).unwrap()
    };
    assert_eq!(id, key_id(&key.public_key_der().unwrap()));
    let pending = stores.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].info, info);
    // The file keeps the time as seconds since the Unix epoch, as it always has.
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(stores.root().join(format!("Request/{id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(json["created"], 1);
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
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let policy = opsmgr_ca::request::parse_policy(
        b"[NewRequest]\nSubject = \"CN=a.local\"\nKeyAlgorithm = ECDSA_P256\n",
        "a.inf",
        Default::default(),
    )
    .unwrap();
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let req = opsmgr_ca::request::request_to_pem(
        &opsmgr_ca::request::build_request(&policy, &key).unwrap(),
    )
    .unwrap();
    std::fs::write(d("a.req"), req).unwrap();
    let info = PendingInfo {
        subject: "CN=a.local".into(),
        exportable: true,
        friendly_name: None,
        created: SystemTime::UNIX_EPOCH,
    };
    let lock = stores.lock().unwrap();
    stores.add_pending(&lock, &key, &info).unwrap();
    let mut ca = OpensslCa::new(&dir.path().join("ca"), "CA");
    ca.sign(
        &dir.path().join("a.req"),
        &dir.path().join("a.cer"),
        &Sign::default(),
    );
    let cert = std::fs::read(d("a.cer")).unwrap();
    let later = SystemTime::now() + Duration::from_secs(400 * 86_400);
    let e = stores.accept(&lock, &cert, later).unwrap_err();
    assert!(e.to_string().contains("is not valid now"), "{e}");
    assert_eq!(stores.pending().unwrap().len(), 1, "the pending key stays");
    let done = stores.accept(&lock, &cert, SystemTime::now()).unwrap();
    assert!(!done.already);
    assert!(stores.pending().unwrap().is_empty());
    assert_eq!(done.cert.public_key, key.public_key_der().unwrap());
}

/// Enrolls a P-256 key for `cn` with `exportable`, signed by `ca`; returns its thumbprint.
fn enroll(
    stores: &Stores,
    ca: &mut OpensslCa,
    dir: &std::path::Path,
    cn: &str,
    exportable: bool,
) -> String {
    let inf = format!("[NewRequest]\nSubject = \"CN={cn}\"\nKeyAlgorithm = ECDSA_P256\n");
    let policy =
        opsmgr_ca::request::parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let req = dir.join(format!("{cn}.req"));
    let cer = dir.join(format!("{cn}.cer"));
    std::fs::write(
        &req,
        opsmgr_ca::request::request_to_pem(
            &opsmgr_ca::request::build_request(&policy, &key).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let lock = stores.lock().unwrap();
    let info = PendingInfo {
        subject: format!("CN={cn}"),
        exportable,
        friendly_name: Some(format!("{cn} agent")),
        created: SystemTime::UNIX_EPOCH,
    };
    stores.add_pending(&lock, &key, &info).unwrap();
    ca.sign(&req, &cer, &Sign::default());
    let bytes = std::fs::read(&cer).unwrap();
    stores
        .accept(&lock, &bytes, SystemTime::now())
        .unwrap()
        .cert
        .thumbprint
}

#[test]
fn roots_are_ca_certificates_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let mut ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
    let leaf = enroll(&stores, &mut ca, dir.path(), "a.local", true);
    let lock = stores.lock().unwrap();

    let root = std::fs::read(&ca.cert).unwrap();
    let added = stores.add_root(&lock, &root, false).unwrap();
    assert!(!added.already);
    assert!(stores.add_root(&lock, &root, false).unwrap().already);

    let leaf_der = stores.find(StoreName::My, &leaf).unwrap().cert.unwrap().der;
    let refused = stores.add_root(&lock, &leaf_der, false).unwrap_err();
    assert!(
        matches!(&refused, Error::NotCa(s) if s == "CN=a.local"),
        "{refused}"
    );
    assert_eq!(stores.list(StoreName::Root).unwrap().len(), 1);
    stores.add_root(&lock, &leaf_der, true).unwrap();
    let roots = stores.list(StoreName::Root).unwrap();
    assert_eq!(
        roots.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(),
        ["CN=JAMA00", "CN=a.local"]
    );
    assert!(roots.iter().all(|e| !e.has_key && e.exportable.is_none()));
}

#[test]
fn entries_are_listed_found_by_thumbprint_or_serial_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let mut ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
    let b = enroll(&stores, &mut ca, dir.path(), "b.local", false);
    let a = enroll(&stores, &mut ca, dir.path(), "a.local", true);
    let mine = stores.list(StoreName::My).unwrap();
    assert_eq!(
        mine.iter()
            .map(|e| (e.subject.as_str(), e.exportable))
            .collect::<Vec<_>>(),
        [("CN=a.local", Some(true)), ("CN=b.local", Some(false))]
    );
    assert!(mine.iter().all(|e| e.has_key));
    assert_eq!(mine[0].friendly_name.as_deref(), Some("a.local agent"));

    // Thumbprints as Windows shows them (lower case, spaced) and serial numbers both find it.
    let spaced: String = a
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|p| std::str::from_utf8(p).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(stores.find(StoreName::My, &spaced).unwrap().id, a);
    let serial = mine[1].cert.as_ref().unwrap().serial_hex();
    assert_eq!(stores.find(StoreName::My, &serial).unwrap().id, b);
    assert!(matches!(
        stores.find(StoreName::My, "00FF").unwrap_err(),
        Error::NoSuchEntry {
            store: StoreName::My,
            ..
        }
    ));

    let lock = stores.lock().unwrap();
    let gone = stores.delete(&lock, StoreName::My, &b).unwrap();
    assert_eq!(gone.subject, "CN=b.local");
    let files: Vec<String> = std::fs::read_dir(stores.root().join("My"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with(&b))
        .collect();
    assert!(files.is_empty(), "{files:?}");
    assert_eq!(stores.list(StoreName::My).unwrap().len(), 1);
    assert_eq!("my".parse::<StoreName>().unwrap(), StoreName::My);
    assert_eq!(
        "CA".parse::<StoreName>().unwrap_err().to_string(),
        "no store named 'CA': the stores are My, Root and Request"
    );
}

#[test]
fn keys_made_with_exportable_false_are_never_exported() {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(&dir.path().join("m"), true).unwrap();
    let mut ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
    let locked = enroll(&stores, &mut ca, dir.path(), "locked.local", false);
    let open = enroll(&stores, &mut ca, dir.path(), "open.local", true);
    let e = stores.export_key(StoreName::My, &locked).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the private key of CN=locked.local ({locked}) was made with Exportable = FALSE and is never exported"
        )
    );
    let pem = stores.export_key(StoreName::My, &open).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    // OpenSSL reads the exported key and finds the certificate's public key in it.
    let key_file = dir.path().join("open.key");
    std::fs::write(&key_file, pem.as_bytes()).unwrap();
    let from_key = support::openssl::openssl(dir.path(), &["pkey", "-in", "open.key", "-pubout"]);
    let from_cert = support::openssl::openssl(
        dir.path(),
        &["x509", "-in", "open.local.cer", "-noout", "-pubkey"],
    );
    assert_eq!(from_key, from_cert);
}

//! The key store: sealing and opening secrets, rotation, its file, and its refusals.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};

use opsmgr_securestorage::Error;
use opsmgr_securestorage::keystore::{Installed, KeyStore, install, keystore_path};
use opsmgr_securestorage::random::OsRandom;
use proptest::prelude::*;

fn now() -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_363_447)
}

#[test]
fn rotation_keeps_old_keys_for_opening() {
    let mut store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let old = store.seal(b"old secret", &mut OsRandom).unwrap();
    let first = store.current().id();
    let second = store.rotate(now(), &mut OsRandom).unwrap();
    assert_ne!(first, second);
    assert_eq!(store.current().id(), second);
    let new = store.seal(b"new secret", &mut OsRandom).unwrap();
    assert_eq!(KeyStore::sealed_key_id(&old).unwrap(), first);
    assert_eq!(KeyStore::sealed_key_id(&new).unwrap(), second);
    assert_eq!(store.open(&old).unwrap().as_slice(), b"old secret");
    assert_eq!(store.open(&new).unwrap().as_slice(), b"new secret");

    // Another store cannot open them, and says which key is missing.
    let other = KeyStore::generate(now(), &mut OsRandom).unwrap();
    match other.open(&new) {
        Err(Error::UnknownKey(id)) => assert_eq!(id, second.to_string()),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_changed_secret_or_a_moved_key_id_is_refused() {
    let store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let sealed = store.seal(b"RunAs password", &mut OsRandom).unwrap();
    for i in 0..sealed.len() * 8 {
        let mut bad = sealed.clone();
        bad[i / 8] ^= 1 << (i % 8);
        assert!(store.open(&bad).is_err(), "bit {i}");
    }
    assert!(matches!(
        store.open(&sealed[..20]),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn the_file_is_private_atomic_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore_path(dir.path());
    let store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    store.save_new(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert!(KeyStore::load(&path).unwrap().same_as(&store));
    assert!(matches!(
        store.save_new(&path),
        Err(Error::KeyStoreExists(_))
    ));

    // A world-readable file is replaced by a private one.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    store.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["keystore.bin", "keystore.bin.lock"],
        "the store and its lock, no temp files"
    );

    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let e = KeyStore::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: not a valid key store, or corrupt or truncated: checksum mismatch",
            path.display()
        )
    );
    assert!(matches!(
        KeyStore::load(&dir.path().join("none")),
        Err(Error::NoKeyStore(_))
    ));
}

#[test]
fn secrets_never_print() {
    let store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("<redacted>"));
    let secret_hex: String = store.to_bytes()[7 + 16 + 8 + 1..7 + 16 + 8 + 1 + 32]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(!debug.to_lowercase().contains(&secret_hex));
    assert!(!debug.contains(&format!("{:?}", &store.to_bytes()[7 + 25..7 + 57])));
}

proptest! {
    #[test]
    fn seal_open_round_trip(secret in prop::collection::vec(any::<u8>(), 0..512), rotations in 0usize..4) {
        let mut store = KeyStore::generate(now(), &mut OsRandom).unwrap();
        let mut sealed = vec![store.seal(&secret, &mut OsRandom).unwrap()];
        for _ in 0..rotations {
            store.rotate(now(), &mut OsRandom).unwrap();
            sealed.push(store.seal(&secret, &mut OsRandom).unwrap());
        }
        let reloaded = KeyStore::from_bytes(&store.to_bytes()).unwrap();
        prop_assert!(reloaded.same_as(&store));
        for s in &sealed {
            let opened = reloaded.open(s).unwrap();
            prop_assert_eq!(opened.as_slice(), secret.as_slice());
        }
    }

    #[test]
    fn key_store_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = KeyStore::from_bytes(&bytes);
    }
}

fn replaced(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("keystore.bin.replaced-")
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_forced_restore_moves_a_corrupt_store_aside_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore_path(dir.path());
    let old = KeyStore::generate(now(), &mut OsRandom).unwrap();
    old.save(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0x40; // a checksum mismatch
    std::fs::write(&path, &bytes).unwrap();
    let new = KeyStore::generate(now(), &mut OsRandom).unwrap();

    match install(&new, &path, false, now()) {
        Err(e @ Error::KeyStoreUnreadable { .. }) => {
            assert!(e.to_string().contains("checksum mismatch"), "{e}");
            assert!(e.to_string().ends_with("; nothing was replaced"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "untouched without force"
    );

    match install(&new, &path, true, now()).unwrap() {
        Installed::ReplacedUnreadable { saved, reason } => {
            assert_eq!(
                reason,
                "not a valid key store, or corrupt or truncated: checksum mismatch"
            );
            assert_eq!(std::fs::read(&saved).unwrap(), bytes, "kept byte for byte");
            assert_eq!(
                std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
                0o600
            );
            assert!(
                saved
                    .to_string_lossy()
                    .ends_with("keystore.bin.replaced-20261122T160407Z-1"),
                "{}",
                saved.display()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(KeyStore::load(&path).unwrap().same_as(&new));
}

#[test]
fn forced_restores_in_the_same_second_keep_every_original() {
    let dir = tempfile::tempdir().unwrap();
    let path = keystore_path(dir.path());
    let stores: Vec<KeyStore> = (0..3)
        .map(|_| KeyStore::generate(now(), &mut OsRandom).unwrap())
        .collect();
    stores[0].save(&path).unwrap();
    let mut missing = Vec::new();
    for s in &stores[1..] {
        match install(s, &path, true, now()).unwrap() {
            Installed::ReplacedReadable { missing: m, .. } => missing.extend(m),
            other => panic!("{other:?}"),
        }
    }
    // Each replaced store's only key was missing from the one that replaced it.
    assert_eq!(
        missing,
        vec![stores[0].current().id(), stores[1].current().id()]
    );
    let saved = replaced(path.parent().unwrap());
    assert_eq!(saved.len(), 2, "{saved:?}");
    assert!(saved[0].to_string_lossy().ends_with("-1"));
    assert!(saved[1].to_string_lossy().ends_with("-2"));
    assert!(KeyStore::load(&saved[0]).unwrap().same_as(&stores[0]));
    assert!(KeyStore::load(&saved[1]).unwrap().same_as(&stores[1]));
    assert!(matches!(
        install(&stores[2], &path, true, now()).unwrap(),
        Installed::Unchanged
    ));
    assert!(matches!(
        install(&stores[0], &path, false, now()),
        Err(Error::KeyStoreDiffers { .. })
    ));
}

#[test]
fn concurrent_restores_take_turns() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = keystore_path(dir.path());
        let first = KeyStore::generate(now(), &mut OsRandom).unwrap();
        first.save(&path).unwrap();
        let racers: Vec<KeyStore> = (0..4)
            .map(|_| KeyStore::generate(now(), &mut OsRandom).unwrap())
            .collect();
        std::thread::scope(|s| {
            for r in &racers {
                let path = &path;
                s.spawn(move || install(r, path, true, now()).unwrap());
            }
        });
        // One racer's store is in place; every store it replaced was saved, none lost.
        let last = KeyStore::load(&path).unwrap();
        let saved: Vec<KeyStore> = replaced(path.parent().unwrap())
            .iter()
            .map(|p| KeyStore::load(p).unwrap())
            .collect();
        assert_eq!(saved.len(), racers.len());
        let all: Vec<&KeyStore> = std::iter::once(&first).chain(&racers).collect();
        for s in &all {
            let kept = usize::from(last.same_as(s)) + saved.iter().filter(|x| x.same_as(s)).count();
            assert_eq!(kept, 1, "every store is either in place or saved, once");
        }
    }
}

#[test]
fn secrets_sealed_for_an_account_open_only_for_it() {
    use opsmgr_securestorage::keystore::SealedFor;
    let store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let sql = SealedFor {
        management_group: "PROD",
        account: "SQL Action Account",
    };
    let sealed = store.seal_for(b"P@ssw0rd-sql", sql, &mut OsRandom).unwrap();
    assert_eq!(sealed[4], 2, "sealed secret version 2");
    assert_eq!(
        store.open_for(&sealed, sql).unwrap().as_slice(),
        b"P@ssw0rd-sql"
    );
    for other in [
        SealedFor {
            account: "Web Action Account",
            ..sql
        },
        SealedFor {
            management_group: "TEST",
            ..sql
        },
        // The length prefixes keep the boundary between the two names.
        SealedFor {
            management_group: "PRODS",
            account: "QL Action Account",
        },
    ] {
        assert!(
            matches!(
                store.open_for(&sealed, other),
                Err(Error::SecretTampered { .. })
            ),
            "{other:?}"
        );
    }
    assert!(matches!(store.open(&sealed), Err(Error::Corrupt { .. })));
    // Version 1 (bound to the key id only) still opens, for any account.
    let old = store.seal(b"sealed in 2009", &mut OsRandom).unwrap();
    assert_eq!(old[4], 1);
    assert_eq!(
        store.open_for(&old, sql).unwrap().as_slice(),
        b"sealed in 2009"
    );
    // Flipping the version byte does not unbind a blob.
    let mut unbound = sealed.clone();
    unbound[4] = 1;
    assert!(matches!(
        store.open(&unbound),
        Err(Error::SecretTampered { .. })
    ));
}

/// The key check record proves which key is the group's with no secret sealed: the store that
/// made it finds its key current, a rotated store finds it older, another store lacks it, and
/// a record changed, or read for another group, is an error, never a pass.
#[test]
fn a_key_check_record_names_the_groups_key() {
    use opsmgr_securestorage::keystore::KeyCheck;
    let mut store = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let record = store.key_check("PROD", &mut OsRandom).unwrap();
    assert_eq!(
        KeyStore::key_check_id(&record).unwrap(),
        store.current().id()
    );
    assert_eq!(store.check_key(&record, "PROD").unwrap(), KeyCheck::Current);
    let other = KeyStore::generate(now(), &mut OsRandom).unwrap();
    assert_eq!(other.check_key(&record, "PROD").unwrap(), KeyCheck::Absent);
    store.rotate(now(), &mut OsRandom).unwrap();
    assert_eq!(store.check_key(&record, "PROD").unwrap(), KeyCheck::Older);
    assert!(matches!(
        store.check_key(&record, "TEST"),
        Err(Error::KeyCheckFailed { .. })
    ));
    for i in 0..record.len() {
        let mut bad = record.clone();
        bad[i] ^= 0x20;
        match store.check_key(&bad, "PROD") {
            // The id changed to one the store lacks.
            Ok(KeyCheck::Absent) => assert!((5..21).contains(&i), "byte {i}"),
            Err(Error::KeyCheckFailed { .. } | Error::Corrupt { .. }) => {}
            other => panic!("byte {i}: {other:?}"),
        }
    }
    // Two records of one key differ (a fresh nonce) and both check.
    let again = KeyStore::generate(now(), &mut OsRandom).unwrap();
    let (a, b) = (
        again.key_check("PROD", &mut OsRandom).unwrap(),
        again.key_check("PROD", &mut OsRandom).unwrap(),
    );
    assert_ne!(a, b);
    assert_eq!(again.check_key(&b, "PROD").unwrap(), KeyCheck::Current);
}

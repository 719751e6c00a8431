//! k-of-n custody backups (format version 3): every 3-subset of a 3-of-5 restores, every
//! 2-subset is refused, in any order and among wrong passwords; every custodian has their own
//! salt, so a guess is tried against one custodian at a time; a changed file is told from a
//! wrong password; every flipped bit and every truncation is refused; the shapes and passwords
//! a writer refuses; the recovery fingerprint.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::time::{Duration, UNIX_EPOCH};

use opsmgr_securestorage::Error;
use opsmgr_securestorage::backup::{inspect_backup, open_backup, open_backup_with_passwords};
use opsmgr_securestorage::custody::{Custodian, CustodyOpener, recovery_fingerprint, seal_custody};
use opsmgr_securestorage::format::{CUSTODY_VERSION, KdfParams, ReadPolicy};
use opsmgr_securestorage::keystore::KeyStore;
use opsmgr_securestorage::random::OsRandom;
use proptest::prelude::*;

/// Cheap parameters, test-only: a 3-of-5 restore from every subset derives dozens of keys.
const CHEAP: KdfParams = KdfParams {
    memory_kib: 64,
    passes: 1,
    lanes: 1,
};

const LABELS: [&str; 5] = [
    "Alice (CISO)",
    "Bob (ops)",
    "Carol (DBA)",
    "Dan (audit)",
    "Eve",
];
const PASSWORDS: [&str; 5] = [
    "alice's long passphrase",
    "bob: correct horse",
    "carol's battery staple",
    "dan audits everything",
    "eve, the fifth one",
];

fn store() -> KeyStore {
    let mut s = KeyStore::generate(
        UNIX_EPOCH + Duration::from_secs(1_258_000_000),
        &mut OsRandom,
    )
    .unwrap();
    s.rotate(
        UNIX_EPOCH + Duration::from_secs(1_795_363_447),
        &mut OsRandom,
    )
    .unwrap();
    s
}

fn custodians() -> Vec<Custodian<'static>> {
    LABELS
        .iter()
        .zip(PASSWORDS)
        .map(|(label, password)| Custodian { label, password })
        .collect()
}

fn three_of_five(s: &KeyStore) -> Vec<u8> {
    seal_custody(s, &custodians(), 3, CHEAP, &mut OsRandom).unwrap()
}

fn open(
    backup: &[u8],
    who: &[usize],
) -> opsmgr_securestorage::Result<opsmgr_securestorage::format::Opened> {
    let passwords: Vec<&str> = who.iter().map(|&i| PASSWORDS[i]).collect();
    open_backup_with_passwords(backup, &passwords, &ReadPolicy::DEFAULT)
}

/// Every subset of 0..5, as index lists.
fn subsets() -> Vec<Vec<usize>> {
    (0u32..32)
        .map(|bits| (0..5).filter(|i| bits & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn every_three_custodians_restore_and_no_two_do() {
    let s = store();
    let backup = three_of_five(&s);
    let info = inspect_backup(&backup).unwrap();
    assert_eq!(info.version, CUSTODY_VERSION);
    let custody = info.custody.unwrap();
    assert_eq!(custody.threshold, 3);
    assert_eq!(custody.labels, LABELS);
    let (mut restored, mut refused) = (0, 0);
    for who in subsets() {
        match open(&backup, &who) {
            Ok(opened) => {
                assert!(who.len() >= 3, "{who:?} opened");
                assert!(opened.store.same_as(&s));
                // The first three given are the ones used and named, in the file's order.
                let named: Vec<&str> = who[..3].iter().map(|&i| LABELS[i]).collect();
                assert_eq!(opened.custodians, named);
                restored += 1;
            }
            Err(Error::NotEnoughCustodians { threshold, opened }) => {
                assert!(who.len() < 3, "{who:?} refused");
                assert_eq!(threshold, 3);
                let named: Vec<&str> = who.iter().map(|&i| LABELS[i]).collect();
                assert_eq!(opened, named);
                refused += 1;
            }
            Err(e) => panic!("{who:?}: {e}"),
        }
    }
    // C(5,3) + C(5,4) + C(5,5) = 16 restore; the 16 smaller subsets are refused.
    assert_eq!((restored, refused), (16, 16));
    let e = open(&backup, &[4, 1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the backup needs 3 custodians' passwords; 2 opened (Bob (ops), Eve)"
    );
    let e = open(&backup, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the backup needs 3 custodians' passwords; 0 opened"
    );
    // A single-password reader is refused the same way.
    assert!(matches!(
        open_backup(&backup, PASSWORDS[0]),
        Err(Error::NotEnoughCustodians { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any 3 custodians, in any order, among wrong passwords and repeats, restore; any 2 never.
    #[test]
    fn any_three_in_any_order_among_wrong_passwords(
        order in Just((0usize..5).collect::<Vec<_>>()).prop_shuffle(),
        wrong in proptest::collection::vec("[a-z ]{8,20}", 0..3),
        repeat in any::<bool>(),
    ) {
        let s = store();
        let backup = three_of_five(&s);
        let mut passwords: Vec<&str> = wrong.iter().map(String::as_str).collect();
        for &i in &order[..2] {
            passwords.push(PASSWORDS[i]);
            if repeat {
                passwords.push(PASSWORDS[i]);
            }
        }
        let two = open_backup_with_passwords(&backup, &passwords, &ReadPolicy::DEFAULT);
        let refused = matches!(two, Err(Error::NotEnoughCustodians { ref opened, .. }) if opened.len() == 2);
        prop_assert!(refused);
        passwords.insert(passwords.len() / 2, PASSWORDS[order[2]]);
        let opened = open_backup_with_passwords(&backup, &passwords, &ReadPolicy::DEFAULT).unwrap();
        prop_assert!(opened.store.same_as(&s));
        prop_assert_eq!(opened.custodians.len(), 3);
    }
}

#[test]
fn every_flipped_bit_is_refused() {
    let s = store();
    let backup = seal_custody(&s, &custodians()[..3], 2, CHEAP, &mut OsRandom).unwrap();
    let reader = ReadPolicy::max_memory_mib(4);
    // The sealed key store: the file's last bytes.
    let ciphertext = backup.len() - (s.to_bytes().len() + 16);
    for i in 0..backup.len() * 8 {
        let mut bad = backup.clone();
        bad[i / 8] ^= 1 << (i % 8);
        let result = open_backup_with_passwords(&bad, &PASSWORDS[..3], &reader);
        if i / 8 >= ciphertext {
            // Two of the three shares open whatever the payload holds: a changed file.
            assert!(
                matches!(result, Err(Error::BackupChanged { threshold: 2 })),
                "bit {i}: {result:?}"
            );
            continue;
        }
        match result {
            // Never "a wrong password": the passwords are right.
            Err(
                Error::BackupChanged { .. }
                | Error::HeaderChanged { .. }
                | Error::Corrupt { .. }
                | Error::OutOfPolicy { .. }
                | Error::WorkOutOfPolicy { .. }
                | Error::CustodyShape { .. }
                | Error::UnsupportedVersion(_),
            ) => {}
            // The key derivation's parameters changed: no password derives its key, which no
            // reader can tell from three wrong passwords.
            Err(Error::NotEnoughCustodians { ref opened, .. }) if (10..23).contains(&(i / 8)) => {
                assert!(opened.is_empty(), "bit {i}");
            }
            Ok(_) => panic!("bit {i} flipped and the backup still opened"),
            Err(e) => panic!("bit {i}: unexpected {e}"),
        }
    }
}

/// Issue 19, problem 4: version 2 gave the file one salt, so one guess (one Argon2 run) was
/// tested against every custodian's stanza at once. Version 3 gives each stanza its own: a
/// guess costs a derivation per custodian tried, and a restore that names its custodians costs
/// exactly one derivation each.
#[test]
fn every_custodian_has_their_own_salt() {
    let s = store();
    let backup = three_of_five(&s);
    // The stanzas, as FORMAT.md lays them out after K and N at bytes 23 and 24.
    let mut salts = Vec::new();
    let mut at = 25;
    for label in LABELS {
        assert_eq!(usize::from(backup[at]), label.len());
        at += 1 + label.len();
        let salt_len = usize::from(backup[at]);
        assert_eq!(salt_len, 32);
        salts.push(backup[at + 1..at + 1 + salt_len].to_vec());
        at += 1 + salt_len + 12 + 49;
    }
    for (i, salt) in salts.iter().enumerate() {
        assert!(!salts[..i].contains(salt), "custodian {i} shares a salt");
    }
    // A guess tried without a name costs a derivation per custodian.
    let mut opener = CustodyOpener::new(&backup, &ReadPolicy::DEFAULT).unwrap();
    assert_eq!(opener.try_password("not anyone's password").unwrap(), None);
    assert_eq!(opener.derivations(), 5);
    // Named, one each; another custodian's password is not this one's.
    let mut opener = CustodyOpener::new(&backup, &ReadPolicy::DEFAULT).unwrap();
    assert!(!opener.try_custodian(LABELS[0], PASSWORDS[1]).unwrap());
    assert!(opener.try_custodian(LABELS[0], PASSWORDS[0]).unwrap());
    assert!(!opener.is_enough());
    assert!(opener.try_custodian(LABELS[3], PASSWORDS[3]).unwrap());
    assert!(opener.try_custodian(LABELS[4], PASSWORDS[4]).unwrap());
    assert!(opener.is_enough());
    assert_eq!(opener.opened(), [LABELS[0], LABELS[3], LABELS[4]]);
    let opened = opener.finish().unwrap();
    assert!(opened.store.same_as(&s));
    assert_eq!(opened.derivations, 4);
    // Unnamed, the cost is said: the fifth custodian's password tried on all five stanzas.
    let opened = open(&backup, &[4, 0, 1]).unwrap();
    assert_eq!(opened.derivations, 5 + 1 + 1);
    let mut opener = CustodyOpener::new(&backup, &ReadPolicy::DEFAULT).unwrap();
    assert_eq!(
        opener
            .try_custodian("Mallory", PASSWORDS[0])
            .unwrap_err()
            .to_string(),
        "no custodian is labelled 'Mallory' in this backup (its custodians: Alice (CISO), Bob (ops), Carol (DBA), Dan (audit), Eve)"
    );
}

/// Issue 19, problem 5: a changed file is not reported as wrong passwords.
#[test]
fn a_changed_file_is_not_called_a_wrong_password() {
    let s = store();
    let backup = three_of_five(&s);
    // The threshold edited from 3 to 2 in the header: the stanzas were sealed with 3.
    let mut fewer = backup.clone();
    fewer[23] = 2;
    assert_eq!(
        open(&fewer, &[0, 1, 2]).unwrap_err().to_string(),
        "the backup's header was changed: it says the threshold is 2, but the custodians' shares were sealed with 3"
    );
    // Enough shares open, the sealed key store does not.
    let mut body = backup.clone();
    let last = body.len() - 1;
    body[last] ^= 1;
    assert_eq!(
        open(&body, &[0, 1, 2]).unwrap_err().to_string(),
        "3 custodians' shares opened, but they do not open the key store: the backup was changed after it was written (not a wrong password)"
    );
    // Wrong passwords are still wrong passwords, named by who opened.
    let e = open(&backup, &[1, 4]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the backup needs 3 custodians' passwords; 2 opened (Bob (ops), Eve)"
    );
    // The same in a version 2 file (the golden one, whose threshold is 2 of 3).
    let golden = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/backup-v2.omkb"),
    )
    .unwrap();
    let k_at = 24 + usize::from(golden[23]);
    assert_eq!(golden[k_at], 2);
    let mut more = golden.clone();
    more[k_at] = 3;
    let passwords = [
        "Golden custody v2: first custodian",
        "Golden custody v2: second custodian",
        "Golden custody v2: third custodian",
    ];
    assert_eq!(
        open_backup_with_passwords(&more, &passwords, &ReadPolicy::DEFAULT)
            .unwrap_err()
            .to_string(),
        "the backup's header was changed: it says the threshold is 3, but the custodians' shares were sealed with 2"
    );
}

#[test]
fn truncation_at_every_length_is_refused_as_corrupt() {
    let backup = seal_custody(&store(), &custodians()[..3], 2, CHEAP, &mut OsRandom).unwrap();
    for len in 0..backup.len() {
        match open_backup_with_passwords(&backup[..len], &PASSWORDS[..3], &ReadPolicy::DEFAULT) {
            Err(Error::Corrupt { what: "backup", .. }) => {}
            other => panic!("length {len}: {other:?}"),
        }
    }
}

#[test]
fn shapes_and_passwords_a_writer_refuses() {
    let s = store();
    let c = custodians();
    for (n, k) in [(5, 1), (5, 6), (1, 1), (5, 0)] {
        assert!(
            matches!(
                seal_custody(&s, &c[..n], k, CHEAP, &mut OsRandom),
                Err(Error::CustodyShape { .. })
            ),
            "{k} of {n}"
        );
    }
    let labels: Vec<String> = (0..17).map(|i| format!("custodian {i}")).collect();
    let passwords: Vec<String> = (0..17).map(|i| format!("password number {i}")).collect();
    let seventeen: Vec<Custodian<'_>> = labels
        .iter()
        .zip(&passwords)
        .map(|(label, password)| Custodian { label, password })
        .collect();
    assert!(matches!(
        seal_custody(&s, &seventeen, 2, CHEAP, &mut OsRandom),
        Err(Error::CustodyShape {
            custodians: 17,
            threshold: 2
        })
    ));
    assert!(seal_custody(&s, &seventeen[..16], 16, CHEAP, &mut OsRandom).is_ok());
    let mut short = c.clone();
    short[3].password = "seven!!";
    assert!(matches!(
        seal_custody(&s, &short, 3, CHEAP, &mut OsRandom),
        Err(Error::PasswordTooShort { length: 7, .. })
    ));
    let mut same = c.clone();
    same[2].password = same[0].password;
    assert!(matches!(
        seal_custody(&s, &same, 3, CHEAP, &mut OsRandom),
        Err(Error::SamePassword(label)) if label == "Carol (DBA)"
    ));
    let mut twice = c.clone();
    twice[1].label = twice[0].label;
    assert!(seal_custody(&s, &twice, 3, CHEAP, &mut OsRandom).is_err());
    let mut empty = c;
    empty[1].label = "";
    assert!(seal_custody(&s, &empty, 3, CHEAP, &mut OsRandom).is_err());
}

#[test]
fn the_recovery_fingerprint_follows_the_key_ids() {
    let mut s = store();
    let fp = recovery_fingerprint(&s);
    assert_eq!(fp.len(), 19);
    assert!(
        fp.split('-')
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
    );
    let opened = open(&three_of_five(&s), &[0, 2, 4]).unwrap();
    assert_eq!(
        recovery_fingerprint(&opened.store),
        fp,
        "survives the backup"
    );
    assert_ne!(
        recovery_fingerprint(&store()),
        fp,
        "other keys, another value"
    );
    s.rotate(UNIX_EPOCH, &mut OsRandom).unwrap();
    assert_ne!(recovery_fingerprint(&s), fp, "a rotation changes it");
}

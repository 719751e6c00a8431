//! Backups: round trips, the golden files of every version, and every refusal (wrong
//! password, a flipped bit anywhere, truncation at every length, parameters out of policy,
//! unknown versions, short passwords).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use opsmgr_securestorage::Error;
use opsmgr_securestorage::backup::{
    inspect_backup, open_backup, open_backup_with, open_backup_with_passwords, seal_backup,
    seal_backup_with,
};
use opsmgr_securestorage::custody::recovery_fingerprint;
use opsmgr_securestorage::format::{CURRENT_VERSION, KdfParams, NEWEST_VERSION, ReadPolicy};
use opsmgr_securestorage::keystore::KeyStore;
use opsmgr_securestorage::random::{OsRandom, RandomSource};

/// Cheap parameters, so that the tests that open a backup a thousand times stay fast.
const CHEAP: KdfParams = KdfParams {
    memory_kib: 64,
    passes: 1,
    lanes: 1,
};

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

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn default_parameters_round_trip() {
    let s = store();
    let backup = seal_backup(&s, "a long enough passphrase", &mut OsRandom).unwrap();
    let info = inspect_backup(&backup).unwrap();
    assert_eq!(info.kdf, KdfParams::DEFAULT);
    assert_eq!(info.version, CURRENT_VERSION);
    let (restored, _) = open_backup(&backup, "a long enough passphrase").unwrap();
    assert!(restored.same_as(&s));
    assert_eq!(restored.current().id(), s.current().id());
    assert!(matches!(
        open_backup(&backup, "a long enough passphrasE"),
        Err(Error::WrongPasswordOrTampered)
    ));
}

/// Every format version ever written restores, forever, to exactly the keys it was written
/// with: every key's id, creation time, current flag and secret, in order.
#[test]
fn golden_files_of_every_version_restore() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut versions = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "omkb") {
            continue;
        }
        versions += 1;
        let name = path.display().to_string();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
        let text = |v: &serde_json::Value| v.as_str().unwrap().to_owned();
        let bytes = std::fs::read(&path).unwrap();
        let (store, info) = if let Some(passwords) = json["passwords"].as_array() {
            // A custody backup: the last `threshold` custodians, the first one never asked.
            let passwords: Vec<String> = passwords.iter().map(text).collect();
            let threshold = json["threshold"].as_u64().unwrap() as usize;
            let given: Vec<&str> = passwords[passwords.len() - threshold..]
                .iter()
                .map(String::as_str)
                .collect();
            let opened = open_backup_with_passwords(&bytes, &given, &ReadPolicy::DEFAULT).unwrap();
            let labels: Vec<String> = json["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(text)
                .collect();
            assert_eq!(
                opened.custodians,
                labels[labels.len() - threshold..],
                "{name}"
            );
            let custody = opened.info.custody.clone().unwrap();
            assert_eq!((custody.threshold, custody.labels), (threshold, labels));
            assert!(matches!(
                open_backup_with_passwords(&bytes, &given[1..], &ReadPolicy::DEFAULT),
                Err(Error::NotEnoughCustodians { .. })
            ));
            (opened.store, opened.info)
        } else {
            open_backup(&bytes, &text(&json["password"])).unwrap()
        };
        assert_eq!(
            recovery_fingerprint(&store),
            text(&json["fingerprint"]),
            "{name}"
        );
        assert_eq!(u64::from(info.version), json["version"].as_u64().unwrap());
        let ids = json["keys"].as_array().unwrap();
        let created = json["created"].as_array().unwrap();
        let secrets = json["secrets"].as_array().unwrap();
        assert_eq!(store.keys().len(), ids.len(), "{name}");
        assert_eq!(created.len(), ids.len());
        assert_eq!(secrets.len(), ids.len());
        let current = text(&json["current"]);
        assert_eq!(store.current().id().to_string(), current, "{name}");
        // The key store's encoding (FORMAT.md) as the golden file's keys make it, digest aside.
        let mut expected = b"OMKS\x01".to_vec();
        expected.extend_from_slice(&(ids.len() as u16).to_be_bytes());
        for (i, key) in store.keys().iter().enumerate() {
            assert_eq!(key.id().to_string(), text(&ids[i]), "{name}: key {i}");
            assert_eq!(
                key.created(),
                UNIX_EPOCH + Duration::from_secs(created[i].as_u64().unwrap()),
                "{name}: key {i}"
            );
            expected.extend_from_slice(&hex(&text(&ids[i])));
            expected.extend_from_slice(&created[i].as_u64().unwrap().to_be_bytes());
            expected.push(u8::from(text(&ids[i]) == current));
            expected.extend_from_slice(&hex(&text(&secrets[i])));
        }
        let bytes = store.to_bytes();
        assert_eq!(
            &bytes[..bytes.len() - 32],
            expected.as_slice(),
            "{name}: every key's id, creation time, flag and secret"
        );
        // And the secrets work: a secret sealed with the golden store still opens.
        let opened = store.open(&hex(&text(&json["sealed"]))).unwrap();
        assert_eq!(
            String::from_utf8(opened.to_vec()).unwrap(),
            text(&json["plaintext"])
        );
    }
    assert_eq!(
        versions,
        usize::from(NEWEST_VERSION),
        "a golden file for each version"
    );
}

#[test]
fn every_flipped_bit_is_refused() {
    let s = store();
    let backup = seal_backup_with(&s, "flip every bit please", CHEAP, &mut OsRandom).unwrap();
    // A flip in the memory field asks for up to 2 GiB; this reader accepts 4 MiB (16 MiB·passes),
    // so the test derives with a few MiB at most and refuses the rest before allocating.
    let reader = ReadPolicy::max_memory_mib(4);
    for i in 0..backup.len() * 8 {
        let mut bad = backup.clone();
        bad[i / 8] ^= 1 << (i % 8);
        if let Ok(info) = inspect_backup(&bad) {
            let derived = reader.check(&info.kdf).is_ok();
            assert!(!derived || info.kdf.memory_kib <= 4096, "bit {i}: {info:?}");
        }
        match open_backup_with(&bad, "flip every bit please", &reader) {
            Err(
                Error::WrongPasswordOrTampered
                | Error::Corrupt { .. }
                | Error::OutOfPolicy { .. }
                | Error::WorkOutOfPolicy { .. }
                | Error::UnsupportedVersion(_)
                // The version made 3: the header read as a custody backup's.
                | Error::CustodyShape { .. },
            ) => {}
            Ok(_) => panic!("bit {i} flipped and the backup still opened"),
            Err(e) => panic!("bit {i}: unexpected {e}"),
        }
    }
}

#[test]
fn truncation_at_every_length_is_refused_as_corrupt() {
    let backup = seal_backup_with(&store(), "truncate me at will", CHEAP, &mut OsRandom).unwrap();
    for len in 0..backup.len() {
        match open_backup(&backup[..len], "truncate me at will") {
            Err(Error::Corrupt { what: "backup", .. }) => {}
            other => panic!("length {len}: {other:?}"),
        }
    }
    let mut longer = backup.clone();
    longer.push(0);
    assert!(
        matches!(open_backup(&longer, "truncate me at will"), Err(Error::Corrupt { reason, .. }) if reason.contains("bytes follow"))
    );
}

/// Rewrites a header field of a cheap backup.
fn with_field(backup: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = backup.to_vec();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    b
}

#[test]
fn out_of_policy_parameters_are_refused_before_deriving() {
    let backup = seal_backup_with(&store(), "policy check please", CHEAP, &mut OsRandom).unwrap();
    let refuse = |b: &[u8]| match open_backup(b, "policy check please") {
        Err(Error::OutOfPolicy {
            parameter, value, ..
        }) => (parameter, value),
        other => panic!("{other:?}"),
    };
    // 8 GiB of memory would exhaust the machine: refused instantly.
    assert_eq!(
        refuse(&with_field(&backup, 11, &(8u32 << 20).to_be_bytes())),
        ("memory (KiB)", 8 << 20)
    );
    assert_eq!(
        refuse(&with_field(&backup, 11, &u32::MAX.to_be_bytes())),
        ("memory (KiB)", u64::from(u32::MAX))
    );
    assert_eq!(
        refuse(&with_field(&backup, 15, &1000u32.to_be_bytes())),
        ("pass count", 1000)
    );
    assert_eq!(
        refuse(&with_field(&backup, 15, &0u32.to_be_bytes())),
        ("pass count", 0)
    );
    assert_eq!(
        refuse(&with_field(&backup, 19, &64u32.to_be_bytes())),
        ("lane count", 64)
    );
    assert_eq!(
        refuse(&with_field(&backup, 10, &[2])),
        ("key-derivation function", 2)
    );
    assert_eq!(refuse(&with_field(&backup, 23, &[4])), ("salt length", 4));
    let e = open_backup(&with_field(&backup, 15, &1000u32.to_be_bytes()), "x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the backup's pass count is 1000, outside the accepted range 1 to 16; refusing before deriving a key"
    );
}

#[test]
fn versions_and_magic() {
    let backup = seal_backup_with(&store(), "versions and magic", CHEAP, &mut OsRandom).unwrap();
    assert!(matches!(
        open_backup(
            &with_field(&backup, 8, &4u16.to_be_bytes()),
            "versions and magic"
        ),
        Err(Error::UnsupportedVersion(4))
    ));
    assert!(matches!(
        open_backup(&with_field(&backup, 8, &0u16.to_be_bytes()), "x"),
        Err(Error::Corrupt { .. })
    ));
    let e = open_backup(b"PK\x03\x04 a zip file", "x").unwrap_err();
    assert_eq!(
        e.to_string(),
        "not a valid backup, or corrupt or truncated: it does not start with the backup magic 'OMKEYBAK'"
    );
}

#[test]
fn short_passwords_are_refused_for_new_backups() {
    let e = seal_backup_with(&store(), "seven!!", CHEAP, &mut OsRandom).unwrap_err();
    assert!(matches!(
        e,
        Error::PasswordTooShort {
            length: 7,
            minimum: 8
        }
    ));
    // Eight characters, not eight bytes.
    assert!(seal_backup_with(&store(), "ééééééé", CHEAP, &mut OsRandom).is_err());
    assert!(seal_backup_with(&store(), "éééééééé", CHEAP, &mut OsRandom).is_ok());
}

#[test]
fn parameters_cannot_be_written_out_of_policy_either() {
    let huge = KdfParams {
        memory_kib: u32::MAX,
        passes: 1,
        lanes: 1,
    };
    assert!(matches!(
        seal_backup_with(&store(), "long enough", huge, &mut OsRandom),
        Err(Error::OutOfPolicy { .. })
    ));
}

/// A random source that fails, as a broken one would.
struct Broken;
impl RandomSource for Broken {
    fn fill(&mut self, _: &mut [u8]) -> opsmgr_securestorage::Result<()> {
        Err(Error::Random("unavailable".into()))
    }
}

#[test]
fn a_failing_random_source_is_an_error_not_a_weak_backup() {
    assert!(matches!(
        seal_backup_with(&store(), "long enough", CHEAP, &mut Broken),
        Err(Error::Random(_))
    ));
    assert!(matches!(
        KeyStore::generate(UNIX_EPOCH, &mut Broken),
        Err(Error::Random(_))
    ));
}

#[test]
fn more_work_than_the_readers_policy_is_refused_before_deriving() {
    let backup = seal_backup_with(&store(), "work budget please", CHEAP, &mut OsRandom).unwrap();
    let work =
        |b: &[u8], policy: &ReadPolicy| match open_backup_with(b, "work budget please", policy) {
            Err(Error::WorkOutOfPolicy {
                memory_kib, passes, ..
            }) => (memory_kib, passes),
            other => panic!("{other:?}"),
        };
    // The hostile header: 4 GiB × 16 passes, within the hard limits, refused by default.
    let hostile = with_field(
        &with_field(&backup, 11, &(4u32 << 20).to_be_bytes()),
        15,
        &16u32.to_be_bytes(),
    );
    assert!(inspect_backup(&hostile).is_ok(), "within the hard limits");
    assert_eq!(work(&hostile, &ReadPolicy::DEFAULT), (4 << 20, 16));
    let e = open_backup(&hostile, "work budget please").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the backup asks for 4096 MiB × 16 passes of key derivation, out of policy (at most 1024 MiB and 4096 MiB·passes); refusing before deriving a key"
    );
    // 1 GiB is within the memory bound, but not 1 GiB × 5 passes.
    let long = with_field(
        &with_field(&backup, 11, &(1u32 << 20).to_be_bytes()),
        15,
        &5u32.to_be_bytes(),
    );
    assert_eq!(work(&long, &ReadPolicy::DEFAULT), (1 << 20, 5));

    // A trusted file above a tight policy opens once the policy is raised.
    let two_mib = KdfParams {
        memory_kib: 2048,
        passes: 2,
        lanes: 1,
    };
    let trusted = seal_backup_with(&store(), "work budget please", two_mib, &mut OsRandom).unwrap();
    assert_eq!(work(&trusted, &ReadPolicy::max_memory_mib(1)), (2048, 2));
    assert!(
        open_backup_with(
            &trusted,
            "work budget please",
            &ReadPolicy::max_memory_mib(2)
        )
        .is_ok()
    );
    // The default parameters are within the default policy, with room for 16 times the work.
    assert!(ReadPolicy::DEFAULT.check(&KdfParams::DEFAULT).is_ok());
    assert_eq!(ReadPolicy::max_memory_mib(1024), ReadPolicy::DEFAULT);
}

#[test]
fn which_parameters_are_below_the_writers() {
    let d = KdfParams::DEFAULT;
    assert!(d.below(&d).is_empty());
    assert_eq!(CHEAP.below(&d), ["memory", "passes"]);
    let more_lanes = KdfParams { lanes: 8, ..d };
    assert!(d.below(&more_lanes).is_empty(), "lanes are not a cost");
    let longer = KdfParams { passes: 4, ..d };
    assert_eq!(d.below(&longer), ["passes"]);
    assert!(longer.below(&d).is_empty());
}

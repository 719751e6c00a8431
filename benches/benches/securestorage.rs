//! Backup and restore at the default Argon2id parameters (64 MiB, 3 passes, 4 lanes), and
//! sealing and opening Run As secrets with the key store.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opsmgr_securestorage::backup::{open_backup, open_backup_with_passwords, seal_backup};
use opsmgr_securestorage::custody::{Custodian, seal_custody};
use opsmgr_securestorage::format::{KdfParams, ReadPolicy};
use opsmgr_securestorage::keystore::KeyStore;
use opsmgr_securestorage::random::OsRandom;

fn securestorage(c: &mut Criterion) {
    let store = match KeyStore::generate(SystemTime::now(), &mut OsRandom) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let password = "a long enough passphrase";

    let mut backup = c.benchmark_group("backup-default-params");
    backup
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    backup.bench_function("backup", |b| {
        b.iter(|| seal_backup(black_box(&store), password, &mut OsRandom))
    });
    let sealed = match seal_backup(&store, password, &mut OsRandom) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    backup.bench_function("restore", |b| {
        b.iter(|| open_backup(black_box(&sealed), password))
    });
    // 3-of-5 custody: a backup derives five keys (one per custodian), a restore three.
    let names = ["Alice", "Bob", "Carol", "Dave", "Eve"];
    let passwords: Vec<String> = names
        .iter()
        .map(|n| format!("{n}'s long enough passphrase"))
        .collect();
    let custodians: Vec<Custodian<'_>> = names
        .iter()
        .zip(&passwords)
        .map(|(label, password)| Custodian { label, password })
        .collect();
    backup.bench_function("backup-3-of-5", |b| {
        b.iter(|| {
            seal_custody(
                black_box(&store),
                &custodians,
                3,
                KdfParams::DEFAULT,
                &mut OsRandom,
            )
        })
    });
    let custody = match seal_custody(&store, &custodians, 3, KdfParams::DEFAULT, &mut OsRandom) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let three: Vec<&str> = passwords[1..4].iter().map(String::as_str).collect();
    backup.bench_function("restore-3-of-5", |b| {
        b.iter(|| open_backup_with_passwords(black_box(&custody), &three, &ReadPolicy::DEFAULT))
    });
    backup.finish();

    let mut secrets = c.benchmark_group("secrets");
    for size in [64usize, 1024, 16 * 1024] {
        let secret = vec![0x5a; size];
        secrets.throughput(Throughput::Elements(1));
        secrets.bench_with_input(BenchmarkId::new("seal", size), &secret, |b, s| {
            b.iter(|| store.seal(black_box(s), &mut OsRandom))
        });
        let blob = match store.seal(&secret, &mut OsRandom) {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        secrets.bench_with_input(BenchmarkId::new("open", size), &blob, |b, blob| {
            b.iter(|| store.open(black_box(blob)))
        });
    }
    secrets.finish();
}

criterion_group!(benches, securestorage);
criterion_main!(benches);

//! The agent side of enrollment: key generation per key type, kept apart from signing the
//! PKCS#10 request; and what the CA does first with a request it receives: parse + verify.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use opsmgr_ca::request::{
    KeyType, PolicyOptions, PrivateKey, RequestPolicy, build_request, parse_policy, parse_request,
    request_to_pem, verify_request,
};

const TYPES: [(&str, &str); 4] = [
    ("ecdsa-p256", "KeyAlgorithm = ECDSA_P256"),
    ("rsa-2048", "KeyLength = 2048"),
    ("rsa-3072", "KeyLength = 3072"),
    ("rsa-4096", "KeyLength = 4096"),
];

fn policy(key_line: &str) -> RequestPolicy {
    let inf = format!(
        "[NewRequest]\r\nSubject = \"CN=agent01.company.local\"\r\n{key_line}\r\nMachineKeySet = TRUE\r\n"
    );
    match parse_policy(inf.as_bytes(), "bench.inf", PolicyOptions::default()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn key(kind: KeyType) -> PrivateKey {
    match PrivateKey::generate(kind) {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

fn certificates(c: &mut Criterion) {
    let mut keygen = c.benchmark_group("keygen");
    keygen
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for (name, line) in TYPES {
        let kind = policy(line).key;
        keygen.bench_function(name, |b| b.iter(|| PrivateKey::generate(black_box(kind))));
    }
    keygen.finish();

    let mut sign = c.benchmark_group("request");
    for (name, line) in TYPES {
        let policy = policy(line);
        let key = key(policy.key);
        sign.bench_with_input(BenchmarkId::new("sign", name), &key, |b, key| {
            b.iter(|| build_request(black_box(&policy), key))
        });
        let pem = match build_request(&policy, &key).and_then(|r| request_to_pem(&r)) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        sign.bench_with_input(BenchmarkId::new("parse+verify", name), &pem, |b, pem| {
            b.iter(|| parse_request(black_box(pem.as_bytes())).and_then(|r| verify_request(&r)))
        });
    }
    sign.finish();
}

criterion_group!(benches, certificates);
criterion_main!(benches);

//! An operator acting on the CA while a batch runs: `om-certutil -resubmit` (or `-deny`) of a
//! request the batch is about to issue. The batch reports it for that request and finishes the
//! others; nothing is issued twice.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::sync::Once;
use std::time::SystemTime;

use opsmgr_ca::authority::{Authority, Disposition, Filter, InitOptions};
use opsmgr_ca::dropfolder::{Outcome, ProcessOptions, Stage, process_share};
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy, request_to_pem};

#[test]
fn an_operator_resubmitting_during_a_batch_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca_dir = dir.path().join("ca");
    let mut ca = Authority::init(&ca_dir, &InitOptions::default(), now).unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let hosts = ["a.company.local", "b.company.local", "c.company.local"];
    for host in hosts {
        let inf = format!("[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\n");
        let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
        let key = PrivateKey::generate(policy.key).unwrap();
        let pem = request_to_pem(&build_request(&policy, &key).unwrap()).unwrap();
        std::fs::write(share.join(format!("{host}.req")), pem).unwrap();
    }
    // Between recording and issuing, the operator issues one request and denies another from
    // a second connection (another process, in life).
    let once = Once::new();
    let progress = |stage: Stage, _: usize, _: usize| {
        if stage == Stage::Sign {
            once.call_once(|| {
                let mut operator = Authority::open(&ca_dir, None).unwrap();
                operator.resubmit(1, SystemTime::now()).unwrap();
                operator.deny(2, "the operator said no").unwrap();
            });
        }
    };
    let options = ProcessOptions {
        issue: true,
        ..ProcessOptions::default()
    };
    let summary = process_share(&mut ca, &share, &options, now, &progress).unwrap();
    let by_host = |h: &str| {
        summary
            .files
            .iter()
            .find(|f| f.host.as_deref() == Some(h))
            .unwrap()
            .clone()
    };
    let a = by_host(hosts[0]);
    assert_eq!(a.result, Outcome::Issued, "{a:?}");
    assert!(a.message.contains("an operator changed request 1"), "{a:?}");
    let b = by_host(hosts[1]);
    assert_eq!(b.result, Outcome::Denied, "{b:?}");
    assert!(b.message.contains("it is denied now"), "{b:?}");
    assert_eq!(by_host(hosts[2]).result, Outcome::Issued);
    // One certificate per issued request, the operator's for a.
    let issued = ca
        .list(&Filter {
            disposition: Some(Disposition::Issued),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(issued.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 3]);
    let on_disk = std::fs::read(share.join(format!("{}.cer", hosts[0]))).unwrap();
    let cert = opsmgr_ca::cert::CertInfo::parse(&on_disk).unwrap();
    assert_eq!(Some(cert.der), issued[0].certificate);
}

//! An operator acting on the CA while a batch runs: `om-certutil -resubmit` (or `-deny`, or
//! `-revoke`) of a request the batch is about to issue. The operator's verb waits for the
//! batch (the CA's lock), then acts on what the batch did: nothing is issued twice, and no
//! revocation is lost to a batch that read the database before it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::SystemTime;

use opsmgr_ca::Error;
use opsmgr_ca::authority::{Authority, Disposition, Filter, InitOptions};
use opsmgr_ca::dropfolder::{Outcome, ProcessOptions, Stage, process_share};
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy, request_to_pem};

#[test]
fn an_operator_acting_during_a_batch_waits_for_it() {
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
    let batch_done = Arc::new(AtomicBool::new(false));
    let outcome: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let operator = Mutex::new(None);
    let once = Once::new();
    let progress = |stage: Stage, finished: usize, total: usize| {
        // The last write is reported while the batch still holds the CA's lock: from here on
        // an operator may act. (Marking the end after process_share returned would race with
        // an operator let in by the lock's release.)
        if stage == Stage::Write && finished == total {
            batch_done.store(true, Ordering::SeqCst);
        }
        if stage == Stage::Sign {
            once.call_once(|| {
                let (dir, done, outcome) = (ca_dir.clone(), batch_done.clone(), outcome.clone());
                *operator.lock().unwrap() = Some(std::thread::spawn(move || {
                    let mut op = Authority::open(&dir, None).unwrap();
                    let resubmitted = op.resubmit(1, SystemTime::now());
                    let after = done.load(Ordering::SeqCst);
                    outcome
                        .lock()
                        .unwrap()
                        .push((format!("{resubmitted:?}"), after));
                    let denied = op.deny(2, "the operator said no");
                    outcome
                        .lock()
                        .unwrap()
                        .push((format!("{denied:?}"), done.load(Ordering::SeqCst)));
                    assert!(matches!(resubmitted, Err(Error::NotPending(1))));
                    assert!(matches!(denied, Err(Error::NotPending(2))));
                }));
            });
        }
    };
    let options = ProcessOptions {
        issue: true,
        ..ProcessOptions::default()
    };
    let summary = process_share(&mut ca, &share, &options, now, &progress).unwrap();
    assert!(
        batch_done.load(Ordering::SeqCst),
        "the batch reported its last write"
    );
    operator.lock().unwrap().take().unwrap().join().unwrap();
    for (what, after) in outcome.lock().unwrap().iter() {
        assert!(after, "the operator acted before the batch ended: {what}");
    }
    for h in hosts {
        let f = summary
            .files
            .iter()
            .find(|f| f.host.as_deref() == Some(h))
            .unwrap();
        assert_eq!(f.result, Outcome::Issued, "{f:?}");
    }
    // One certificate per request.
    let issued = ca
        .list(&Filter {
            disposition: Some(Disposition::Issued),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(issued.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
}

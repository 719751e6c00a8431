//! The batch's pure core: from the files read and what the database holds, what to do with
//! each file ([`plan`]); from what the database holds after the batch's transactions, where
//! each file stands ([`outcomes`]) and the count ([`summarize`]). No I/O: the shell
//! ([`super::process_share`]) reads, records, signs, writes and moves.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::time::SystemTime;

use super::{FileOutcome, Outcome, Summary};
use crate::authority::{
    Assessed, Context, Decided, Decision, Disposition, Earlier, Record, decide,
};
use crate::text::escape_control;

/// Why a file of the share is not a request the CA records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its name is not UTF-8.
    NameNotUtf8,
    /// Its name is not `<FQDN>.req`.
    BadName { file: String, why: String },
    /// It could not be read (not a regular file, too large, gone).
    NotRead { file: String, why: String },
    /// Its content is not a request.
    NotARequest(String),
    /// Its request is for another host than its name says.
    NameMismatch { common_name: String, file: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NameNotUtf8 => f.write_str("the file name is not valid UTF-8"),
            Refusal::BadName { file, why } => {
                write!(f, "the file name '{file}' is not <FQDN>.req: {why}")
            }
            Refusal::NotRead { file, why } => write!(f, "{file} was not read: {why}"),
            Refusal::NotARequest(why) => f.write_str(&escape_control(why)),
            Refusal::NameMismatch { common_name, file } => write!(
                f,
                "the request is for {} but the file is named {file}: a host may only request its own name",
                escape_control(common_name)
            ),
        }
    }
}

/// A request file after reading and review.
#[derive(Debug)]
pub(crate) struct Reviewed {
    /// The name as the file system has it.
    pub(crate) raw: OsString,
    /// The name for people (escaped).
    pub(crate) file: String,
    /// When it arrived under its name (its change time).
    pub(crate) arrived: SystemTime,
    pub(crate) read: Read,
}

#[derive(Debug)]
pub(crate) enum Read {
    /// Modified too recently.
    Settling,
    /// Not a request this CA records, and why.
    Refused(Refusal),
    /// A request, with the policy's answer.
    Readable(Box<Readable>),
}

#[derive(Debug)]
pub(crate) struct Readable {
    pub(crate) req: Assessed,
    /// The host, lower case: the file's name, which is the request's common name.
    pub(crate) host: String,
    /// The host as the file's name spells it (the certificate and bundle are named so).
    pub(crate) spelled: String,
}

impl Readable {
    /// Whether the file is named exactly as the request spells its common name: the host's
    /// own file (a copy under another case is someone else's).
    fn own_spelling(&self) -> bool {
        self.req
            .host
            .as_ref()
            .is_some_and(|h| h.as_str() == self.spelled)
    }
}

/// What the plan does with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Left for the next run.
    Wait,
    /// Refused before the database.
    Refuse(Refusal),
    /// The same PKCS #10 request as the file named (processed in its place).
    Duplicate { of: String },
    /// Recorded (or found on record) with this decision. A request on record that is no
    /// longer pending keeps its state whatever the decision says.
    Record(Decided),
}

/// The order the batch considers files in: the earliest arrival first, then the host's own
/// spelling, then the name.
fn order(reviewed: &[Reviewed]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..reviewed.len()).collect();
    let own = |r: &Reviewed| match &r.read {
        Read::Readable(x) => x.own_spelling(),
        _ => false,
    };
    order.sort_by(|&a, &b| {
        let (x, y) = (&reviewed[a], &reviewed[b]);
        (x.arrived, !own(x), &x.raw).cmp(&(y.arrived, !own(y), &y.raw))
    });
    order
}

/// The plan: what to do with each file, from what was read and what the database holds
/// (`contexts[i]` for each readable file). `issue`: approved requests are issued now;
/// `operator_only`: hosts (lower case) issued only by an operator.
pub(crate) fn plan(
    reviewed: &[Reviewed],
    contexts: &[Option<Context>],
    operator_only: &HashSet<String>,
    issue: bool,
    now: SystemTime,
) -> Vec<Step> {
    let mut steps: Vec<Option<Step>> = vec![None; reviewed.len()];
    let mut first_of: HashMap<&[u8], usize> = HashMap::new();
    let mut hosts: HashMap<&str, (Earlier, Option<&[u8]>)> = HashMap::new();
    for i in order(reviewed) {
        let r = &reviewed[i];
        let step = match &r.read {
            Read::Settling => Step::Wait,
            Read::Refused(why) => Step::Refuse(why.clone()),
            Read::Readable(x) => {
                if let Some(&first) = first_of.get(x.req.inner_sha256.as_slice()) {
                    steps[i] = Some(Step::Duplicate {
                        of: reviewed[first].file.clone(),
                    });
                    continue;
                }
                first_of.insert(&x.req.inner_sha256, i);
                let ctx = contexts[i].clone().unwrap_or_default();
                let state = hosts.entry(&x.host).or_insert((Earlier::default(), None));
                let key = x.req.key.as_ref().map(|k| k.sha256.as_slice());
                let mut earlier = state.0.clone();
                if earlier.other_key.is_some() && state.1 == key {
                    // The earlier request of the batch has this very key.
                    earlier.other_key = None;
                }
                let on_record = ctx
                    .own
                    .as_ref()
                    .is_some_and(|r| r.disposition != Disposition::Pending);
                let mut decided = decide(
                    &x.req,
                    &ctx,
                    &earlier,
                    issue,
                    operator_only.contains(&x.host),
                    now,
                );
                if on_record {
                    // What is on record stands (an operator's -resubmit or -deny, or an
                    // earlier run): nothing is signed again, and no race is reported.
                    decided.decision = Decision::Wait;
                }
                if !on_record {
                    if decided.decision == Decision::Issue {
                        state.0.issued = true;
                    }
                    if state.0.other_key.is_none() && x.req.review.is_ok() {
                        state.0.other_key = Some(r.file.clone());
                        state.1 = key;
                    }
                }
                Step::Record(decided)
            }
        };
        steps[i] = Some(step);
    }
    steps.into_iter().map(|s| s.unwrap_or(Step::Wait)).collect()
}

/// Where each file stands, from its step and its record after the batch's transactions
/// (`records[i]`), with what happened on the way (`notes[i]`: a race with an operator, a
/// serial collision). `settle_seconds` is said to files left for the next run.
pub(crate) fn outcomes(
    reviewed: &[Reviewed],
    steps: &[Step],
    records: &[Option<Record>],
    notes: &HashMap<usize, String>,
    settle_seconds: u64,
) -> Vec<FileOutcome> {
    reviewed
        .iter()
        .zip(steps)
        .enumerate()
        .map(|(i, (r, step))| {
            let host = match &r.read {
                Read::Readable(x) => Some(x.spelled.clone()),
                _ => None,
            };
            let record = records[i].as_ref();
            let (result, message, hold) = match (step, record) {
                (Step::Wait, _) => (
                    Outcome::Waiting,
                    format!("modified less than {settle_seconds} s ago: left for the next run"),
                    None,
                ),
                (Step::Refuse(why), _) => (Outcome::Rejected, why.to_string(), None),
                (Step::Duplicate { of }, _) => (
                    Outcome::Duplicate,
                    format!(
                        "the same request as {of}, which this batch processed; this copy was not"
                    ),
                    None,
                ),
                (Step::Record(decided), Some(rec)) => {
                    let mut message = rec.message.clone();
                    if let Some(note) = notes.get(&i) {
                        message = format!("{note}. {message}");
                    }
                    let hold = match &decided.decision {
                        Decision::Hold(h) if rec.disposition == Disposition::Pending => {
                            Some(h.clone())
                        }
                        _ => None,
                    };
                    let result = match rec.disposition {
                        Disposition::Issued => Outcome::Issued,
                        Disposition::Pending => {
                            if let Some(h) = &hold {
                                let said = h.to_string();
                                if !message.contains(&said) {
                                    message = format!("Held: {said}. {message}");
                                }
                            }
                            Outcome::Pending
                        }
                        Disposition::Denied => Outcome::Denied,
                        Disposition::Revoked => {
                            message = format!(
                                "its certificate (serial {}) was revoked",
                                rec.serial.as_deref().unwrap_or("?")
                            );
                            Outcome::Revoked
                        }
                    };
                    (result, message, hold)
                }
                (Step::Record(_), None) => (Outcome::Rejected, "not recorded".to_owned(), None),
            };
            FileOutcome {
                file: r.file.clone(),
                host,
                id: record.map(|rec| rec.id),
                result,
                message,
                hold,
            }
        })
        .collect()
}

/// The batch's count.
pub(crate) fn summarize(files: Vec<FileOutcome>) -> Summary {
    let mut summary = Summary {
        processed: files.len(),
        ..Summary::default()
    };
    for f in &files {
        match f.result {
            Outcome::Issued => summary.issued += 1,
            Outcome::Pending => summary.pending += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Waiting | Outcome::Failed => summary.waiting += 1,
            Outcome::Denied | Outcome::Rejected | Outcome::Revoked => summary.rejected += 1,
        }
    }
    summary.files = files;
    summary
}

/// Why a request is held, as the batch's hold (for [`Hold`]'s users).
#[cfg(test)]
fn hold_of(step: &Step) -> Option<&crate::authority::Hold> {
    match step {
        Step::Record(Decided {
            decision: Decision::Hold(h),
            ..
        }) => Some(h),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use std::time::Duration;

    use super::*;
    use crate::authority::{Claim, Denial, Hold, Issuer, RevocationReason};
    use crate::cert::CertInfo;
    use crate::request::{
        KeyType, PolicyOptions, PrivateKey, ReceivedRequest, build_request, parse_policy,
        request_der_to_pem, request_to_pem, wrap_renewal,
    };

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    /// A request for `cn` with a fresh key, asking for `extra` names too.
    fn request(cn: &str, extra: &[&str]) -> (PrivateKey, Vec<u8>) {
        let mut inf =
            format!("[NewRequest]\r\nSubject = \"CN={cn}\"\r\nKeyAlgorithm = ECDSA_P256\r\n");
        if !extra.is_empty() {
            inf.push_str("[Extensions]\r\n2.5.29.17 = \"{text}\"\r\n");
            for n in extra {
                inf.push_str(&format!("_continue_ = \"dns={n}&\"\r\n"));
            }
        }
        let policy = parse_policy(inf.as_bytes(), "t.inf", PolicyOptions::default()).unwrap();
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let pem = request_to_pem(&build_request(&policy, &key).unwrap()).unwrap();
        (key, pem.into_bytes())
    }

    fn file(issuer: &Issuer, name: &str, bytes: &[u8], arrived: u64) -> Reviewed {
        let req = issuer.assess(&ReceivedRequest::parse(bytes).unwrap(), now());
        let stem = &name[..name.len() - 4];
        Reviewed {
            raw: name.into(),
            file: name.into(),
            arrived: SystemTime::UNIX_EPOCH + Duration::from_secs(arrived),
            read: Read::Readable(Box::new(Readable {
                req,
                host: stem.to_ascii_lowercase(),
                spelled: stem.into(),
            })),
        }
    }

    /// An issued record for `host` holding `cert`.
    fn issued(id: i64, host: &str, cert: &CertInfo) -> Record {
        Record {
            id,
            received: now(),
            requester: format!("{host}.req"),
            request_sha256: String::new(),
            inner_sha256: None,
            key_sha256: None,
            subject: format!("CN={host}"),
            common_name: Some(host.into()),
            key: Some("ECDSA P-256".into()),
            requested_names: vec![host.into()],
            certified_names: cert.dns_names.clone(),
            renews: None,
            superseded_by: None,
            disposition: Disposition::Issued,
            message: "Issued".into(),
            serial: Some(cert.serial_hex()),
            certificate: Some(cert.der.clone()),
            not_after: Some(cert.not_after),
            revoked_at: None,
            revocation_reason: None,
        }
    }

    fn pending(id: i64, host: &str) -> Record {
        Record {
            disposition: Disposition::Pending,
            serial: None,
            certificate: None,
            not_after: None,
            certified_names: Vec::new(),
            message: "Taken Under Submission".into(),
            ..issued(id, host, &first_cert().1)
        }
    }

    fn issuer() -> Issuer {
        crate::authority::test_issuer(1)
    }

    /// The issuer, and a certificate it issued for agent07 with its key.
    fn first_cert() -> (PrivateKey, CertInfo) {
        thread_local! {
            static FIRST: (PrivateKey, CertInfo) = {
                let issuer = crate::authority::test_issuer(1);
                let (key, bytes) = request("agent07.company.local", &[]);
                let a = issuer
                    .review(&ReceivedRequest::parse(&bytes).unwrap(), now())
                    .unwrap();
                let signed = issuer.sign(&a).unwrap();
                (key, CertInfo::parse(&signed.der).unwrap())
            };
        }
        FIRST.with(|f| {
            (
                PrivateKey::from_pkcs8_der(&f.0.to_pkcs8_der().unwrap()).unwrap(),
                f.1.clone(),
            )
        })
    }

    fn renewal(cn: &str, extra: &[&str], old_key: &PrivateKey, old: &CertInfo) -> Vec<u8> {
        let mut inf =
            format!("[NewRequest]\r\nSubject = \"CN={cn}\"\r\nKeyAlgorithm = ECDSA_P256\r\n");
        if !extra.is_empty() {
            inf.push_str("[Extensions]\r\n2.5.29.17 = \"{text}\"\r\n");
            for n in extra {
                inf.push_str(&format!("_continue_ = \"dns={n}&\"\r\n"));
            }
        }
        let policy = parse_policy(inf.as_bytes(), "t.inf", PolicyOptions::default()).unwrap();
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let req = build_request(&policy, &key).unwrap();
        let der = wrap_renewal(&req, &old.der, old_key, now()).unwrap();
        request_der_to_pem(&der).unwrap().into_bytes()
    }

    fn ctx_for(host_records: Vec<Record>, claimed: Option<Record>) -> Option<Context> {
        Some(Context {
            host_records,
            claimed,
            ..Context::default()
        })
    }

    fn run(files: &[Reviewed], contexts: &[Option<Context>], issue: bool) -> Vec<Step> {
        plan(files, contexts, &HashSet::new(), issue, now())
    }

    #[test]
    fn first_requests_wait_or_issue_as_asked_and_copies_are_duplicates() {
        let issuer = issuer();
        let (_, bytes) = request("agent01.company.local", &[]);
        let files = [
            file(&issuer, "agent01.company.local.req", &bytes, 10),
            file(&issuer, "AGENT01.company.local.req", &bytes, 5),
        ];
        let ctxs = [Some(Context::default()), Some(Context::default())];
        let steps = run(&files, &ctxs, false);
        // The copy arrived first, but the host's own spelling wins among copies only at the
        // same arrival: the earlier file is processed.
        assert!(matches!(&steps[1], Step::Record(d) if d.decision == Decision::Wait));
        assert_eq!(
            steps[0],
            Step::Duplicate {
                of: "AGENT01.company.local.req".into()
            }
        );
        let steps = run(&files, &ctxs, true);
        assert!(matches!(&steps[1], Step::Record(d) if d.decision == Decision::Issue));
        // Same arrival: the host's own spelling first.
        let files = [
            file(&issuer, "AGENT01.company.local.req", &bytes, 5),
            file(&issuer, "agent01.company.local.req", &bytes, 5),
        ];
        let steps = run(&files, &ctxs, true);
        assert!(matches!(&steps[1], Step::Record(d) if d.decision == Decision::Issue));
        assert!(matches!(&steps[0], Step::Duplicate { .. }));
    }

    /// A request an operator issued (or denied) before the batch is not signed again under
    /// `--issue`, and no race with the operator is reported: what is on record stands.
    #[test]
    fn what_an_operator_decided_before_the_batch_stands() {
        let issuer = issuer();
        let (_, bytes) = request("agent01.company.local", &[]);
        let f = [file(&issuer, "agent01.company.local.req", &bytes, 1)];
        let (_, cert) = first_cert();
        for own in [
            issued(4, "agent01.company.local", &cert),
            Record {
                disposition: Disposition::Denied,
                ..pending(4, "agent01.company.local")
            },
        ] {
            let ctx = Some(Context {
                own: Some(own.clone()),
                ..Context::default()
            });
            let steps = run(&f, std::slice::from_ref(&ctx), true);
            assert!(
                matches!(&steps[0], Step::Record(d) if d.decision == Decision::Wait),
                "{:?}: {steps:?}",
                own.disposition
            );
            // A pending one is still issued.
            let ctx = Some(Context {
                own: Some(pending(4, "agent01.company.local")),
                ..Context::default()
            });
            let steps = run(&f, &[ctx], true);
            assert!(matches!(&steps[0], Step::Record(d) if d.decision == Decision::Issue));
        }
    }

    #[test]
    fn the_earliest_request_for_a_host_wins_and_the_later_one_names_it() {
        let issuer = issuer();
        let (_, victim) = request("agent06.company.local", &[]);
        let (_, attacker) = request("AGENT06.company.local", &[]);
        // The attacker's file sorts first by name but arrived later.
        let files = [
            file(&issuer, "AGENT06.company.local.req", &attacker, 20),
            file(&issuer, "agent06.company.local.req", &victim, 10),
        ];
        let ctxs = [Some(Context::default()), Some(Context::default())];
        let steps = run(&files, &ctxs, true);
        assert!(matches!(&steps[1], Step::Record(d) if d.decision == Decision::Issue));
        assert_eq!(
            hold_of(&steps[0]),
            Some(&Hold::IssuedInBatch {
                host: "AGENT06.company.local".into()
            })
        );
        // Without --issue neither is issued; the later one names the earlier.
        let steps = run(&files, &ctxs, false);
        assert!(matches!(&steps[1], Step::Record(d) if d.decision == Decision::Wait));
        assert_eq!(
            hold_of(&steps[0]),
            Some(&Hold::EarlierInBatch {
                host: "AGENT06.company.local".into(),
                file: "agent06.company.local.req".into()
            })
        );
        // The victim's request already pending from an earlier run: the later one names it.
        let ctx = ctx_for(vec![pending(3, "agent06.company.local")], None);
        let steps = run(&files[..1], &[ctx], true);
        assert!(matches!(
            hold_of(&steps[0]),
            Some(Hold::PendingOther { id: 3, .. })
        ));
    }

    #[test]
    fn a_host_with_a_current_certificate_is_not_reissued_without_proof() {
        let issuer = issuer();
        let (_, cert) = first_cert();
        let (_, bytes) = request("agent07.company.local", &[]);
        let f = [file(&issuer, "agent07.company.local.req", &bytes, 1)];
        let ctx = ctx_for(vec![issued(1, "agent07.company.local", &cert)], None);
        let steps = run(&f, &[ctx], true);
        assert!(matches!(
            hold_of(&steps[0]),
            Some(Hold::HoldsCertificate { serial, .. }) if *serial == cert.serial_hex()
        ));
        // An expired or superseded certificate is no longer current: issued as asked.
        let mut old = issued(1, "agent07.company.local", &cert);
        old.superseded_by = Some(9);
        let steps = run(&f, &[ctx_for(vec![old], None)], true);
        assert!(matches!(&steps[0], Step::Record(d) if d.decision == Decision::Issue));
    }

    #[test]
    fn a_renewal_proved_with_the_current_certificate_is_issued_at_once() {
        let issuer = issuer();
        let (key, cert) = first_cert();
        let bytes = renewal("agent07.company.local", &[], &key, &cert);
        let f = [file(&issuer, "agent07.company.local.req", &bytes, 1)];
        let current = issued(1, "agent07.company.local", &cert);
        let steps = run(
            &f,
            &[ctx_for(vec![current.clone()], Some(current.clone()))],
            false,
        );
        let Step::Record(d) = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(d.decision, Decision::Issue);
        assert_eq!(d.renews, Some(1));

        // Superseded (its successor was revoked, say): never proves again.
        let mut superseded = current.clone();
        superseded.superseded_by = Some(2);
        let steps = run(
            &f,
            &[ctx_for(vec![superseded.clone()], Some(superseded))],
            false,
        );
        assert!(
            matches!(&steps[0], Step::Record(d) if d.decision == Decision::Wait && d.renews.is_none())
        );
        let mut revoked = current.clone();
        revoked.disposition = Disposition::Revoked;
        revoked.revocation_reason = Some(RevocationReason::Superseded);
        let successor = issued(2, "agent07.company.local", &cert);
        let mut successor = successor;
        successor.serial = Some("02".into());
        let steps = run(
            &f,
            &[ctx_for(vec![revoked.clone(), successor], Some(revoked))],
            true,
        );
        assert!(matches!(
            hold_of(&steps[0]),
            Some(Hold::ProofFails { why, .. }) if why.contains("was revoked")
        ));
    }

    #[test]
    fn a_renewal_that_widens_its_names_or_keeps_its_key_waits() {
        let issuer = issuer();
        let (key, cert) = first_cert();
        let current = issued(1, "agent07.company.local", &cert);
        let wide = renewal(
            "agent07.company.local",
            &["mgt01.company.local", "rms.company.local"],
            &key,
            &cert,
        );
        // With the policy allowing the suffix, the names are approved: the renewal still
        // waits, naming them.
        let mut config = issuer.config().clone();
        config.allowed_dns_suffixes = vec![".company.local".into()];
        let mut wide_issuer = crate::authority::test_issuer(1);
        wide_issuer.set_config(config);
        let f = [file(&wide_issuer, "agent07.company.local.req", &wide, 1)];
        let steps = run(
            &f,
            &[ctx_for(vec![current.clone()], Some(current.clone()))],
            true,
        );
        assert_eq!(
            hold_of(&steps[0]),
            Some(&Hold::NewNames {
                serial: cert.serial_hex(),
                names: vec!["mgt01.company.local".into(), "rms.company.local".into()]
            })
        );
        // The same key as the certificate it renews.
        let mut same = issued(1, "agent07.company.local", &cert);
        same.id = 1;
        let bytes = renewal("agent07.company.local", &[], &key, &cert);
        let f = [file(&issuer, "agent07.company.local.req", &bytes, 1)];
        let ctx = Context {
            host_records: vec![current.clone()],
            claimed: Some(current.clone()),
            key_records: vec![same],
            ..Context::default()
        };
        let steps = run(&f, &[Some(ctx)], true);
        assert!(matches!(hold_of(&steps[0]), Some(Hold::KeyReused { .. })));
    }

    #[test]
    fn a_claim_this_ca_did_not_sign_proves_nothing() {
        let issuer = issuer();
        let (key, cert) = first_cert();
        let bytes = renewal("agent07.company.local", &[], &key, &cert);
        // Another CA's issuer (another root key): the certificate is not its.
        let other = crate::authority::test_issuer(2);
        let f = [file(&other, "agent07.company.local.req", &bytes, 1)];
        let Read::Readable(x) = &f[0].read else {
            panic!()
        };
        assert!(
            matches!(&x.req.claim, Some(Claim::Broken(why)) if why.contains("was not issued by this CA"))
        );
        let current = issued(1, "agent07.company.local", &cert);
        let steps = run(&f, &[ctx_for(vec![current.clone()], Some(current))], true);
        assert!(matches!(hold_of(&steps[0]), Some(Hold::ProofFails { .. })));
        // The same file read by the CA that issued the certificate proves it.
        let f = [file(&issuer, "agent07.company.local.req", &bytes, 1)];
        let Read::Readable(x) = &f[0].read else {
            panic!()
        };
        assert!(matches!(&x.req.claim, Some(Claim::Signed { .. })));
    }

    #[test]
    fn a_compromised_key_is_denied_whatever_it_proves() {
        let issuer = issuer();
        let (_, bytes) = request("agent08.company.local", &[]);
        let f = [file(&issuer, "agent08.company.local.req", &bytes, 1)];
        let ctx = Context {
            compromised: Some(("0A".into(), now())),
            ..Context::default()
        };
        let steps = run(&f, &[Some(ctx)], true);
        assert!(matches!(
            &steps[0],
            Step::Record(d) if matches!(&d.decision, Decision::Deny(Denial::CompromisedKey { serial, .. }) if serial == "0A")
        ));
    }

    #[test]
    fn servers_wait_for_an_operator_and_refusals_and_settling_files_pass_through() {
        let issuer = issuer();
        let (_, bytes) = request("mgt01.company.local", &[]);
        let mut files = vec![file(&issuer, "mgt01.company.local.req", &bytes, 1)];
        files.push(Reviewed {
            raw: "bad.req".into(),
            file: "bad.req".into(),
            arrived: now(),
            read: Read::Refused(Refusal::NotARequest("not PEM".into())),
        });
        files.push(Reviewed {
            raw: "slow.req".into(),
            file: "slow.req".into(),
            arrived: now(),
            read: Read::Settling,
        });
        let servers: HashSet<String> = ["mgt01.company.local".to_owned()].into();
        let steps = plan(
            &files,
            &[Some(Context::default()), None, None],
            &servers,
            true,
            now(),
        );
        assert!(matches!(
            hold_of(&steps[0]),
            Some(Hold::OperatorOnly { .. })
        ));
        assert_eq!(
            steps[1],
            Step::Refuse(Refusal::NotARequest("not PEM".into()))
        );
        assert_eq!(steps[2], Step::Wait);
    }

    #[test]
    fn outcomes_come_from_the_records_and_count() {
        let issuer = issuer();
        let (_, bytes) = request("agent09.company.local", &[]);
        let files = [file(&issuer, "agent09.company.local.req", &bytes, 1)];
        let hold = Hold::IssuedInBatch {
            host: "agent09.company.local".into(),
        };
        let steps = [Step::Record(Decided {
            decision: Decision::Hold(hold.clone()),
            renews: None,
            notes: Vec::new(),
        })];
        let records = [Some(pending(12, "agent09.company.local"))];
        let out = outcomes(&files, &steps, &records, &HashMap::new(), 2);
        assert_eq!(out[0].result, Outcome::Pending);
        assert_eq!(out[0].id, Some(12));
        assert_eq!(out[0].hold, Some(hold));
        assert!(
            out[0].message.starts_with("Held: another request"),
            "{}",
            out[0].message
        );
        // An operator issued it meanwhile: the record says so.
        let (_, cert) = first_cert();
        let records = [Some(issued(12, "agent09.company.local", &cert))];
        let notes: HashMap<usize, String> =
            [(0, "an operator changed request 12".to_owned())].into();
        let out = outcomes(&files, &steps, &records, &notes, 2);
        assert_eq!(out[0].result, Outcome::Issued);
        assert!(out[0].message.starts_with("an operator changed"));
        let summary = summarize(out);
        assert_eq!(
            (summary.processed, summary.issued, summary.pending),
            (1, 1, 0)
        );
    }
}

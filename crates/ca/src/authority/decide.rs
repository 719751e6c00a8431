//! What the CA does with a reviewed request, given what its database holds: the one decision
//! `certreq -submit` and the drop folder's batch share. Pure: the caller gathers the records
//! ([`Context`]) and carries out the [`Decision`].
//!
//! The rules, in order:
//! 1. a key revoked for keyCompromise is denied, whatever else the request proves;
//! 2. a management server or gateway waits for an operator;
//! 3. a renewal is issued at once only when its wrapper's signature proves the key of its
//!    host's current certificate (issued by this CA, by signature; not revoked, superseded or
//!    expired), with SHA-256 or better, asking for no name that certificate lacks, for a key
//!    never certified before;
//! 4. a request for a host that holds a current certificate waits (a copied request under
//!    the host's name must not replace the host's key), and so does one for a host whose last
//!    certificate was revoked for keyCompromise;
//! 5. the earliest request for a host wins: a later one with another key waits, naming the
//!    earlier, whether the earlier is on record or earlier in the same batch;
//! 6. one certificate per host per batch.

use std::time::{Duration, SystemTime};

use opsmgr_hostname::HostName;

use super::db::{Disposition, Record};
use super::issuer::{Approved, Denial, Issuer, KeyFacts, Note, key_facts};
use crate::cert::CertInfo;
use crate::request::{Hash, ReceivedRequest};
use crate::text::escape_control;
use crate::time::{human, whole};

/// How far a renewal's signing time may lie ahead of the CA's clock.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a request the policy approves still waits for an operator (`Display`: the reason in
/// words; text from requests escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hold {
    /// A management server or gateway: only an operator issues its certificate.
    OperatorOnly {
        /// The host.
        host: String,
    },
    /// Another request for the host was issued in this batch.
    IssuedInBatch {
        /// The host.
        host: String,
    },
    /// The host holds a current certificate, and this request does not prove its key.
    HoldsCertificate {
        /// The host.
        host: String,
        /// The current certificate's serial number.
        serial: String,
        /// Its end of validity.
        not_after: SystemTime,
    },
    /// A renewal whose proof fails while its host holds a current certificate.
    ProofFails {
        /// The host.
        host: String,
        /// The current certificate's serial number.
        current: String,
        /// Why the proof fails.
        why: String,
    },
    /// A renewal signed with SHA-1 (older Windows CSPs): too weak to issue on without a look.
    WeakProof {
        /// The certificate it renews.
        serial: String,
    },
    /// A renewal asking for names its host's current certificate does not hold.
    NewNames {
        /// The certificate it renews.
        serial: String,
        /// The names it adds.
        names: Vec<String>,
    },
    /// A request for a key this CA certified before (a renewal must bring a new key).
    KeyReused {
        /// The certificate that has it.
        serial: String,
    },
    /// A request for a key another request on record already has.
    KeyInUse {
        /// That request.
        id: i64,
    },
    /// An earlier request for the host, with another key, is pending.
    PendingOther {
        /// The host.
        host: String,
        /// The earlier request.
        id: i64,
        /// Its requester (the file it came in).
        requester: String,
    },
    /// The host's last certificate was revoked for keyCompromise: whoever held its key may
    /// be the one asking now.
    HostCompromised {
        /// The host.
        host: String,
        /// The revoked certificate.
        serial: String,
    },
    /// An earlier request of this batch is for the host, with another key.
    EarlierInBatch {
        /// The host.
        host: String,
        /// The earlier request's file.
        file: String,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::OperatorOnly { host } => write!(
                f,
                "{host} is a management server or gateway: only an operator issues its certificate"
            ),
            Hold::IssuedInBatch { host } => {
                write!(f, "another request for {host} was issued in this batch")
            }
            Hold::HoldsCertificate {
                host,
                serial,
                not_after,
            } => write!(
                f,
                "{host} already holds certificate {serial} from this CA, valid until {}; a renewal proved with that certificate's key is issued at once, anything else waits for an operator",
                human(*not_after)
            ),
            Hold::ProofFails { host, current, why } => write!(
                f,
                "{host} holds certificate {current} and this renewal's proof fails: {why}"
            ),
            Hold::WeakProof { serial } => write!(
                f,
                "the renewal of certificate {serial} is signed with SHA-1, too weak to issue on without an operator"
            ),
            Hold::NewNames { serial, names } => write!(
                f,
                "the renewal of certificate {serial} asks for names it does not hold: {}",
                names.join(", ")
            ),
            Hold::KeyReused { serial } => write!(
                f,
                "its key is the key of certificate {serial}, already certified: a renewal brings a new key"
            ),
            Hold::KeyInUse { id } => write!(
                f,
                "request {id} on record has the same key with another request"
            ),
            Hold::PendingOther {
                host,
                id,
                requester,
            } => write!(
                f,
                "request {id} for {host} ({requester}) came first and is pending with another key: an operator decides between the two"
            ),
            Hold::HostCompromised { host, serial } => write!(
                f,
                "{host}'s certificate {serial} was revoked for keyCompromise: a new certificate for it waits for an operator who knows the machine was cleaned"
            ),
            Hold::EarlierInBatch { host, file } => write!(
                f,
                "{file} came first with a request for {host} with another key: an operator decides between the two"
            ),
        }
    }
}

/// A renewal's claim, checked as far as the request itself and the CA's key can check it.
#[derive(Debug, Clone)]
pub(crate) enum Claim {
    /// The wrapper's signature verifies with the key of `cert`, which this CA signed.
    Signed {
        cert: Box<CertInfo>,
        digest: Hash,
        signing_time: Option<SystemTime>,
    },
    /// Why it proves nothing.
    Broken(String),
}

/// A request read and reviewed: what the decision and the database need of it.
#[derive(Debug, Clone)]
pub(crate) struct Assessed {
    /// The bytes as received (DER).
    pub(crate) der: Vec<u8>,
    /// SHA-256 of `der`.
    pub(crate) sha256: Vec<u8>,
    /// SHA-256 of the PKCS #10 request (inside a renewal's wrapper).
    pub(crate) inner_sha256: Vec<u8>,
    /// The subject, RFC 4514, escaped.
    pub(crate) subject: String,
    /// The common name as the request spells it, when it is a host name.
    pub(crate) host: Option<HostName>,
    /// The key, when it can be read.
    pub(crate) key: Option<KeyFacts>,
    /// The names asked for, escaped.
    pub(crate) requested: Vec<String>,
    /// The policy's answer.
    pub(crate) review: Result<Approved, Denial>,
    /// A renewal's claim.
    pub(crate) claim: Option<Claim>,
}

impl Issuer {
    /// Reviews `received` and checks what a renewal's wrapper claims (its signature, and that
    /// this CA signed the certificate it names). Pure.
    pub(crate) fn assess(&self, received: &ReceivedRequest, now: SystemTime) -> Assessed {
        use sha2::{Digest, Sha256};
        let info = &received.request().info;
        let review = self.review(received, now);
        let host = info
            .subject
            .common_name()
            .ok()
            .flatten()
            .and_then(|cn| HostName::new(String::from(cn)).ok());
        let key = match &review {
            Ok(a) => Some(KeyFacts {
                sha256: a.key_sha256().to_vec(),
                description: a.key_description().to_owned(),
            }),
            Err(_) => key_facts(&info.public_key).ok().map(|(_, k, _)| k),
        };
        let requested = match &review {
            Ok(a) => a.requested_names().to_vec(),
            Err(_) => host.iter().map(|h| h.to_string()).collect(),
        };
        let claim = received.renewal().map(|proof| match proof {
            Err(why) => Claim::Broken(why.reason().to_owned()),
            Ok(p) => match self.issued(&p.certificate) {
                Err(why) => Claim::Broken(format!(
                    "certificate {} was not issued by this CA: {}",
                    p.certificate.serial_hex(),
                    crate::error::error_chain(&why)
                )),
                Ok(()) => Claim::Signed {
                    cert: Box::new(p.certificate.clone()),
                    digest: p.digest,
                    signing_time: p.signing_time,
                },
            },
        });
        Assessed {
            der: received.der().to_vec(),
            sha256: Sha256::digest(received.der()).to_vec(),
            inner_sha256: Sha256::digest(received.inner_der()).to_vec(),
            subject: escape_control(&info.subject.to_string()),
            host,
            key,
            requested,
            review,
            claim,
        }
    }
}

/// What the database holds that bears on one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// Every record for the request's host, by id.
    pub(crate) host_records: Vec<Record>,
    /// Every record with the request's key, by id.
    pub(crate) key_records: Vec<Record>,
    /// The record of the certificate a renewal claims (by its serial number).
    pub(crate) claimed: Option<Record>,
    /// When the key was revoked for keyCompromise, with the certificate's serial number.
    pub(crate) compromised: Option<(String, SystemTime)>,
    /// This request's own record, when it was received before.
    pub(crate) own: Option<Record>,
}

/// What the batch decided before this request, for the same host.
#[derive(Debug, Clone, Default)]
pub(crate) struct Earlier {
    /// A request for the host was issued in this batch.
    pub(crate) issued: bool,
    /// The first request for the host in this batch with another key: its file.
    pub(crate) other_key: Option<String>,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Denied, for this reason.
    Deny(Denial),
    /// Pending, for an operator, for this reason.
    Hold(Hold),
    /// Pending: nothing stands in its way, but issuing waits for an operator's word (or
    /// `--issue`).
    Wait,
    /// Issued now.
    Issue,
}

/// A decision with what it learned on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decided {
    pub(crate) decision: Decision,
    /// The request whose certificate a renewal renews, proved.
    pub(crate) renews: Option<i64>,
    /// Notes to add to the approved request's: what a renewal proved, or why its proof did
    /// not count.
    pub(crate) notes: Vec<Note>,
}

/// Why a renewal's claim is no proof of the host's current certificate, given the records.
pub(crate) fn claim_problem(
    claim: &Claim,
    host: &HostName,
    ctx: &Context,
    now: SystemTime,
) -> Result<(Record, Hash), String> {
    let (cert, digest, signing_time) = match claim {
        Claim::Broken(why) => return Err(why.clone()),
        Claim::Signed {
            cert,
            digest,
            signing_time,
        } => (cert, *digest, *signing_time),
    };
    let serial = cert.serial_hex();
    let record = ctx
        .claimed
        .as_ref()
        .filter(|r| r.certificate.as_deref() == Some(cert.der.as_slice()))
        .ok_or_else(|| format!("certificate {serial} is not on this CA's record"))?;
    if record.common_name.as_deref().is_none_or(|cn| host != cn) {
        return Err(format!(
            "certificate {serial} is {}'s, not {host}'s",
            record.common_name.as_deref().unwrap_or("another host")
        ));
    }
    match record.disposition {
        Disposition::Revoked => return Err(format!("certificate {serial} was revoked")),
        Disposition::Issued => {}
        other => return Err(format!("request {} is {other}", record.id)),
    }
    if let Some(newer) = record.superseded_by {
        return Err(format!(
            "certificate {serial} was superseded by request {newer}'s certificate"
        ));
    }
    if record.not_after.is_none_or(|t| t < whole(now)) {
        return Err(format!("certificate {serial} has expired"));
    }
    if let Some(at) = signing_time
        && (at > now + CLOCK_SKEW || at < cert.not_before)
    {
        return Err(format!(
            "it was signed on {}, outside certificate {serial}'s life",
            human(at)
        ));
    }
    Ok((record.clone(), digest))
}

/// The decision for `req` (its record `ctx.own` when it was received before), after what the
/// batch did for its host (`earlier`). `issue`: the caller issues approved requests now
/// (`--issue`, or the policy's auto-issue); `operator_only`: its host is a server.
pub(crate) fn decide(
    req: &Assessed,
    ctx: &Context,
    earlier: &Earlier,
    issue: bool,
    operator_only: bool,
    now: SystemTime,
) -> Decided {
    let mut decided = Decided {
        decision: Decision::Wait,
        renews: None,
        notes: Vec::new(),
    };
    let approved = match &req.review {
        Err(denial) => {
            decided.decision = Decision::Deny(denial.clone());
            return decided;
        }
        Ok(a) => a,
    };
    let host = approved.host().clone();
    let spelled = host.to_string();
    if let Some((serial, revoked_at)) = &ctx.compromised {
        decided.decision = Decision::Deny(Denial::CompromisedKey {
            serial: serial.clone(),
            revoked_at: *revoked_at,
        });
        return decided;
    }
    let own_id = ctx.own.as_ref().map(|r| r.id);
    let is_other = |r: &Record| Some(r.id) != own_id;
    let certified_before = ctx.key_records.iter().find(|r| {
        is_other(r) && matches!(r.disposition, Disposition::Issued | Disposition::Revoked)
    });
    let current = ctx
        .host_records
        .iter()
        .filter(|r| is_other(r) && r.is_current(now))
        .max_by_key(|r| r.id);
    let hold = |h: Hold| Decision::Hold(h);

    decided.decision = if operator_only {
        hold(Hold::OperatorOnly { host: spelled })
    } else if earlier.issued {
        hold(Hold::IssuedInBatch { host: spelled })
    } else {
        let proof = req
            .claim
            .as_ref()
            .map(|claim| claim_problem(claim, &host, ctx, now));
        match (proof, current) {
            (Some(Ok((renewed, digest))), _) => {
                let serial = renewed.serial.clone().unwrap_or_default();
                decided.renews = Some(renewed.id);
                decided.notes.push(Note::Renews {
                    serial: serial.clone(),
                });
                let held: Vec<String> = renewed
                    .certified_names
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .collect();
                let new_names: Vec<String> = approved
                    .dns_names()
                    .iter()
                    .filter(|n| !held.contains(&n.to_lowercase()))
                    .map(ToString::to_string)
                    .collect();
                if digest == Hash::Sha1 {
                    hold(Hold::WeakProof { serial })
                } else if !new_names.is_empty() {
                    hold(Hold::NewNames {
                        serial,
                        names: new_names,
                    })
                } else if let Some(r) = certified_before {
                    hold(Hold::KeyReused {
                        serial: r.serial.clone().unwrap_or_default(),
                    })
                } else {
                    Decision::Issue
                }
            }
            // A key certified before is named first: it is what the operator must see.
            (_, Some(_)) if certified_before.is_some() => hold(Hold::KeyReused {
                serial: certified_before
                    .and_then(|r| r.serial.clone())
                    .unwrap_or_default(),
            }),
            (Some(Err(why)), Some(cur)) => hold(Hold::ProofFails {
                host: spelled,
                current: cur.serial.clone().unwrap_or_default(),
                why,
            }),
            (proof, Some(cur)) => {
                debug_assert!(proof.is_none());
                hold(Hold::HoldsCertificate {
                    host: spelled,
                    serial: cur.serial.clone().unwrap_or_default(),
                    not_after: cur.not_after.unwrap_or(now),
                })
            }
            (proof, None) => {
                if let Some(Err(why)) = proof {
                    decided.notes.push(Note::ProofIgnored(why));
                }
                let pending_first = ctx.host_records.iter().find(|r| {
                    r.disposition == Disposition::Pending
                        && own_id.is_none_or(|own| r.id < own)
                        && ctx.key_records.iter().all(|k| k.id != r.id)
                });
                let last = ctx
                    .host_records
                    .iter()
                    .filter(|r| is_other(r) && r.serial.is_some())
                    .max_by_key(|r| r.id);
                if let Some(r) = certified_before {
                    hold(Hold::KeyReused {
                        serial: r.serial.clone().unwrap_or_default(),
                    })
                } else if let Some(r) = last.filter(|r| {
                    r.revocation_reason == Some(super::reason::RevocationReason::KeyCompromise)
                }) {
                    hold(Hold::HostCompromised {
                        host: spelled,
                        serial: r.serial.clone().unwrap_or_default(),
                    })
                } else if let Some(r) = ctx
                    .key_records
                    .iter()
                    .find(|r| is_other(r) && own_id.is_none_or(|own| r.id < own))
                {
                    hold(Hold::KeyInUse { id: r.id })
                } else if let Some(r) = pending_first {
                    hold(Hold::PendingOther {
                        host: spelled,
                        id: r.id,
                        requester: r.requester.clone(),
                    })
                } else if let Some(file) = &earlier.other_key {
                    hold(Hold::EarlierInBatch {
                        host: spelled,
                        file: file.clone(),
                    })
                } else if issue {
                    Decision::Issue
                } else {
                    Decision::Wait
                }
            }
        }
    };
    decided
}

//! The seed's automation: a share where hosts drop `<FQDN>.req`, processed in batches
//! ([`process_share`]) into `<FQDN>.cer` and `<FQDN>.bundle`.
//!
//! Everything in the share is written by machines that want certificates, some of them in
//! untrusted networks, so nothing in it is trusted: every name is opened relative to a handle
//! on the share without following links ([`opsmgr_fsutil::untrusted`]), only regular files are
//! read, through a bound on the read itself, and a link, a pipe or a folder where a request or
//! a certificate should be is refused for that host alone. One bad file never stops a batch.
//!
//! A batch is a pure plan over what was read and what the database holds, carried out by a
//! thin shell, in an order that a kill at any point is finished by running it again:
//! 1. every request is read and reviewed (in parallel): the file name must be the request's
//!    common name before anything else, so a copy of another host's request under a wrong
//!    name is refused and never matched against the database;
//! 2. the plan: duplicates by content are processed once; a host that already holds a valid
//!    certificate, or a server the operator must approve, is held pending with the reason;
//! 3. all new requests are recorded in one transaction (a request seen before finds its
//!    record), the ones to issue signed (in parallel) and recorded in a second; a request an
//!    operator issued or denied meanwhile is reported as such, not an error;
//! 4. certificates and bundles are written from the database, each replaced by a rename of a
//!    fresh temporary file, then the file system is flushed once;
//! 5. only then do requests move to `processed/` (or `rejected/`, beside a `.reason.txt`).
//!
//! A request still in the share after a kill is found in the database on the next run: it is
//! never issued twice, and its files are compared with the database and rewritten when they
//! differ. Nothing reaches the disk that the database does not hold first.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use opsmgr_fsutil::untrusted::{EntryKind, ReadRefusal, UntrustedDir};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::agent::write_bundle;
use crate::authority::{
    Approved, Authority, Denial, Disposition, Issue, Issuer, NewRequest, Record, Signed,
};
use crate::cert::{CertInfo, MAX_CERT_BYTES, certificate_to_pem};
use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::{MAX_REQUEST_BYTES, parse_request};

/// Where processed requests go, below the share.
pub const PROCESSED: &str = "processed";
/// Where refused requests go, below the share.
pub const REJECTED: &str = "rejected";
/// The lock two batches on one CA take turns with, in the CA's own folder (never in the share,
/// where anyone could plant something at its name).
pub const DROP_LOCK: &str = "dropfolder.lock";

/// How to process a share.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// Issue approved requests now, even when the CA's policy leaves them pending.
    pub issue: bool,
    /// Threads for reviewing and signing (0: all cores).
    pub jobs: usize,
    /// Only these host names (lower case) may enroll, when given (the management group's
    /// agents and servers). Every DNS name of a certificate must be one of them; a name that
    /// is another host's is dropped.
    pub allowed_hosts: Option<HashSet<String>>,
    /// Hosts (lower case) that are never issued from the share: management servers and
    /// gateways. Their requests stay pending for an operator's `-resubmit`.
    pub operator_only: HashSet<String>,
    /// A request modified less than this long ago is left for the next run (it may still be
    /// being copied in).
    pub settle: Duration,
}

/// The stages a batch reports progress for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading and reviewing request files.
    Review,
    /// Signing certificates.
    Sign,
    /// Writing certificates and bundles, moving requests.
    Write,
}

/// Where one request file stands after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// Its certificate and bundle are in the share; the request moved to `processed/`.
    Issued,
    /// Recorded and waiting for an operator (or for `--issue`); it stays in the share.
    Pending,
    /// Denied by the policy; moved to `rejected/`.
    Denied,
    /// Not a request this CA records (unreadable, misnamed, not a regular file...); moved to
    /// `rejected/` when it is a file.
    Rejected,
    /// Its certificate was revoked; moved to `rejected/`.
    Revoked,
    /// The same request as another file of the batch, which was processed; moved to
    /// `rejected/`.
    Duplicate,
    /// Modified moments ago: left for the next run.
    Waiting,
    /// Issued, but its files could not be written; it stays in the share for the next run.
    Failed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Issued => "issued",
            Outcome::Pending => "pending",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Revoked => "revoked",
            Outcome::Duplicate => "duplicate",
            Outcome::Waiting => "waiting",
            Outcome::Failed => "failed",
        })
    }
}

/// What happened to one request file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    /// The request file's name (control characters escaped).
    pub file: String,
    /// The host it is for, when known.
    pub host: Option<String>,
    /// The request id, when it was recorded.
    pub id: Option<i64>,
    /// Where it stands.
    pub result: Outcome,
    /// Why it was refused, or the CA's message (control characters escaped).
    pub message: String,
}

/// A batch's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Request files looked at.
    pub processed: usize,
    /// Certificates written (issued now or before).
    pub issued: usize,
    /// Requests left pending in the share.
    pub pending: usize,
    /// Requests moved to `rejected/` (denied, revoked or unreadable) or refused in place.
    pub rejected: usize,
    /// Copies of another request of the batch.
    pub duplicates: usize,
    /// Requests left for the next run: still settling, or issued with files not written.
    pub waiting: usize,
    /// Every file, in name order.
    pub files: Vec<FileOutcome>,
}

/// Text from the share or a request, safe for a terminal, a log line or a reason file:
/// control characters (and the Unicode line and bidirectional controls) become `\u{..}`.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        if c.is_control() || bidi {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// A request file after reading and review.
struct Reviewed {
    /// The name as the file system has it.
    raw: OsString,
    /// The name for people (escaped).
    file: String,
    read: Read,
}

enum Read {
    /// Modified too recently.
    Settling,
    /// Not a request this CA records, and why.
    Refused(String),
    /// A request, with the policy's answer.
    Readable(Box<Readable>),
}

struct Readable {
    der: Vec<u8>,
    digest: Vec<u8>,
    subject: String,
    /// The host, lower case: the file's name, which is the request's common name.
    host: String,
    /// The host as the file's name spells it (the certificate and bundle are named so).
    spelled: String,
    /// For a renewal, the certificate it proves to hold the key of (or why not).
    renewal: Option<std::result::Result<CertInfo, String>>,
    review: std::result::Result<Approved, Denial>,
}

/// What the plan does with one file.
enum Step {
    Wait,
    Refuse(String),
    Duplicate(String),
    /// Record (or find) the request; issue it when `issue` and it is pending.
    Record {
        issue: bool,
        /// Why it stays pending though it could be issued.
        hold: Option<String>,
    },
}

/// Runs `f` over `items` on `jobs` threads, results in input order.
fn par_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots.into_iter().flatten().collect()
}

fn io_err(dir: &UntrustedDir) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: dir.path().to_owned(),
        source,
    }
}

fn is_request_name(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.len() > 4 && !b.starts_with(b".") && b[b.len() - 4..].eq_ignore_ascii_case(b".req")
}

/// Reads one request file of the share and reviews it. The file name is the host's claim and
/// is checked first: a request whose common name is not its file's name is refused here,
/// before its content is compared with anything.
fn read_one(
    issuer: &Issuer,
    share: &UntrustedDir,
    raw: &OsStr,
    options: &ProcessOptions,
    settled_before: Option<SystemTime>,
    now: SystemTime,
) -> Read {
    let file = escape_control(&raw.to_string_lossy());
    let stem = match raw.to_str() {
        Some(name) => &name[..name.len() - 4],
        None => return Read::Refused("the file name is not valid UTF-8".into()),
    };
    if let Err(e) = check_dns_name(stem) {
        return Read::Refused(format!("the file name '{file}' is not <FQDN>.req: {e}"));
    }
    let bytes = match share.read_file(raw, MAX_REQUEST_BYTES, settled_before) {
        Ok(bytes) => bytes,
        Err(ReadRefusal::Settling) => return Read::Settling,
        Err(e) => return Read::Refused(format!("{file} was not read: {e}")),
    };
    let request = match parse_request(&bytes) {
        Ok(r) => r,
        Err(e) => return Read::Refused(e.to_string()),
    };
    let host = stem.to_ascii_lowercase();
    let mut review = issuer.review(&request, now);
    if let Ok(a) = &review
        && !a.common_name.eq_ignore_ascii_case(stem)
    {
        return Read::Refused(format!(
            "the request is for {} but the file is named {file}: a host may only request its own name",
            escape_control(&a.common_name)
        ));
    }
    if let (Ok(a), Some(allowed)) = (&mut review, &options.allowed_hosts) {
        if !allowed.contains(&host) {
            review = Err(Denial::NotInInventory(host.clone()));
        } else {
            // Every other DNS name would let this host speak for another: with an inventory,
            // a certificate names its own host only.
            let (keep, drop): (Vec<String>, Vec<String>) = std::mem::take(&mut a.dns_names)
                .into_iter()
                .partition(|n| n.eq_ignore_ascii_case(&host));
            a.dns_names = keep;
            for name in drop {
                a.notes.push(format!(
                    "alternative name '{name}' ignored: {}",
                    if allowed.contains(&name.to_ascii_lowercase()) {
                        "it is another host of the inventory"
                    } else {
                        "not in the inventory"
                    }
                ));
            }
        }
    }
    let renewal = request.renewal().cloned();
    if let (Ok(a), Some(Ok(old))) = (&mut review, &renewal) {
        a.notes.push(format!(
            "renews certificate {} (proved with its key)",
            old.serial_hex()
        ));
    }
    let der = request.der().to_vec();
    Read::Readable(Box::new(Readable {
        renewal,
        digest: Sha256::digest(&der).to_vec(),
        der,
        subject: escape_control(&request.request().info.subject.to_string()),
        host,
        spelled: stem.to_owned(),
        review,
    }))
}

/// The plan: what to do with each file, from what was read and what the database holds
/// (`known`: the records of requests seen before, by digest; `holders`: the valid
/// certificates of this CA, by host). Pure: no I/O.
fn plan(
    reviewed: &[Reviewed],
    known: &HashMap<Vec<u8>, Record>,
    holders: &HashMap<String, Record>,
    options: &ProcessOptions,
    issue: bool,
) -> Vec<Step> {
    // Of copies of one request, the one processed is the file named exactly as the request's
    // common name is spelled (the host's own file; a copy under another case is someone
    // else's), else the first in name order.
    let exact = |x: &Readable| x.review.as_ref().is_ok_and(|a| a.common_name == x.spelled);
    let mut chosen: HashMap<&[u8], (usize, bool)> = HashMap::new();
    for (i, r) in reviewed.iter().enumerate() {
        if let Read::Readable(x) = &r.read {
            let this = (i, exact(x));
            chosen
                .entry(&x.digest)
                .and_modify(|best| {
                    if this.1 && !best.1 {
                        *best = this;
                    }
                })
                .or_insert(this);
        }
    }
    let mut issuing: HashSet<&str> = HashSet::new();
    reviewed
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.read {
            Read::Settling => Step::Wait,
            Read::Refused(why) => Step::Refuse(why.clone()),
            Read::Readable(x) => {
                if let Some(&(first, _)) = chosen.get(x.digest.as_slice())
                    && first != i
                {
                    return Step::Duplicate(format!(
                        "the same request as {}, which this batch processed; this copy was not",
                        reviewed[first].file
                    ));
                }
                let pending = known
                    .get(&x.digest)
                    .is_none_or(|rec| rec.disposition == Disposition::Pending);
                let approved = x.review.is_ok();
                let hold = if !approved || !pending {
                    None
                } else if options.operator_only.contains(&x.host) {
                    Some(format!(
                        "{} is a management server or gateway: it is issued only by an operator (om-certutil -config CA -resubmit ID)",
                        x.host
                    ))
                } else if issuing.contains(x.host.as_str()) {
                    // One certificate per host per batch, renewals included.
                    Some(format!(
                        "another request for {} was issued in this batch",
                        x.host
                    ))
                } else if let Some(held) = holders.get(&x.host) {
                    let serial = held.serial.as_deref().unwrap_or("?");
                    match &x.renewal {
                        // A renewal proved with the key of the host's current certificate.
                        Some(Ok(old)) if held.certificate.as_ref() == Some(&old.der) => None,
                        Some(Ok(old)) => Some(format!(
                            "the renewal proves certificate {}, not {}'s current one ({serial}); an operator decides (om-certutil -config CA -resubmit ID)",
                            old.serial_hex(),
                            x.host
                        )),
                        Some(Err(why)) => Some(format!(
                            "{} already holds certificate {serial} and this renewal's proof fails: {}",
                            x.host,
                            escape_control(why)
                        )),
                        None => Some(format!(
                            "{} already holds certificate {serial} from this CA, valid until Unix time {}; renew with om-certreq -new -renew (proved with that certificate's key), or an operator decides (om-certutil -config CA -resubmit ID)",
                            x.host,
                            held.not_after.map_or(0, crate::time::seconds)
                        )),
                    }
                } else {
                    None
                };
                // A renewal proved with the current certificate's key is issued at once.
                let proven = matches!(
                    (&x.renewal, holders.get(&x.host)),
                    (Some(Ok(old)), Some(held)) if held.certificate.as_ref() == Some(&old.der)
                );
                let to_issue = (issue || proven) && approved && pending && hold.is_none();
                if to_issue {
                    issuing.insert(&x.host);
                }
                Step::Record {
                    issue: to_issue,
                    hold,
                }
            }
        })
        .collect()
}

fn pending_message(a: &Approved, hold: Option<&str>) -> String {
    let mut m = "Taken Under Submission".to_owned();
    if let Some(h) = hold {
        m.push_str(". Held: ");
        m.push_str(h);
    }
    if !a.notes.is_empty() {
        m.push_str(". ");
        m.push_str(&a.notes.join("; "));
    }
    m
}

/// The files of an issued record, written unless an earlier run wrote them the same.
fn write_outputs(
    share: &UntrustedDir,
    host: &str,
    record: &Record,
    root_der: &[u8],
    issued_before: bool,
) -> Result<()> {
    let der = record
        .certificate
        .as_deref()
        .ok_or_else(|| Error::Database(format!("request {} has no certificate", record.id)))?;
    let pem = certificate_to_pem(der)?;
    let bundle = write_bundle(der, root_der)?;
    for (ext, bytes) in [("cer", pem.as_bytes()), ("bundle", bundle.as_bytes())] {
        let name = OsString::from(format!("{host}.{ext}"));
        // Only a certificate issued by an earlier run can have its files already (a run
        // killed before the requests moved): a fresh one is written without a look.
        let same = issued_before
            && share
                .read_file(&name, MAX_CERT_BYTES, None)
                .is_ok_and(|old| old == bytes);
        if !same {
            share.replace_file(&name, bytes).map_err(|e| {
                let what = match share.kind(&name) {
                    Ok(Some(EntryKind::Dir)) => "a folder is in the way".to_owned(),
                    _ => e.to_string(),
                };
                Error::Certificate(format!("{host}.{ext} could not be written: {what}"))
            })?;
        }
    }
    Ok(())
}

/// A name in `dir` for `name` that nothing holds: itself, else `name.1`, `name.2`, ...
fn free_name(dir: &UntrustedDir, name: &OsStr) -> OsString {
    std::iter::once(name.to_owned())
        .chain((1..).map(|n| {
            let mut s = name.to_owned();
            s.push(format!(".{n}"));
            s
        }))
        .find(|candidate| matches!(dir.kind(candidate), Ok(None)))
        .unwrap_or_else(|| name.to_owned())
}

/// Moves a finished request out of the share; a name taken in the meantime gets the next
/// free one.
fn move_out(
    share: &UntrustedDir,
    raw: &OsStr,
    dir: &UntrustedDir,
    name: &OsStr,
) -> std::io::Result<OsString> {
    let mut last = None;
    for _ in 0..3 {
        let dest = free_name(dir, name);
        match share.move_into(raw, dir, &dest) {
            Ok(()) => return Ok(dest),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
}

/// Processes every `*.req` in `share` with the CA; see the module's description for the order
/// that makes a re-run after a kill finish the batch. `progress` is told each stage's
/// progress. Two batches on one CA take turns (a lock file in the CA's folder).
pub fn process_share(
    ca: &mut Authority,
    share: &std::path::Path,
    options: &ProcessOptions,
    now: SystemTime,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<Summary> {
    let lock_path = ca.dir().join(DROP_LOCK);
    let lock = opsmgr_fsutil::lock_exclusive(&lock_path).map_err(|source| Error::Io {
        path: lock_path.clone(),
        source,
    })?;
    let share = UntrustedDir::open(share).map_err(|source| Error::Io {
        path: share.to_owned(),
        source,
    })?;
    let processed = share.subdir(PROCESSED).map_err(io_err(&share))?;
    let rejected = share.subdir(REJECTED).map_err(io_err(&share))?;
    let jobs = if options.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.jobs
    };
    for dir in [&share, &processed, &rejected] {
        dir.remove_temporaries().map_err(io_err(dir))?;
    }
    let names: Vec<OsString> = share
        .names()
        .map_err(io_err(&share))?
        .into_iter()
        .filter(|n| is_request_name(n))
        .collect();
    let total = names.len();
    let settled_before = (!options.settle.is_zero()).then(|| now - options.settle);

    // 1. Read and review in parallel.
    let done = AtomicUsize::new(0);
    let issuer = ca.issuer();
    let reviewed: Vec<Reviewed> = par_map(&names, jobs, |raw| {
        let read = read_one(issuer, &share, raw, options, settled_before, now);
        progress(
            Stage::Review,
            done.fetch_add(1, Ordering::Relaxed) + 1,
            total,
        );
        Reviewed {
            raw: raw.clone(),
            file: escape_control(&raw.to_string_lossy()),
            read,
        }
    });

    // 2. The plan, from what the database holds now.
    let mut known = HashMap::new();
    let mut holders = HashMap::new();
    for r in &reviewed {
        if let Read::Readable(x) = &r.read {
            if let Some(rec) = ca.db().by_digest(&x.digest)? {
                known.insert(x.digest.clone(), rec);
            }
            if !holders.contains_key(&x.host)
                && let Some(rec) = ca.db().valid_certificate_for(&x.host, now)?
            {
                holders.insert(x.host.clone(), rec);
            }
        }
    }
    let issue = options.issue || ca.issuer().config().auto_issue;
    let steps = plan(&reviewed, &known, &holders, options, issue);

    // 3a. Record every new request in one transaction.
    let ids: Vec<Option<i64>> = ca.db_mut().transaction(|b| {
        reviewed
            .iter()
            .zip(&steps)
            .map(|(r, step)| match (&r.read, step) {
                (Read::Readable(x), Step::Record { hold, .. }) => {
                    let (disposition, message) = match &x.review {
                        Ok(a) => (Disposition::Pending, pending_message(a, hold.as_deref())),
                        Err(reason) => (Disposition::Denied, escape_control(&reason.to_string())),
                    };
                    b.insert(&NewRequest {
                        received: now,
                        requester: &r.file,
                        der: &x.der,
                        sha256: &x.digest,
                        subject: &x.subject,
                        common_name: Some(&x.host),
                        disposition,
                        message: &message,
                    })
                    .map(|(id, _)| Some(id))
                }
                _ => Ok(None),
            })
            .collect()
    })?;

    // 3b. Sign what the plan issues, in parallel; record in one transaction, each row on its
    // own: a request an operator issued or denied meanwhile is reported, not an error.
    let to_sign: Vec<(usize, &Approved)> = reviewed
        .iter()
        .zip(&steps)
        .enumerate()
        .filter_map(|(i, (r, step))| match (&r.read, step) {
            (Read::Readable(x), Step::Record { issue: true, .. }) => {
                x.review.as_ref().ok().map(|a| (i, a))
            }
            _ => None,
        })
        .collect();
    let signed_count = AtomicUsize::new(0);
    let issuer = ca.issuer();
    let signed: Vec<Result<Signed>> = par_map(&to_sign, jobs, |(_, approved)| {
        let s = issuer.sign(approved);
        progress(
            Stage::Sign,
            signed_count.fetch_add(1, Ordering::Relaxed) + 1,
            to_sign.len(),
        );
        s
    });
    let mut raced: HashMap<usize, String> = HashMap::new();
    if !to_sign.is_empty() {
        raced = ca.db_mut().transaction(|b| {
            let mut raced = HashMap::new();
            for ((i, a), s) in to_sign.iter().zip(signed) {
                let Some(id) = ids[*i] else { continue };
                let s = match s {
                    Ok(s) => s,
                    Err(e) => {
                        raced.insert(
                            *i,
                            format!("it could not be signed ({e}); it stays pending"),
                        );
                        continue;
                    }
                };
                let message = if a.notes.is_empty() {
                    "Issued".to_owned()
                } else {
                    format!("Issued. {}", a.notes.join("; "))
                };
                match b.issue(&Issue {
                    id,
                    serial: &s.serial,
                    certificate: &s.der,
                    not_after: s.not_after,
                    message: &message,
                }) {
                    Ok(()) => {}
                    Err(Error::NotPending(_)) => {
                        let now_is = b.get(id)?.map(|r| r.disposition);
                        raced.insert(
                            *i,
                            format!(
                                "an operator changed request {id} while this batch ran (it is {} now)",
                                now_is.map_or("gone".to_owned(), |d| d.to_string())
                            ),
                        );
                    }
                    Err(Error::SerialInUse(serial)) => {
                        raced.insert(
                            *i,
                            format!("serial number {serial} collided; it stays pending for the next run"),
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(raced)
        })?;
    }

    // 4. Outcomes from the database; files from the database (in parallel), one flush.
    let root_der = ca.issuer().root().der.clone();
    let mut outcomes: Vec<FileOutcome> = Vec::with_capacity(reviewed.len());
    let mut records: Vec<Option<Record>> = Vec::with_capacity(reviewed.len());
    for (i, (r, step)) in reviewed.iter().zip(&steps).enumerate() {
        let host = match &r.read {
            Read::Readable(x) => Some(x.spelled.clone()),
            _ => None,
        };
        let record = match ids[i] {
            Some(id) => ca.db().get(id)?,
            None => None,
        };
        let (result, message) = match (step, &record) {
            (Step::Wait, _) => (
                Outcome::Waiting,
                format!(
                    "modified less than {} s ago: left for the next run",
                    options.settle.as_secs()
                ),
            ),
            (Step::Refuse(why), _) => (Outcome::Rejected, escape_control(why)),
            (Step::Duplicate(why), _) => (Outcome::Duplicate, why.clone()),
            (Step::Record { hold, .. }, Some(rec)) => {
                let mut message = rec.message.clone();
                if let Some(note) = raced.get(&i) {
                    message = format!("{note}. {message}");
                }
                let result = match rec.disposition {
                    Disposition::Issued => Outcome::Issued,
                    Disposition::Pending => {
                        if let Some(h) = hold.as_deref().filter(|h| !message.contains(*h)) {
                            message = format!("Held: {h}. {message}");
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
                (result, message)
            }
            (Step::Record { .. }, None) => (Outcome::Rejected, "not recorded".to_owned()),
        };
        outcomes.push(FileOutcome {
            file: r.file.clone(),
            host,
            id: record.as_ref().map(|rec| rec.id),
            result,
            message,
        });
        records.push(record);
    }
    let outputs: Vec<(usize, String, &Record, bool)> = outcomes
        .iter()
        .zip(&records)
        .enumerate()
        .filter_map(|(i, (f, rec))| match (f.result, &f.host, rec) {
            (Outcome::Issued, Some(host), Some(rec)) => {
                let before = match &reviewed[i].read {
                    Read::Readable(x) => known
                        .get(&x.digest)
                        .is_some_and(|k| k.disposition == Disposition::Issued),
                    _ => false,
                };
                Some((i, host.clone(), rec, before))
            }
            _ => None,
        })
        .collect();
    let written = AtomicUsize::new(0);
    let write_results = par_map(&outputs, jobs, |(_, host, rec, before)| {
        let r = write_outputs(&share, host, rec, &root_der, *before);
        progress(
            Stage::Write,
            written.fetch_add(1, Ordering::Relaxed) + 1,
            outputs.len(),
        );
        r
    });
    for ((i, _, _, _), result) in outputs.iter().zip(write_results) {
        if let Err(e) = result {
            let o = &mut outcomes[*i];
            o.result = Outcome::Failed;
            o.message = format!(
                "issued, but {}; the request stays in the share for the next run",
                escape_control(&e.to_string())
            );
        }
    }
    share.sync().map_err(io_err(&share))?;

    // 5. Move the requests that are finished; one that cannot move is reported, not fatal.
    let mut summary = Summary {
        processed: total,
        ..Summary::default()
    };
    for (r, outcome) in reviewed.iter().zip(outcomes.iter_mut()) {
        let moved = match outcome.result {
            Outcome::Issued => {
                let stem = &r.raw.as_encoded_bytes()[..r.raw.len() - 4];
                let mut dest = OsString::from(String::from_utf8_lossy(stem).into_owned());
                dest.push(format!(".{}.req", outcome.id.unwrap_or(0)));
                move_out(&share, &r.raw, &processed, &dest).map(|_| ())
            }
            Outcome::Denied | Outcome::Rejected | Outcome::Revoked | Outcome::Duplicate => {
                reject(&share, &rejected, &r.raw, &outcome.message)
            }
            Outcome::Pending | Outcome::Waiting | Outcome::Failed => Ok(()),
        };
        if let Err(e) = moved {
            outcome.message = format!(
                "{}; the file could not be moved out of the share: {e}",
                outcome.message
            );
        }
        match outcome.result {
            Outcome::Issued => summary.issued += 1,
            Outcome::Pending => summary.pending += 1,
            Outcome::Duplicate => summary.duplicates += 1,
            Outcome::Waiting | Outcome::Failed => summary.waiting += 1,
            _ => summary.rejected += 1,
        }
    }
    summary.files = outcomes;
    drop(lock);
    Ok(summary)
}

/// Moves a refused entry to `rejected/` beside `<name>.reason.txt`, under a name whose reason
/// file is free too. A link, pipe or folder is moved as it is (a link is never followed), so
/// the share is left clean for the next run. The move comes first: a reason never stands
/// without its request.
fn reject(
    share: &UntrustedDir,
    rejected: &UntrustedDir,
    raw: &OsStr,
    reason: &str,
) -> std::io::Result<()> {
    let reason_of = |name: &OsStr| {
        let mut r = name.to_owned();
        r.push(".reason.txt");
        r
    };
    let mut last = None;
    for n in 0..64 {
        let mut dest = raw.to_owned();
        if n > 0 {
            dest.push(format!(".{n}"));
        }
        if !matches!(rejected.kind(&reason_of(&dest)), Ok(None)) {
            continue;
        }
        match share.move_into(raw, rejected, &dest) {
            Ok(()) => {
                return rejected.replace_file(
                    &reason_of(&dest),
                    format!("{}\n", escape_control(reason)).as_bytes(),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free name in rejected/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_unescaped() {
        assert_eq!(escape_control("ok.req"), "ok.req");
        assert_eq!(
            escape_control("a\nb\x1b[31mred\u{202e}"),
            "a\\u{a}b\\u{1b}[31mred\\u{202e}"
        );
    }

    #[test]
    fn request_names() {
        assert!(is_request_name(OsStr::new("host.company.local.REQ")));
        assert!(!is_request_name(OsStr::new(".hidden.req")));
        assert!(!is_request_name(OsStr::new(".req")));
        assert!(!is_request_name(OsStr::new("host.cer")));
    }
}

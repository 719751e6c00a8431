//! The seed's automation: a share where hosts drop `<FQDN>.req`, processed in batches
//! ([`process_share`]) into `<FQDN>.cer` and `<FQDN>.bundle` in the share, and the installers
//! a stock Windows agent runs, `<FQDN>.install.ps1` and `<FQDN>.install.cmd`
//! ([`crate::windows`]), in the CA's installer folder ([`Authority::installer_dir`]), which
//! the operator publishes read-only: a script an administrator runs never passes through a
//! folder anyone can write.
//!
//! Everything in the share is written by machines that want certificates, some of them in
//! untrusted networks, so nothing in it is trusted: every name is opened relative to a handle
//! on the share without following links ([`opsmgr_fsutil::untrusted`]), only regular files are
//! read, through a bound on the read itself, and a link, a pipe or a folder where a request or
//! a certificate should be is refused for that host alone; one planted at `processed/` or
//! `rejected/` is removed, never followed, and replaced by a real folder. One bad file never
//! stops a batch.
//!
//! A batch is a pure plan over what was read and what the database holds (the `plan` module:
//! the earliest request for a host wins, copies of one request are processed once, and what
//! the CA issues at once or holds for an operator is the decision `certreq -submit` makes
//! too, see [`crate::authority::Hold`]), carried out by a thin shell, in an order that
//! a kill at any point is finished by running it again:
//! 1. every request is read and reviewed (in parallel): the file name must be the request's
//!    common name before anything else, so a copy of another host's request under a wrong
//!    name is refused and never matched against the database;
//! 2. the plan, from what the database holds for each request's host, key and renewal claim;
//! 3. all new requests are recorded in one transaction (a request seen before finds its
//!    record), the ones to issue signed (in parallel) and recorded in a second; a request an
//!    operator issued or denied meanwhile is reported as such, not an error;
//! 4. certificates and bundles are written from the database, each replaced by a rename of a
//!    fresh temporary file, then the file system is flushed once;
//! 5. only then do requests move to `processed/` (or `rejected/`, beside a `.reason.txt`);
//! 6. the CRL is published when one is due.
//!
//! A request still in the share after a kill is found in the database on the next run: it is
//! never issued twice, and its files are compared with the database and rewritten when they
//! differ. Nothing reaches the disk that the database does not hold first.

mod files;
pub use files::is_request_name;
mod plan;

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use opsmgr_fsutil::untrusted::{EntryKind, UntrustedDir};
use serde::Serialize;

use crate::authority::{
    Approved, Authority, Decision, Disposition, Hold, Issue, NewRequest, Published, Record, Signed,
    issued_message, pending_message,
};
use crate::error::{Error, Result};
use crate::pool::par_map;
use files::{move_out, read_one, reject, write_outputs};
use plan::{Read, Reviewed, Step, outcomes, summarize};

/// Where processed requests go, below the share.
pub const PROCESSED: &str = "processed";
/// Where refused requests go, below the share.
pub const REJECTED: &str = "rejected";
/// The lock two batches on one CA take turns with, in the CA's own folder (never in the share,
/// where anyone could plant something at its name): the CA's lock, which an operator's verbs
/// take too ([`crate::authority::CA_LOCK`]).
pub const DROP_LOCK: &str = crate::authority::CA_LOCK;

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
    /// gateways. Their requests stay pending for an operator.
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
    /// Why a pending request waits for an operator, when something holds it.
    #[serde(skip)]
    pub hold: Option<Hold>,
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
    /// What was planted at `processed/` or `rejected/` and removed, or why either cannot be
    /// used.
    pub removed: Vec<String>,
    /// The CRL, when the batch published one.
    #[serde(skip)]
    pub crl: Option<Published>,
    /// Why a CRL that was due could not be published (the batch itself is done).
    pub crl_error: Option<String>,
    /// Finished requests that could not leave the share (each says why): the next run
    /// finds them on record.
    pub unmoved: usize,
}

fn io_err(dir: &UntrustedDir) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: dir.path().to_owned(),
        source,
    }
}

/// The share and its two sub-folders, a planted entry at either removed. A sub-folder that
/// cannot be made usable (an entry someone else owns in a sticky share, a folder without
/// permissions) does not stop the batch: it issues all the same, and the requests it would
/// have moved there stay in the share for the next run, each saying why.
struct Share {
    share: UntrustedDir,
    processed: std::result::Result<UntrustedDir, String>,
    rejected: std::result::Result<UntrustedDir, String>,
    removed: Vec<String>,
}

impl Share {
    fn open(path: &std::path::Path) -> Result<Self> {
        let share = UntrustedDir::open(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut removed = Vec::new();
        let mut sub = |name: &str| match share.subdir(name) {
            Ok((dir, gone)) => {
                if let Some(kind) = gone.filter(|k| *k != EntryKind::Dir) {
                    removed.push(format!(
                        "{kind} at {name}/ was removed and replaced by a folder"
                    ));
                }
                dir.remove_temporaries()
                    .map(|_| dir)
                    .map_err(|e| format!("{name}/ cannot be used: {e}"))
            }
            Err(e) => Err(format!("{name}/ cannot be used: {e}")),
        };
        let processed = sub(PROCESSED);
        let rejected = sub(REJECTED);
        share.remove_temporaries().map_err(io_err(&share))?;
        // Installers in the share (an earlier release wrote them there; anyone who can drop a
        // request can plant one) are removed: an administrator runs them, so they come only
        // from the CA's installer folder.
        for name in share.names().map_err(io_err(&share))? {
            let lower = name.to_string_lossy().to_ascii_lowercase();
            if (lower.ends_with(".install.ps1") || lower.ends_with(".install.cmd"))
                && matches!(
                    share.kind(&name),
                    Ok(Some(EntryKind::File | EntryKind::Symlink))
                )
                && share.remove(&name).is_ok()
            {
                removed.push(format!(
                    "the installer {} was removed from the share: installers are published from the CA's installer folder, never from the share",
                    crate::text::escape_control(&name.to_string_lossy())
                ));
            }
        }
        removed.extend(processed.as_ref().err().cloned());
        removed.extend(rejected.as_ref().err().cloned());
        Ok(Self {
            share,
            processed,
            rejected,
            removed,
        })
    }
}

/// Processes every `*.req` in `share` with the CA; see the module's description for the order
/// that makes a re-run after a kill finish the batch. `progress` is told each stage's
/// progress. Two batches on one CA take turns, and with an operator's verbs (the CA's lock).
pub fn process_share(
    ca: &mut Authority,
    share: &std::path::Path,
    options: &ProcessOptions,
    now: SystemTime,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<Summary> {
    ca.with_lock(|ca| batch(ca, share, options, now, progress))
}

/// The batch, under the CA's lock.
fn batch(
    ca: &mut Authority,
    share: &std::path::Path,
    options: &ProcessOptions,
    now: SystemTime,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<Summary> {
    let dirs = Share::open(share)?;
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut names: Vec<OsString> = dirs.share.names().map_err(io_err(&dirs.share))?;
    names.retain(|n| is_request_name(n));
    let settled_before = (!options.settle.is_zero()).then(|| now - options.settle);

    // 1. Read and review in parallel; 2. the plan, from what the database holds now.
    let issuer = ca.issuer();
    let reviewed: Vec<Reviewed> = counted(&names, jobs, Stage::Review, progress, |raw| {
        let allowed = options.allowed_hosts.as_ref();
        read_one(issuer, &dirs.share, raw, allowed, settled_before, now)
    });
    let readable: Vec<_> = reviewed
        .iter()
        .map(|r| match &r.read {
            Read::Readable(x) => Some(&x.req),
            _ => None,
        })
        .collect();
    let contexts = ca.contexts(&readable)?;
    let issue = options.issue || ca.issuer().config().auto_issue;
    let steps = plan::plan(&reviewed, &contexts, &options.operator_only, issue, now);

    // 3. Record, sign, issue; 4. outcomes and files from the database.
    let ids = record_new(ca, &reviewed, &steps, now)?;
    let to_sign = approvals(&reviewed, &steps);
    let issuer = ca.issuer();
    let signed = counted(&to_sign, jobs, Stage::Sign, progress, |(_, a)| {
        issuer.sign(a)
    });
    let notes = record_issued(ca, &to_sign, signed, &ids)?;
    let found: HashMap<i64, Record> = ca
        .records(&ids.iter().flatten().copied().collect::<Vec<_>>())?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let records: Vec<Option<Record>> = ids
        .iter()
        .map(|id| id.and_then(|id| found.get(&id).cloned()))
        .collect();
    let mut files = outcomes(
        &reviewed,
        &steps,
        &records,
        &notes,
        options.settle.as_secs(),
    );
    let pin = ca.issuer().root_pin();
    let installers = ca.installer_dir();
    let facts = files::CaFacts {
        root: &ca.issuer().root().der,
        pin: &pin,
        name: &ca.issuer().config().name,
        installers: &installers,
    };
    write_all(
        &dirs, &contexts, &records, &mut files, &facts, jobs, progress,
    );
    dirs.share.sync().map_err(io_err(&dirs.share))?;

    // 5. Move the finished requests; 6. the CRL.
    let mut unmoved = 0;
    for (r, outcome) in reviewed.iter().zip(files.iter_mut()) {
        if !move_finished(&dirs, r, outcome) {
            unmoved += 1;
        }
    }
    let mut summary = summarize(files);
    summary.unmoved = unmoved;
    summary.removed = dirs.removed;
    match ca.publish_crl_if_due(now) {
        Ok(crl) => summary.crl = crl,
        Err(e) => summary.crl_error = Some(crate::error::error_chain(&e)),
    }
    Ok(summary)
}

/// `f` over `items` on `jobs` threads, telling `progress` of each one done.
fn counted<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    stage: Stage,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let done = AtomicUsize::new(0);
    par_map(items, jobs, |item| {
        let r = f(item);
        progress(stage, done.fetch_add(1, Ordering::Relaxed) + 1, items.len());
        r
    })
}

/// Records every new request of the plan in one transaction (a request seen before finds its
/// record); the ids, by file.
fn record_new(
    ca: &mut Authority,
    reviewed: &[Reviewed],
    steps: &[Step],
    now: SystemTime,
) -> Result<Vec<Option<i64>>> {
    ca.db_mut().transaction(|b| {
        reviewed
            .iter()
            .zip(steps)
            .map(|(r, step)| {
                let (Read::Readable(x), Step::Record(decided)) = (&r.read, step) else {
                    return Ok(None);
                };
                let approved = x.req.review.as_ref().ok().map(|a| {
                    let mut a = a.clone();
                    a.note(decided.notes.iter().cloned());
                    a
                });
                let (disposition, message) = match (&decided.decision, &approved) {
                    (Decision::Deny(d), _) => (Disposition::Denied, d.to_string()),
                    (Decision::Hold(h), Some(a)) => {
                        (Disposition::Pending, pending_message(a, Some(h)))
                    }
                    (_, Some(a)) => (Disposition::Pending, pending_message(a, None)),
                    (_, None) => (Disposition::Pending, "Taken Under Submission".into()),
                };
                b.insert(&NewRequest {
                    received: now,
                    requester: &r.file,
                    der: &x.req.der,
                    sha256: &x.req.sha256,
                    inner_sha256: &x.req.inner_sha256,
                    key_sha256: x.req.key.as_ref().map(|k| k.sha256.as_slice()),
                    key_desc: x.req.key.as_ref().map(|k| k.description.as_str()),
                    requested_names: &x.req.requested,
                    subject: &x.req.subject,
                    common_name: Some(&x.spelled),
                    renews: decided.renews,
                    disposition,
                    message: &message,
                })
                .map(|(id, _)| Some(id))
            })
            .collect()
    })
}

/// The approved requests the plan issues, by file, with the plan's notes.
fn approvals(reviewed: &[Reviewed], steps: &[Step]) -> Vec<(usize, Approved)> {
    reviewed
        .iter()
        .zip(steps)
        .enumerate()
        .filter_map(|(i, (r, step))| match (&r.read, step) {
            (Read::Readable(x), Step::Record(d)) if d.decision == Decision::Issue => {
                x.req.review.as_ref().ok().map(|a| {
                    let mut a = a.clone();
                    a.note(d.notes.iter().cloned());
                    (i, a)
                })
            }
            _ => None,
        })
        .collect()
}

/// Records the signed certificates in one transaction, each row on its own: a request an
/// operator issued or denied meanwhile, a signing failure or a serial collision is a note on
/// its file, not an error of the batch.
fn record_issued(
    ca: &mut Authority,
    to_sign: &[(usize, Approved)],
    signed: Vec<Result<Signed>>,
    ids: &[Option<i64>],
) -> Result<HashMap<usize, String>> {
    if to_sign.is_empty() {
        return Ok(HashMap::new());
    }
    ca.db_mut().transaction(|b| {
        let mut notes = HashMap::new();
        for ((i, a), s) in to_sign.iter().zip(signed) {
            let Some(id) = ids[*i] else { continue };
            let s = match s {
                Ok(s) => s,
                Err(e) => {
                    notes.insert(
                        *i,
                        format!("it could not be signed ({e}); it stays pending"),
                    );
                    continue;
                }
            };
            let row = Issue {
                id,
                serial: &s.serial,
                certificate: &s.der,
                not_after: s.not_after,
                names: a.dns_names().iter().map(ToString::to_string).collect(),
                host: a.host().as_str(),
                message: &issued_message(a),
            };
            match b.issue(&row) {
                Ok(()) => {}
                Err(Error::NotPending(_)) => {
                    let now_is = b.get(id)?.map(|r| r.disposition);
                    notes.insert(
                        *i,
                        format!(
                            "an operator changed request {id} while this batch ran (it is {} now)",
                            now_is.map_or("gone".to_owned(), |d| d.to_string())
                        ),
                    );
                }
                Err(Error::SerialInUse(serial)) => {
                    notes.insert(
                        *i,
                        format!(
                            "serial number {serial} collided; it stays pending for the next run"
                        ),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(notes)
    })
}

/// Writes the certificate and bundle of every issued file (in parallel); a file that cannot
/// be written leaves its request in the share for the next run.
#[allow(
    clippy::too_many_arguments,
    reason = "the batch's state, passed whole rather than bundled for one call"
)]
fn write_all(
    dirs: &Share,
    contexts: &[Option<crate::authority::Context>],
    records: &[Option<Record>],
    files: &mut [FileOutcome],
    ca: &files::CaFacts<'_>,
    jobs: usize,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) {
    let outputs: Vec<(usize, &str, &Record, bool)> = files
        .iter()
        .zip(records)
        .enumerate()
        .filter_map(|(i, (f, rec))| match (f.result, &f.host, rec) {
            (Outcome::Issued, Some(host), Some(rec)) => {
                let before = contexts[i]
                    .as_ref()
                    .and_then(|c| c.own.as_ref())
                    .is_some_and(|k| k.disposition == Disposition::Issued);
                Some((i, host.as_str(), rec, before))
            }
            _ => None,
        })
        .collect();
    let results = counted(
        &outputs,
        jobs,
        Stage::Write,
        progress,
        |(_, host, rec, before)| write_outputs(&dirs.share, host, rec, ca, *before),
    );
    let failed: Vec<(usize, Error)> = outputs
        .iter()
        .zip(results)
        .filter_map(|((i, ..), r)| r.err().map(|e| (*i, e)))
        .collect();
    for (i, e) in failed {
        files[i].result = Outcome::Failed;
        files[i].message = format!(
            "issued, but {}; the request stays in the share for the next run",
            crate::text::escape_control(&crate::error::error_chain(&e))
        );
    }
}

/// Moves a finished request out of the share: issued to `processed/` as `<host>.<id>.req`,
/// refused to `rejected/` with its reason. One that cannot move is reported, not fatal:
/// false.
fn move_finished(dirs: &Share, r: &Reviewed, outcome: &mut FileOutcome) -> bool {
    let moved = match (outcome.result, outcome.id) {
        (Outcome::Issued, Some(id)) => match &dirs.processed {
            Ok(processed) => {
                let stem = &r.raw.as_encoded_bytes()[..r.raw.len() - 4];
                let mut dest = OsString::from(String::from_utf8_lossy(stem).into_owned());
                dest.push(format!(".{id}.req"));
                move_out(&dirs.share, &r.raw, processed, &dest)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Err(why) => Err(why.clone()),
        },
        (Outcome::Denied | Outcome::Rejected | Outcome::Revoked | Outcome::Duplicate, _) => {
            match &dirs.rejected {
                Ok(rejected) => reject(&dirs.share, rejected, &r.raw, &outcome.message)
                    .map_err(|e| e.to_string()),
                Err(why) => Err(why.clone()),
            }
        }
        _ => Ok(()),
    };
    match moved {
        Ok(()) => true,
        Err(e) => {
            outcome.message = format!(
                "{}; the file could not be moved out of the share: {e}",
                outcome.message
            );
            false
        }
    }
}

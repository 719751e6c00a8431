//! The seed's automation: a share where hosts drop `<FQDN>.req`, processed in batches into
//! `<FQDN>.cer` and `<FQDN>.bundle`.
//!
//! Order of a batch, so that a kill at any point is finished by running it again:
//! 1. every request is read, checked and reviewed (in parallel);
//! 2. all of them are recorded in one transaction (a request seen before finds its record);
//! 3. the ones to issue are signed (in parallel) and recorded in one transaction;
//! 4. certificates and bundles are written from the database, each replaced by a rename, then
//!    the file system is flushed once;
//! 5. only then do requests move to `processed/` (or `rejected/`, beside a `.reason.txt`).
//!
//! A request still in the share after a kill is found in the database on the next run: it is
//! never issued twice, and its files are compared with the database and rewritten when they
//! differ. Nothing reaches the disk that the database does not hold first.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::authority::{Approved, Authority, Issuer, Signed};
use crate::bundle::write_bundle;
use crate::db::{Disposition, Issue, NewRequest, Record};
use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::{MAX_REQUEST_BYTES, parse_request};

/// Where processed requests go, below the share.
pub const PROCESSED: &str = "processed";
/// Where refused requests go, below the share.
pub const REJECTED: &str = "rejected";

/// How to process a share.
#[derive(Debug, Clone, Default)]
pub struct ProcessOptions {
    /// Issue approved requests now, even when the CA's policy leaves them pending.
    pub issue: bool,
    /// Threads for reviewing and signing (0: all cores).
    pub jobs: usize,
    /// Only these host names (lower case) may enroll, when given (the management group's
    /// agents and servers).
    pub allowed_hosts: Option<HashSet<String>>,
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

/// What happened to one request file.
#[derive(Debug, Clone, Serialize)]
pub struct FileOutcome {
    /// The request file's name.
    pub file: String,
    /// The host it is for, when known.
    pub host: Option<String>,
    /// The request id, when it was recorded.
    pub id: Option<i64>,
    /// Where it stands: issued, pending, denied or rejected (not a readable request).
    pub result: &'static str,
    /// Why it was refused, or the CA's message.
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
    /// Requests moved to `rejected/` (denied by policy or unreadable).
    pub rejected: usize,
    /// Every file, in name order.
    pub files: Vec<FileOutcome>,
}

/// A request file after reading and review.
struct Reviewed {
    file: String,
    path: PathBuf,
    outcome: std::result::Result<Readable, String>,
}

struct Readable {
    der: Vec<u8>,
    digest: Vec<u8>,
    subject: String,
    host: Option<String>,
    review: std::result::Result<Approved, String>,
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

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The request files of the share, by name.
fn request_files(share: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(share).map_err(io_err(share))? {
        let entry = entry.map_err(io_err(share))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_req = Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("req"));
        if is_req && !name.starts_with('.') && entry.file_type().map_err(io_err(share))?.is_file() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

fn read_one(
    issuer: &Issuer,
    file: &str,
    path: &Path,
    options: &ProcessOptions,
    now: SystemTime,
) -> std::result::Result<Readable, String> {
    let len = fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_REQUEST_BYTES as u64 {
        return Err(format!(
            "{len} bytes is larger than a request can be ({MAX_REQUEST_BYTES})"
        ));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let request = parse_request(&bytes).map_err(|e| e.to_string())?;
    let der = request.der().to_vec();
    let digest = Sha256::digest(&der).to_vec();
    let subject = request.request().info.subject.to_string();
    // The file's name is the host's claim; the request's CN must be the same name.
    let stem = &file[..file.len() - 4];
    let review = match check_dns_name(stem) {
        Err(e) => Err(format!("the file name '{file}' is not <FQDN>.req: {e}")),
        Ok(()) => match issuer.review(&request, now) {
            Err(reason) => Err(reason),
            Ok(a) if !a.common_name.eq_ignore_ascii_case(stem) => Err(format!(
                "the request is for {} but the file is named {file}: a host may only request its own name",
                a.common_name
            )),
            Ok(a) => match &options.allowed_hosts {
                Some(allowed) if !allowed.contains(&a.common_name.to_ascii_lowercase()) => {
                    Err(format!(
                        "{} is not an agent or server of the management group's inventory",
                        a.common_name
                    ))
                }
                _ => Ok(a),
            },
        },
    };
    let host = review.as_ref().ok().map(|a| a.common_name.clone());
    Ok(Readable {
        der,
        digest,
        subject,
        host,
        review,
    })
}

/// The files of an issued record, written only when they differ from the database's.
fn write_outputs(share: &Path, host: &str, record: &Record, root_der: &[u8]) -> Result<()> {
    let der = record
        .certificate
        .as_deref()
        .ok_or_else(|| Error::Database(format!("request {} has no certificate", record.id)))?;
    let pem = crate::cert::certificate_to_pem(der)?;
    let bundle = write_bundle(der, root_der)?;
    for (ext, bytes) in [("cer", pem.as_bytes()), ("bundle", bundle.as_bytes())] {
        let path = share.join(format!("{host}.{ext}"));
        if fs::read(&path).ok().as_deref() != Some(bytes) {
            opsmgr_fsutil::write_replace_unsynced(&path, bytes).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// Removes the temporary files a killed run left (`.<name>.<pid>.tmp`); the lock guarantees
/// no other run is writing them.
fn remove_stale_temporaries(share: &Path) -> Result<()> {
    for entry in fs::read_dir(share).map_err(io_err(share))? {
        let entry = entry.map_err(io_err(share))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") && entry.path().is_file() {
            fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    Ok(())
}

/// A free name in `dir` for `name`: itself, else `name.1`, `name.2`, ...
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Processes every `*.req` in `share` with the CA; see the module's description for the order
/// that makes a re-run after a kill finish the batch. `progress` is told each stage's
/// progress. Two processes on one share take turns (a lock file in the share).
pub fn process_share(
    ca: &mut Authority,
    share: &Path,
    options: &ProcessOptions,
    now: SystemTime,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<Summary> {
    let lock_path = share.join(".om-ca.lock");
    let lock = opsmgr_fsutil::lock_exclusive(&lock_path).map_err(io_err(&lock_path))?;
    for sub in [PROCESSED, REJECTED] {
        let dir = share.join(sub);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let jobs = if options.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.jobs
    };
    remove_stale_temporaries(share)?;
    let files = request_files(share)?;
    let total = files.len();

    // 1. Read and review in parallel.
    let done = AtomicUsize::new(0);
    let issuer = ca.issuer();
    let reviewed: Vec<Reviewed> = par_map(&files, jobs, |(file, path)| {
        let outcome = read_one(issuer, file, path, options, now);
        progress(
            Stage::Review,
            done.fetch_add(1, Ordering::Relaxed) + 1,
            total,
        );
        Reviewed {
            file: file.clone(),
            path: path.clone(),
            outcome,
        }
    });

    // 2. Record every readable request in one transaction.
    let received = secs(now);
    let ids: Vec<Option<(i64, bool)>> = ca.db_mut().transaction(|b| {
        reviewed
            .iter()
            .map(|r| match &r.outcome {
                Err(_) => Ok(None),
                Ok(x) => {
                    let (disposition, message) = match &x.review {
                        Ok(a) => (
                            Disposition::Pending,
                            if a.notes.is_empty() {
                                "Taken Under Submission".to_owned()
                            } else {
                                format!("Taken Under Submission. {}", a.notes.join("; "))
                            },
                        ),
                        Err(reason) => (Disposition::Denied, reason.clone()),
                    };
                    b.insert(&NewRequest {
                        received,
                        requester: &r.file,
                        der: &x.der,
                        sha256: &x.digest,
                        subject: &x.subject,
                        common_name: x.host.as_deref(),
                        disposition,
                        message: &message,
                    })
                    .map(Some)
                }
            })
            .collect()
    })?;

    // 3. Sign what is pending and approved, in parallel; record in one transaction.
    let issue = options.issue || ca.issuer().config().auto_issue;
    let mut records: Vec<Option<Record>> = ids
        .iter()
        .map(|id| match id {
            Some((id, _)) => ca.db().get(*id),
            None => Ok(None),
        })
        .collect::<Result<_>>()?;
    let to_sign: Vec<(usize, &Approved)> = if issue {
        reviewed
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let pending = records[i]
                    .as_ref()
                    .is_some_and(|rec| rec.disposition == Disposition::Pending);
                match (&r.outcome, pending) {
                    (Ok(Readable { review: Ok(a), .. }), true) => Some((i, a)),
                    _ => None,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
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
    let signed: Vec<(usize, Signed, String)> = to_sign
        .iter()
        .zip(signed)
        .map(|((i, a), s)| {
            let message = if a.notes.is_empty() {
                "Issued".to_owned()
            } else {
                format!("Issued. {}", a.notes.join("; "))
            };
            s.map(|s| (*i, s, message))
        })
        .collect::<Result<_>>()?;
    if !signed.is_empty() {
        ca.db_mut().transaction(|b| {
            for (i, s, message) in &signed {
                let Some(Some((id, _))) = ids.get(*i) else {
                    continue;
                };
                b.issue(&Issue {
                    id: *id,
                    serial: &s.serial,
                    certificate: &s.der,
                    not_after: s.not_after,
                    message,
                })?;
            }
            Ok(())
        })?;
        for (i, _, _) in &signed {
            if let Some(Some((id, _))) = ids.get(*i) {
                records[*i] = ca.db().get(*id)?;
            }
        }
    }

    // 4. Files from the database (in parallel), one flush for all of them.
    let root_der = ca.issuer().root().der.clone();
    let mut summary = Summary {
        processed: total,
        ..Summary::default()
    };
    for (i, r) in reviewed.iter().enumerate() {
        let record = records[i].as_ref();
        let host = match &r.outcome {
            Ok(x) => x.host.clone(),
            Err(_) => None,
        };
        let (result, message) = match (&r.outcome, record) {
            (Err(reason), _) => ("rejected", reason.clone()),
            (Ok(_), Some(rec)) => match rec.disposition {
                Disposition::Issued => ("issued", rec.message.clone()),
                Disposition::Pending => ("pending", rec.message.clone()),
                Disposition::Denied => ("denied", rec.message.clone()),
                Disposition::Revoked => (
                    "revoked",
                    format!(
                        "its certificate (serial {}) was revoked",
                        rec.serial.as_deref().unwrap_or("?")
                    ),
                ),
            },
            (Ok(_), None) => ("rejected", "not recorded".to_owned()),
        };
        summary.files.push(FileOutcome {
            file: r.file.clone(),
            host,
            id: record.map(|rec| rec.id),
            result,
            message,
        });
    }
    let outputs: Vec<(&str, &Record)> = summary
        .files
        .iter()
        .zip(&records)
        .filter_map(|(f, rec)| match (f.result, &f.host, rec) {
            ("issued", Some(host), Some(rec)) => Some((host.as_str(), rec)),
            _ => None,
        })
        .collect();
    let written = AtomicUsize::new(0);
    par_map(&outputs, jobs, |(host, rec)| {
        let r = write_outputs(share, host, rec, &root_der);
        progress(
            Stage::Write,
            written.fetch_add(1, Ordering::Relaxed) + 1,
            outputs.len(),
        );
        r
    })
    .into_iter()
    .collect::<Result<()>>()?;
    opsmgr_fsutil::sync_filesystem(share).map_err(io_err(share))?;

    // 5. Move the requests that are finished.
    for (r, outcome) in reviewed.iter().zip(&summary.files) {
        match outcome.result {
            "issued" => {
                let id = outcome.id.unwrap_or(0);
                let stem = &r.file[..r.file.len() - 4];
                let dest = share.join(PROCESSED).join(format!("{stem}.{id}.req"));
                fs::rename(&r.path, &dest).map_err(io_err(&r.path))?;
            }
            "denied" | "rejected" | "revoked" => {
                let dir = share.join(REJECTED);
                let dest = free_name(&dir, &r.file);
                let mut reason_name = dest.file_name().unwrap_or_default().to_os_string();
                reason_name.push(".reason.txt");
                let reason_path = dir.join(reason_name);
                opsmgr_fsutil::write_atomic(
                    &reason_path,
                    format!("{}\n", outcome.message).as_bytes(),
                )
                .map_err(io_err(&reason_path))?;
                fs::rename(&r.path, &dest).map_err(io_err(&r.path))?;
            }
            _ => {}
        }
        match outcome.result {
            "issued" => summary.issued += 1,
            "pending" => summary.pending += 1,
            _ => summary.rejected += 1,
        }
    }
    drop(lock);
    Ok(summary)
}

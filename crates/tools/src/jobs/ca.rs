//! The CA operator's jobs: a batch of the drop share that leaves its record (`om-ca
//! process`, `serve`), the CA at a glance (`om-ca status`) and what expires (`om-ca
//! expiring`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use opsmgr_ca::authority::{Authority, CaView, Disposition, Filter, Record};
use opsmgr_ca::dropfolder::{ProcessOptions, Stage, Summary};
use serde::{Deserialize, Serialize};

/// The current certificates (issued, not superseded, not revoked) that end within `within` of
/// `now`, soonest first: what to renew. A host's older certificate, superseded by its renewal,
/// is not listed: renewing it again is not possible, and not needed.
pub fn expiring(ca: &Authority, within: Duration, now: SystemTime) -> Result<Vec<Record>> {
    // None: further than any certificate can last.
    let horizon = now.checked_add(within);
    let filter = Filter {
        disposition: Some(Disposition::Issued),
        ..Filter::default()
    };
    let mut records: Vec<Record> = ca
        .list(&filter)?
        .into_iter()
        .filter(|r| r.superseded_by.is_none())
        .filter(|r| r.not_after.is_some_and(|t| horizon.is_none_or(|h| t <= h)))
        .collect();
    records.sort_by_key(|r| (r.not_after, r.id));
    Ok(records)
}

/// The file in the CA's folder that keeps what the last batch did, for `om-ca status`.
pub const LAST_BATCH_FILE: &str = "last-batch.json";

/// What a batch of the drop share did, as `om-ca status` shows the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastBatch {
    /// When it started (RFC 3339).
    #[serde(with = "crate::rfc3339")]
    pub at: SystemTime,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// Request files looked at.
    pub processed: usize,
    /// Certificates written.
    pub issued: usize,
    /// Requests left pending for an operator.
    pub pending: usize,
    /// Requests refused.
    pub rejected: usize,
    /// Copies of another request.
    pub duplicates: usize,
    /// Requests left for the next run.
    pub waiting: usize,
    /// The CRL it published, when it did.
    pub crl: Option<u64>,
}

/// om-ca process (and each batch of `serve`): processes the share with the CA, and keeps
/// what the batch did in the CA's folder ([`LAST_BATCH_FILE`]) when it did anything (a file
/// looked at, a CRL published), for `om-ca status`. That record failing to be written does
/// not undo a finished batch: it is returned beside the summary, to be said.
pub fn process(
    ca: &mut Authority,
    share: &Path,
    options: &ProcessOptions,
    now: SystemTime,
    progress: &(dyn Fn(Stage, usize, usize) + Sync),
) -> Result<(Summary, Option<String>)> {
    let started = std::time::Instant::now();
    let summary = opsmgr_ca::dropfolder::process_share(ca, share, options, now, progress)
        .with_context(|| format!("processing {}", share.display()))?;
    if summary.processed > 0 || summary.crl.is_some() {
        let last = LastBatch {
            at: now,
            seconds: started.elapsed().as_secs_f64(),
            processed: summary.processed,
            issued: summary.issued,
            pending: summary.pending,
            rejected: summary.rejected,
            duplicates: summary.duplicates,
            waiting: summary.waiting,
            crl: summary.crl.as_ref().map(|c| c.number),
        };
        let path = ca.dir().join(LAST_BATCH_FILE);
        let mut json = serde_json::to_vec_pretty(&last)?;
        json.push(b'\n');
        if let Err(e) = opsmgr_fsutil::write_private(&path, &json) {
            return Ok((
                summary,
                Some(format!(
                    "the batch's record {} could not be written ({e}); om-ca status shows an older batch",
                    path.display()
                )),
            ));
        }
    }
    Ok((summary, None))
}

/// How many requests stand in each state, and of the issued ones how many are their host's
/// current certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting for an operator.
    pub pending: usize,
    /// Issued (current, superseded or expired).
    pub issued: usize,
    /// Issued and still their host's current certificate.
    pub current: usize,
    /// Refused.
    pub denied: usize,
    /// Revoked.
    pub revoked: usize,
}

/// A request held for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// Its request id.
    pub id: i64,
    /// The host, as requested.
    pub host: String,
    /// Why it waits (the CA's message).
    pub reason: String,
    /// When it arrived.
    #[serde(with = "crate::rfc3339")]
    pub received: SystemTime,
    /// Whole days since.
    pub age_days: u64,
}

/// A current certificate that ends soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// Its request id.
    pub id: i64,
    /// The host.
    pub host: String,
    /// Its serial number.
    pub serial: String,
    /// Its end.
    #[serde(with = "crate::rfc3339")]
    pub not_after: SystemTime,
    /// Whole days left.
    pub days_left: u64,
}

/// The CA's root as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootStatus {
    /// Its subject.
    pub subject: String,
    /// Its SHA-1 thumbprint (the pinned one).
    pub thumbprint: String,
    /// Its end.
    #[serde(with = "crate::rfc3339")]
    pub not_after: SystemTime,
}

/// The newest CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlStatus {
    /// Its number.
    pub number: u64,
    /// When it was made.
    #[serde(with = "crate::rfc3339")]
    pub this_update: SystemTime,
    /// When relying parties stop trusting it.
    #[serde(with = "crate::rfc3339::option")]
    pub next_update: Option<SystemTime>,
    /// Whether its next update has passed (relying parties that check refuse every
    /// certificate until a new one is published).
    pub overdue: bool,
}

/// A count over a span of time, for the charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// The span: a week by its Monday (`2026-11-30`), a month (`2027-01`).
    pub label: String,
    /// How many.
    pub count: usize,
}

/// `om-ca status`: the CA at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The CA's name.
    pub name: String,
    /// When the status was taken.
    #[serde(with = "crate::rfc3339")]
    pub at: SystemTime,
    /// Requests by state.
    pub counts: Counts,
    /// Requests held for an operator, oldest first.
    pub held: Vec<Held>,
    /// The root.
    pub root: RootStatus,
    /// The newest CRL, when one was made.
    pub crl: Option<CrlStatus>,
    /// How far ahead `expiring` looks, in days.
    pub expiring_within_days: u32,
    /// Current certificates ending within that many days, soonest first.
    pub expiring: Vec<Ending>,
    /// What the last batch did, when one has run.
    pub last_batch: Option<LastBatch>,
    /// Certificates issued in each of the last weeks (oldest first, this week last).
    pub issued_per_week: Vec<Bucket>,
    /// Current certificates ending in each month ahead (this month first).
    pub expiries_per_month: Vec<Bucket>,
}

const DAY: u64 = 86_400;
/// Weeks of issues charted, and months of expiries (this one and a year ahead, where
/// certificates of a year's validity end).
const WEEKS: u64 = 12;
const MONTHS: usize = 13;

/// The date (`2026-11-30`) of `t`, in UTC.
fn date(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// The CA at `now`: counts, held requests, the root, the CRL, what expires within
/// `within_days`, the last batch, and the two series the report charts. Read from the CA's
/// public parts: no private key, no password.
pub fn status(ca: &CaView, within_days: u32, now: SystemTime) -> Result<Status> {
    let records = ca.list(&Filter::default())?;
    let mut counts = Counts::default();
    let mut held = Vec::new();
    let mut expiring = Vec::new();
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let today = secs(now) / DAY;
    // Monday of this week: 1970-01-01 was a Thursday.
    let monday = today - (today + 3) % 7;
    let first_week = monday.saturating_sub((WEEKS - 1) * 7);
    let mut weeks = vec![0usize; WEEKS as usize];
    let months: Vec<String> = {
        let mut out: Vec<String> = Vec::new();
        let mut day = today;
        while out.len() < MONTHS {
            let m = date(UNIX_EPOCH + Duration::from_secs(day * DAY))[..7].to_owned();
            if out.last() != Some(&m) {
                out.push(m);
            }
            day += 1;
        }
        out
    };
    let mut per_month = vec![0usize; MONTHS];
    let horizon = now + Duration::from_secs(u64::from(within_days) * DAY);
    for r in &records {
        match r.disposition {
            Disposition::Pending => {
                counts.pending += 1;
                held.push(Held {
                    id: r.id,
                    host: r.common_name.clone().unwrap_or_else(|| r.subject.clone()),
                    reason: r.message.clone(),
                    received: r.received,
                    age_days: secs(now).saturating_sub(secs(r.received)) / DAY,
                });
            }
            Disposition::Denied => counts.denied += 1,
            Disposition::Revoked => counts.revoked += 1,
            Disposition::Issued => {
                counts.issued += 1;
                // Issued when the certificate starts; a record without one counts on arrival.
                let issued_at = r
                    .certificate
                    .as_deref()
                    .and_then(|der| opsmgr_ca::cert::CertInfo::parse(der).ok())
                    .map_or(r.received, |c| c.not_before);
                let day = secs(issued_at) / DAY;
                if day >= first_week && day <= today {
                    weeks[((day - first_week) / 7) as usize] += 1;
                }
                if r.is_current(now) {
                    counts.current += 1;
                    if let Some(end) = r.not_after {
                        if let Some(i) = months.iter().position(|m| date(end).starts_with(m)) {
                            per_month[i] += 1;
                        }
                        if end <= horizon {
                            expiring.push(Ending {
                                id: r.id,
                                host: r.common_name.clone().unwrap_or_else(|| r.subject.clone()),
                                serial: r.serial.clone().unwrap_or_default(),
                                not_after: end,
                                days_left: secs(end).saturating_sub(secs(now)) / DAY,
                            });
                        }
                    }
                }
            }
        }
    }
    held.sort_by_key(|h| (h.received, h.id));
    expiring.sort_by_key(|e| (e.not_after, e.id));
    let root = ca.root();
    let crl = ca
        .last_crl()?
        .map(|(number, this_update, next_update)| CrlStatus {
            number,
            this_update,
            next_update,
            overdue: next_update.is_some_and(|n| n < now),
        });
    let last_batch = match std::fs::read(ca.dir().join(LAST_BATCH_FILE)) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| ca.dir().join(LAST_BATCH_FILE).display().to_string())?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| ca.dir().join(LAST_BATCH_FILE).display().to_string());
        }
    };
    Ok(Status {
        name: ca.config().name.clone(),
        at: now,
        counts,
        held,
        root: RootStatus {
            subject: root.subject.clone(),
            thumbprint: ca
                .config()
                .root_thumbprint
                .clone()
                .unwrap_or_else(|| root.thumbprint.clone()),
            not_after: root.not_after,
        },
        crl,
        expiring_within_days: within_days,
        expiring,
        last_batch,
        issued_per_week: weeks
            .into_iter()
            .enumerate()
            .map(|(i, count)| Bucket {
                label: date(UNIX_EPOCH + Duration::from_secs((first_week + i as u64 * 7) * DAY)),
                count,
            })
            .collect(),
        expiries_per_month: months
            .into_iter()
            .zip(per_month)
            .map(|(label, count)| Bucket { label, count })
            .collect(),
    })
}

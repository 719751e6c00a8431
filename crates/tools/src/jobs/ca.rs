//! The CA operator's jobs beyond the drop folder: what expires (`om-ca expiring`) and a
//! revocation that reaches relying parties (`om-certutil -revoke`).

use std::time::{Duration, SystemTime};

use anyhow::Result;
use opsmgr_ca::authority::{Authority, Disposition, Filter, Published, Record, RevocationReason};

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

/// What [`revoke`] did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The certificate's record, now revoked.
    pub record: Record,
    /// The CRL published with it.
    pub crl: Published,
}

/// certutil -revoke: revokes the certificate with `serial` for `reason`, then publishes a CRL
/// at once, so that relying parties that read it refuse the certificate from now on.
pub fn revoke(
    ca: &mut Authority,
    serial: &str,
    reason: RevocationReason,
    now: SystemTime,
) -> Result<Revoked> {
    let record = ca.revoke(serial, reason, now)?;
    let crl = ca.publish_crl(now)?;
    Ok(Revoked { record, crl })
}

//! The CA's requests one at a time, as an operator works them: certreq's `-submit` and
//! `-retrieve`, certutil's `-resubmit`, `-deny`, `-revoke`, `-crl` and `-view`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_ca::authority::{
    Authority, CaView, Disposition, Filter, Published, Record, RevocationReason,
};
use opsmgr_ca::cert::certificate_to_pem;
use opsmgr_ca::request::MAX_REQUEST_BYTES;

/// How a certificate is written to a file: PEM, as certreq writes by default, or DER
/// (certreq's `-binary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertFormat {
    /// Base64 between `-----BEGIN CERTIFICATE-----` lines.
    Pem,
    /// The certificate's bytes.
    Der,
}

/// certreq -submit: a request file for the CA, and where its certificate goes if it is
/// issued at once.
#[derive(Debug, Clone, Copy)]
pub struct Submit<'a> {
    /// The request (PEM or DER PKCS#10, as certreq -new or Windows wrote it).
    pub request: &'a Path,
    /// Where the certificate is written when the CA issues it at once.
    pub out: Option<&'a Path>,
    /// Replace `out` when it exists.
    pub overwrite: bool,
    /// How the certificate is written.
    pub format: CertFormat,
}

/// What [`submit`] or [`retrieve`] found.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request's record.
    pub record: Record,
    /// True when the same request was submitted before: nothing changed.
    pub existing: bool,
    /// The file the certificate was written to, when it was issued and a file was named.
    pub written: Option<PathBuf>,
}

/// certreq -submit: records the request with the CA (which issues, holds or denies it by its
/// policy) and writes the certificate to `out` when it is issued. The request file is read
/// within [`MAX_REQUEST_BYTES`]; its file name is recorded as the requester.
pub fn submit(ca: &mut Authority, job: &Submit<'_>, now: SystemTime) -> Result<Answer> {
    // Refused before the CA records anything: a refusal changes nothing.
    if let Some(out) = job.out {
        writable_copy(ca.dir(), out, job.overwrite)?;
    }
    let bytes = crate::read_bounded(job.request, MAX_REQUEST_BYTES)?;
    let requester = job
        .request
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let submitted = ca
        .submit(&bytes, &requester, now)
        .with_context(|| job.request.display().to_string())?;
    let written = match job.out {
        Some(path) if submitted.record.disposition == Disposition::Issued => {
            write_issued(&submitted.record, path, job.format)?
        }
        _ => None,
    };
    Ok(Answer {
        record: submitted.record,
        existing: submitted.existing,
        written,
    })
}

/// certreq -retrieve: the request's record, and its certificate written to `out` when it is
/// issued (a request pending, denied or revoked writes nothing, and so refuses nothing). An
/// existing `out` is replaced only with `overwrite`.
pub fn retrieve(
    ca: &CaView,
    id: i64,
    out: &Path,
    format: CertFormat,
    overwrite: bool,
) -> Result<Answer> {
    let record = ca.record(id)?;
    let written = if record.disposition == Disposition::Issued {
        writable_copy(ca.dir(), out, overwrite)?;
        write_issued(&record, out, format)?
    } else {
        None
    };
    Ok(Answer {
        record,
        existing: false,
        written,
    })
}

/// Refuses `path` as the target of a copy (a certificate, a CRL) when it exists and
/// `overwrite` is not given, and always when it lies in the CA's folder `ca_dir` or below it
/// (its key, its root, its database, its policy, its installers): no switch makes a CRL the
/// CA's key.
fn writable_copy(ca_dir: &Path, path: &Path, overwrite: bool) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let inside = match (std::fs::canonicalize(parent), std::fs::canonicalize(ca_dir)) {
        (Ok(a), Ok(b)) => a.starts_with(b),
        _ => false,
    };
    if inside {
        bail!(
            "{} is in the CA's own folder, whose files only the CA writes; give a file elsewhere",
            path.display()
        );
    }
    crate::refuse_overwrite(path, overwrite, "-f")
}

/// Writes an issued record's certificate to `path`, atomically.
fn write_issued(record: &Record, path: &Path, format: CertFormat) -> Result<Option<PathBuf>> {
    let Some(der) = &record.certificate else {
        return Ok(None);
    };
    let bytes = match format {
        CertFormat::Der => der.clone(),
        CertFormat::Pem => certificate_to_pem(der)?.into_bytes(),
    };
    opsmgr_fsutil::write_atomic(path, &bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path.to_path_buf()))
}

/// certutil -resubmit: issues a pending request under the CA's current policy, which may
/// deny it instead; the record says which.
pub fn resubmit(ca: &mut Authority, id: i64, now: SystemTime) -> Result<Record> {
    Ok(ca.resubmit(id, now)?)
}

/// The reason a denial records when the operator gives none.
pub const DEFAULT_DENIAL: &str = "Denied by the CA's administrator";

/// certutil -deny: refuses a pending request, recording `reason` (else [`DEFAULT_DENIAL`]).
pub fn deny(ca: &mut Authority, id: i64, reason: Option<&str>) -> Result<Record> {
    Ok(ca.deny(id, reason.unwrap_or(DEFAULT_DENIAL))?)
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

/// certutil -crl: publishes a new CRL where the CA publishes it, and copies it (PEM) to
/// `copy` as well when one is named (an existing file only with `overwrite`); `files` in the
/// answer lists every file written.
pub fn crl(
    ca: &mut Authority,
    copy: Option<&Path>,
    overwrite: bool,
    now: SystemTime,
) -> Result<Published> {
    if let Some(path) = copy {
        writable_copy(ca.dir(), path, overwrite)?;
    }
    let mut published = ca.publish_crl(now)?;
    if let Some(path) = copy {
        let pem_file = ca.dir().join(opsmgr_ca::authority::CA_CRL);
        let pem =
            std::fs::read(&pem_file).with_context(|| format!("reading {}", pem_file.display()))?;
        opsmgr_fsutil::write_atomic(path, &pem)
            .with_context(|| format!("writing {}", path.display()))?;
        published.files.push(path.to_path_buf());
    }
    Ok(published)
}

/// certutil -view: the CA's records that `filter` selects, by request id. It reads the CA
/// without its key.
pub fn view(ca: &CaView, filter: &Filter) -> Result<Vec<Record>> {
    Ok(ca.list(filter)?)
}

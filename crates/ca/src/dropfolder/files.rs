//! The batch's file work on the share: reading and reviewing one request, writing a
//! certificate's files, moving a request out.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::SystemTime;

use opsmgr_fsutil::untrusted::{EntryKind, ReadRefusal, UntrustedDir};

use super::plan::{Read, Readable, Refusal, Reviewed};
use crate::agent::write_bundle;
use crate::authority::{Denial, Issuer, Note, Record};
use crate::cert::{MAX_CERT_BYTES, certificate_to_pem};
use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::{MAX_REQUEST_BYTES, parse_request};
use crate::text::escape_control;

/// Whether a file of the share is a request the batch looks at: `*.req` (any case), not a
/// hidden file (a copy in progress, as some clients write them).
pub fn is_request_name(name: &OsStr) -> bool {
    let b = name.as_encoded_bytes();
    b.len() > 4 && !b.starts_with(b".") && b[b.len() - 4..].eq_ignore_ascii_case(b".req")
}

/// Reads one request file of the share and reviews it. The file name is the host's claim and
/// is checked first: a request whose common name is not its file's name is refused here,
/// before its content is compared with anything. With `allowed_hosts`, only those hosts
/// enroll, each for its own name alone.
pub(crate) fn read_one(
    issuer: &Issuer,
    share: &UntrustedDir,
    raw: &OsStr,
    allowed_hosts: Option<&HashSet<String>>,
    settled_before: Option<SystemTime>,
    now: SystemTime,
) -> Reviewed {
    let file = escape_control(&raw.to_string_lossy());
    let reviewed = |arrived, read| Reviewed {
        raw: raw.to_owned(),
        file: file.clone(),
        arrived,
        read,
    };
    let refused = |why| reviewed(now, Read::Refused(why));
    let Some(name) = raw.to_str() else {
        return refused(Refusal::NameNotUtf8);
    };
    let stem = &name[..name.len() - 4];
    if let Err(why) = check_dns_name(stem) {
        return refused(Refusal::BadName {
            file: file.clone(),
            why,
        });
    }
    let contents = match share.read_regular(raw, MAX_REQUEST_BYTES, settled_before) {
        Ok(c) => c,
        Err(ReadRefusal::Settling) => return reviewed(now, Read::Settling),
        Err(e) => {
            return refused(Refusal::NotRead {
                file: file.clone(),
                why: e.to_string(),
            });
        }
    };
    let request = match parse_request(&contents.bytes) {
        Ok(r) => r,
        Err(e) => return refused(Refusal::NotARequest(crate::error::error_chain(&e))),
    };
    let host = stem.to_ascii_lowercase();
    let mut req = issuer.assess(&request, now);
    // The name check comes first, whatever the review says: a request the policy denies is
    // recorded under its file's name, and an operator may issue it later.
    if let Some(cn) = &req.host
        && !cn.as_str().eq_ignore_ascii_case(stem)
    {
        return refused(Refusal::NameMismatch {
            common_name: cn.to_string(),
            file: file.clone(),
        });
    }
    if let (Some(allowed), Ok(a)) = (allowed_hosts, &mut req.review) {
        if !allowed.contains(&host) {
            req.review = Err(Denial::NotInInventory(host.clone()));
        } else {
            // Every other DNS name would let this host speak for another: with an inventory,
            // a certificate names its own host only.
            a.restrict_names(
                |_| false,
                |n| {
                    if allowed.contains(&n.to_lowercase()) {
                        Note::OtherHostOfInventory(n.to_string())
                    } else {
                        Note::NotInInventory(n.to_string())
                    }
                },
            );
        }
    }
    reviewed(
        contents.changed,
        Read::Readable(Box::new(Readable {
            req,
            host,
            spelled: stem.to_owned(),
        })),
    )
}

/// What every issued host's files need of the CA: its root, the root's pinned thumbprint, its
/// name and the folder its installers go to.
pub(crate) struct CaFacts<'a> {
    pub(crate) root: &'a [u8],
    pub(crate) pin: &'a str,
    pub(crate) name: &'a str,
    pub(crate) installers: &'a Path,
}

/// The files of an issued record: `<host>.cer` and `.bundle` in the share (an agent checks
/// them against the root it trusts), `<host>.install.ps1` and `.install.cmd` in the CA's
/// installer folder (an administrator runs them: they never pass through the share), each
/// written unless it is there already with the same bytes.
pub(crate) fn write_outputs(
    share: &UntrustedDir,
    host: &str,
    record: &Record,
    ca: &CaFacts<'_>,
    issued_before: bool,
) -> Result<()> {
    let der = record
        .certificate
        .as_deref()
        .ok_or(Error::NotPending(record.id))?;
    let pem = certificate_to_pem(der)?;
    let bundle = write_bundle(der, ca.root)?;
    let name = opsmgr_hostname::HostName::new(host)
        .map_err(|e| Error::certificate_from(host.to_string(), e))?;
    let installer = crate::windows::Installer {
        host: &name,
        request_id: record.id,
        certificate: der,
        root: ca.root,
        root_thumbprint: ca.pin,
        ca_name: ca.name,
    };
    let ps1 = crate::windows::install_ps1(&installer)?;
    let cmd = crate::windows::install_cmd(&installer)?;
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
                let failed = format!("{host}.{ext} could not be written");
                match share.kind(&name) {
                    Ok(Some(EntryKind::Dir)) => {
                        Error::certificate(format!("{failed}: a folder is in the way"))
                    }
                    _ => Error::certificate_from(failed, e),
                }
            })?;
        }
    }
    std::fs::create_dir_all(ca.installers).map_err(|source| Error::Io {
        path: ca.installers.to_owned(),
        source,
    })?;
    for (ext, bytes) in [
        ("install.ps1", ps1.as_bytes()),
        ("install.cmd", cmd.as_bytes()),
    ] {
        let path = ca.installers.join(format!("{host}.{ext}"));
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            continue;
        }
        opsmgr_fsutil::write_atomic(&path, bytes).map_err(|source| Error::Io { path, source })?;
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
pub(crate) fn move_out(
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

/// Moves a refused entry to `rejected/` beside `<name>.reason.txt`, under a name whose reason
/// file is free too. A link, pipe or folder is moved as it is (a link is never followed), so
/// the share is left clean for the next run. The move comes first: a reason never stands
/// without its request.
pub(crate) fn reject(
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
    fn request_names() {
        assert!(is_request_name(OsStr::new("host.company.local.REQ")));
        assert!(!is_request_name(OsStr::new(".hidden.req")));
        assert!(!is_request_name(OsStr::new(".req")));
        assert!(!is_request_name(OsStr::new("host.cer")));
    }
}

//! The installer bundle: one file with an agent's certificate and the root that issued it, as
//! a PKCS#7 certs-only structure in PEM (`-----BEGIN PKCS7-----`), which `openssl pkcs7
//! -print_certs` reads.

use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData};
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::channel::{
    AgentSettings, Held, KeyState, Refusal, choose_channel_certificate, select_channel_certificate,
};
use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::store::{Accepted, Added, StoreName, Stores, key_id};

/// The PEM label OpenSSL reads (the `cms` crate's `CMS` label is refused by `openssl pkcs7`).
pub const BUNDLE_LABEL: &str = "PKCS7";

/// The largest bundle read.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// A bundle's content: the agent's certificate and its root.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The agent's certificate.
    pub leaf: CertInfo,
    /// The CA certificate that issued it.
    pub root: CertInfo,
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::certificate(format!("bundle: {what}"))
}

/// A bundle the DER or CMS reader could not read or write, its error kept as the source.
fn broken(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::certificate_from("bundle", e)
}

/// Writes the bundle for `leaf` (DER) issued by `root` (DER).
pub fn write_bundle(leaf: &[u8], root: &[u8]) -> Result<String> {
    let certs = [leaf, root]
        .iter()
        .map(|der| Certificate::from_der(der).map_err(broken))
        .collect::<Result<Vec<_>>>()?;
    let info = ContentInfo::try_from(certs).map_err(broken)?;
    let der = info.to_der().map_err(broken)?;
    der::pem::encode_string(BUNDLE_LABEL, der::pem::LineEnding::CRLF, &der).map_err(broken)
}

/// Reads a bundle (PEM or DER): exactly one CA certificate and one certificate it issued, in
/// any order (PKCS#7 sorts its set by encoding, so the chain is found by issuer and subject).
pub fn read_bundle(bytes: &[u8]) -> Result<Bundle> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(bad(format!("larger than {MAX_BUNDLE_BYTES} bytes")));
    }
    let der = if crate::pem::is_pem(bytes) {
        let (label, der) = crate::pem::decode(bytes).map_err(bad)?;
        if label != BUNDLE_LABEL && label != "CMS" {
            return Err(bad(format!("PEM label '{label}' is not {BUNDLE_LABEL}")));
        }
        der
    } else {
        bytes.trim_ascii_start().to_vec()
    };
    let info = ContentInfo::from_der(&der).map_err(broken)?;
    if info.content_type != const_oid::db::rfc5911::ID_SIGNED_DATA {
        return Err(bad("not a PKCS#7 signed-data structure"));
    }
    let signed: SignedData = info.content.decode_as().map_err(broken)?;
    let CertificateSet(set) = signed
        .certificates
        .ok_or_else(|| bad("it holds no certificates"))?;
    let certs = set
        .iter()
        .map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) => {
                CertInfo::parse(&c.to_der().map_err(broken)?)
            }
            cms::cert::CertificateChoices::Other(_) => Err(bad("an unknown certificate format")),
        })
        .collect::<Result<Vec<_>>>()?;
    let [a, b] = <[CertInfo; 2]>::try_from(certs)
        .map_err(|c| bad(format!("{} certificates; a bundle holds two", c.len())))?;
    let (root, leaf) = if a.is_ca && !b.is_ca { (a, b) } else { (b, a) };
    if !root.is_ca || leaf.is_ca {
        return Err(bad(
            "it must hold one CA certificate and one agent certificate",
        ));
    }
    if leaf.issuer != root.subject {
        return Err(bad(format!(
            "the agent certificate's issuer {} is not the CA certificate's subject {}",
            leaf.issuer, root.subject
        )));
    }
    Ok(Bundle { leaf, root })
}

/// What installing a bundle did on the agent.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The agent's certificate, now in `My` with its key.
    pub leaf: Accepted,
    /// The root, now in `Root`.
    pub root: Added,
    /// Whether the pending key, and so the certificate, was in the machine's stores (else the
    /// user's: its request said `MachineKeySet = FALSE`, and the agent cannot use it).
    pub machine_key_set: bool,
    /// The channel certificate MOMCertImport's selection chose for the leaf's name (in the
    /// machine's stores only: the agent reads no other).
    pub channel: Option<CertInfo>,
    /// Whether the agent's settings changed (false: it was already the channel certificate).
    pub settings_changed: bool,
}

/// Whether `pin` names `cert`: its SHA-1 thumbprint as Windows shows it, or the SHA-256 of its
/// DER, in hex (case, spaces and colons ignored).
pub fn pin_matches(pin: &str, cert: &CertInfo) -> bool {
    use sha2::Digest;
    let pin: String = pin
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect::<String>()
        .to_ascii_uppercase();
    let sha256 = crate::hex::upper(&sha2::Sha256::digest(&cert.der));
    !pin.is_empty() && (pin == cert.thumbprint || pin == sha256)
}

/// What the seed's installer did on the agent, in one step under the store's lock, once the
/// bundle has proved itself (its root already in `Root` or the one `trust_root` pins, its
/// signature, the host's name, both channel purposes, valid now, listed in no CRL here nor in
/// `crl`, for a key pending here): accept the certificate where its key is pending (the
/// machine's stores first, then the user's, as certreq -accept looks; only the user's with
/// `user_only`), trust the root there, store `crl` (the CA's CRL, when given) beside it, and
/// in the machine's stores run MOMCertImport's selection for the certificate's common name
/// and record the result in the agent's settings. Anything refused is refused before a
/// single file changes.
pub fn install_bundle(
    machine: &std::path::Path,
    bytes: &[u8],
    user_only: bool,
    trust_root: Option<&str>,
    crl: Option<&[u8]>,
    now: std::time::SystemTime,
) -> Result<Installed> {
    let bundle = read_bundle(bytes)?;
    let host = bundle
        .leaf
        .common_name
        .clone()
        .ok_or_else(|| bad("the agent certificate has no common name"))?;
    Stores::in_key_stores(machine, user_only, |stores, lock, machine_key_set| {
        let crl = crl.map(|c| check_crl(&bundle.root, c)).transpose()?;
        prove(
            stores,
            &bundle.leaf,
            Some(&bundle.root),
            trust_root,
            crl.as_deref(),
            true,
            now,
        )?;
        let leaf = stores.accept(lock, &bundle.leaf.der, now)?;
        let root = stores.add_root(lock, &bundle.root.der, false)?;
        if let Some(c) = crl {
            stores.add_crl(lock, &c)?;
        }
        if !machine_key_set {
            return Ok(Installed {
                leaf,
                root,
                machine_key_set,
                channel: None,
                settings_changed: false,
            });
        }
        select_and_record(machine, stores, lock, &host, leaf, root, now)
    })
}

/// A CRL given with an install, checked against the bundle's root before anything is stored.
fn check_crl(root: &CertInfo, crl: &[u8]) -> Result<Vec<u8>> {
    let der = crate::store::crl_der(crl).ok_or_else(|| bad("the CRL given is not a CRL"))?;
    crate::store::crl_signed_by(&der, root)?;
    Ok(der)
}

/// certreq -accept: joins the issued certificate (a `.cer`, or the CA's bundle with its root)
/// with its pending key, once it has proved itself as [`install_bundle`]'s does:
/// its root in `Root` already (or, for a bundle, the one `trust_root` pins), its signature,
/// not revoked, valid now; with `channel_checks`, also the name the pending request asked for
/// and both channel purposes (without, a certificate for another use of the machine's key is
/// accepted; the root and signature are checked all the same). The machine's stores first,
/// then the user's (only the user's with `user_only`).
pub fn accept_certificate(
    machine: &std::path::Path,
    bytes: &[u8],
    user_only: bool,
    trust_root: Option<&str>,
    channel_checks: bool,
    now: std::time::SystemTime,
) -> Result<Accepted> {
    let (leaf, root) = match read_bundle(bytes) {
        Ok(b) => (b.leaf, Some(b.root)),
        Err(_) => (CertInfo::parse(bytes)?, None),
    };
    Stores::in_key_stores(machine, user_only, |stores, lock, _| {
        prove(
            stores,
            &leaf,
            root.as_ref(),
            trust_root,
            None,
            channel_checks,
            now,
        )?;
        let accepted = stores.accept(lock, &leaf.der, now)?;
        if let Some(r) = &root {
            stores.add_root(lock, &r.der, false)?;
        }
        Ok(accepted)
    })
}

/// The checks a certificate passes before it is installed on the agent (by [`install_bundle`]
/// and [`accept_certificate`]): its root must already
/// be in `Root`, or be the one the bundle carries and `trust_root` names (its SHA-1 thumbprint
/// or SHA-256, as the CA's operator publishes it); it must chain to that root (rustls-webpki,
/// the signature checked), name the host its pending request asked for, carry both channel
/// purposes, be valid now, be listed in no CRL of its root here (or `crl`), and be for a key
/// pending on this machine (or be in `My` with it already).
fn prove(
    stores: &Stores,
    leaf: &CertInfo,
    bundle_root: Option<&CertInfo>,
    trust_root: Option<&str>,
    crl: Option<&[u8]>,
    channel_checks: bool,
    now: std::time::SystemTime,
) -> Result<()> {
    let mut trust = stores.trust()?;
    match bundle_root {
        Some(root) if !trust.roots.iter().any(|r| r.der == root.der) => {
            if !trust_root.is_some_and(|pin| pin_matches(pin, root)) {
                return Err(Error::UntrustedRoot {
                    subject: root.subject.clone(),
                    thumbprint: root.thumbprint.clone(),
                    pinned: trust_root.is_some(),
                });
            }
            trust.roots.push(root.clone());
        }
        Some(_) => {}
        None if !trust.roots.iter().any(|r| r.subject == leaf.issuer) => {
            return Err(Error::UntrustedIssuer {
                subject: leaf.subject.clone(),
                issuer: leaf.issuer.clone(),
            });
        }
        None => {}
    }
    trust.crls.extend(crl.map(<[u8]>::to_vec));
    let id = key_id(&leaf.public_key);
    let pending = stores.pending()?.into_iter().find(|p| p.id == id);
    let in_my = stores
        .list(StoreName::My)?
        .iter()
        .any(|e| e.id == leaf.thumbprint && e.has_key);
    let host = match (&pending, in_my) {
        (Some(p), _) => crate::request::parse_dn(&p.info.subject)
            .ok()
            .and_then(|dn| dn.common_name().map(str::to_owned))
            .ok_or_else(|| {
                Error::certificate(format!(
                    "the pending request's subject '{}' names no host",
                    p.info.subject
                ))
            })?,
        (None, true) => leaf.common_name.clone().unwrap_or_default(),
        (None, false) => {
            return Err(Error::certificate(format!(
                "no pending key on this machine matches the public key of {} (it was not requested here, or was accepted into another store)",
                leaf.subject
            )));
        }
    };
    let held = Held {
        cert: leaf.clone(),
        key: KeyState::Matches,
    };
    let mut refusals =
        match choose_channel_certificate(std::slice::from_ref(&held), &trust, &host, now) {
            Ok(_) => return Ok(()),
            Err(mut refused) => refused
                .candidates
                .pop()
                .map(|c| c.refusals)
                .unwrap_or_default(),
        };
    if !channel_checks {
        refusals.retain(|r| !matches!(r, Refusal::OtherName { .. } | Refusal::MissingEku { .. }));
        if refusals.is_empty() {
            return Ok(());
        }
    }
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    Err(Error::certificate(format!(
        "its certificate {} cannot be the channel certificate of {host}: {}; nothing was installed",
        leaf.subject,
        reasons.join("; ")
    )))
}

/// MOMCertImport's part of an install: select the channel certificate in the machine's stores
/// and record it in the agent's settings, under the stores' lock.
fn select_and_record(
    machine: &std::path::Path,
    stores: &Stores,
    lock: &crate::store::StoreLock,
    host: &str,
    leaf: Accepted,
    root: Added,
    now: std::time::SystemTime,
) -> Result<Installed> {
    // The install proved the certificate could serve; a refusal now means the stores changed
    // under the lock's holder, and is said as it is.
    let selection = select_channel_certificate(stores, host, now)?
        .map_err(|refused| Error::certificate(refused.to_string()))?;
    let (_, settings_changed) = AgentSettings::record(machine, lock, Some(&selection.chosen))?;
    Ok(Installed {
        leaf,
        root,
        machine_key_set: true,
        channel: Some(selection.chosen),
        settings_changed,
    })
}

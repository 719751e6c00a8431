//! The installer bundle: one file with an agent's certificate and the root that issued it, as
//! a PKCS#7 certs-only structure in PEM (`-----BEGIN PKCS7-----`), which `openssl pkcs7
//! -print_certs` reads.

use cms::content_info::ContentInfo;
use cms::signed_data::{CertificateSet, SignedData};
use der::{Decode, Encode};
use x509_cert::Certificate;

use super::channel::{
    AgentSettings, Held, KeyState, choose_channel_certificate, select_channel_certificate,
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
    Error::Certificate(format!("bundle: {what}"))
}

/// Writes the bundle for `leaf` (DER) issued by `root` (DER).
pub fn write_bundle(leaf: &[u8], root: &[u8]) -> Result<String> {
    let certs = [leaf, root]
        .iter()
        .map(|der| Certificate::from_der(der).map_err(bad))
        .collect::<Result<Vec<_>>>()?;
    let info = ContentInfo::try_from(certs).map_err(bad)?;
    let der = info.to_der().map_err(bad)?;
    der::pem::encode_string(BUNDLE_LABEL, der::pem::LineEnding::CRLF, &der).map_err(bad)
}

/// Reads a bundle (PEM or DER): exactly one CA certificate and one certificate it issued, in
/// any order (PKCS#7 sorts its set by encoding, so the chain is found by issuer and subject).
pub fn read_bundle(bytes: &[u8]) -> Result<Bundle> {
    if bytes.len() > MAX_BUNDLE_BYTES {
        return Err(bad(format!("larger than {MAX_BUNDLE_BYTES} bytes")));
    }
    let trimmed = bytes.trim_ascii_start();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(trimmed).map_err(bad)?;
        if label != BUNDLE_LABEL && label != "CMS" {
            return Err(bad(format!("PEM label '{label}' is not {BUNDLE_LABEL}")));
        }
        der
    } else {
        trimmed.to_vec()
    };
    let info = ContentInfo::from_der(&der).map_err(bad)?;
    if info.content_type != const_oid::db::rfc5911::ID_SIGNED_DATA {
        return Err(bad("not a PKCS#7 signed-data structure"));
    }
    let signed: SignedData = info.content.decode_as().map_err(bad)?;
    let CertificateSet(set) = signed
        .certificates
        .ok_or_else(|| bad("it holds no certificates"))?;
    let certs = set
        .iter()
        .map(|choice| match choice {
            cms::cert::CertificateChoices::Certificate(c) => {
                CertInfo::parse(&c.to_der().map_err(bad)?)
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
/// bundle has proved itself: its root must already be in `Root` or be the one `trust_root`
/// names (its SHA-1 thumbprint or SHA-256, as the CA's operator publishes it), and its
/// certificate must chain to that root (rustls-webpki), name its host, carry both channel
/// purposes, be valid now, and be for a key pending on this machine. Anything else is refused
/// before a single file changes. Then: accept the certificate where its key is pending (the
/// machine's stores first, then the user's, as certreq -accept looks; only the user's with
/// `user_only`), trust the root there, and in the machine's stores run MOMCertImport's
/// selection for the certificate's common name and record the result in the agent's settings.
pub fn install_bundle(
    machine: &std::path::Path,
    bytes: &[u8],
    user_only: bool,
    trust_root: Option<&str>,
    now: std::time::SystemTime,
) -> Result<Installed> {
    let bundle = read_bundle(bytes)?;
    let host = bundle
        .leaf
        .common_name
        .clone()
        .ok_or_else(|| bad("the agent certificate has no common name"))?;
    Stores::in_key_stores(machine, user_only, |stores, lock, machine_key_set| {
        prove(stores, &bundle, &host, trust_root, now)?;
        let leaf = stores.accept(lock, &bundle.leaf.der, now)?;
        let root = stores.add_root(lock, &bundle.root.der, false)?;
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

/// The checks a bundle passes before anything is installed from it; see [`install_bundle`].
fn prove(
    stores: &Stores,
    bundle: &Bundle,
    host: &str,
    trust_root: Option<&str>,
    now: std::time::SystemTime,
) -> Result<()> {
    let roots: Vec<CertInfo> = stores
        .list(StoreName::Root)?
        .into_iter()
        .filter_map(|e| e.cert)
        .collect();
    let known = roots.iter().any(|r| r.der == bundle.root.der);
    if !known && !trust_root.is_some_and(|pin| pin_matches(pin, &bundle.root)) {
        return Err(Error::UntrustedRoot {
            subject: bundle.root.subject.clone(),
            thumbprint: bundle.root.thumbprint.clone(),
            pinned: trust_root.is_some(),
        });
    }
    let id = key_id(&bundle.leaf.public_key);
    let in_my = stores
        .list(StoreName::My)?
        .iter()
        .any(|e| e.id == bundle.leaf.thumbprint && e.has_key);
    if !in_my && !stores.pending()?.iter().any(|p| p.id == id) {
        return Err(bad(format!(
            "no pending key on this machine matches the public key of {} (it was not requested here, or was accepted into another store)",
            bundle.leaf.subject
        )));
    }
    let leaf = Held {
        cert: bundle.leaf.clone(),
        key: KeyState::Matches,
    };
    let refusals = match choose_channel_certificate(
        std::slice::from_ref(&leaf),
        std::slice::from_ref(&bundle.root),
        host,
        now,
    ) {
        Ok(_) => return Ok(()),
        Err(Error::NoChannelCertificate { mut candidates, .. }) => {
            candidates.pop().map(|c| c.refusals).unwrap_or_default()
        }
        Err(e) => return Err(e),
    };
    let reasons: Vec<String> = refusals.iter().map(ToString::to_string).collect();
    Err(bad(format!(
        "its certificate {} cannot be the channel certificate of {host}: {}; nothing was installed",
        bundle.leaf.subject,
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
    let selection = select_channel_certificate(stores, host, now)?;
    let (_, settings_changed) = AgentSettings::record(machine, lock, Some(&selection.chosen))?;
    Ok(Installed {
        leaf,
        root,
        machine_key_set: true,
        channel: Some(selection.chosen),
        settings_changed,
    })
}

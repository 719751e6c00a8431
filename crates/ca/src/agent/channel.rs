//! The agent's channel certificate: MOMCertImport's selection from `My` and the settings it
//! records, as the agent keeps them in the registry.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};
use webpki::{ALL_VERIFICATION_ALGS, EndEntityCert, KeyUsage};

use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::request::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH, PrivateKey};
use crate::store::{StoreLock, StoreName, Stores, Trust, write_private};
use crate::time::{human, seconds, whole};

/// Where the agent's settings live below a machine folder.
pub const AGENT_SETTINGS: &str = "Agent/settings.json";

/// The agent's settings that MOMCertImport writes (`HKLM\SOFTWARE\Microsoft\Microsoft
/// Operations Manager\3.0\Machine Settings` on Windows), under the registry's value names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// The channel certificate's serial number, its bytes in reverse order, as upper-case hex
    /// (the registry's REG_BINARY value).
    #[serde(
        rename = "ChannelCertificateSerialNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub channel_certificate_serial_number: Option<String>,
    /// The channel certificate's SHA-1 thumbprint, upper-case hex.
    #[serde(
        rename = "ChannelCertificateHash",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub channel_certificate_hash: Option<String>,
}

impl AgentSettings {
    /// The settings file of the machine whose folder is `machine`.
    pub fn path(machine: &Path) -> PathBuf {
        machine.join(AGENT_SETTINGS)
    }

    /// Reads the machine's settings; a machine without the file has none.
    pub fn load(machine: &Path) -> Result<Self> {
        let path = Self::path(machine);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| Error::Settings { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Writes the machine's settings atomically.
    pub fn save(&self, machine: &Path) -> Result<()> {
        let path = Self::path(machine);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| Error::Settings {
            path: path.clone(),
            source,
        })?;
        json.push(b'\n');
        write_private(&path, &json)
    }

    /// Records `cert` as the channel certificate.
    pub fn set_channel_certificate(&mut self, cert: &CertInfo) {
        self.channel_certificate_serial_number =
            Some(crate::hex::upper(&channel_serial_number(&cert.serial)));
        self.channel_certificate_hash = Some(cert.thumbprint.clone());
    }

    /// Forgets the channel certificate (MOMCertImport /Remove). True when one was set.
    pub fn clear_channel_certificate(&mut self) -> bool {
        let had = self.channel_certificate_serial_number.is_some()
            || self.channel_certificate_hash.is_some();
        self.channel_certificate_serial_number = None;
        self.channel_certificate_hash = None;
        had
    }

    /// MOMCertImport's write: records `cert` as the machine's channel certificate, or forgets
    /// it with `None` (`/Remove`), writing the settings only when they change. Returns the
    /// settings now in force and whether they changed. Under the machine's stores' lock, so
    /// that the selection it records and the write are one step.
    pub fn record(
        machine: &Path,
        _lock: &StoreLock,
        cert: Option<&CertInfo>,
    ) -> Result<(Self, bool)> {
        let mut settings = Self::load(machine)?;
        let before = settings.clone();
        match cert {
            Some(cert) => settings.set_channel_certificate(cert),
            None => {
                settings.clear_channel_certificate();
            }
        }
        let changed = settings != before;
        if changed {
            settings.save(machine)?;
        }
        Ok((settings, changed))
    }
}

/// The certificate MOMCertImport recorded as `machine`'s channel certificate, with its private
/// key: what the agent presents when it connects. `None` when none is recorded; an error when
/// the recorded one is no longer in My, or has no key there.
pub fn channel_identity(machine: &Path) -> Result<Option<(CertInfo, PrivateKey)>> {
    let Some(thumb) = AgentSettings::load(machine)?.channel_certificate_hash else {
        return Ok(None);
    };
    let stores = Stores::open(machine, true)?;
    let cert = stores
        .find(StoreName::My, &thumb)?
        .cert
        .ok_or_else(|| Error::certificate(format!("My's entry {thumb} holds no certificate")))?;
    let key = stores.my_key(&thumb)?.ok_or_else(|| {
        Error::key(format!(
            "the channel certificate {thumb} has no private key in My"
        ))
    })?;
    Ok(Some((cert, key)))
}

/// The serial number as MOMCertImport records it: the certificate's serial number bytes (as
/// encoded, a leading zero octet included) in reverse order. The whole array is reversed,
/// whatever its length.
pub fn channel_serial_number(serial: &[u8]) -> Vec<u8> {
    serial.iter().rev().copied().collect()
}

/// Why a certificate in `My` cannot be the agent's channel certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Neither its common name nor a DNS alternative name is the host's.
    OtherName {
        /// The names it carries.
        names: Vec<String>,
    },
    /// Its private key is not in the store.
    NoPrivateKey,
    /// The key beside it is not the key of the certificate.
    WrongPrivateKey,
    /// Its validity has not started.
    NotYetValid {
        /// Start of validity (RFC 3339 in JSON).
        #[serde(serialize_with = "crate::time::as_rfc3339::serialize")]
        not_before: SystemTime,
    },
    /// Its validity has ended.
    Expired {
        /// End of validity (RFC 3339 in JSON).
        #[serde(serialize_with = "crate::time::as_rfc3339::serialize")]
        not_after: SystemTime,
    },
    /// It lacks an extended key usage the channel needs.
    MissingEku {
        /// The purpose missing.
        purpose: &'static str,
        /// Its OID.
        oid: &'static str,
    },
    /// Its chain does not end at a certificate in `Root`, or does not verify.
    Untrusted {
        /// What the path validator said.
        detail: String,
    },
    /// Its issuer's CRL lists it.
    Revoked,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OtherName { names } if names.is_empty() => {
                f.write_str("it names no host (no common name, no DNS alternative name)")
            }
            Refusal::OtherName { names } => write!(f, "it is for {}", names.join(", ")),
            Refusal::NoPrivateKey => f.write_str("its private key is not on this machine"),
            Refusal::WrongPrivateKey => {
                f.write_str("the key stored beside it does not match its public key")
            }
            Refusal::NotYetValid { not_before } => {
                write!(f, "it is not valid yet (from {})", human(*not_before))
            }
            Refusal::Expired { not_after } => {
                write!(f, "it expired on {}", human(*not_after))
            }
            Refusal::MissingEku { purpose, oid } => {
                write!(f, "it lacks the {purpose} extended key usage ({oid})")
            }
            Refusal::Untrusted { detail } => {
                write!(f, "it does not chain to a trusted root in Root: {detail}")
            }
            Refusal::Revoked => f.write_str("it is revoked: its issuer's CRL lists it"),
        }
    }
}

/// A certificate in `My` and the reasons it cannot serve (none for the chosen one).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The certificate.
    pub cert: CertInfo,
    /// Every condition it fails, in the order they are checked.
    pub refusals: Vec<Refusal>,
}

/// MOMCertImport's refusal: no certificate in `My` can be the channel certificate of `host`;
/// every certificate looked at, with every condition it fails.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", no_channel(.host, .candidates))]
pub struct NoChannel {
    /// The host name asked for.
    pub host: String,
    /// Every certificate looked at, with its refusals.
    pub candidates: Vec<Candidate>,
}

fn no_channel(host: &str, candidates: &[Candidate]) -> String {
    let mut text = format!("no certificate in My can be the channel certificate of {host}");
    if candidates.is_empty() {
        text.push_str(": the My store is empty (accept the issued certificate first)");
    }
    for c in candidates {
        let reasons: Vec<String> = c.refusals.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "\n  {} ({}): {}",
            c.cert.thumbprint,
            c.cert.subject,
            reasons.join("; ")
        ));
    }
    text
}

/// MOMCertImport's answer: the certificate chosen and every certificate looked at.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The chosen certificate: the newest one that passes every check.
    pub chosen: CertInfo,
    /// Every certificate in `My`, with its refusals.
    pub candidates: Vec<Candidate>,
}

/// Whether a certificate's private key is at hand, as the selection needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// No private key is kept beside it.
    Missing,
    /// A key is kept beside it, but it is not the certificate's.
    Wrong,
    /// Its own key is kept beside it.
    Matches,
}

/// A certificate of `My` as the selection sees it.
#[derive(Debug, Clone)]
pub struct Held {
    /// The certificate.
    pub cert: CertInfo,
    /// Its private key's state.
    pub key: KeyState,
}

/// Chooses the channel certificate for `host` from the machine's `My` store, as MOMCertImport
/// does; see [`choose_channel_certificate`], here over the stores' contents. The outer error
/// is the stores' (they cannot be read); the inner one is MOMCertImport's refusal.
pub fn select_channel_certificate(
    stores: &Stores,
    host: &str,
    now: SystemTime,
) -> Result<std::result::Result<Selection, NoChannel>> {
    Ok(choose_channel_certificate(
        &held_certificates(stores)?,
        &stores.trust()?,
        host,
        now,
    ))
}

/// The certificates of the machine's `My` store with their keys' state.
pub fn held_certificates(stores: &Stores) -> Result<Vec<Held>> {
    let mut my = Vec::new();
    for entry in stores.list(StoreName::My)? {
        let Some(cert) = entry.cert else { continue };
        let key = match stores.my_key(&cert.thumbprint)? {
            None => KeyState::Missing,
            Some(key) if key.public_key_der()? != cert.public_key => KeyState::Wrong,
            Some(_) => KeyState::Matches,
        };
        my.push(Held { cert, key });
    }
    Ok(my)
}

/// MOMCertImport's choice for `host` among `my`, trusting `trust`: a certificate naming `host`
/// (common name or DNS alternative name), with its private key, valid at `now`, carrying both
/// server and client authentication, whose chain ends at one of the trusted roots (checked by
/// rustls-webpki for both purposes) and that no CRL of its issuer lists. Several qualify: the
/// one whose validity started last (then the one that ends last). None: [`NoChannel`], listing
/// each certificate and every condition it fails. Pure: the caller brings the certificates.
pub fn choose_channel_certificate(
    my: &[Held],
    trust: &Trust,
    host: &str,
    now: SystemTime,
) -> std::result::Result<Selection, NoChannel> {
    let crls: Vec<crate::cert::CrlInfo> = trust
        .crls
        .iter()
        .filter_map(|der| crate::cert::CrlInfo::parse(der).ok())
        .collect();
    let roots: Vec<CertificateDer<'_>> = trust
        .roots
        .iter()
        .map(|c| CertificateDer::from(c.der.as_slice()))
        .collect();
    // A root webpki cannot read is no anchor; every certificate that chains to it is refused
    // as untrusted, which names the problem.
    let anchors: Vec<TrustAnchor<'_>> = roots
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    let candidates: Vec<Candidate> = my
        .iter()
        .map(|held| Candidate {
            cert: held.cert.clone(),
            refusals: check(
                &held.cert,
                held.key,
                host,
                now,
                &anchors,
                &trust.roots,
                &crls,
            ),
        })
        .collect();
    let chosen = candidates
        .iter()
        .filter(|c| c.refusals.is_empty())
        .max_by_key(|c| {
            (
                c.cert.not_before,
                c.cert.not_after,
                c.cert.thumbprint.clone(),
            )
        })
        .map(|c| c.cert.clone());
    match chosen {
        Some(chosen) => Ok(Selection { chosen, candidates }),
        None => Err(NoChannel {
            host: host.to_owned(),
            candidates,
        }),
    }
}

/// Every condition `cert` fails to be the channel certificate of `host`.
pub(crate) fn check(
    cert: &CertInfo,
    key: KeyState,
    host: &str,
    now: SystemTime,
    anchors: &[TrustAnchor<'_>],
    roots: &[CertInfo],
    crls: &[crate::cert::CrlInfo],
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    if !cert.names_host(host) {
        refusals.push(Refusal::OtherName {
            names: cert
                .common_name
                .iter()
                .chain(&cert.dns_names)
                .cloned()
                .collect(),
        });
    }
    match key {
        KeyState::Missing => refusals.push(Refusal::NoPrivateKey),
        KeyState::Wrong => refusals.push(Refusal::WrongPrivateKey),
        KeyState::Matches => {}
    }
    let now = whole(now);
    if now < cert.not_before {
        refusals.push(Refusal::NotYetValid {
            not_before: cert.not_before,
        });
    } else if now > cert.not_after {
        refusals.push(Refusal::Expired {
            not_after: cert.not_after,
        });
    }
    for (purpose, oid) in [
        ("server authentication", EKU_SERVER_AUTH),
        ("client authentication", EKU_CLIENT_AUTH),
    ] {
        if !cert.has_eku(oid) {
            refusals.push(Refusal::MissingEku { purpose, oid });
        }
    }
    match chain_problem(cert, now, anchors) {
        Some(detail) => refusals.push(Refusal::Untrusted { detail }),
        None if revoked(cert, roots, crls) => refusals.push(Refusal::Revoked),
        None => {}
    }
    refusals
}

/// Whether a CRL published by the root that issued `cert` (the root of `roots` with its
/// issuer's name whose key signed it) lists it. Every such CRL counts, whichever order they
/// come in, and only a CRL that root signed (checked over its `tbsCertList` as received):
/// another root of the same name, or a forged CRL, can neither revoke nor hide a
/// certificate. A certificate whose root published no CRL here is not refused for it (a
/// machine that holds no CRL cannot know; the CRL distribution point is for relying parties
/// that fetch it); a CRL past its nextUpdate still counts for what it lists.
fn revoked(cert: &CertInfo, roots: &[CertInfo], crls: &[crate::cert::CrlInfo]) -> bool {
    roots
        .iter()
        .filter(|r| r.subject == cert.issuer)
        .filter(|r| {
            crate::store::spki_of(r)
                .is_ok_and(|k| crate::cert::verify_certificate(&cert.der, &k).is_ok())
        })
        .any(|root| {
            crls.iter().any(|crl| {
                crl.issuer == root.subject
                    && crl.lists(&cert.serial)
                    && crate::store::crl_signed_by(&crl.der, root).is_ok()
            })
        })
}

/// What rustls-webpki finds wrong with the path from `cert` to the anchors, for both of the
/// channel's purposes; validity and EKU problems are reported by their own checks, and
/// revocation by [`revoked`], so only path problems are named here.
fn chain_problem(cert: &CertInfo, now: SystemTime, anchors: &[TrustAnchor<'_>]) -> Option<String> {
    if anchors.is_empty() {
        return Some("the Root store is empty".into());
    }
    let der = CertificateDer::from(cert.der.as_slice());
    let ee = match EndEntityCert::try_from(&der) {
        Ok(ee) => ee,
        Err(e) => {
            return Some(format!(
                "the certificate cannot be read for validation ({e})"
            ));
        }
    };
    // Validate at a time inside the certificate's validity: expiry is its own refusal. (Not
    // `clamp`, which panics when a certificate ends before it starts.)
    let at = whole(now).max(cert.not_before).min(cert.not_after);
    let time = UnixTime::since_unix_epoch(Duration::from_secs(seconds(at)));
    for usage in [KeyUsage::server_auth(), KeyUsage::client_auth()] {
        match ee.verify_for_usage(ALL_VERIFICATION_ALGS, anchors, &[], time, usage, None, None) {
            Ok(_) => {}
            Err(webpki::Error::RequiredEkuNotFoundContext(_)) => {}
            Err(webpki::Error::UnknownIssuer) => {
                return Some(format!(
                    "no certificate in Root issued it (its issuer is {})",
                    cert.issuer
                ));
            }
            Err(e) => return Some(describe(&e)),
        }
    }
    None
}

fn describe(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::InvalidSignatureForPublicKey => {
            "its signature does not verify with the root's key".into()
        }
        E::CertExpired { .. } | E::CertNotValidYet { .. } => {
            "the root is outside its validity".into()
        }
        E::CaUsedAsEndEntity => "it is itself a CA certificate, not an end entity".into(),
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "it is signed with an algorithm the validator does not accept".into()
        }
        other => format!("{other:?}"),
    }
}

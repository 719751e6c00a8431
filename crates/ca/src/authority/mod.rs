//! The standalone CA of the seed: a self-signed root whose only job is agent certificates, its
//! folder, its issuing policy, its request database and its CRL.
//!
//! [`Authority`] is the CA in its folder ([`Authority::init`], [`Authority::open`]) with
//! certreq's and certutil's verbs: [`submit`](Authority::submit),
//! [`resubmit`](Authority::resubmit), [`deny`](Authority::deny),
//! [`revoke`](Authority::revoke), [`crl`](Authority::crl), and the database's [`Record`]s
//! ([`record`](Authority::record), [`list`](Authority::list)). Every certificate it records
//! passed a review under the policy ([`Issuer::review`], [`CaConfig`]): the database itself is
//! not public. The drop folder's batch is [`crate::dropfolder`].
//!
//! The folder holds `ca.key` (PKCS#8 PEM, 0600, optionally password-encrypted), `ca.cer` (the
//! root, PEM), `config.json` (the policy) and `ca.db` (the request database).

mod db;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use const_oid::db::rfc5280::{ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME};
use const_oid::db::rfc5912::{ID_EXTENSION_REQ, ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH};
use der::asn1::{Ia5String, OctetString};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::{CrlNumber, CrlReason};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::cert::CertInfo;
use crate::dropfolder::escape_control;
use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::{Hash, KeyType, PrivateKey, ReceivedRequest, os_rng};
use crate::store::write_private;
use crate::time::{days_after, seconds, whole};
use db::Database;
pub use db::{Disposition, Filter, Record};
pub(crate) use db::{Issue, NewRequest};

/// The CA's key file in its folder.
pub const CA_KEY: &str = "ca.key";
/// The CA's certificate file in its folder.
pub const CA_CERT: &str = "ca.cer";
/// The CA's policy file in its folder.
pub const CA_CONFIG: &str = "config.json";
/// The CA's database file in its folder.
pub const CA_DB: &str = "ca.db";

/// What happens when an issued certificate would outlive the root (Vault's
/// `leaf_not_after_behavior`; `permit` is deliberately missing: a certificate that outlives
/// its issuer fails validation the day the root expires).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeafNotAfter {
    /// End the certificate with the root (what the seed relies on).
    #[default]
    Truncate,
    /// Deny the request.
    Err,
}

/// The CA's issuing policy (`config.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The CA's name (the root's common name).
    pub name: String,
    /// Validity of issued certificates, in days.
    pub validity_days: u32,
    /// When an issued certificate would outlive the root.
    #[serde(default)]
    pub leaf_not_after: LeafNotAfter,
    /// Issue on submission instead of leaving requests pending.
    #[serde(default)]
    pub auto_issue: bool,
    /// Accept RSA keys of 1024 bits (broken for this purpose; the seed's file uses them).
    #[serde(default)]
    pub allow_legacy_rsa1024: bool,
    /// DNS names a request may add beside its common name: names ending in one of these
    /// suffixes (for example `.company.local`). Empty: only the common name.
    #[serde(default)]
    pub allowed_dns_suffixes: Vec<String>,
    /// How long a CRL is valid, in days.
    #[serde(default = "default_crl_days")]
    pub crl_validity_days: u32,
}

fn default_crl_days() -> u32 {
    7
}

/// How to create a CA.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The root's common name.
    pub name: String,
    /// The root's key.
    pub key: KeyType,
    /// The root's validity in years.
    pub validity_years: u32,
    /// Validity of issued certificates, in days.
    pub issued_validity_days: u32,
    /// Encrypt the CA's key with this password.
    pub password: Option<zeroize::Zeroizing<String>>,
}

impl Default for InitOptions {
    /// A careful operator's choice today: a P-256 root for 10 years, agent certificates for
    /// one year (a standalone CA's default), the key unencrypted only when no password is given.
    fn default() -> Self {
        Self {
            name: "JAMA00".into(),
            key: KeyType::EcdsaP256,
            validity_years: 10,
            issued_validity_days: 365,
            password: None,
        }
    }
}

/// The signer of the CA's key. RSA signs with blinding (`build_with_rng`).
#[derive(Debug)]
enum CaSigner {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

impl CaSigner {
    fn new(key: &PrivateKey) -> Self {
        match key {
            PrivateKey::P256(k) => CaSigner::P256(p256::ecdsa::SigningKey::from(k)),
            PrivateKey::P384(k) => CaSigner::P384(p384::ecdsa::SigningKey::from(k)),
            PrivateKey::Rsa(k) => {
                CaSigner::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new((**k).clone())))
            }
        }
    }

    fn sign<B: Builder>(&self, builder: B) -> Result<B::Output> {
        match self {
            CaSigner::P256(k) => builder.build::<_, p256::ecdsa::DerSignature>(k),
            CaSigner::P384(k) => builder.build::<_, p384::ecdsa::DerSignature>(k),
            CaSigner::Rsa(k) => {
                builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&**k, &mut os_rng())
            }
        }
        .map_err(|e| Error::Authority(format!("signing: {e}")))
    }
}

/// The root's profile: self-signed; basicConstraints CA (critical, path length 0), keyUsage
/// keyCertSign + cRLSign, subject key identifier.
struct RootProfile {
    name: Name,
}

impl BuilderProfile for RootProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.name.clone()
    }
    fn get_subject(&self) -> Name {
        self.name.clone()
    }
    fn build_extensions(
        &self,
        spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        Ok(vec![
            BasicConstraints {
                ca: true,
                path_len_constraint: Some(0),
            }
            .to_extension(subject, &[])?,
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign).to_extension(subject, &[])?,
            SubjectKeyIdentifier::try_from(spk)?.to_extension(subject, &[])?,
        ])
    }
}

/// An agent certificate's profile: the CA decides every extension, nothing comes from the
/// request but the names the review approved. basicConstraints CA:FALSE; keyUsage as given;
/// server and client authentication; the DNS names; subject and authority key identifiers.
struct AgentProfile {
    issuer: Name,
    subject: Name,
    dns_names: Vec<String>,
    key_usage: KeyUsage,
    /// The root's subject key identifier.
    aki: Vec<u8>,
}

impl BuilderProfile for AgentProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }
    fn get_subject(&self) -> Name {
        self.subject.clone()
    }
    fn build_extensions(
        &self,
        spk: spki::SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: spki::SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let subject = tbs.subject();
        let names = self
            .dns_names
            .iter()
            .map(|n| Ia5String::new(n).map(GeneralName::DnsName))
            .collect::<der::Result<Vec<_>>>()?;
        Ok(vec![
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }
            .to_extension(subject, &[])?,
            self.key_usage.to_extension(subject, &[])?,
            ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH, ID_KP_CLIENT_AUTH])
                .to_extension(subject, &[])?,
            SubjectAltName(names).to_extension(subject, &[])?,
            SubjectKeyIdentifier::try_from(spk)?.to_extension(subject, &[])?,
            AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(self.aki.clone())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            }
            .to_extension(subject, &[])?,
        ])
    }
}

/// Why the policy refuses a request: a kind a tool can act on, with the reason in words
/// (`Display`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// Its signature does not verify, or its algorithm is not accepted.
    Signature(String),
    /// Part of it cannot be read (the subject, a key, the requested extensions).
    Unreadable(String),
    /// No common name, or one that is not a host name.
    Name(String),
    /// An RSA key below the policy's floor.
    WeakKey {
        /// The key's size.
        bits: u32,
        /// The policy's smallest.
        floor: u32,
    },
    /// A key type or size the CA does not certify.
    KeyType(String),
    /// The certificate would outlive the root (`leaf_not_after = err`), or the root expired.
    Validity(String),
    /// Not a host of the management group's inventory.
    NotInInventory(String),
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Signature(m)
            | Denial::Unreadable(m)
            | Denial::Name(m)
            | Denial::KeyType(m)
            | Denial::Validity(m) => f.write_str(m),
            Denial::WeakKey { bits, floor } => write!(
                f,
                "an RSA key of {bits} bits is below the policy's {floor}: 1024-bit RSA is broken for authentication today. Make a new request with KeyLength = 2048 (or KeyAlgorithm = ECDSA_P256); or, to accept this one anyway, set allow_legacy_rsa1024 in the CA's config.json and -resubmit it"
            ),
            Denial::NotInInventory(host) => write!(
                f,
                "{host} is not an agent or server of the management group's inventory"
            ),
        }
    }
}

/// A request the policy approved: exactly what goes into its certificate.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The common name (a validated DNS name).
    pub common_name: String,
    /// The DNS names, the common name first.
    pub dns_names: Vec<String>,
    /// The public key.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// Whether it is an RSA key (key encipherment allowed).
    pub rsa: bool,
    /// Start of validity: the review's time, to the second.
    pub not_before: SystemTime,
    /// End of validity, to the second, clamped to the root's.
    pub not_after: SystemTime,
    /// What the certificate leaves out of the request, and the validity clamp, in words.
    pub notes: Vec<String>,
}

/// A certificate just signed, not yet recorded.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The serial number's bytes.
    pub serial: Vec<u8>,
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// End of validity.
    pub not_after: SystemTime,
}

/// The signing half of a CA: its key, root and policy. Shared by threads when signing a batch.
#[derive(Debug)]
pub struct Issuer {
    config: CaConfig,
    signer: CaSigner,
    root: Certificate,
    root_info: CertInfo,
    root_ski: Vec<u8>,
}

fn x509_time(t: SystemTime) -> Result<Time> {
    Time::try_from(t).map_err(|e| Error::Authority(format!("time {}: {e}", seconds(t))))
}

fn ext_err(what: &str) -> impl Fn(der::Error) -> Error + '_ {
    move |e| Error::Authority(format!("{what}: {e}"))
}

/// 16 random octets, positive, the first one non-zero: always 16 octets in DER, 126 bits of
/// randomness, never derived from the key.
fn random_serial(rng: &mut impl getrandom::rand_core::CryptoRng) -> Vec<u8> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    bytes.to_vec()
}

/// Whether `name` (lower case) lies below the DNS suffix `suffix` (`.company.local` or
/// `company.local`): on a label boundary, so `company.local` admits `a.company.local` but not
/// `evilcompany.local`, nor the suffix itself.
fn under_suffix(name: &str, suffix: &str) -> bool {
    let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
    !suffix.is_empty()
        && name.len() > suffix.len() + 1
        && name.ends_with(&suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// `years` calendar years after `start` (UTC): the same month, day and time, 29 February
/// becoming 28 February in a year that has none.
fn add_years(start: SystemTime, years: u32) -> Result<SystemTime> {
    let bad = |e: der::Error| Error::Authority(format!("{years} years after the start: {e}"));
    let dt = der::DateTime::from_system_time(start).map_err(bad)?;
    let year = u16::try_from(u32::from(dt.year()) + years)
        .map_err(|_| Error::Authority(format!("{years} years is past the year 9999")))?;
    // der's calendar refuses 29 February in a year without one: the 28th then.
    let end = der::DateTime::new(
        year,
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds(),
    )
    .or_else(|_| der::DateTime::new(year, dt.month(), 28, dt.hour(), dt.minutes(), dt.seconds()))
    .map_err(bad)?;
    Ok(end.to_system_time())
}

impl CaConfig {
    /// Checks the policy's values, naming the field at fault: a suffix must be a DNS name (an
    /// empty one would admit every name), validities at least a day.
    pub fn validate(&self) -> std::result::Result<(), String> {
        check_dns_name(&self.name).map_err(|e| format!("name '{}': {e}", self.name))?;
        if self.validity_days == 0 {
            return Err("validity_days: must be at least 1".into());
        }
        if self.crl_validity_days == 0 {
            return Err("crl_validity_days: must be at least 1".into());
        }
        for (i, suffix) in self.allowed_dns_suffixes.iter().enumerate() {
            let bare = suffix.trim_start_matches('.');
            if bare.is_empty() {
                return Err(format!(
                    "allowed_dns_suffixes[{i}]: '{suffix}' is empty, which would admit every name; give a domain such as .company.local"
                ));
            }
            check_dns_name(bare).map_err(|e| {
                format!("allowed_dns_suffixes[{i}]: '{suffix}' is not a DNS name: {e}")
            })?;
        }
        Ok(())
    }
}

impl Issuer {
    /// The policy.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// When certificates issued at `now` end with the root instead of lasting the policy's
    /// `validity_days`: a sentence to say once (a batch, a tool's run), not per request.
    pub fn truncation(&self, now: SystemTime) -> Option<String> {
        let asked = days_after(now, self.config.validity_days);
        (asked > self.root_info.not_after && self.config.leaf_not_after == LeafNotAfter::Truncate)
            .then(|| {
                format!(
                    "certificates issued now end with the root, at Unix time {}, before the {} days the policy asks",
                    seconds(self.root_info.not_after),
                    self.config.validity_days
                )
            })
    }

    /// The root certificate.
    pub fn root(&self) -> &CertInfo {
        &self.root_info
    }

    /// Reviews an untrusted request under the policy at `now`: its approved content, or the
    /// reason it is denied.
    pub fn review(
        &self,
        received: &ReceivedRequest,
        now: SystemTime,
    ) -> std::result::Result<Approved, Denial> {
        let algorithm = received
            .verify()
            .map_err(|e| Denial::Signature(e.to_string()))?;
        let info = &received.request().info;
        let mut notes = Vec::new();
        if algorithm.hash() == Hash::Sha1 {
            notes.push(format!(
                "the request is signed with {algorithm}: accepted as proof of possession only (this CA never signs with SHA-1)"
            ));
        }
        // The subject: its common name only.
        let mut common_name = None;
        for atv in info.subject.iter() {
            if atv.oid == const_oid::db::rfc4519::CN && common_name.is_none() {
                let cn = x509_cert::ext::pkix::name::DirectoryString::try_from(&atv.value)
                    .map_err(|e| {
                        Denial::Unreadable(format!("the subject's common name cannot be read: {e}"))
                    })?;
                common_name = Some(String::from(cn));
            } else {
                notes.push(format!("subject attribute {} ignored", atv.oid));
            }
        }
        let cn = common_name
            .ok_or_else(|| Denial::Name("the request's subject has no common name (CN)".into()))?;
        check_dns_name(&cn).map_err(|e| {
            Denial::Name(format!(
                "the common name '{cn}' is not a DNS host name: {e}"
            ))
        })?;
        let common_name = cn;

        // The key.
        let mut spki = info.public_key.clone();
        let key_oid = spki.algorithm.oid;
        let rsa = if key_oid == const_oid::db::rfc5912::RSA_ENCRYPTION {
            let key = rsa::RsaPublicKey::try_from(spki.owned_to_ref())
                .map_err(|e| Denial::Unreadable(format!("the RSA key cannot be read: {e}")))?;
            let bits = rsa::traits::PublicKeyParts::n(&key).bits();
            let floor = if self.config.allow_legacy_rsa1024 {
                1024
            } else {
                2048
            };
            if bits < floor {
                return Err(Denial::WeakKey { bits, floor });
            }
            if bits > 8192 {
                return Err(Denial::KeyType(format!(
                    "an RSA key of {bits} bits is larger than 8192"
                )));
            }
            true
        } else if key_oid == const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
            // Re-encoded uncompressed: ring (and so rustls) takes no compressed points.
            use spki::EncodePublicKey;
            let uncompressed = if let Ok(k) = p256::PublicKey::try_from(spki.owned_to_ref()) {
                k.to_public_key_der()
            } else if let Ok(k) = p384::PublicKey::try_from(spki.owned_to_ref()) {
                k.to_public_key_der()
            } else {
                return Err(Denial::KeyType(
                    "only ECDSA keys on P-256 or P-384 are accepted".to_owned(),
                ));
            }
            .map_err(|e| Denial::Unreadable(format!("the EC key cannot be encoded: {e}")))?;
            let uncompressed = SubjectPublicKeyInfoOwned::from_der(uncompressed.as_bytes())
                .map_err(|e| Denial::Unreadable(format!("the EC key cannot be encoded: {e}")))?;
            if uncompressed != spki {
                notes.push("the compressed EC point is written uncompressed".into());
                spki = uncompressed;
            }
            false
        } else {
            return Err(Denial::KeyType(format!(
                "key algorithm {key_oid} is not accepted: RSA (2048 bits or more) or ECDSA P-256 or P-384"
            )));
        };

        // Requested extensions: DNS names the policy allows; everything else the CA decides.
        let mut dns_names = vec![common_name.clone()];
        for attr in info.attributes.iter() {
            if attr.oid != ID_EXTENSION_REQ {
                notes.push(format!(
                    "request attribute {} ignored",
                    named_oid(&attr.oid)
                ));
                continue;
            }
            for value in attr.values.iter() {
                let exts: Vec<Extension> = value.decode_as().map_err(|e| {
                    Denial::Unreadable(format!("the requested extensions cannot be read: {e}"))
                })?;
                for ext in exts {
                    if ext.extn_id == ID_CE_SUBJECT_ALT_NAME {
                        let san =
                            SubjectAltName::from_der(ext.extn_value.as_bytes()).map_err(|e| {
                                Denial::Unreadable(format!(
                                    "the requested alternative names cannot be read: {e}"
                                ))
                            })?;
                        for name in san.0 {
                            self.consider_name(&name, &mut dns_names, &mut notes);
                        }
                    } else if ext.extn_id != ID_CE_KEY_USAGE && ext.extn_id != ID_CE_EXT_KEY_USAGE {
                        notes.push(format!(
                            "requested extension {} ignored",
                            named_oid(&ext.extn_id)
                        ));
                    }
                }
            }
        }

        // Validity, never beyond the root's.
        let now = whole(now);
        let root_end = self.root_info.not_after;
        let mut not_after = days_after(now, self.config.validity_days);
        if not_after > root_end {
            match self.config.leaf_not_after {
                // Said once by `truncation`, not in every request's message.
                LeafNotAfter::Truncate => not_after = root_end,
                LeafNotAfter::Err => {
                    return Err(Denial::Validity(format!(
                        "a certificate of {} days would outlive the root, which ends at Unix time {} (leaf_not_after = err)",
                        self.config.validity_days,
                        seconds(root_end)
                    )));
                }
            }
        }
        if not_after <= now {
            return Err(Denial::Validity(
                "the root has expired: nothing can be issued".into(),
            ));
        }
        Ok(Approved {
            common_name,
            dns_names,
            public_key: spki,
            rsa,
            not_before: now,
            not_after,
            notes,
        })
    }

    fn consider_name(&self, name: &GeneralName, dns: &mut Vec<String>, notes: &mut Vec<String>) {
        let GeneralName::DnsName(d) = name else {
            notes.push("a non-DNS alternative name ignored".into());
            return;
        };
        let d = d.to_string();
        if check_dns_name(&d).is_err() {
            notes.push(format!(
                "alternative name '{d}' ignored: not a DNS host name"
            ));
            return;
        }
        let lower = d.to_ascii_lowercase();
        if dns.iter().any(|n| n.eq_ignore_ascii_case(&lower)) {
            return;
        }
        let allowed = self
            .config
            .allowed_dns_suffixes
            .iter()
            .any(|s| under_suffix(&lower, s));
        if allowed {
            dns.push(d);
        } else {
            notes.push(format!(
                "alternative name '{d}' ignored: not the common name and not allowed by policy"
            ));
        }
    }

    /// Signs the certificate for an approved request with a fresh random serial number.
    pub fn sign(&self, a: &Approved) -> Result<Signed> {
        self.sign_with_rng(a, &mut os_rng())
    }

    /// As [`Issuer::sign`], the serial number drawn from `rng` (tests make it repeatable).
    pub fn sign_with_rng(
        &self,
        a: &Approved,
        rng: &mut impl getrandom::rand_core::CryptoRng,
    ) -> Result<Signed> {
        let serial = random_serial(rng);
        let profile = AgentProfile {
            issuer: self.root.tbs_certificate().subject().clone(),
            subject: Name::from_str(&format!("CN={}", a.common_name))
                .map_err(ext_err("subject"))?,
            dns_names: a.dns_names.clone(),
            key_usage: KeyUsage(if a.rsa {
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
            } else {
                KeyUsages::DigitalSignature.into()
            }),
            aki: self.root_ski.clone(),
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::new(&serial).map_err(ext_err("serial"))?,
            Validity::new(x509_time(a.not_before)?, x509_time(a.not_after)?),
            a.public_key.clone(),
        )
        .map_err(|e| Error::Authority(format!("certificate: {e}")))?;
        let cert = self.signer.sign(builder)?;
        Ok(Signed {
            serial,
            der: cert.to_der().map_err(ext_err("certificate"))?,
            not_after: a.not_after,
        })
    }
}

/// A CA: its [`Issuer`] and its request database.
#[derive(Debug)]
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer,
    db: Database,
}

/// What submitting a request did.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The request's record after submission.
    pub record: Record,
    /// True when the same request was submitted before: nothing changed.
    pub existing: bool,
}

/// RFC 5280's revocation reasons, by certutil's names (case-insensitive) or number.
pub fn parse_reason(text: &str) -> Result<u8> {
    const NAMES: [(&str, u8); 9] = [
        ("unspecified", 0),
        ("keycompromise", 1),
        ("cacompromise", 2),
        ("affiliationchanged", 3),
        ("superseded", 4),
        ("cessationofoperation", 5),
        ("certificatehold", 6),
        ("privilegewithdrawn", 9),
        ("aacompromise", 10),
    ];
    let lower = text.to_ascii_lowercase().replace(['_', '-'], "");
    if let Some((_, code)) = NAMES.iter().find(|(n, _)| *n == lower) {
        return Ok(*code);
    }
    match text.parse::<u8>() {
        Ok(code) if NAMES.iter().any(|(_, c)| *c == code) => Ok(code),
        _ => Err(Error::Authority(format!(
            "unknown revocation reason '{text}': Unspecified, KeyCompromise, CACompromise, AffiliationChanged, Superseded, CessationOfOperation, CertificateHold, PrivilegeWithdrawn, AACompromise (or 0-6, 9, 10)"
        ))),
    }
}

fn reason_of(code: u8) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

impl Authority {
    /// Creates a CA in `dir` (which must not hold one): a self-signed root (basicConstraints
    /// CA, keyUsage keyCertSign + cRLSign, subject key identifier), its key, its policy and its
    /// empty database.
    pub fn init(dir: &Path, options: &InitOptions, now: SystemTime) -> Result<Self> {
        check_dns_name(&options.name).map_err(|e| {
            Error::Authority(format!(
                "the CA name '{}' must be a simple name: {e}",
                options.name
            ))
        })?;
        if dir.join(CA_KEY).exists() || dir.join(CA_CERT).exists() {
            return Err(Error::Authority(format!(
                "{} already holds a CA; nothing was changed",
                dir.display()
            )));
        }
        if options.validity_years == 0 || options.issued_validity_days == 0 {
            return Err(Error::Authority(
                "validity must be at least one year and one day".into(),
            ));
        }
        let key = PrivateKey::generate(options.key)?;
        let signer = CaSigner::new(&key);
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
            .map_err(ext_err("public key"))?;
        let name = Name::from_str(&format!("CN={}", options.name)).map_err(ext_err("name"))?;
        let start = whole(now);
        let end = add_years(start, options.validity_years)?;
        let builder = CertificateBuilder::new(
            RootProfile { name },
            SerialNumber::new(&random_serial(&mut os_rng())).map_err(ext_err("serial"))?,
            Validity::new(x509_time(start)?, x509_time(end)?),
            spki,
        )
        .map_err(|e| Error::Authority(format!("root: {e}")))?;
        let root = signer.sign(builder)?;
        let root_der = root.to_der().map_err(ext_err("root"))?;

        fs_create(dir)?;
        // An existing folder (made by hand, or by a umask) becomes owner-only too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| Error::Io {
                    path: dir.to_owned(),
                    source,
                },
            )?;
        }
        let config = CaConfig {
            name: options.name.clone(),
            validity_days: options.issued_validity_days,
            leaf_not_after: LeafNotAfter::Truncate,
            auto_issue: false,
            allow_legacy_rsa1024: false,
            allowed_dns_suffixes: Vec::new(),
            crl_validity_days: default_crl_days(),
        };
        let key_pem = match &options.password {
            Some(p) => key.to_encrypted_pkcs8_pem(p)?,
            None => key.to_pkcs8_pem()?,
        };
        // Database and policy first, the key and the root last: a folder with a root always
        // has everything else.
        drop(Database::open(&dir.join(CA_DB))?);
        write_private(&dir.join(CA_CONFIG), &config_json(&config)?)?;
        write_private(&dir.join(CA_KEY), key_pem.as_bytes())?;
        let pem = crate::cert::certificate_to_pem(&root_der)?;
        opsmgr_fsutil::write_atomic(&dir.join(CA_CERT), pem.as_bytes()).map_err(|source| {
            Error::Io {
                path: dir.join(CA_CERT),
                source,
            }
        })?;
        Self::open(dir, options.password.as_deref().map(String::as_str))
    }

    /// Opens the CA in `dir`; an encrypted key needs `password`.
    pub fn open(dir: &Path, password: Option<&str>) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| Error::Io { path, source })
        };
        let config_bytes = read(CA_CONFIG)?;
        let config: CaConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::Authority(format!("{}: {e}", dir.join(CA_CONFIG).display())))?;
        config
            .validate()
            .map_err(|e| Error::Authority(format!("{}: {e}", dir.join(CA_CONFIG).display())))?;
        let key_pem = zeroize::Zeroizing::new(read(CA_KEY)?);
        let key_text = std::str::from_utf8(&key_pem)
            .map_err(|_| Error::Key(format!("{}: not PEM", dir.join(CA_KEY).display())))?;
        let key_path = dir.join(CA_KEY).display().to_string();
        let key = PrivateKey::from_pkcs8_pem(key_text, password).map_err(|e| match e {
            Error::PasswordRequired(_) => Error::PasswordRequired(key_path.clone()),
            Error::WrongPassword(_) => Error::WrongPassword(key_path.clone()),
            other => Error::Key(format!("{key_path}: {other}")),
        })?;
        let root_info = CertInfo::parse(&read(CA_CERT)?)?;
        if key.public_key_der()? != root_info.public_key {
            return Err(Error::Authority(format!(
                "{} is not the certificate of {}",
                dir.join(CA_CERT).display(),
                dir.join(CA_KEY).display()
            )));
        }
        let root = Certificate::from_der(&root_info.der).map_err(ext_err("root"))?;
        let root_ski = SubjectKeyIdentifier::try_from(
            root.tbs_certificate()
                .subject_public_key_info()
                .owned_to_ref(),
        )
        .map_err(ext_err("root key identifier"))?
        .0
        .as_bytes()
        .to_vec();
        let db = Database::open(&dir.join(CA_DB))?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer: Issuer {
                config,
                signer: CaSigner::new(&key),
                root,
                root_info,
                root_ski,
            },
            db,
        })
    }

    /// The CA's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The signing half, shareable between threads.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The database, for the drop folder's batch.
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    /// The database, for the drop folder's transactions.
    pub(crate) fn db_mut(&mut self) -> &mut Database {
        &mut self.db
    }

    /// Saves a changed policy.
    pub fn set_config(&mut self, config: CaConfig) -> Result<()> {
        config.validate().map_err(Error::Authority)?;
        write_private(&self.dir.join(CA_CONFIG), &config_json(&config)?)?;
        self.issuer.config = config;
        Ok(())
    }

    /// Receives a request (certreq -submit): recorded as pending (or denied with the reason);
    /// issued at once when the policy auto-issues. The same request again finds its first
    /// record and changes nothing.
    pub fn submit(&mut self, bytes: &[u8], requester: &str, now: SystemTime) -> Result<Submitted> {
        let request = ReceivedRequest::parse(bytes)?;
        // The bytes as received: the signature covers them, not a re-encoding.
        let der = request.der();
        let digest = Sha256::digest(der);
        if let Some(record) = self.db.by_digest(&digest)? {
            return Ok(Submitted {
                record,
                existing: true,
            });
        }
        let review = self.issuer.review(&request, now);
        let subject = escape_control(&request.request().info.subject.to_string());
        let (disposition, message, common_name) = match &review {
            Ok(a) => (
                Disposition::Pending,
                pending_message(a),
                Some(a.common_name.clone()),
            ),
            Err(reason) => (
                Disposition::Denied,
                escape_control(&reason.to_string()),
                None,
            ),
        };
        let auto = match &review {
            Ok(a) if self.issuer.config.auto_issue => Some(a),
            _ => None,
        };
        // Recorded and, when the policy auto-issues, issued in the same transaction. A serial
        // collision (2^-126) is refused by the database: sign again.
        let mut attempts = 0;
        let id = loop {
            let signed = auto.map(|a| self.issuer.sign(a)).transpose()?;
            let result = self.db.transaction(|b| {
                let (id, _) = b.insert(&NewRequest {
                    received: now,
                    requester,
                    der,
                    sha256: &digest,
                    subject: &subject,
                    common_name: common_name.as_deref(),
                    disposition,
                    message: &message,
                })?;
                if let (Some(s), Some(a)) = (&signed, auto) {
                    b.issue(&Issue {
                        id,
                        serial: &s.serial,
                        certificate: &s.der,
                        not_after: s.not_after,
                        message: &issued_message(a),
                    })?;
                }
                Ok(id)
            });
            match result {
                Err(Error::SerialInUse(_)) if attempts < 3 => attempts += 1,
                other => break other?,
            }
        };
        let record = self.db.get(id)?.ok_or(Error::NoSuchRequest(id))?;
        Ok(Submitted {
            record,
            existing: false,
        })
    }

    fn issue_approved(&mut self, id: i64, approved: &Approved, reopen: bool) -> Result<Record> {
        // A serial collision (2^-126) would be refused by the database; try a fresh one.
        let mut attempts = 0;
        loop {
            let signed = self.issuer.sign(approved)?;
            let message = issued_message(approved);
            let result = self.db.transaction(|b| {
                if reopen {
                    b.reopen(id)?;
                }
                b.issue(&Issue {
                    id,
                    serial: &signed.serial,
                    certificate: &signed.der,
                    not_after: signed.not_after,
                    message: &message,
                })
            });
            match result {
                Err(Error::SerialInUse(_)) if attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
                Ok(()) => return self.db.get(id)?.ok_or(Error::NoSuchRequest(id)),
            }
        }
    }

    /// Issues request `id` (certutil -resubmit), reviewing it again under today's policy: a
    /// pending request, or a denied one (as AD CS allows for failed requests: after the policy
    /// changed, say). A request the policy still refuses is denied with today's reason.
    pub fn resubmit(&mut self, id: i64, now: SystemTime) -> Result<Record> {
        let record = self.db.get(id)?.ok_or(Error::NoSuchRequest(id))?;
        let reopen = match record.disposition {
            Disposition::Pending => false,
            Disposition::Denied => true,
            Disposition::Issued | Disposition::Revoked => return Err(Error::NotPending(id)),
        };
        let der = self.db.request_der(id)?.ok_or(Error::NoSuchRequest(id))?;
        let request = ReceivedRequest::from_der(der)?;
        match self.issuer.review(&request, now) {
            Ok(approved) => self.issue_approved(id, &approved, reopen),
            Err(reason) => {
                let reason = escape_control(&reason.to_string());
                self.db.transaction(|b| {
                    if reopen {
                        b.reopen(id)?;
                    }
                    b.deny(id, &reason)
                })?;
                self.db.get(id)?.ok_or(Error::NoSuchRequest(id))
            }
        }
    }

    /// Denies pending request `id` (certutil -deny).
    pub fn deny(&mut self, id: i64, reason: &str) -> Result<Record> {
        self.db.transaction(|b| b.deny(id, reason))?;
        self.db.get(id)?.ok_or(Error::NoSuchRequest(id))
    }

    /// Revokes the certificate with serial number `serial` (hex) for RFC 5280 reason `reason`
    /// (certutil -revoke). Revoking again keeps the first time and reason.
    pub fn revoke(&mut self, serial: &str, reason: u8, now: SystemTime) -> Result<Record> {
        let bytes = crate::hex::decode(serial)
            .ok_or_else(|| Error::Authority(format!("serial number '{serial}' is not hex")))?;
        let id = self.db.transaction(|b| b.revoke(&bytes, now, reason))?;
        self.db.get(id)?.ok_or(Error::NoSuchRequest(id))
    }

    /// The record of request `id`.
    pub fn record(&self, id: i64) -> Result<Record> {
        self.db.get(id)?.ok_or(Error::NoSuchRequest(id))
    }

    /// Every request `filter` selects, by id (certutil -view).
    pub fn list(&self, filter: &Filter) -> Result<Vec<Record>> {
        self.db.list(filter)
    }

    /// A CRL signed by the root listing every revoked serial with its time and reason, valid
    /// for the policy's `crl_validity_days`. Its number grows with each CRL made.
    pub fn crl(&mut self, now: SystemTime) -> Result<Vec<u8>> {
        let number = self.db.next_crl_number(now)?;
        let revoked = self
            .db
            .revoked()?
            .into_iter()
            .map(|(serial, at, reason)| {
                let extensions = match reason_of(reason) {
                    Some(r) => Some(vec![
                        r.to_extension(self.issuer.root.tbs_certificate().subject(), &[])
                            .map_err(ext_err("reason"))?,
                    ]),
                    None => None,
                };
                Ok(RevokedCert {
                    serial_number: SerialNumber::<x509_cert::certificate::Rfc5280>::new(&serial)
                        .map_err(ext_err("serial"))?,
                    revocation_date: x509_time(at)?,
                    crl_entry_extensions: extensions,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let number = CrlNumber::from(
            der::asn1::Uint::new(&number.to_be_bytes()).map_err(ext_err("CRL number"))?,
        );
        let now = whole(now);
        let next = days_after(now, self.issuer.config.crl_validity_days);
        let mut builder =
            CrlBuilder::new_with_this_update(&self.issuer.root, number, x509_time(now)?)
                .map_err(ext_err("CRL"))?
                .with_next_update(Some(x509_time(next)?));
        // Nothing revoked: no revokedCertificates at all (RFC 5280 5.1.2.6; an empty SEQUENCE
        // is an error to pkilint).
        if !revoked.is_empty() {
            builder = builder.with_certificates(revoked.into_iter());
        }
        let crl = self.issuer.signer.sign(builder)?;
        crl.to_der().map_err(ext_err("CRL"))
    }
}

/// An object identifier with the name Windows gives it, where it is one requests carry.
fn named_oid(oid: &const_oid::ObjectIdentifier) -> String {
    let name = match oid.to_string().as_str() {
        "1.3.6.1.4.1.311.13.2.3" => "OS version",
        "1.3.6.1.4.1.311.13.2.1" => "enrollment name-value pairs",
        "1.3.6.1.4.1.311.21.20" => "client information",
        "1.3.6.1.4.1.311.13.2.2" => "enrollment CSP",
        "1.3.6.1.4.1.311.20.2" => "certificate template name",
        "1.3.6.1.4.1.311.21.7" => "certificate template",
        "1.3.6.1.4.1.311.21.10" => "application policies",
        "1.2.840.113549.1.9.7" => "challenge password",
        "2.5.29.14" => "subject key identifier",
        "2.5.29.19" => "basic constraints",
        "2.5.29.32" => "certificate policies",
        "1.2.840.113549.1.9.15" => "S/MIME capabilities",
        _ => return oid.to_string(),
    };
    format!("{oid} ({name})")
}

fn pending_message(a: &Approved) -> String {
    let mut m = "Taken Under Submission".to_owned();
    append_notes(&mut m, a);
    m
}

fn issued_message(a: &Approved) -> String {
    let mut m = "Issued".to_owned();
    append_notes(&mut m, a);
    m
}

fn append_notes(m: &mut String, a: &Approved) {
    if !a.notes.is_empty() {
        m.push_str(". ");
        m.push_str(&a.notes.join("; "));
    }
}

fn config_json(config: &CaConfig) -> Result<Vec<u8>> {
    let mut json =
        serde_json::to_vec_pretty(config).map_err(|e| Error::Authority(e.to_string()))?;
    json.push(b'\n');
    Ok(json)
}

fn fs_create(dir: &Path) -> Result<()> {
    opsmgr_fsutil::create_private_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })
}

/// The request id certreq accepts: decimal, or hex with `0x`.
pub fn parse_request_id(text: &str) -> Result<i64> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    parsed.filter(|id| *id > 0).ok_or_else(|| {
        Error::Authority(format!("'{text}' is not a request id (a positive number)"))
    })
}

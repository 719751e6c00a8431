//! The signing half of the CA: its key, root and policy ([`Issuer`]); the review of an
//! untrusted request under the policy, whose only product is an [`Approved`] request or the
//! [`Denial`] that says why not; and the certificates and CRLs it signs.

use std::str::FromStr;
use std::time::SystemTime;

use const_oid::db::rfc5280::{ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME};
use const_oid::db::rfc5912::{
    ID_AD_CA_ISSUERS, ID_EXTENSION_REQ, ID_KP_CLIENT_AUTH, ID_KP_SERVER_AUTH,
};
use der::asn1::{Ia5String, OctetString};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use opsmgr_hostname::HostName;
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::TbsCertificate;
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::policy::{CaConfig, LeafNotAfter, under_suffix};
use super::reason::RevocationReason;
use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::request::{Hash, PrivateKey, ReceivedRequest, SignatureAlgorithm, os_rng};
use crate::text::escape_control;
use crate::time::{days_after, human, whole};

/// RFC 5280's upper bound for a common name (`ub-common-name`).
pub const MAX_COMMON_NAME: usize = 64;

/// The signer of the CA's key. RSA signs with blinding (`build_with_rng`).
#[derive(Debug)]
pub(crate) enum CaSigner {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

impl CaSigner {
    pub(crate) fn new(key: &PrivateKey) -> Self {
        match key {
            PrivateKey::P256(k) => CaSigner::P256(p256::ecdsa::SigningKey::from(k)),
            PrivateKey::P384(k) => CaSigner::P384(p384::ecdsa::SigningKey::from(k)),
            PrivateKey::Rsa(k) => {
                CaSigner::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new((**k).clone())))
            }
        }
    }

    pub(crate) fn sign<B: Builder>(&self, builder: B) -> Result<B::Output> {
        match self {
            CaSigner::P256(k) => builder.build::<_, p256::ecdsa::DerSignature>(k),
            CaSigner::P384(k) => builder.build::<_, p384::ecdsa::DerSignature>(k),
            CaSigner::Rsa(k) => {
                builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&**k, &mut os_rng())
            }
        }
        .map_err(Error::Signing)
    }
}

/// The root's profile: self-signed; basicConstraints CA (critical, path length 0), keyUsage
/// keyCertSign + cRLSign, subject key identifier.
pub(crate) struct RootProfile {
    pub(crate) name: Name,
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
/// server and client authentication; the DNS names; subject and authority key identifiers;
/// where the CRL and the root are published, when the policy says.
struct AgentProfile<'a> {
    issuer: Name,
    subject: Name,
    dns_names: &'a [HostName],
    key_usage: KeyUsage,
    /// The root's subject key identifier.
    aki: &'a [u8],
    crl_urls: &'a [String],
    ca_issuers_url: Option<&'a str>,
}

fn uri(url: &str) -> der::Result<GeneralName> {
    Ia5String::new(url).map(GeneralName::UniformResourceIdentifier)
}

impl BuilderProfile for AgentProfile<'_> {
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
            .map(|n| Ia5String::new(n.as_str()).map(GeneralName::DnsName))
            .collect::<der::Result<Vec<_>>>()?;
        let mut extensions = vec![
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
                key_identifier: Some(OctetString::new(self.aki.to_vec())?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            }
            .to_extension(subject, &[])?,
        ];
        if !self.crl_urls.is_empty() {
            // One distribution point, its full name every URL (RFC 5280 4.2.1.13).
            let full_name = self
                .crl_urls
                .iter()
                .map(|u| uri(u))
                .collect::<der::Result<Vec<_>>>()?;
            extensions.push(
                CrlDistributionPoints(vec![DistributionPoint {
                    distribution_point: Some(DistributionPointName::FullName(full_name)),
                    reasons: None,
                    crl_issuer: None,
                }])
                .to_extension(subject, &[])?,
            );
        }
        if let Some(url) = self.ca_issuers_url {
            extensions.push(
                AuthorityInfoAccessSyntax(vec![AccessDescription {
                    access_method: ID_AD_CA_ISSUERS,
                    access_location: uri(url)?,
                }])
                .to_extension(subject, &[])?,
            );
        }
        Ok(extensions)
    }
}

/// Why the policy refuses a request: a kind a tool can act on, with the reason in words
/// (`Display`; text from the request escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// Its signature does not verify, or its algorithm is not accepted.
    Signature(String),
    /// Part of it cannot be read (the subject, a key, the requested extensions).
    Unreadable(String),
    /// Its subject has no common name.
    NoCommonName,
    /// Its common name is not a DNS host name.
    NotAHostName {
        /// The common name, as the request gives it.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// Its common name is longer than RFC 5280 allows.
    CommonNameTooLong {
        /// How many characters it has.
        length: usize,
    },
    /// It asks for the CA's own name: its certificate's subject would be its issuer's.
    CaName {
        /// The CA's name.
        name: String,
    },
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
    /// Its key is the key of a certificate revoked for keyCompromise.
    CompromisedKey {
        /// The revoked certificate's serial number.
        serial: String,
        /// When it was revoked.
        revoked_at: SystemTime,
    },
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denial::Signature(m)
            | Denial::Unreadable(m)
            | Denial::KeyType(m)
            | Denial::Validity(m) => f.write_str(&escape_control(m)),
            Denial::NoCommonName => f.write_str("the request's subject has no common name (CN)"),
            Denial::NotAHostName { name, why } => write!(
                f,
                "the common name '{}' is not a DNS host name: {why}",
                escape_control(name)
            ),
            Denial::CommonNameTooLong { length } => write!(
                f,
                "the common name has {length} characters; RFC 5280 allows {MAX_COMMON_NAME} (ub-common-name)"
            ),
            Denial::CaName { name } => write!(
                f,
                "the request asks for the CA's own name {name}: a certificate whose subject is its issuer's is never issued"
            ),
            Denial::WeakKey { bits, floor } => write!(
                f,
                "an RSA key of {bits} bits is below the policy's {floor}: 1024-bit RSA is broken for authentication today. Make a new request with KeyLength = 2048 (or KeyAlgorithm = ECDSA_P256); or, to accept this one anyway, set allow_legacy_rsa1024 in the CA's policy (config.json) and issue the request again"
            ),
            Denial::NotInInventory(host) => write!(
                f,
                "{} is not an agent or server of the management group's inventory",
                escape_control(host)
            ),
            Denial::CompromisedKey { serial, revoked_at } => write!(
                f,
                "its key is the key of certificate {serial}, revoked for keyCompromise on {}: a compromised key is never certified again; make a new key",
                human(*revoked_at)
            ),
        }
    }
}

/// What the review notes about a request it approves: what its certificate leaves out, and
/// what it proves (`Display`; text from the request escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The request is signed with SHA-1: proof of possession only.
    Sha1Signature(SignatureAlgorithm),
    /// A subject attribute other than the common name.
    SubjectAttributeIgnored(String),
    /// A request attribute (Windows' OS version, client information, CSP...).
    AttributeIgnored(String),
    /// A requested extension the CA decides itself.
    ExtensionIgnored(String),
    /// An alternative name that is not a DNS name.
    NonDnsNameIgnored,
    /// An alternative name that is not a DNS host name.
    NotAHostName(String),
    /// An alternative name the policy's suffixes do not allow.
    NotAllowedByPolicy(String),
    /// An alternative name that is another host of the inventory.
    OtherHostOfInventory(String),
    /// An alternative name outside the inventory.
    NotInInventory(String),
    /// A compressed EC point, written uncompressed.
    CompressedPoint,
    /// A renewal's proof that does not count (the host holds no current certificate, so the
    /// request is treated as a first one).
    ProofIgnored(String),
    /// A renewal proved with the key of the host's current certificate.
    Renews {
        /// Its serial number.
        serial: String,
    },
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::Sha1Signature(algorithm) => write!(
                f,
                "the request is signed with {algorithm}: accepted as proof of possession only (this CA never signs with SHA-1)"
            ),
            Note::SubjectAttributeIgnored(oid) => write!(f, "subject attribute {oid} ignored"),
            Note::AttributeIgnored(oid) => write!(f, "request attribute {oid} ignored"),
            Note::ExtensionIgnored(oid) => write!(f, "requested extension {oid} ignored"),
            Note::NonDnsNameIgnored => f.write_str("a non-DNS alternative name ignored"),
            Note::NotAHostName(n) => write!(
                f,
                "alternative name '{}' ignored: not a DNS host name",
                escape_control(n)
            ),
            Note::NotAllowedByPolicy(n) => write!(
                f,
                "alternative name '{}' ignored: not the common name and not allowed by policy",
                escape_control(n)
            ),
            Note::OtherHostOfInventory(n) => write!(
                f,
                "alternative name '{}' ignored: it is another host of the inventory",
                escape_control(n)
            ),
            Note::NotInInventory(n) => write!(
                f,
                "alternative name '{}' ignored: not in the inventory",
                escape_control(n)
            ),
            Note::CompressedPoint => f.write_str("the compressed EC point is written uncompressed"),
            Note::ProofIgnored(why) => write!(
                f,
                "its renewal proof does not count: {}",
                escape_control(why)
            ),
            Note::Renews { serial } => {
                write!(f, "renews certificate {serial} (proved with its key)")
            }
        }
    }
}

/// A request the policy approved: exactly what goes into its certificate. Made only by
/// [`Issuer::review`]; nothing else can approve.
#[derive(Debug, Clone)]
pub struct Approved {
    host: HostName,
    dns_names: Vec<HostName>,
    requested: Vec<String>,
    public_key: SubjectPublicKeyInfoOwned,
    key: KeyFacts,
    not_before: SystemTime,
    not_after: SystemTime,
    notes: Vec<Note>,
}

impl Approved {
    /// The host: the request's common name.
    pub fn host(&self) -> &HostName {
        &self.host
    }

    /// The DNS names the certificate will carry, the host first.
    pub fn dns_names(&self) -> &[HostName] {
        &self.dns_names
    }

    /// Every DNS name the request asked for (its common name first), approved or not.
    pub fn requested_names(&self) -> &[String] {
        &self.requested
    }

    /// The public key.
    pub fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key
    }

    /// The key, in words (`RSA 2048`, `ECDSA P-256`).
    pub fn key_description(&self) -> &str {
        &self.key.description
    }

    /// SHA-256 of the public key (its SubjectPublicKeyInfo, EC points uncompressed).
    pub fn key_sha256(&self) -> &[u8] {
        &self.key.sha256
    }

    /// Start of validity: the review's time, to the second.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity, to the second, clamped to the root's.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// What the certificate leaves out of the request, and what the request proved.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Keeps only the DNS names `keep` accepts (the host is always kept), noting each other
    /// one with `note`.
    pub(crate) fn restrict_names(
        &mut self,
        keep: impl Fn(&HostName) -> bool,
        note: impl Fn(&HostName) -> Note,
    ) {
        let host = self.host.clone();
        let (kept, dropped): (Vec<HostName>, Vec<HostName>) = std::mem::take(&mut self.dns_names)
            .into_iter()
            .partition(|n| *n == host || keep(n));
        self.dns_names = kept;
        self.notes.extend(dropped.iter().map(note));
    }

    pub(crate) fn note(&mut self, notes: impl IntoIterator<Item = Note>) {
        self.notes.extend(notes);
    }
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

/// A public key as the CA records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFacts {
    /// SHA-256 of the SubjectPublicKeyInfo DER, EC points uncompressed.
    pub(crate) sha256: Vec<u8>,
    /// `RSA 2048`, `ECDSA P-256`, or the algorithm's OID.
    pub(crate) description: String,
}

/// A request's key, checked and in its one encoding (a compressed EC point uncompressed: ring,
/// and so rustls, takes no compressed points; the same key has one digest).
pub(crate) fn key_facts(
    spki: &SubjectPublicKeyInfoOwned,
) -> std::result::Result<(SubjectPublicKeyInfoOwned, KeyFacts, Option<u32>), String> {
    use spki::EncodePublicKey;
    let oid = spki.algorithm.oid;
    let (normal, description, rsa_bits) = if oid == const_oid::db::rfc5912::RSA_ENCRYPTION {
        let key = rsa::RsaPublicKey::try_from(spki.owned_to_ref())
            .map_err(|e| format!("the RSA key cannot be read: {e}"))?;
        let bits = rsa::traits::PublicKeyParts::n(&key).bits();
        (spki.clone(), format!("RSA {bits}"), Some(bits))
    } else if oid == const_oid::db::rfc5912::ID_EC_PUBLIC_KEY {
        let (der, curve) = if let Ok(k) = p256::PublicKey::try_from(spki.owned_to_ref()) {
            (k.to_public_key_der(), "P-256")
        } else if let Ok(k) = p384::PublicKey::try_from(spki.owned_to_ref()) {
            (k.to_public_key_der(), "P-384")
        } else {
            return Err("only ECDSA keys on P-256 or P-384 are accepted".into());
        };
        let der = der.map_err(|e| format!("the EC key cannot be encoded: {e}"))?;
        let normal = SubjectPublicKeyInfoOwned::from_der(der.as_bytes())
            .map_err(|e| format!("the EC key cannot be encoded: {e}"))?;
        (normal, format!("ECDSA {curve}"), None)
    } else {
        let name = match oid.to_string().as_str() {
            "1.2.840.10040.4.1" => " (DSA, as Microsoft's DSS providers make)",
            "1.2.840.113549.1.1.10" => " (an RSA key restricted to RSASSA-PSS)",
            "1.3.101.112" => " (Ed25519)",
            "1.3.101.113" => " (Ed448)",
            "1.2.840.10046.2.1" => " (Diffie-Hellman)",
            _ => "",
        };
        return Err(format!(
            "key algorithm {oid}{name} is not accepted: an agent's channel key is RSA (2048 bits or more) or ECDSA P-256 or P-384; make the request with KeyAlgorithm = RSA and KeyLength = 2048, or KeyAlgorithm = ECDSA_P256"
        ));
    };
    let der = normal
        .to_der()
        .map_err(|e| format!("the key cannot be encoded: {e}"))?;
    Ok((
        normal,
        KeyFacts {
            sha256: Sha256::digest(&der).to_vec(),
            description,
        },
        rsa_bits,
    ))
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

pub(crate) fn x509_time(t: SystemTime) -> Result<Time> {
    Time::try_from(t).map_err(|e| Error::Encoding {
        what: "a time",
        source: e,
    })
}

pub(crate) fn encoding(what: &'static str) -> impl Fn(der::Error) -> Error {
    move |source| Error::Encoding { what, source }
}

/// 16 random octets, positive, the first one non-zero: always 16 octets in DER, 126 bits of
/// randomness, never derived from the key.
pub(crate) fn random_serial(rng: &mut impl getrandom::rand_core::CryptoRng) -> Vec<u8> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    bytes.to_vec()
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
        "1.3.6.1.4.1.311.13.1" => "renewal certificate",
        "0.9.2342.19200300.100.1.25" => "domain component",
        "2.5.4.3" => "a second common name",
        "1.2.840.113549.1.9.1" => "email address",
        "2.5.4.6" => "country",
        "2.5.4.7" => "locality",
        "2.5.4.8" => "state or province",
        "2.5.4.10" => "organization",
        "2.5.4.11" => "organizational unit",
        _ => return oid.to_string(),
    };
    format!("{oid} ({name})")
}

/// Why a certificate is not one this CA issued ([`Issuer::issued`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotIssued {
    /// Its issuer names another CA.
    #[error("its issuer is {issuer}, not {root}")]
    OtherIssuer {
        /// Its issuer (control characters escaped).
        issuer: String,
        /// This CA's root.
        root: String,
    },
    /// It names this CA, but this CA's key did not sign it.
    #[error("this CA's key did not sign it")]
    Signature(#[source] crate::sigalg::SignatureError),
}

impl Issuer {
    /// The issuer of a CA whose root is `root` (DER), signed by `key`, under `config`: what
    /// [`Authority::open`](super::Authority::open) makes from its folder, and what a caller
    /// holding the key elsewhere (an HSM's export, a test) makes directly.
    pub fn new(key: &PrivateKey, root: &[u8], config: CaConfig) -> Result<Self> {
        config.validate()?;
        let root_info = CertInfo::parse(root)?;
        if key.public_key_der()? != root_info.public_key {
            return Err(Error::KeyMismatch {
                certificate: root_info.subject,
            });
        }
        if let Some(pin) = &config.root_thumbprint
            && !pin.eq_ignore_ascii_case(&root_info.thumbprint)
        {
            return Err(Error::Policy {
                field: "root_thumbprint".into(),
                message: format!(
                    "the root's thumbprint is {}, not the {pin} pinned when the CA was made",
                    root_info.thumbprint
                ),
            });
        }
        let root = Certificate::from_der(&root_info.der).map_err(encoding("the root"))?;
        let root_ski = SubjectKeyIdentifier::try_from(
            root.tbs_certificate()
                .subject_public_key_info()
                .owned_to_ref(),
        )
        .map_err(encoding("the root's key identifier"))?
        .0
        .as_bytes()
        .to_vec();
        Ok(Self {
            config,
            signer: CaSigner::new(key),
            root,
            root_info,
            root_ski,
        })
    }

    /// The policy.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    pub(crate) fn set_config(&mut self, config: CaConfig) {
        self.config = config;
    }

    /// When certificates issued at `now` end with the root instead of lasting the policy's
    /// `validity_days`: the root's end, to say once (a batch, a tool's run), not per request.
    pub fn truncated_at(&self, now: SystemTime) -> Option<SystemTime> {
        let asked = days_after(now, self.config.validity_days);
        (asked > self.root_info.not_after && self.config.leaf_not_after == LeafNotAfter::Truncate)
            .then_some(self.root_info.not_after)
    }

    /// The root certificate.
    pub fn root(&self) -> &CertInfo {
        &self.root_info
    }

    /// Whether the root's key is an elliptic-curve one: Windows Server 2003 and XP cannot
    /// verify what it signs (CNG, which can, came with Vista and 2008).
    pub fn root_is_ecdsa(&self) -> bool {
        const ID_EC_PUBLIC_KEY: spki::ObjectIdentifier =
            spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        self.root
            .tbs_certificate()
            .subject_public_key_info()
            .algorithm
            .oid
            == ID_EC_PUBLIC_KEY
    }

    /// The root's pinned SHA-1 thumbprint (the policy's, which the root matches).
    pub fn root_pin(&self) -> String {
        self.config
            .root_thumbprint
            .clone()
            .unwrap_or_else(|| self.root_info.thumbprint.clone())
    }

    /// Whether this CA signed `cert`: its issuer is the root's subject and its signature
    /// verifies with the root's key, over its `tbsCertificate` as received.
    pub fn issued(&self, cert: &CertInfo) -> std::result::Result<(), NotIssued> {
        if cert.issuer != self.root_info.subject {
            return Err(NotIssued::OtherIssuer {
                issuer: escape_control(&cert.issuer),
                root: self.root_info.subject.clone(),
            });
        }
        crate::cert::verify_certificate(
            &cert.der,
            self.root.tbs_certificate().subject_public_key_info(),
        )
        .map_err(NotIssued::Signature)
    }

    /// Reviews an untrusted request under the policy at `now`: its approved content, or the
    /// reason it is denied.
    pub fn review(
        &self,
        received: &ReceivedRequest,
        now: SystemTime,
    ) -> std::result::Result<Approved, Denial> {
        // A key the CA never certifies is the request's real fault, whatever its signature.
        let algorithm = received.verify().map_err(|e| {
            match key_facts(&received.request().info.public_key) {
                Err(m) if !m.starts_with("the") => Denial::KeyType(m),
                _ => Denial::Signature(crate::error::error_chain(&e)),
            }
        })?;
        let info = &received.request().info;
        let mut notes = Vec::new();
        if algorithm.hash() == Hash::Sha1 {
            notes.push(Note::Sha1Signature(algorithm));
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
                notes.push(Note::SubjectAttributeIgnored(named_oid(&atv.oid)));
            }
        }
        let cn = common_name.ok_or(Denial::NoCommonName)?;
        if cn.chars().count() > MAX_COMMON_NAME {
            return Err(Denial::CommonNameTooLong {
                length: cn.chars().count(),
            });
        }
        let host = HostName::new(&cn).map_err(|e| Denial::NotAHostName {
            name: cn.clone(),
            why: e.to_string(),
        })?;
        if cn.eq_ignore_ascii_case(&self.config.name) {
            return Err(Denial::CaName {
                name: self.config.name.clone(),
            });
        }

        // The key.
        let (spki, key, rsa_bits) = key_facts(&info.public_key).map_err(|m| {
            if m.starts_with("the") {
                Denial::Unreadable(m)
            } else {
                Denial::KeyType(m)
            }
        })?;
        if spki != info.public_key {
            notes.push(Note::CompressedPoint);
        }
        if let Some(bits) = rsa_bits {
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
        }

        // Requested extensions: DNS names the policy allows; everything else the CA decides.
        let mut requested = vec![cn.clone()];
        let mut dns_names = vec![host.clone()];
        for attr in info.attributes.iter() {
            if attr.oid != ID_EXTENSION_REQ {
                notes.push(Note::AttributeIgnored(named_oid(&attr.oid)));
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
                            self.consider_name(&name, &mut requested, &mut dns_names, &mut notes);
                        }
                    } else if ext.extn_id != ID_CE_KEY_USAGE && ext.extn_id != ID_CE_EXT_KEY_USAGE {
                        notes.push(Note::ExtensionIgnored(named_oid(&ext.extn_id)));
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
                // Said once by `truncated_at`, not in every request's message.
                LeafNotAfter::Truncate => not_after = root_end,
                LeafNotAfter::Err => {
                    return Err(Denial::Validity(format!(
                        "a certificate of {} days would outlive the root, which ends on {} (leaf_not_after = err)",
                        self.config.validity_days,
                        human(root_end)
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
            host,
            dns_names,
            requested,
            public_key: spki,
            key,
            not_before: now,
            not_after,
            notes,
        })
    }

    fn consider_name(
        &self,
        name: &GeneralName,
        requested: &mut Vec<String>,
        dns: &mut Vec<HostName>,
        notes: &mut Vec<Note>,
    ) {
        let GeneralName::DnsName(d) = name else {
            notes.push(Note::NonDnsNameIgnored);
            return;
        };
        let text = d.to_string();
        if !requested.iter().any(|r| r.eq_ignore_ascii_case(&text)) {
            requested.push(escape_control(&text));
        }
        let Ok(host) = HostName::new(&text) else {
            notes.push(Note::NotAHostName(text));
            return;
        };
        if dns.contains(&host) {
            return;
        }
        let lower = text.to_ascii_lowercase();
        // The CA's own name is never a certificate's, as a common name or a DNS name.
        let allowed = !lower.eq_ignore_ascii_case(&self.config.name)
            && self
                .config
                .allowed_dns_suffixes
                .iter()
                .any(|s| under_suffix(&lower, s));
        if allowed {
            dns.push(host);
        } else {
            notes.push(Note::NotAllowedByPolicy(text));
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
        let rsa = a.public_key.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION;
        let profile = AgentProfile {
            issuer: self.root.tbs_certificate().subject().clone(),
            subject: Name::from_str(&format!("CN={}", a.host)).map_err(encoding("the subject"))?,
            dns_names: &a.dns_names,
            key_usage: KeyUsage(if rsa {
                KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment
            } else {
                KeyUsages::DigitalSignature.into()
            }),
            aki: &self.root_ski,
            crl_urls: &self.config.crl_urls,
            ca_issuers_url: self.config.ca_issuers_url.as_deref(),
        };
        let builder = CertificateBuilder::new(
            profile,
            SerialNumber::new(&serial).map_err(encoding("the serial number"))?,
            Validity::new(x509_time(a.not_before)?, x509_time(a.not_after)?),
            a.public_key.clone(),
        )
        .map_err(Error::Signing)?;
        let cert = self.signer.sign(builder)?;
        Ok(Signed {
            serial,
            der: cert.to_der().map_err(encoding("the certificate"))?,
            not_after: a.not_after,
        })
    }

    /// Signs a CRL numbered `number`, made at `now`, valid until `next`, listing `revoked`
    /// (serial number, when, why).
    pub(crate) fn sign_crl(
        &self,
        number: u64,
        now: SystemTime,
        next: SystemTime,
        revoked: &[super::db::RevokedEntry],
    ) -> Result<Vec<u8>> {
        let issuer = self.root.tbs_certificate().subject();
        let entries = revoked
            .iter()
            .map(|(serial, at, reason)| {
                let extensions = match reason.and_then(RevocationReason::crl_reason) {
                    Some(r) => Some(vec![
                        r.to_extension(issuer, &[])
                            .map_err(encoding("a revocation reason"))?,
                    ]),
                    None => None,
                };
                Ok(RevokedCert {
                    serial_number: SerialNumber::<x509_cert::certificate::Rfc5280>::new(serial)
                        .map_err(encoding("a serial number"))?,
                    revocation_date: x509_time(*at)?,
                    crl_entry_extensions: extensions,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let number = CrlNumber::from(
            der::asn1::Uint::new(&number.to_be_bytes()).map_err(encoding("the CRL number"))?,
        );
        let mut builder = CrlBuilder::new_with_this_update(&self.root, number, x509_time(now)?)
            .map_err(encoding("the CRL"))?
            .with_next_update(Some(x509_time(next)?));
        // Nothing revoked: no revokedCertificates at all (RFC 5280 5.1.2.6; an empty SEQUENCE
        // is an error to pkilint).
        if !entries.is_empty() {
            builder = builder.with_certificates(entries.into_iter());
        }
        let crl = self.signer.sign(builder)?;
        crl.to_der().map_err(encoding("the CRL"))
    }
}

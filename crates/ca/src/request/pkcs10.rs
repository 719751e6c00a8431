//! PKCS#10 certificate requests: building them from a policy, their file form, and checking
//! their signature.

use std::str::FromStr;

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, PrintableString, SetOfVec, Utf8StringRef};
use der::pem::LineEnding;
use der::{Any, Decode, Encode};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::CertReq;

use super::dn::{Attribute, DistinguishedName};
use super::inf::{KeyType, RequestPolicy};
use super::keys::{PrivateKey, os_rng};
use super::renewal::{BrokenProof, RenewalProof};
use crate::error::{Error, Result};
use crate::sigalg::Hash;
use crate::sigalg::{SignatureAlgorithm, verify_signature};

/// The PEM label certreq writes.
pub const NEW_REQUEST_LABEL: &str = "NEW CERTIFICATE REQUEST";
/// The PEM label OpenSSL writes.
pub const REQUEST_LABEL: &str = "CERTIFICATE REQUEST";
/// The largest request file read.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Content type of CMS SignedData: what certreq's `RequestType = CMC` and renewal requests
/// wrap the PKCS #10 request in.
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// The X.509 name for a subject written `CN=host, O=Org, C=NL`: as in RFC 4514 and as
/// certreq does, the written order is the reverse of the encoded one (C first in DER).
pub fn to_x509_name(dn: &DistinguishedName) -> Result<Name> {
    let mut rdns = Vec::with_capacity(dn.parts.len());
    for (attr, value) in dn.parts.iter().rev() {
        let oid = ObjectIdentifier::from_str(attr.oid())
            .map_err(|e| Error::request_from(format!("attribute {attr}"), e))?;
        let any = match attr {
            Attribute::Country => Any::encode_from(
                &PrintableString::new(value)
                    .map_err(|e| Error::request_from(format!("C={value}"), e))?,
            ),
            Attribute::Email | Attribute::DomainComponent => Any::encode_from(
                &Ia5String::new(value)
                    .map_err(|e| Error::request_from(format!("{attr}={value}"), e))?,
            ),
            _ => Any::encode_from(
                &Utf8StringRef::new(value)
                    .map_err(|e| Error::request_from(format!("{attr}={value}"), e))?,
            ),
        }
        .map_err(|e| Error::request_from(format!("{attr}={value}"), e))?;
        let atv = AttributeTypeAndValue { oid, value: any };
        let set = SetOfVec::try_from(vec![atv])
            .map_err(|e| Error::request_from(format!("{attr}={value}"), e))?;
        rdns.push(RelativeDistinguishedName::from(set));
    }
    // `Name` wraps the sequence privately; both encode as the same SEQUENCE OF.
    let der = RdnSequence::from(rdns)
        .to_der()
        .map_err(|e| Error::request_from("the subject", e))?;
    Name::from_der(&der).map_err(|e| Error::request_from("the subject", e))
}

/// One of Microsoft's enrollment name-value pairs (`CertificateTemplate=WebServer`), the
/// request attribute certreq writes for `[RequestAttributes]`.
#[derive(Clone, Debug, Eq, PartialEq, der::Sequence)]
struct NameValuePair {
    name: der::asn1::BmpString,
    value: der::asn1::BmpString,
}

impl const_oid::AssociatedOid for NameValuePair {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.311.13.2.1");
}

impl x509_cert::request::attributes::AsAttribute for NameValuePair {}

/// Maps certreq's KeyUsage byte (0x80 digitalSignature .. 0x02 cRLSign) to X.509's bits.
fn key_usage(bits: u8) -> Result<KeyUsage> {
    let flags = [
        KeyUsages::DigitalSignature,
        KeyUsages::NonRepudiation,
        KeyUsages::KeyEncipherment,
        KeyUsages::DataEncipherment,
        KeyUsages::KeyAgreement,
        KeyUsages::KeyCertSign,
        KeyUsages::CRLSign,
        KeyUsages::EncipherOnly,
    ];
    let mut set = der::flagset::FlagSet::<KeyUsages>::default();
    for (i, flag) in flags.into_iter().enumerate() {
        if bits & (0x80 >> i) != 0 {
            set |= flag;
        }
    }
    Ok(KeyUsage(set))
}

/// Builds and signs the request `policy` describes with `key` (which must be of the policy's
/// key type): subject, key usage, extended key usages and DNS subject alternative names.
pub fn build_request(policy: &RequestPolicy, key: &PrivateKey) -> Result<CertReq> {
    if key.key_type() != policy.key {
        return Err(Error::request(format!(
            "the key is {}, the policy asks for {}",
            key.key_type(),
            policy.key
        )));
    }
    let mut builder = RequestBuilder::new(to_x509_name(&policy.subject)?)
        .map_err(|e| Error::request_from("building the request", e))?;
    if let Some(bits) = policy.key_usage {
        builder
            .add_extension(&key_usage(bits)?)
            .map_err(|e| Error::request_from("key usage", e))?;
    }
    let ekus = policy
        .ekus
        .iter()
        .map(|o| {
            ObjectIdentifier::from_str(o).map_err(|e| Error::request_from(format!("EKU {o}"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    builder
        .add_extension(&ExtendedKeyUsage(ekus))
        .map_err(|e| Error::request_from("EKU", e))?;
    let names = policy
        .dns_names
        .iter()
        .map(|n| {
            Ia5String::new(n)
                .map(GeneralName::DnsName)
                .map_err(|e| Error::request_from(format!("DNS name {n}"), e))
        })
        .collect::<Result<Vec<_>>>()?;
    builder
        .add_extension(&SubjectAltName(names))
        .map_err(|e| Error::request_from("subject alternative name", e))?;
    for (name, value) in &policy.request_attributes {
        let bmp = |t: &str| {
            der::asn1::BmpString::from_utf8(t)
                .map_err(|e| Error::request_from(format!("request attribute {name}"), e))
        };
        builder
            .add_attribute(&NameValuePair {
                name: bmp(name)?,
                value: bmp(value)?,
            })
            .map_err(|e| Error::request_from(format!("request attribute {name}"), e))?;
    }

    let rng = &mut os_rng();
    let pss = policy.alternate_signature;
    let signed = match (key, policy.hash) {
        (PrivateKey::Rsa(k), Hash::Sha256) if pss => {
            let signer = rsa::pss::SigningKey::<sha2::Sha256>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pss::Signature, _>(&signer, rng)
        }
        (PrivateKey::Rsa(k), Hash::Sha384) if pss => {
            let signer = rsa::pss::SigningKey::<sha2::Sha384>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pss::Signature, _>(&signer, rng)
        }
        (PrivateKey::Rsa(k), Hash::Sha512) if pss => {
            let signer = rsa::pss::SigningKey::<sha2::Sha512>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pss::Signature, _>(&signer, rng)
        }
        (PrivateKey::Rsa(k), Hash::Sha256) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, rng)
        }
        (PrivateKey::Rsa(k), Hash::Sha384) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, rng)
        }
        (PrivateKey::Rsa(k), Hash::Sha512) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, rng)
        }
        (PrivateKey::P256(k), Hash::Sha256) => {
            let signer = p256::ecdsa::SigningKey::from(k);
            builder.build::<_, p256::ecdsa::DerSignature>(&signer)
        }
        (PrivateKey::P384(k), Hash::Sha384) => {
            let signer = p384::ecdsa::SigningKey::from(k);
            builder.build::<_, p384::ecdsa::DerSignature>(&signer)
        }
        (PrivateKey::Rsa(_), other) => {
            return Err(Error::request(format!(
                "RSA requests are signed with SHA-256, SHA-384 or SHA-512, not {}",
                other.certutil_name()
            )));
        }
        (PrivateKey::P256(_) | PrivateKey::P384(_), other) => {
            let (curve, hash) = if key.key_type() == KeyType::EcdsaP256 {
                ("P-256", "SHA256")
            } else {
                ("P-384", "SHA384")
            };
            return Err(Error::request(format!(
                "ECDSA {curve} requests are signed with HashAlgorithm = {hash}, not {}",
                other.certutil_name()
            )));
        }
    };
    signed.map_err(|e| Error::request_from("signing", e))
}

/// A request's DER (plain or a renewal wrapper) as certreq writes it: base64 between
/// `-----BEGIN NEW CERTIFICATE REQUEST-----` lines, CRLF line endings.
pub fn request_der_to_pem(der: &[u8]) -> Result<String> {
    der::pem::encode_string(NEW_REQUEST_LABEL, LineEnding::CRLF, der)
        .map_err(|e| Error::request_from("encoding PEM", e))
}

/// The request as certreq writes it: base64 between `-----BEGIN NEW CERTIFICATE REQUEST-----`
/// lines, CRLF line endings.
pub fn request_to_pem(request: &CertReq) -> Result<String> {
    let der = request
        .to_der()
        .map_err(|e| Error::request_from("encoding", e))?;
    request_der_to_pem(&der)
}

/// A request exactly as it was received: its DER bytes (after PEM decoding), where its
/// signed part lies in them, and what they say. Its signature is checked over those bytes,
/// never over a re-encoding: certreq writes the request's attributes in its own order, which
/// DER's sorted SET OF would change.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    der: Vec<u8>,
    info: std::ops::Range<usize>,
    request: CertReq,
    algorithm: Result<SignatureAlgorithm, crate::sigalg::AlgorithmError>,
    inner: std::ops::Range<usize>,
    renewal: Option<std::result::Result<RenewalProof, BrokenProof>>,
}

impl ReceivedRequest {
    /// Reads a request file: PEM with certreq's or OpenSSL's label, or DER. Untrusted input:
    /// bounded in size, and parsing is all it does (see [`ReceivedRequest::verify`]). A CMC or
    /// PKCS #7-wrapped request (certreq's `RequestType = CMC`, renewals) is refused with the
    /// `RequestType` to use.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(Error::request(format!(
                "a request of {} bytes is larger than {MAX_REQUEST_BYTES}",
                bytes.len()
            )));
        }
        let der = if crate::pem::is_pem(bytes) {
            let (label, der) =
                crate::pem::decode(bytes).map_err(|e| Error::request(format!("PEM: {e}")))?;
            match label.as_str() {
                NEW_REQUEST_LABEL | REQUEST_LABEL => {}
                "PKCS7" | "CMS" => return Err(cmc_refusal()),
                other => {
                    return Err(Error::request(format!(
                        "PEM label '{other}' is not a certificate request"
                    )));
                }
            }
            der
        } else {
            bytes.trim_ascii_start().to_vec()
        };
        Self::from_der(der)
    }

    /// Reads a request's DER bytes: a PKCS #10 request, or a renewal (the request wrapped in
    /// CMS SignedData signed by the renewed certificate's key, as certreq's `RenewalCert`
    /// writes it; see [`wrap_renewal`](super::wrap_renewal)). CMC (`RequestType = CMC`) is refused.
    pub fn from_der(der: Vec<u8>) -> Result<Self> {
        let (inner, renewal) = match CertReq::from_der(&der) {
            Ok(_) => (0..der.len(), None),
            Err(e) => match signed_data(&der) {
                None => return Err(Error::request_from("not a PKCS#10 request", e)),
                Some(Err(())) => return Err(cmc_refusal()),
                Some(Ok(signed)) => {
                    let opened =
                        super::renewal::unwrap_renewal(&der, &signed).map_err(|_| cmc_refusal())?;
                    (opened.request, Some(opened.proof))
                }
            },
        };
        let request = CertReq::from_der(&der[inner.clone()])
            .map_err(|e| Error::request_from("not a PKCS#10 request", e))?;
        let info = crate::sigalg::signed_range(&der[inner.clone()])
            .map_err(|e| Error::request_from("not a PKCS#10 request", e))?;
        let info = inner.start + info.start..inner.start + info.end;
        let algorithm = SignatureAlgorithm::from_identifier(&request.algorithm);
        Ok(Self {
            der,
            info,
            inner,
            request,
            algorithm,
            renewal,
        })
    }

    /// For a renewal: what the old key's signature proves (else why it proves nothing).
    /// `None` for a plain request.
    pub fn renewal(&self) -> Option<&std::result::Result<RenewalProof, BrokenProof>> {
        self.renewal.as_ref()
    }

    /// The PKCS #10 request's bytes as received: the whole request, or the one inside a
    /// renewal's wrapper. The same request wrapped again, or with an attribute added to its
    /// wrapper, has the same inner bytes.
    pub fn inner_der(&self) -> &[u8] {
        &self.der[self.inner.clone()]
    }

    /// The request's bytes as received (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The signed part (`certificationRequestInfo`), exactly as received.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.der[self.info.clone()]
    }

    /// What the request says.
    pub fn request(&self) -> &CertReq {
        &self.request
    }

    /// Checks the request's signature with the public key it carries, over the bytes as
    /// received; returns the algorithm it was made with.
    pub fn verify(&self) -> Result<SignatureAlgorithm> {
        let algorithm = self
            .algorithm
            .clone()
            .map_err(|e| Error::request_from("its signature algorithm", e))?;
        let signature = self
            .request
            .signature
            .as_bytes()
            .ok_or_else(|| Error::request("the signature has unused bits"))?;
        verify_signature(
            &self.request.info.public_key,
            algorithm,
            self.signed_bytes(),
            signature,
        )
        .map_err(|e| Error::request_from("the request's signature does not verify", e))?;
        Ok(algorithm)
    }
}

fn cmc_refusal() -> Error {
    Error::request(
        "this is a CMC or PKCS #7-wrapped request (certreq's RequestType = CMC, or a renewal); the CA reads PKCS #10 requests: make it again with RequestType = PKCS10 in [NewRequest]",
    )
}

/// The SignedData of a CMS ContentInfo, when `der` is one (`Err` when it says SignedData but
/// is not readable as one).
fn signed_data(der: &[u8]) -> Option<std::result::Result<cms::signed_data::SignedData, ()>> {
    let info = cms::content_info::ContentInfo::from_der(der).ok()?;
    if info.content_type != ID_SIGNED_DATA {
        return None;
    }
    Some(info.content.decode_as().map_err(|_| ()))
}

/// Reads a request file; see [`ReceivedRequest::parse`].
pub fn parse_request(bytes: &[u8]) -> Result<ReceivedRequest> {
    ReceivedRequest::parse(bytes)
}

/// Checks a request's signature over its bytes as received; see [`ReceivedRequest::verify`].
pub fn verify_request(request: &ReceivedRequest) -> Result<SignatureAlgorithm> {
    request.verify()
}

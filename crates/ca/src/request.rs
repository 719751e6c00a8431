//! PKCS#10 certificate requests: building them from a policy, their file form, and checking
//! their signature.

use std::str::FromStr;

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, PrintableString, SetOfVec, Utf8StringRef};
use der::pem::LineEnding;
use der::referenced::OwnedToRef;
use der::{Any, Decode, Encode};
use signature::Verifier;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::CertReq;

use crate::dn::{Attribute, DistinguishedName};
use crate::error::{Error, Result};
use crate::inf::{Hash, RequestPolicy};
use crate::keys::{PrivateKey, os_rng};

/// The PEM label certreq writes.
pub const NEW_REQUEST_LABEL: &str = "NEW CERTIFICATE REQUEST";
/// The PEM label OpenSSL writes.
pub const REQUEST_LABEL: &str = "CERTIFICATE REQUEST";
/// The largest request file read.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// The X.509 name for a subject written `CN=host, O=Org, C=NL`: as in RFC 4514 and as
/// certreq does, the written order is the reverse of the encoded one (C first in DER).
pub fn to_x509_name(dn: &DistinguishedName) -> Result<Name> {
    let mut rdns = Vec::with_capacity(dn.parts.len());
    for (attr, value) in dn.parts.iter().rev() {
        let oid = ObjectIdentifier::from_str(attr.oid())
            .map_err(|e| Error::Request(format!("attribute {attr}: {e}")))?;
        let any = match attr {
            Attribute::Country => Any::encode_from(
                &PrintableString::new(value)
                    .map_err(|e| Error::Request(format!("C={value}: {e}")))?,
            ),
            Attribute::Email | Attribute::DomainComponent => Any::encode_from(
                &Ia5String::new(value)
                    .map_err(|e| Error::Request(format!("{attr}={value}: {e}")))?,
            ),
            _ => Any::encode_from(
                &Utf8StringRef::new(value)
                    .map_err(|e| Error::Request(format!("{attr}={value}: {e}")))?,
            ),
        }
        .map_err(|e| Error::Request(format!("{attr}={value}: {e}")))?;
        let atv = AttributeTypeAndValue { oid, value: any };
        let set = SetOfVec::try_from(vec![atv]).map_err(|e| Error::Request(e.to_string()))?;
        rdns.push(RelativeDistinguishedName::from(set));
    }
    // `Name` wraps the sequence privately; both encode as the same SEQUENCE OF.
    let der = RdnSequence::from(rdns)
        .to_der()
        .map_err(|e| Error::Request(e.to_string()))?;
    Name::from_der(&der).map_err(|e| Error::Request(e.to_string()))
}

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
        return Err(Error::Request(format!(
            "the key is {}, the policy asks for {}",
            key.key_type(),
            policy.key
        )));
    }
    let mut builder = RequestBuilder::new(to_x509_name(&policy.subject)?)
        .map_err(|e| Error::Request(e.to_string()))?;
    if let Some(bits) = policy.key_usage {
        builder
            .add_extension(&key_usage(bits)?)
            .map_err(|e| Error::Request(format!("key usage: {e}")))?;
    }
    let ekus = policy
        .ekus
        .iter()
        .map(|o| ObjectIdentifier::from_str(o).map_err(|e| Error::Request(format!("EKU {o}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    builder
        .add_extension(&ExtendedKeyUsage(ekus))
        .map_err(|e| Error::Request(format!("EKU: {e}")))?;
    let names = policy
        .dns_names
        .iter()
        .map(|n| {
            Ia5String::new(n)
                .map(GeneralName::DnsName)
                .map_err(|e| Error::Request(format!("DNS name {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    builder
        .add_extension(&SubjectAltName(names))
        .map_err(|e| Error::Request(format!("subject alternative name: {e}")))?;

    let signed = match (key, policy.hash) {
        (PrivateKey::Rsa(k), Hash::Sha256) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, &mut os_rng())
        }
        (PrivateKey::Rsa(k), Hash::Sha384) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha384>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, &mut os_rng())
        }
        (PrivateKey::Rsa(k), Hash::Sha512) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new((**k).clone());
            builder.build_with_rng::<_, rsa::pkcs1v15::Signature, _>(&signer, &mut os_rng())
        }
        (PrivateKey::P256(k), Hash::Sha256) => {
            let signer = p256::ecdsa::SigningKey::from(k);
            builder.build::<_, p256::ecdsa::DerSignature>(&signer)
        }
        (PrivateKey::P256(_), other) => {
            return Err(Error::Request(format!(
                "ECDSA P-256 requests are signed with SHA-256, not {other:?}"
            )));
        }
    };
    signed.map_err(|e| Error::Request(format!("signing: {e}")))
}

/// The request as certreq writes it: base64 between `-----BEGIN NEW CERTIFICATE REQUEST-----`
/// lines, CRLF line endings.
pub fn request_to_pem(request: &CertReq) -> Result<String> {
    let der = request
        .to_der()
        .map_err(|e| Error::Request(e.to_string()))?;
    der::pem::encode_string(NEW_REQUEST_LABEL, LineEnding::CRLF, &der)
        .map_err(|e| Error::Request(e.to_string()))
}

/// Reads a request file: PEM with certreq's or OpenSSL's label, or DER. Untrusted input:
/// bounded in size, and parsing is all it does (see [`verify_request`]).
pub fn parse_request(bytes: &[u8]) -> Result<CertReq> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(Error::Request(format!(
            "a request of {} bytes is larger than {MAX_REQUEST_BYTES}",
            bytes.len()
        )));
    }
    let trimmed = bytes.trim_ascii_start();
    let der = if trimmed.starts_with(b"-----BEGIN") {
        let (label, der) =
            der::pem::decode_vec(trimmed).map_err(|e| Error::Request(format!("PEM: {e}")))?;
        if label != NEW_REQUEST_LABEL && label != REQUEST_LABEL {
            return Err(Error::Request(format!(
                "PEM label '{label}' is not a certificate request"
            )));
        }
        der
    } else {
        trimmed.to_vec()
    };
    CertReq::from_der(&der).map_err(|e| Error::Request(format!("not a PKCS#10 request: {e}")))
}

/// Checks a request's signature with the public key it carries.
pub fn verify_request(request: &CertReq) -> Result<()> {
    let signed = request
        .info
        .to_der()
        .map_err(|e| Error::Request(e.to_string()))?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| Error::Request("the signature has unused bits".into()))?;
    let spki = &request.info.public_key;
    let oid = request.algorithm.oid;
    let bad = |e: signature::Error| {
        Error::Request(format!("the request's signature does not verify: {e}"))
    };
    let rsa_key = || {
        rsa::RsaPublicKey::try_from(spki.owned_to_ref())
            .map_err(|e| Error::Request(format!("the request's RSA key: {e}")))
    };
    if oid == SHA256_RSA {
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(bad)?;
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_key()?)
            .verify(&signed, &sig)
            .map_err(bad)
    } else if oid == SHA384_RSA {
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(bad)?;
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(rsa_key()?)
            .verify(&signed, &sig)
            .map_err(bad)
    } else if oid == SHA512_RSA {
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(bad)?;
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(rsa_key()?)
            .verify(&signed, &sig)
            .map_err(bad)
    } else if oid == ECDSA_SHA256 {
        let key = p256::ecdsa::VerifyingKey::try_from(spki.owned_to_ref())
            .map_err(|e| Error::Request(format!("the request's P-256 key: {e}")))?;
        let sig = p256::ecdsa::DerSignature::try_from(signature).map_err(bad)?;
        key.verify(&signed, &sig).map_err(bad)
    } else {
        Err(Error::Request(format!(
            "signature algorithm {oid} is not supported"
        )))
    }
}

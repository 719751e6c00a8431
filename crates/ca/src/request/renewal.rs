//! Renewal requests as certreq makes them with `RenewalCert`: the new PKCS #10 request wrapped
//! in CMS SignedData (content type id-data) signed by the key of the certificate being renewed,
//! that certificate included. The CA that issued the old certificate can then tell the owner
//! of the host's current key from anyone who merely copied a request into the share.

use der::asn1::{Any, OctetString, SetOfVec};
use der::{Decode, Encode};
use sha2::Digest;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_DATA, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::keys::PrivateKey;
use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::sigalg::Hash;
use crate::sigalg::{SignatureAlgorithm, verify_signature};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

fn bad(what: impl std::fmt::Display) -> Error {
    Error::request(format!("renewal: {what}"))
}

/// A renewal wrapper the DER or CMS encoder could not make, its error kept as the source.
fn broken(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::request_from("renewal", e)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(broken)?,
    })
}

/// Wraps the PKCS #10 `request` for a renewal of `old_certificate` (DER), signed by `old_key`
/// (its key) at `signing_time`: what certreq writes for `RenewalCert`. The DER of the
/// wrapper; write it with [`request_der_to_pem`](super::request_der_to_pem).
pub fn wrap_renewal(
    request: &x509_cert::request::CertReq,
    old_certificate: &[u8],
    old_key: &PrivateKey,
    signing_time: std::time::SystemTime,
) -> Result<Vec<u8>> {
    let request = &request.to_der().map_err(broken)?;
    let cert = x509_cert::Certificate::from_der(old_certificate).map_err(broken)?;
    let info = CertInfo::parse(old_certificate)?;
    if old_key.public_key_der()? != info.public_key {
        return Err(bad("the key is not the key of the certificate to renew"));
    }
    let digest = sha2::Sha256::digest(request);
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(broken)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(broken)?)
                .map_err(broken)?,
        )?,
        attribute(
            ID_SIGNING_TIME,
            Any::encode_from(
                &x509_cert::time::Time::try_from(crate::time::whole(signing_time))
                    .map_err(broken)?,
            )
            .map_err(broken)?,
        )?,
    ])
    .map_err(broken)?;
    let (signature_algorithm, signature) = old_key.sign(&signed_attrs.to_der().map_err(broken)?)?;
    let sha256 = AlgorithmIdentifierOwned {
        oid: SHA256,
        parameters: None,
    };
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate().issuer().clone(),
            serial_number: cert.tbs_certificate().serial_number().clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::new(signature).map_err(broken)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(broken)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(request.to_vec()).map_err(broken)?)
                    .map_err(broken)?,
            ),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).map_err(broken)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(broken)?),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(broken)?,
    }
    .to_der()
    .map_err(broken)
}

/// What a renewal's wrapper proves: that whoever made the request holds the key of
/// `certificate`, which it carries. Whether this CA issued that certificate, and whether it is
/// still its host's current one, is the CA's to check.
#[derive(Debug, Clone)]
pub struct RenewalProof {
    /// The certificate being renewed, as the wrapper carries it.
    pub certificate: CertInfo,
    /// The digest the signature was made over: SHA-1 from older Windows CSPs is read, and
    /// weaker than the CA issues on at once.
    pub digest: Hash,
    /// The signed signing time, when the wrapper carries one.
    pub signing_time: Option<std::time::SystemTime>,
}

/// Why a renewal's wrapper proves nothing (its signature fails, it carries no certificate,
/// it signs other content), in the words the CA records with the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct BrokenProof {
    reason: String,
}

impl BrokenProof {
    /// What is wrong, in words (text from the request escaped).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A renewal wrapper opened: where the PKCS #10 request lies in the wrapper's bytes, and the
/// proof (else why the signature proves nothing).
pub(crate) struct Unwrapped {
    pub(crate) request: std::ops::Range<usize>,
    pub(crate) proof: std::result::Result<RenewalProof, BrokenProof>,
}

const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// The ranges of the TLVs inside the constructed TLV at `outer` of `der` (its content's
/// elements, each with its header).
fn children(der: &[u8], outer: std::ops::Range<usize>) -> der::Result<Vec<std::ops::Range<usize>>> {
    use der::{Reader, SliceReader};
    let tlv = &der[outer.clone()];
    let mut reader = SliceReader::new(tlv)?;
    let header = der::Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let end = start + usize::try_from(header.length())?;
    let mut inner = SliceReader::new(&tlv[start..end])?;
    let mut out = Vec::new();
    while !inner.is_finished() {
        let at = usize::try_from(inner.position())?;
        let len = inner.tlv_bytes()?.len();
        out.push(outer.start + start + at..outer.start + start + at + len);
    }
    Ok(out)
}

/// Where the PKCS #10 request (the encapsulated content's octets) and the one signer's
/// signed attributes lie in a ContentInfo's DER, exactly as received.
fn locate(
    der: &[u8],
) -> std::result::Result<(std::ops::Range<usize>, Option<std::ops::Range<usize>>), String> {
    let bad = |e: der::Error| format!("its structure cannot be read: {e}");
    let content_info = children(der, 0..der.len()).map_err(bad)?;
    let explicit = content_info.get(1).ok_or("it carries no content")?.clone();
    let signed_data = children(der, explicit).map_err(bad)?;
    let signed_data = signed_data.first().ok_or("it carries no content")?.clone();
    let parts = children(der, signed_data).map_err(bad)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
    let encap =
        children(der, parts.get(2).ok_or("no encapsulated content")?.clone()).map_err(bad)?;
    let econtent =
        children(der, encap.get(1).ok_or("it carries no content")?.clone()).map_err(bad)?;
    let octets = econtent.first().ok_or("it carries no content")?.clone();
    let value = {
        use der::{Reader, SliceReader};
        let mut reader = SliceReader::new(&der[octets.clone()]).map_err(bad)?;
        der::Header::decode(&mut reader).map_err(bad)?;
        octets.start + usize::try_from(reader.position()).map_err(bad)?..octets.end
    };
    let signer_infos = parts.last().ok_or("no signers")?.clone();
    let signers = children(der, signer_infos).map_err(bad)?;
    let attrs = match signers.as_slice() {
        [one] => children(der, one.clone())
            .map_err(bad)?
            .into_iter()
            .find(|r| der[r.start] == 0xA0),
        _ => None,
    };
    Ok((value, attrs))
}

/// Opens `signed` (the SignedData of the ContentInfo `der`, as received) as a renewal. `Err`
/// when it is not a renewal wrapper at all (CMC's PKIData, no content); a wrapper whose
/// signature fails is still opened, with the failure as its proof.
pub(crate) fn unwrap_renewal(
    der: &[u8],
    signed: &SignedData,
) -> std::result::Result<Unwrapped, String> {
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_DATA {
        return Err(format!(
            "its content type is {}, not a wrapped PKCS #10 request",
            encap.econtent_type
        ));
    }
    let (request, attrs) = locate(der)?;
    let proof = prove(signed, &der[request.clone()], attrs.map(|r| &der[r])).map_err(|reason| {
        BrokenProof {
            reason: crate::text::escape_control(&reason),
        }
    });
    Ok(Unwrapped { request, proof })
}

fn prove(
    signed: &SignedData,
    content: &[u8],
    received_attrs: Option<&[u8]>,
) -> std::result::Result<RenewalProof, String> {
    let [signer] = signed.signer_infos.0.as_slice() else {
        return Err(format!(
            "{} signers; a renewal has one",
            signed.signer_infos.0.len()
        ));
    };
    let SignerIdentifier::IssuerAndSerialNumber(sid) = &signer.sid else {
        return Err("the signer is named by key identifier, not by its certificate".into());
    };
    let cert = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .find_map(|choice| match choice {
            CertificateChoices::Certificate(c)
                if c.tbs_certificate().issuer() == &sid.issuer
                    && c.tbs_certificate().serial_number() == &sid.serial_number =>
            {
                Some(c)
            }
            _ => None,
        })
        .ok_or("the certificate being renewed is not in the request")?;
    let hash = match signer.digest_alg.oid {
        SHA1 => Hash::Sha1,
        SHA256 => Hash::Sha256,
        SHA384 => Hash::Sha384,
        SHA512 => Hash::Sha512,
        other => {
            return Err(format!(
                "digest {other} is not SHA-1, SHA-256, SHA-384 or SHA-512"
            ));
        }
    };
    // Without signed attributes (as Windows 7's enrollment client wrote some renewals) the
    // signature covers the request's octets themselves (RFC 5652, 5.4), and there is no
    // signing time.
    let (signed_bytes, signing_time) = match &signer.signed_attrs {
        None => (content.to_vec(), None),
        Some(attrs) => signed_attributes(attrs, hash, content, received_attrs)?,
    };
    // Windows names RSA signatures rsaEncryption, the digest coming from digest_alg.
    let algorithm = if signer.signature_algorithm.oid == RSA_ENCRYPTION {
        SignatureAlgorithm::RsaPkcs1(hash)
    } else {
        SignatureAlgorithm::from_identifier(&signer.signature_algorithm)
            .map_err(|e| e.to_string())?
    };
    verify_signature(
        cert.tbs_certificate().subject_public_key_info(),
        algorithm,
        &signed_bytes,
        signer.signature.as_bytes(),
    )
    .map_err(|e| crate::error::error_chain(&e))?;
    let certificate = CertInfo::parse(&cert.to_der().map_err(|e| e.to_string())?)
        .map_err(|e| crate::error::error_chain(&e))?;
    // The weaker of the digest declared and the one the signature algorithm uses: a wrapper
    // that declares SHA-256 but signs with ecdsa-with-SHA1 is a SHA-1 signature.
    let digest = if algorithm.hash() == Hash::Sha1 {
        Hash::Sha1
    } else {
        hash
    };
    Ok(RenewalProof {
        certificate,
        digest,
        signing_time,
    })
}

/// The bytes a signature over signed attributes covers (the attributes as received, their [0]
/// tag read as the SET OF tag) and the signing time they give, once the attributes say the
/// signed content is the request (`content`, digested with `hash`).
fn signed_attributes(
    attrs: &x509_cert::attr::Attributes,
    hash: Hash,
    content: &[u8],
    received_attrs: Option<&[u8]>,
) -> std::result::Result<(Vec<u8>, Option<std::time::SystemTime>), String> {
    let value_of = |oid: ObjectIdentifier| {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.iter().next()),
            (None, _) => Ok(None),
            _ => Err(format!(
                "the signed attribute {oid} is given more than once"
            )),
        }
    };
    let content_type = value_of(ID_CONTENT_TYPE)?
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or("the signed content type is missing")?;
    if content_type != ID_DATA {
        return Err(format!("the signed content type is {content_type}"));
    }
    let digest = value_of(ID_MESSAGE_DIGEST)?
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or("the signed message digest is missing")?;
    if digest.as_bytes() != hash.digest(content) {
        return Err("the signed message digest is not the request's".into());
    }
    let signing_time = match value_of(ID_SIGNING_TIME)? {
        None => None,
        Some(v) => Some(
            v.decode_as::<x509_cert::time::Time>()
                .map_err(|e| format!("the signed signing time cannot be read: {e}"))?
                .to_system_time(),
        ),
    };
    // The signature covers the signed attributes as received, their [0] tag read as the SET
    // OF tag (RFC 5652, 5.4): never a re-encoding, which would differ from what was signed
    // whenever the signer's order is not DER's.
    let received = received_attrs.ok_or("the signed attributes cannot be located")?;
    let mut signed_bytes = received.to_vec();
    signed_bytes[0] = 0x31;
    Ok((signed_bytes, signing_time))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::request::{KeyType, PolicyOptions, ReceivedRequest, build_request, parse_policy};

    /// A wrapper that declares SHA-256 but signs with ecdsa-with-SHA1 is a SHA-1 proof.
    #[test]
    fn the_weaker_of_the_declared_and_the_signing_digest_counts() {
        let issuer = crate::authority::test_issuer(1);
        let inf =
            b"[NewRequest]\nSubject = \"CN=agent01.company.local\"\nKeyAlgorithm = ECDSA_P256\n";
        let policy = parse_policy(inf, "t.inf", PolicyOptions::default()).unwrap();
        let old_key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let old = issuer
            .sign(
                &issuer
                    .review(
                        &ReceivedRequest::from_der(
                            build_request(&policy, &old_key).unwrap().to_der().unwrap(),
                        )
                        .unwrap(),
                        std::time::SystemTime::now(),
                    )
                    .unwrap(),
            )
            .unwrap();
        let new_key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let request = build_request(&policy, &new_key).unwrap();
        let der = wrap_renewal(&request, &old.der, &old_key, std::time::SystemTime::now()).unwrap();
        let proof = |der: Vec<u8>| {
            ReceivedRequest::from_der(der)
                .unwrap()
                .renewal()
                .cloned()
                .unwrap()
                .unwrap()
        };
        assert_eq!(proof(der.clone()).digest, Hash::Sha256);

        // Re-signed with ecdsa-with-SHA1 over the same attributes, digestAlgorithm unchanged.
        let mut info = ContentInfo::from_der(&der).unwrap();
        let mut signed: SignedData = info.content.decode_as().unwrap();
        let mut signers = signed.signer_infos.0.into_vec();
        let attrs = signers[0].signed_attrs.as_ref().unwrap().to_der().unwrap();
        let PrivateKey::P256(secret) = &old_key else {
            unreachable!()
        };
        let digest = sha1::Sha1::digest(&attrs);
        let signature: p256::ecdsa::DerSignature = signature::hazmat::PrehashSigner::sign_prehash(
            &p256::ecdsa::SigningKey::from(secret),
            &digest,
        )
        .unwrap();
        signers[0].signature_algorithm = AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.2.840.10045.4.1"),
            parameters: None,
        };
        signers[0].signature = OctetString::new(signature.as_bytes().to_vec()).unwrap();
        signed.signer_infos = SignerInfos(SetOfVec::try_from(signers).unwrap());
        info.content = Any::encode_from(&signed).unwrap();
        assert_eq!(proof(info.to_der().unwrap()).digest, Hash::Sha1);
    }
}

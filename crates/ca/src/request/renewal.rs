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

use super::inf::Hash;
use super::keys::PrivateKey;
use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::sigalg::{SignatureAlgorithm, verify_signature};

const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

fn bad(what: impl std::fmt::Display) -> Error {
    Error::Request(format!("renewal: {what}"))
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(bad)?,
    })
}

/// Wraps the PKCS #10 `request` for a renewal of `old_certificate` (DER), signed by `old_key`
/// (its key): what certreq writes for `RenewalCert`. The DER of the wrapper; write it with
/// [`request_der_to_pem`](super::request_der_to_pem).
pub fn wrap_renewal(
    request: &x509_cert::request::CertReq,
    old_certificate: &[u8],
    old_key: &PrivateKey,
) -> Result<Vec<u8>> {
    let request = &request.to_der().map_err(bad)?;
    let cert = x509_cert::Certificate::from_der(old_certificate).map_err(bad)?;
    let info = CertInfo::parse(old_certificate)?;
    if old_key.public_key_der()? != info.public_key {
        return Err(bad("the key is not the key of the certificate to renew"));
    }
    let digest = sha2::Sha256::digest(request);
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA).map_err(bad)?)?,
        attribute(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(digest.to_vec()).map_err(bad)?).map_err(bad)?,
        )?,
    ])
    .map_err(bad)?;
    let (signature_algorithm, signature) = old_key.sign(&signed_attrs.to_der().map_err(bad)?)?;
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
        signature: OctetString::new(signature).map_err(bad)?,
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(bad)?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(
                Any::encode_from(&OctetString::new(request.to_vec()).map_err(bad)?).map_err(bad)?,
            ),
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).map_err(bad)?,
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer]).map_err(bad)?),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

/// A renewal wrapper opened: the PKCS #10 request inside, and the renewed certificate when the
/// signature proves its key (else why not).
pub(crate) struct Unwrapped {
    pub(crate) request: Vec<u8>,
    pub(crate) proof: std::result::Result<CertInfo, String>,
}

/// Opens `signed` (a SignedData's DER content) as a renewal. `Err` when it is not a renewal
/// wrapper at all (CMC's PKIData, no content); a wrapper whose signature fails is still opened,
/// with the failure as its proof.
pub(crate) fn unwrap_renewal(signed: &SignedData) -> std::result::Result<Unwrapped, String> {
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_DATA {
        return Err(format!(
            "its content type is {}, not a wrapped PKCS #10 request",
            encap.econtent_type
        ));
    }
    let request = encap
        .econtent
        .as_ref()
        .ok_or("it carries no content")?
        .decode_as::<OctetString>()
        .map_err(|e| format!("its content cannot be read: {e}"))?
        .into_bytes()
        .into_vec();
    let proof = prove(signed, &request);
    Ok(Unwrapped { request, proof })
}

fn prove(signed: &SignedData, content: &[u8]) -> std::result::Result<CertInfo, String> {
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
        SHA256 => Hash::Sha256,
        SHA384 => Hash::Sha384,
        SHA512 => Hash::Sha512,
        other => return Err(format!("digest {other} is not SHA-256, SHA-384 or SHA-512")),
    };
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or("the signature covers no signed attributes")?;
    let value_of = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| a.values.iter().next())
    };
    let content_type = value_of(ID_CONTENT_TYPE)
        .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
        .ok_or("the signed content type is missing")?;
    if content_type != ID_DATA {
        return Err(format!("the signed content type is {content_type}"));
    }
    let digest = value_of(ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or("the signed message digest is missing")?;
    if digest.as_bytes() != hash.digest(content) {
        return Err("the signed message digest is not the request's".into());
    }
    // Windows names RSA signatures rsaEncryption, the digest coming from digest_alg.
    let algorithm = if signer.signature_algorithm.oid == RSA_ENCRYPTION {
        SignatureAlgorithm::RsaPkcs1(hash)
    } else {
        SignatureAlgorithm::from_identifier(&signer.signature_algorithm)?
    };
    // The signed attributes are signed as a SET OF, in DER order (RFC 5652, 5.4).
    let signed_bytes = attrs.to_der().map_err(|e| e.to_string())?;
    verify_signature(
        cert.tbs_certificate().subject_public_key_info(),
        algorithm,
        &signed_bytes,
        signer.signature.as_bytes(),
    )?;
    CertInfo::parse(&cert.to_der().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

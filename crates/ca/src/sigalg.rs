//! Signature algorithms we verify, and the check itself: always over the signed bytes exactly
//! as they were received (a request's `certificationRequestInfo`, a certificate's
//! `tbsCertificate`), never over a re-encoding of what was parsed.

use std::fmt;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use signature::Verifier;
use signature::hazmat::PrehashVerifier;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// The digest a request is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hash {
    /// SHA-1: read on received requests (certreq with a legacy CSP signs with it; the
    /// signature is only proof of possession there), never used to sign.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// The name certutil prints (`sha256` in `sha256RSA`).
    pub fn certutil_name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha1",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }
}

const SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ECDSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The longest RSASSA-PSS salt accepted (the longest digest's output).
const MAX_PSS_SALT: u8 = 64;

/// A signature algorithm of a received request or certificate, named as certutil names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// RSA PKCS #1 v1.5 (`sha1RSA`, `sha256RSA`, ...).
    RsaPkcs1(Hash),
    /// RSASSA-PSS with MGF1 over the same digest and this salt length (certreq's
    /// `AlternateSignatureAlgorithm = TRUE`).
    RsaPss {
        /// The message digest (and MGF1's).
        hash: Hash,
        /// The salt length in bytes.
        salt_len: u8,
    },
    /// ECDSA (`sha256ECDSA`, ...), on P-256 or P-384.
    Ecdsa(Hash),
}

impl SignatureAlgorithm {
    /// The digest the signature covers.
    pub fn hash(self) -> Hash {
        match self {
            SignatureAlgorithm::RsaPkcs1(h)
            | SignatureAlgorithm::Ecdsa(h)
            | SignatureAlgorithm::RsaPss { hash: h, .. } => h,
        }
    }

    /// Reads an algorithm identifier, with its parameters checked: NULL or absent for
    /// PKCS #1 v1.5, absent for ECDSA, and for RSASSA-PSS a SHA-2 digest, MGF1 over the same
    /// digest, the standard trailer and a salt no longer than 64 bytes.
    pub fn from_identifier(id: &AlgorithmIdentifierOwned) -> Result<Self, AlgorithmError> {
        let oid = id.oid;
        let rsa = [
            (SHA1_RSA, Hash::Sha1),
            (SHA256_RSA, Hash::Sha256),
            (SHA384_RSA, Hash::Sha384),
            (SHA512_RSA, Hash::Sha512),
        ];
        if let Some((_, hash)) = rsa.iter().find(|(o, _)| *o == oid) {
            return match &id.parameters {
                None => Ok(Self::RsaPkcs1(*hash)),
                Some(p) if p.is_null() => Ok(Self::RsaPkcs1(*hash)),
                Some(_) => Err(AlgorithmError::Parameters {
                    oid,
                    expected: "PKCS #1 v1.5 takes NULL",
                }),
            };
        }
        let ecdsa = [
            (ECDSA_SHA1, Hash::Sha1),
            (ECDSA_SHA256, Hash::Sha256),
            (ECDSA_SHA384, Hash::Sha384),
            (ECDSA_SHA512, Hash::Sha512),
        ];
        if let Some((_, hash)) = ecdsa.iter().find(|(o, _)| *o == oid) {
            return match id.parameters {
                None => Ok(Self::Ecdsa(*hash)),
                Some(_) => Err(AlgorithmError::Parameters {
                    oid,
                    expected: "ECDSA takes none",
                }),
            };
        }
        if oid == RSASSA_PSS {
            return pss_parameters(id);
        }
        Err(AlgorithmError::Unsupported(oid))
    }
}

/// Why a signature's algorithm identifier is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlgorithmError {
    /// Parameters where the algorithm takes none (or only NULL).
    #[error("signature algorithm {oid} carries parameters; {expected}")]
    Parameters {
        /// The algorithm.
        oid: ObjectIdentifier,
        /// What it takes.
        expected: &'static str,
    },
    /// An algorithm this crate does not verify.
    #[error(
        "signature algorithm {0} is not supported (RSA PKCS #1 v1.5 or ECDSA, with SHA-1 or SHA-2; RSASSA-PSS)"
    )]
    Unsupported(ObjectIdentifier),
    /// RSASSA-PSS parameters that are unreadable or outside what is accepted, and how.
    #[error("RSASSA-PSS parameters: {0}")]
    Pss(String),
}

/// Why a signature over received bytes does not hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signed document is not an X.509 certificate.
    #[error("not an X.509 certificate")]
    NotACertificate(#[source] der::Error),
    /// Its signature algorithm is refused.
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    /// The signature's BIT STRING has unused bits.
    #[error("the signature has unused bits")]
    UnusedBits,
    /// A key of another kind than the algorithm's.
    #[error("a {algorithm} signature made with a {key} key, not an {expected} one")]
    WrongKey {
        /// The signature's algorithm.
        algorithm: SignatureAlgorithm,
        /// The key's algorithm.
        key: ObjectIdentifier,
        /// The kind the signature needs: RSA or EC.
        expected: &'static str,
    },
    /// The signer's RSA key cannot be read.
    #[error("the RSA key cannot be read")]
    RsaKey(#[source] spki::Error),
    /// The signer's EC key is not a point on a curve this crate verifies.
    #[error("the EC key is not a valid point on P-256 or P-384")]
    EcKey,
    /// An algorithm this crate reads but has no verifier for.
    #[error("{0} is not supported")]
    Unsupported(SignatureAlgorithm),
    /// The signature does not match the bytes and the key.
    #[error("the signature ({algorithm}) does not verify")]
    Mismatch {
        /// The signature's algorithm.
        algorithm: SignatureAlgorithm,
        /// What the verifier said.
        #[source]
        source: signature::Error,
    },
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureAlgorithm::RsaPkcs1(h) => write!(f, "{}RSA", h.certutil_name()),
            SignatureAlgorithm::RsaPss { hash, salt_len } => write!(
                f,
                "RSASSA-PSS ({}, MGF1, salt {salt_len})",
                hash.certutil_name()
            ),
            SignatureAlgorithm::Ecdsa(h) => write!(f, "{}ECDSA", h.certutil_name()),
        }
    }
}

fn digest_oid(oid: ObjectIdentifier) -> Option<Hash> {
    [
        (SHA256, Hash::Sha256),
        (SHA384, Hash::Sha384),
        (SHA512, Hash::Sha512),
    ]
    .into_iter()
    .find(|(o, _)| *o == oid)
    .map(|(_, h)| h)
}

fn pss_parameters(id: &AlgorithmIdentifierOwned) -> Result<SignatureAlgorithm, AlgorithmError> {
    let bad = AlgorithmError::Pss;
    let params = id
        .parameters
        .as_ref()
        .ok_or_else(|| bad("missing (the defaults would mean SHA-1)".into()))?;
    let der = params.to_der().map_err(|e| bad(e.to_string()))?;
    let params = rsa::pkcs1::RsaPssParamsOwned::from_der(&der)
        .map_err(|e| bad(format!("unreadable: {e}")))?;
    let hash = digest_oid(params.hash.oid).ok_or_else(|| {
        bad(format!(
            "digest {} is not SHA-256, SHA-384 or SHA-512",
            params.hash.oid
        ))
    })?;
    if params.mask_gen.oid != MGF1 {
        return Err(bad(format!(
            "mask generation {} is not MGF1",
            params.mask_gen.oid
        )));
    }
    let mgf_hash = params
        .mask_gen
        .parameters
        .as_ref()
        .map(|p| p.oid)
        .ok_or_else(|| bad("MGF1 names no digest".into()))?;
    if digest_oid(mgf_hash) != Some(hash) {
        return Err(bad(format!(
            "MGF1's digest {mgf_hash} differs from the message digest {}",
            params.hash.oid
        )));
    }
    if params.salt_len > MAX_PSS_SALT {
        return Err(bad(format!(
            "a salt of {} bytes is longer than {MAX_PSS_SALT}",
            params.salt_len
        )));
    }
    Ok(SignatureAlgorithm::RsaPss {
        hash,
        salt_len: params.salt_len,
    })
}

impl Hash {
    pub(crate) fn digest(self, message: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Hash::Sha1 => sha1::Sha1::digest(message).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

fn rsa_pkcs1<D>(key: rsa::RsaPublicKey, message: &[u8], sig: &[u8]) -> signature::Result<()>
where
    D: sha2::Digest + const_oid::AssociatedOid,
{
    let sig = rsa::pkcs1v15::Signature::try_from(sig)?;
    rsa::pkcs1v15::VerifyingKey::<D>::new(key).verify(message, &sig)
}

fn rsa_pss<D>(key: rsa::RsaPublicKey, salt: u8, message: &[u8], sig: &[u8]) -> signature::Result<()>
where
    D: sha2::Digest + sha2::digest::FixedOutputReset,
{
    let sig = rsa::pss::Signature::try_from(sig)?;
    rsa::pss::VerifyingKey::<D>::new_with_salt_len(key, usize::from(salt)).verify(message, &sig)
}

/// Checks `signature` over `signed` (the bytes exactly as received) with `key`, by
/// `algorithm`. The error says what does not match.
pub fn verify_signature(
    key: &SubjectPublicKeyInfoOwned,
    algorithm: SignatureAlgorithm,
    signed: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let bad = |source| SignatureError::Mismatch { algorithm, source };
    let key_oid = key.algorithm.oid;
    match algorithm {
        SignatureAlgorithm::RsaPkcs1(_) | SignatureAlgorithm::RsaPss { .. } => {
            if key_oid != RSA_ENCRYPTION {
                return Err(SignatureError::WrongKey {
                    algorithm,
                    key: key_oid,
                    expected: "RSA",
                });
            }
            let rsa =
                rsa::RsaPublicKey::try_from(key.owned_to_ref()).map_err(SignatureError::RsaKey)?;
            match algorithm {
                SignatureAlgorithm::RsaPkcs1(Hash::Sha1) => {
                    rsa_pkcs1::<sha1::Sha1>(rsa, signed, signature)
                }
                SignatureAlgorithm::RsaPkcs1(Hash::Sha256) => {
                    rsa_pkcs1::<sha2::Sha256>(rsa, signed, signature)
                }
                SignatureAlgorithm::RsaPkcs1(Hash::Sha384) => {
                    rsa_pkcs1::<sha2::Sha384>(rsa, signed, signature)
                }
                SignatureAlgorithm::RsaPkcs1(Hash::Sha512) => {
                    rsa_pkcs1::<sha2::Sha512>(rsa, signed, signature)
                }
                SignatureAlgorithm::RsaPss {
                    hash: Hash::Sha256,
                    salt_len,
                } => rsa_pss::<sha2::Sha256>(rsa, salt_len, signed, signature),
                SignatureAlgorithm::RsaPss {
                    hash: Hash::Sha384,
                    salt_len,
                } => rsa_pss::<sha2::Sha384>(rsa, salt_len, signed, signature),
                SignatureAlgorithm::RsaPss {
                    hash: Hash::Sha512,
                    salt_len,
                } => rsa_pss::<sha2::Sha512>(rsa, salt_len, signed, signature),
                other => return Err(SignatureError::Unsupported(other)),
            }
            .map_err(bad)
        }
        SignatureAlgorithm::Ecdsa(hash) => {
            if key_oid != ID_EC_PUBLIC_KEY {
                return Err(SignatureError::WrongKey {
                    algorithm,
                    key: key_oid,
                    expected: "EC",
                });
            }
            if ring_ecdsa(key, hash, signed, signature) {
                return Ok(());
            }
            // Not a combination ring verifies, or it said no: the pure-Rust verifier decides,
            // and says why.
            let digest = hash.digest(signed);
            if let Ok(k) = p256::ecdsa::VerifyingKey::try_from(key.owned_to_ref()) {
                let sig = p256::ecdsa::DerSignature::try_from(signature).map_err(bad)?;
                k.verify_prehash(&digest, &sig).map_err(bad)
            } else if let Ok(k) = p384::ecdsa::VerifyingKey::try_from(key.owned_to_ref()) {
                let sig = p384::ecdsa::DerSignature::try_from(signature).map_err(bad)?;
                k.verify_prehash(&digest, &sig).map_err(bad)
            } else {
                Err(SignatureError::EcKey)
            }
        }
    }
}

const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// ring's ECDSA verification, for the curve and digest pairs it has (P-256 and P-384 with
/// SHA-256 or SHA-384, an uncompressed point): true when the signature verifies.
fn ring_ecdsa(
    key: &SubjectPublicKeyInfoOwned,
    hash: Hash,
    signed: &[u8],
    signature: &[u8],
) -> bool {
    use ring::signature as rs;
    let curve = key
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let algorithm: &dyn rs::VerificationAlgorithm = match (curve, hash) {
        (Some(SECP256R1), Hash::Sha256) => &rs::ECDSA_P256_SHA256_ASN1,
        (Some(SECP256R1), Hash::Sha384) => &rs::ECDSA_P256_SHA384_ASN1,
        (Some(SECP384R1), Hash::Sha256) => &rs::ECDSA_P384_SHA256_ASN1,
        (Some(SECP384R1), Hash::Sha384) => &rs::ECDSA_P384_SHA384_ASN1,
        _ => return false,
    };
    let Some(point) = key.subject_public_key.as_bytes() else {
        return false;
    };
    point.first() == Some(&0x04)
        && rs::UnparsedPublicKey::new(algorithm, point)
            .verify(signed, signature)
            .is_ok()
}

/// Where the signed part (the first element of the outer SEQUENCE: a request's
/// `certificationRequestInfo`, a certificate's `tbsCertificate`, a CRL's `tbsCertList`) lies
/// in `der`.
pub(crate) fn signed_range(der: &[u8]) -> der::Result<std::ops::Range<usize>> {
    use der::{Reader, SliceReader};
    let mut reader = SliceReader::new(der)?;
    der::Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let signed = reader.tlv_bytes()?;
    Ok(start..start + signed.len())
}

/// Checks that `issuer_key` signed the certificate `cert` (DER), over its `tbsCertificate`
/// exactly as received.
pub fn verify_certificate(
    cert: &[u8],
    issuer_key: &SubjectPublicKeyInfoOwned,
) -> Result<(), SignatureError> {
    let parsed = x509_cert::Certificate::from_der(cert).map_err(SignatureError::NotACertificate)?;
    let range = signed_range(cert).map_err(SignatureError::NotACertificate)?;
    let algorithm = SignatureAlgorithm::from_identifier(parsed.signature_algorithm())?;
    let signature = parsed
        .signature()
        .as_bytes()
        .ok_or(SignatureError::UnusedBits)?;
    verify_signature(issuer_key, algorithm, &cert[range], signature)
}

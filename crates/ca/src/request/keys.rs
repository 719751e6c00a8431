//! Private keys: generation, PKCS#8, the signers that use them.

use getrandom::SysRng;
use getrandom::rand_core::UnwrapErr;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use zeroize::Zeroizing;

use super::inf::KeyType;
use crate::error::{Error, Result};

/// A private key of a type the pipeline supports. Both kinds wipe their secret when dropped.
#[derive(Clone)]
pub enum PrivateKey {
    /// RSA.
    Rsa(Box<rsa::RsaPrivateKey>),
    /// ECDSA on P-256.
    P256(p256::SecretKey),
    /// ECDSA on P-384.
    P384(p384::SecretKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.key_type())
    }
}

/// The operating system's generator as the `rand_core` generator RustCrypto takes.
pub(crate) fn os_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

impl PrivateKey {
    /// Generates a fresh key from the operating system's generator.
    pub fn generate(kind: KeyType) -> Result<Self> {
        let mut rng = os_rng();
        match kind {
            KeyType::Rsa(bits) => {
                let key = rsa::RsaPrivateKey::new(&mut rng, bits as usize)
                    .map_err(|e| Error::key_from(format!("generating RSA-{bits}"), e))?;
                Ok(PrivateKey::Rsa(Box::new(key)))
            }
            KeyType::EcdsaP256 => {
                use p256::elliptic_curve::Generate;
                Ok(PrivateKey::P256(p256::SecretKey::generate_from_rng(
                    &mut rng,
                )))
            }
            KeyType::EcdsaP384 => {
                use p384::elliptic_curve::Generate;
                Ok(PrivateKey::P384(p384::SecretKey::generate_from_rng(
                    &mut rng,
                )))
            }
        }
    }

    /// What kind of key this is.
    pub fn key_type(&self) -> KeyType {
        match self {
            PrivateKey::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                KeyType::Rsa(k.n().bits())
            }
            PrivateKey::P256(_) => KeyType::EcdsaP256,
            PrivateKey::P384(_) => KeyType::EcdsaP384,
        }
    }

    /// The key as unencrypted PKCS#8 DER, wiped from memory when dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let doc = match self {
            PrivateKey::Rsa(k) => k.to_pkcs8_der(),
            PrivateKey::P256(k) => k.to_pkcs8_der(),
            PrivateKey::P384(k) => k.to_pkcs8_der(),
        }
        .map_err(|e| Error::key_from("encoding the key", e))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// The key as unencrypted PKCS#8 PEM (`PRIVATE KEY`), wiped from memory when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(|e| Error::key_from("encoding the key", e))
    }

    /// The key as password-encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`: PBES2, scrypt and
    /// AES-256-CBC), which `openssl pkey -passin` reads.
    pub fn to_encrypted_pkcs8_pem(&self, password: &str) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice())
            .map_err(|e| Error::key_from("encoding the key", e))?;
        let doc = info
            .encrypt(password.as_bytes())
            .map_err(|e| Error::key_from("encrypting the key", e))?;
        doc.to_pem("ENCRYPTED PRIVATE KEY", der::pem::LineEnding::LF)
            .map_err(|e| Error::key_from("encoding the key", e))
    }

    /// Reads a PKCS#8 PEM key, plain or encrypted; an encrypted one needs `password`.
    pub fn from_pkcs8_pem(pem: &str, password: Option<&str>) -> Result<Self> {
        let (label, der) = der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| Error::key_from("not a PEM key", e))?;
        let der = Zeroizing::new(der);
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or_else(|| Error::PasswordRequired("the key".into()))?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice())
                    .map_err(|e| Error::key_from("not an encrypted PKCS#8 key", e))?;
                let plain = info
                    .decrypt(password.as_bytes())
                    .map_err(|_| Error::WrongPassword("the key".into()))?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            other => Err(Error::key(format!(
                "PEM label '{other}' is not PRIVATE KEY or ENCRYPTED PRIVATE KEY"
            ))),
        }
    }

    /// Reads unencrypted PKCS#8 DER (RSA, P-256 or P-384).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P256(k));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
            return Ok(PrivateKey::P384(k));
        }
        rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map(|k| PrivateKey::Rsa(Box::new(k)))
            .map_err(|e| Error::key_from("not an RSA, P-256 or P-384 PKCS#8 key", e))
    }

    /// Signs `message` with the key's usual algorithm (RSA: PKCS #1 v1.5 with SHA-256, with
    /// blinding; P-256: ECDSA with SHA-256; P-384: ECDSA with SHA-384): the algorithm's
    /// identifier and the signature.
    pub fn sign(&self, message: &[u8]) -> Result<(spki::AlgorithmIdentifierOwned, Vec<u8>)> {
        use signature::{RandomizedSigner, SignatureEncoding, Signer};
        use spki::DynSignatureAlgorithmIdentifier;
        let err = |e: spki::Error| Error::key_from("signing", e);
        match self {
            PrivateKey::Rsa(k) => {
                let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone());
                let sig = signer.sign_with_rng(&mut os_rng(), message);
                Ok((
                    signer.signature_algorithm_identifier().map_err(err)?,
                    sig.to_vec(),
                ))
            }
            PrivateKey::P256(k) => {
                let signer = p256::ecdsa::SigningKey::from(k);
                let sig: p256::ecdsa::DerSignature = signer.sign(message);
                Ok((
                    signer.signature_algorithm_identifier().map_err(err)?,
                    sig.to_vec(),
                ))
            }
            PrivateKey::P384(k) => {
                let signer = p384::ecdsa::SigningKey::from(k);
                let sig: p384::ecdsa::DerSignature = signer.sign(message);
                Ok((
                    signer.signature_algorithm_identifier().map_err(err)?,
                    sig.to_vec(),
                ))
            }
        }
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        use spki::EncodePublicKey;
        match self {
            PrivateKey::Rsa(k) => k.to_public_key().to_public_key_der(),
            PrivateKey::P256(k) => k.public_key().to_public_key_der(),
            PrivateKey::P384(k) => k.public_key().to_public_key_der(),
        }
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| Error::key_from("encoding the public key", e))
    }
}

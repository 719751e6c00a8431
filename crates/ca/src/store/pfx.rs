//! PFX (PKCS #12) files, as Windows moves a certificate with its private key: written for
//! `certutil -exportPFX`, read for `certutil -importPFX` and MOMCertImport's file argument.
//! Bytes in, bytes out: the stores and the tools do the files.
//!
//! The format work is p12-keystore's (PBES2 and the PKCS #12 PBEs, the MAC, the bags); this
//! module chooses the algorithms Windows reads and checks what comes back: one private key,
//! its certificate first, the key matching the certificate.

use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, LocalKeyId,
    MacAlgorithm, Pkcs12ImportPolicy, PrivateKey as P12PrivateKey, PrivateKeyChain,
};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::request::PrivateKey;

/// The largest PFX file read (a key and a chain are a few kilobytes).
pub const MAX_PFX_BYTES: usize = 1024 * 1024;

/// PBKDF2 / PKCS #12 KDF iterations for the encryption and the MAC (OpenSSL 3's 2048 for the
/// encryption is low for a file that travels; Windows writes 2000 for 3DES, 10000 for AES).
const ITERATIONS: u32 = 10_000;

/// How a PFX is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PfxEncryption {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) with an HMAC-SHA256 MAC: what OpenSSL 3 and
    /// Windows 10 1709 / Server 2019 and later write and read.
    #[default]
    Aes256,
    /// pbeWithSHAAnd3-KeyTripleDES-CBC with an HMAC-SHA1 MAC: the only one Windows Server
    /// 2008 R2 and 2012 import (`openssl pkcs12 -legacy`).
    Legacy3Des,
}

/// What a PFX holds.
#[derive(Debug)]
pub struct Pfx {
    /// The private key.
    pub key: PrivateKey,
    /// Its certificate.
    pub certificate: CertInfo,
    /// The other certificates, issuer by issuer (the root last when present).
    pub chain: Vec<CertInfo>,
    /// The key's friendly name, when the file gives one.
    pub friendly_name: Option<String>,
}

fn pfx_err(e: p12_keystore::error::Error) -> Error {
    match e {
        p12_keystore::error::Error::MacError(_) => Error::WrongPassword("the PFX file".into()),
        other => Error::Pfx(format!("the file cannot be read as PKCS #12: {other}")),
    }
}

/// Writes `key` with its `certificate` (DER) and the `chain` above it (DER, issuer by issuer)
/// as a PFX protected by `password`.
pub fn write_pfx(
    key: &PrivateKey,
    certificate: &[u8],
    chain: &[Vec<u8>],
    friendly_name: Option<&str>,
    password: &str,
    encryption: PfxEncryption,
) -> Result<Zeroizing<Vec<u8>>> {
    let cert = CertInfo::parse(certificate)?;
    if key.public_key_der()? != cert.public_key {
        return Err(Error::Pfx(format!(
            "the key is not the key of {} ({})",
            cert.subject, cert.thumbprint
        )));
    }
    let pkcs8 = key.to_pkcs8_der()?;
    let p12_key = P12PrivateKey::from_der(&pkcs8).map_err(pfx_err)?;
    let mut certs = vec![P12Certificate::from_der(&cert.der).map_err(pfx_err)?];
    for der in chain {
        certs.push(P12Certificate::from_der(der).map_err(pfx_err)?);
    }
    // Windows pairs the key and its certificate by this id; the thumbprint is unique.
    let local_key_id = LocalKeyId(Sha1::digest(&cert.der).to_vec());
    let mut store = KeyStore::new();
    let alias = friendly_name.unwrap_or(&cert.subject);
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, p12_key, certs)),
    );
    let (cipher, mac) = match encryption {
        PfxEncryption::Aes256 => (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        ),
        PfxEncryption::Legacy3Des => (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        ),
    };
    store
        .writer(password)
        .encryption_algorithm(cipher)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(mac)
        .mac_iterations(ITERATIONS)
        .write()
        .map(Zeroizing::new)
        .map_err(pfx_err)
}

/// Reads a PFX with `password`: untrusted input, bounded in size, the work factor bounded by
/// p12-keystore (at most a million iterations). It must hold exactly one private key and its
/// certificate; a wrong password (or a changed byte) is [`Error::WrongPassword`].
pub fn read_pfx(bytes: &[u8], password: &str) -> Result<Pfx> {
    if bytes.len() > MAX_PFX_BYTES {
        return Err(Error::Pfx(format!(
            "a PFX of {} bytes is larger than {MAX_PFX_BYTES}",
            bytes.len()
        )));
    }
    let store =
        KeyStore::from_pkcs12(bytes, password, Pkcs12ImportPolicy::Strict).map_err(pfx_err)?;
    let chains: Vec<(&String, &PrivateKeyChain)> = store
        .entries()
        .filter_map(|(alias, entry)| match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => Some((alias, chain)),
            _ => None,
        })
        .collect();
    let (alias, chain) = match chains.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Pfx(
                "the file holds no private key with its certificate (export it with the private key: certutil -exportPFX, or openssl pkcs12 -export -inkey)".into(),
            ));
        }
        more => {
            return Err(Error::Pfx(format!(
                "the file holds {} private keys; one is expected",
                more.len()
            )));
        }
    };
    let key = PrivateKey::from_pkcs8_der(&Zeroizing::new(chain.key().as_der().to_vec()))?;
    let mut certs = chain
        .certs()
        .iter()
        .map(|c| CertInfo::parse(c.as_der()))
        .collect::<Result<Vec<_>>>()?;
    if certs.is_empty() {
        return Err(Error::Pfx(
            "the private key comes without its certificate".into(),
        ));
    }
    let certificate = certs.remove(0);
    if key.public_key_der()? != certificate.public_key {
        return Err(Error::Pfx(format!(
            "the private key is not the key of {} ({})",
            certificate.subject, certificate.thumbprint
        )));
    }
    // p12-keystore names an entry by its friendly name, else by the certificate's subject.
    let friendly_name = chain
        .certs()
        .first()
        .filter(|c| c.subject() != alias)
        .map(|_| alias.clone());
    Ok(Pfx {
        key,
        certificate,
        chain: certs,
        friendly_name,
    })
}

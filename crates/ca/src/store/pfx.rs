//! PFX (PKCS #12) files, as Windows moves a certificate with its private key: written for
//! `certutil -exportPFX`, read for `certutil -importPFX` and MOMCertImport's file argument.
//! Bytes in, bytes out: the stores and the tools do the files.
//!
//! Writing is p12-keystore's (PBES2 and the PKCS #12 PBEs, the MAC, the bags), with the
//! algorithms Windows reads. Reading is ours, over the `pkcs12` crate's structures, so that
//! nothing is decrypted before the file's MAC proves it and the total key-derivation work is
//! bounded before each derivation runs; then it checks what comes back: one private key and
//! its certificate, the key matching the certificate.

use p12_keystore::{
    Certificate as P12Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, LocalKeyId,
    MacAlgorithm, PrivateKey as P12PrivateKey, PrivateKeyChain,
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
        other => Error::pfx_from("the file cannot be read as PKCS #12", other),
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
        return Err(Error::pfx(format!(
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

/// The most KDF work one PFX may ask for, in PBKDF2-iteration units (see [`read_pfx`]): about
/// 130 times what Windows' own exports cost (3 derivations of 2,000 or 10,000), and a second
/// or so on one core.
pub const MAX_PFX_WORK: u64 = 4_000_000;
/// The most key derivations one PFX may ask for (the MAC, each encrypted safe, each shrouded
/// key).
pub const MAX_PFX_DERIVATIONS: usize = 16;
/// The most bags one PFX may hold (a key, its certificate and a chain are a handful).
pub const MAX_PFX_BAGS: usize = 64;
/// The most memory one scrypt derivation may ask for.
pub const MAX_PFX_SCRYPT_BYTES: u64 = 64 * 1024 * 1024;

/// The KDF work a PFX asks for, charged before each derivation runs.
struct Budget {
    work: u64,
    derivations: usize,
}

impl Budget {
    fn charge(&mut self, what: &str, units: u64) -> Result<()> {
        self.derivations += 1;
        self.work = self.work.saturating_add(units);
        if self.derivations > MAX_PFX_DERIVATIONS {
            return Err(Error::pfx(format!(
                "it asks for more than {MAX_PFX_DERIVATIONS} key derivations (at {what}); nothing was decrypted beyond that"
            )));
        }
        if self.work > MAX_PFX_WORK {
            return Err(Error::pfx(format!(
                "its key derivations add up to more than {MAX_PFX_WORK} iterations (at {what}); nothing was decrypted beyond that"
            )));
        }
        Ok(())
    }
}

fn der_err(what: &'static str) -> impl Fn(der::Error) -> Error {
    move |e| Error::pfx_from(format!("{what} cannot be read"), e)
}

/// The value inside a `[0] EXPLICIT` wrapper (a SafeBag's bagValue as pkcs12 keeps it).
fn explicit_value(tlv: &[u8]) -> Result<&[u8]> {
    use der::{Reader, SliceReader};
    let bad = der_err("a bag");
    let mut reader = SliceReader::new(tlv).map_err(&bad)?;
    let header: der::Header = der::Decode::decode(&mut reader).map_err(&bad)?;
    if !matches!(header.tag(), der::Tag::ContextSpecific { number, .. } if number.value() == 0) {
        return Err(Error::pfx("a bag's value is not [0]"));
    }
    let start = usize::try_from(reader.position()).map_err(&bad)?;
    Ok(&tlv[start..])
}

/// A password as the PKCS #12 key derivations take it: BMPString (UTF-16 big-endian) with
/// two terminating zero bytes for the MAC and the PKCS #12 PBEs, UTF-8 for PBES2. Windows
/// exports "without a password" with no password at all: no bytes, not an empty BMPString's
/// two zeros; [`Pw::absent`] is that form.
struct Pw {
    bmp: Zeroizing<Vec<u8>>,
    utf8: Zeroizing<Vec<u8>>,
}

impl Pw {
    fn new(password: &str) -> Self {
        let mut bmp = Zeroizing::new(Vec::with_capacity(2 * password.len() + 2));
        for unit in password.encode_utf16() {
            bmp.extend_from_slice(&unit.to_be_bytes());
        }
        bmp.extend_from_slice(&[0, 0]);
        Self {
            bmp,
            utf8: Zeroizing::new(password.as_bytes().to_vec()),
        }
    }

    fn absent() -> Self {
        Self {
            bmp: Zeroizing::new(Vec::new()),
            utf8: Zeroizing::new(Vec::new()),
        }
    }
}

/// Verifies the PFX's MAC over `data` with `password` (RFC 7292 appendix B's KDF, HMAC).
fn verify_mac(
    mac: &pkcs12::MacData,
    data: &[u8],
    password: &Pw,
    budget: &mut Budget,
) -> Result<()> {
    use hmac::{KeyInit, Mac};
    use pkcs12::kdf::{Pkcs12KeyType, derive_key};
    let iterations = u64::try_from(mac.iterations)
        .ok()
        .filter(|i| *i >= 1)
        .ok_or_else(|| {
            Error::pfx(format!(
                "its MAC's iteration count {} is not positive",
                mac.iterations
            ))
        })?;
    budget.charge("the MAC", iterations)?;
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    macro_rules! check {
        ($d:ty) => {{
            let size = <$d as hmac::digest::OutputSizeUser>::output_size();
            let key = Zeroizing::new(derive_key::<$d>(
                &password.bmp,
                salt,
                Pkcs12KeyType::Mac,
                mac.iterations,
                size,
            ));
            let mut m = hmac::Hmac::<$d>::new_from_slice(&key)
                .map_err(|_| Error::pfx("its MAC key has a bad length"))?;
            m.update(data);
            m.verify_slice(expected).is_ok()
        }};
    }
    let ok = match mac.mac.algorithm.oid.to_string().as_str() {
        "1.3.14.3.2.26" => check!(Sha1),
        "2.16.840.1.101.3.4.2.1" => check!(sha2::Sha256),
        "2.16.840.1.101.3.4.2.2" => check!(sha2::Sha384),
        "2.16.840.1.101.3.4.2.3" => check!(sha2::Sha512),
        other => {
            return Err(Error::pfx(format!(
                "its MAC uses digest {other}; SHA-1, SHA-256, SHA-384 or SHA-512 is read"
            )));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::WrongPassword("the PFX file".into()))
    }
}

const PBES2: &str = "1.2.840.113549.1.5.13";
const PBE_SHA_3DES: &str = "1.2.840.113549.1.12.1.3";
const PBE_SHA_2DES: &str = "1.2.840.113549.1.12.1.4";
const PBE_SHA_RC2_40: &str = "1.2.840.113549.1.12.1.6";
const PBE_SHA_RC2_128: &str = "1.2.840.113549.1.12.1.5";

/// Decrypts `data` by the password-based scheme `alg` (PBES2 with PBKDF2 or scrypt; the
/// PKCS #12 PBEs with 3DES or RC2), charging its derivation to `budget` first.
fn decrypt(
    alg: &spki::AlgorithmIdentifierOwned,
    data: &[u8],
    password: &Pw,
    what: &str,
    budget: &mut Budget,
) -> Result<Zeroizing<Vec<u8>>> {
    use der::{Decode, Encode};
    let params = alg
        .parameters
        .as_ref()
        .ok_or_else(|| Error::pfx(format!("{what}: its encryption has no parameters")))?
        .to_der()
        .map_err(der_err("encryption parameters"))?;
    let wrong = || Error::WrongPassword("the PFX file".into());
    match alg.oid.to_string().as_str() {
        PBES2 => {
            let p =
                pkcs5::pbes2::Parameters::from_der(&params).map_err(der_err("PBES2 parameters"))?;
            let units = match &p.kdf {
                pkcs5::pbes2::Kdf::Pbkdf2(k) => u64::from(k.iteration_count),
                pkcs5::pbes2::Kdf::Scrypt(k) => {
                    let memory = 128u64
                        .saturating_mul(k.cost_parameter)
                        .saturating_mul(u64::from(k.block_size));
                    if memory > MAX_PFX_SCRYPT_BYTES {
                        return Err(Error::pfx(format!(
                            "{what}: scrypt asks for {memory} bytes; at most {MAX_PFX_SCRYPT_BYTES} are given"
                        )));
                    }
                    k.cost_parameter
                        .saturating_mul(u64::from(k.block_size))
                        .saturating_mul(u64::from(k.parallelization))
                }
                _ => {
                    return Err(Error::pfx(format!(
                        "{what}: an unknown PBES2 key derivation"
                    )));
                }
            };
            budget.charge(what, units)?;
            p.decrypt(password.utf8.as_slice(), data)
                .map(Zeroizing::new)
                .map_err(|e| match e {
                    pkcs5::Error::DecryptFailed => wrong(),
                    other => Error::pfx_from(what.to_string(), other),
                })
        }
        oid @ (PBE_SHA_3DES | PBE_SHA_2DES | PBE_SHA_RC2_40 | PBE_SHA_RC2_128) => {
            use cbc::cipher::block_padding::Pkcs7;
            use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
            use pkcs12::kdf::{Pkcs12KeyType, derive_key};
            let p = pkcs12::pbe_params::Pkcs12PbeParams::from_der(&params)
                .map_err(der_err("PKCS #12 PBE parameters"))?;
            let iterations = u64::try_from(p.iterations)
                .ok()
                .filter(|i| *i >= 1)
                .ok_or_else(|| {
                    Error::pfx(format!(
                        "{what}: iteration count {} is not positive",
                        p.iterations
                    ))
                })?;
            // A key and an IV: two derivations' work.
            budget.charge(what, iterations.saturating_mul(2))?;
            let key_len = match oid {
                PBE_SHA_3DES => 24,
                PBE_SHA_2DES | PBE_SHA_RC2_128 => 16,
                _ => 5,
            };
            let derive = |kind, len| {
                Zeroizing::new(derive_key::<Sha1>(
                    &password.bmp,
                    p.salt.as_bytes(),
                    kind,
                    p.iterations,
                    len,
                ))
            };
            let key = derive(Pkcs12KeyType::EncryptionKey, key_len);
            let iv = derive(Pkcs12KeyType::Iv, 8);
            let bad_key = |_| Error::pfx(format!("{what}: a bad key length"));
            let plain = match oid {
                PBE_SHA_3DES => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                    .map_err(bad_key)?
                    .decrypt_padded_vec::<Pkcs7>(data),
                PBE_SHA_2DES => cbc::Decryptor::<des::TdesEde2>::new_from_slices(&key, &iv)
                    .map_err(bad_key)?
                    .decrypt_padded_vec::<Pkcs7>(data),
                _ => {
                    use cbc::cipher::InnerIvInit;
                    let rc2 = rc2::Rc2::new_with_eff_key_len(&key, key_len * 8);
                    cbc::Decryptor::<rc2::Rc2>::inner_iv_slice_init(rc2, &iv)
                        .map_err(bad_key)?
                        .decrypt_padded_vec::<Pkcs7>(data)
                }
            };
            plain.map(Zeroizing::new).map_err(|_| wrong())
        }
        other => Err(Error::pfx(format!(
            "{what}: encryption {other} is not read (PBES2, or the PKCS #12 3DES and RC2 PBEs)"
        ))),
    }
}

/// A bag read from a PFX.
enum Bag {
    Key {
        der: Zeroizing<Vec<u8>>,
        local_key_id: Option<Vec<u8>>,
        friendly_name: Option<String>,
    },
    Cert {
        info: Box<CertInfo>,
    },
}

const FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const X509_CERT: &str = "1.2.840.113549.1.9.22.1";
const DATA: &str = "1.2.840.113549.1.7.1";
const ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";

fn attribute<'a>(bag: &'a pkcs12::safe_bag::SafeBag, oid: &str) -> Option<&'a der::Any> {
    bag.bag_attributes
        .as_ref()?
        .iter()
        .find(|a| a.oid.to_string() == oid)
        .and_then(|a| a.values.iter().next())
}

/// The bags of one SafeContents, a shrouded key decrypted after its work is charged.
fn read_bags(
    contents: &[u8],
    password: &Pw,
    budget: &mut Budget,
    bags: &mut Vec<Bag>,
) -> Result<()> {
    use der::Decode;
    let safe =
        pkcs12::safe_bag::SafeContents::from_der(contents).map_err(der_err("a SafeContents"))?;
    for bag in &safe {
        if bags.len() >= MAX_PFX_BAGS {
            return Err(Error::pfx(format!(
                "it holds more than {MAX_PFX_BAGS} bags"
            )));
        }
        let value = explicit_value(&bag.bag_value)?;
        let local_key_id = attribute(bag, LOCAL_KEY_ID)
            .and_then(|v| v.decode_as::<der::asn1::OctetString>().ok())
            .map(|o| o.as_bytes().to_vec());
        let friendly_name = attribute(bag, FRIENDLY_NAME)
            .and_then(|v| v.decode_as::<der::asn1::BmpString>().ok())
            .map(|n| crate::text::escape_control(&n.to_string()));
        match bag.bag_id.to_string().as_str() {
            SHROUDED_KEY_BAG => {
                let info = pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(value)
                    .map_err(der_err("a shrouded key"))?;
                let der = decrypt(
                    &info.encryption_algorithm,
                    info.encrypted_data.as_bytes(),
                    password,
                    "a shrouded key",
                    budget,
                )?;
                bags.push(Bag::Key {
                    der,
                    local_key_id,
                    friendly_name,
                });
            }
            KEY_BAG => bags.push(Bag::Key {
                der: Zeroizing::new(value.to_vec()),
                local_key_id,
                friendly_name,
            }),
            CERT_BAG => {
                let cert =
                    pkcs12::CertBag::from_der(value).map_err(der_err("a certificate bag"))?;
                if cert.cert_id.to_string() != X509_CERT {
                    return Err(Error::pfx(format!(
                        "a certificate bag holds {} certificates, not X.509",
                        cert.cert_id
                    )));
                }
                bags.push(Bag::Cert {
                    info: Box::new(CertInfo::parse(cert.cert_value.as_bytes())?),
                });
            }
            // CRL, secret and nested bags are not what a certificate with its key needs.
            _ => {}
        }
    }
    Ok(())
}

/// Reads a PFX with `password`. Untrusted input, read in an order that decrypts nothing it
/// cannot vouch for: bounded in size; its MAC is required (a file without one, as
/// `openssl pkcs12 -nomac` writes, would open with any password, and its content could be
/// anyone's) and verified first; every key derivation (the MAC's, each encrypted safe's, each
/// shrouded key's) is charged to one budget before it runs, so the total work is bounded
/// ([`MAX_PFX_WORK`] PBKDF2 iterations or the like, [`MAX_PFX_DERIVATIONS`] derivations,
/// [`MAX_PFX_BAGS`] bags, [`MAX_PFX_SCRYPT_BYTES`] for scrypt). It must hold exactly one
/// private key and its certificate; a wrong password (or a changed byte) is
/// [`Error::WrongPassword`].
pub fn read_pfx(bytes: &[u8], password: &str) -> Result<Pfx> {
    use der::{Decode, Encode};
    if bytes.len() > MAX_PFX_BYTES {
        return Err(Error::pfx(format!(
            "a PFX of {} bytes is larger than {MAX_PFX_BYTES}",
            bytes.len()
        )));
    }
    let pfx = pkcs12::pfx::Pfx::from_der(bytes)
        .map_err(|e| Error::pfx_from("the file cannot be read as PKCS #12", e))?;
    if pfx.version != pkcs12::pfx::Version::V3 {
        return Err(Error::pfx("its version is not 3"));
    }
    let mac = pfx.mac_data.as_ref().ok_or_else(|| {
        Error::pfx(
            "it has no MAC (as openssl pkcs12 -nomac writes): without one nothing proves the file is the password holder's, so nothing in it is read; export it again with a MAC",
        )
    })?;
    if pfx.auth_safe.content_type.to_string() != DATA {
        return Err(Error::pfx(
            "its content is not password-protected data (public-key integrity mode is not read)",
        ));
    }
    let data = pfx
        .auth_safe
        .content
        .decode_as::<der::asn1::OctetString>()
        .map_err(der_err("its content"))?;
    let mut budget = Budget {
        work: 0,
        derivations: 0,
    };
    // An empty password is also tried as no password at all, as Windows writes a PFX exported
    // without one (and as OpenSSL reads it); each try is charged to the budget.
    let given = Pw::new(password);
    let password = match verify_mac(mac, data.as_bytes(), &given, &mut budget) {
        Err(Error::WrongPassword(_)) if password.is_empty() => {
            let absent = Pw::absent();
            verify_mac(mac, data.as_bytes(), &absent, &mut budget)?;
            absent
        }
        other => other.map(|()| given)?,
    };
    let password = &password;
    let safes =
        pkcs12::AuthenticatedSafe::from_der(data.as_bytes()).map_err(der_err("its safes"))?;
    let mut bags = Vec::new();
    for safe in &safes {
        match safe.content_type.to_string().as_str() {
            DATA => {
                let octets = safe
                    .content
                    .decode_as::<der::asn1::OctetString>()
                    .map_err(der_err("a safe"))?;
                read_bags(octets.as_bytes(), password, &mut budget, &mut bags)?;
            }
            ENCRYPTED_DATA => {
                let enc = cms::encrypted_data::EncryptedData::from_der(
                    &safe
                        .content
                        .to_der()
                        .map_err(der_err("an encrypted safe"))?,
                )
                .map_err(der_err("an encrypted safe"))?;
                let Some(content) = &enc.enc_content_info.encrypted_content else {
                    continue;
                };
                let plain = decrypt(
                    &enc.enc_content_info.content_enc_alg,
                    content.as_bytes(),
                    password,
                    "an encrypted safe",
                    &mut budget,
                )?;
                read_bags(&plain, password, &mut budget, &mut bags)?;
            }
            other => {
                return Err(Error::pfx(format!(
                    "a safe of content type {other} is not read (data or encryptedData)"
                )));
            }
        }
    }
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for bag in bags {
        match bag {
            Bag::Key {
                der,
                local_key_id,
                friendly_name,
            } => keys.push((der, local_key_id, friendly_name)),
            Bag::Cert { info } => certs.push(*info),
        }
    }
    let (key_der, _, friendly_name) = match keys.len() {
        1 => keys.remove(0),
        0 => {
            return Err(Error::pfx(
                "the file holds no private key with its certificate (export it with the private key: certutil -exportPFX, or openssl pkcs12 -export -inkey)",
            ));
        }
        n => {
            return Err(Error::pfx(format!(
                "the file holds {n} private keys; one is expected"
            )));
        }
    };
    let key = PrivateKey::from_pkcs8_der(&key_der)?;
    let public = key.public_key_der()?;
    let at = certs
        .iter()
        .position(|c| c.public_key == public)
        .ok_or_else(|| Error::pfx("the private key comes without its certificate"))?;
    let certificate = certs.remove(at);
    // The chain: issuer by issuer from the certificate, as far as the file goes.
    let mut chain = Vec::new();
    let mut child = certificate.clone();
    while child.subject != child.issuer {
        let Some(i) = certs.iter().position(|c| c.subject == child.issuer) else {
            break;
        };
        let parent = certs.remove(i);
        chain.push(parent.clone());
        child = parent;
    }
    Ok(Pfx {
        key,
        certificate,
        chain,
        friendly_name,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::request::KeyType;

    /// A certificate to fill a PFX's certificate bags (whose key it is does not matter to the
    /// reader's bounds).
    fn certificate() -> Vec<u8> {
        crate::authority::test_issuer(1).root().der.clone()
    }

    #[test]
    fn many_key_bags_are_refused_before_their_work_is_done() {
        // 300 keys, each in its own shrouded bag, and their certificates (p12-keystore writes
        // the certificates first, in one encrypted safe): refused at the 65th bag, after two
        // derivations (the MAC, that safe), never at the three hundred keys.
        let mut store = KeyStore::new();
        let cert = certificate();
        for i in 0..300u32 {
            let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
            let chain = PrivateKeyChain::new(
                LocalKeyId(i.to_be_bytes().to_vec()),
                P12PrivateKey::from_der(&key.to_pkcs8_der().unwrap()).unwrap(),
                vec![P12Certificate::from_der(&cert).unwrap()],
            );
            store.add_entry(&format!("k{i}"), KeyStoreEntry::PrivateKeyChain(chain));
        }
        let bytes = store
            .writer("pw")
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .encryption_iterations(2048)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .mac_iterations(2048)
            .write()
            .unwrap();
        let e = read_pfx(&bytes, "pw").unwrap_err().to_string();
        assert!(e.contains(&format!("more than {MAX_PFX_BAGS} bags")), "{e}");
    }

    #[test]
    fn a_mac_asking_too_much_work_is_refused_before_it_runs() {
        let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
        let mut store = KeyStore::new();
        let cert = certificate();
        store.add_entry(
            "k",
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                LocalKeyId(vec![1]),
                P12PrivateKey::from_der(&key.to_pkcs8_der().unwrap()).unwrap(),
                vec![P12Certificate::from_der(&cert).unwrap()],
            )),
        );
        // Written with a small count, then the MAC's count raised in place: the file is
        // refused on its count before a single iteration (the MAC no longer matches, which
        // the reader never gets to compute).
        let mut bytes = store
            .writer("pw")
            .mac_iterations(2048)
            .encryption_iterations(2048)
            .write()
            .unwrap()
            .to_vec();
        use der::{Decode, Encode};
        let mut pfx = pkcs12::pfx::Pfx::from_der(&bytes).unwrap();
        pfx.mac_data.as_mut().unwrap().iterations = 5_000_000;
        bytes = pfx.to_der().unwrap();
        let e = read_pfx(&bytes, "pw").unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "add up to more than {MAX_PFX_WORK} iterations (at the MAC)"
            )),
            "{e}"
        );
    }
}

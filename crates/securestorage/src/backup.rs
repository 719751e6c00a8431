//! The password-sealed backup of a key store (format described in FORMAT.md).

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};
use zeroize::Zeroizing;

use crate::aead::{NONCE_LEN, TAG_LEN, cipher};
use crate::custody::{CustodyOpener, ParsedCustody, parse_custody};
use crate::error::{Error, Result};
use crate::format::{
    BackupInfo, CURRENT_VERSION, CUSTODY_V2, CUSTODY_VERSION, FIXED_HEADER, KDF_ARGON2ID,
    KdfParams, MAGIC, NEWEST_VERSION, Opened, ReadPolicy, append_payload, check_password,
    check_payload_length, limits, push_header,
};
use crate::keystore::KeyStore;
use crate::random::RandomSource;

/// Seals `store` with `password` in the current format, with [`KdfParams::DEFAULT`].
pub fn seal_backup(
    store: &KeyStore,
    password: &str,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>> {
    seal_backup_with(store, password, KdfParams::DEFAULT, rng)
}

/// Seals `store` with explicit parameters (tests use cheap ones; operators get the default).
pub fn seal_backup_with(
    store: &KeyStore,
    password: &str,
    kdf: KdfParams,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>> {
    check_password(password)?;
    kdf.check()?;
    let mut salt = [0u8; 32];
    rng.fill(&mut salt)?;
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    let plaintext = store.to_bytes();
    let mut out =
        Vec::with_capacity(FIXED_HEADER + salt.len() + NONCE_LEN + 4 + plaintext.len() + TAG_LEN);
    push_header(&mut out, CURRENT_VERSION, &kdf, &salt);
    let key = kdf.derive(password, &salt)?;
    append_payload(&mut out, &key, nonce, &plaintext)?;
    Ok(out)
}

/// A parsed header, borrowing the file.
pub(crate) struct Parsed<'b> {
    pub(crate) info: BackupInfo,
    /// The file's salt (empty in version 3).
    pub(crate) salt: &'b [u8],
    pub(crate) body: Body<'b>,
}

pub(crate) enum Body<'b> {
    Single {
        nonce: [u8; NONCE_LEN],
        header: &'b [u8],
        ciphertext: &'b [u8],
    },
    Custody(ParsedCustody<'b>),
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed<'_>> {
    let corrupt = |reason: &str| Error::corrupt("backup", reason);
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(
            "it does not start with the backup magic 'OMKEYBAK'",
        ));
    }
    if bytes.len() < FIXED_HEADER {
        return Err(corrupt("truncated in the header"));
    }
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version == 0 {
        return Err(corrupt("format version 0 does not exist"));
    }
    if version > NEWEST_VERSION {
        return Err(Error::UnsupportedVersion(version));
    }
    // Versions 1 and 2 share the header up to the salt; they branch after it.
    if bytes[10] != KDF_ARGON2ID {
        return Err(Error::OutOfPolicy {
            parameter: "key-derivation function",
            value: u64::from(bytes[10]),
            range: "1 (Argon2id)",
        });
    }
    let kdf = KdfParams {
        memory_kib: be32(11),
        passes: be32(15),
        lanes: be32(19),
    };
    kdf.check()?;
    // Version 3 has no file salt: each custodian's stanza carries its own.
    if version == CUSTODY_VERSION {
        let custody = parse_custody(bytes, FIXED_HEADER - 1, version)?;
        return Ok(Parsed {
            info: BackupInfo {
                version,
                kdf,
                salt_len: 0,
                custody: Some(custody.custody.clone()),
            },
            salt: &[],
            body: Body::Custody(custody),
        });
    }
    let salt_len = usize::from(bytes[23]);
    if !(limits::MIN_SALT..=limits::MAX_SALT).contains(&salt_len) {
        return Err(Error::OutOfPolicy {
            parameter: "salt length",
            value: salt_len as u64,
            range: "16 to 64 bytes",
        });
    }
    let salt_end = FIXED_HEADER + salt_len;
    if version == CUSTODY_V2 {
        if bytes.len() < salt_end {
            return Err(corrupt("truncated in the header"));
        }
        let custody = parse_custody(bytes, salt_end, version)?;
        return Ok(Parsed {
            info: BackupInfo {
                version,
                kdf,
                salt_len,
                custody: Some(custody.custody.clone()),
            },
            salt: &bytes[FIXED_HEADER..salt_end],
            body: Body::Custody(custody),
        });
    }
    let header_len = FIXED_HEADER + salt_len + NONCE_LEN + 4;
    if bytes.len() < header_len {
        return Err(corrupt("truncated in the header"));
    }
    let length = be32(header_len - 4) as usize;
    check_payload_length(bytes.len() - header_len, length)?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[FIXED_HEADER + salt_len..FIXED_HEADER + salt_len + NONCE_LEN]);
    Ok(Parsed {
        info: BackupInfo {
            version,
            kdf,
            salt_len,
            custody: None,
        },
        salt: &bytes[FIXED_HEADER..salt_end],
        body: Body::Single {
            nonce,
            header: &bytes[..header_len],
            ciphertext: &bytes[header_len..],
        },
    })
}

/// Reads a backup's header without the password: version and parameters, checked against
/// the limits.
pub fn inspect_backup(bytes: &[u8]) -> Result<BackupInfo> {
    parse(bytes).map(|p| p.info)
}

/// Opens a backup of any version this release knows. Errors tell apart a file that is not a
/// backup or is damaged ([`Error::Corrupt`]), a wrong password or tampering
/// ([`Error::WrongPasswordOrTampered`]), and parameters out of policy ([`Error::OutOfPolicy`]),
/// all decided before anything is allocated for the key derivation but the last.
///
/// The work the header asks for must lie within [`ReadPolicy::DEFAULT`]; see
/// [`open_backup_with`] to accept more for a trusted file.
pub fn open_backup(bytes: &[u8], password: &str) -> Result<(KeyStore, BackupInfo)> {
    open_backup_with(bytes, password, &ReadPolicy::DEFAULT)
}

/// Opens a backup as [`open_backup`], accepting the key-derivation work `policy` allows
/// (refused with [`Error::WorkOutOfPolicy`] before anything is allocated). A custody backup
/// (version 2) opens with one password only if that password opens enough shares; see
/// [`open_backup_with_passwords`].
pub fn open_backup_with(
    bytes: &[u8],
    password: &str,
    policy: &ReadPolicy,
) -> Result<(KeyStore, BackupInfo)> {
    open_backup_with_passwords(bytes, &[password], policy).map(|o| (o.store, o.info))
}

impl<'b> CustodyOpener<'b> {
    /// Reads a custody backup's header, checked as every backup's is (magic, version,
    /// parameters within `policy`, shape, lengths) before any key is derived.
    pub fn new(bytes: &'b [u8], policy: &ReadPolicy) -> Result<Self> {
        let parsed = parse(bytes)?;
        policy.check(&parsed.info.kdf)?;
        let Body::Custody(custody) = parsed.body else {
            return Err(Error::NotCustody(parsed.info.version));
        };
        Ok(Self::from_parsed(parsed.info, parsed.salt, custody))
    }
}

/// Opens a backup of any version with the passwords given: a single-password backup with the
/// first; a custody backup with any `threshold` custodians' passwords, in any order, none
/// saying whose it is (see [`CustodyOpener`] to name them): a version 2 file costs a key
/// derivation per password, version 3 up to one per custodian for each. Refused with
/// [`Error::NotEnoughCustodians`] when fewer open, [`Error::HeaderChanged`] or
/// [`Error::BackupChanged`] when the file was changed.
pub fn open_backup_with_passwords(
    bytes: &[u8],
    passwords: &[&str],
    policy: &ReadPolicy,
) -> Result<Opened> {
    let parsed = parse(bytes)?;
    policy.check(&parsed.info.kdf)?;
    match &parsed.body {
        Body::Custody(_) => {
            let mut opener = CustodyOpener::new(bytes, policy)?;
            for password in passwords {
                if opener.is_enough() {
                    break;
                }
                opener.try_password(password)?;
            }
            opener.finish()
        }
        Body::Single {
            nonce,
            header,
            ciphertext,
        } => {
            let password = passwords.first().copied().unwrap_or_default();
            let key = parsed.info.kdf.derive(password, parsed.salt)?;
            let plaintext = Zeroizing::new(
                cipher(&key)
                    .decrypt(
                        &Nonce::from(*nonce),
                        Payload {
                            msg: ciphertext,
                            aad: header,
                        },
                    )
                    .map_err(|_| Error::WrongPasswordOrTampered)?,
            );
            Ok(Opened {
                store: KeyStore::from_bytes(&plaintext)?,
                info: parsed.info,
                custodians: Vec::new(),
                derivations: 1,
            })
        }
    }
}

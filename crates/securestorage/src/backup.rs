//! The password-sealed backup of a key store (format described in FORMAT.md).

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::custody::{
    CUSTODY_V2, CUSTODY_VERSION, Custody, CustodyOpener, ParsedCustody, parse_custody,
};
use crate::error::{Error, Result};
use crate::keystore::KeyStore;
use crate::random::RandomSource;

/// The first eight bytes of every backup.
pub const MAGIC: &[u8; 8] = b"OMKEYBAK";
/// The format version this release writes. Every earlier version stays readable.
pub const CURRENT_VERSION: u16 = 1;
/// The shortest password accepted for a new backup (the seed's rule).
pub const MIN_PASSWORD_CHARS: usize = 8;

pub(crate) const KDF_ARGON2ID: u8 = 1;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;
const FIXED_HEADER: usize = 8 + 2 + 1 + 4 + 4 + 4 + 1;
/// The newest format version this release reads: 1 (one password), 2 and 3 (k-of-n custody;
/// 3 gives every custodian their own salt).
pub const NEWEST_VERSION: u16 = CUSTODY_VERSION;

/// The bounds a backup's parameters must lie in before any key is derived: a crafted file
/// cannot make a restore allocate more than 4 GiB or run for hours.
pub mod limits {
    /// Most memory, in KiB (4 GiB).
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    /// Most passes.
    pub const MAX_PASSES: u32 = 16;
    /// Most lanes.
    pub const MAX_LANES: u32 = 16;
    /// Shortest salt, in bytes.
    pub const MIN_SALT: usize = 16;
    /// Longest salt, in bytes.
    pub const MAX_SALT: usize = 64;
    /// Largest sealed key store, in bytes (16 MiB; a store of 65,535 keys is 3.8 MiB).
    pub const MAX_CIPHERTEXT: usize = 16 * 1024 * 1024;
}

/// How much key-derivation work a reader accepts before deriving anything, like age's maximum
/// work factor: a crafted header within the hard [`limits`] (4 GiB × 16 passes) would still
/// cost minutes of CPU and an allocation that can exhaust the server. The default accepts at
/// most 1 GiB of memory and 4 GiB·passes of work (memory × passes); an operator who trusts a
/// file raises it with [`ReadPolicy::max_memory_mib`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPolicy {
    /// Most memory, in KiB.
    pub max_memory_kib: u32,
    /// Most memory × passes, in KiB·passes.
    pub max_work: u64,
}

impl ReadPolicy {
    /// 1 GiB of memory, 4 GiB·passes of work: sixteen times what every writer has written.
    pub const DEFAULT: ReadPolicy = ReadPolicy {
        max_memory_kib: 1024 * 1024,
        max_work: 4 * 1024 * 1024,
    };

    /// At most `mib` MiB of memory and four times that in MiB·passes (the default's ratio).
    /// The hard [`limits`] still apply above it.
    pub fn max_memory_mib(mib: u32) -> ReadPolicy {
        let max_memory_kib = mib.saturating_mul(1024);
        ReadPolicy {
            max_memory_kib,
            max_work: 4 * u64::from(max_memory_kib),
        }
    }

    /// Refuses parameters above this policy.
    pub fn check(&self, kdf: &KdfParams) -> Result<()> {
        let work = u64::from(kdf.memory_kib) * u64::from(kdf.passes);
        if kdf.memory_kib > self.max_memory_kib || work > self.max_work {
            return Err(Error::WorkOutOfPolicy {
                memory_kib: kdf.memory_kib,
                passes: kdf.passes,
                max_memory_kib: self.max_memory_kib,
                max_work: self.max_work,
            });
        }
        Ok(())
    }
}

impl Default for ReadPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

impl KdfParams {
    /// What every new backup uses, on every machine, never calibrated: RFC 9106's second
    /// recommended option, 64 MiB, 3 passes, 4 lanes.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        passes: 3,
        lanes: 4,
    };

    /// The cost parameters (memory, passes) in which `self` is below `other`, by name: a file
    /// with parameters `self` is weaker than one `other` writes. Lanes are not a cost (they
    /// split the same memory and passes).
    pub fn below(&self, other: &KdfParams) -> Vec<&'static str> {
        let mut below = Vec::new();
        if self.memory_kib < other.memory_kib {
            below.push("memory");
        }
        if self.passes < other.passes {
            below.push("passes");
        }
        below
    }

    pub(crate) fn check(&self) -> Result<()> {
        let out = |parameter, value: u32, range| Error::OutOfPolicy {
            parameter,
            value: u64::from(value),
            range,
        };
        if self.lanes == 0 || self.lanes > limits::MAX_LANES {
            return Err(out("lane count", self.lanes, "1 to 16"));
        }
        if self.passes == 0 || self.passes > limits::MAX_PASSES {
            return Err(out("pass count", self.passes, "1 to 16"));
        }
        if self.memory_kib < 8 * self.lanes || self.memory_kib > limits::MAX_MEMORY_KIB {
            return Err(out(
                "memory (KiB)",
                self.memory_kib,
                "8 KiB per lane to 4 GiB",
            ));
        }
        Ok(())
    }

    pub(crate) fn derive(&self, password: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        // `check` ran first, so Argon2 refusing these is a combination it does not cover.
        let refused = |_| Error::OutOfPolicy {
            parameter: "Argon2 parameters",
            value: u64::from(self.memory_kib),
            range: "what Argon2 accepts",
        };
        let params =
            Params::new(self.memory_kib, self.passes, self.lanes, Some(32)).map_err(refused)?;
        // The working memory is ours: allocated fallibly (a refusal, not an abort) and zeroized
        // when dropped, whatever Argon2 left in it.
        let blocks = params.block_count();
        let mut memory: Zeroizing<Vec<Block>> = Zeroizing::new(Vec::new());
        memory
            .try_reserve_exact(blocks)
            .map_err(|_| Error::KdfMemory(u64::from(self.memory_kib)))?;
        memory.resize(blocks, Block::new());
        let mut key = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                key.as_mut_slice(),
                memory.as_mut_slice(),
            )
            .map_err(refused)?;
        Ok(key)
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "argon2id, {} MiB, {} passes, {} lanes",
            self.memory_kib / 1024,
            self.passes,
            self.lanes
        )
    }
}

/// What a backup's header says, readable without the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its format version.
    pub version: u16,
    /// Its key-derivation parameters.
    pub kdf: KdfParams,
    /// Its salt length (version 3: 0, each custodian's stanza having its own salt).
    pub salt_len: usize,
    /// For a custody backup (versions 2 and 3): its threshold and custodians; `None` for a
    /// single-password backup.
    pub custody: Option<Custody>,
}

/// Refuses a password shorter than [`MIN_PASSWORD_CHARS`].
pub fn check_password(password: &str) -> Result<()> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(Error::PasswordTooShort {
            length,
            minimum: MIN_PASSWORD_CHARS,
        });
    }
    Ok(())
}

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

/// Checks the sealed payload's declared `length` against the `available` bytes after the
/// header: a possible length, and exactly the bytes that remain.
/// The header every format version begins with (FORMAT.md): magic, version, the key
/// derivation's id and parameters, and the salt with its length (at most 255 bytes; ours are
/// 32).
pub(crate) fn push_header(out: &mut Vec<u8>, version: u16, kdf: &KdfParams, salt: &[u8]) {
    push_params(out, version, kdf);
    out.push(salt.len() as u8);
    out.extend_from_slice(salt);
}

/// The part of the header every version shares: magic, version, the key derivation's id and
/// parameters (bytes 0 to 22).
pub(crate) fn push_params(out: &mut Vec<u8>, version: u16, kdf: &KdfParams) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.push(KDF_ARGON2ID);
    out.extend_from_slice(&kdf.memory_kib.to_be_bytes());
    out.extend_from_slice(&kdf.passes.to_be_bytes());
    out.extend_from_slice(&kdf.lanes.to_be_bytes());
}

pub(crate) fn check_payload_length(available: usize, length: usize) -> Result<()> {
    let corrupt = |reason: &str| Error::corrupt("backup", reason);
    if !(TAG_LEN..=limits::MAX_CIPHERTEXT).contains(&length) {
        return Err(corrupt("the sealed length is impossible"));
    }
    match available.cmp(&length) {
        std::cmp::Ordering::Less => Err(corrupt("truncated: the sealed key store is cut short")),
        std::cmp::Ordering::Greater => Err(corrupt("bytes follow the end of the backup")),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// AES-256-GCM of `msg` under `key`, with `nonce` and `aad`.
pub(crate) fn encrypt(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    msg: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    cipher(key)
        .encrypt(&Nonce::from(nonce), Payload { msg, aad })
        .map_err(|_| Error::corrupt("backup", "encryption failed"))
}

/// Ends a backup with its payload: the nonce, the ciphertext's length, and `plaintext` sealed
/// under `key` with every byte before it (the whole header) as associated data.
pub(crate) fn append_payload(
    out: &mut Vec<u8>,
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<()> {
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&((plaintext.len() + TAG_LEN) as u32).to_be_bytes());
    let ciphertext = encrypt(key, nonce, plaintext, out)?;
    out.extend_from_slice(&ciphertext);
    Ok(())
}

/// AES-256-GCM under a 32-byte key: the key's type makes a wrong length impossible.
pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from(*key))
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

/// A backup opened.
#[derive(Debug)]
pub struct Opened {
    /// The key store it holds.
    pub store: KeyStore,
    /// Its header.
    pub info: BackupInfo,
    /// For a custody backup, the labels of the custodians whose shares opened, in the file's
    /// order; empty for a single-password backup.
    pub custodians: Vec<String>,
    /// How many key derivations opening it cost.
    pub derivations: usize,
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

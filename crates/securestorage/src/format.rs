//! What every backup version shares (FORMAT.md): the header's constants and fields, the
//! key derivation and its bounds, the payload's framing, and what a reader reports. Single-
//! password backups ([`crate::backup`]) and custody ones ([`crate::custody`]) are built on it.

use std::fmt;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroizing;

use crate::aead::{NONCE_LEN, TAG_LEN, encrypt};
use crate::error::{Error, Result};
use crate::keystore::KeyStore;

/// The first eight bytes of every backup.
pub const MAGIC: &[u8; 8] = b"OMKEYBAK";
/// The format version this release writes. Every earlier version stays readable.
pub const CURRENT_VERSION: u16 = 1;
/// The shortest password accepted for a new backup (the seed's rule).
pub const MIN_PASSWORD_CHARS: usize = 8;

pub(crate) const KDF_ARGON2ID: u8 = 1;
pub(crate) const FIXED_HEADER: usize = 8 + 2 + 1 + 4 + 4 + 4 + 1;
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

/// The format version of a custody backup as written: version 3, a salt per custodian.
pub const CUSTODY_VERSION: u16 = 3;
/// The first custody version: one salt for the file (read, no longer written).
pub(crate) const CUSTODY_V2: u16 = 2;
/// What a custody backup's header says: how many custodians must come, and who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custody {
    /// How many custodians' passwords open it.
    pub threshold: usize,
    /// Every custodian's label, in the file's order.
    pub labels: Vec<String>,
}

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

/// Checks the sealed payload's declared `length` against the `available` bytes after the
/// header: a possible length, and exactly the bytes that remain.
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

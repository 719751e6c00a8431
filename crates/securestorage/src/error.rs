//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with key stores, sealed secrets and backups. The three
/// backup failures an operator must tell apart are distinct variants: [`Error::Corrupt`],
/// [`Error::WrongPasswordOrTampered`] and [`Error::OutOfPolicy`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Any other error, about a particular file.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<Error>,
    },
    /// The data is not a backup (or key store, or sealed secret), or it is corrupt or
    /// truncated.
    #[error("not a valid {what}, or corrupt or truncated: {reason}")]
    Corrupt {
        /// What it should have been.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The password is wrong, or the file was changed: authenticated encryption cannot tell
    /// the two apart.
    #[error("wrong password, or the backup was tampered with (the two cannot be told apart)")]
    WrongPasswordOrTampered,
    /// A sealed secret does not open with its key: it was changed, or the key store holds a
    /// different key under its id.
    #[error(
        "the sealed secret does not open with key {key_id}: it was changed, the key is not the one it was sealed with, or it was sealed for another account or management group"
    )]
    SecretTampered {
        /// The key id the secret names.
        key_id: String,
    },
    /// The backup's key-derivation parameters are outside what this release accepts.
    #[error(
        "the backup's {parameter} is {value}, outside the accepted range {range}; refusing before deriving a key"
    )]
    OutOfPolicy {
        /// Which parameter.
        parameter: &'static str,
        /// Its value in the file.
        value: u64,
        /// What is accepted.
        range: &'static str,
    },
    /// The backup asks for more key-derivation work than the reader's policy accepts.
    #[error(
        "the backup asks for {} MiB × {passes} passes of key derivation, out of policy (at most {} MiB and {} MiB·passes); refusing before deriving a key",
        f64::from(*.memory_kib) / 1024.0, .max_memory_kib / 1024, .max_work / 1024
    )]
    WorkOutOfPolicy {
        /// The memory the file asks for, in KiB.
        memory_kib: u32,
        /// The passes it asks for.
        passes: u32,
        /// The most memory accepted, in KiB.
        max_memory_kib: u32,
        /// The most memory × passes accepted, in KiB·passes.
        max_work: u64,
    },
    /// The memory for the key derivation could not be allocated.
    #[error("could not allocate {0} KiB for the key derivation")]
    KdfMemory(u64),
    /// The backup was written by a newer release, in a format version this one does not know.
    #[error("backup format version {0} is newer than this release reads (3); use a newer release")]
    UnsupportedVersion(u16),
    /// A password is shorter than the minimum.
    #[error("the password has {length} characters; at least {minimum} are required")]
    PasswordTooShort {
        /// Its length in characters.
        length: usize,
        /// The minimum.
        minimum: usize,
    },
    /// A sealed secret names a key the store does not hold.
    #[error(
        "the key store has no key {0}; the secret was sealed with a key this machine never had (or lost)"
    )]
    UnknownKey(String),
    /// The machine has no key store.
    #[error("no key store at {}", .0.display())]
    NoKeyStore(PathBuf),
    /// The machine already has a key store.
    #[error("a key store already exists at {}", .0.display())]
    KeyStoreExists(PathBuf),
    /// A restore found a different key store and was not told to replace it.
    #[error(
        "{} holds a different key store (current key {existing}; the backup's is {incoming}); nothing was replaced", path.display()
    )]
    KeyStoreDiffers {
        /// The store.
        path: PathBuf,
        /// Its current key id.
        existing: String,
        /// The current key id of the store that would replace it.
        incoming: String,
    },
    /// A restore found a key store it cannot read and was not told to replace it.
    #[error(
        "{} cannot be read ({reason}); nothing was replaced", path.display()
    )]
    KeyStoreUnreadable {
        /// The store.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },
    /// A custody backup's shape is impossible: 2 to 16 custodians, a threshold from 2 to
    /// their number.
    #[error(
        "{threshold} of {custodians} custodians is not a custody backup's shape: 2 to 16 custodians, a threshold from 2 to their number"
    )]
    CustodyShape {
        /// The number of custodians.
        custodians: usize,
        /// The threshold.
        threshold: usize,
    },
    /// Two custodians of a new custody backup have the same password.
    #[error("custodian '{0}' has the same password as an earlier custodian; each needs their own")]
    SamePassword(String),
    /// Fewer custodians' passwords opened their shares than the backup needs.
    #[error(
        "the backup needs {threshold} custodians' passwords; {} opened{}",
        .opened.len(),
        if .opened.is_empty() { String::new() } else { format!(" ({})", .opened.join(", ")) }
    )]
    NotEnoughCustodians {
        /// How many it needs.
        threshold: usize,
        /// The labels of those whose shares opened.
        opened: Vec<String>,
    },
    /// Enough custodians' shares opened, but the key store they unlock does not: the file was
    /// changed after it was written (no password can cause this).
    #[error(
        "{threshold} custodians' shares opened, but they do not open the key store: the backup was changed after it was written (not a wrong password)"
    )]
    BackupChanged {
        /// How many shares opened (the threshold).
        threshold: usize,
    },
    /// A custody backup's header says one thing and its custodians' stanzas, which
    /// authenticate the header, another: the header was edited.
    #[error(
        "the backup's header was changed: it says the {field} is {header}, but the custodians' shares were sealed with {sealed}"
    )]
    HeaderChanged {
        /// Which field.
        field: &'static str,
        /// What the header says.
        header: usize,
        /// What the stanzas were sealed with.
        sealed: usize,
    },
    /// A restore named a custodian the backup does not have.
    #[error("no custodian is labelled '{label}' in this backup (its custodians: {})", .labels.join(", "))]
    UnknownCustodian {
        /// The label given.
        label: String,
        /// The backup's custodians.
        labels: Vec<String>,
    },
    /// A key check record names a key the store holds, but does not open with it.
    #[error(
        "the key check record names key {key_id}, which this store holds, but does not open with it: the record was changed or made for another management group, or the key under that id is not the group's"
    )]
    KeyCheckFailed {
        /// The key id the record names.
        key_id: String,
    },
    /// A custody operation on a single-password backup.
    #[error("the backup (format version {0}) is not a custody backup: it opens with one password")]
    NotCustody(u16),
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}

impl Error {
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        Error::InFile {
            path: path.into(),
            error: Box::new(self),
        }
    }

    /// The error without the file it is about.
    pub fn inner(&self) -> &Error {
        match self {
            Error::InFile { error, .. } => error.inner(),
            other => other,
        }
    }

    pub(crate) fn corrupt(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            reason: reason.into(),
        }
    }
}

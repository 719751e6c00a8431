//! The root management server's key store and a password-sealed, versioned backup format.
//!
//! - [`keystore`]: [`KeyStore`](keystore::KeyStore) holds a management group's encryption keys: the current one seals new
//!   secrets (the Run As account credentials) with AES-256-GCM, the key id bound into every
//!   sealed blob; older keys stay to open what they sealed. Keys are zeroized when dropped and
//!   never printed. [`load`](keystore::KeyStore::load) and [`save`](keystore::KeyStore::save) keep it in a machine folder,
//!   written atomically and owner-only.
//! - [`backup`]: [`seal_backup`](backup::seal_backup) and [`open_backup`](backup::open_backup) write
//!   and read the backup file, whose [`format`](mod@format) is versioned: Argon2id with fixed
//!   parameters (64 MiB, 3 passes, 4 lanes) derives the key from the password, AES-256-GCM
//!   seals the key store, and the whole header is authenticated. The format is specified in
//!   `FORMAT.md`; every version ever written stays readable. A reader refuses a header asking
//!   for more work than its [`ReadPolicy`](format::ReadPolicy) (default 1 GiB, 4 GiB·passes) before allocating.
//! - [`custody`]: [`seal_custody`](custody::seal_custody) writes a backup no single person holds (format version 3): the file key
//!   is split among custodians with Shamir's scheme over GF(256), each custodian's share sealed
//!   under their own password and salt; any `threshold` of them open it, one at a time with
//!   [`CustodyOpener`](custody::CustodyOpener) or all at once with
//!   [`open_backup_with_passwords`](backup::open_backup_with_passwords). Version 2 files (one
//!   salt for all custodians) still open. [`recovery_fingerprint`](custody::recovery_fingerprint) is the check value
//!   custodians write down and compare on restore.
//! - [`KeyStore::key_check`](keystore::KeyStore::key_check) seals a fixed value under the current key, bound to the
//!   management group: a record that proves which key is the group's without any secret
//!   sealed with it ([`KeyStore::check_key`](keystore::KeyStore::check_key)).
//!
//! ```
//! use std::time::SystemTime;
//! use opsmgr_securestorage::backup::{open_backup, seal_backup_with};
//! use opsmgr_securestorage::format::KdfParams;
//! use opsmgr_securestorage::keystore::KeyStore;
//! use opsmgr_securestorage::random::OsRandom;
//!
//! let store = KeyStore::generate(SystemTime::now(), &mut OsRandom)?;
//! // (Cheap parameters for the example; operators get KdfParams::DEFAULT.)
//! let cheap = KdfParams { memory_kib: 1024, passes: 1, lanes: 1 };
//! let backup = seal_backup_with(&store, "correct horse battery", cheap, &mut OsRandom)?;
//! let (restored, info) = open_backup(&backup, "correct horse battery")?;
//! assert!(restored.same_as(&store));
//! assert_eq!(info.version, 1);
//! assert!(matches!(
//!     open_backup(&backup, "wrong horse battery"),
//!     Err(opsmgr_securestorage::Error::WrongPasswordOrTampered)
//! ));
//! # Ok::<(), opsmgr_securestorage::Error>(())
//! ```

mod aead;
pub mod backup;
pub mod custody;
mod error;
pub mod format;
pub mod keystore;
pub mod random;
mod shamir;

pub use error::{Error, Result};

//! AES-256-GCM as every sealed thing here uses it: the key store's secrets, the key check
//! record, backups and custody stanzas.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::error::{Error, Result};

/// The nonce's length.
pub(crate) const NONCE_LEN: usize = 12;
/// The tag's length.
pub(crate) const TAG_LEN: usize = 16;

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

/// AES-256-GCM under a 32-byte key: the key's type makes a wrong length impossible.
pub(crate) fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from(*key))
}

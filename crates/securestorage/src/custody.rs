//! k-of-n custody: a backup no single person holds (backup format version 2, FORMAT.md).
//!
//! The key store is sealed once under a random file key; the file key is split with Shamir's
//! scheme over GF(256) (`vsss-rs`), and each custodian's share is sealed under a key derived
//! from that custodian's password. Any `threshold` custodians restore; fewer learn nothing.

use std::convert::Infallible;

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};
use sha2::{Digest, Sha256};
use vsss_rs::Gf256;
use zeroize::Zeroizing;

use crate::backup::{
    KdfParams, NONCE_LEN, ReadPolicy, TAG_LEN, append_payload, check_password,
    check_payload_length, cipher, encrypt, push_header,
};
use crate::error::{Error, Result};
use crate::keystore::KeyStore;
use crate::random::RandomSource;

/// The format version of a custody backup.
pub const CUSTODY_VERSION: u16 = 2;
/// The most custodians a backup has.
pub const MAX_CUSTODIANS: usize = 16;
/// The fewest custodians a restore needs (one would be a single password).
pub const MIN_THRESHOLD: usize = 2;
/// The longest custodian label, in bytes.
pub const MAX_LABEL: usize = 64;

const FILE_KEY: usize = 32;
/// A share as `vsss-rs` writes it: the x coordinate, then one y byte per secret byte.
const SHARE: usize = 1 + FILE_KEY;
const WRAPPED: usize = SHARE + TAG_LEN;

/// One custodian of a new backup: a label (a name or role, written in the file in clear) and
/// the password only they know.
#[derive(Clone, Copy)]
pub struct Custodian<'a> {
    /// Who it is, as the restore will name them (1 to 64 bytes of UTF-8).
    pub label: &'a str,
    /// Their password (at least 8 characters).
    pub password: &'a str,
}

impl std::fmt::Debug for Custodian<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custodian")
            .field("label", &self.label)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a custody backup's header says: how many custodians must come, and who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custody {
    /// How many custodians' passwords open it.
    pub threshold: usize,
    /// Every custodian's label, in the file's order.
    pub labels: Vec<String>,
}

/// Our random source as the `rand_core` generator `vsss-rs` takes. It cannot fail midway:
/// a failure is recorded, zeros are handed out, and the caller discards the result.
struct Adapter<'r> {
    rng: &'r mut dyn RandomSource,
    failed: Option<Error>,
}

impl rand_core::TryRng for Adapter<'_> {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> std::result::Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> std::result::Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> std::result::Result<(), Infallible> {
        if self.failed.is_none()
            && let Err(e) = self.rng.fill(dst)
        {
            self.failed = Some(e);
        }
        if self.failed.is_some() {
            dst.fill(0);
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Adapter<'_> {}

/// Seals `store` for `custodians`, any `threshold` of whom restore it (backup format version
/// 2), with the key-derivation parameters `kdf` for every custodian's password.
pub fn seal_custody(
    store: &KeyStore,
    custodians: &[Custodian<'_>],
    threshold: usize,
    kdf: KdfParams,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>> {
    let n = custodians.len();
    if !(MIN_THRESHOLD..=MAX_CUSTODIANS).contains(&n) || !(MIN_THRESHOLD..=n).contains(&threshold) {
        return Err(Error::CustodyShape {
            custodians: n,
            threshold,
        });
    }
    for (i, c) in custodians.iter().enumerate() {
        check_password(c.password)?;
        if c.label.is_empty() || c.label.len() > MAX_LABEL {
            return Err(Error::corrupt(
                "custodian label",
                format!("'{}' is not 1 to {MAX_LABEL} bytes", c.label),
            ));
        }
        if custodians[..i].iter().any(|o| o.label == c.label) {
            return Err(Error::corrupt(
                "custodian label",
                format!("'{}' names two custodians", c.label),
            ));
        }
        if custodians[..i].iter().any(|o| o.password == c.password) {
            return Err(Error::SamePassword(c.label.to_owned()));
        }
    }
    kdf.check()?;
    let mut salt = [0u8; 32];
    rng.fill(&mut salt)?;
    let mut file_key = Zeroizing::new([0u8; FILE_KEY]);
    rng.fill(file_key.as_mut_slice())?;
    let mut adapter = Adapter { rng, failed: None };
    let shares = Gf256::split_bytes(threshold, n, file_key.as_slice(), &mut adapter)
        .map_err(|e| Error::corrupt("custody split", e.to_string()))?;
    let shares: Vec<Zeroizing<Vec<u8>>> = shares.into_iter().map(Zeroizing::new).collect();
    if let Some(e) = adapter.failed.take() {
        return Err(e);
    }
    let rng = adapter.rng;

    let mut out = Vec::new();
    push_header(&mut out, CUSTODY_VERSION, &kdf, &salt);
    // Bounded above: at most 16.
    out.push(threshold as u8);
    out.push(n as u8);
    let fixed = out.len();
    for (i, (c, share)) in custodians.iter().zip(&shares).enumerate() {
        // FORMAT.md promises shares at x = 1..=N: a change in the crate is caught here.
        if share.len() != SHARE || usize::from(share[0]) != i + 1 {
            return Err(Error::corrupt(
                "custody split",
                "a share of an unexpected length or x coordinate",
            ));
        }
        let key = kdf.derive(c.password, &salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let aad = stanza_aad(&out[..fixed], i, c.label);
        let wrapped = encrypt(&key, nonce, share.as_slice(), &aad)?;
        out.push(c.label.len() as u8);
        out.extend_from_slice(c.label.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
    }
    let plaintext = store.to_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    append_payload(&mut out, &file_key, nonce, &plaintext)?;
    Ok(out)
}

/// A share stanza's associated data: the fixed header (through N), the stanza's index and its
/// label, so that a stanza cannot move to another place, label or file.
fn stanza_aad(fixed: &[u8], index: usize, label: &str) -> Vec<u8> {
    let mut aad = fixed.to_vec();
    aad.push(index as u8);
    aad.push(label.len() as u8);
    aad.extend_from_slice(label.as_bytes());
    aad
}

pub(crate) struct Stanza<'b> {
    label: &'b str,
    nonce: [u8; NONCE_LEN],
    wrapped: &'b [u8],
}

/// A custody backup's parsed header (after the common fixed part, which `backup::parse`
/// checked).
pub(crate) struct ParsedCustody<'b> {
    pub(crate) custody: Custody,
    pub(crate) fixed: &'b [u8],
    stanzas: Vec<Stanza<'b>>,
    nonce: [u8; NONCE_LEN],
    header: &'b [u8],
    ciphertext: &'b [u8],
}

/// Parses the part of a version-2 file after the salt: `at` is the offset of K.
pub(crate) fn parse_custody(bytes: &[u8], at: usize) -> Result<ParsedCustody<'_>> {
    let corrupt = |reason: &str| Error::corrupt("backup", reason);
    let truncated = || corrupt("truncated in the header");
    let (k, n) = match bytes.get(at..at + 2) {
        Some(&[k, n]) => (usize::from(k), usize::from(n)),
        _ => return Err(truncated()),
    };
    if !(MIN_THRESHOLD..=MAX_CUSTODIANS).contains(&n) || !(MIN_THRESHOLD..=n).contains(&k) {
        return Err(Error::CustodyShape {
            custodians: n,
            threshold: k,
        });
    }
    let fixed = &bytes[..at + 2];
    let mut pos = at + 2;
    let mut stanzas = Vec::with_capacity(n);
    for _ in 0..n {
        let len = usize::from(*bytes.get(pos).ok_or_else(truncated)?);
        if len == 0 || len > MAX_LABEL {
            return Err(corrupt("a custodian label of an impossible length"));
        }
        let label = bytes.get(pos + 1..pos + 1 + len).ok_or_else(truncated)?;
        let label =
            std::str::from_utf8(label).map_err(|_| corrupt("a custodian label is not UTF-8"))?;
        if stanzas.iter().any(|s: &Stanza<'_>| s.label == label) {
            return Err(corrupt("a custodian label appears twice"));
        }
        pos += 1 + len;
        let nonce: [u8; NONCE_LEN] = bytes
            .get(pos..pos + NONCE_LEN)
            .ok_or_else(truncated)?
            .try_into()
            .map_err(|_| truncated())?;
        let wrapped = bytes
            .get(pos + NONCE_LEN..pos + NONCE_LEN + WRAPPED)
            .ok_or_else(truncated)?;
        pos += NONCE_LEN + WRAPPED;
        stanzas.push(Stanza {
            label,
            nonce,
            wrapped,
        });
    }
    let nonce: [u8; NONCE_LEN] = bytes
        .get(pos..pos + NONCE_LEN)
        .ok_or_else(truncated)?
        .try_into()
        .map_err(|_| truncated())?;
    let len = bytes
        .get(pos + NONCE_LEN..pos + NONCE_LEN + 4)
        .ok_or_else(truncated)?;
    let length = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let header_len = pos + NONCE_LEN + 4;
    check_payload_length(bytes.len() - header_len, length)?;
    Ok(ParsedCustody {
        custody: Custody {
            threshold: k,
            labels: stanzas.iter().map(|s| s.label.to_owned()).collect(),
        },
        fixed,
        stanzas,
        nonce,
        header: &bytes[..header_len],
        ciphertext: &bytes[header_len..],
    })
}

/// Opens a parsed custody backup with the passwords given (any order, any custodians): each
/// password costs one key derivation and is tried against every stanza. Returns the store and
/// the labels of the custodians whose shares opened, in the file's order.
pub(crate) fn open_custody(
    parsed: &ParsedCustody<'_>,
    kdf: &KdfParams,
    salt: &[u8],
    passwords: &[&str],
    policy: &ReadPolicy,
) -> Result<(KeyStore, Vec<String>)> {
    policy.check(kdf)?;
    let threshold = parsed.custody.threshold;
    let mut opened: Vec<Option<Zeroizing<Vec<u8>>>> = vec![None; parsed.stanzas.len()];
    for password in passwords {
        if opened.iter().flatten().count() >= threshold {
            break;
        }
        let key = kdf.derive(password, salt)?;
        let cipher = cipher(&key);
        for (i, stanza) in parsed.stanzas.iter().enumerate() {
            if opened[i].is_some() {
                continue;
            }
            let aad = stanza_aad(parsed.fixed, i, stanza.label);
            if let Ok(share) = cipher.decrypt(
                &Nonce::from(stanza.nonce),
                Payload {
                    msg: stanza.wrapped,
                    aad: &aad,
                },
            ) {
                opened[i] = Some(Zeroizing::new(share));
            }
        }
    }
    let labels: Vec<String> = parsed
        .stanzas
        .iter()
        .zip(&opened)
        .filter(|(_, o)| o.is_some())
        .map(|(s, _)| s.label.to_owned())
        .collect();
    if labels.len() < threshold {
        return Err(Error::NotEnoughCustodians {
            threshold,
            opened: labels,
        });
    }
    let shares: Vec<Vec<u8>> = opened
        .iter()
        .flatten()
        .take(threshold)
        .map(|s| s.to_vec())
        .collect();
    let shares = Zeroizing::new(shares);
    let file_key = Zeroizing::new(
        Gf256::combine_bytes(shares.as_slice()).map_err(|_| Error::WrongPasswordOrTampered)?,
    );
    let file_key: &[u8; FILE_KEY] = file_key
        .as_slice()
        .try_into()
        .map_err(|_| Error::WrongPasswordOrTampered)?;
    let plaintext = Zeroizing::new(
        cipher(file_key)
            .decrypt(
                &Nonce::from(parsed.nonce),
                Payload {
                    msg: parsed.ciphertext,
                    aad: parsed.header,
                },
            )
            .map_err(|_| Error::WrongPasswordOrTampered)?,
    );
    Ok((KeyStore::from_bytes(&plaintext)?, labels))
}

/// A short check value of a key store, derived from its key ids and which is current (never
/// from the secrets): custodians write it on paper at backup time and compare it on restore.
/// Sixteen hex digits in four groups: `SHA-256("OMKS recovery fingerprint v1" ‖ every key id
/// in the store's order ‖ the current key id)`, its first 8 bytes.
pub fn recovery_fingerprint(store: &KeyStore) -> String {
    let mut hash = Sha256::new();
    hash.update(b"OMKS recovery fingerprint v1");
    for key in store.keys() {
        hash.update(key.id().as_bytes());
    }
    hash.update(store.current().id().as_bytes());
    let digest = hash.finalize();
    digest[..8]
        .chunks(2)
        .map(|p| format!("{:02X}{:02X}", p[0], p[1]))
        .collect::<Vec<_>>()
        .join("-")
}

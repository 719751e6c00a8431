//! k-of-n custody: a backup no single person holds (backup format versions 2 and 3,
//! FORMAT.md).
//!
//! The key store is sealed once under a random file key; the file key is split with Shamir's
//! scheme over GF(256) (the private `shamir` module), and each custodian's share is sealed
//! under a key derived from that custodian's password. Any `threshold` custodians restore; fewer learn
//! nothing. Version 3 (what is written) gives every custodian's stanza its own salt, so a
//! password guess is tried against one custodian at a time; version 2 (one salt for the file,
//! so one guess was tried against every custodian at once) is still read.
//!
//! [`CustodyOpener`] opens one custodian at a time, as a restore asks them, and tells a wrong
//! password from a changed file: a stanza that opens only with another threshold than the
//! header's means the header was changed ([`Error::HeaderChanged`]); enough shares that do not
//! open the key store mean the file was changed ([`Error::BackupChanged`]).

use aes_gcm::Nonce;
use aes_gcm::aead::{Aead, Payload};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::aead::{NONCE_LEN, TAG_LEN, cipher, encrypt};
use crate::error::{Error, Result};
use crate::format::{
    BackupInfo, CUSTODY_V2, CUSTODY_VERSION, Custody, KdfParams, Opened, append_payload,
    check_password, check_payload_length, push_params,
};
use crate::keystore::KeyStore;
use crate::random::RandomSource;

/// The most custodians a backup has.
pub const MAX_CUSTODIANS: usize = 16;
/// The fewest custodians a restore needs (one would be a single password).
pub const MIN_THRESHOLD: usize = 2;
/// The longest custodian label, in bytes.
pub const MAX_LABEL: usize = 64;

const FILE_KEY: usize = 32;
/// A share: the x coordinate, then one byte per file-key byte.
const SHARE: usize = 1 + FILE_KEY;
const WRAPPED: usize = SHARE + TAG_LEN;
/// The salt length a writer gives each custodian (version 3).
const STANZA_SALT: usize = 32;

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

/// Seals `store` for `custodians`, any `threshold` of whom restore it (backup format version
/// 3: a salt per custodian), with the key-derivation parameters `kdf` for every custodian's
/// password.
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
    let mut file_key = Zeroizing::new([0u8; FILE_KEY]);
    rng.fill(file_key.as_mut_slice())?;
    let shares = crate::shamir::split(file_key.as_slice(), threshold, n, rng)?;

    let mut out = Vec::new();
    push_params(&mut out, CUSTODY_VERSION, &kdf);
    // Both bounded above by 16.
    out.push(threshold as u8);
    out.push(n as u8);
    let fixed = out.len();
    for (i, (c, share)) in custodians.iter().zip(&shares).enumerate() {
        let mut salt = [0u8; STANZA_SALT];
        rng.fill(&mut salt)?;
        let key = kdf.derive(c.password, &salt)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let aad = stanza_aad(&out[..fixed], i, c.label, Some(&salt));
        let wrapped = encrypt(&key, nonce, share.as_slice(), &aad)?;
        out.push(c.label.len() as u8);
        out.extend_from_slice(c.label.as_bytes());
        out.push(STANZA_SALT as u8);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&wrapped);
    }
    let plaintext = store.to_bytes();
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce)?;
    append_payload(&mut out, &file_key, nonce, &plaintext)?;
    Ok(out)
}

/// A share stanza's associated data: the fixed header (through N), the stanza's index, its
/// label and (version 3) its salt, so that a stanza cannot move to another place, label or
/// file, nor take another salt.
fn stanza_aad(fixed: &[u8], index: usize, label: &str, salt: Option<&[u8]>) -> Vec<u8> {
    let mut aad = fixed.to_vec();
    aad.push(index as u8);
    aad.push(label.len() as u8);
    aad.extend_from_slice(label.as_bytes());
    if let Some(salt) = salt {
        aad.push(salt.len() as u8);
        aad.extend_from_slice(salt);
    }
    aad
}

pub(crate) struct Stanza<'b> {
    label: &'b str,
    /// Version 3: the stanza's own salt.
    salt: Option<&'b [u8]>,
    nonce: [u8; NONCE_LEN],
    wrapped: &'b [u8],
}

/// A custody backup's parsed header (after the parameters, which `backup::parse` checked).
pub(crate) struct ParsedCustody<'b> {
    pub(crate) custody: Custody,
    fixed: &'b [u8],
    stanzas: Vec<Stanza<'b>>,
    nonce: [u8; NONCE_LEN],
    header: &'b [u8],
    ciphertext: &'b [u8],
}

/// Parses a custody file from `at`, the offset of K (after the file's salt in version 2, after
/// the parameters in version 3).
pub(crate) fn parse_custody(bytes: &[u8], at: usize, version: u16) -> Result<ParsedCustody<'_>> {
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
    let take = |len: usize, pos: &mut usize| {
        let got = bytes.get(*pos..*pos + len).ok_or_else(truncated)?;
        *pos += len;
        Ok::<&[u8], Error>(got)
    };
    for _ in 0..n {
        let len = usize::from(take(1, &mut pos)?[0]);
        if len == 0 || len > MAX_LABEL {
            return Err(corrupt("a custodian label of an impossible length"));
        }
        let label = std::str::from_utf8(take(len, &mut pos)?)
            .map_err(|_| corrupt("a custodian label is not UTF-8"))?;
        if stanzas.iter().any(|s: &Stanza<'_>| s.label == label) {
            return Err(corrupt("a custodian label appears twice"));
        }
        let salt = if version == CUSTODY_V2 {
            None
        } else {
            let len = usize::from(take(1, &mut pos)?[0]);
            if !(crate::format::limits::MIN_SALT..=crate::format::limits::MAX_SALT).contains(&len) {
                return Err(Error::OutOfPolicy {
                    parameter: "a custodian's salt length",
                    value: len as u64,
                    range: "16 to 64 bytes",
                });
            }
            Some(take(len, &mut pos)?)
        };
        let nonce: [u8; NONCE_LEN] = take(NONCE_LEN, &mut pos)?
            .try_into()
            .map_err(|_| truncated())?;
        let wrapped = take(WRAPPED, &mut pos)?;
        stanzas.push(Stanza {
            label,
            salt,
            nonce,
            wrapped,
        });
    }
    let nonce: [u8; NONCE_LEN] = take(NONCE_LEN, &mut pos)?
        .try_into()
        .map_err(|_| truncated())?;
    let len = take(4, &mut pos)?;
    let length = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    check_payload_length(bytes.len() - pos, length)?;
    Ok(ParsedCustody {
        custody: Custody {
            threshold: k,
            labels: stanzas.iter().map(|s| s.label.to_owned()).collect(),
        },
        fixed,
        stanzas,
        nonce,
        header: &bytes[..pos],
        ciphertext: &bytes[pos..],
    })
}

/// Opens a custody backup one custodian at a time, as a restore asks them: each password is
/// checked against the stanza of the custodian who gives it ([`CustodyOpener::try_custodian`],
/// one key derivation), or, when nobody says who they are, against every stanza still closed
/// ([`CustodyOpener::try_password`]: one derivation for a version 2 file, one per stanza for
/// version 3, whose stanzas each have their own salt). [`CustodyOpener::derivations`] counts
/// the cost.
pub struct CustodyOpener<'b> {
    info: BackupInfo,
    file_salt: &'b [u8],
    parsed: ParsedCustody<'b>,
    shares: Vec<Option<Zeroizing<Vec<u8>>>>,
    derivations: usize,
}

impl std::fmt::Debug for CustodyOpener<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustodyOpener")
            .field("custody", &self.parsed.custody)
            .field("opened", &self.opened())
            .field("derivations", &self.derivations)
            .finish_non_exhaustive()
    }
}

impl<'b> CustodyOpener<'b> {
    /// The opener of a header [`crate::backup`] parsed (its `new` reads the file).
    pub(crate) fn from_parsed(
        info: BackupInfo,
        file_salt: &'b [u8],
        parsed: ParsedCustody<'b>,
    ) -> Self {
        let n = parsed.stanzas.len();
        Self {
            info,
            file_salt,
            parsed,
            shares: (0..n).map(|_| None).collect(),
            derivations: 0,
        }
    }

    /// Who the custodians are and how many must come.
    pub fn custody(&self) -> &Custody {
        &self.parsed.custody
    }

    /// The file's header.
    pub fn info(&self) -> &BackupInfo {
        &self.info
    }

    /// The labels of the custodians whose shares opened, in the file's order.
    pub fn opened(&self) -> Vec<String> {
        self.parsed
            .stanzas
            .iter()
            .zip(&self.shares)
            .filter(|(_, s)| s.is_some())
            .map(|(s, _)| s.label.to_owned())
            .collect()
    }

    /// Whether enough shares opened to restore.
    pub fn is_enough(&self) -> bool {
        self.shares.iter().flatten().count() >= self.parsed.custody.threshold
    }

    /// How many key derivations the passwords tried so far cost.
    pub fn derivations(&self) -> usize {
        self.derivations
    }

    fn derive(&mut self, password: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.derivations += 1;
        self.info.kdf.derive(password, salt)
    }

    /// Opens stanza `i` with `key`. A stanza that opens only under another threshold than the
    /// header's was sealed in a file whose header said so: the header was changed.
    fn open_stanza(&mut self, i: usize, key: &[u8; 32]) -> Result<bool> {
        let threshold = self.parsed.custody.threshold;
        let (share, sealed) = {
            let stanza = &self.parsed.stanzas[i];
            let n = self.parsed.stanzas.len();
            let try_with = |k: usize| {
                let mut fixed = self.parsed.fixed.to_vec();
                let at = fixed.len() - 2;
                fixed[at] = k as u8;
                let aad = stanza_aad(&fixed, i, stanza.label, stanza.salt);
                cipher(key)
                    .decrypt(
                        &Nonce::from(stanza.nonce),
                        Payload {
                            msg: stanza.wrapped,
                            aad: &aad,
                        },
                    )
                    .ok()
                    .map(Zeroizing::new)
            };
            match try_with(threshold) {
                Some(share) => (Some(share), None),
                None => (
                    None,
                    (MIN_THRESHOLD..=n).find(|&k| k != threshold && try_with(k).is_some()),
                ),
            }
        };
        if let Some(share) = share {
            if share.len() != SHARE || usize::from(share[0]) != i + 1 {
                return Err(Error::corrupt(
                    "backup",
                    "a custodian's share has an unexpected length or x coordinate",
                ));
            }
            self.shares[i] = Some(share);
            return Ok(true);
        }
        if let Some(sealed) = sealed {
            return Err(Error::HeaderChanged {
                field: "threshold",
                header: threshold,
                sealed,
            });
        }
        Ok(false)
    }

    /// Tries `password` as the custodian labelled `label`: one key derivation. `Ok(false)` when
    /// it is not that custodian's password; `Ok(true)` when their share opened (or had).
    pub fn try_custodian(&mut self, label: &str, password: &str) -> Result<bool> {
        let i = self
            .parsed
            .stanzas
            .iter()
            .position(|s| s.label == label)
            .ok_or_else(|| Error::UnknownCustodian {
                label: label.to_owned(),
                labels: self.parsed.custody.labels.clone(),
            })?;
        if self.shares[i].is_some() {
            return Ok(true);
        }
        let salt = self.parsed.stanzas[i].salt.unwrap_or(self.file_salt);
        let key = self.derive(password, salt)?;
        self.open_stanza(i, &key)
    }

    /// Tries `password` as any custodian whose share is still closed; returns the label of the
    /// one it opened. A version 2 file costs one derivation (one salt for all); version 3 one
    /// per closed stanza, until one opens.
    pub fn try_password(&mut self, password: &str) -> Result<Option<String>> {
        let closed: Vec<usize> = (0..self.shares.len())
            .filter(|&i| self.shares[i].is_none())
            .collect();
        if self.info.version == CUSTODY_V2 {
            let salt = self.file_salt;
            let key = self.derive(password, salt)?;
            for i in closed {
                if self.open_stanza(i, &key)? {
                    return Ok(Some(self.parsed.stanzas[i].label.to_owned()));
                }
            }
            return Ok(None);
        }
        for i in closed {
            let salt = self.parsed.stanzas[i].salt.unwrap_or(self.file_salt);
            let key = self.derive(password, salt)?;
            if self.open_stanza(i, &key)? {
                return Ok(Some(self.parsed.stanzas[i].label.to_owned()));
            }
        }
        Ok(None)
    }

    /// The key store, once enough shares opened: refused with
    /// [`Error::NotEnoughCustodians`] before, and with [`Error::BackupChanged`] when enough
    /// authenticated shares do not open it (no password can cause that).
    pub fn finish(self) -> Result<Opened> {
        let threshold = self.parsed.custody.threshold;
        let custodians = self.opened();
        if custodians.len() < threshold {
            return Err(Error::NotEnoughCustodians {
                threshold,
                opened: custodians,
            });
        }
        let shares: Vec<&[u8]> = self
            .shares
            .iter()
            .flatten()
            .take(threshold)
            .map(|s| s.as_slice())
            .collect();
        let file_key = crate::shamir::combine(&shares)?;
        let file_key: &[u8; FILE_KEY] = file_key
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("backup", "the file key has the wrong length"))?;
        let plaintext = Zeroizing::new(
            cipher(file_key)
                .decrypt(
                    &Nonce::from(self.parsed.nonce),
                    Payload {
                        msg: self.parsed.ciphertext,
                        aad: self.parsed.header,
                    },
                )
                .map_err(|_| Error::BackupChanged { threshold })?,
        );
        Ok(Opened {
            store: KeyStore::from_bytes(&plaintext)?,
            info: self.info,
            custodians,
            derivations: self.derivations,
        })
    }
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

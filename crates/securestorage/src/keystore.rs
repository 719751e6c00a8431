//! The management group's key store and the secrets sealed with it.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::random::RandomSource;

/// The length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
const ID_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

const STORE_MAGIC: &[u8; 4] = b"OMKS";
const STORE_VERSION: u8 = 1;
const KEY_RECORD: usize = ID_LEN + 8 + 1 + KEY_LEN;
const DIGEST_LEN: usize = 32;
const CURRENT: u8 = 1;

const SEAL_MAGIC: &[u8; 4] = b"OMSS";
/// Bound to the key id only (read forever, no longer written by `seal_for`).
const SEAL_V1: u8 = 1;
/// Bound to the key id, the management group and the account.
const SEAL_V2: u8 = 2;
const SEAL_HEADER: usize = 4 + 1 + ID_LEN;

const CHECK_MAGIC: &[u8; 4] = b"OMKC";
const CHECK_VERSION: u8 = 1;
const CHECK_HEADER: usize = 4 + 1 + ID_LEN;
/// The fixed, labelled value a key check record seals.
const CHECK_VALUE: &[u8] = b"OMKS management group key check v1";

/// What a key check record says of a key store (see [`KeyStore::check_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The store's current key is the one the record was made with.
    Current,
    /// The store holds the record's key, but another key is current.
    Older,
    /// The store does not hold the record's key.
    Absent,
}

/// Whose secret a sealed blob is: the management group and the Run As account. Bound into the
/// sealed secret (version 2) so that a blob moved to another account, or another group, does
/// not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedFor<'a> {
    /// The management group's name.
    pub management_group: &'a str,
    /// The Run As account's name.
    pub account: &'a str,
}

impl SealedFor<'_> {
    /// The associated data after the header: each name as a 2-byte length and its UTF-8.
    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        for name in [self.management_group, self.account] {
            let len = u16::try_from(name.len())
                .map_err(|_| Error::corrupt("sealed secret", "a name longer than 65,535 bytes"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        Ok(())
    }
}

/// The file name of a machine's key store, below its machine folder.
pub const KEYSTORE_FILE: &str = "SecureStorage/keystore.bin";

/// Where the key store of the machine whose folder is `machine` lives.
pub fn keystore_path(machine: &Path) -> PathBuf {
    machine.join(KEYSTORE_FILE)
}

/// A key's identity: 16 random bytes, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; ID_LEN]);

impl KeyId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::corrupt("key id", format!("'{s}' is not 32 hex digits"));
        if s.len() != 2 * ID_LEN || !s.is_ascii() {
            return Err(bad());
        }
        let mut id = [0u8; ID_LEN];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(KeyId(id))
    }
}

/// One key of the store. Its secret is zeroized when dropped and never printed.
#[derive(Clone)]
pub struct Key {
    id: KeyId,
    created: u64,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

impl Key {
    /// Its id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// When it was created, to the second (the store keeps seconds since the Unix epoch; a
    /// count past 9999-12-31 23:59:59 UTC, which no writer makes, reads as that second).
    pub fn created(&self) -> SystemTime {
        from_unix_seconds(self.created)
    }

    fn cipher(&self) -> Aes256Gcm {
        crate::aead::cipher(&self.secret)
    }

    /// Whether both hold the same secret under the same id (compared without early exit).
    fn same_as(&self, other: &Key) -> bool {
        let diff = self
            .secret
            .iter()
            .zip(other.secret.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        self.id == other.id && diff == 0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("created", &self.created)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A management group's encryption keys: the current one, which seals new secrets, and the
/// older ones, kept to open what they sealed.
///
/// ```
/// use std::time::SystemTime;
/// use opsmgr_securestorage::keystore::KeyStore;
/// use opsmgr_securestorage::random::OsRandom;
/// let store = KeyStore::generate(SystemTime::now(), &mut OsRandom)?;
/// let sealed = store.seal(b"RunAs password", &mut OsRandom)?;
/// assert_eq!(store.open(&sealed)?.as_slice(), b"RunAs password");
/// # Ok::<(), opsmgr_securestorage::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyStore {
    keys: Vec<Key>,
    current: usize,
}

/// A time as the store keeps it: whole seconds since the Unix epoch (0 before it).
fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The time a stored count of seconds stands for, at most 9999-12-31 23:59:59 UTC (where
/// every platform's `SystemTime` reaches).
fn from_unix_seconds(seconds: u64) -> SystemTime {
    const LAST_SECOND: u64 = 253_402_300_799;
    UNIX_EPOCH + Duration::from_secs(seconds.min(LAST_SECOND))
}

fn new_key(now: SystemTime, rng: &mut dyn RandomSource) -> Result<Key> {
    let mut id = [0u8; ID_LEN];
    rng.fill(&mut id)?;
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    rng.fill(secret.as_mut_slice())?;
    Ok(Key {
        id: KeyId(id),
        created: unix_seconds(now),
        secret,
    })
}

impl KeyStore {
    /// A new store with one fresh key (what setup does on the first RMS).
    pub fn generate(now: SystemTime, rng: &mut dyn RandomSource) -> Result<Self> {
        Ok(Self {
            keys: vec![new_key(now, rng)?],
            current: 0,
        })
    }

    /// Adds a fresh key and makes it current; the old keys stay to open what they sealed.
    pub fn rotate(&mut self, now: SystemTime, rng: &mut dyn RandomSource) -> Result<KeyId> {
        let key = new_key(now, rng)?;
        let id = key.id;
        if self.contains(id) {
            // 128 random bits repeating means the generator is broken.
            return Err(Error::Random(format!("it produced key id {id} twice")));
        }
        self.keys.push(key);
        self.current = self.keys.len() - 1;
        Ok(id)
    }

    /// The key that seals new secrets.
    pub fn current(&self) -> &Key {
        &self.keys[self.current]
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether the store holds a key with this id.
    pub fn contains(&self, id: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Whether both stores hold the same keys (ids and secrets) and the same current key.
    pub fn same_as(&self, other: &KeyStore) -> bool {
        self.keys.len() == other.keys.len()
            && self.current().id == other.current().id
            && self
                .keys
                .iter()
                .all(|k| other.keys.iter().any(|o| k.same_as(o)))
    }

    /// Seals a secret with the current key: AES-256-GCM with a fresh random nonce, the key id
    /// bound in as associated data (sealed secret version 1). Use [`KeyStore::seal_for`] for
    /// a secret that belongs to an account.
    pub fn seal(&self, plaintext: &[u8], rng: &mut dyn RandomSource) -> Result<Vec<u8>> {
        self.seal_with(plaintext, None, rng)
    }

    /// Seals a secret as [`KeyStore::seal`], also binding in whose it is (sealed secret
    /// version 2): it opens only with the same management group and account.
    pub fn seal_for(
        &self,
        plaintext: &[u8],
        owner: SealedFor<'_>,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>> {
        self.seal_with(plaintext, Some(owner), rng)
    }

    fn seal_with(
        &self,
        plaintext: &[u8],
        owner: Option<SealedFor<'_>>,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>> {
        let key = self.current();
        let mut out = Vec::with_capacity(SEAL_HEADER + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(SEAL_MAGIC);
        out.push(if owner.is_some() { SEAL_V2 } else { SEAL_V1 });
        out.extend_from_slice(&key.id.0);
        let aad = associated_data(&out, owner)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let ciphertext = key
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::corrupt("secret", "encryption failed"))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// The key id a sealed secret names, without opening it.
    pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId> {
        if sealed.len() < SEAL_HEADER + NONCE_LEN + TAG_LEN || &sealed[..4] != SEAL_MAGIC {
            return Err(Error::corrupt("sealed secret", "too short or wrong magic"));
        }
        if sealed[4] != SEAL_V1 && sealed[4] != SEAL_V2 {
            return Err(Error::corrupt(
                "sealed secret",
                format!("unknown version {}", sealed[4]),
            ));
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&sealed[5..SEAL_HEADER]);
        Ok(KeyId(id))
    }

    /// Opens a secret sealed with any key of this store by [`KeyStore::seal`] (version 1). A
    /// secret sealed for an account needs [`KeyStore::open_for`].
    pub fn open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.open_with(sealed, None)
    }

    /// Opens a secret of `owner`: one sealed for that management group and account (version
    /// 2), or one sealed before secrets were bound to their account (version 1, bound to
    /// the key id only).
    pub fn open_for(&self, sealed: &[u8], owner: SealedFor<'_>) -> Result<Zeroizing<Vec<u8>>> {
        self.open_with(sealed, Some(owner))
    }

    fn open_with(&self, sealed: &[u8], owner: Option<SealedFor<'_>>) -> Result<Zeroizing<Vec<u8>>> {
        let id = Self::sealed_key_id(sealed)?;
        let owner = match (sealed[4], owner) {
            (SEAL_V1, _) => None,
            (_, Some(owner)) => Some(owner),
            (_, None) => {
                return Err(Error::corrupt(
                    "sealed secret",
                    "it is bound to an account; open it with its account and management group",
                ));
            }
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::UnknownKey(id.to_string()))?;
        let aad = associated_data(&sealed[..SEAL_HEADER], owner)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[SEAL_HEADER..SEAL_HEADER + NONCE_LEN]);
        key.cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[SEAL_HEADER + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::SecretTampered {
                key_id: id.to_string(),
            })
    }

    /// A key check record for `management_group` (FORMAT.md): a fixed, labelled value sealed
    /// under the current key, bound to the group's name. Kept beside the group's state, it
    /// proves which key is the group's without any secret sealed with it, so a check over an
    /// empty list of secrets never passes by default.
    pub fn key_check(&self, management_group: &str, rng: &mut dyn RandomSource) -> Result<Vec<u8>> {
        let key = self.current();
        let mut out = Vec::with_capacity(CHECK_HEADER + NONCE_LEN + CHECK_VALUE.len() + TAG_LEN);
        out.extend_from_slice(CHECK_MAGIC);
        out.push(CHECK_VERSION);
        out.extend_from_slice(&key.id.0);
        let aad = check_aad(&out, management_group)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce)?;
        let sealed = key
            .cipher()
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: CHECK_VALUE,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::corrupt("key check record", "encryption failed"))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The key a key check record was made with, without opening it.
    pub fn key_check_id(record: &[u8]) -> Result<KeyId> {
        if record.len() != CHECK_HEADER + NONCE_LEN + CHECK_VALUE.len() + TAG_LEN
            || &record[..4] != CHECK_MAGIC
        {
            return Err(Error::corrupt("key check record", "wrong length or magic"));
        }
        if record[4] != CHECK_VERSION {
            return Err(Error::corrupt(
                "key check record",
                format!("unknown version {}", record[4]),
            ));
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&record[5..CHECK_HEADER]);
        Ok(KeyId(id))
    }

    /// Whether this store holds the key `record` (from [`KeyStore::key_check`] for
    /// `management_group`) was made with, and whether it is the current one. A store that
    /// holds a key of that id which does not open the record is an error
    /// ([`Error::KeyCheckFailed`]): the record was changed or made for another group, or the key
    /// under that id is not the group's.
    pub fn check_key(&self, record: &[u8], management_group: &str) -> Result<KeyCheck> {
        let id = Self::key_check_id(record)?;
        let Some(key) = self.keys.iter().find(|k| k.id == id) else {
            return Ok(KeyCheck::Absent);
        };
        let aad = check_aad(&record[..CHECK_HEADER], management_group)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&record[CHECK_HEADER..CHECK_HEADER + NONCE_LEN]);
        let opened = key
            .cipher()
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &record[CHECK_HEADER + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new);
        match opened {
            Ok(value) if value.as_slice() == CHECK_VALUE => Ok(if id == self.current().id {
                KeyCheck::Current
            } else {
                KeyCheck::Older
            }),
            _ => Err(Error::KeyCheckFailed {
                key_id: id.to_string(),
            }),
        }
    }

    /// The store's binary form (see FORMAT.md): magic, version, keys, SHA-256 of the rest.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            7 + self.keys.len() * KEY_RECORD + DIGEST_LEN,
        ));
        out.extend_from_slice(STORE_MAGIC);
        out.push(STORE_VERSION);
        // The count is bounded by `from_bytes` and by `rotate` being called by people.
        out.extend_from_slice(&(self.keys.len() as u16).to_be_bytes());
        for (i, key) in self.keys.iter().enumerate() {
            out.extend_from_slice(&key.id.0);
            out.extend_from_slice(&key.created.to_be_bytes());
            out.push(if i == self.current { CURRENT } else { 0 });
            out.extend_from_slice(key.secret.as_slice());
        }
        let digest = Sha256::digest(out.as_slice());
        out.extend_from_slice(&digest);
        out
    }

    /// Reads the binary form, checking its digest and structure.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: &str| Error::corrupt("key store", reason);
        if bytes.len() < 7 + DIGEST_LEN || &bytes[..4] != STORE_MAGIC {
            return Err(bad("too short or wrong magic"));
        }
        if bytes[4] != STORE_VERSION {
            return Err(bad(&format!("unknown key store version {}", bytes[4])));
        }
        let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
        if Sha256::digest(body).as_slice() != digest {
            return Err(bad("checksum mismatch"));
        }
        let count = usize::from(u16::from_be_bytes([body[5], body[6]]));
        if count == 0 || body.len() != 7 + count * KEY_RECORD {
            return Err(bad("key count does not match the length"));
        }
        let mut keys = Vec::with_capacity(count);
        let mut current = None;
        for (i, record) in body[7..].chunks_exact(KEY_RECORD).enumerate() {
            let mut id = [0u8; ID_LEN];
            id.copy_from_slice(&record[..ID_LEN]);
            let mut created = [0u8; 8];
            created.copy_from_slice(&record[ID_LEN..ID_LEN + 8]);
            let flags = record[ID_LEN + 8];
            let mut secret = Zeroizing::new([0u8; KEY_LEN]);
            secret.copy_from_slice(&record[ID_LEN + 9..]);
            if flags & !CURRENT != 0 {
                return Err(bad("unknown key flags"));
            }
            if flags & CURRENT != 0 {
                if current.is_some() {
                    return Err(bad("two current keys"));
                }
                current = Some(i);
            }
            if keys.iter().any(|k: &Key| k.id.0 == id) {
                return Err(bad("a key id appears twice"));
            }
            keys.push(Key {
                id: KeyId(id),
                created: u64::from_be_bytes(created),
                secret,
            });
        }
        let current = current.ok_or_else(|| bad("no current key"))?;
        Ok(Self { keys, current })
    }

    /// Reads a machine's key store.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = Zeroizing::new(fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                Error::NoKeyStore(path.to_owned())
            } else {
                Error::Io {
                    path: path.to_owned(),
                    source,
                }
            }
        })?);
        Self::from_bytes(&bytes).map_err(|e| e.in_file(path))
    }

    /// Writes the store to `path` atomically, readable by its owner only (0600), creating its
    /// folder (0700) when missing. Replaces an existing store. Takes the store's lock for the
    /// write; a caller that reads, changes and writes holds [`KeyStoreLock`] across all three
    /// and calls [`KeyStore::save_locked`].
    pub fn save(&self, path: &Path) -> Result<()> {
        let lock = KeyStoreLock::take(path)?;
        self.save_locked(path, &lock)
    }

    /// Writes the store to `path` as [`KeyStore::save`], under a lock the caller holds.
    pub fn save_locked(&self, path: &Path, lock: &KeyStoreLock) -> Result<()> {
        lock.check(path)?;
        write_private(path, &self.to_bytes())
    }

    /// Writes the store to `path` as [`KeyStore::save`], refusing when one exists there (the
    /// check and the write under one lock).
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let lock = KeyStoreLock::take(path)?;
        if path.exists() {
            return Err(Error::KeyStoreExists(path.to_owned()));
        }
        self.save_locked(path, &lock)
    }
}

/// A key check record's associated data: its header, then the group's name as a 2-byte length
/// and its UTF-8.
fn check_aad(header: &[u8], management_group: &str) -> Result<Vec<u8>> {
    let len = u16::try_from(management_group.len())
        .map_err(|_| Error::corrupt("key check record", "a group name longer than 65,535 bytes"))?;
    let mut aad = header.to_vec();
    aad.extend_from_slice(&len.to_be_bytes());
    aad.extend_from_slice(management_group.as_bytes());
    Ok(aad)
}

/// A sealed secret's associated data: its header, then (version 2) whose it is.
fn associated_data(header: &[u8], owner: Option<SealedFor<'_>>) -> Result<Vec<u8>> {
    let mut aad = header.to_vec();
    if let Some(owner) = owner {
        owner.encode(&mut aad)?;
    }
    Ok(aad)
}

/// The exclusive lock of a key store: every write of the store holds it, so two writers (a
/// restore and `om-msconfigtool NewKey`'s rotation, or two restores) take turns. It is an
/// advisory lock on `<store>.lock` beside the store, released when dropped.
#[derive(Debug)]
pub struct KeyStoreLock {
    _file: fs::File,
    store: PathBuf,
}

impl KeyStoreLock {
    /// Takes the lock of the store at `path`, waiting for another holder; creates the store's
    /// folder (0700) when missing.
    pub fn take(path: &Path) -> Result<Self> {
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| Error::Io { path: p, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            opsmgr_fsutil::create_private_dir(dir).map_err(io(dir))?;
        }
        let lock_path = lock_path(path);
        let file = opsmgr_fsutil::lock_exclusive(&lock_path).map_err(io(&lock_path))?;
        Ok(Self {
            _file: file,
            store: path.to_owned(),
        })
    }

    fn check(&self, path: &Path) -> Result<()> {
        if self.store != path {
            return Err(Error::Io {
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "the lock held is that of {}",
                    self.store.display()
                )),
            });
        }
        Ok(())
    }
}

fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// What [`install`] found at the store's path and did with it.
#[derive(Debug)]
pub enum Installed {
    /// There was no store: the new one was written.
    New,
    /// The store already held these keys: nothing was written.
    Unchanged,
    /// A different, readable store was moved aside to `saved`, then the new one written.
    ReplacedReadable {
        /// Where the old store's bytes are now.
        saved: PathBuf,
        /// Keys of the old store the new one does not hold, oldest first: what they sealed
        /// no longer opens on this machine (their secrets stay in `saved`).
        missing: Vec<KeyId>,
    },
    /// An unreadable (corrupt) store was moved aside to `saved`, byte for byte, then the new
    /// one written.
    ReplacedUnreadable {
        /// Where the old store's bytes are now.
        saved: PathBuf,
        /// Why it could not be read.
        reason: String,
    },
}

/// Writes `store` at `path` (a restore), under the store's lock. A store already there with
/// the same keys is left alone. A different one, or one that cannot be read, is refused
/// unless `force`; with `force` its bytes are first saved beside it, exactly as they were,
/// under a name no other file has (`<store>.replaced-<UTC stamp>-<counter>`, created
/// exclusively, never overwriting), and only then is the new store written.
pub fn install(store: &KeyStore, path: &Path, force: bool, now: SystemTime) -> Result<Installed> {
    let lock = KeyStoreLock::take(path)?;
    let old = match fs::read(path) {
        Ok(bytes) => Some(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let outcome = match old {
        None => Installed::New,
        Some(bytes) => match KeyStore::from_bytes(&bytes) {
            Ok(existing) if existing.same_as(store) => return Ok(Installed::Unchanged),
            Ok(existing) => {
                if !force {
                    return Err(Error::KeyStoreDiffers {
                        path: path.to_owned(),
                        existing: existing.current().id().to_string(),
                        incoming: store.current().id().to_string(),
                    });
                }
                let saved = set_aside(path, &bytes, now)?;
                let missing = existing
                    .keys()
                    .iter()
                    .map(Key::id)
                    .filter(|id| !store.contains(*id))
                    .collect();
                Installed::ReplacedReadable { saved, missing }
            }
            Err(e) => {
                if !force {
                    return Err(Error::KeyStoreUnreadable {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    });
                }
                let saved = set_aside(path, &bytes, now)?;
                Installed::ReplacedUnreadable {
                    saved,
                    reason: e.to_string(),
                }
            }
        },
    };
    store.save_locked(path, &lock)?;
    Ok(outcome)
}

/// Saves `bytes` beside `path` as `<name>.replaced-<YYYYMMDDTHHMMSSZ>-<n>`, the first `n`
/// from 1 whose name is free, created exclusively (0600) and flushed.
fn set_aside(path: &Path, bytes: &[u8], now: SystemTime) -> Result<PathBuf> {
    use std::io::Write;
    let stamp = opsmgr_fsutil::utc_stamp(now);
    // A bounded search: a folder holding thousands of names for this second is not a store
    // folder any more, and saying so beats looping.
    const TRIES: u32 = 10_000;
    for n in 1..=TRIES {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".replaced-{stamp}-{n}"));
        let saved = PathBuf::from(name);
        let mut options = fs::File::options();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&saved) {
            Ok(mut file) => {
                let written = file.write_all(bytes).and_then(|()| file.sync_all());
                written.map_err(|source| Error::Io {
                    path: saved.clone(),
                    source,
                })?;
                return Ok(saved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(Error::Io {
                    path: saved,
                    source,
                });
            }
        }
    }
    Err(Error::Io {
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{TRIES} replaced stores already carry the stamp {stamp}; move some away"),
        ),
    })
}

/// Writes `bytes` to `path` atomically and owner-only: a temporary file in the same folder
/// (created 0600), flushed, renamed over `path`, the folder flushed.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    opsmgr_fsutil::write_private(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::{from_unix_seconds, unix_seconds};

    #[test]
    fn stored_seconds_round_trip_and_saturate() {
        assert_eq!(
            unix_seconds(from_unix_seconds(1_795_363_447)),
            1_795_363_447
        );
        assert_eq!(unix_seconds(from_unix_seconds(u64::MAX)), 253_402_300_799);
    }
}

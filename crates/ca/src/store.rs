//! A machine's certificate stores, as files: pending requests' private keys (Windows' REQUEST
//! store) so far; `My`, `Root` and the agent's settings come with accept and MOMCertImport.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cert::CertInfo;
use crate::error::{Error, Result};
use crate::keys::PrivateKey;

/// The folder of the machine's stores below a machine folder (`MachineKeySet = TRUE`).
pub const MACHINE_STORES: &str = "Certificates";
/// The folder of the user's stores below a machine folder (`MachineKeySet = FALSE`).
pub const USER_STORES: &str = "User/Certificates";

/// What is kept beside a pending key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingInfo {
    /// The subject the request asked for, as written.
    pub subject: String,
    /// Whether the key may ever be exported.
    pub exportable: bool,
    /// The friendly name to give the certificate.
    pub friendly_name: Option<String>,
    /// When the request was made, in seconds since the Unix epoch.
    pub created: u64,
}

/// A pending request's key and what was said about it.
#[derive(Debug)]
pub struct Pending {
    /// The store's id for it: hex SHA-256 of the public key (SubjectPublicKeyInfo DER).
    pub id: String,
    /// Its description.
    pub info: PendingInfo,
    /// The private key.
    pub key: PrivateKey,
}

/// One set of stores (the machine's or the user's), guarded by a lock file so that two tools
/// running at once take turns, and written so that a crash never leaves half a file.
#[derive(Debug, Clone)]
pub struct Stores {
    root: PathBuf,
}

/// Held while a tool changes a store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The store's id for a public key.
pub fn key_id(public_key_der: &[u8]) -> String {
    Sha256::digest(public_key_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Stores {
    /// The stores of the machine whose folder is `machine`: its own (`machine_key_set`), or
    /// its user's. Creates the folders (0700) when missing.
    pub fn open(machine: &Path, machine_key_set: bool) -> Result<Self> {
        let root = machine.join(if machine_key_set {
            MACHINE_STORES
        } else {
            USER_STORES
        });
        for sub in ["Request", "My", "Root"] {
            let dir = root.join(sub);
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir).map_err(io_err(&dir))?;
        }
        Ok(Self { root })
    }

    /// The folder the stores live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the stores' lock, waiting for another tool to finish.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.lock().map_err(io_err(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Keeps a new request's key until its certificate is accepted. The caller holds the lock.
    pub fn add_pending(
        &self,
        _lock: &StoreLock,
        key: &PrivateKey,
        info: &PendingInfo,
    ) -> Result<String> {
        let id = key_id(&key.public_key_der()?);
        let dir = self.root.join("Request");
        write_private(&dir.join(format!("{id}.key")), &key.to_pkcs8_der()?)?;
        let meta = serde_json::to_vec_pretty(info).map_err(|e| Error::Key(e.to_string()))?;
        write_private(&dir.join(format!("{id}.json")), &meta)?;
        Ok(id)
    }

    /// Every pending request, in id order. A key without its description (a crash between the
    /// two writes) is skipped: its request file was never written either.
    pub fn pending(&self) -> Result<Vec<Pending>> {
        let dir = self.root.join("Request");
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let meta_path = dir.join(format!("{id}.json"));
                let key_path = dir.join(format!("{id}.key"));
                let info: PendingInfo =
                    serde_json::from_slice(&fs::read(&meta_path).map_err(io_err(&meta_path))?)
                        .map_err(|e| Error::Key(format!("{}: {e}", meta_path.display())))?;
                let der = Zeroizing::new(fs::read(&key_path).map_err(io_err(&key_path))?);
                let key = PrivateKey::from_pkcs8_der(&der)?;
                Ok(Pending { id, info, key })
            })
            .collect()
    }
}

/// What accepting a certificate did.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The certificate.
    pub cert: CertInfo,
    /// True when it was already in `My` with its key: nothing changed.
    pub already: bool,
}

impl Stores {
    /// Joins a certificate with its pending key in `My` and removes the pending entry
    /// (certreq -accept). Refused: a certificate outside its validity at `now`, or one whose
    /// public key matches no pending key. Accepting the same certificate again is harmless.
    /// The caller holds the lock.
    pub fn accept(
        &self,
        _lock: &StoreLock,
        cert_bytes: &[u8],
        now: SystemTime,
    ) -> Result<Accepted> {
        let cert = CertInfo::parse(cert_bytes)?;
        if !cert.valid_at(now) {
            return Err(Error::Certificate(format!(
                "{} is not valid now (valid from {} to {}, Unix seconds)",
                cert.subject, cert.not_before, cert.not_after
            )));
        }
        let id = key_id(&cert.public_key);
        let pending = self.root.join("Request");
        let (key_path, meta_path) = (
            pending.join(format!("{id}.key")),
            pending.join(format!("{id}.json")),
        );
        let my = self.root.join("My");
        let thumb = &cert.thumbprint;
        let my_cert = my.join(format!("{thumb}.cer"));
        if my_cert.exists() && my.join(format!("{thumb}.key")).exists() {
            // Already accepted; finish a run that stopped before removing the pending entry.
            remove_if_there(&key_path)?;
            remove_if_there(&meta_path)?;
            return Ok(Accepted {
                cert,
                already: true,
            });
        }
        if !key_path.exists() {
            return Err(Error::Certificate(format!(
                "no pending key on this machine matches the public key of {} (it was not requested here, or was accepted into another store)",
                cert.subject
            )));
        }
        let key = fs::read(&key_path).map_err(io_err(&key_path))?;
        let meta = fs::read(&meta_path).map_err(io_err(&meta_path))?;
        // Key and description first, the certificate last: a certificate in My always has its key.
        write_private(&my.join(format!("{thumb}.key")), &key)?;
        write_private(&my.join(format!("{thumb}.json")), &meta)?;
        write_private(&my_cert, &cert.der)?;
        remove_if_there(&key_path)?;
        remove_if_there(&meta_path)?;
        Ok(Accepted {
            cert,
            already: false,
        })
    }
}

fn remove_if_there(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically and owner-only (0600 from the first byte).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = atomic_write_file::OpenOptions::new();
    #[cfg(unix)]
    {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        atomic_write_file::unix::OpenOptionsExt::preserve_mode(&mut options, false);
    }
    let mut file = options.open(path).map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.commit().map_err(io_err(path))
}

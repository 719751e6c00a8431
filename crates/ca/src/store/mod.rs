//! A machine's certificate stores, as files: pending requests' private keys (Windows' REQUEST
//! store), the personal store `My` (certificates with their keys) and the trusted roots `Root`;
//! and PFX files, in which Windows moves a certificate with its key from one store to another.
//!
//! [`Stores`] is one set of stores (the machine's or its user's): certreq's
//! [`accept`](Stores::accept), certutil's [`list`](Stores::list),
//! [`add_root`](Stores::add_root), [`delete`](Stores::delete),
//! [`import_pfx`](Stores::import_pfx) and [`export_pfx`](Stores::export_pfx), each change
//! under the stores' lock ([`Stores::lock`]). [`read_pfx`] and [`write_pfx`] are the PFX
//! format alone, bytes in and bytes out.
//!
//! Layout below the stores' folder: `Request/<key id>.{key,json}`, `My/<thumbprint>.{cer,key,json}`,
//! `Root/<thumbprint>.cer`. Keys are PKCS#8 DER, 0600; every file is written atomically, and
//! in an order that never lets a certificate in `My` exist without its key.

mod pfx;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cert::CertInfo;
pub use crate::cert::{MAX_CRL_BYTES, crl_der};
use crate::error::{Error, Result};
pub use crate::names::StoreName;
use crate::request::PrivateKey;

pub use pfx::{
    MAX_PFX_BAGS, MAX_PFX_BYTES, MAX_PFX_DERIVATIONS, MAX_PFX_SCRYPT_BYTES, MAX_PFX_WORK, Pfx,
    PfxEncryption, read_pfx, write_pfx,
};

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
    /// When the request was made (kept to the second, as seconds since the Unix epoch).
    #[serde(with = "crate::time::as_seconds")]
    pub created: SystemTime,
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
    /// For the user's stores, the machine's: a user trusts the machine's roots too (Windows'
    /// CurrentUser Root store shows LocalMachine's).
    machine: Option<PathBuf>,
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
    crate::hex::lower(&Sha256::digest(public_key_der))
}

impl Stores {
    /// certreq's search for where a certificate's key is pending: `attempt` runs on the
    /// machine's stores, then (when the first refuses and they exist) on the user's, each
    /// under its lock, with whether they are the machine's. The first success is the answer;
    /// when none succeeds, the first refusal. `user_only` (certreq `-user`) tries the user's
    /// alone.
    pub fn in_key_stores<T>(
        machine: &Path,
        user_only: bool,
        mut attempt: impl FnMut(&Stores, &StoreLock, bool) -> Result<T>,
    ) -> Result<T> {
        let mut first_error = None;
        for machine_key_set in [true, false] {
            if (machine_key_set && user_only)
                || (!machine_key_set && !machine.join(USER_STORES).exists())
            {
                continue;
            }
            let stores = Stores::open(machine, machine_key_set)?;
            let lock = stores.lock()?;
            match attempt(&stores, &lock, machine_key_set) {
                Ok(done) => return Ok(done),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| {
            Error::certificate(
                "the user's stores do not exist on this machine (no request was made with MachineKeySet = FALSE)",
            )
        }))
    }

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
            opsmgr_fsutil::create_private_dir(&dir).map_err(io_err(&dir))?;
        }
        Ok(Self {
            root,
            machine: (!machine_key_set).then(|| machine.join(MACHINE_STORES)),
        })
    }

    /// The folder the stores live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the stores' lock, waiting for another tool to finish.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join(".lock");
        let file = opsmgr_fsutil::lock_exclusive(&path).map_err(io_err(&path))?;
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
        let meta = serde_json::to_vec_pretty(info)
            .map_err(|e| Error::key_from("encoding its metadata", e))?;
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
                        .map_err(|e| Error::key_from(meta_path.display().to_string(), e))?;
                let der = Zeroizing::new(fs::read(&key_path).map_err(io_err(&key_path))?);
                let key = PrivateKey::from_pkcs8_der(&der)?;
                Ok(Pending { id, info, key })
            })
            .collect()
    }
}

/// What a machine trusts: the roots in its `Root` store, and the CRLs they published (each
/// checked with its root's key when it was added).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The trusted roots.
    pub roots: Vec<CertInfo>,
    /// CRLs (DER) of those roots.
    pub crls: Vec<Vec<u8>>,
}

impl FromStr for StoreName {
    type Err = Error;
    /// certutil's names, case-insensitively: `My`, `Root`, `Request` (`CA` is not kept).
    fn from_str(s: &str) -> Result<Self> {
        StoreName::ALL
            .into_iter()
            .find(|n| n.dir().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::NoSuchStore(s.to_owned()))
    }
}

/// One entry of a store, as `certutil -store` lists it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The store it is in.
    pub store: StoreName,
    /// Its id: the thumbprint in `My` and `Root`, the key id in `Request`.
    pub id: String,
    /// The certificate's subject, or the subject a pending request asked for.
    pub subject: String,
    /// The certificate (none for a pending request).
    pub cert: Option<CertInfo>,
    /// Whether the private key is in the store beside it.
    pub has_key: bool,
    /// Whether that key may be exported (none without a key).
    pub exportable: Option<bool>,
    /// The friendly name the request gave.
    pub friendly_name: Option<String>,
}

impl Entry {
    /// Whether `id` names this entry: its id, or its certificate's thumbprint or serial number
    /// (hex, case and spaces ignored, as Windows shows them).
    pub fn matches(&self, id: &str) -> bool {
        let id: String = id
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        !id.is_empty()
            && (self.id.eq_ignore_ascii_case(&id)
                || self
                    .cert
                    .as_ref()
                    .is_some_and(|c| c.thumbprint == id || c.serial_hex() == id))
    }
}

/// What adding a certificate to a store did.
#[derive(Debug, Clone)]
pub struct Added {
    /// The certificate.
    pub cert: CertInfo,
    /// True when it was there already: nothing changed.
    pub already: bool,
    /// True when it is self-signed and its signature verified with its own key (a
    /// certificate issued by another is added without a signature check: there is no issuer
    /// to check it with).
    pub self_signature_verified: bool,
}

/// What accepting a certificate did.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The certificate.
    pub cert: CertInfo,
    /// True when it was already in `My` with its key: nothing changed.
    pub already: bool,
    /// True for the machine's `My`, false for the user's (a request made with
    /// `MachineKeySet = FALSE`), where the agent does not look.
    pub machine_store: bool,
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
            return Err(Error::certificate(format!(
                "{} is not valid now (valid from {} to {})",
                crate::text::escape_control(&cert.subject),
                crate::time::human(cert.not_before),
                crate::time::human(cert.not_after)
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
                machine_store: self.machine.is_none(),
            });
        }
        if !key_path.exists() {
            return Err(Error::certificate(format!(
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
            machine_store: self.machine.is_none(),
        })
    }
}

impl Stores {
    /// Every entry of `store`, sorted by subject, then start of validity, then id.
    pub fn list(&self, store: StoreName) -> Result<Vec<Entry>> {
        let mut entries = match store {
            StoreName::Request => self
                .pending()?
                .into_iter()
                .map(|p| Entry {
                    store,
                    id: p.id,
                    subject: p.info.subject,
                    cert: None,
                    has_key: true,
                    exportable: Some(p.info.exportable),
                    friendly_name: p.info.friendly_name,
                })
                .collect(),
            StoreName::My | StoreName::Root => {
                let dir = self.root.join(store.dir());
                let mut entries = Vec::new();
                for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
                    let path = item.map_err(io_err(&dir))?.path();
                    if path.extension().is_none_or(|e| e != "cer") {
                        continue;
                    }
                    let bytes = fs::read(&path).map_err(io_err(&path))?;
                    let cert = CertInfo::parse(&bytes)
                        .map_err(|e| Error::certificate_from(path.display().to_string(), e))?;
                    let info = self.my_info(store, &cert.thumbprint)?;
                    let has_key = store == StoreName::My
                        && dir.join(format!("{}.key", cert.thumbprint)).exists();
                    entries.push(Entry {
                        store,
                        id: cert.thumbprint.clone(),
                        subject: cert.subject.clone(),
                        has_key,
                        exportable: info.as_ref().map(|i| i.exportable).filter(|_| has_key),
                        friendly_name: info.and_then(|i| i.friendly_name),
                        cert: Some(cert),
                    });
                }
                entries
            }
        };
        entries.sort_by(|a, b| {
            let start = |e: &Entry| e.cert.as_ref().map(|c| c.not_before);
            (&a.subject, start(a), &a.id).cmp(&(&b.subject, start(b), &b.id))
        });
        Ok(entries)
    }

    fn my_info(&self, store: StoreName, thumbprint: &str) -> Result<Option<PendingInfo>> {
        let path = self
            .root
            .join(store.dir())
            .join(format!("{thumbprint}.json"));
        if store != StoreName::My || !path.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::key_from(path.display().to_string(), e))
    }

    /// The one entry of `store` that `id` names (see [`Entry::matches`]).
    pub fn find(&self, store: StoreName, id: &str) -> Result<Entry> {
        let mut found: Vec<Entry> = self
            .list(store)?
            .into_iter()
            .filter(|e| e.matches(id))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::NoSuchEntry {
                store,
                id: id.to_owned(),
            }),
            n => Err(Error::Ambiguous {
                store,
                id: id.to_owned(),
                count: n,
            }),
        }
    }

    /// Adds a certificate to `Root` (certutil -addstore root). A certificate that is not a CA
    /// certificate (basicConstraints CA) is refused unless `force`. Adding it again is harmless.
    /// The caller holds the lock.
    pub fn add_root(&self, _lock: &StoreLock, cert_bytes: &[u8], force: bool) -> Result<Added> {
        let cert = CertInfo::parse(cert_bytes)?;
        if !cert.is_ca && !force {
            return Err(Error::NotCa(cert.subject));
        }
        // A self-signed certificate must verify with its own key: a forged or damaged root is
        // refused, force or not.
        let self_signed = cert.subject == cert.issuer;
        if self_signed {
            crate::cert::verify_certificate(&cert.der, &spki(&cert)?).map_err(|e| {
                Error::certificate_from(
                    format!(
                        "{} claims to be self-signed, but its signature fails",
                        cert.subject
                    ),
                    e,
                )
            })?;
        }
        let path = self
            .root
            .join(StoreName::Root.dir())
            .join(format!("{}.cer", cert.thumbprint));
        let already = path.exists();
        if !already {
            write_private(&path, &cert.der)?;
        }
        Ok(Added {
            cert,
            already,
            self_signature_verified: self_signed,
        })
    }

    /// Removes the entry `id` names from `store` (certutil -delstore) and returns it. The
    /// certificate goes first, its key last, so a crash never leaves a certificate without its
    /// key. The caller holds the lock.
    pub fn delete(&self, _lock: &StoreLock, store: StoreName, id: &str) -> Result<Entry> {
        let entry = self.find(store, id)?;
        let dir = self.root.join(store.dir());
        let order: &[&str] = match store {
            StoreName::Request => &["json", "key"],
            StoreName::My => &["cer", "json", "key"],
            StoreName::Root => &["cer"],
        };
        for ext in order {
            remove_if_there(&dir.join(format!("{}.{ext}", entry.id)))?;
        }
        Ok(entry)
    }

    /// The private key of the `My` or `Request` entry `id` names, as PKCS#8 PEM. A key whose
    /// request said `Exportable = FALSE` is never given out.
    pub fn export_key(&self, store: StoreName, id: &str) -> Result<Zeroizing<String>> {
        let entry = self.find(store, id)?;
        self.exportable_key(&entry)?.to_pkcs8_pem()
    }

    /// The private key kept beside the certificate with this thumbprint in `My`, if any.
    pub fn my_key(&self, thumbprint: &str) -> Result<Option<PrivateKey>> {
        let path = self
            .root
            .join(StoreName::My.dir())
            .join(format!("{thumbprint}.key"));
        match fs::read(&path) {
            Ok(der) => PrivateKey::from_pkcs8_der(&Zeroizing::new(der)).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }
}

/// What adding a CRL to `Root` did.
#[derive(Debug, Clone)]
pub struct AddedCrl {
    /// The root that signed it.
    pub issuer: CertInfo,
    /// Its CRL number, when it has one.
    pub number: Option<u64>,
    /// When it was made.
    pub this_update: SystemTime,
    /// Until when it is valid.
    pub next_update: Option<SystemTime>,
    /// How many certificates it lists.
    pub revoked: usize,
    /// False when the store already held this CRL or a newer one of its root (kept).
    pub stored: bool,
}

/// What adding to `Root` did: a root certificate, or a CRL (certutil -addstore takes both).
#[derive(Debug, Clone)]
pub enum AddedToRoot {
    /// A certificate.
    Certificate(Added),
    /// A CRL.
    Crl(AddedCrl),
}

/// Checks that `root` signed the CRL `der`, over its `tbsCertList` as received.
pub fn crl_signed_by(der: &[u8], root: &CertInfo) -> Result<()> {
    use der::Decode;
    let crl = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .map_err(|e| Error::certificate_from("the CRL cannot be read", e))?;
    let issuer = crate::text::escape_control(&crl.tbs_cert_list.issuer.to_string());
    if issuer != root.subject {
        return Err(Error::certificate(format!(
            "the CRL is {issuer}'s, not {}'s",
            root.subject
        )));
    }
    let range = crate::sigalg::signed_range(der)
        .map_err(|e| Error::certificate_from("the CRL cannot be read", e))?;
    let algorithm = crate::sigalg::SignatureAlgorithm::from_identifier(&crl.signature_algorithm)
        .map_err(|e| Error::certificate_from("the CRL's signature", e))?;
    let signature = crl
        .signature
        .as_bytes()
        .ok_or_else(|| Error::certificate("the CRL's signature has unused bits"))?;
    crate::sigalg::verify_signature(&spki(root)?, algorithm, &der[range], signature)
        .map_err(|e| Error::certificate_from(format!("{} did not sign the CRL", root.subject), e))
}

/// A CRL's number, when it has one.
fn crl_number(crl: &x509_cert::crl::CertificateList) -> Option<u64> {
    use der::Decode;
    let ext = crl
        .tbs_cert_list
        .crl_extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)?;
    let n = x509_cert::ext::pkix::crl::CrlNumber::from_der(ext.extn_value.as_bytes()).ok()?;
    let bytes = n.0.as_bytes();
    (bytes.len() <= 8).then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

impl Stores {
    /// What these stores trust: the certificates of `Root` and the CRLs stored beside them;
    /// for the user's stores, the machine's as well.
    pub fn trust(&self) -> Result<Trust> {
        let mut roots: Vec<CertInfo> = self
            .list(StoreName::Root)?
            .into_iter()
            .filter_map(|e| e.cert)
            .collect();
        let mut crls = Vec::new();
        let mut dirs = vec![self.root.join(StoreName::Root.dir())];
        if let Some(machine) = &self.machine
            && machine.join(StoreName::Root.dir()).is_dir()
        {
            let machine = Stores {
                root: machine.clone(),
                machine: None,
            };
            for cert in machine
                .list(StoreName::Root)?
                .into_iter()
                .filter_map(|e| e.cert)
            {
                if !roots.iter().any(|r| r.der == cert.der) {
                    roots.push(cert);
                }
            }
            dirs.push(machine.root.join(StoreName::Root.dir()));
        }
        for dir in dirs {
            for item in fs::read_dir(&dir).map_err(io_err(&dir))? {
                let path = item.map_err(io_err(&dir))?.path();
                if path.extension().is_some_and(|e| e == "crl") {
                    crls.push(fs::read(&path).map_err(io_err(&path))?);
                }
            }
        }
        Ok(Trust { roots, crls })
    }

    /// Adds a CRL to `Root` (certutil -addstore root FILE.crl), as the CRL of the root in
    /// `Root` that signed it (checked over its `tbsCertList` as received). A CRL no root here
    /// signed is refused; an older one than the store holds for its root (by CRL number, then
    /// thisUpdate) is kept out. The caller holds the lock.
    pub fn add_crl(&self, _lock: &StoreLock, bytes: &[u8]) -> Result<AddedCrl> {
        use der::Decode;
        let der = crl_der(bytes).ok_or_else(|| {
            Error::certificate(format!(
                "not a CRL (PEM X509 CRL or DER, at most {MAX_CRL_BYTES} bytes)"
            ))
        })?;
        let crl =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                .map_err(|e| Error::certificate_from("the CRL cannot be read", e))?;
        let issuer = crate::text::escape_control(&crl.tbs_cert_list.issuer.to_string());
        let root = self
            .list(StoreName::Root)?
            .into_iter()
            .filter_map(|e| e.cert)
            .find(|r| crl_signed_by(&der, r).is_ok())
            .ok_or_else(|| {
                Error::certificate(format!(
                    "no root in Root signed this CRL (its issuer is {issuer}): trust the CA's root first"
                ))
            })?;
        let number = crl_number(&crl);
        let this_update = crl.tbs_cert_list.this_update.to_system_time();
        let path = self
            .root
            .join(StoreName::Root.dir())
            .join(format!("{}.crl", root.thumbprint));
        let newer_held = match fs::read(&path) {
            Ok(old) => {
                x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&old)
                    .ok()
                    .is_some_and(|o| {
                        (crl_number(&o), o.tbs_cert_list.this_update.to_system_time())
                            >= (number, this_update)
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&path)(e)),
        };
        if !newer_held {
            write_private(&path, &der)?;
        }
        Ok(AddedCrl {
            issuer: root,
            number,
            this_update,
            next_update: crl.tbs_cert_list.next_update.map(|t| t.to_system_time()),
            revoked: crl
                .tbs_cert_list
                .revoked_certificates
                .as_ref()
                .map_or(0, Vec::len),
            stored: !newer_held,
        })
    }

    /// certutil -addstore root FILE: a CRL is added as its root's CRL
    /// ([`Stores::add_crl`]), anything else as a root certificate ([`Stores::add_root`]).
    pub fn add_to_root(&self, lock: &StoreLock, bytes: &[u8], force: bool) -> Result<AddedToRoot> {
        if crl_der(bytes).is_some() {
            self.add_crl(lock, bytes).map(AddedToRoot::Crl)
        } else {
            self.add_root(lock, bytes, force)
                .map(AddedToRoot::Certificate)
        }
    }
}

/// What importing a PFX did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The certificate now in `My` with its key.
    pub cert: CertInfo,
    /// True when it was there already with its key: nothing changed in `My`.
    pub already: bool,
    /// The PFX's root, added to `Root` (certutil's default; `NoRoot` leaves it out), when the
    /// chain's signatures verify up to it.
    pub root: Option<Added>,
    /// Why the PFX's chain gave no root to trust, when it did not.
    pub root_note: Option<String>,
}

/// The public key of a certificate, for checking what it signed.
pub(crate) fn spki_of(cert: &CertInfo) -> Result<spki::SubjectPublicKeyInfoOwned> {
    spki(cert)
}

/// The public key of a certificate, for checking what it signed.
fn spki(cert: &CertInfo) -> Result<spki::SubjectPublicKeyInfoOwned> {
    use der::Decode;
    spki::SubjectPublicKeyInfoOwned::from_der(&cert.public_key)
        .map_err(|e| Error::certificate_from(format!("{}: its public key", cert.subject), e))
}

/// The self-signed root at the end of `chain` above `leaf`, when every signature on the way
/// verifies; else why not.
fn verified_root<'a>(
    leaf: &'a CertInfo,
    chain: &'a [CertInfo],
) -> std::result::Result<&'a CertInfo, String> {
    // Why `parent`'s key did not sign `child`, in words.
    let signed_by = |child: &CertInfo, parent: &CertInfo| -> std::result::Result<(), String> {
        let key = spki(parent).map_err(|e| crate::error::error_chain(&e))?;
        crate::cert::verify_certificate(&child.der, &key).map_err(|e| crate::error::error_chain(&e))
    };
    let mut child = leaf;
    for parent in chain {
        signed_by(child, parent).map_err(|why| {
            format!(
                "{} is not signed by {}: {why}",
                child.subject, parent.subject
            )
        })?;
        child = parent;
    }
    if std::ptr::eq(child, leaf) {
        return Err("the PFX carries no issuer certificate".into());
    }
    if child.subject != child.issuer || !child.is_ca {
        return Err(format!(
            "the PFX's last certificate, {}, is not a self-signed CA certificate",
            child.subject
        ));
    }
    signed_by(child, child).map_err(|why| format!("{}'s self-signature: {why}", child.subject))?;
    Ok(child)
}

/// What importing a PFX would write, checked and encoded before anything is written.
#[derive(Debug)]
pub struct ImportPlan {
    cert: CertInfo,
    already: bool,
    /// The root to trust, and whether it is new to `Root`.
    root: Option<(CertInfo, bool)>,
    root_note: Option<String>,
    /// The files to write, in order (key and description before the certificate).
    files: Vec<(PathBuf, Zeroizing<Vec<u8>>)>,
}

impl ImportPlan {
    /// The certificate that would be in `My`, with its key.
    pub fn certificate(&self) -> &CertInfo {
        &self.cert
    }

    /// The root that would be trusted, when the PFX's chain verifies up to one and it is to be.
    pub fn root(&self) -> Option<&CertInfo> {
        self.root.as_ref().map(|(r, _)| r)
    }
}

impl Stores {
    /// What importing `pfx` would do (certutil -importPFX), every check made and every file
    /// encoded, nothing written: the key exportable unless `exportable` is false (certutil's
    /// `NoExport`); with `trust_root`, the PFX's self-signed root for `Root` when the chain's
    /// signatures verify up to it.
    pub fn plan_import(
        &self,
        pfx: &Pfx,
        exportable: bool,
        trust_root: bool,
        now: SystemTime,
    ) -> Result<ImportPlan> {
        let cert = pfx.certificate.clone();
        let my = self.root.join(StoreName::My.dir());
        let thumb = &cert.thumbprint;
        let (key_path, meta_path, cert_path) = (
            my.join(format!("{thumb}.key")),
            my.join(format!("{thumb}.json")),
            my.join(format!("{thumb}.cer")),
        );
        let already = cert_path.exists() && key_path.exists();
        let mut files = Vec::new();
        if !already {
            let info = PendingInfo {
                subject: cert.subject.clone(),
                exportable,
                friendly_name: pfx.friendly_name.clone(),
                created: now,
            };
            let meta = serde_json::to_vec_pretty(&info)
                .map_err(|e| Error::key_from("encoding its metadata", e))?;
            // Key and description first, the certificate last, as in accept.
            files.push((key_path, pfx.key.to_pkcs8_der()?));
            files.push((meta_path, Zeroizing::new(meta)));
            files.push((cert_path, Zeroizing::new(cert.der.clone())));
        }
        let (root, root_note) = match verified_root(&cert, &pfx.chain) {
            Ok(r) if trust_root => {
                if !r.is_ca {
                    return Err(Error::NotCa(r.subject.clone()));
                }
                let path = self
                    .root
                    .join(StoreName::Root.dir())
                    .join(format!("{}.cer", r.thumbprint));
                let new = !path.exists();
                if new {
                    files.push((path, Zeroizing::new(r.der.clone())));
                }
                (Some((r.clone(), new)), None)
            }
            Ok(r) => (
                None,
                Some(format!("its root {} was not added (NoRoot)", r.subject)),
            ),
            Err(why) => (None, Some(why)),
        };
        Ok(ImportPlan {
            cert,
            already,
            root,
            root_note,
            files,
        })
    }

    /// Carries out an import [`Stores::plan_import`] planned: all of it, or (a write failing)
    /// none of it: the files it wrote are removed again. The caller holds the lock.
    pub fn commit_import(&self, _lock: &StoreLock, plan: ImportPlan) -> Result<Imported> {
        let mut written: Vec<&Path> = Vec::new();
        for (path, bytes) in &plan.files {
            if let Err(e) = write_private(path, bytes) {
                // Undo in reverse: the certificate before its key.
                for done in written.iter().rev() {
                    let _ = fs::remove_file(done);
                }
                return Err(e);
            }
            written.push(path);
        }
        let root = plan.root.map(|(cert, new)| Added {
            already: !new,
            self_signature_verified: true,
            cert,
        });
        Ok(Imported {
            cert: plan.cert,
            already: plan.already,
            root,
            root_note: plan.root_note,
        })
    }

    /// Puts a PFX's key and certificate into `My` (certutil -importPFX): [`Stores::plan_import`]
    /// then [`Stores::commit_import`], so that the stores change wholly or not at all.
    /// Importing the same PFX again is harmless. The caller holds the lock.
    pub fn import_pfx(
        &self,
        lock: &StoreLock,
        pfx: &Pfx,
        exportable: bool,
        trust_root: bool,
        now: SystemTime,
    ) -> Result<Imported> {
        let plan = self.plan_import(pfx, exportable, trust_root, now)?;
        self.commit_import(lock, plan)
    }

    /// The `My` entry `id` names with its key, and with `chain` the root in `Root` that signed
    /// it, as a PFX protected by `password` (certutil -exportPFX). A key whose request said
    /// `Exportable = FALSE` is never given out.
    pub fn export_pfx(
        &self,
        id: &str,
        password: &str,
        encryption: PfxEncryption,
        chain: bool,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let entry = self.find(StoreName::My, id)?;
        let key = self.exportable_key(&entry)?;
        let Some(cert) = &entry.cert else {
            return Err(Error::key(format!("{} has no certificate", entry.id)));
        };
        let chain: Vec<Vec<u8>> = self
            .list(StoreName::Root)?
            .into_iter()
            .filter_map(|e| e.cert)
            .filter(|root| {
                root.subject == cert.issuer
                    && spki(root)
                        .is_ok_and(|k| crate::cert::verify_certificate(&cert.der, &k).is_ok())
            })
            .map(|root| root.der)
            .take(usize::from(chain))
            .collect();
        write_pfx(
            &key,
            &cert.der,
            &chain,
            entry.friendly_name.as_deref(),
            password,
            encryption,
        )
    }

    /// The key of `entry`, refused unless it is here and exportable.
    fn exportable_key(&self, entry: &Entry) -> Result<PrivateKey> {
        if !entry.has_key {
            return Err(Error::key(format!(
                "{} entry {} ({}) has no private key here",
                entry.store, entry.id, entry.subject
            )));
        }
        if entry.exportable != Some(true) {
            return Err(Error::NotExportable {
                subject: entry.subject.clone(),
                id: entry.id.clone(),
            });
        }
        let path = self
            .root
            .join(entry.store.dir())
            .join(format!("{}.key", entry.id));
        let der = Zeroizing::new(fs::read(&path).map_err(io_err(&path))?);
        PrivateKey::from_pkcs8_der(&der)
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
    opsmgr_fsutil::write_private(path, bytes).map_err(io_err(path))
}

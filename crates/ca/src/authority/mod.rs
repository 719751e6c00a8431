//! The standalone CA of the seed: a self-signed root whose only job is agent certificates, its
//! folder, its issuing policy, its request database and its CRL.
//!
//! [`Authority`] is the CA in its folder ([`Authority::init`], [`Authority::open`]) with
//! certreq's and certutil's verbs: [`submit`](Authority::submit),
//! [`resubmit`](Authority::resubmit), [`deny`](Authority::deny),
//! [`revoke`](Authority::revoke), [`publish_crl`](Authority::publish_crl), and the database's
//! [`Record`]s ([`record`](Authority::record), [`list`](Authority::list)). Every certificate
//! it records passed a review under the policy ([`Issuer::review`], [`CaConfig`]), whose only
//! product is an [`Approved`] request: the database itself is not public. What a reviewed
//! request then becomes (issued, held for an operator with a [`Hold`], denied) is one decision
//! that `certreq -submit` and the drop folder's batch ([`crate::dropfolder`]) share.
//!
//! A certificate's life after its issue: issuing a host's certificate supersedes the host's
//! earlier ones (one current certificate per host; a superseded certificate stays valid
//! until it expires or is revoked, as AD CS does, but never proves a renewal again); revoking
//! one for keyCompromise records its key, which is never certified again, and revokes the
//! certificates it superseded; the CRL is published to the CA's folder and to the folder the
//! policy names, and every certificate carries the policy's CRL distribution points.
//!
//! The folder holds `ca.key` (PKCS#8 PEM, 0600, optionally password-encrypted), `ca.cer` (the
//! root, PEM), `config.json` (the policy), `ca.db` (the request database) and `ca.crl` (the
//! newest CRL, PEM).

mod db;
mod decide;
mod issuer;
mod policy;
mod reason;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::CertificateBuilder;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::{PrivateKey, ReceivedRequest, os_rng};
use crate::store::write_private;
use crate::time::{days_after, whole};
pub(crate) use db::{Database, Issue, NewRequest};
pub use db::{Disposition, Filter, Record};
pub use decide::Hold;
pub(crate) use decide::{Assessed, Claim, Context, Decided, Decision, Earlier, decide};
pub use issuer::{Approved, Denial, Issuer, MAX_COMMON_NAME, NotIssued, Note, Signed};
use issuer::{CaSigner, RootProfile, encoding, random_serial, x509_time};
pub use policy::{CaConfig, InitOptions, LeafNotAfter};
pub use reason::{RevocationReason, parse_reason};

/// The CA's key file in its folder.
pub const CA_KEY: &str = "ca.key";
/// The CA's certificate file in its folder.
pub const CA_CERT: &str = "ca.cer";
/// The CA's policy file in its folder.
pub const CA_CONFIG: &str = "config.json";
/// The CA's database file in its folder.
pub const CA_DB: &str = "ca.db";
/// The newest CRL in the CA's folder (PEM).
pub const CA_CRL: &str = "ca.crl";
/// The folder in the CA's folder the installers are written to, unless the policy names
/// another.
pub const INSTALLERS: &str = "installers";

/// `years` calendar years after `start` (UTC): the same month, day and time, 29 February
/// becoming 28 February in a year that has none.
fn add_years(start: SystemTime, years: u32) -> Result<SystemTime> {
    let too_far = || Error::Validity { years };
    let dt = der::DateTime::from_system_time(start).map_err(|_| too_far())?;
    let year = u16::try_from(u32::from(dt.year()) + years).map_err(|_| too_far())?;
    // der's calendar refuses 29 February in a year without one: the 28th then.
    let end = der::DateTime::new(
        year,
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minutes(),
        dt.seconds(),
    )
    .or_else(|_| der::DateTime::new(year, dt.month(), 28, dt.hour(), dt.minutes(), dt.seconds()))
    .map_err(|_| too_far())?;
    Ok(end.to_system_time())
}

/// A CA: its [`Issuer`] and its request database.
#[derive(Debug)]
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer,
    db: Database,
    /// The CA's lock while this process holds it ([`Authority::with_lock`]).
    lock: Option<std::fs::File>,
}

/// The lock every change to a CA takes (in its folder): a batch, an operator's `-resubmit`,
/// `-deny`, `-revoke`, a CRL's publication and a policy change take turns, so that none acts
/// on what another is changing.
pub const CA_LOCK: &str = "dropfolder.lock";

/// What submitting a request did.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The request's record after submission.
    pub record: Record,
    /// True when the same request was submitted before: nothing changed.
    pub existing: bool,
    /// Why it waits for an operator, when the CA would otherwise have issued it.
    pub hold: Option<Hold>,
}

/// A CRL published.
#[derive(Debug, Clone)]
pub struct Published {
    /// Its number.
    pub number: u64,
    /// When it was made.
    pub this_update: SystemTime,
    /// Until when it is valid: a new one is due halfway there.
    pub next_update: SystemTime,
    /// How many certificates it lists.
    pub revoked: usize,
    /// The files written: the CA folder's `ca.crl` (PEM), and `<CA name>.crl` (DER, as a
    /// CRL distribution point serves it) in the policy's publish folder.
    pub files: Vec<PathBuf>,
}

/// The record's message for a request recorded pending: certutil's words, why it is held,
/// and what the certificate leaves out. The one place a request's text reaches a message;
/// every part is escaped by its `Display`.
pub(crate) fn pending_message(a: &Approved, hold: Option<&Hold>) -> String {
    let mut m = "Taken Under Submission".to_owned();
    if let Some(h) = hold {
        m.push_str(&format!(". Held: {h}"));
    }
    append_notes(&mut m, a);
    m
}

/// The record's message for a request issued.
pub(crate) fn issued_message(a: &Approved) -> String {
    let mut m = "Issued".to_owned();
    append_notes(&mut m, a);
    m
}

fn append_notes(m: &mut String, a: &Approved) {
    if !a.notes().is_empty() {
        m.push_str(". ");
        // One line per kind of note: a subject of four domain components says so once.
        let mut notes: Vec<(String, usize)> = Vec::new();
        for note in a.notes().iter().map(ToString::to_string) {
            match notes.iter_mut().find(|(n, _)| *n == note) {
                Some((_, count)) => *count += 1,
                None => notes.push((note, 1)),
            }
        }
        let notes: Vec<String> = notes
            .into_iter()
            .map(|(n, count)| match count {
                1 => n,
                _ => format!("{n} ({count} times)"),
            })
            .collect();
        m.push_str(&notes.join("; "));
    }
}

fn config_json(config: &CaConfig) -> Result<Vec<u8>> {
    let mut json = serde_json::to_vec_pretty(config).map_err(|source| Error::Json {
        what: "the CA's policy",
        source,
    })?;
    json.push(b'\n');
    Ok(json)
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

impl Authority {
    /// Creates a CA in `dir` (which must not hold one): a self-signed root (basicConstraints
    /// CA, keyUsage keyCertSign + cRLSign, subject key identifier), its key, its policy and its
    /// empty database.
    pub fn init(dir: &Path, options: &InitOptions, now: SystemTime) -> Result<Self> {
        check_dns_name(&options.name).map_err(|message| Error::Policy {
            field: "name".into(),
            message: format!("'{}' must be a simple host name: {message}", options.name),
        })?;
        if dir.join(CA_KEY).exists() || dir.join(CA_CERT).exists() {
            return Err(Error::CaExists {
                dir: dir.to_owned(),
            });
        }
        if options.validity_years == 0 || options.issued_validity_days == 0 {
            return Err(Error::Policy {
                field: "validity".into(),
                message: "must be at least one year for the root and one day for certificates"
                    .into(),
            });
        }
        let key = PrivateKey::generate(options.key)?;
        let signer = CaSigner::new(&key);
        let spki = SubjectPublicKeyInfoOwned::from_der(&key.public_key_der()?)
            .map_err(encoding("the public key"))?;
        let name =
            Name::from_str(&format!("CN={}", options.name)).map_err(encoding("the CA's name"))?;
        let start = whole(now);
        let end = add_years(start, options.validity_years)?;
        let builder = CertificateBuilder::new(
            RootProfile { name },
            SerialNumber::new(&random_serial(&mut os_rng()))
                .map_err(encoding("the serial number"))?,
            Validity::new(x509_time(start)?, x509_time(end)?),
            spki,
        )
        .map_err(Error::Signing)?;
        let root = signer.sign(builder)?;
        let root_der = root.to_der().map_err(encoding("the root"))?;

        opsmgr_fsutil::create_private_dir(dir).map_err(io_at(dir))?;
        // An existing folder (made by hand, or by a umask) becomes owner-only too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_at(dir))?;
        }
        let thumbprint = crate::cert::CertInfo::parse(&root_der)?.thumbprint;
        let config = CaConfig {
            root_thumbprint: Some(thumbprint),
            name: options.name.clone(),
            validity_days: options.issued_validity_days,
            leaf_not_after: LeafNotAfter::Truncate,
            auto_issue: options.auto_issue,
            allow_legacy_rsa1024: false,
            allowed_dns_suffixes: Vec::new(),
            crl_validity_days: policy::default_crl_days(),
            crl_urls: Vec::new(),
            ca_issuers_url: None,
            crl_publish_dir: None,
            installer_dir: None,
        };
        let key_pem = match &options.password {
            Some(p) => key.to_encrypted_pkcs8_pem(p)?,
            None => key.to_pkcs8_pem()?,
        };
        // Database and policy first, the key and the root last: a folder with a root always
        // has everything else.
        drop(Database::open(&dir.join(CA_DB))?);
        write_private(&dir.join(CA_CONFIG), &config_json(&config)?)?;
        write_private(&dir.join(CA_KEY), key_pem.as_bytes())?;
        let pem = crate::cert::certificate_to_pem(&root_der)?;
        opsmgr_fsutil::write_atomic(&dir.join(CA_CERT), pem.as_bytes())
            .map_err(io_at(&dir.join(CA_CERT)))?;
        Self::open(dir, options.password.as_deref().map(String::as_str))
    }

    /// Opens the CA in `dir`; an encrypted key needs `password`. A database of an older
    /// version is upgraded, its rows completed from their stored requests.
    pub fn open(dir: &Path, password: Option<&str>) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(io_at(&path))
        };
        let config_path = dir.join(CA_CONFIG);
        let config: CaConfig =
            serde_json::from_slice(&read(CA_CONFIG)?).map_err(|source| Error::Config {
                path: config_path.clone(),
                source,
            })?;
        let key_pem = zeroize::Zeroizing::new(read(CA_KEY)?);
        let key_path = dir.join(CA_KEY);
        let key_text = std::str::from_utf8(&key_pem)
            .map_err(|_| Error::key(format!("{}: not PEM", key_path.display())))?;
        let key_name = key_path.display().to_string();
        let key = PrivateKey::from_pkcs8_pem(key_text, password).map_err(|e| match e {
            Error::PasswordRequired(_) => Error::PasswordRequired(key_name.clone()),
            Error::WrongPassword(_) => Error::WrongPassword(key_name.clone()),
            other => Error::key_from(key_name.clone(), other),
        })?;
        let issuer = Issuer::new(&key, &read(CA_CERT)?, config).map_err(|e| match e {
            Error::Policy { field, message } => Error::Policy {
                field: format!("{}: {field}", config_path.display()),
                message,
            },
            Error::KeyMismatch { .. } => Error::KeyMismatch {
                certificate: format!("{} (for {})", dir.join(CA_CERT).display(), key_name),
            },
            other => other,
        })?;
        let mut db = Database::open(&dir.join(CA_DB))?;
        complete_old_rows(&mut db)?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
            db,
            lock: None,
        })
    }

    /// Runs `f` holding the CA's lock ([`CA_LOCK`]), taken unless this process holds it
    /// already (so that a batch, which holds it throughout, can publish the CRL).
    pub(crate) fn with_lock<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if self.lock.is_some() {
            return f(self);
        }
        let path = self.dir.join(CA_LOCK);
        let file = opsmgr_fsutil::lock_exclusive(&path).map_err(io_at(&path))?;
        self.lock = Some(file);
        let out = f(self);
        self.lock = None;
        out
    }

    /// The CA's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the installers of issued hosts are written: the policy's `installer_dir`
    /// (relative to the CA's folder), else [`INSTALLERS`] in it.
    pub fn installer_dir(&self) -> PathBuf {
        self.dir.join(
            self.issuer
                .config()
                .installer_dir
                .as_deref()
                .unwrap_or(Path::new(INSTALLERS)),
        )
    }

    /// The signing half, shareable between threads.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The database, for the drop folder's transactions.
    pub(crate) fn db_mut(&mut self) -> &mut Database {
        &mut self.db
    }

    /// Saves a changed policy.
    pub fn set_config(&mut self, config: CaConfig) -> Result<()> {
        config.validate()?;
        self.with_lock(|ca| {
            write_private(&ca.dir.join(CA_CONFIG), &config_json(&config)?)?;
            ca.issuer.set_config(config);
            Ok(())
        })
    }

    /// What the database holds that bears on `req` (see [`decide`]).
    pub(crate) fn context(&self, req: &Assessed) -> Result<Context> {
        Ok(self
            .contexts(&[Some(req)])?
            .pop()
            .flatten()
            .unwrap_or_default())
    }

    /// What the database holds that bears on each of `reqs`, gathered by a handful of
    /// statements for the whole batch rather than several per request.
    pub(crate) fn contexts(&self, reqs: &[Option<&Assessed>]) -> Result<Vec<Option<Context>>> {
        use std::collections::HashMap;
        let present: Vec<&Assessed> = reqs.iter().flatten().copied().collect();
        let inner: Vec<&[u8]> = present.iter().map(|r| r.inner_sha256.as_slice()).collect();
        let hosts: Vec<String> = present
            .iter()
            .filter_map(|r| r.host.as_ref().map(|h| h.to_lowercase()))
            .collect();
        let keys: Vec<&[u8]> = present
            .iter()
            .filter_map(|r| r.key.as_ref().map(|k| k.sha256.as_slice()))
            .collect();
        let mut by_inner: HashMap<String, Record> = HashMap::new();
        for r in self.db.where_in("inner_sha256", &inner)? {
            if let Some(d) = r.inner_sha256.clone() {
                by_inner.entry(d).or_insert(r);
            }
        }
        let mut by_host: HashMap<String, Vec<Record>> = HashMap::new();
        for r in self.db.where_in("common_name COLLATE NOCASE", &hosts)? {
            if let Some(cn) = &r.common_name {
                by_host.entry(cn.to_ascii_lowercase()).or_default().push(r);
            }
        }
        let mut by_key: HashMap<String, Vec<Record>> = HashMap::new();
        for r in self.db.where_in("key_sha256", &keys)? {
            if let Some(k) = r.key_sha256.clone() {
                by_key.entry(k).or_default().push(r);
            }
        }
        let compromised: HashMap<Vec<u8>, (String, SystemTime)> = self
            .db
            .compromised_keys()?
            .into_iter()
            .map(|(k, serial, at)| (k, (crate::hex::upper(&serial), at)))
            .collect();
        reqs.iter()
            .map(|req| {
                let Some(req) = req else { return Ok(None) };
                let mut ctx = Context {
                    own: by_inner.get(&crate::hex::lower(&req.inner_sha256)).cloned(),
                    ..Context::default()
                };
                if let Some(host) = &req.host {
                    ctx.host_records = by_host
                        .get(&host.to_lowercase())
                        .cloned()
                        .unwrap_or_default();
                }
                if let Some(key) = &req.key {
                    ctx.key_records = by_key
                        .get(&crate::hex::lower(&key.sha256))
                        .cloned()
                        .unwrap_or_default();
                    ctx.compromised = compromised.get(&key.sha256).cloned();
                }
                if let Some(Claim::Signed { cert, .. }) = &req.claim {
                    ctx.claimed = self.db.by_serial(&cert.serial)?;
                }
                Ok(Some(ctx))
            })
            .collect()
    }

    /// The records of `ids`, by id.
    pub(crate) fn records(&self, ids: &[i64]) -> Result<Vec<Record>> {
        self.db.where_in("id", ids)
    }

    /// Receives a request (certreq -submit): recorded as pending (or denied with the reason),
    /// issued at once when the policy auto-issues or it is a renewal proved with its host's
    /// current certificate, under the same rules as the drop folder ([`Hold`]). The same
    /// PKCS #10 request again (wrapped again, or not) finds its first record and changes
    /// nothing.
    pub fn submit(&mut self, bytes: &[u8], requester: &str, now: SystemTime) -> Result<Submitted> {
        self.with_lock(|ca| ca.submit_locked(bytes, requester, now))
    }

    fn submit_locked(
        &mut self,
        bytes: &[u8],
        requester: &str,
        now: SystemTime,
    ) -> Result<Submitted> {
        let request = ReceivedRequest::parse(bytes)?;
        let req = self.issuer.assess(&request, now);
        let ctx = self.context(&req)?;
        if let Some(record) = ctx.own.clone() {
            return Ok(Submitted {
                record,
                existing: true,
                hold: None,
            });
        }
        let issue = self.issuer.config().auto_issue;
        let decided = decide(&req, &ctx, &Earlier::default(), issue, false, now);
        let id = self.record_new(&req, requester, &decided, now)?;
        let record = self.record(id)?;
        Ok(Submitted {
            record,
            existing: false,
            hold: match decided.decision {
                Decision::Hold(h) => Some(h),
                _ => None,
            },
        })
    }

    /// Records a new request as `decided` says, issuing it in the same transaction when the
    /// decision is to issue. A serial collision (2^-126) is refused by the database: signed
    /// again.
    fn record_new(
        &mut self,
        req: &Assessed,
        requester: &str,
        decided: &Decided,
        now: SystemTime,
    ) -> Result<i64> {
        let approved = req.review.as_ref().ok().map(|a| {
            let mut a = a.clone();
            a.note(decided.notes.iter().cloned());
            a
        });
        let (disposition, message) = match (&decided.decision, &approved) {
            (Decision::Deny(d), _) => (Disposition::Denied, d.to_string()),
            (Decision::Hold(h), Some(a)) => (Disposition::Pending, pending_message(a, Some(h))),
            (_, Some(a)) => (Disposition::Pending, pending_message(a, None)),
            (_, None) => (Disposition::Pending, "Taken Under Submission".to_owned()),
        };
        let to_issue = match (&decided.decision, &approved) {
            (Decision::Issue, Some(a)) => Some(a),
            _ => None,
        };
        let host = req.host.as_ref().map(ToString::to_string);
        for attempt in 0.. {
            let signed = to_issue.map(|a| self.issuer.sign(a)).transpose()?;
            let result = self.db.transaction(|b| {
                let (id, _) = b.insert(&NewRequest {
                    received: now,
                    requester,
                    der: &req.der,
                    sha256: &req.sha256,
                    inner_sha256: &req.inner_sha256,
                    key_sha256: req.key.as_ref().map(|k| k.sha256.as_slice()),
                    key_desc: req.key.as_ref().map(|k| k.description.as_str()),
                    requested_names: &req.requested,
                    subject: &req.subject,
                    common_name: host.as_deref(),
                    renews: decided.renews,
                    disposition,
                    message: &message,
                })?;
                if let (Some(s), Some(a)) = (&signed, to_issue) {
                    b.issue(&issue_row(id, s, a, &issued_message(a)))?;
                }
                Ok(id)
            });
            match result {
                Err(Error::SerialInUse(_)) if attempt < 3 => continue,
                other => return other,
            }
        }
        unreachable!("the loop returns by its fourth attempt")
    }

    fn issue_approved(&mut self, id: i64, approved: &Approved, reopen: bool) -> Result<Record> {
        for attempt in 0.. {
            let signed = self.issuer.sign(approved)?;
            let message = issued_message(approved);
            let result = self.db.transaction(|b| {
                if reopen {
                    b.reopen(id)?;
                }
                b.issue(&issue_row(id, &signed, approved, &message))
            });
            match result {
                Err(Error::SerialInUse(_)) if attempt < 3 => continue,
                Err(e) => return Err(e),
                Ok(()) => return self.record(id),
            }
        }
        unreachable!("the loop returns by its fourth attempt")
    }

    /// Issues request `id` (certutil -resubmit): an operator's approval, after a review under
    /// today's policy. A pending request, or a denied one (as AD CS allows for failed
    /// requests: after the policy changed, say). A request the policy refuses, or for a key
    /// revoked for keyCompromise, is denied with the reason. What held it (another
    /// certificate for the host, new names in a renewal) was for this approval to decide; the
    /// host's earlier certificates are superseded by the new one.
    pub fn resubmit(&mut self, id: i64, now: SystemTime) -> Result<Record> {
        self.with_lock(|ca| ca.resubmit_locked(id, now))
    }

    fn resubmit_locked(&mut self, id: i64, now: SystemTime) -> Result<Record> {
        let record = self.record(id)?;
        let reopen = match record.disposition {
            Disposition::Pending => false,
            Disposition::Denied => true,
            Disposition::Issued | Disposition::Revoked => return Err(Error::NotPending(id)),
        };
        let der = self.db.request_der(id)?.ok_or(Error::NoSuchRequest(id))?;
        let request = ReceivedRequest::from_der(der)?;
        let req = self.issuer.assess(&request, now);
        let ctx = self.context(&req)?;
        let review = match (&req.review, &ctx.compromised) {
            (Ok(_), Some((serial, revoked_at))) => Err(Denial::CompromisedKey {
                serial: serial.clone(),
                revoked_at: *revoked_at,
            }),
            (review, _) => review.clone(),
        };
        match review {
            Ok(mut approved) => {
                // What the renewal proves today, not when it arrived: the certificate it
                // names may have been superseded or revoked since.
                if let (Some(claim), Some(host)) = (&req.claim, &req.host) {
                    match decide::claim_problem(claim, host, &ctx, now) {
                        Ok((renewed, _)) => approved.note([Note::Renews {
                            serial: renewed.serial.unwrap_or_default(),
                        }]),
                        Err(why) => approved.note([Note::ProofIgnored(why)]),
                    }
                }
                self.issue_approved(id, &approved, reopen)
            }
            Err(reason) => {
                let reason = reason.to_string();
                self.db.transaction(|b| {
                    if reopen {
                        b.reopen(id)?;
                    }
                    b.deny(id, &reason)
                })?;
                self.record(id)
            }
        }
    }

    /// Denies pending request `id` (certutil -deny), with the operator's reason.
    pub fn deny(&mut self, id: i64, reason: &str) -> Result<Record> {
        let reason = crate::text::escape_control(reason);
        self.with_lock(|ca| {
            ca.db.transaction(|b| b.deny(id, &reason))?;
            ca.record(id)
        })
    }

    /// Revokes the certificate with serial number `serial` (hex) for `reason` (certutil
    /// -revoke). Revoking again keeps the first time and reason. For keyCompromise the key is
    /// never certified again, and the certificates this one superseded are revoked with it.
    /// Publish a CRL afterwards ([`Authority::publish_crl`]) for relying parties to see it.
    pub fn revoke(
        &mut self,
        serial: &str,
        reason: RevocationReason,
        now: SystemTime,
    ) -> Result<Record> {
        let bytes = crate::hex::decode(serial).ok_or_else(|| Error::BadSerial {
            given: serial.to_owned(),
        })?;
        self.with_lock(|ca| {
            let id = ca.db.transaction(|b| b.revoke(&bytes, now, reason))?;
            ca.record(id)
        })
    }

    /// The record of request `id`.
    pub fn record(&self, id: i64) -> Result<Record> {
        self.db.record(id)
    }

    /// Every request `filter` selects, by id (certutil -view).
    pub fn list(&self, filter: &Filter) -> Result<Vec<Record>> {
        self.db.list(filter)
    }

    /// A new CRL (DER) signed by the root, listing every revoked serial with its time and
    /// reason, valid for the policy's `crl_validity_days`. Its number grows with each CRL made.
    pub fn crl(&mut self, now: SystemTime) -> Result<Vec<u8>> {
        self.with_lock(|ca| ca.crl_locked(now))
    }

    fn crl_locked(&mut self, now: SystemTime) -> Result<Vec<u8>> {
        let now = whole(now);
        let next = days_after(now, self.issuer.config().crl_validity_days);
        let number = self.db.next_crl_number(now, next)?;
        let revoked = self.db.revoked()?;
        self.issuer.sign_crl(number, now, next, &revoked)
    }

    /// The newest CRL made: its number, when, and until when.
    pub fn last_crl(&self) -> Result<Option<(u64, SystemTime, Option<SystemTime>)>> {
        self.db.last_crl()
    }

    /// Whether a new CRL is due at `now`: none was made, half of the newest one's validity has
    /// passed, or a file it is published to is missing.
    pub fn crl_due(&self, now: SystemTime) -> Result<bool> {
        let Some((_, made, next)) = self.db.last_crl()? else {
            return Ok(true);
        };
        let Some(next) = next else {
            return Ok(true);
        };
        let half = next.duration_since(made).map(|d| d / 2).unwrap_or_default();
        let missing = self.crl_files().iter().any(|p| !p.exists());
        Ok(missing || made + half <= now)
    }

    fn crl_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.dir.join(CA_CRL)];
        if let Some(dir) = &self.issuer.config().crl_publish_dir {
            files.push(dir.join(format!("{}.crl", self.issuer.config().name)));
        }
        files
    }

    /// Makes a new CRL and writes it, atomically, to the CA's folder (`ca.crl`, PEM) and to
    /// the policy's publish folder (`<CA name>.crl`, DER).
    pub fn publish_crl(&mut self, now: SystemTime) -> Result<Published> {
        self.with_lock(|ca| ca.publish_crl_locked(now))
    }

    fn publish_crl_locked(&mut self, now: SystemTime) -> Result<Published> {
        let der = self.crl_locked(now)?;
        let (number, this_update, next_update) = self.db.last_crl()?.ok_or(Error::NoCrlRecorded)?;
        let files = self.crl_files();
        let pem = crate::cert::crl_to_pem(&der)?;
        for (i, path) in files.iter().enumerate() {
            let bytes = if i == 0 {
                pem.as_bytes()
            } else {
                der.as_slice()
            };
            opsmgr_fsutil::write_atomic(path, bytes).map_err(io_at(path))?;
        }
        let list =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                .map_err(encoding("the CRL"))?;
        Ok(Published {
            number,
            this_update,
            next_update: next_update.unwrap_or(this_update),
            revoked: list
                .tbs_cert_list
                .revoked_certificates
                .as_ref()
                .map_or(0, Vec::len),
            files,
        })
    }

    /// Publishes a new CRL when one is due ([`Authority::crl_due`]).
    pub fn publish_crl_if_due(&mut self, now: SystemTime) -> Result<Option<Published>> {
        self.with_lock(|ca| {
            if ca.crl_due(now)? {
                ca.publish_crl_locked(now).map(Some)
            } else {
                Ok(None)
            }
        })
    }
}

/// The database row of an issued certificate.
fn issue_row<'a>(id: i64, s: &'a Signed, a: &'a Approved, message: &'a str) -> Issue<'a> {
    Issue {
        id,
        serial: &s.serial,
        certificate: &s.der,
        not_after: s.not_after,
        names: a.dns_names().iter().map(ToString::to_string).collect(),
        host: a.host().as_str(),
        message,
    }
}

/// Completes the rows a version 1 database left: the digests of their PKCS #10 requests and
/// keys, the names asked for and certified.
fn complete_old_rows(db: &mut Database) -> Result<()> {
    use sha2::{Digest, Sha256};
    let old = db.incomplete()?;
    if old.is_empty() {
        return Ok(());
    }
    let mut done = Vec::with_capacity(old.len());
    for (id, der, certificate) in old {
        let request = ReceivedRequest::from_der(der)?;
        let info = &request.request().info;
        let key = issuer::key_facts(&info.public_key).ok().map(|(_, k, _)| k);
        let cert = certificate
            .as_deref()
            .map(crate::cert::CertInfo::parse)
            .transpose()?;
        let mut requested: Vec<String> = info
            .subject
            .common_name()
            .ok()
            .flatten()
            .map(|cn| crate::text::escape_control(&String::from(cn)))
            .into_iter()
            .collect();
        if let Some(c) = &cert {
            let more: Vec<String> = c
                .dns_names
                .iter()
                .filter(|n| !requested.contains(n))
                .cloned()
                .collect();
            requested.extend(more);
        }
        done.push(db::Completion {
            id,
            inner_sha256: Sha256::digest(request.inner_der()).to_vec(),
            key_sha256: key.as_ref().map(|k| k.sha256.clone()),
            key_desc: key.map(|k| k.description),
            requested_names: requested,
            certified_names: cert.map(|c| c.dns_names).unwrap_or_default(),
        });
    }
    db.complete(&done)
}

/// The request id certreq accepts: decimal, or hex with `0x`.
pub fn parse_request_id(text: &str) -> Result<i64> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    };
    parsed
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::BadRequestId {
            given: text.to_owned(),
        })
}

/// An issuer for the crate's own tests: a P-256 root whose key is fixed by `seed` (one seed,
/// one CA), named JAMA00, valid ten years from 2020.
/// The CA's records and public parts, opened without its private key: what a report or a
/// monitoring check reads (`om-ca status`), by an account that holds neither the key nor its
/// password, and may not write the CA's folder.
#[derive(Debug)]
pub struct CaView {
    dir: PathBuf,
    config: CaConfig,
    root: crate::cert::CertInfo,
    db: Database,
}

impl CaView {
    /// Opens the CA in `dir` to read: its policy, its root and its database (read only).
    pub fn open(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(io_at(&path))
        };
        let config: CaConfig =
            serde_json::from_slice(&read(CA_CONFIG)?).map_err(|source| Error::Config {
                path: dir.join(CA_CONFIG),
                source,
            })?;
        let root = crate::cert::CertInfo::parse(&read(CA_CERT)?)?;
        if let Some(pin) = &config.root_thumbprint
            && !pin.eq_ignore_ascii_case(&root.thumbprint)
        {
            return Err(Error::Policy {
                field: format!("{}: root_thumbprint", dir.join(CA_CONFIG).display()),
                message: format!(
                    "the root's thumbprint is {}, not the {pin} pinned when the CA was made",
                    root.thumbprint
                ),
            });
        }
        let db = Database::open_read_only(&dir.join(CA_DB))?;
        Ok(Self {
            dir: dir.to_owned(),
            config,
            root,
            db,
        })
    }

    /// The CA's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The policy.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// The root certificate (checked against the pinned thumbprint).
    pub fn root(&self) -> &crate::cert::CertInfo {
        &self.root
    }

    /// The record of request `id`.
    pub fn record(&self, id: i64) -> Result<Record> {
        self.db.record(id)
    }

    /// The requests matching `filter`, by request id.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Record>> {
        self.db.list(filter)
    }

    /// The newest CRL made: its number, when, and until when.
    pub fn last_crl(&self) -> Result<Option<(u64, SystemTime, Option<SystemTime>)>> {
        self.db.last_crl()
    }
}

#[cfg(test)]
pub(crate) fn test_issuer(seed: u8) -> Issuer {
    #![allow(clippy::unwrap_used, reason = "tests")]
    let mut scalar = [0u8; 32];
    scalar[31] = seed.max(1);
    scalar[0] = 0x42;
    let key = PrivateKey::P256(p256::SecretKey::from_slice(&scalar).unwrap());
    let start = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    let builder = CertificateBuilder::new(
        RootProfile {
            name: Name::from_str("CN=JAMA00").unwrap(),
        },
        SerialNumber::new(&[1, seed]).unwrap(),
        Validity::new(
            x509_time(start).unwrap(),
            x509_time(add_years(start, 10).unwrap()).unwrap(),
        ),
        SubjectPublicKeyInfoOwned::from_der(&key.public_key_der().unwrap()).unwrap(),
    )
    .unwrap();
    let root = CaSigner::new(&key).sign(builder).unwrap().to_der().unwrap();
    let config = CaConfig {
        name: "JAMA00".into(),
        validity_days: 365,
        leaf_not_after: LeafNotAfter::Truncate,
        auto_issue: false,
        allow_legacy_rsa1024: false,
        allowed_dns_suffixes: Vec::new(),
        crl_validity_days: 7,
        crl_urls: Vec::new(),
        ca_issuers_url: None,
        crl_publish_dir: None,
        installer_dir: None,
        root_thumbprint: None,
    };
    Issuer::new(&key, &root, config).unwrap()
}

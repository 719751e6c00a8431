//! The agent's jobs: a key and request (`om-certreq -new`), the CA's bundle installed
//! (`om-certreq -install`), and the channel certificate chosen and recorded
//! (`om-momcertimport`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_ca::agent::{
    AgentSettings, Candidate, Held, Installed, KeyState, MAX_BUNDLE_BYTES, Selection, Trust,
    choose_channel_certificate, held_certificates,
};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{
    KeyType, MAX_INF_BYTES, PolicyOptions, PrivateKey, RequestPolicy, build_request, parse_policy,
    request_der_to_pem, request_to_pem, wrap_renewal,
};
use opsmgr_ca::store::{
    Accepted, Imported, MAX_CRL_BYTES, PendingInfo, StoreName, Stores, USER_STORES,
};
use opsmgr_model::HostName;

/// What [`enroll`] is asked for: certreq's `-new POLICY.inf REQUEST.req` on a machine.
#[derive(Debug, Clone)]
pub struct Enroll<'a> {
    /// The machine folder.
    pub machine: &'a Path,
    /// The request policy (certreq.inf).
    pub policy: &'a Path,
    /// Where the request goes.
    pub request: &'a Path,
    /// Replace the request file when it exists (certreq's `-f`).
    pub overwrite: bool,
    /// Renew this machine's certificate for the policy's name (`-renew`), proving the request
    /// with its key, even when the policy names no `RenewalCert`.
    pub renew: bool,
    /// How the policy is read.
    pub options: PolicyOptions,
}

/// What [`enroll`] did.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The request file written.
    pub request: PathBuf,
    /// The pending key's id in the store.
    pub pending_id: String,
    /// The subject asked for.
    pub subject: String,
    /// The key made.
    pub key: KeyType,
    /// The DNS names asked for.
    pub dns_names: Vec<String>,
    /// Whether the store kept the key in the machine's stores (else the user's).
    pub machine_key_set: bool,
    /// The thumbprint of the certificate this request renews, when it is a renewal.
    pub renews: Option<String>,
    /// What the policy asked for that has no effect here, and where the key went, in words.
    pub notes: Vec<String>,
}

/// certreq -new: reads the policy, makes its key, keeps the key pending in the machine's (or
/// the user's) store, and only then writes the request, so a request never exists without
/// its key. A renewal is wrapped and signed with the renewed certificate's key.
pub fn enroll(job: &Enroll<'_>, now: SystemTime) -> Result<Enrolled> {
    let name = job.policy.display().to_string();
    let bytes = crate::read_bounded(job.policy, MAX_INF_BYTES)?;
    let policy = parse_policy(&bytes, &name, job.options)?;
    crate::refuse_overwrite(job.request, job.overwrite, "-f")?;
    let stores = Stores::open(job.machine, policy.machine_key_set)?;
    let renewing = renewed_certificate(job, &policy, &stores)?;
    let key = match &policy.existing_key {
        None => PrivateKey::generate(policy.key)?,
        Some(id) => existing_key(&stores, id)
            .with_context(|| format!("UseExistingKeySet with KeyContainer = {id}"))?,
    };
    if key.key_type() != policy.key {
        bail!(
            "KeyContainer = {}: that key is {}, the policy asks for {}",
            policy.existing_key.as_deref().unwrap_or_default(),
            key.key_type(),
            policy.key
        );
    }
    let request = build_request(&policy, &key)?;
    let pem = match &renewing {
        None => request_to_pem(&request)?,
        Some((cert, old_key)) => {
            request_der_to_pem(&wrap_renewal(&request, &cert.der, old_key, now)?)?
        }
    };
    let info = PendingInfo {
        subject: policy.subject.to_string(),
        exportable: policy.exportable,
        friendly_name: policy.friendly_name.clone(),
        created: now,
    };
    let pending_id = {
        let lock = stores.lock()?;
        stores.add_pending(&lock, &key, &info)?
    };
    opsmgr_fsutil::write_atomic(job.request, pem.as_bytes())
        .with_context(|| format!("writing {}", job.request.display()))?;
    Ok(Enrolled {
        request: job.request.to_owned(),
        pending_id,
        subject: info.subject,
        key: policy.key,
        dns_names: policy.dns_names,
        machine_key_set: policy.machine_key_set,
        renews: renewing.map(|(cert, _)| cert.thumbprint),
        notes: policy.notes,
    })
}

/// The key `id` names in the stores: a pending request's key (its id), or the key of a
/// certificate in My (its thumbprint or serial number).
fn existing_key(stores: &Stores, id: &str) -> Result<PrivateKey> {
    if let Some(p) = stores
        .pending()?
        .into_iter()
        .find(|p| p.id.eq_ignore_ascii_case(id))
    {
        return Ok(p.key);
    }
    let entry = stores.find(StoreName::My, id)?;
    stores
        .my_key(&entry.id)?
        .with_context(|| format!("{} has no key in My", entry.id))
}

/// The certificate a renewal renews, with its key: the one the policy's `RenewalCert` names,
/// else (with `renew`) the agent's channel certificate when it is one for the policy's common
/// name (what the agent uses, and so what the CA knows as current), else the newest such
/// certificate in My that has its key. `None` when this is no renewal.
fn renewed_certificate(
    job: &Enroll<'_>,
    policy: &RequestPolicy,
    stores: &Stores,
) -> Result<Option<(CertInfo, PrivateKey)>> {
    let entry = match (&policy.renewal_cert, job.renew) {
        (Some(id), _) => stores
            .find(StoreName::My, id)
            .with_context(|| format!("RenewalCert = {id}"))?,
        (None, true) => {
            let cn = policy.subject.common_name().unwrap_or_default().to_owned();
            let channel = AgentSettings::load(job.machine)?.channel_certificate_hash;
            let candidates: Vec<_> = stores
                .list(StoreName::My)?
                .into_iter()
                .filter(|e| e.has_key && e.cert.as_ref().is_some_and(|c| c.names_host(&cn)))
                .collect();
            let in_use = candidates
                .iter()
                .position(|e| channel.as_deref() == Some(e.id.as_str()));
            match in_use {
                Some(i) => candidates.into_iter().nth(i),
                None => candidates
                    .into_iter()
                    .max_by_key(|e| e.cert.as_ref().map(|c| (c.not_before, c.not_after))),
            }
            .with_context(|| {
                format!("-renew: no certificate for {cn} with its key in My to renew")
            })?
        }
        (None, false) => return Ok(None),
    };
    let cert = entry
        .cert
        .with_context(|| format!("{} is not a certificate", entry.id))?;
    let key = stores
        .my_key(&cert.thumbprint)?
        .with_context(|| format!("the key of {} is not in My", cert.thumbprint))?;
    Ok(Some((cert, key)))
}

/// certreq -accept: joins the issued certificate `bytes` (a `.cer`, or the CA's bundle) with
/// its pending key, in the machine's stores or else the user's (only the user's with
/// `user_only`), once it proved itself as an install's does: its root in `Root` (or a bundle's
/// root that `trust_root` pins), its signature, and (unless `force`) the pending request's
/// name and both channel purposes.
pub fn accept(
    machine: &Path,
    bytes: &[u8],
    user_only: bool,
    trust_root: Option<&str>,
    force: bool,
    now: SystemTime,
) -> Result<Accepted> {
    Ok(opsmgr_ca::agent::accept_certificate(
        machine, bytes, user_only, trust_root, !force, now,
    )?)
}

/// What [`install`] did: the bundle's certificate and root installed, and the agent's
/// settings now in force.
#[derive(Debug, Clone)]
pub struct Install {
    /// What the CA library installed.
    pub installed: Installed,
    /// The agent's settings after the install.
    pub settings: AgentSettings,
}

/// certreq -install (the seed's installer): proves the bundle (its root pinned by
/// `trust_root` or already in Root, its certificate for a key pending here, not revoked by
/// `crl` when one is given), accepts its certificate, trusts its root, keeps the CRL and
/// records the channel certificate (MOMCertImport).
pub fn install(
    machine: &Path,
    bundle: &Path,
    user_only: bool,
    trust_root: Option<&str>,
    crl: Option<&Path>,
    now: SystemTime,
) -> Result<Install> {
    let bytes = crate::read_bounded(bundle, MAX_BUNDLE_BYTES)?;
    let crl = crl
        .map(|p| crate::read_bounded(p, MAX_CRL_BYTES))
        .transpose()?;
    let installed = opsmgr_ca::agent::install_bundle(
        machine,
        &bytes,
        user_only,
        trust_root,
        crl.as_deref(),
        now,
    )
    .with_context(|| bundle.display().to_string())?;
    Ok(Install {
        installed,
        settings: AgentSettings::load(machine)?,
    })
}

/// What MOMCertImport is asked to do.
#[derive(Debug, Clone)]
pub enum Channel<'a> {
    /// Choose the channel certificate for the host (given, else the imported PFX's common
    /// name), after importing the PFX into the machine's My store when one is given, and the
    /// CA's CRL into Root.
    Select {
        /// The agent's host name (`/SubjectName`).
        host: Option<HostName>,
        /// A PFX's bytes and password to import first (its key not exportable again; its root
        /// not trusted from the file).
        pfx: Option<PfxFile<'a>>,
        /// A CRL (its bytes) to keep in Root first, when its root is there.
        crl: Option<&'a [u8]>,
    },
    /// Forget the channel certificate (`/Remove`).
    Remove,
}

/// A PFX file to import, read by the caller (who asked for its password).
#[derive(Clone, Copy)]
pub struct PfxFile<'a> {
    /// Where it was read from, for messages.
    pub path: &'a Path,
    /// Its bytes.
    pub bytes: &'a [u8],
    /// Its password.
    pub password: &'a str,
}

impl std::fmt::Debug for PfxFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PfxFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What came of MOMCertImport's selection.
#[derive(Debug, Clone)]
pub enum ChannelOutcome {
    /// A certificate qualified and is the channel certificate now.
    Recorded(Box<Selection>),
    /// No certificate in My qualifies: each candidate with what it fails. Nothing changed in
    /// the settings.
    NoneQualifies(Vec<Candidate>),
    /// The setting was forgotten (`/Remove`).
    Removed,
}

/// What [`record_channel`] did.
#[derive(Debug, Clone)]
pub struct ChannelRecord {
    /// The PFX's certificate imported into My, when one was given.
    pub imported: Option<Imported>,
    /// The host selected for (none for `/Remove`).
    pub host: Option<HostName>,
    /// What came of it.
    pub outcome: ChannelOutcome,
    /// The agent's settings now in force.
    pub settings: AgentSettings,
    /// Whether the settings changed.
    pub changed: bool,
}

/// MOMCertImport: imports the PFX if one is given, chooses the channel certificate from the
/// machine's My store and records it in the agent's settings (or forgets it), all under the
/// stores' lock. No certificate qualifying is an outcome, not an error: the command ran and
/// its answer is no.
pub fn record_channel(machine: &Path, job: &Channel<'_>, now: SystemTime) -> Result<ChannelRecord> {
    let stores = Stores::open(machine, true)?;
    let lock = stores.lock()?;
    let (host, pfx, crl) = match job {
        Channel::Remove => {
            let (settings, changed) = AgentSettings::record(machine, &lock, None)?;
            return Ok(ChannelRecord {
                imported: None,
                host: None,
                outcome: ChannelOutcome::Removed,
                settings,
                changed,
            });
        }
        Channel::Select { host, pfx, crl } => (host, pfx, crl),
    };
    let plan = match pfx {
        Some(file) => {
            let named = || file.path.display().to_string();
            let pfx = opsmgr_ca::store::read_pfx(file.bytes, file.password).with_context(named)?;
            Some(
                stores
                    .plan_import(&pfx, false, false, now)
                    .with_context(named)?,
            )
        }
        None => None,
    };
    let host = match (host, &plan) {
        (Some(h), _) => h.clone(),
        (None, Some(p)) => {
            let cn = p.certificate().common_name.as_deref().context(
                "the PFX's certificate has no common name: give the agent's name with /SubjectName",
            )?;
            HostName::new(cn)
                .with_context(|| format!("the PFX's certificate names '{cn}', not a host"))?
        }
        (None, None) => bail!("no host to choose a channel certificate for: give /SubjectName"),
    };
    // The selection is made over the stores as they would be: nothing is imported, and no
    // CRL kept, unless a certificate qualifies.
    let mut held = held_certificates(&stores)?;
    let mut trust = stores.trust()?;
    if let Some(p) = &plan
        && !held
            .iter()
            .any(|h| h.cert.thumbprint == p.certificate().thumbprint)
    {
        held.push(Held {
            cert: p.certificate().clone(),
            key: KeyState::Matches,
        });
    }
    if let Some(c) = crl {
        trust.crls.push(checked_crl(&trust, c)?);
    }
    let (imported, outcome, settings, changed) =
        match choose_channel_certificate(&held, &trust, host.as_str(), now) {
            Ok(selection) => {
                let imported = plan.map(|p| stores.commit_import(&lock, p)).transpose()?;
                if let Some(c) = crl {
                    stores.add_crl(&lock, c)?;
                }
                let (settings, changed) =
                    AgentSettings::record(machine, &lock, Some(&selection.chosen))?;
                (
                    imported,
                    ChannelOutcome::Recorded(Box::new(selection)),
                    settings,
                    changed,
                )
            }
            Err(refused) => (
                None,
                ChannelOutcome::NoneQualifies(refused.candidates),
                AgentSettings::load(machine)?,
                false,
            ),
        };
    drop(lock);
    Ok(ChannelRecord {
        imported,
        host: Some(host),
        outcome,
        settings,
        changed,
    })
}

/// A CRL given to MOMCertImport, checked to be a CRL of a root in `trust`.
fn checked_crl(trust: &Trust, bytes: &[u8]) -> Result<Vec<u8>> {
    let der = opsmgr_ca::store::crl_der(bytes).context("the CRL given is not a CRL")?;
    if !trust
        .roots
        .iter()
        .any(|r| opsmgr_ca::store::crl_signed_by(&der, r).is_ok())
    {
        bail!("no root in Root signed the CRL given: trust the CA's root first");
    }
    Ok(der)
}

/// Whether the user's My store (MachineKeySet = FALSE) holds a certificate for `host`: the
/// agent reads only the machine's, a frequent slip in request policies worth naming when the
/// machine's store has none.
pub fn user_store_holds(machine: &Path, host: &str) -> Result<bool> {
    if !machine.join(USER_STORES).exists() {
        return Ok(false);
    }
    let user = Stores::open(machine, false)?;
    Ok(user
        .list(StoreName::My)?
        .into_iter()
        .filter_map(|e| e.cert)
        .any(|c| c.names_host(host)))
}

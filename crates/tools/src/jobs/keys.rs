//! The group key's jobs (`om-securestoragebackup`, `om-msconfigtool NewKey`): the key store
//! created, backed up under one password or split among custodians, and restored.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_securestorage::backup::{open_backup_with_passwords, seal_backup};
use opsmgr_securestorage::custody::{Custodian, recovery_fingerprint, seal_custody};
use opsmgr_securestorage::format::{
    BackupInfo, CURRENT_VERSION, CUSTODY_VERSION, KdfParams, Opened, ReadPolicy,
};
use opsmgr_securestorage::keystore::{Installed, KeyStore, KeyStoreLock, keystore_path};
use opsmgr_securestorage::random::RandomSource;

use crate::group::{Group, KeyVerdict, machine_host};

/// The largest backup file read: a key store of thousands of keys, custody stanzas and all.
pub const MAX_BACKUP_BYTES: usize = 16 * 1024 * 1024;

/// SecureStorageBackup's setup verb: creates the group's key store on a machine that has none
/// (the first RMS). An existing store is never replaced.
pub fn create_key(machine: &Path, now: SystemTime, rng: &mut dyn RandomSource) -> Result<KeyStore> {
    let store = KeyStore::generate(now, rng)?;
    store.save_new(&keystore_path(machine))?;
    Ok(store)
}

/// How a backup is sealed.
#[derive(Debug, Clone, Copy)]
pub enum Sealing<'a> {
    /// One password.
    Password(&'a str),
    /// Split among custodians, any `threshold` of whom open it.
    Custody {
        /// Each custodian's label and password, in order.
        custodians: &'a [Custodian<'a>],
        /// How many custodians a restore needs.
        threshold: usize,
    },
}

impl Sealing<'_> {
    /// The passwords that open what this sealing writes (all custodians' for a custody
    /// backup: the read-back opens it with every one).
    fn passwords(&self) -> Vec<&str> {
        match self {
            Sealing::Password(p) => vec![p],
            Sealing::Custody { custodians, .. } => custodians.iter().map(|c| c.password).collect(),
        }
    }
}

/// What [`backup`] did.
#[derive(Debug, Clone)]
pub struct BackedUp {
    /// The backup file.
    pub file: PathBuf,
    /// How many keys it holds.
    pub keys: usize,
    /// The current key's id.
    pub current: String,
    /// The recovery fingerprint custodians write down.
    pub fingerprint: String,
    /// Where the previous file was kept, when there was one.
    pub kept: Option<PathBuf>,
}

/// SecureStorageBackup Backup (and Rekey, Upgrade): seals `store` (the caller loaded it: the
/// machine's key store, or the one a backup held) into `file` without ever leaving it without
/// a good copy: written beside it as `<file>.new`, read back from the disk and opened, the
/// previous file kept as `<file>.bak`, and only then renamed over it. An existing file is
/// refused unless `overwrite`.
pub fn backup(
    store: &KeyStore,
    file: &Path,
    sealing: &Sealing<'_>,
    overwrite: bool,
    rng: &mut dyn RandomSource,
) -> Result<BackedUp> {
    crate::refuse_overwrite(file, overwrite, "--force")?;
    let bytes = match sealing {
        Sealing::Password(password) => seal_backup(store, password, rng)?,
        Sealing::Custody {
            custodians,
            threshold,
        } => seal_custody(store, custodians, *threshold, KdfParams::DEFAULT, rng)?,
    };
    let kept = replace_backup(file, &bytes, store, &sealing.passwords())?;
    Ok(BackedUp {
        file: file.to_owned(),
        keys: store.keys().len(),
        current: store.current().id().to_string(),
        fingerprint: recovery_fingerprint(store),
        kept,
    })
}

/// Replaces (or creates) the backup `file` with `bytes` without ever being left without a
/// good copy: the new bytes go to `<file>.new` beside it, are read back from the disk and
/// opened with `passwords` (they must hold `store`), the previous file is copied to
/// `<file>.bak`, and only then is the new one renamed over it. Returns the `.bak` path when a
/// previous file was kept.
fn replace_backup(
    file: &Path,
    bytes: &[u8],
    store: &KeyStore,
    passwords: &[&str],
) -> Result<Option<PathBuf>> {
    let beside = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let new = beside(".new");
    opsmgr_fsutil::write_private(&new, bytes)
        .with_context(|| format!("writing {}", new.display()))?;
    let checked = read_backup(&new)
        .with_context(|| format!("reading back {}", new.display()))
        .and_then(|back| {
            let opened = open_backup_with_passwords(&back, passwords, &ReadPolicy::DEFAULT)
                .with_context(|| format!("opening {} as written", new.display()))?;
            if !opened.store.same_as(store) {
                bail!("{} as written does not hold the key store", new.display());
            }
            Ok(())
        });
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&new);
        return Err(e.context(format!("{} unchanged", file.display())));
    }
    let keep = || -> Result<Option<PathBuf>> {
        if !file.exists() {
            return Ok(None);
        }
        let previous = crate::read_bounded(file, MAX_BACKUP_BYTES)?;
        let bak = beside(".bak");
        opsmgr_fsutil::write_private(&bak, &previous)
            .with_context(|| format!("writing {}", bak.display()))?;
        Ok(Some(bak))
    };
    let kept = keep()
        .and_then(|kept| {
            std::fs::rename(&new, file)
                .with_context(|| format!("renaming {} to {}", new.display(), file.display()))?;
            Ok(kept)
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&new);
            e.context(format!("{} unchanged", file.display()))
        })?;
    // The rename reaches the disk before the caller says the backup is made.
    let folder = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(folder)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("flushing {}", folder.display()))?;
    Ok(kept)
}

/// A backup file's bytes, read with the bound every backup reader keeps (a backup is far
/// smaller; a larger file, a pipe or a device is refused before it is read).
pub fn read_backup(file: &Path) -> Result<Vec<u8>> {
    crate::read_bounded(file, MAX_BACKUP_BYTES)
}

/// Opens a backup of any version with the passwords given (a custody backup takes any
/// threshold of its custodians' passwords, in any order). The error is the library's, typed,
/// with the file named.
pub fn open_backup(file: &Path, passwords: &[&str], policy: &ReadPolicy) -> Result<Opened> {
    let bytes = read_backup(file)?;
    open_backup_with_passwords(&bytes, passwords, policy)
        .with_context(|| file.display().to_string())
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The key store's path on the machine.
    pub path: PathBuf,
    /// What was found there and done with it.
    pub installed: Installed,
    /// With a group: what it says of the backup's key (see [`KeyVerdict::holds`]).
    pub group: Option<KeyVerdict>,
}

/// SecureStorageBackup Restore: writes the opened backup's key store on the machine, under the
/// store's lock. The same store there already: nothing changes. A different or unreadable
/// one: refused unless `force`, which first keeps its bytes under a name nothing else has.
/// With `group`, a backup whose current key the group says is not its own (the key check
/// record, or the Run As secrets, refuse it) is refused too unless `force`, before anything is
/// written.
pub fn restore(
    machine: &Path,
    opened: &Opened,
    group: Option<&Path>,
    force: bool,
    now: SystemTime,
) -> Result<Restored> {
    let group = group
        .map(|dir| Group::load(dir)?.key_verdict(&opened.store))
        .transpose()?;
    if let Some(verdict) = &group
        && verdict.holds() == Some(false)
        && !force
    {
        bail!(
            "the backup does not hold the management group's key ({}); --force restores it anyway; nothing was written",
            verdict.reason()
        );
    }
    let path = keystore_path(machine);
    let installed = opsmgr_securestorage::keystore::install(&opened.store, &path, force, now)
        .map_err(|e| match e {
            // The library says what differs; the tool says how to go on.
            opsmgr_securestorage::Error::KeyStoreDiffers { .. } => {
                anyhow::anyhow!("{e} (--force replaces it, keeping the old store beside it)")
            }
            opsmgr_securestorage::Error::KeyStoreUnreadable { .. } => {
                anyhow::anyhow!("{e} (--force moves it aside, keeping its bytes, and restores)")
            }
            e => e.into(),
        })?;
    Ok(Restored {
        path,
        installed,
        group,
    })
}

/// What [`verify`] found: a backup's header and contents, and with a machine or a group,
/// whether it holds their key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    /// The backup file.
    pub file: String,
    /// Its format version.
    pub version: u16,
    /// Its key-derivation parameters.
    pub kdf: String,
    /// Whether they are below what the current writer uses (`Upgrade` rewrites it).
    pub below_current_parameters: bool,
    /// Every key id it holds.
    pub keys: Vec<String>,
    /// Its current key.
    pub current: String,
    /// The machine's current key, when a machine was given.
    pub machine_current: Option<String>,
    /// Whether the backup holds the machine's current key.
    pub holds_machine_key: Option<bool>,
    /// The management group, when one was given.
    pub management_group: Option<String>,
    /// Whether its current key is the group's (`None` with a group: nothing says).
    pub holds_group_key: Option<bool>,
    /// Why, in words (with a group).
    pub group_reason: Option<String>,
    /// A custody backup's threshold.
    pub threshold: Option<usize>,
    /// A custody backup's custodians.
    pub custodians: Vec<String>,
    /// The custodians whose passwords opened it.
    pub custodians_opened: Vec<String>,
    /// How many key derivations opening it cost.
    pub derivations: usize,
    /// The recovery fingerprint.
    pub recovery_fingerprint: String,
}

/// SecureStorageBackup Verify: what the opened backup holds and, with `machine_store` (a
/// machine's key store) or `group`, whether it holds their key.
pub fn verify(
    file: &Path,
    opened: &Opened,
    machine_store: Option<&KeyStore>,
    group: Option<&Path>,
) -> Result<Verified> {
    let (store, info) = (&opened.store, &opened.info);
    let group = group.map(Group::load).transpose()?;
    let verdict = group.as_ref().map(|g| g.key_verdict(store)).transpose()?;
    Ok(Verified {
        file: file.display().to_string(),
        version: info.version,
        kdf: info.kdf.to_string(),
        below_current_parameters: !info.kdf.below(&KdfParams::DEFAULT).is_empty(),
        keys: store.keys().iter().map(|k| k.id().to_string()).collect(),
        current: store.current().id().to_string(),
        machine_current: machine_store.map(|m| m.current().id().to_string()),
        holds_machine_key: machine_store.map(|m| store.contains(m.current().id())),
        management_group: group.map(|g| g.inventory.management_group),
        holds_group_key: verdict.as_ref().and_then(KeyVerdict::holds),
        group_reason: verdict.as_ref().map(KeyVerdict::reason),
        threshold: info.custody.as_ref().map(|c| c.threshold),
        custodians: info
            .custody
            .as_ref()
            .map_or_else(Vec::new, |c| c.labels.clone()),
        custodians_opened: opened.custodians.clone(),
        derivations: opened.derivations,
        recovery_fingerprint: recovery_fingerprint(store),
    })
}

/// What Upgrade would do with a backup, decided from its header alone (before any password
/// is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradePlan {
    /// The newest version of its kind (single password or custody) with the current
    /// parameters: nothing to do.
    AlreadyCurrent,
    /// Rewriting would lower its cost: these parameters are above the current writer's.
    WouldLower(Vec<&'static str>),
    /// Rewrite it, as this version of its kind with the current parameters.
    Rewrite {
        /// The version it would be written as.
        to_version: u16,
    },
}

/// Upgrade's decision for a backup whose header is `info`.
pub fn upgrade_plan(info: &BackupInfo) -> UpgradePlan {
    let lowered = KdfParams::DEFAULT.below(&info.kdf);
    if !lowered.is_empty() {
        return UpgradePlan::WouldLower(lowered);
    }
    let newest = if info.custody.is_some() {
        CUSTODY_VERSION
    } else {
        CURRENT_VERSION
    };
    if info.version == newest && info.kdf == KdfParams::DEFAULT {
        UpgradePlan::AlreadyCurrent
    } else {
        UpgradePlan::Rewrite { to_version: newest }
    }
}

/// What [`new_key`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewKey {
    /// The machine's host name.
    pub machine: String,
    /// The new key, now the group's (the key check record names it).
    pub key: String,
    /// Whether the machine's older keys were kept beside the new one.
    pub kept_old_keys: bool,
    /// The Run As accounts whose secrets the new key cannot open: to be entered again.
    pub reenter: Vec<String>,
    /// The group's previous state (its key check record among it).
    pub history: String,
}

/// ManagementServerConfigTool's CREATE_NEWKEY recovery: a new group key on a server of the
/// group whose key is lost (no backup exists). Refused when the machine holds the group's key
/// (the key check record opens with it, or every secret does); and unless `force`, when the
/// group has a key (a record, or secrets) the machine does not hold, and when nothing can say
/// (no record, no secrets, and a key store there): replacing the group's key makes every
/// backup of it stale, which only the lost-key recovery may do. A machine folder that does
/// not exist is refused, never made. Older keys stay in the store, the group's state is
/// kept in its history first, nothing sealed is deleted, and the new key's record replaces
/// the old one.
pub fn new_key(
    target: &super::GroupMachine<'_>,
    force: bool,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<NewKey> {
    let (_group_lock, group) = Group::load_locked(target.group)?;
    let host = machine_host(target.machine, target.host)?;
    if !group.inventory.servers.iter().any(|s| s.name == host) {
        bail!(
            "{host} is not a server of management group {}",
            group.inventory.management_group
        );
    }
    if !target.machine.is_dir() {
        bail!(
            "{} is not a machine folder (it does not exist); nothing was changed",
            target.machine.display()
        );
    }
    let path = keystore_path(target.machine);
    // Read, rotate and write under the store's lock: a restore cannot slip in between.
    let lock = KeyStoreLock::take(&path)?;
    // The group has a key (a record, or secrets) that this machine does not hold: replacing
    // it makes every backup of it stale, which only the lost-key recovery may do, on request.
    let evidence = if group.key_record()?.is_some() {
        Some("its key check record")
    } else if group.runas.secrets.is_empty() {
        None
    } else {
        Some("its Run As secrets")
    };
    let refuse_unless_forced = |why: &str| -> Result<()> {
        match evidence {
            Some(evidence) if !force => bail!(
                "management group {} has a key ({evidence}), and {host} {why}: NewKey would replace the group's key and make every backup of it stale. If the key is truly lost (no backup anywhere), --force makes a new one; else restore the group's backup on {host} (om-securestoragebackup Restore FILE); nothing was changed",
                group.inventory.management_group
            ),
            _ => Ok(()),
        }
    };
    let (store, kept) = if path.exists() {
        let mut store = KeyStore::load(&path)?;
        let verdict = group.key_verdict(&store)?;
        if verdict.secrets > 0 && verdict.unopenable.is_empty() {
            bail!(
                "{host} opens every Run As secret ({}): it holds the key they were sealed with, so a new key is not needed, and would make every backup stale; nothing was changed",
                verdict.secrets
            );
        }
        match verdict.has_group_key() {
            Some(true) => bail!(
                "{host} holds the group's key already ({}): a new key is not needed, and would make every backup stale; nothing was changed",
                verdict.reason()
            ),
            None if !force => bail!(
                "{host} has a key store, and nothing says whether its key is the group's (the group has no key check record and no Run As secrets): a new key would make every backup of that key stale. Run om-msconfigtool KeyCheck on the RMS to record the group's key; if this key is truly not the group's, --force makes a new one; nothing was changed"
            ),
            _ => refuse_unless_forced("holds another key")?,
        }
        store.rotate(now, rng)?;
        (store, true)
    } else {
        refuse_unless_forced("has no key store")?;
        (KeyStore::generate(now, rng)?, false)
    };
    let history = group.keep_history(now)?;
    store.save_locked(&path, &lock)?;
    drop(lock);
    group.write_key_record(&store, rng)?;
    Ok(NewKey {
        machine: host.to_string(),
        key: store.current().id().to_string(),
        kept_old_keys: kept,
        reenter: group.unopenable(&store),
        history: history.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: u16, kdf: KdfParams, custody: bool) -> BackupInfo {
        BackupInfo {
            version,
            kdf,
            salt_len: if version == CUSTODY_VERSION { 0 } else { 32 },
            custody: custody.then(|| opsmgr_securestorage::format::Custody {
                threshold: 2,
                labels: vec!["a".into(), "b".into()],
            }),
        }
    }

    /// Every case of Upgrade's decision: current of each kind, older versions, cheaper
    /// parameters, and dearer ones (never lowered).
    #[test]
    fn upgrade_never_lowers_the_cost_and_rewrites_only_what_is_behind() {
        let d = KdfParams::DEFAULT;
        let cheap = KdfParams {
            memory_kib: d.memory_kib / 8,
            ..d
        };
        let dear = KdfParams {
            passes: d.passes + 1,
            ..d
        };
        let cases = [
            (info(CURRENT_VERSION, d, false), UpgradePlan::AlreadyCurrent),
            (info(CUSTODY_VERSION, d, true), UpgradePlan::AlreadyCurrent),
            (info(2, d, true), UpgradePlan::Rewrite { to_version: 3 }),
            (
                info(CURRENT_VERSION, cheap, false),
                UpgradePlan::Rewrite { to_version: 1 },
            ),
            (
                info(CURRENT_VERSION, dear, false),
                UpgradePlan::WouldLower(vec!["passes"]),
            ),
            (info(2, dear, true), UpgradePlan::WouldLower(vec!["passes"])),
        ];
        for (header, plan) in cases {
            assert_eq!(upgrade_plan(&header), plan, "{header:?}");
        }
    }
}

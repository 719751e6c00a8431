//! The group key's jobs (`om-securestoragebackup`, `om-msconfigtool NewKey`): the key store
//! created, backed up under one password or split among custodians, and restored.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_securestorage::{
    Custodian, Installed, KdfParams, KeyStore, KeyStoreLock, Opened, RandomSource, ReadPolicy,
    keystore_path, open_backup_with_passwords, recovery_fingerprint, seal_backup, seal_custody,
    write_private,
};

use crate::group::{Group, machine_host};

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

/// SecureStorageBackup Backup (and Rekey, Upgrade): seals the machine's key store
/// (`KeyStore::load` of its `keystore_path`) into `file` without ever leaving it without a
/// good copy: written beside it as `<file>.new`, read back from the disk and opened, the
/// previous file kept as `<file>.bak`, and only then renamed over it. An existing file is
/// refused unless `overwrite`.
pub fn backup(
    store: &KeyStore,
    file: &Path,
    sealing: &Sealing<'_>,
    overwrite: bool,
    rng: &mut dyn RandomSource,
) -> Result<BackedUp> {
    if file.exists() && !overwrite {
        bail!("{} exists; use --force to replace it", file.display());
    }
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
    write_private(&new, bytes)?;
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
        write_private(&bak, &previous)?;
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
}

/// SecureStorageBackup Restore: writes the opened backup's key store on the machine, under the
/// store's lock. The same store there already: nothing changes. A different or unreadable
/// one: refused unless `force`, which first keeps its bytes under a name nothing else has.
pub fn restore(machine: &Path, opened: &Opened, force: bool, now: SystemTime) -> Result<Restored> {
    let path = keystore_path(machine);
    let installed = opsmgr_securestorage::install(&opened.store, &path, force, now)?;
    Ok(Restored { path, installed })
}

/// What [`new_key`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewKey {
    /// The machine's host name.
    pub machine: String,
    /// Whether the machine's older keys were kept beside the new one.
    pub kept_old_keys: bool,
    /// The Run As accounts whose secrets the new key cannot open: to be entered again.
    pub reenter: Vec<String>,
}

/// ManagementServerConfigTool's CREATE_NEWKEY recovery: a new group key on a server of the
/// group that cannot open its secrets (no backup exists). Older keys stay in the store, the
/// group's state is kept in its history first, and nothing sealed is deleted. Refused when the
/// machine already opens every Run As secret.
pub fn new_key(
    group_dir: &Path,
    machine: &Path,
    host: Option<&str>,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<NewKey> {
    let group = Group::load(group_dir)?;
    let host = machine_host(machine, host)?;
    if !group.inventory.servers.iter().any(|s| s.name == host) {
        bail!(
            "{host} is not a server of management group {}",
            group.inventory.management_group
        );
    }
    let path = keystore_path(machine);
    // Read, rotate and write under the store's lock: a restore cannot slip in between.
    let lock = KeyStoreLock::take(&path)?;
    let (store, kept) = if path.exists() {
        let mut store = KeyStore::load(&path)?;
        if !group.runas.secrets.is_empty() && group.unopenable(&store).is_empty() {
            bail!(
                "{host} holds the group's key already (it opens every Run As secret): a new key is not needed; nothing was changed"
            );
        }
        store.rotate(now, rng)?;
        (store, true)
    } else {
        (KeyStore::generate(now, rng)?, false)
    };
    group.keep_history(now)?;
    store.save_locked(&path, &lock)?;
    drop(lock);
    Ok(NewKey {
        machine: host.to_string(),
        kept_old_keys: kept,
        reenter: group.unopenable(&store),
    })
}

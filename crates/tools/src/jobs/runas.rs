//! The group key's checks and the Run As secrets (`om-msconfigtool KeyCheck`, `RunAs`): which
//! key is the group's is proved by the key check record (or by secrets that open), never by
//! an empty list; the secrets are added, listed, removed and resealed under a new key by one
//! job each, under the group's lock.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_model::HostName;
use opsmgr_model::inventory::ServerRole;
use opsmgr_securestorage::keystore::{KeyStore, KeyStoreLock, keystore_path};
use opsmgr_securestorage::random::RandomSource;
use serde::Serialize;

use crate::group::{Group, KeyVerdict, check_account, check_runas_name, machine_host};

/// A machine of a management group: the group's folder, the machine's folder and its host
/// name (the folder's name unless given).
#[derive(Debug, Clone, Copy)]
pub struct GroupMachine<'a> {
    /// The management group's folder.
    pub group: &'a Path,
    /// The machine's folder.
    pub machine: &'a Path,
    /// The machine's host name, when it is not the folder's name.
    pub host: Option<&'a str>,
}

/// The group, the machine's host name (a server of the group) and whether it is the RMS.
fn server_of(target: &GroupMachine<'_>) -> Result<(Group, HostName, bool)> {
    let group = Group::load(target.group)?;
    let (host, rms) = server_in(&group, target)?;
    Ok((group, host, rms))
}

/// As [`server_of`], the group read under its lock (see [`Group::load_locked`]).
fn server_of_locked(target: &GroupMachine<'_>) -> Result<(std::fs::File, Group, HostName, bool)> {
    let (lock, group) = Group::load_locked(target.group)?;
    let (host, rms) = server_in(&group, target)?;
    Ok((lock, group, host, rms))
}

/// The machine's host name, a server of `group`, and whether it is the RMS.
fn server_in(group: &Group, target: &GroupMachine<'_>) -> Result<(HostName, bool)> {
    let host = machine_host(target.machine, target.host)?;
    let Some(server) = group.inventory.servers.iter().find(|s| s.name == host) else {
        bail!(
            "{host} is not a server of management group {}",
            group.inventory.management_group
        );
    };
    let rms = server.role == ServerRole::Rms;
    Ok((host, rms))
}

/// The machine's key store, which must exist.
fn load_store(machine: &Path, host: &HostName) -> Result<KeyStore> {
    let path = keystore_path(machine);
    if !path.exists() {
        bail!(
            "{host} has no key store ({}): restore the RMS key backup on it first (om-securestoragebackup --machine {} Restore FILE)",
            path.display(),
            machine.display()
        );
    }
    Ok(KeyStore::load(&path)?)
}

/// SecureStorageBackup CreateKey for a group (`--group`): the first RMS's key store, made and
/// recorded as the group's key (its key check record). Refused on a machine that is not the
/// group's RMS, and in a group that has a record already (its key exists: restore its
/// backup), before anything is made.
pub fn create_group_key(
    target: &GroupMachine<'_>,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<KeyStore> {
    let (_lock, group, host, rms) = server_of_locked(target)?;
    if !rms {
        bail!(
            "{host} is not the RMS of management group {}: the group's key is created on its RMS; nothing was made",
            group.inventory.management_group
        );
    }
    if group.key_record()?.is_some() || !group.runas.secrets.is_empty() {
        bail!(
            "management group {} has a key already (its key check record or its Run As secrets): restore the group's key backup on {host} instead (om-securestoragebackup Restore FILE); nothing was made",
            group.inventory.management_group
        );
    }
    let store = super::create_key(target.machine, now, rng)?;
    group.write_key_record(&store, rng)?;
    Ok(store)
}

/// What [`key_check`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct KeyChecked {
    /// The machine's host name.
    pub machine: String,
    /// The machine's current key id.
    pub current_key: String,
    /// Whether it holds the group's key as its current one (`None`: nothing says, which only
    /// a group without a record or secrets can be, and this job never leaves it so).
    pub holds_group_key: Option<bool>,
    /// Why, in words.
    pub reason: String,
    /// Whether this run wrote the key check record (the group had none).
    pub record_written: bool,
}

/// `om-msconfigtool KeyCheck`: says whether the machine holds the group's key. A group without
/// a key check record gets one, once, from the RMS (which owns the key), or from another
/// server with `force` (the RMS is lost and this machine's key was restored from the group's
/// backup); never from a machine whose key the secrets refuse.
pub fn key_check(
    target: &GroupMachine<'_>,
    force: bool,
    rng: &mut dyn RandomSource,
) -> Result<KeyChecked> {
    let (_lock, group, host, rms) = server_of_locked(target)?;
    let store = load_store(target.machine, &host)?;
    let mut verdict = group.key_verdict(&store)?;
    let mut record_written = false;
    if verdict.record.is_none() {
        match verdict.holds() {
            Some(false) => bail!(
                "{host} does not hold the group's key ({}); no key check record was written",
                verdict.reason()
            ),
            _ if rms || force => {}
            _ => bail!(
                "the group has no key check record: run KeyCheck on the RMS, which owns the key, to record it; if the RMS is lost and {host}'s key was restored from the group's backup, run it here with --force"
            ),
        }
        group.write_key_record(&store, rng)?;
        record_written = true;
        verdict = group.key_verdict(&store)?;
    }
    Ok(KeyChecked {
        machine: host.to_string(),
        current_key: store.current().id().to_string(),
        holds_group_key: verdict.holds(),
        reason: verdict.reason(),
        record_written,
    })
}

/// Refuses unless `verdict` proves the store holds the group's current key; a group with no
/// evidence at all is let through only when `may_record` (the caller then writes the record).
fn require_group_key(host: &HostName, verdict: &KeyVerdict, may_record: bool) -> Result<()> {
    match verdict.holds() {
        Some(true) => Ok(()),
        None if may_record => Ok(()),
        Some(false) => bail!(
            "{host} does not hold the group's key ({}); nothing was changed",
            verdict.reason()
        ),
        None => bail!(
            "nothing proves {host}'s key is the group's (the group has no key check record and no Run As secrets): run om-msconfigtool KeyCheck on the RMS first; nothing was changed"
        ),
    }
}

/// What [`runas_add`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RunAsAdded {
    /// The Run As account's name.
    pub name: String,
    /// The Windows account.
    pub account: String,
    /// The key it is sealed with.
    pub key: String,
    /// Whether it replaced an entry of that name.
    pub replaced: bool,
    /// Whether the group's key check record was written first (it had none; the RMS wrote it).
    pub record_written: bool,
}

/// `om-msconfigtool RunAs add`: seals `secret` for Run As account `name` running as `account`
/// with the machine's current key, which must be the group's (a group with no record and no
/// secrets yet takes the RMS's key, and gets its record). An existing name is replaced only
/// with `replace`, the previous state kept in the group's history first.
#[allow(
    clippy::too_many_arguments,
    reason = "one job, every input typed; a struct for one call would only rename them"
)]
pub fn runas_add(
    target: &GroupMachine<'_>,
    name: &str,
    account: &str,
    secret: &[u8],
    replace: bool,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<RunAsAdded> {
    check_runas_name(name)?;
    check_account(account)?;
    if secret.is_empty() {
        bail!("the secret of '{name}' is empty; nothing was changed");
    }
    // Read under the lock: another operator's change is not lost.
    let (_lock, mut group, host, rms) = server_of_locked(target)?;
    let store = load_store(target.machine, &host)?;
    let verdict = group.key_verdict(&store)?;
    require_group_key(&host, &verdict, rms)?;
    let replaced = group.runas.secrets.iter().any(|s| s.name == name);
    if replaced && !replace {
        bail!(
            "the group has a Run As account named '{name}' already; --replace seals the new secret in its place (the old one is kept in the group's history); nothing was changed"
        );
    }
    let record_written = verdict.record.is_none();
    if record_written {
        group.write_key_record(&store, rng)?;
    }
    if replaced {
        group.keep_history(now)?;
    }
    group.put_secret(&store, name, Some(account), secret, rng)?;
    group.save_runas()?;
    Ok(RunAsAdded {
        name: name.to_owned(),
        account: account.to_owned(),
        key: store.current().id().to_string(),
        replaced,
        record_written,
    })
}

/// One Run As secret as `RunAs list` shows it: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct RunAsEntry {
    /// The Run As account's name.
    pub name: String,
    /// The Windows account, when recorded.
    pub account: Option<String>,
    /// The key it is sealed with.
    pub key: String,
    /// Whether the machine's key store opens it (when a machine was given).
    pub opens: Option<bool>,
}

/// `om-msconfigtool RunAs list`: every secret's name, account and key, and with a machine
/// whether its key store opens it.
pub fn runas_list(group: &Path, machine: Option<&GroupMachine<'_>>) -> Result<Vec<RunAsEntry>> {
    let group = Group::load(group)?;
    let store = match machine {
        Some(target) => {
            let (_, host, _) = server_of(target)?;
            Some(load_store(target.machine, &host)?)
        }
        None => None,
    };
    let unopenable = store.as_ref().map(|s| group.unopenable(s));
    group
        .runas
        .secrets
        .iter()
        .map(|s| {
            let key = s
                .key_id()
                .map_or_else(|e| format!("unreadable ({e})"), |id| id.to_string());
            Ok(RunAsEntry {
                name: s.name.clone(),
                account: s.account.clone(),
                key,
                opens: unopenable.as_ref().map(|u| !u.contains(&s.name)),
            })
        })
        .collect()
}

/// `om-msconfigtool RunAs remove`: removes the secret of `name`, the previous state kept in
/// the group's history first. Returns the history folder.
pub fn runas_remove(group_dir: &Path, name: &str, now: SystemTime) -> Result<std::path::PathBuf> {
    let (_lock, mut group) = Group::load_locked(group_dir)?;
    if !group.runas.secrets.iter().any(|s| s.name == name) {
        let names: Vec<&str> = group
            .runas
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        bail!(
            "no Run As account named '{name}' (the group's: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    }
    let history = group.keep_history(now)?;
    group.runas.secrets.retain(|s| s.name != name);
    group.save_runas()?;
    Ok(history)
}

/// What [`runas_rotate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    /// The RMS's host name.
    pub machine: String,
    /// The key that was current.
    pub old_key: String,
    /// The new current key, now the group's.
    pub new_key: String,
    /// How many secrets were sealed again under it.
    pub resealed: usize,
    /// The group's previous state.
    pub history: String,
}

/// `om-msconfigtool RunAs rotate`: on the RMS, a new group key: the key store rotated (older
/// keys kept), every secret sealed again under the new key, and a new key check record. The
/// RMS must hold the group's key and open every secret (one it cannot open is refused by name:
/// enter it again with `RunAs add --replace` first). Written store first, then the secrets,
/// then the record: a run stopped between them leaves every secret opening, and running it
/// again finishes.
pub fn runas_rotate(
    target: &GroupMachine<'_>,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<Rotated> {
    let (_lock, mut group, host, rms) = server_of_locked(target)?;
    if !rms {
        bail!(
            "{host} is not the RMS of management group {}: the group key is rotated on the RMS, which owns it; nothing was changed",
            group.inventory.management_group
        );
    }
    let path = keystore_path(target.machine);
    let store_lock = KeyStoreLock::take(&path)?;
    let mut store = load_store(target.machine, &host)?;
    let verdict = group.key_verdict(&store)?;
    if verdict.has_group_key() == Some(false) || !verdict.unopenable.is_empty() {
        bail!(
            "{host} cannot rotate the group's key ({}); enter the secrets it cannot open again with RunAs add --replace first; nothing was changed",
            verdict.reason()
        );
    }
    let old_key = store.current().id().to_string();
    let secrets: Vec<(String, Option<String>, zeroize::Zeroizing<Vec<u8>>)> = group
        .runas
        .secrets
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                s.account.clone(),
                group.open_secret(&store, &s.name)?,
            ))
        })
        .collect::<Result<_>>()?;
    let history = group.keep_history(now)?;
    store.rotate(now, rng)?;
    for (name, account, secret) in &secrets {
        group.put_secret(&store, name, account.as_deref(), secret, rng)?;
    }
    store.save_locked(&path, &store_lock)?;
    drop(store_lock);
    group.save_runas()?;
    group
        .write_key_record(&store, rng)
        .context("the key store and the secrets are rotated; run RunAs rotate again")?;
    Ok(Rotated {
        machine: host.to_string(),
        old_key,
        new_key: store.current().id().to_string(),
        resealed: secrets.len(),
        history: history.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::KeyVerdict;
    use opsmgr_securestorage::keystore::KeyCheck;

    fn verdict(record: Option<KeyCheck>, secrets: usize, unopenable: &[&str]) -> KeyVerdict {
        KeyVerdict {
            record,
            secrets,
            unopenable: unopenable.iter().map(|s| (*s).to_owned()).collect(),
            under_older_key: 0,
        }
    }

    /// Every combination of record and secrets, and what each check makes of it: nothing at
    /// all is never evidence.
    #[test]
    fn an_empty_list_of_secrets_never_proves_a_key() {
        let host = HostName::new("MGT01.prod.local").unwrap();
        let cases = [
            (verdict(None, 0, &[]), None, None),
            (verdict(None, 2, &[]), Some(true), Some(true)),
            (verdict(None, 2, &["sql"]), Some(false), Some(false)),
            (
                verdict(Some(KeyCheck::Current), 0, &[]),
                Some(true),
                Some(true),
            ),
            (
                verdict(Some(KeyCheck::Current), 2, &["sql"]),
                Some(false),
                Some(true),
            ),
            (
                verdict(Some(KeyCheck::Older), 0, &[]),
                Some(false),
                Some(true),
            ),
            (
                verdict(Some(KeyCheck::Absent), 0, &[]),
                Some(false),
                Some(false),
            ),
            (
                verdict(Some(KeyCheck::Absent), 2, &[]),
                Some(false),
                Some(false),
            ),
        ];
        for (v, holds, has) in cases {
            assert_eq!(v.holds(), holds, "{v:?}");
            assert_eq!(v.has_group_key(), has, "{v:?}");
            assert_eq!(
                require_group_key(&host, &v, false).is_ok(),
                holds == Some(true),
                "{v:?}"
            );
            // Only a group with no evidence at all lets the RMS record its key.
            assert_eq!(
                require_group_key(&host, &v, true).is_ok(),
                holds != Some(false),
                "{v:?}"
            );
        }
        let none = require_group_key(&host, &verdict(None, 0, &[]), false).unwrap_err();
        assert!(
            none.to_string()
                .starts_with("nothing proves MGT01.prod.local's key is the group's"),
            "{none}"
        );
    }
}

//! A management group's folder (`--group DIR`): the inventory as its operational database and
//! the Run As account secrets sealed with the group's encryption key. It joins two libraries
//! (model and securestorage), so it lives with the tools.
//!
//! Layout: `inventory.json`, `runas.json` (`{"secrets": [{"name", "account", "sealed"}]}`,
//! the sealed blobs in hex), `keycheck.bin` (the key check record: which key is the group's,
//! whatever secrets there are), `group.lock` (held by every change of the secrets and the
//! record), and `history/<UTC stamp>/` with copies taken before an irreversible change.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_model::HostName;
use opsmgr_model::inventory::Inventory;
use opsmgr_securestorage::keystore::{KeyCheck, KeyId, KeyStore, SealedFor};
use opsmgr_securestorage::random::RandomSource;
use serde::{Deserialize, Serialize};

/// The inventory's file in a group folder.
pub const INVENTORY_FILE: &str = "inventory.json";
/// The Run As secrets' file in a group folder.
pub const RUNAS_FILE: &str = "runas.json";
/// The key check record's file in a group folder.
pub const KEYCHECK_FILE: &str = "keycheck.bin";
/// The lock every change of the secrets or the record holds.
pub const LOCK_FILE: &str = "group.lock";
/// Where copies of the previous state are kept.
pub const HISTORY_DIR: &str = "history";
/// A key check record's size is fixed (FORMAT.md); a larger file is not one.
const MAX_KEYCHECK_BYTES: u64 = 1024;

/// One Run As account's secret, sealed with the group key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAsSecret {
    /// The Run As account's name (as the Operations console lists it).
    pub name: String,
    /// The Windows account it runs as (`DOMAIN\user` or `user@dns.domain`); absent for
    /// secrets added before accounts were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The sealed secret, hex.
    pub sealed: String,
}

impl RunAsSecret {
    /// The key the secret is sealed with, read from its header.
    pub fn key_id(&self) -> Result<KeyId> {
        let bytes = unhex(&self.sealed).with_context(|| format!("'{}': not hex", self.name))?;
        Ok(KeyStore::sealed_key_id(&bytes)?)
    }

    /// What the sealed secret is bound to besides the group: the name, and the account when
    /// one is recorded (so a blob copied to another entry, or an account edited in the file,
    /// does not open).
    fn binding(&self) -> Cow<'_, str> {
        binding(&self.name, self.account.as_deref())
    }
}

fn binding<'a>(name: &'a str, account: Option<&str>) -> Cow<'a, str> {
    match account {
        Some(account) => Cow::Owned(format!("{name}\n{account}")),
        None => Cow::Borrowed(name),
    }
}

/// Checks a Run As account's name as the tools take it: 1 to 128 characters, no control
/// characters, no spaces at either end.
pub fn check_runas_name(name: &str) -> Result<()> {
    let chars = name.chars().count();
    if !(1..=128).contains(&chars) {
        bail!("the Run As account name '{name}' has {chars} characters; 1 to 128 are allowed");
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        bail!(
            "the Run As account name {name:?} has control characters or spaces at an end; give it as the console shows it"
        );
    }
    Ok(())
}

/// Checks a Windows account as Run As accounts name them: `DOMAIN\user` (a NetBIOS domain of
/// up to 15 characters, or a DNS domain) or `user@dns.domain`; the user name at most 104
/// characters, without `" / \ [ ] : ; | = , + * ? < > @` or control characters.
pub fn check_account(account: &str) -> Result<()> {
    let bad_user = |user: &str| {
        user.is_empty()
            || user.chars().count() > 104
            || user
                .chars()
                .any(|c| c.is_control() || "\"/\\[]:;|=,+*?<>@".contains(c))
    };
    let ok = if let Some((domain, user)) = account.split_once('\\') {
        let netbios = (1..=15).contains(&domain.len())
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let dns = domain.contains('.') && HostName::new(domain).is_ok();
        (netbios || dns) && !bad_user(user)
    } else if let Some((user, domain)) = account.rsplit_once('@') {
        HostName::new(domain).is_ok() && domain.contains('.') && !bad_user(user)
    } else {
        false
    };
    if !ok {
        bail!(
            "the account {account:?} is not DOMAIN\\user or user@dns.domain (a user name of at most 104 characters, without \" / \\ [ ] : ; | = , + * ? < > @)"
        );
    }
    Ok(())
}

/// What the group folder says of a key store: the key check record's verdict and the Run As
/// secrets it opens. [`KeyVerdict::holds`] decides; an empty list of secrets is never
/// evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVerdict {
    /// What the key check record says, when the group has one.
    pub record: Option<KeyCheck>,
    /// How many Run As secrets the group has.
    pub secrets: usize,
    /// Those the store cannot open.
    pub unopenable: Vec<String>,
    /// Those that open, but were sealed with another key of the store than its current one
    /// (without a record, they do not prove the current key is the group's).
    pub under_older_key: usize,
}

impl KeyVerdict {
    /// Whether the store holds the group's key as its current key: `Some(true)` when the
    /// record opens with its current key (or, without a record, when there are secrets and
    /// every one opens and was sealed with that current key) and no secret fails;
    /// `Some(false)` when the evidence says not; `None` when there is none (no record, no
    /// secrets).
    pub fn holds(&self) -> Option<bool> {
        match self.record {
            Some(KeyCheck::Current) => Some(self.unopenable.is_empty()),
            Some(KeyCheck::Older | KeyCheck::Absent) => Some(false),
            None if self.secrets == 0 => None,
            None => Some(self.unopenable.is_empty() && self.under_older_key == 0),
        }
    }

    /// Whether the group has any evidence of its key: a record, or secrets.
    pub fn group_has_key(&self) -> bool {
        self.record.is_some() || self.secrets > 0
    }

    /// Whether the store holds the group's key at all, current or older (the record opens,
    /// or every secret does).
    pub fn has_group_key(&self) -> Option<bool> {
        match self.record {
            Some(KeyCheck::Current | KeyCheck::Older) => Some(true),
            Some(KeyCheck::Absent) => Some(false),
            None if self.secrets == 0 => None,
            None => Some(self.unopenable.is_empty()),
        }
    }

    /// Why [`KeyVerdict::holds`] says what it says, in words.
    pub fn reason(&self) -> String {
        let secrets = match (self.secrets, self.unopenable.len()) {
            (0, _) => "the group has no Run As secrets".to_owned(),
            (n, 0) if self.under_older_key > 0 => format!(
                "it opens all {n} Run As secret(s), but {} were sealed with an older key than its current one",
                self.under_older_key
            ),
            (n, 0) => format!("it opens all {n} Run As secret(s)"),
            (n, k) => format!(
                "it cannot open {k} of {n} Run As secret(s) ({})",
                self.unopenable.join(", ")
            ),
        };
        let record = match self.record {
            None => "the group has no key check record",
            Some(KeyCheck::Current) => "its current key is the one the key check record names",
            Some(KeyCheck::Older) => {
                "it holds the group's key, but a newer key made on this machine is its current one (a RunAs rotate stopped before it wrote the record leaves this: run it again on the RMS)"
            }
            Some(KeyCheck::Absent) => "it does not hold the key the key check record names",
        };
        format!("{record}; {secrets}")
    }
}

/// The group's Run As secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAs {
    /// Every secret, by the order they were added.
    pub secrets: Vec<RunAsSecret>,
}

/// A management group's folder, loaded.
#[derive(Debug, Clone)]
pub struct Group {
    /// The folder.
    pub dir: PathBuf,
    /// Servers and agents.
    pub inventory: Inventory,
    /// Sealed Run As secrets.
    pub runas: RunAs,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The host name of the machine whose folder is `machine`: `host` when given, else the
/// folder's name.
pub fn machine_host(machine: &Path, host: Option<&str>) -> Result<HostName> {
    let name = match host {
        Some(h) => h.to_owned(),
        None => machine
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("{} has no folder name; give --host", machine.display()))?,
    };
    HostName::new(name.as_str()).with_context(|| {
        format!("'{name}' is not a host name (the machine folder's name, or --host)")
    })
}

impl Group {
    /// Creates a group folder with `inventory` and no secrets; refuses an existing one.
    pub fn create(dir: &Path, inventory: Inventory) -> Result<Self> {
        if dir.join(INVENTORY_FILE).exists() {
            bail!("{} already holds a management group", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let group = Self {
            dir: dir.to_owned(),
            inventory,
            runas: RunAs::default(),
        };
        group.save_runas()?;
        group.inventory.save(&dir.join(INVENTORY_FILE))?;
        Ok(group)
    }

    /// Reads a group folder.
    pub fn load(dir: &Path) -> Result<Self> {
        let inventory = Inventory::load(&dir.join(INVENTORY_FILE))
            .with_context(|| format!("{} is not a management group folder", dir.display()))?;
        let runas_path = dir.join(RUNAS_FILE);
        let runas = match std::fs::read(&runas_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", runas_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RunAs::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", runas_path.display())),
        };
        Ok(Self {
            dir: dir.to_owned(),
            inventory,
            runas,
        })
    }

    /// Writes the inventory atomically.
    pub fn save_inventory(&self) -> Result<()> {
        Ok(self.inventory.save(&self.dir.join(INVENTORY_FILE))?)
    }

    /// Writes the Run As secrets atomically (owner-only: they are sealed, but still secrets).
    pub fn save_runas(&self) -> Result<()> {
        let mut json = serde_json::to_vec_pretty(&self.runas)?;
        json.push(b'\n');
        let path = self.dir.join(RUNAS_FILE);
        opsmgr_fsutil::write_private(&path, &json)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Seals `secret` with `store`'s current key, bound to this management group and account
    /// `name` (a blob moved to another account does not open), and adds it.
    pub fn add_secret(
        &mut self,
        store: &KeyStore,
        name: &str,
        secret: &[u8],
        rng: &mut dyn RandomSource,
    ) -> Result<()> {
        self.put_secret(store, name, None, secret, rng)?;
        self.save_runas()
    }

    /// Seals `secret` for Run As account `name` running as `account`, replacing the entry of
    /// that name when there is one; the caller saves.
    pub fn put_secret(
        &mut self,
        store: &KeyStore,
        name: &str,
        account: Option<&str>,
        secret: &[u8],
        rng: &mut dyn RandomSource,
    ) -> Result<()> {
        let owner = binding(name, account);
        let sealed = store.seal_for(secret, self.owner(&owner), rng)?;
        let entry = RunAsSecret {
            name: name.to_owned(),
            account: account.map(str::to_owned),
            sealed: hex(&sealed),
        };
        match self.runas.secrets.iter_mut().find(|s| s.name == name) {
            Some(there) => *there = entry,
            None => self.runas.secrets.push(entry),
        }
        Ok(())
    }

    /// The names of the secrets `store` cannot open.
    pub fn unopenable(&self, store: &KeyStore) -> Vec<String> {
        self.runas
            .secrets
            .iter()
            .filter(|s| self.open_entry(store, s).is_err())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Opens the secret of Run As account `name`.
    pub fn open_secret(&self, store: &KeyStore, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let s = self
            .runas
            .secrets
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("no Run As account named '{name}'"))?;
        self.open_entry(store, s)
    }

    fn open_entry(&self, store: &KeyStore, s: &RunAsSecret) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let bytes = unhex(&s.sealed).with_context(|| format!("'{}': not hex", s.name))?;
        Ok(store.open_for(&bytes, self.owner(&s.binding()))?)
    }

    /// Whose a Run As secret is: this group's account `binding` (see
    /// [`RunAsSecret::binding`]). Secrets sealed before they were bound (sealed secret
    /// version 1) still open.
    fn owner<'a>(&'a self, binding: &'a str) -> SealedFor<'a> {
        SealedFor {
            management_group: &self.inventory.management_group,
            account: binding,
        }
    }

    /// Takes the lock of the group in `dir` (`group.lock`: every change of the secrets and
    /// the record holds it, so two operators take turns; released when dropped), then reads
    /// the group: what a change reads is what no other operator changes meanwhile. A folder
    /// that holds no group is refused as [`Group::load`] refuses it, before anything is
    /// created in it.
    pub fn load_locked(dir: &Path) -> Result<(std::fs::File, Self)> {
        if !dir.join(INVENTORY_FILE).is_file() {
            Self::load(dir)?;
        }
        let path = dir.join(LOCK_FILE);
        let lock = opsmgr_fsutil::lock_exclusive(&path)
            .with_context(|| format!("locking {}", path.display()))?;
        Ok((lock, Self::load(dir)?))
    }

    /// The key check record, when the group has one (read bounded: it is 74 bytes).
    pub fn key_record(&self) -> Result<Option<Vec<u8>>> {
        let path = self.dir.join(KEYCHECK_FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            Ok(_) => {}
        }
        crate::read_bounded(&path, MAX_KEYCHECK_BYTES as usize)
            .map(Some)
            .with_context(|| format!("reading {}", path.display()))
    }

    /// Writes a new key check record from `store`'s current key (atomically): from now on
    /// that key is the group's.
    pub fn write_key_record(&self, store: &KeyStore, rng: &mut dyn RandomSource) -> Result<()> {
        let record = store.key_check(&self.inventory.management_group, rng)?;
        let path = self.dir.join(KEYCHECK_FILE);
        opsmgr_fsutil::write_private(&path, &record)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// What the group says of `store`: the record's verdict (a record that does not open with
    /// the key it names is an error naming the file) and the secrets it opens.
    pub fn key_verdict(&self, store: &KeyStore) -> Result<KeyVerdict> {
        let record = match self.key_record()? {
            Some(bytes) => Some(
                store
                    .check_key(&bytes, &self.inventory.management_group)
                    .with_context(|| self.dir.join(KEYCHECK_FILE).display().to_string())?,
            ),
            None => None,
        };
        let unopenable = self.unopenable(store);
        let current = store.current().id();
        let under_older_key = self
            .runas
            .secrets
            .iter()
            .filter(|s| !unopenable.contains(&s.name))
            .filter(|s| s.key_id().is_ok_and(|id| id != current))
            .count();
        Ok(KeyVerdict {
            record,
            secrets: self.runas.secrets.len(),
            unopenable,
            under_older_key,
        })
    }

    /// Copies the current inventory and secrets to `history/<UTC stamp>/` before a change the
    /// seed calls irreversible; returns the copy's folder.
    pub fn keep_history(&self, now: SystemTime) -> Result<PathBuf> {
        let stamp = opsmgr_fsutil::utc_stamp(now);
        let mut dir = self.dir.join(HISTORY_DIR).join(&stamp);
        let mut n = 1;
        while dir.exists() {
            dir = self.dir.join(HISTORY_DIR).join(format!("{stamp}-{n}"));
            n += 1;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in [INVENTORY_FILE, RUNAS_FILE, KEYCHECK_FILE] {
            let from = self.dir.join(name);
            if from.exists() {
                let bytes =
                    std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
                opsmgr_fsutil::write_private(&dir.join(name), &bytes)
                    .with_context(|| format!("writing {}", dir.join(name).display()))?;
            }
        }
        Ok(dir)
    }
}

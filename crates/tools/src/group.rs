//! A management group's folder (`--group DIR`): the inventory as its operational database and
//! the Run As account secrets sealed with the group's encryption key. It joins two libraries
//! (model and securestorage), so it lives with the tools.
//!
//! Layout: `inventory.json`, `runas.json` (`{"secrets": [{"name", "sealed"}]}`, the sealed
//! blobs in hex), and `history/<UTC stamp>/` with copies taken before an irreversible change.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_model::{HostName, Inventory};
use opsmgr_securestorage::{KeyStore, RandomSource, SealedFor};
use serde::{Deserialize, Serialize};

/// The inventory's file in a group folder.
pub const INVENTORY_FILE: &str = "inventory.json";
/// The Run As secrets' file in a group folder.
pub const RUNAS_FILE: &str = "runas.json";
/// Where copies of the previous state are kept.
pub const HISTORY_DIR: &str = "history";

/// One Run As account's secret, sealed with the group key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunAsSecret {
    /// The Run As account's name.
    pub name: String,
    /// The sealed secret, hex.
    pub sealed: String,
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
        let sealed = store.seal_for(secret, self.owner(name), rng)?;
        self.runas.secrets.push(RunAsSecret {
            name: name.to_owned(),
            sealed: hex(&sealed),
        });
        self.save_runas()
    }

    /// The names of the secrets `store` cannot open.
    pub fn unopenable(&self, store: &KeyStore) -> Vec<String> {
        self.runas
            .secrets
            .iter()
            .filter(|s| {
                unhex(&s.sealed).is_none_or(|b| store.open_for(&b, self.owner(&s.name)).is_err())
            })
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
        let bytes = unhex(&s.sealed).with_context(|| format!("'{name}': not hex"))?;
        Ok(store.open_for(&bytes, self.owner(name))?)
    }

    /// Whose a Run As secret is: this group's account `name`. Secrets sealed before they were
    /// bound (sealed secret version 1) still open.
    fn owner<'a>(&'a self, name: &'a str) -> SealedFor<'a> {
        SealedFor {
            management_group: &self.inventory.management_group,
            account: name,
        }
    }

    /// Copies the current inventory and secrets to `history/<UTC stamp>/` before a change the
    /// seed calls irreversible; returns the copy's folder.
    pub fn keep_history(&self, now: SystemTime) -> Result<PathBuf> {
        let stamp = humantime::format_rfc3339_seconds(now)
            .to_string()
            .replace([':', '-'], "");
        let mut dir = self.dir.join(HISTORY_DIR).join(&stamp);
        let mut n = 1;
        while dir.exists() {
            dir = self.dir.join(HISTORY_DIR).join(format!("{stamp}-{n}"));
            n += 1;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in [INVENTORY_FILE, RUNAS_FILE] {
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

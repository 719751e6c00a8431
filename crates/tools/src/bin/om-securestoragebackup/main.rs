//! `om-securestoragebackup`: creates, backs up, restores and verifies the management
//! group's encryption key (SecureStorageBackup).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use opsmgr_securestorage::{
    BackupInfo, CURRENT_VERSION, Error, Installed, KdfParams, KeyStore, OsRandom, ReadPolicy,
    check_password, inspect_backup, install, keystore_path, open_backup, open_backup_with,
    seal_backup, write_private,
};
use opsmgr_tools::{
    PasswordArgs, PasswordSource, exit, machine_dir, password_weakness, read_password, windows_args,
};
use serde::Serialize;

/// Exit codes beyond the shared ones.
mod code {
    /// The password is wrong or the file was tampered with.
    pub(crate) const WRONG_PASSWORD: u8 = 3;
    /// The file is not a backup, or is corrupt or truncated.
    pub(crate) const CORRUPT: u8 = 4;
    /// The backup's parameters are out of policy, or its version is unknown.
    pub(crate) const POLICY: u8 = 5;
}

/// Backs up and restores the management group's encryption key (SecureStorageBackup).
///
/// Verbs are case-insensitive, as on Windows: `Backup FILE`, `Restore FILE`. Passwords are
/// asked twice without echo, or read from --password-file, --password-stdin or
/// --password-env; never from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "om-securestoragebackup",
    version,
    after_help = "Exit codes: 0 success, 1 verify: the backup does not hold the machine's current key, \
2 bad usage or refused (nothing written), 3 wrong password or tampered file, \
4 not a backup or corrupt or truncated, 5 parameters out of policy (including more key-derivation \
work than --max-kdf-memory allows) or a newer format version."
)]
struct Cli {
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(long, global = true, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Accept a backup whose key derivation needs up to MIB MiB of memory and 4 × MIB
    /// MiB·passes [default: 1024]; only for a file you trust.
    #[arg(long, global = true, value_name = "MIB")]
    max_kdf_memory: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the group's key store on a machine that has none (setup on the first RMS).
    Createkey,
    /// Seals the machine's key store into FILE with a password.
    Backup {
        /// The backup file.
        file: PathBuf,
        /// Overwrite FILE if it exists (the previous file is kept as FILE.bak).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Restores the key store from FILE onto the machine.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace a different key store (the old one is saved beside it first).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Checks the password and the file without restoring; with --machine (or
    /// $OPSMGR_MACHINE), also that it holds the key that machine uses now.
    Verify {
        /// The backup file.
        file: PathBuf,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Changes the backup's password (the previous file is kept as FILE.bak).
    Rekey {
        /// The backup file.
        file: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Read the new password from the first line of this file.
        #[arg(long, value_name = "FILE", conflicts_with = "new_password_env")]
        new_password_file: Option<PathBuf>,
        /// Read the new password from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_password_env: Option<String>,
    },
    /// Rewrites an older or weaker backup in the current format version and parameters; never
    /// lowers the cost (the previous file is kept as FILE.bak).
    Upgrade {
        /// The backup file.
        file: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

const VERBS: [&str; 6] = [
    "createkey",
    "backup",
    "restore",
    "verify",
    "rekey",
    "upgrade",
];

/// The Windows tool's verbs are case-insensitive (`Backup`, `RESTORE`): lower-case the first
/// argument that is one.
fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut done = false;
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i > 0 && !done && VERBS.iter().any(|v| v.eq_ignore_ascii_case(&a)) {
                done = true;
                a.to_ascii_lowercase()
            } else {
                a
            }
        })
        .collect()
}

fn main() -> ExitCode {
    opsmgr_tools::main_with_codes("om-securestoragebackup", run, |e| {
        match e.downcast_ref::<Error>().map(Error::inner) {
            Some(Error::WrongPasswordOrTampered) => code::WRONG_PASSWORD,
            Some(Error::Corrupt { .. }) => code::CORRUPT,
            Some(
                Error::OutOfPolicy { .. }
                | Error::WorkOutOfPolicy { .. }
                | Error::UnsupportedVersion(_),
            ) => code::POLICY,
            _ => exit::INPUT,
        }
    })
}

#[allow(clippy::print_stderr, reason = "warnings go to stderr")]
fn warn(message: &str) {
    eprintln!("om-securestoragebackup: warning: {message}");
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(normalize_args(windows_args(std::env::args(), &[])));
    let explicit_machine =
        cli.machine.is_some() || std::env::var_os(opsmgr_tools::MACHINE_ENV).is_some();
    let machine = machine_dir(cli.machine)?;
    let store_path = keystore_path(&machine);
    let policy = cli
        .max_kdf_memory
        .map_or(ReadPolicy::DEFAULT, ReadPolicy::max_memory_mib);
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Createkey => {
            let store = KeyStore::generate(SystemTime::now(), &mut OsRandom)?;
            store.save_new(&store_path)?;
            writeln!(
                out,
                "Created the management group key {} in {}",
                store.current().id(),
                store_path.display()
            )?;
        }
        Command::Backup {
            file,
            force,
            password,
        } => {
            let store = KeyStore::load(&store_path)?;
            if file.exists() && !force {
                bail!("{} exists; use --force to replace it", file.display());
            }
            let password = new_password(&password.source(), "Password for the backup: ")?;
            let bytes = seal_backup(&store, &password, &mut OsRandom)?;
            let kept = replace_checked(&file, &bytes, &store, &password)?;
            writeln!(
                out,
                "Backed up {} key(s), current {}, to {}",
                store.keys().len(),
                store.current().id(),
                file.display()
            )?;
            say_kept(&mut out, kept.as_deref())?;
        }
        Command::Restore {
            file,
            force,
            password,
        } => {
            let (store, _) = open(&file, &password, &policy)?;
            restore(&store, &store_path, force, &mut out)?;
        }
        Command::Verify {
            file,
            json,
            password,
        } => {
            let (store, info) = open(&file, &password, &policy)?;
            let machine_key =
                if explicit_machine {
                    Some(KeyStore::load(&store_path).with_context(|| {
                        format!("reading the key store of {}", machine.display())
                    })?)
                } else {
                    None
                };
            let below = info.kdf.below(&KdfParams::DEFAULT);
            if !below.is_empty() {
                warn(&format!(
                    "{} uses {}, below the current writer's {} in {}; `Upgrade` rewrites it",
                    file.display(),
                    info.kdf,
                    KdfParams::DEFAULT,
                    below.join(" and ")
                ));
            }
            let holds = machine_key
                .as_ref()
                .map(|m| store.contains(m.current().id()));
            let report = VerifyReport {
                file: file.display().to_string(),
                version: info.version,
                kdf: info.kdf.to_string(),
                below_current_parameters: !info.kdf.below(&KdfParams::DEFAULT).is_empty(),
                keys: store.keys().iter().map(|k| k.id().to_string()).collect(),
                current: store.current().id().to_string(),
                machine_current: machine_key.as_ref().map(|m| m.current().id().to_string()),
                holds_machine_key: holds,
            };
            if json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{}: backup format version {}, {}; password correct, contents intact; {} key(s), current {}",
                    report.file,
                    report.version,
                    report.kdf,
                    report.keys.len(),
                    report.current
                )?;
                match (&report.machine_current, holds) {
                    (Some(id), Some(true)) => writeln!(
                        out,
                        "It holds the key this machine uses now ({id}): a restore will work."
                    )?,
                    (Some(id), _) => writeln!(
                        out,
                        "It does NOT hold the key this machine uses now ({id})."
                    )?,
                    _ => {}
                }
            }
            if holds == Some(false) {
                return Ok(ExitCode::from(exit::NO));
            }
        }
        Command::Rekey {
            file,
            password,
            new_password_file,
            new_password_env,
        } => {
            let (store, _) = open(&file, &password, &policy)?;
            let source = match (new_password_file, new_password_env) {
                (Some(f), _) => PasswordSource::File(f),
                (_, Some(v)) => PasswordSource::Env(v),
                _ => PasswordSource::Prompt,
            };
            let new = new_password(&source, "New password for the backup: ")?;
            let kept = replace_checked(
                &file,
                &seal_backup(&store, &new, &mut OsRandom)?,
                &store,
                &new,
            )?;
            writeln!(out, "Changed the password of {}", file.display())?;
            say_kept(&mut out, kept.as_deref())?;
        }
        Command::Upgrade { file, password } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // Never weaker: decided from the header, before asking for the password.
            let header = opened_info(&file, inspect_backup(&bytes))?;
            let lowered = KdfParams::DEFAULT.below(&header.kdf);
            if !lowered.is_empty() {
                bail!(
                    "{} uses {}, above the current writer's {} in {}: rewriting would lower its cost; unchanged",
                    file.display(),
                    header.kdf,
                    KdfParams::DEFAULT,
                    lowered.join(" and ")
                );
            }
            let password = read_password(&password.source(), "Password for the backup: ", false)?;
            let (store, info) = opened(&file, open_backup_with(&bytes, &password, &policy))?;
            if info.version == CURRENT_VERSION && info.kdf == KdfParams::DEFAULT {
                writeln!(
                    out,
                    "{} is already format version {CURRENT_VERSION} with the current parameters; unchanged",
                    file.display()
                )?;
            } else {
                let bytes = seal_backup(&store, &password, &mut OsRandom)?;
                let kept = replace_checked(&file, &bytes, &store, &password)?;
                writeln!(
                    out,
                    "Rewrote {} from format version {} ({}) to {CURRENT_VERSION} ({})",
                    file.display(),
                    info.version,
                    info.kdf,
                    KdfParams::DEFAULT
                )?;
                say_kept(&mut out, kept.as_deref())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A password for a new backup: asked twice, at least 8 characters, a weak one warned about.
fn new_password(source: &PasswordSource, prompt: &str) -> Result<zeroize::Zeroizing<String>> {
    let password = read_password(source, prompt, true)?;
    check_password(&password)?;
    if let Some(why) = password_weakness(&password) {
        warn(&format!("this password is weak: {why}"));
    }
    Ok(password)
}

#[derive(Serialize)]
struct VerifyReport {
    file: String,
    version: u16,
    kdf: String,
    keys: Vec<String>,
    current: String,
    machine_current: Option<String>,
    holds_machine_key: Option<bool>,
    below_current_parameters: bool,
}

fn open(
    file: &Path,
    password: &PasswordArgs,
    policy: &ReadPolicy,
) -> Result<(KeyStore, BackupInfo)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let password = read_password(&password.source(), "Password for the backup: ", false)?;
    opened(file, open_backup_with(&bytes, &password, policy))
}

/// Replaces (or creates) the backup `file` with `bytes` without ever being left without a
/// good copy: the new bytes go to `<file>.new` beside it, are read back from the disk and
/// opened with `password` (they must hold `store`), the previous file is copied to
/// `<file>.bak`, and only then is the new one renamed over it. Returns the `.bak` path when a
/// previous file was kept.
fn replace_checked(
    file: &Path,
    bytes: &[u8],
    store: &KeyStore,
    password: &str,
) -> Result<Option<PathBuf>> {
    let beside = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let new = beside(".new");
    write_private(&new, bytes)?;
    let checked = std::fs::read(&new)
        .with_context(|| format!("reading back {}", new.display()))
        .and_then(|back| {
            let (opened, _) = open_backup(&back, password)
                .with_context(|| format!("opening {} as written", new.display()))?;
            if !opened.same_as(store) {
                bail!("{} as written does not hold the key store", new.display());
            }
            Ok(())
        });
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&new);
        return Err(e.context(format!("{} unchanged", file.display())));
    }
    let kept = match std::fs::read(file) {
        Ok(previous) => {
            let bak = beside(".bak");
            write_private(&bak, &previous)?;
            Some(bak)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", file.display()))),
    };
    std::fs::rename(&new, file)
        .with_context(|| format!("renaming {} to {}", new.display(), file.display()))?;
    Ok(kept)
}

fn say_kept(out: &mut impl Write, kept: Option<&Path>) -> Result<()> {
    if let Some(bak) = kept {
        writeln!(out, "The previous file is kept as {}", bak.display())?;
    }
    Ok(())
}

/// A backup header's reading, its error about the file.
fn opened_info(
    file: &Path,
    result: opsmgr_securestorage::Result<BackupInfo>,
) -> Result<BackupInfo> {
    result.map_err(|e| anyhow::Error::new(e).context(file.display().to_string()))
}

/// A backup's opening, its error about the file, with the way out of a work refusal.
fn opened(
    file: &Path,
    result: opsmgr_securestorage::Result<(KeyStore, BackupInfo)>,
) -> Result<(KeyStore, BackupInfo)> {
    result.map_err(|e| {
        if let Error::WorkOutOfPolicy {
            memory_kib, passes, ..
        } = e
        {
            let kib = u64::from(memory_kib);
            let mib = kib
                .max((kib * u64::from(passes)).div_ceil(4))
                .div_ceil(1024);
            warn(&format!(
                "if you trust {}, --max-kdf-memory {mib} accepts it",
                file.display()
            ));
        }
        anyhow::Error::new(e).context(file.display().to_string())
    })
}

fn restore(store: &KeyStore, path: &Path, force: bool, out: &mut impl Write) -> Result<()> {
    match install(store, path, force, SystemTime::now())? {
        Installed::Unchanged => {
            writeln!(
                out,
                "The machine already holds these keys (current {}); nothing changed",
                store.current().id()
            )?;
            return Ok(());
        }
        Installed::ReplacedReadable { saved, missing } => {
            writeln!(out, "Saved the replaced key store as {}", saved.display())?;
            if !missing.is_empty() {
                let ids: Vec<String> = missing.iter().map(ToString::to_string).collect();
                warn(&format!(
                    "the replaced key store held {} key(s) the backup does not: {}; secrets they sealed will not open here (their keys are kept in {})",
                    missing.len(),
                    ids.join(", "),
                    saved.display()
                ));
            }
        }
        Installed::ReplacedUnreadable { saved, reason } => {
            warn(&format!(
                "the key store could not be read ({reason}); its bytes are kept unchanged in {}",
                saved.display()
            ));
            writeln!(out, "Saved the replaced key store as {}", saved.display())?;
        }
        Installed::New => {}
    }
    writeln!(
        out,
        "Restored {} key(s), current {}, to {}",
        store.keys().len(),
        store.current().id(),
        path.display()
    )?;
    Ok(())
}

//! `om-securestoragebackup`: creates, backs up, restores and verifies the management
//! group's encryption key (SecureStorageBackup).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use opsmgr_securestorage::{
    BackupInfo, CURRENT_VERSION, Custodian, Error, Installed, KdfParams, KeyStore, Opened,
    OsRandom, ReadPolicy, check_password, inspect_backup, keystore_path, open_backup_with,
    open_backup_with_passwords, recovery_fingerprint,
};
use opsmgr_tools::{
    PasswordArgs, PasswordSource, exit, jobs, machine_dir, password_weakness, read_password,
    windows_args_with_verbs,
};
use serde::Serialize;

/// Exit codes beyond the shared ones.
mod code {
    /// The password is wrong or the file was tampered with (for a custody backup: fewer
    /// custodians' passwords opened than it needs).
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
2 bad usage or refused (nothing written), 3 wrong password or tampered file (custody backup: fewer \
than K custodians' passwords opened), 4 not a backup or corrupt or truncated, 5 parameters out of policy (including more key-derivation \
work than --max-kdf-memory allows) or a newer format version."
)]
struct Cli {
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, global = true, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Accept a backup whose key derivation needs up to MIB MiB of memory and 4 × MIB
    /// MiB·passes [default: 1024]; only for a file you trust.
    #[arg(long, global = true, value_name = "MIB")]
    max_kdf_memory: Option<u32>,
    #[command(subcommand)]
    command: Command,
}

/// Password switches that may repeat: a custody backup takes one password per custodian.
#[derive(Debug, Clone, Default, clap::Args)]
struct Passwords {
    /// Read a password from the first line of this file. Repeat it for a custody backup:
    /// Backup takes one per custodian, in order; Restore and Verify any K, in any order.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE", conflicts_with_all = ["password_stdin", "password_env"])]
    password_file: Vec<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password_env")]
    password_stdin: bool,
    /// Read a password from this environment variable (repeatable, as --password-file).
    #[arg(long, value_name = "VAR")]
    password_env: Vec<String>,
}

impl Passwords {
    /// The sources given, in order; none means the prompt.
    fn sources(&self) -> Vec<PasswordSource> {
        let mut sources: Vec<PasswordSource> = self
            .password_file
            .iter()
            .cloned()
            .map(PasswordSource::File)
            .collect();
        if self.password_stdin {
            sources.push(PasswordSource::Stdin);
        }
        sources.extend(self.password_env.iter().cloned().map(PasswordSource::Env));
        sources
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the group's key store on a machine that has none (setup on the first RMS).
    Createkey,
    /// Seals the machine's key store into FILE with a password, or splits it among
    /// custodians (--custodians N --threshold K), each with their own password.
    Backup {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        /// Overwrite FILE if it exists (the previous file is kept as FILE.bak).
        #[arg(long)]
        force: bool,
        /// Split the backup among N custodians (2 to 16), any --threshold of whom restore it.
        #[arg(long, value_name = "N", requires = "threshold", value_parser = clap::value_parser!(u8).range(2..=16))]
        custodians: Option<u8>,
        /// How many custodians a restore needs (2 to N).
        #[arg(long, value_name = "K", requires = "custodians", value_parser = clap::value_parser!(u8).range(2..=16))]
        threshold: Option<u8>,
        /// A custodian's label, as restores name them; once per custodian, in order
        /// [default: custodian 1, custodian 2, ...].
        #[arg(long = "label", value_name = "LABEL", requires = "custodians")]
        labels: Vec<String>,
        #[command(flatten)]
        password: Passwords,
    },
    /// Restores the key store from FILE onto the machine.
    Restore {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        /// Replace a different key store (the old one is saved beside it first).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        password: Passwords,
    },
    /// Checks the password and the file without restoring; with --machine (or
    /// $OPSMGR_MACHINE), also that it holds the key that machine uses now.
    Verify {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        password: Passwords,
    },
    /// Changes the backup's password (the previous file is kept as FILE.bak).
    Rekey {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Read the new password from the first line of this file.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE", conflicts_with = "new_password_env")]
        new_password_file: Option<PathBuf>,
        /// Read the new password from this environment variable.
        #[arg(long, value_name = "VAR")]
        new_password_env: Option<String>,
    },
    /// Rewrites an older or weaker backup in the current format version and parameters; never
    /// lowers the cost (the previous file is kept as FILE.bak).
    Upgrade {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
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

fn main() -> ExitCode {
    opsmgr_tools::main_with_codes("om-securestoragebackup", run, |e| {
        match e.downcast_ref::<Error>().map(Error::inner) {
            Some(Error::WrongPasswordOrTampered | Error::NotEnoughCustodians { .. }) => {
                code::WRONG_PASSWORD
            }
            Some(Error::Corrupt { .. } | Error::CustodyShape { .. }) => code::CORRUPT,
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
    let cli = Cli::parse_from(windows_args_with_verbs(std::env::args(), &[], &VERBS));
    let explicit_machine =
        cli.machine.is_some() || std::env::var_os(opsmgr_tools::MACHINE_ENV).is_some();
    let machine = machine_dir(cli.machine)?;
    let store_path = keystore_path(&machine);
    let policy = cli
        .max_kdf_memory
        .map_or(ReadPolicy::DEFAULT, ReadPolicy::max_memory_mib);
    let mut out = opsmgr_tools::stdout();
    match cli.command {
        Command::Createkey => {
            let store = jobs::create_key(&machine, SystemTime::now(), &mut OsRandom)?;
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
            custodians,
            threshold,
            labels,
            password,
        } => {
            let store = KeyStore::load(&store_path)?;
            if file.exists() && !force {
                bail!("{} exists; use --force to replace it", file.display());
            }
            let sources = password.sources();
            let done = match (custodians, threshold) {
                (Some(n), Some(k)) => {
                    let (n, k) = (usize::from(n), usize::from(k));
                    if k > n {
                        bail!("--threshold {k} is more than --custodians {n}");
                    }
                    let labels = match labels.len() {
                        0 => (1..=n).map(|i| format!("custodian {i}")).collect(),
                        given if given == n => labels,
                        given => bail!("{given} --label given for {n} custodians"),
                    };
                    let sources = match sources.len() {
                        0 => vec![PasswordSource::Prompt; n],
                        given if given == n && !password.password_stdin => sources,
                        _ => bail!(
                            "a custody backup takes one --password-file or --password-env per custodian ({n}), in order, or asks each custodian at the prompt"
                        ),
                    };
                    let mut passwords = Vec::with_capacity(n);
                    for (label, source) in labels.iter().zip(&sources) {
                        passwords.push(new_password(
                            source,
                            &format!("Password of custodian '{label}': "),
                        )?);
                    }
                    let custodians: Vec<Custodian<'_>> = labels
                        .iter()
                        .zip(&passwords)
                        .map(|(label, password)| Custodian {
                            label,
                            password: password.as_str(),
                        })
                        .collect();
                    let sealing = jobs::Sealing::Custody {
                        custodians: &custodians,
                        threshold: k,
                    };
                    let done = jobs::backup(&store, &file, &sealing, force, &mut OsRandom)?;
                    let split = format!(" for any {k} of {n} custodians ({})", labels.join(", "));
                    (done, split)
                }
                _ => {
                    if sources.len() > 1 {
                        bail!(
                            "a single-password backup takes one password; --custodians N --threshold K splits it among custodians"
                        );
                    }
                    let source = sources.into_iter().next().unwrap_or(PasswordSource::Prompt);
                    let password = new_password(&source, "Password for the backup: ")?;
                    let sealing = jobs::Sealing::Password(&password);
                    let done = jobs::backup(&store, &file, &sealing, force, &mut OsRandom)?;
                    (done, String::new())
                }
            };
            let (done, split) = done;
            writeln!(
                out,
                "Backed up {} key(s), current {}, to {}{split}",
                done.keys,
                done.current,
                file.display()
            )?;
            say_fingerprint(&mut out, &done.fingerprint)?;
            say_kept(&mut out, done.kept.as_deref())?;
        }
        Command::Restore {
            file,
            force,
            password,
        } => {
            let opened = open_any(&file, &password, &policy)?;
            say_custodians(&mut out, &opened)?;
            let done = jobs::restore(&machine, &opened, force, SystemTime::now())?;
            say_restored(&done, &opened.store, &mut out)?;
            say_fingerprint(&mut out, &recovery_fingerprint(&opened.store))?;
        }
        Command::Verify {
            file,
            json,
            password,
        } => {
            let opened = open_any(&file, &password, &policy)?;
            let (store, info) = (&opened.store, &opened.info);
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
                threshold: info.custody.as_ref().map(|c| c.threshold),
                custodians: info
                    .custody
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.labels.clone()),
                custodians_opened: opened.custodians.clone(),
                recovery_fingerprint: recovery_fingerprint(store),
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
                say_custodians(&mut out, &opened)?;
                say_fingerprint(&mut out, &report.recovery_fingerprint)?;
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
            let (store, _) = open_single(&file, &password, &policy)?;
            let source = match (new_password_file, new_password_env) {
                (Some(f), _) => PasswordSource::File(f),
                (_, Some(v)) => PasswordSource::Env(v),
                _ => PasswordSource::Prompt,
            };
            let new = new_password(&source, "New password for the backup: ")?;
            let sealing = jobs::Sealing::Password(&new);
            let done = jobs::backup(&store, &file, &sealing, true, &mut OsRandom)?;
            writeln!(out, "Changed the password of {}", file.display())?;
            say_kept(&mut out, done.kept.as_deref())?;
        }
        Command::Upgrade { file, password } => {
            let bytes = jobs::read_backup(&file)?;
            // Never weaker: decided from the header, before asking for the password.
            let header = opened(&file, inspect_backup(&bytes))?;
            refuse_custody(&file, &header, "Upgrade")?;
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
                let sealing = jobs::Sealing::Password(&password);
                let done = jobs::backup(&store, &file, &sealing, true, &mut OsRandom)?;
                writeln!(
                    out,
                    "Rewrote {} from format version {} ({}) to {CURRENT_VERSION} ({})",
                    file.display(),
                    info.version,
                    info.kdf,
                    KdfParams::DEFAULT
                )?;
                say_kept(&mut out, done.kept.as_deref())?;
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
    threshold: Option<usize>,
    custodians: Vec<String>,
    custodians_opened: Vec<String>,
    recovery_fingerprint: String,
}

/// Opens a single-password backup for a verb that rewrites it with one password.
fn open_single(
    file: &Path,
    password: &PasswordArgs,
    policy: &ReadPolicy,
) -> Result<(KeyStore, BackupInfo)> {
    let bytes = jobs::read_backup(file)?;
    refuse_custody(file, &opened(file, inspect_backup(&bytes))?, "Rekey")?;
    let password = read_password(&password.source(), "Password for the backup: ", false)?;
    opened(file, open_backup_with(&bytes, &password, policy))
}

fn refuse_custody(file: &Path, info: &BackupInfo, verb: &str) -> Result<()> {
    if let Some(c) = &info.custody {
        bail!(
            "{} is a custody backup (any {} of {} custodians): {verb} does not rewrite one; make a new one with Backup --custodians; unchanged",
            file.display(),
            c.threshold,
            c.labels.len()
        );
    }
    Ok(())
}

/// Opens a backup of any version: with the passwords given (a custody backup takes any K,
/// in any order), else asking at the prompt (a custody backup asks K custodians, then one
/// more at a time while too few opened).
fn open_any(file: &Path, password: &Passwords, policy: &ReadPolicy) -> Result<Opened> {
    let bytes = jobs::read_backup(file)?;
    let header = opened(file, inspect_backup(&bytes))?;
    let sources = password.sources();
    let mut passwords = Vec::new();
    for source in &sources {
        passwords.push(read_password(source, "", false)?);
    }
    if !sources.is_empty() {
        let given: Vec<&str> = passwords.iter().map(|p| p.as_str()).collect();
        return opened(file, open_backup_with_passwords(&bytes, &given, policy));
    }
    let Some(custody) = &header.custody else {
        let password = read_password(&PasswordSource::Prompt, "Password for the backup: ", false)?;
        return opened(
            file,
            open_backup_with_passwords(&bytes, &[&password], policy),
        );
    };
    loop {
        passwords.push(read_password(
            &PasswordSource::Prompt,
            &format!(
                "Password of a custodian ({} of the {} needed): ",
                passwords.len() + 1,
                custody.threshold
            ),
            false,
        )?);
        if passwords.len() < custody.threshold {
            continue;
        }
        let given: Vec<&str> = passwords.iter().map(|p| p.as_str()).collect();
        match open_backup_with_passwords(&bytes, &given, policy) {
            Err(Error::NotEnoughCustodians { opened: who, .. })
                if passwords.len() < custody.labels.len() =>
            {
                warn(&format!(
                    "{} of {} custodians opened so far ({}); another custodian, please",
                    who.len(),
                    custody.threshold,
                    who.join(", ")
                ));
            }
            other => return opened(file, other),
        }
    }
}

fn say_custodians(out: &mut impl Write, opened: &Opened) -> Result<()> {
    if let Some(c) = &opened.info.custody {
        writeln!(
            out,
            "Opened by {} of the {} custodians needed: {}",
            opened.custodians.len(),
            c.threshold,
            opened.custodians.join(", ")
        )?;
    }
    Ok(())
}

fn say_fingerprint(out: &mut impl Write, fingerprint: &str) -> Result<()> {
    writeln!(
        out,
        "Recovery fingerprint: {fingerprint} (custodians write it down at backup and compare it on restore)"
    )?;
    Ok(())
}

fn say_kept(out: &mut impl Write, kept: Option<&Path>) -> Result<()> {
    if let Some(bak) = kept {
        writeln!(out, "The previous file is kept as {}", bak.display())?;
    }
    Ok(())
}

/// A backup's opening, its error about the file, with the way out of a work refusal.
fn opened<T>(file: &Path, result: opsmgr_securestorage::Result<T>) -> Result<T> {
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

fn say_restored(done: &jobs::Restored, store: &KeyStore, out: &mut impl Write) -> Result<()> {
    match &done.installed {
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
        done.path.display()
    )?;
    Ok(())
}

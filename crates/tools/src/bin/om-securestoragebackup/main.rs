//! `om-securestoragebackup`: creates, backs up, restores and verifies the management
//! group's encryption key (SecureStorageBackup).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use opsmgr_securestorage::Error;
use opsmgr_securestorage::backup::{inspect_backup, open_backup_with, open_backup_with_passwords};
use opsmgr_securestorage::custody::{Custodian, CustodyOpener, recovery_fingerprint};
use opsmgr_securestorage::format::{BackupInfo, KdfParams, Opened, ReadPolicy, check_password};
use opsmgr_securestorage::keystore::{Installed, KeyStore, keystore_path};
use opsmgr_securestorage::random::OsRandom;
use opsmgr_tools::{
    PasswordArgs, PasswordSource, exit, jobs, machine_dir, password_weakness, prompt_line,
    read_new_password, read_password, windows_args_with_verbs,
};

/// Exit codes beyond the shared ones.
mod code {
    /// The password is wrong or the file was tampered with (for a custody backup: fewer
    /// custodians' passwords opened than it needs).
    pub(crate) const WRONG_PASSWORD: u8 = 3;
    /// The file is not a backup, or is corrupt or truncated, or was changed (a custody
    /// backup whose shares open but whose header or payload does not).
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
    after_help = "Exit codes: 0 success, 1 verify: the backup does not hold the machine's current key \
(or the group's), \
2 bad usage or refused (nothing written), 3 wrong password or tampered file (custody backup: fewer \
than K custodians' passwords opened), 4 not a backup, corrupt, truncated or changed (custody: the shares \
open, the header or payload does not), 5 parameters out of policy (including more key-derivation \
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
    /// Whose password each --password-file or --password-env is, in the same order (a custody
    /// backup's Restore, Verify and Upgrade): each is then tried against that custodian's
    /// share only, one key derivation each.
    #[arg(long = "custodian", value_name = "LABEL")]
    custodian: Vec<String>,
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
    /// Creates the group's key store on a machine that has none (setup on the first RMS);
    /// with --group, recorded as the group's key (its key check record).
    Createkey {
        /// The management group's folder: the machine must be its RMS, and the group must
        /// have no key yet.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        group: Option<PathBuf>,
        /// The machine's host name [default: the machine folder's name].
        #[arg(long, value_name = "FQDN", requires = "group")]
        host: Option<String>,
    },
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
        /// Replace a different key store (the old one is saved beside it first), or restore
        /// a key the group says is not its own.
        #[arg(long)]
        force: bool,
        /// The management group's folder: refuse a backup whose key is not the group's.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        group: Option<PathBuf>,
        #[command(flatten)]
        password: Passwords,
    },
    /// Checks the password and the file without restoring; with --machine (or
    /// $OPSMGR_MACHINE), also that it holds the key that machine uses now; with --group, that
    /// it holds the group's.
    Verify {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        /// The management group's folder: also say whether the backup holds the group's key.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        group: Option<PathBuf>,
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
    /// lowers the cost (the previous file is kept as FILE.bak). A custody backup needs every
    /// custodian's password: each custodian's share is sealed again under their own salt.
    Upgrade {
        /// The backup file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        file: PathBuf,
        #[command(flatten)]
        password: Passwords,
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
            Some(
                Error::Corrupt { .. }
                | Error::CustodyShape { .. }
                | Error::BackupChanged { .. }
                | Error::HeaderChanged { .. },
            ) => code::CORRUPT,
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
        Command::Createkey { group, host } => {
            let store = match &group {
                Some(group) => jobs::create_group_key(
                    &jobs::GroupMachine {
                        group,
                        machine: &machine,
                        host: host.as_deref(),
                    },
                    SystemTime::now(),
                    &mut OsRandom,
                )?,
                None => jobs::create_key(&machine, SystemTime::now(), &mut OsRandom)?,
            };
            writeln!(
                out,
                "Created the management group key {} in {}",
                store.current().id(),
                store_path.display()
            )?;
            if let Some(group) = &group {
                writeln!(
                    out,
                    "Recorded it as the group's key in {}",
                    group.join(opsmgr_tools::group::KEYCHECK_FILE).display()
                )?;
            }
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
            // Before the passwords are asked for.
            opsmgr_tools::refuse_overwrite(&file, force, "--force")?;
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
            group,
            password,
        } => {
            let opened = open_any(&file, &password, &policy)?;
            say_custodians(&mut out, &opened)?;
            let done = jobs::restore(
                &machine,
                &opened,
                group.as_deref(),
                force,
                SystemTime::now(),
            )?;
            if let Some(verdict) = &done.group {
                match verdict.holds() {
                    Some(true) => writeln!(
                        out,
                        "It holds the management group's key: {}.",
                        verdict.reason()
                    )?,
                    Some(false) => warn(&format!(
                        "restored with --force a key the group says is not its own: {}",
                        verdict.reason()
                    )),
                    None => warn(
                        "the group has no key check record and no Run As secrets, so nothing says whether this is its key: run om-msconfigtool KeyCheck on the RMS",
                    ),
                }
            }
            say_restored(&done, &opened.store, &mut out)?;
            say_fingerprint(&mut out, &recovery_fingerprint(&opened.store))?;
        }
        Command::Verify {
            file,
            group,
            json,
            password,
        } => {
            let opened = open_any(&file, &password, &policy)?;
            let machine_key =
                if explicit_machine {
                    Some(KeyStore::load(&store_path).with_context(|| {
                        format!("reading the key store of {}", machine.display())
                    })?)
                } else {
                    None
                };
            let report = jobs::verify(&file, &opened, machine_key.as_ref(), group.as_deref())?;
            let below = opened.info.kdf.below(&KdfParams::DEFAULT);
            if !below.is_empty() {
                warn(&format!(
                    "{} uses {}, below the current writer's {} in {}; `Upgrade` rewrites it",
                    file.display(),
                    report.kdf,
                    KdfParams::DEFAULT,
                    below.join(" and ")
                ));
            }
            if json {
                opsmgr_tools::write_json(&mut out, &report)?;
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
                match (&report.machine_current, report.holds_machine_key) {
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
                if let (Some(name), Some(reason)) = (&report.management_group, &report.group_reason)
                {
                    let says = match report.holds_group_key {
                        Some(true) => "is",
                        Some(false) => "is NOT",
                        None => "cannot be told to be",
                    };
                    writeln!(
                        out,
                        "Its current key {says} management group {name}'s key: {reason}."
                    )?;
                }
            }
            if report.holds_machine_key == Some(false) || report.holds_group_key == Some(false) {
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
            // Never weaker: decided from the header, before asking for a password.
            let header = opened(&file, inspect_backup(&bytes))?;
            let newest = match jobs::upgrade_plan(&header) {
                jobs::UpgradePlan::AlreadyCurrent => {
                    writeln!(
                        out,
                        "{} is already format version {} with the current parameters; unchanged",
                        file.display(),
                        header.version
                    )?;
                    return Ok(ExitCode::SUCCESS);
                }
                jobs::UpgradePlan::WouldLower(above) => bail!(
                    "{} uses {}, above the current writer's {} in {}: rewriting would lower its cost; unchanged",
                    file.display(),
                    header.kdf,
                    KdfParams::DEFAULT,
                    above.join(" and ")
                ),
                jobs::UpgradePlan::Rewrite { to_version } => to_version,
            };
            let done = match &header.custody {
                None => {
                    if password.sources().len() > 1 || !password.custodian.is_empty() {
                        bail!("{} opens with one password; give one", file.display());
                    }
                    let source = password
                        .sources()
                        .into_iter()
                        .next()
                        .unwrap_or(PasswordSource::Prompt);
                    let password = read_password(&source, "Password for the backup: ", false)?;
                    let (store, _) = opened(&file, open_backup_with(&bytes, &password, &policy))?;
                    let sealing = jobs::Sealing::Password(&password);
                    jobs::backup(&store, &file, &sealing, true, &mut OsRandom)?
                }
                Some(custody) => {
                    let passwords = every_custodian(&file, &bytes, &password, &policy)?;
                    let given: Vec<&str> = passwords.iter().map(|p| p.as_str()).collect();
                    let all = opened(&file, open_backup_with_passwords(&bytes, &given, &policy))?;
                    let custodians: Vec<Custodian<'_>> = custody
                        .labels
                        .iter()
                        .zip(&given)
                        .map(|(label, password)| Custodian { label, password })
                        .collect();
                    let sealing = jobs::Sealing::Custody {
                        custodians: &custodians,
                        threshold: custody.threshold,
                    };
                    jobs::backup(&all.store, &file, &sealing, true, &mut OsRandom)?
                }
            };
            writeln!(
                out,
                "Rewrote {} from format version {} ({}) to {newest} ({})",
                file.display(),
                header.version,
                header.kdf,
                KdfParams::DEFAULT
            )?;
            say_kept(&mut out, done.kept.as_deref())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A password for a new backup: asked twice, at least 8 characters, a weak one warned about.
fn new_password(source: &PasswordSource, prompt: &str) -> Result<zeroize::Zeroizing<String>> {
    let password = read_new_password(source, prompt, |p| Ok(check_password(p)?))?;
    if let Some(why) = password_weakness(&password) {
        warn(&format!("this password is weak: {why}"));
    }
    Ok(password)
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

/// Opens a backup of any version: with the passwords given (a custody backup takes any K, in
/// any order, or with `--custodian` each tried against its custodian's share only), else at
/// the prompt (a custody backup asks which custodian is typing).
fn open_any(file: &Path, password: &Passwords, policy: &ReadPolicy) -> Result<Opened> {
    let bytes = jobs::read_backup(file)?;
    let header = opened(file, inspect_backup(&bytes))?;
    let sources = password.sources();
    if header.custody.is_none() {
        if sources.len() > 1 || !password.custodian.is_empty() {
            bail!(
                "{} is a single-password backup: give one password",
                file.display()
            );
        }
        let source = sources.into_iter().next().unwrap_or(PasswordSource::Prompt);
        let password = read_password(&source, "Password for the backup: ", false)?;
        return opened(
            file,
            open_backup_with_passwords(&bytes, &[&password], policy),
        );
    }
    let mut opener = opened(file, CustodyOpener::new(&bytes, policy))?;
    if sources.is_empty() {
        if !password.custodian.is_empty() {
            bail!(
                "--custodian names whose password each --password-file or --password-env is; at the prompt, each custodian says who they are"
            );
        }
        ask_custodians(&mut opener)?;
    } else {
        give_custodians(file, &mut opener, &sources, &password.custodian)?;
    }
    opened(file, opener.finish())
}

/// How a password source is named in a message: `--password-file a.txt (password 2)`.
fn describe(source: &PasswordSource, entry: usize) -> String {
    let what = match source {
        PasswordSource::File(f) => format!("--password-file {}", f.display()),
        PasswordSource::Env(v) => format!("--password-env {v}"),
        PasswordSource::Stdin => "--password-stdin".to_owned(),
        PasswordSource::Prompt => "the prompt".to_owned(),
    };
    format!("{what} (password {entry})")
}

/// The passwords given on the command line, each tried against the custodian `--custodian`
/// names (one derivation each), or, unnamed, against every share still closed. A password that
/// opens nothing is named; the opener then says whether enough opened.
fn give_custodians(
    file: &Path,
    opener: &mut CustodyOpener<'_>,
    sources: &[PasswordSource],
    labels: &[String],
) -> Result<()> {
    if !labels.is_empty() && labels.len() != sources.len() {
        bail!(
            "{} --custodian for {} passwords: name the custodian of every --password-file or --password-env, in the same order",
            labels.len(),
            sources.len()
        );
    }
    let mut failed = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        if opener.is_enough() {
            break;
        }
        let password = read_password(source, "", false)?;
        let opened_one = match labels.get(i) {
            Some(label) => {
                opened(file, opener.try_custodian(label, &password))?.then(|| label.clone())
            }
            None => opened(file, opener.try_password(&password))?,
        };
        if opened_one.is_none() {
            failed.push(match labels.get(i) {
                Some(label) => format!("{} is not {label}'s", describe(source, i + 1)),
                None => format!("{} opened no custodian's share", describe(source, i + 1)),
            });
        }
    }
    if !failed.is_empty() {
        warn(&format!(
            "{} ({} key derivations in all)",
            failed.join("; "),
            opener.derivations()
        ));
    }
    Ok(())
}

/// Progress of the custodians' prompt, on stderr beside the prompts.
fn say_progress(text: &str) {
    #[allow(
        clippy::print_stderr,
        reason = "the prompt's progress goes where the prompts are"
    )]
    {
        eprintln!("{text}");
    }
}

/// At the prompt: each custodian says who they are (one key derivation for their password),
/// or presses Enter to have it tried against every closed share (one derivation per share);
/// a wrong password is said at once, with whose it was not, and the custodian may try again.
fn ask_custodians(opener: &mut CustodyOpener<'_>) -> Result<()> {
    let threshold = opener.custody().threshold;
    let labels = opener.custody().labels.clone();
    let mut wrong = 0;
    while !opener.is_enough() {
        let opened_now = opener.opened();
        let closed: Vec<&str> = labels
            .iter()
            .filter(|l| !opened_now.contains(l))
            .map(String::as_str)
            .collect();
        let who = prompt_line(&format!(
            "Custodian typing now ({}; {} of the {threshold} needed have opened) [Enter: try every closed share]: ",
            closed.join(", "),
            opened_now.len()
        ))?;
        let who = who.trim();
        let done = if who.is_empty() {
            let password = read_password(&PasswordSource::Prompt, "Password: ", false)?;
            let before = opener.derivations();
            let label = opener.try_password(&password)?;
            let cost = opener.derivations() - before;
            match &label {
                Some(label) => say_progress(&format!(
                    "That was {label}'s password ({cost} key derivations to find whose)."
                )),
                None => warn(&format!(
                    "that password opened none of the {} closed shares ({cost} key derivations)",
                    closed.len()
                )),
            }
            label
        } else if let Some(label) = labels.iter().find(|l| l.eq_ignore_ascii_case(who)) {
            if opened_now.contains(label) {
                warn(&format!("{label}'s share is open already"));
                continue;
            }
            let password = read_password(
                &PasswordSource::Prompt,
                &format!("Password of {label}: "),
                false,
            )?;
            if opener.try_custodian(label, &password)? {
                Some(label.clone())
            } else {
                warn(&format!(
                    "that is not {label}'s password; {label} may try again"
                ));
                None
            }
        } else {
            warn(&format!(
                "no custodian is labelled '{who}'; the custodians: {}",
                labels.join(", ")
            ));
            continue;
        };
        match done {
            Some(label) => say_progress(&format!(
                "Opened {label}'s share ({} of the {threshold} needed).",
                opener.opened().len()
            )),
            None => {
                wrong += 1;
                if wrong >= 3 * labels.len() {
                    // Said, then refused as too few custodians (exit 3) by the caller.
                    warn(&format!(
                        "{wrong} passwords opened no share; giving up with {} of the {threshold} needed",
                        opener.opened().len()
                    ));
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Every custodian's password, in the file's order, each proved against their own share:
/// from the command line (in label order, or named with --custodian), else asked by name.
fn every_custodian(
    file: &Path,
    bytes: &[u8],
    password: &Passwords,
    policy: &ReadPolicy,
) -> Result<Vec<zeroize::Zeroizing<String>>> {
    let mut opener = opened(file, CustodyOpener::new(bytes, policy))?;
    let labels = opener.custody().labels.clone();
    let sources = password.sources();
    let named: Vec<String> = if password.custodian.is_empty() {
        labels.clone()
    } else {
        password.custodian.clone()
    };
    if named.len() != labels.len()
        || (!sources.is_empty() && sources.len() != labels.len())
        || labels.iter().any(|l| !named.contains(l))
    {
        bail!(
            "upgrading a custody backup reseals every custodian's share: give all {} custodians' passwords ({}), in that order or named with --custodian; unchanged",
            labels.len(),
            labels.join(", ")
        );
    }
    let mut found: Vec<Option<zeroize::Zeroizing<String>>> = vec![None; labels.len()];
    for (i, label) in named.iter().enumerate() {
        let at = labels.iter().position(|l| l == label).unwrap_or(i);
        let mut tries = 0;
        loop {
            let source = sources.get(i).cloned().unwrap_or(PasswordSource::Prompt);
            let pw = read_password(&source, &format!("Password of {label}: "), false)?;
            if opened(file, opener.try_custodian(label, &pw))? {
                found[at] = Some(pw);
                break;
            }
            tries += 1;
            if !matches!(source, PasswordSource::Prompt) || tries >= 3 {
                return Err(
                    anyhow::Error::new(Error::WrongPasswordOrTampered).context(format!(
                        "{}: {} did not open {label}'s share; unchanged",
                        file.display(),
                        describe(&source, i + 1)
                    )),
                );
            }
            warn(&format!("that is not {label}'s password; try again"));
        }
    }
    found
        .into_iter()
        .zip(&labels)
        .map(|(p, l)| p.with_context(|| format!("no password for {l}")))
        .collect()
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

//! `om-msconfigtool`: ManagementServerConfigTool. `PromoteRMS` moves the RMS role to the
//! machine it runs for, after checking what would have saved the seed's operator; `NewKey` is
//! SP1's CREATE_NEWKEY recovery; `KeyCheck` says (and records) which key is the group's;
//! `RunAs` manages the sealed Run As secrets; `Runbook` prints the procedures for systems we
//! do not run.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use opsmgr_securestorage::random::OsRandom;
use opsmgr_tools::runbooks::{RUNBOOKS, runbook};
use opsmgr_tools::{PasswordSource, exit, jobs, machine_dir, read_new_password, windows_args};

/// ManagementServerConfigTool for a management group kept in a folder.
///
/// `om-msconfigtool PromoteRMS /DeleteExistingRMS:true --group DIR --machine DIR` makes the
/// machine (a management server of the group, named by its folder or --host) the RMS, after
/// checking that it holds the group's encryption key (the group's key check record opens with
/// it, and every sealed Run As secret). `om-msconfigtool NewKey` gives a machine a new group
/// key when no backup exists, and lists the Run As secrets to enter again. `KeyCheck` says
/// whether a machine holds the group's key (and records it, once, from the RMS). `RunAs add |
/// list | remove | rotate` manages the secrets. `om-msconfigtool Runbook NAME` prints a
/// procedure. Verbs and switches are case-insensitive, as on Windows.
#[derive(Debug, Parser)]
#[command(
    name = "om-msconfigtool",
    version,
    after_help = "Exit codes: 0 done (or --dry-run), 1 PromoteRMS not confirmed, or KeyCheck: the \
machine does not hold the group's key (nothing changed), 2 refused, bad usage or bad input \
(nothing changed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The management group's folder.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    group: PathBuf,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// The machine's host name [default: the machine folder's name].
    #[arg(long, value_name = "FQDN")]
    host: Option<String>,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Promotes the machine to RMS; the old RMS becomes a management server.
    #[command(name = "promoterms")]
    PromoteRms {
        #[command(flatten)]
        target: Target,
        /// Replace the existing RMS (`/DeleteExistingRMS:true`). Both values keep the old RMS
        /// as a management server, as the seed's walkthrough shows; `false` refuses when the
        /// group has an RMS.
        #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set)]
        delete_existing_rms: bool,
        /// Do not ask for Y.
        #[arg(long)]
        yes: bool,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The Reporting server's rsreportserver.config to point at the new RMS.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "PATH")]
        reporting: Option<PathBuf>,
        /// The Web Console's Web.config to point at the new RMS.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "PATH")]
        webconsole: Option<PathBuf>,
    },
    /// Creates a new group key on the machine (no backup exists) and lists the Run As secrets
    /// to enter again; nothing sealed with the old key is deleted.
    #[command(name = "newkey")]
    NewKey {
        #[command(flatten)]
        target: Target,
        /// Replace a key store that nothing proves is not the group's (the group has neither
        /// a key check record nor Run As secrets).
        #[arg(long)]
        force: bool,
    },
    /// Says whether the machine holds the group's key; a group without a key check record
    /// gets one from the RMS (or, with --force, from a server whose key was restored from the
    /// group's backup while the RMS is lost).
    #[command(name = "keycheck")]
    KeyCheck {
        #[command(flatten)]
        target: Target,
        /// Record this non-RMS server's key as the group's when nothing else can say.
        #[arg(long)]
        force: bool,
    },
    /// Adds, lists, removes or re-seals the group's Run As secrets.
    #[command(name = "runas", subcommand)]
    RunAs(RunAsCommand),
    /// Prints a runbook as numbered steps with the exact commands.
    #[command(name = "runbook")]
    Runbook {
        /// The runbook: restore-clustered-rms or promote-pre-sp1 (none: list them).
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum RunAsCommand {
    /// Seals a Run As account's secret with the group's key (from a file, stdin, an
    /// environment variable or the prompt; never the command line).
    Add {
        /// The Run As account's name, as the console lists it.
        name: String,
        /// The Windows account it runs as: DOMAIN\user or user@dns.domain.
        #[arg(long, value_name = "ACCOUNT")]
        account: String,
        /// Replace the secret of an account of that name (the old one is kept in the
        /// group's history).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        target: Target,
        /// Read the secret from the first line of this file.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE", conflicts_with_all = ["secret_stdin", "secret_env"])]
        secret_file: Option<PathBuf>,
        /// Read the secret from the first line of standard input.
        #[arg(long, conflicts_with = "secret_env")]
        secret_stdin: bool,
        /// Read the secret from this environment variable.
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
    },
    /// Lists the secrets' names, accounts and keys (never a secret); with --machine, whether
    /// its key opens each.
    List {
        /// The management group's folder.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        group: PathBuf,
        /// A machine folder whose key store to try each secret with.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        machine: Option<PathBuf>,
        /// The machine's host name [default: the machine folder's name].
        #[arg(long, value_name = "FQDN")]
        host: Option<String>,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Removes a secret (the group's previous state is kept in its history).
    Remove {
        /// The Run As account's name.
        name: String,
        /// The management group's folder.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        group: PathBuf,
    },
    /// On the RMS: a new group key, every secret sealed again under it, and a new key check
    /// record (older keys stay in the store).
    Rotate {
        #[command(flatten)]
        target: Target,
    },
}

/// Windows forms: `PromoteRMS` (any case) and `/DeleteExistingRMS:TRUE` (the switch made a
/// flag by [`windows_args`], its value any case).
fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    for (i, a) in args.into_iter().enumerate() {
        let lower = a.to_ascii_lowercase();
        let verb = (i == 1
            && ["promoterms", "newkey", "keycheck", "runas", "runbook"].contains(&lower.as_str()))
            || (i == 2
                && out.get(1).is_some_and(|v| v == "runas")
                && ["add", "list", "remove", "rotate"].contains(&lower.as_str()));
        let value = out.last().is_some_and(|p| p == "--delete-existing-rms");
        out.push(if verb || value { lower } else { a });
    }
    out
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-msconfigtool", run)
}

fn run() -> Result<ExitCode> {
    match Cli::parse_from(normalize_args(windows_args(
        std::env::args(),
        &[("deleteexistingrms", "--delete-existing-rms")],
    )))
    .command
    {
        Command::Runbook { name } => print_runbook(name.as_deref()),
        Command::NewKey { target, force } => new_key(&target, force),
        Command::KeyCheck { target, force } => key_check(&target, force),
        Command::RunAs(command) => run_as(command),
        Command::PromoteRms {
            target,
            delete_existing_rms,
            yes,
            dry_run,
            reporting,
            webconsole,
        } => promote(
            &target,
            delete_existing_rms,
            yes,
            dry_run,
            reporting.as_ref(),
            webconsole.as_ref(),
        ),
    }
}

fn print_runbook(name: Option<&str>) -> Result<ExitCode> {
    let mut out = opsmgr_tools::stdout();
    let Some(name) = name else {
        for r in &RUNBOOKS {
            writeln!(out, "{:<24} {}", r.name, r.title)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let names: Vec<&str> = RUNBOOKS.iter().map(|r| r.name).collect();
    let r = runbook(name).with_context(|| format!("no runbook '{name}': {}", names.join(", ")))?;
    writeln!(out, "{}\n", r.title)?;
    for (n, step) in r.steps.iter().enumerate() {
        writeln!(out, "{}. {}", n + 1, step.text)?;
        for c in step.commands {
            writeln!(out, "       {c}")?;
        }
        if let Some(tool) = step.tool {
            writeln!(out, "   Ours: {tool}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

const WARNING: &str = "Running this tool can cause irreversible damage to\nyour Operations Database.\nType Y to continue to promote the Management Server\nto become the Root Management Server.";

fn promote(
    target: &Target,
    delete_existing_rms: bool,
    yes: bool,
    dry_run: bool,
    reporting: Option<&PathBuf>,
    webconsole: Option<&PathBuf>,
) -> Result<ExitCode> {
    let machine = machine_dir(target.machine.clone())?;
    let plan = jobs::plan_promotion(
        &jobs::Promote {
            group: &target.group,
            machine: &machine,
            host: target.host.as_deref(),
            delete_existing_rms,
            reporting: reporting.map(PathBuf::as_path),
            webconsole: webconsole.map(PathBuf::as_path),
        },
        SystemTime::now(),
    )?;
    let mut out = opsmgr_tools::stdout();
    let host = plan.report().new_rms.clone();
    let stranded = plan.stranded().to_vec();
    if dry_run {
        if !target.json {
            writeln!(
                out,
                "Would promote {host} to RMS{}.",
                plan.report()
                    .old_rms
                    .as_deref()
                    .map_or(String::new(), |o| format!(
                        "; {o} would become a management server"
                    ))
            )?;
            for p in plan.configs() {
                writeln!(out, "Would point {} at {host}.", p.display())?;
            }
        }
        return finish(&mut out, target.json, plan.report(), &stranded);
    }
    if !yes {
        writeln!(out, "{WARNING}")?;
        out.flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            writeln!(out, "Not confirmed; nothing was changed.")?;
            return Ok(ExitCode::from(exit::NO));
        }
    }
    let report = jobs::promote(plan, SystemTime::now(), &mut OsRandom)?;
    if !target.json {
        writeln!(out, "{host} is now the Root Management Server.")?;
        if let Some(o) = &report.old_rms {
            writeln!(out, "{o} is now a management server.")?;
        }
        if let Some(h) = &report.history {
            writeln!(out, "The previous state is kept in {h}.")?;
        }
        if report.key_record_written {
            writeln!(
                out,
                "The group had no key check record: {host}'s key, which opens every Run As secret, is now recorded as the group's."
            )?;
        }
        for c in &report.configs {
            writeln!(out, "{}: {} value(s) now name {host}.", c.path, c.changed)?;
        }
    }
    finish(&mut out, target.json, &report, &stranded)
}

fn finish(
    out: &mut impl Write,
    json: bool,
    report: &jobs::PromoteReport,
    stranded: &[opsmgr_model::promotion::Stranded],
) -> Result<ExitCode> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !stranded.is_empty() {
        writeln!(
            out,
            "{} agent assignment(s) name a server agents cannot use now, for example:",
            stranded.len()
        )?;
        for s in stranded.iter().take(5) {
            writeln!(
                out,
                "  {} -> {} ({})",
                s.agent,
                s.server,
                if s.primary { "primary" } else { "failover" }
            )?;
        }
        if let Some(script) = &report.script {
            writeln!(
                out,
                "Move them in the live management group: {script} (--format ps2012 on 2012 and later), then in the Command Shell .\\balance.ps1 -WhatIf and .\\balance.ps1"
            )?;
        }
        if let Some(fix) = &report.fix {
            writeln!(out, "Then record the move in the inventory: {fix}")?;
        }
    }
    writeln!(out, "Steps left to a person:")?;
    for (n, s) in report.steps_left.iter().enumerate() {
        writeln!(out, "  {}. {s}", n + 1)?;
    }
    Ok(ExitCode::SUCCESS)
}

impl Target {
    fn machine(&self) -> Result<PathBuf> {
        machine_dir(self.machine.clone())
    }
}

fn json_or(
    json: bool,
    report: &impl serde::Serialize,
    text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut out = opsmgr_tools::stdout();
    if json {
        opsmgr_tools::write_json(&mut out, report)?;
    } else {
        text(&mut out)?;
    }
    Ok(())
}

fn new_key(target: &Target, force: bool) -> Result<ExitCode> {
    let machine = target.machine()?;
    let report = jobs::new_key(
        &jobs::GroupMachine {
            group: &target.group,
            machine: &machine,
            host: target.host.as_deref(),
        },
        force,
        SystemTime::now(),
        &mut OsRandom,
    )?;
    json_or(target.json, &report, |out| {
        writeln!(
            out,
            "Created a new encryption key {} for the management group on {}; the group's key check record now names it (the previous state is kept in {}).",
            report.key, report.machine, report.history
        )?;
        if report.reenter.is_empty() {
            writeln!(out, "No Run As secret was sealed with the lost key.")?;
        } else {
            writeln!(
                out,
                "These Run As accounts were sealed with the lost key; enter their secrets again with om-msconfigtool RunAs add NAME --account ACCOUNT --replace (nothing was deleted):"
            )?;
            for name in &report.reenter {
                writeln!(out, "  {name}")?;
            }
        }
        writeln!(
            out,
            "Back the new key up now: om-securestoragebackup --machine {} Backup FILE",
            machine.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

fn key_check(target: &Target, force: bool) -> Result<ExitCode> {
    let machine = target.machine()?;
    let report = jobs::key_check(
        &jobs::GroupMachine {
            group: &target.group,
            machine: &machine,
            host: target.host.as_deref(),
        },
        force,
        &mut OsRandom,
    )?;
    let holds = report.holds_group_key == Some(true);
    json_or(target.json, &report, |out| {
        if report.record_written {
            writeln!(
                out,
                "The group had no key check record: wrote one from {}'s current key {}.",
                report.machine, report.current_key
            )?;
        }
        writeln!(
            out,
            "{} {} the group's key as its current key ({}): {}.",
            report.machine,
            if holds { "holds" } else { "does NOT hold" },
            report.current_key,
            report.reason
        )
    })?;
    Ok(if holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::NO)
    })
}

fn run_as(command: RunAsCommand) -> Result<ExitCode> {
    match command {
        RunAsCommand::Add {
            name,
            account,
            replace,
            target,
            secret_file,
            secret_stdin,
            secret_env,
        } => {
            let machine = target.machine()?;
            let source = match (secret_file, secret_stdin, secret_env) {
                (Some(f), _, _) => PasswordSource::File(f),
                (_, true, _) => PasswordSource::Stdin,
                (_, _, Some(v)) => PasswordSource::Env(v),
                _ => PasswordSource::Prompt,
            };
            // Names first: a mistyped account is refused before anyone types a secret.
            opsmgr_tools::group::check_runas_name(&name)?;
            opsmgr_tools::group::check_account(&account)?;
            let secret =
                read_new_password(&source, &format!("Secret of {account} ({name}): "), |s| {
                    if s.is_empty() {
                        anyhow::bail!("the secret is empty; nothing was changed");
                    }
                    Ok(())
                })?;
            let report = jobs::runas_add(
                &jobs::GroupMachine {
                    group: &target.group,
                    machine: &machine,
                    host: target.host.as_deref(),
                },
                &name,
                &account,
                secret.as_bytes(),
                replace,
                SystemTime::now(),
                &mut OsRandom,
            )?;
            json_or(target.json, &report, |out| {
                if report.record_written {
                    writeln!(
                        out,
                        "The group had no key check record: this RMS's key {} is now recorded as the group's.",
                        report.key
                    )?;
                }
                writeln!(
                    out,
                    "{} the secret of {} ({}), sealed with key {}.",
                    if report.replaced { "Replaced" } else { "Added" },
                    report.name,
                    report.account,
                    report.key
                )
            })?;
        }
        RunAsCommand::List {
            group,
            machine,
            host,
            json,
        } => {
            let entries = match &machine {
                Some(machine) => jobs::runas_list(
                    &group,
                    Some(&jobs::GroupMachine {
                        group: &group,
                        machine,
                        host: host.as_deref(),
                    }),
                ),
                None => jobs::runas_list(&group, None),
            }?;
            json_or(json, &entries, |out| {
                if entries.is_empty() {
                    return writeln!(out, "The group has no Run As secrets.");
                }
                let mut headers = vec!["Name", "Account", "Key"];
                if machine.is_some() {
                    headers.push("Opens here");
                }
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        let mut row = vec![
                            e.name.clone(),
                            e.account.clone().unwrap_or_else(|| "-".into()),
                            e.key.clone(),
                        ];
                        if let Some(opens) = e.opens {
                            row.push(if opens { "yes" } else { "NO" }.into());
                        }
                        row
                    })
                    .collect();
                opsmgr_tools::write_table(&mut &mut *out, &headers, &rows)?;
                writeln!(out, "{} secret(s).", entries.len())
            })?;
            if entries.iter().any(|e| e.opens == Some(false)) {
                return Ok(ExitCode::from(exit::NO));
            }
        }
        RunAsCommand::Remove { name, group } => {
            let history = jobs::runas_remove(&group, &name, SystemTime::now())?;
            writeln!(
                opsmgr_tools::stdout(),
                "Removed the secret of {name} (the previous state is kept in {}).",
                history.display()
            )?;
        }
        RunAsCommand::Rotate { target } => {
            let machine = target.machine()?;
            let report = jobs::runas_rotate(
                &jobs::GroupMachine {
                    group: &target.group,
                    machine: &machine,
                    host: target.host.as_deref(),
                },
                SystemTime::now(),
                &mut OsRandom,
            )?;
            json_or(target.json, &report, |out| {
                writeln!(
                    out,
                    "Rotated the group's key on {}: {} is current (was {}); {} secret(s) sealed again; the key check record names the new key (the previous state is kept in {}).",
                    report.machine, report.new_key, report.old_key, report.resealed, report.history
                )?;
                writeln!(
                    out,
                    "Every backup holds the old key only: back the key store up now (om-securestoragebackup --machine {} Backup FILE), and restore it on the servers that may become RMS.",
                    machine.display()
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `om-msconfigtool`: ManagementServerConfigTool. `PromoteRMS` moves the RMS role to the
//! machine it runs for, after checking what would have saved the seed's operator; `NewKey` is
//! SP1's CREATE_NEWKEY recovery; `Runbook` prints the procedures for systems we do not run.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use opsmgr_configfix::{
    Document, Edit, REPORTING_EXPECTED, WriteOptions, edit_file, reporting, webconsole,
};
use opsmgr_model::{RUNBOOKS, promote_rms, runbook};
use opsmgr_securestorage::{KeyStore, KeyStoreLock, OsRandom, keystore_path};
use opsmgr_tools::group::{Group, INVENTORY_FILE, machine_host};
use opsmgr_tools::{exit, machine_dir, windows_args};
use serde::Serialize;

/// ManagementServerConfigTool for a management group kept in a folder.
///
/// `om-msconfigtool PromoteRMS /DeleteExistingRMS:true --group DIR --machine DIR` makes the
/// machine (a management server of the group, named by its folder or --host) the RMS, after
/// checking that it holds the group's encryption key (it opens every sealed Run As secret).
/// `om-msconfigtool NewKey` gives a machine a new group key when no backup exists, and lists
/// the Run As secrets to enter again. `om-msconfigtool Runbook NAME` prints a procedure.
/// Verbs and switches are case-insensitive, as on Windows.
#[derive(Debug, Parser)]
#[command(
    name = "om-msconfigtool",
    version,
    after_help = "Exit codes: 0 done (or --dry-run), 1 PromoteRMS not confirmed (nothing changed), \
2 refused, bad usage or bad input (nothing changed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Target {
    /// The management group's folder.
    #[arg(long, value_name = "DIR")]
    group: PathBuf,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(long, value_name = "DIR")]
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
        #[arg(long, value_name = "PATH")]
        reporting: Option<PathBuf>,
        /// The Web Console's Web.config to point at the new RMS.
        #[arg(long, value_name = "PATH")]
        webconsole: Option<PathBuf>,
    },
    /// Creates a new group key on the machine (no backup exists) and lists the Run As secrets
    /// to enter again; nothing sealed with the old key is deleted.
    #[command(name = "newkey")]
    NewKey {
        #[command(flatten)]
        target: Target,
    },
    /// Prints a runbook as numbered steps with the exact commands.
    #[command(name = "runbook")]
    Runbook {
        /// The runbook: restore-clustered-rms or promote-pre-sp1 (none: list them).
        name: Option<String>,
    },
}

/// Windows forms: `PromoteRMS` (any case) and `/DeleteExistingRMS:TRUE` (the switch made a
/// flag by [`windows_args`], its value any case).
fn normalize_args(args: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    for (i, a) in args.into_iter().enumerate() {
        let lower = a.to_ascii_lowercase();
        let verb = i == 1 && ["promoterms", "newkey", "runbook"].contains(&lower.as_str());
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
        Command::NewKey { target } => new_key(&target),
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

#[derive(Serialize)]
struct ConfigReport {
    path: String,
    changed: usize,
    backup: Option<String>,
}

#[derive(Serialize)]
struct PromoteReport {
    new_rms: String,
    old_rms: Option<String>,
    dry_run: bool,
    history: Option<String>,
    configs: Vec<ConfigReport>,
    stranded_agents: usize,
    script: Option<String>,
    fix: Option<String>,
    steps_left: Vec<String>,
}

/// A config rewrite: configfix's reporting or webconsole edit, its arguments bound.
type Rewrite<'a> = dyn Fn(&Document) -> opsmgr_configfix::Result<Edit> + 'a;

const WARNING: &str = "Running this tool can cause irreversible damage to\nyour Operations Database.\nType Y to continue to promote the Management Server\nto become the Root Management Server.";

fn promote(
    target: &Target,
    delete_existing_rms: bool,
    yes: bool,
    dry_run: bool,
    reporting_path: Option<&PathBuf>,
    webconsole_path: Option<&PathBuf>,
) -> Result<ExitCode> {
    let mut group = Group::load(&target.group)?;
    let machine = machine_dir(target.machine.clone())?;
    let host = machine_host(&machine, target.host.as_deref())?;
    let promotion = promote_rms(&group.inventory, &host, delete_existing_rms)?;

    // The check that would have saved the seed's operator: the key is here.
    let store_path = keystore_path(&machine);
    if !store_path.exists() {
        bail!(
            "{host} has no key store ({}): restore the RMS key first (om-securestoragebackup --machine {} Restore FILE), or with no backup run NewKey; nothing was changed",
            store_path.display(),
            machine.display()
        );
    }
    let store = KeyStore::load(&store_path)?;
    let unopened = group.unopenable(&store);
    if !unopened.is_empty() {
        bail!(
            "{host} does not hold the management group's encryption key: it cannot open {} of {} Run As secrets ({}); restore the RMS key backup on it (om-securestoragebackup Restore FILE), or with no backup run NewKey; nothing was changed",
            unopened.len(),
            group.runas.secrets.len(),
            unopened.join(", ")
        );
    }

    let old = promotion.old_rms.as_ref().map(ToString::to_string);
    let mut steps_left = vec![];
    if let Some(old) = &old {
        steps_left.push(format!(
            "Restart the Health Service on {old}: net stop HealthService && net start HealthService"
        ));
    }
    steps_left.push(format!(
        "Reconnect every Operations console to the new RMS, {host}."
    ));
    steps_left.push("On OpsMgr 2007 before SP1, data warehouse processing stays on the old RMS: om-msconfigtool Runbook promote-pre-sp1".into());
    if reporting_path.is_none() {
        steps_left.push(format!(
            "Point the Reporting server at {host}: om-configfix reporting PATH --rms {host}"
        ));
    }
    if webconsole_path.is_none() {
        steps_left.push(format!(
            "Point the Web Console at {host}: om-configfix webconsole PATH --rms {host}"
        ));
    }
    let inventory_path = target.group.join(INVENTORY_FILE).display().to_string();
    let fix = (!promotion.stranded.is_empty())
        .then(|| format!("om-balance apply {inventory_path} -o {inventory_path}"));
    // The same plan as a script for the live management group; PromoteRMS is 2007 R2's.
    let script = (!promotion.stranded.is_empty())
        .then(|| format!("om-balance plan {inventory_path} --format ps2007 > balance.ps1"));
    let mut report = PromoteReport {
        new_rms: host.to_string(),
        old_rms: old.clone(),
        dry_run,
        history: None,
        configs: Vec::new(),
        stranded_agents: promotion.stranded.len(),
        script,
        fix,
        steps_left,
    };
    let mut out = opsmgr_tools::stdout();
    if dry_run {
        if !target.json {
            writeln!(
                out,
                "Would promote {host} to RMS{}.",
                old.as_deref().map_or(String::new(), |o| format!(
                    "; {o} would become a management server"
                ))
            )?;
            for p in [reporting_path, webconsole_path].into_iter().flatten() {
                writeln!(out, "Would point {} at {host}.", p.display())?;
            }
        }
        return finish(&mut out, target.json, &report, &promotion.stranded);
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
    let now = SystemTime::now();
    report.history = Some(group.keep_history(now)?.display().to_string());
    group.inventory = promotion.inventory.clone();
    group.save_inventory()?;
    let from = old.as_deref();
    let new_rms = host.as_str();
    let edits: [(Option<&PathBuf>, &Rewrite<'_>); 2] = [
        (reporting_path, &|doc| {
            reporting(doc, new_rms, from, REPORTING_EXPECTED)
        }),
        (webconsole_path, &|doc| webconsole(doc, new_rms, from)),
    ];
    for (path, edit) in edits {
        let Some(path) = path else { continue };
        let done = edit_file(path, edit, WriteOptions::default(), now)?;
        report.configs.push(ConfigReport {
            path: path.display().to_string(),
            changed: done.edit.spans.len(),
            backup: done.backup.map(|b| b.display().to_string()),
        });
    }
    if !target.json {
        writeln!(out, "{host} is now the Root Management Server.")?;
        if let Some(o) = &old {
            writeln!(out, "{o} is now a management server.")?;
        }
        if let Some(h) = &report.history {
            writeln!(out, "The previous state is kept in {h}.")?;
        }
        for c in &report.configs {
            writeln!(out, "{}: {} value(s) now name {host}.", c.path, c.changed)?;
        }
    }
    finish(&mut out, target.json, &report, &promotion.stranded)
}

fn finish(
    out: &mut impl Write,
    json: bool,
    report: &PromoteReport,
    stranded: &[opsmgr_model::Stranded],
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

#[derive(Serialize)]
struct NewKeyReport {
    machine: String,
    kept_old_keys: bool,
    reenter: Vec<String>,
}

fn new_key(target: &Target) -> Result<ExitCode> {
    let group = Group::load(&target.group)?;
    let machine = machine_dir(target.machine.clone())?;
    let host = machine_host(&machine, target.host.as_deref())?;
    let is_server = group.inventory.servers.iter().any(|s| s.name == host);
    if !is_server {
        bail!(
            "{host} is not a server of management group {}",
            group.inventory.management_group
        );
    }
    let path = keystore_path(&machine);
    let now = SystemTime::now();
    // Read, rotate and write under the store's lock: a restore cannot slip in between.
    let lock = KeyStoreLock::take(&path)?;
    let (store, kept) = if path.exists() {
        let mut store = KeyStore::load(&path)?;
        if !group.runas.secrets.is_empty() && group.unopenable(&store).is_empty() {
            bail!(
                "{host} holds the group's key already (it opens every Run As secret): a new key is not needed; nothing was changed"
            );
        }
        // Older keys stay in the store: whatever they sealed still opens.
        store.rotate(now, &mut OsRandom)?;
        (store, true)
    } else {
        (KeyStore::generate(now, &mut OsRandom)?, false)
    };
    group.keep_history(now)?;
    store.save_locked(&path, &lock)?;
    drop(lock);
    let report = NewKeyReport {
        machine: host.to_string(),
        kept_old_keys: kept,
        reenter: group.unopenable(&store),
    };
    let mut out = opsmgr_tools::stdout();
    if target.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "Created a new encryption key for the management group on {host}."
        )?;
        if report.reenter.is_empty() {
            writeln!(out, "Every Run As secret opens with it.")?;
        } else {
            writeln!(
                out,
                "These Run As accounts were sealed with the lost key; enter their passwords again (nothing was deleted):"
            )?;
            for name in &report.reenter {
                writeln!(out, "  {name}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

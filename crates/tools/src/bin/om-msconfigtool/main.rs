//! `om-msconfigtool`: ManagementServerConfigTool. `PromoteRMS` moves the RMS role to the
//! machine it runs for, after checking what would have saved the seed's operator; `NewKey` is
//! SP1's CREATE_NEWKEY recovery; `Runbook` prints the procedures for systems we do not run.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use opsmgr_securestorage::OsRandom;
use opsmgr_tools::runbooks::{RUNBOOKS, runbook};
use opsmgr_tools::{exit, jobs, machine_dir, windows_args};

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
    let report = jobs::promote(plan, SystemTime::now())?;
    if !target.json {
        writeln!(out, "{host} is now the Root Management Server.")?;
        if let Some(o) = &report.old_rms {
            writeln!(out, "{o} is now a management server.")?;
        }
        if let Some(h) = &report.history {
            writeln!(out, "The previous state is kept in {h}.")?;
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

fn new_key(target: &Target) -> Result<ExitCode> {
    let machine = machine_dir(target.machine.clone())?;
    let report = jobs::new_key(
        &target.group,
        &machine,
        target.host.as_deref(),
        SystemTime::now(),
        &mut OsRandom,
    )?;
    let mut out = opsmgr_tools::stdout();
    if target.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "Created a new encryption key for the management group on {}.",
            report.machine
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

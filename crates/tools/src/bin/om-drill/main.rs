//! `om-drill`: the seeds' whole story on real files (see [`opsmgr_tools::drill`]): the
//! README's main job.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use opsmgr_tools::drill::{Event, run_drill};

/// Runs the disaster-recovery drill of the seeds on real files.
///
/// Builds a management group like the seed's production (an RMS agents cannot reach, three
/// management servers, Reporting and Web Console configs, Run As secrets sealed with the
/// group key), enrolls every machine through a CA's drop folder, balances a bulk install,
/// backs up the RMS key, loses the RMS, restores the key on MGT01, promotes it, rewrites both
/// configs, and verifies each claim. Exit code 0 only when every check passes.
#[derive(Debug, Parser)]
#[command(
    name = "om-drill",
    version,
    after_help = "Exit codes: 0 every check passed, 1 a check failed, 2 the drill could not run."
)]
struct Cli {
    /// How many agents.
    #[arg(long, default_value_t = 200)]
    agents: usize,
    /// Work in this folder (created; must be empty or missing) instead of a fresh temporary one.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the files afterwards (always kept with --dir).
    #[arg(long)]
    keep: bool,
    /// Report as JSON: {"phases": [{"name", "seconds"}], "checks": [{"name", "passed", "detail"}]}.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-drill", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(opsmgr_tools::windows_args(std::env::args(), &[]));
    let (dir, guard) = match &cli.dir {
        Some(d) => (d.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("om-drill-").tempdir()?;
            (temp.path().join("drill"), Some(temp))
        }
    };
    let mut out = io::stdout().lock();
    if !cli.json {
        writeln!(out, "Drill with {} agents in {}", cli.agents, dir.display())?;
    }
    let json = cli.json;
    let mut failed_write = None;
    let report = run_drill(&dir, cli.agents, &mut |event| {
        if json {
            return;
        }
        let line = match event {
            Event::Phase(p) => format!("{:<44} {:>8.2} s", p.name, p.seconds),
            Event::Check(c) => {
                let result = if c.passed { "PASS" } else { "FAIL" };
                format!("{result} {}: {}", c.name, c.detail)
            }
        };
        if let Err(e) = writeln!(out, "{line}") {
            failed_write.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed_write {
        return Err(e.into());
    }
    let passed = report.checks.iter().all(|c| c.passed);
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5);
        writeln!(out, "\n{:<width$}  {:>6}", "check", "result")?;
        for c in &report.checks {
            let result = if c.passed { "pass" } else { "FAIL" };
            writeln!(out, "{:<width$}  {result:>6}", c.name)?;
        }
        let total: f64 = report.phases.iter().map(|p| p.seconds).sum();
        writeln!(out, "{:<width$}  {total:>6.2} s", "total")?;
    }
    if let (Some(temp), true) = (guard, cli.keep) {
        let kept = temp.keep();
        if !json {
            writeln!(out, "Files kept in {}", kept.join("drill").display())?;
        }
    }
    Ok(ExitCode::from(if passed { 0 } else { 1 }))
}

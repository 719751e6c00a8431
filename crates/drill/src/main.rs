//! `om-drill`: the seeds' whole story on real files (see the [`opsmgr_drill`] library): the
//! README's main job.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use indicatif::ProgressBar;
use opsmgr_drill::{Event, Phase, run_drill};

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
    /// How many agents (at least one).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    agents: u32,
    /// Work in this folder (created; must be empty or missing) instead of a fresh temporary one.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the files afterwards (always kept with --dir).
    #[arg(long)]
    keep: bool,
    /// Report as JSON: {"phases": [{"name", "seconds"}], "checks": [{"name", "passed",
    /// "detail"}], "total_seconds"}; the clean-up of the temporary folder is a phase too.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-drill", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(opsmgr_tools::windows_args(std::env::args(), &[]));
    let agents = usize::try_from(cli.agents)?;
    let (dir, guard) = match &cli.dir {
        Some(d) => (d.clone(), None),
        None => {
            let temp = tempfile::Builder::new().prefix("om-drill-").tempdir()?;
            (temp.path().join("drill"), Some(temp))
        }
    };
    let mut out = opsmgr_tools::stdout();
    if !cli.json {
        writeln!(out, "Drill with {agents} agents in {}", dir.display())?;
        out.flush()?;
    }
    let json = cli.json;
    // A spinner per phase on a terminal: phase 2 runs for minutes at 10,000 agents.
    let spinner = (!json && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut failed_write = None;
    let mut report = run_drill(&dir, agents, &mut |event| {
        if let (Some(bar), Event::Start(name)) = (&spinner, &event) {
            bar.set_message(*name);
        }
        if json {
            return;
        }
        let line = match event {
            Event::Start(_) => return,
            Event::Phase(p) => format!("{:<44} {:>8.2} s", p.name, p.seconds),
            Event::Check(c) => {
                let result = if c.passed { "PASS" } else { "FAIL" };
                format!("{result} {}: {}", c.name, c.detail)
            }
        };
        let written = match &spinner {
            Some(bar) => bar.suspend(|| writeln!(out, "{line}").and_then(|()| out.flush())),
            None => writeln!(out, "{line}").and_then(|()| out.flush()),
        };
        if let Err(e) = written {
            failed_write.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed_write {
        return Err(e.into());
    }
    // The clean-up is part of what the drill costs: timed and reported like a phase.
    let kept = match guard {
        Some(temp) if !cli.keep => {
            if let Some(bar) = &spinner {
                bar.set_message("6. clean-up");
            }
            let start = Instant::now();
            // The drill's folder, machines eight at a time; then the (now empty) guard.
            opsmgr_drill::clean_up(&dir)?;
            temp.close()?;
            let phase = Phase {
                name: "6. clean-up (the temporary folder)",
                seconds: start.elapsed().as_secs_f64(),
            };
            if let Some(bar) = &spinner {
                bar.finish_and_clear();
            }
            if !json {
                writeln!(out, "{:<44} {:>8.2} s", phase.name, phase.seconds)?;
            }
            report.phases.push(phase);
            None
        }
        Some(temp) => Some(temp.keep().join("drill")),
        None => None,
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let passed = report.checks.iter().all(|c| c.passed);
    let total: f64 = report.phases.iter().map(|p| p.seconds).sum();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["total_seconds"] = serde_json::json!(total);
        serde_json::to_writer(&mut out, &value)?;
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
        writeln!(out, "{:<width$}  {total:>6.2} s", "total")?;
        if let Some(kept) = kept {
            writeln!(out, "Files kept in {}", kept.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::from(if passed { 0 } else { 1 }))
}

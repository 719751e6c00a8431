//! `om-configfix`: rewrites the RMS name in rsreportserver.config and Web.config, losslessly.

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Parser;
use opsmgr_configfix::{Document, FileEdit, WriteOptions};
use opsmgr_tools::jobs;
use serde::Serialize;

use cli::{Cli, Command, Common};

fn main() -> ExitCode {
    opsmgr_tools::main("om-configfix", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(opsmgr_tools::windows_args(std::env::args(), &[]));
    let (path, common, what, value) = match &cli.command {
        Command::Reporting {
            path, rms, common, ..
        } => (path, common, "ServerName", rms.as_str()),
        Command::Webconsole { path, rms, common } => (path, common, "MOMServer", rms.as_str()),
        Command::Set {
            path,
            value,
            common,
            ..
        } => (path, common, "value", value.as_str()),
    };
    let config = match &cli.command {
        Command::Reporting { expect, .. } => jobs::Config::Reporting { expect: *expect },
        Command::Webconsole { .. } => jobs::Config::WebConsole,
        Command::Set { target, expect, .. } => jobs::Config::Set {
            target,
            expect: *expect,
        },
    };
    let rewrite = jobs::Rewrite {
        config,
        path,
        value,
        from: common.from.as_deref(),
    };
    let options = WriteOptions {
        backup: !common.no_backup,
        dry_run: common.dry_run,
    };
    let mut done = jobs::rewrite_configs(&[rewrite], options, SystemTime::now())?;
    let done = done.pop().context("the rewrite reported no file")?;
    report(&done, common, what, value)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    written: bool,
    dry_run: bool,
    backup: Option<String>,
    changed: usize,
    matches: Vec<MatchReport<'a>>,
}

#[derive(Serialize)]
struct MatchReport<'a> {
    line: usize,
    column: usize,
    old: &'a str,
    new: &'a str,
    changed: bool,
}

fn report(done: &FileEdit, common: &Common, what: &str, value: &str) -> Result<()> {
    let mut out = opsmgr_tools::stdout();
    let file = done.path.display().to_string();
    if common.dry_run
        && !common.json
        && let Some(new) = &done.edit.output
    {
        let old = done.document.text();
        let new = Document::parse(new.clone())?;
        let diff = similar::TextDiff::from_lines(old, new.text());
        write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&file, &format!("{file} (new)"))
        )?;
    }
    if common.json {
        let report = Report {
            file,
            written: done.written,
            dry_run: common.dry_run,
            backup: done.backup.as_ref().map(|p| p.display().to_string()),
            changed: done.edit.changed(),
            matches: done
                .edit
                .matches
                .iter()
                .map(|m| MatchReport {
                    line: m.line,
                    column: m.column,
                    old: &m.old,
                    new: value,
                    changed: m.changed,
                })
                .collect(),
        };
        opsmgr_tools::write_json(&mut out, &report)?;
        return Ok(());
    }
    let total = done.edit.matches.len();
    let changed = done.edit.changed();
    let line = if changed == 0 {
        format!("{file}: all {total} {what} value(s) already '{value}'; not rewritten")
    } else if done.written {
        let backup = done.backup.as_ref().map_or("no backup".to_owned(), |b| {
            format!("original kept as {}", b.display())
        });
        format!("{file}: changed {changed} of {total} {what} value(s) to '{value}'; {backup}")
    } else {
        format!("{file}: would change {changed} of {total} {what} value(s) to '{value}' (dry run)")
    };
    if common.dry_run {
        #[allow(clippy::print_stderr, reason = "stdout holds the diff")]
        {
            eprintln!("{line}");
        }
    } else {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

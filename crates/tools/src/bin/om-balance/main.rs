//! `om-balance`: plans, checks and applies the balancing of agents over management servers.

mod cli;

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use opsmgr_model::balance::{Plan, Policy, plan};
use opsmgr_model::inventory::Inventory;
use opsmgr_model::script::{Shell, write_export_script, write_powershell};
use opsmgr_tools::exit;

use cli::{Cli, Command, Format, Input, ShellArg};

fn main() -> ExitCode {
    opsmgr_tools::main("om-balance", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(opsmgr_tools::windows_args(std::env::args(), &[]));
    // One buffered writer: a plan for 100,000 agents is written in large blocks, not a system
    // call per line.
    let terminal = io::stdout().is_terminal();
    let mut out = opsmgr_tools::stdout();
    match cli.command {
        Command::Plan {
            input,
            policy,
            format,
            pretty,
            chart,
        } => {
            let inventory = load(&input)?;
            let policy = policy.policy();
            let plan = plan(&inventory, &policy)?;
            warn(&plan);
            if let Some(path) = &chart {
                let svg = chart_svg(&plan)?;
                opsmgr_fsutil::write_atomic(path, svg.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            match format {
                Format::Table => out.write_all(table(&plan, &policy).as_bytes())?,
                Format::Json if pretty || terminal => {
                    serde_json::to_writer_pretty(&mut out, &plan)?;
                    out.write_all(b"\n")?;
                }
                Format::Json => {
                    serde_json::to_writer(&mut out, &plan)?;
                    out.write_all(b"\n")?;
                }
                Format::Ps2007 => write_powershell(&plan, Shell::OpsMgr2007, &mut out)?,
                Format::Ps2012 => write_powershell(&plan, Shell::Scom2012, &mut out)?,
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportScript { shell } => {
            let shell = match shell {
                ShellArg::Ps2007 => Shell::OpsMgr2007,
                ShellArg::Ps2012 => Shell::Scom2012,
            };
            write_export_script(shell, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { input, policy } => {
            let inventory = load(&input)?;
            let policy = policy.policy();
            let verdict = opsmgr_tools::jobs::check_balance(&inventory, &policy)?;
            writeln!(out, "{}", verdict.line)?;
            Ok(ExitCode::from(if verdict.balanced {
                exit::OK
            } else {
                exit::NO
            }))
        }
        Command::Apply {
            input,
            policy,
            output,
        } => {
            let inventory = load(&input)?;
            let done = opsmgr_tools::jobs::balance(
                &inventory,
                &policy.policy(),
                &output,
                std::time::SystemTime::now(),
            )?;
            if let Some(kept) = &done.kept {
                writeln!(
                    out,
                    "kept the previous {} as {}",
                    output.display(),
                    kept.display()
                )?;
            }
            for w in &done.warnings {
                warn_line(w);
            }
            writeln!(
                out,
                "wrote {}: {} agent(s) changed, {} of them moved to another primary",
                output.display(),
                done.changed,
                done.moved
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load(input: &Input) -> Result<Inventory> {
    let path = &input.inventory;
    let name = path.display().to_string();
    let read = |p: &Path| -> Result<Vec<u8>> {
        if p == Path::new("-") {
            let mut bytes = Vec::new();
            io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the inventory from stdin")?;
            Ok(bytes)
        } else {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        }
    };
    match &input.servers {
        Some(servers) => {
            let servers = Inventory::load(servers)?;
            Inventory::from_csv_bytes(servers, &read(path)?, &name).map_err(|e| {
                // The library names the agent export script; the command that prints it is ours.
                let script = matches!(&e, opsmgr_model::Error::Invalid(i)
                    if matches!(i.problem, opsmgr_model::error::Problem::CsvHeader { hint, .. } if hint.names_export_script()));
                if script {
                    anyhow::anyhow!(
                        "{e} (om-balance export-script --shell ps2007 or ps2012 prints it)"
                    )
                } else {
                    e.into()
                }
            })
        }
        None if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            anyhow::bail!("{name}: a CSV export needs the servers: add --servers SERVERS.json")
        }
        None => Ok(Inventory::from_json_bytes(&read(path)?, &name)?),
    }
}

fn warn(plan: &Plan<'_>) {
    for w in plan.warnings() {
        warn_line(w);
    }
}

#[allow(clippy::print_stderr, reason = "warnings go to stderr, loudly")]
fn warn_line(warning: &dyn std::fmt::Display) {
    eprintln!("om-balance: WARNING: {warning}");
}

/// The plan as a bar chart: per server, agents before and after against its capacity, the
/// RMS and servers agents cannot reach marked, and the number of agents that move.
fn chart_svg(plan: &Plan<'_>) -> Result<String> {
    use opsmgr_tools::report::{Series, bar_chart};
    let mut names = Vec::new();
    let mut marks = Vec::new();
    let mut capacity = Vec::new();
    let mut before = Vec::new();
    for (server, count) in plan.load_before() {
        names.push(server.name.to_string());
        let mut mark = Vec::new();
        if server.role == opsmgr_model::inventory::ServerRole::Rms {
            mark.push("RMS");
        }
        if !server.agent_reachable {
            mark.push("unreachable");
        }
        marks.push(mark.join(", "));
        capacity.push(server.capacity() as f64);
        before.push(count as f64);
    }
    let after: Vec<f64> = plan.load_after().map(|(_, n)| n as f64).collect();
    let agents = plan.inventory().agents.len();
    let width = (160 * names.len() as u32).clamp(640, 4000);
    bar_chart(
        &format!(
            "Management group {}: {} of {agents} agents move to another primary",
            plan.inventory().management_group,
            plan.moved()
        ),
        "agents",
        &names,
        &[
            Series {
                name: "before",
                colour: plotters::style::RGBColor(0x9e, 0x9e, 0x9e),
                values: &before,
            },
            Series {
                name: "after",
                colour: plotters::style::RGBColor(0x2b, 0x6c, 0xb0),
                values: &after,
            },
        ],
        Some(&capacity),
        &marks,
        (width, 420),
    )
}

fn table(plan: &Plan<'_>, policy: &Policy) -> String {
    let inv = plan.inventory();
    let mut s = String::new();
    let failovers = policy
        .failovers
        .map_or("all other eligible servers".to_owned(), |k| k.to_string());
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "Management group {}: {} agent(s), {} server(s); tolerance {:.1}%, failovers: {failovers}, RMS {}",
        inv.management_group,
        inv.agents.len(),
        inv.servers.len(),
        policy.tolerance * 100.0,
        if policy.include_rms {
            "included"
        } else {
            "excluded"
        },
    );
    let _ = writeln!(s);
    let width = inv
        .servers
        .iter()
        .map(|x| x.name.as_str().len())
        .max()
        .unwrap_or(0)
        .max("IF THIS FAILS".len());
    let _ = writeln!(
        s,
        "{:<width$}  {:<10}  {:>5}  {:>8}  {:>6}  {:>6}",
        "SERVER", "ROLE", "REACH", "CAPACITY", "BEFORE", "AFTER"
    );
    for ((server, before), (_, after)) in plan.load_before().zip(plan.load_after()) {
        let _ = writeln!(
            s,
            "{:<width$}  {:<10}  {:>5}  {:>8}  {:>6}  {:>6}",
            server.name.as_str(),
            server.role.to_string(),
            if server.agent_reachable { "yes" } else { "no" },
            server.capacity(),
            before,
            after
        );
    }
    let _ = writeln!(s);
    for pool in plan.pools() {
        let action = if pool.held_by_tolerance {
            "primaries left in place"
        } else {
            "rebalanced"
        };
        let _ = writeln!(
            s,
            "{} pool: {} agent(s) over {} eligible server(s); {} without a usable primary; {} above their server's share ({:.1}%): {action}",
            pool.pool,
            pool.agents,
            pool.eligible.len(),
            pool.must_move,
            pool.excess,
            pool.imbalance * 100.0,
        );
    }
    let _ = writeln!(
        s,
        "Agents moved to another primary: {}; agents changed (primary or failover list): {}",
        plan.moved(),
        plan.changed()
    );
    let failures: Vec<_> = plan
        .pools()
        .iter()
        .flat_map(|p| p.failures.iter())
        .filter(|f| f.worst.is_some())
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<width$}  {:<width$}  {:>6}  {:>8}",
            "IF THIS FAILS", "WORST SURVIVOR", "AGENTS", "IDEAL"
        );
        for f in failures {
            let worst = f.worst.map_or("-", |w| w.as_str());
            let _ = writeln!(
                s,
                "{:<width$}  {:<width$}  {:>6}  {:>8.1}",
                f.failed.as_str(),
                worst,
                f.worst_load,
                f.ideal
            );
        }
    }
    s
}

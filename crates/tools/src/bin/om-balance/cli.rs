//! Command-line arguments of om-balance.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use opsmgr_model::HostName;
use opsmgr_model::balance::Policy;

/// Balances agents over the management servers of a management group.
///
/// Reads the inventory (JSON, or a CSV export of agents with a JSON servers file), computes a
/// target for every agent that moves as few agents as possible and spreads each server's
/// agents over the others as failovers, and prints, checks or applies the plan.
#[derive(Debug, Parser)]
#[command(
    name = "om-balance",
    version,
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

const AFTER_HELP: &str = r#"Input files (UTF-8 with or without a byte order mark, or UTF-16 with one; CRLF or LF):

  A CSV export (with --servers): the header Agent,PrimaryManagementServer,FailoverManagementServers,
  one agent per line, failovers in order in one field separated by ';' or ','. What Windows
  PowerShell's Export-Csv writes is read as it is (the #TYPE line, quoted fields):
    #TYPE System.Management.Automation.PSCustomObject
    "Agent","PrimaryManagementServer","FailoverManagementServers"
    "server01.company.local","MGT01.prod.local","MGT02.prod.local;MGT03.prod.local"
    "server02.company.local","","MGT01.prod.local"

  The servers file (SERVERS.json): the management group and its servers; role is rms,
  management or gateway; agent_reachable defaults to true, capacity to the role's (3000 for a
  management server, 2000 for a gateway):
    {"management_group": "PROD",
     "servers": [
       {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
       {"name": "MGT01.prod.local", "role": "management"},
       {"name": "MGT02.prod.local", "role": "management"},
       {"name": "MGT03.prod.local", "role": "management", "capacity": 1500},
       {"name": "GW01.dmz.local", "role": "gateway"}]}

  `om-balance export-script --shell ps2007|ps2012` prints a PowerShell script that writes both
  files from a running management group.

Management group names follow Operations Manager's rule: at most 64 characters, no control
characters, no leading or trailing space, none of ( ) ^ ~ : ; . ! ? " , ' ` @ # $ % & * + = [ ] { } | \ / < >

Exit codes: 0 success (check: balanced), 1 check: not balanced, 2 bad usage or input (nothing written)."#;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Prints the plan: a table, JSON, or a PowerShell script for the running system.
    Plan {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// JSON indented for reading (the default on a terminal; compact otherwise, for
        /// scripts and for size: 100,000 agents make hundreds of MB indented).
        #[arg(long)]
        pretty: bool,
        /// Also draw the plan as an SVG chart: per server, agents before and after against its
        /// capacity, the RMS and servers agents cannot reach marked, and how many agents move.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
    },
    /// Exits 0 when the group is balanced within tolerance, 1 with a one-line reason when not.
    Check {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Prints a PowerShell script that writes agents.csv and servers.json (the two files
    /// `plan --servers` reads) from a running management group.
    ExportScript {
        /// The shell the script runs in: ps2007 (the 2007 R2 Command Shell, PowerShell 1.0)
        /// or ps2012 (the Operations Manager Shell, 2012 and later).
        #[arg(long, value_enum)]
        shell: ShellArg,
    },
    /// Writes the balanced inventory (JSON) atomically.
    Apply {
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        policy: PolicyArgs,
        /// Where to write the new inventory; may be the input file itself.
        #[arg(value_parser = opsmgr_tools::json_output_path, short = 'o', long = "output", value_name = "NEW.json")]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Input {
    /// The inventory: JSON, or with --servers a CSV export with the columns
    /// Agent,PrimaryManagementServer,FailoverManagementServers. `-` reads stdin.
    #[arg(value_parser = opsmgr_tools::local_path, value_name = "INVENTORY")]
    pub(crate) inventory: PathBuf,
    /// A JSON file with the management group and its servers, for a CSV inventory.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "SERVERS.json")]
    pub(crate) servers: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// Failover servers per agent: a number, or `all` for every other eligible server of
    /// the agent's pool (a long list, rewritten for every agent whenever a server is added
    /// or drained). Capped at the other eligible servers.
    #[arg(
        long,
        value_name = "K|all",
        default_value_t = Failovers(Policy::default().failovers),
        value_parser = failovers
    )]
    failovers: Failovers,
    /// Let the RMS carry agents (only when agents can reach it).
    #[arg(long)]
    include_rms: bool,
    /// Percent of agents that may stand above their server's share before any primary moves.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = percent)]
    tolerance: f64,
    /// Drain this server: its agents move and nobody fails over to it. Repeatable.
    #[arg(long, value_name = "SERVER")]
    exclude: Vec<HostName>,
}

/// `--failovers`: a count, or `None` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failovers(Option<usize>);

impl fmt::Display for Failovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(k) => write!(f, "{k}"),
            None => f.write_str("all"),
        }
    }
}

fn failovers(s: &str) -> Result<Failovers, String> {
    if s.eq_ignore_ascii_case("all") {
        return Ok(Failovers(None));
    }
    s.parse()
        .map(|k| Failovers(Some(k)))
        .map_err(|_| format!("'{s}' is not a number of failover servers or 'all'"))
}

fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=100.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not a percentage between 0 and 100"))
    }
}

impl PolicyArgs {
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            include_rms: self.include_rms,
            failovers: self.failovers.0,
            tolerance: self.tolerance / 100.0,
            exclude: self.exclude.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Load per server before and after, moves, and the effect of each single failure.
    Table,
    /// The complete target and the changes, for scripts.
    Json,
    /// A script for the Operations Manager 2007 R2 Command Shell (Set-ManagementServer;
    /// PowerShell 1.0). Run it with -WhatIf first: it prints what it would change.
    Ps2007,
    /// A script for Operations Manager 2012 and later (Set-SCOMParentManagementServer).
    /// Run it with -WhatIf first: it prints what it would change.
    Ps2012,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShellArg {
    /// The Operations Manager 2007 R2 Command Shell (PowerShell 1.0 or 2.0).
    Ps2007,
    /// The Operations Manager Shell, 2012 and later.
    Ps2012,
}

//! Command-line arguments of om-configfix.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Points the Reporting server and the Web Console at a new RMS, changing only the values.
///
/// Every byte of the file but the changed value stays: encoding, byte-order mark, line
/// endings, comments, quotes and spacing. Writes are atomic, keep the file's permissions and
/// leave a backup (PATH.bak, or PATH.bak.YYYYMMDDTHHMMSSZ when that exists).
#[derive(Debug, Parser)]
#[command(
    name = "om-configfix",
    version,
    after_help = "Exit codes: 0 success (changed, or already set), 2 refused or bad input: nothing written."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// rsreportserver.config: the ServerName of the OpsMgr Security and Authentication extensions.
    Reporting {
        /// The rsreportserver.config file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        path: PathBuf,
        /// The new RMS, by its fully qualified domain name.
        #[arg(long, value_name = "FQDN", value_parser = opsmgr_tools::fqdn)]
        rms: String,
        /// How many ServerName values must be found.
        #[arg(long, value_name = "N", default_value_t = opsmgr_configfix::REPORTING_EXPECTED)]
        expect: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Web.config of the Web Console: the MOMServer setting in appSettings.
    Webconsole {
        /// The Web.config file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        path: PathBuf,
        /// The new RMS, by its fully qualified domain name.
        #[arg(long, value_name = "FQDN", value_parser = opsmgr_tools::fqdn)]
        rms: String,
        #[command(flatten)]
        common: Common,
    },
    /// Any value: TARGET is a path such as `configuration/appSettings/add[@key='X']/@value`
    /// or `Configuration//ServerName`.
    Set {
        /// The XML file.
        #[arg(value_parser = opsmgr_tools::local_path)]
        path: PathBuf,
        /// Where the value is.
        target: String,
        /// The new value (escaped for its place when written).
        value: String,
        /// How many matches there must be [default: all, at least one].
        #[arg(long, value_name = "N")]
        expect: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Change only values that are now OLD (compare-and-swap); values already set are left.
    #[arg(long, value_name = "OLD")]
    pub(crate) from: Option<String>,
    /// Print a unified diff of what would change; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Do not keep a backup of the original.
    #[arg(long)]
    pub(crate) no_backup: bool,
    /// Report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

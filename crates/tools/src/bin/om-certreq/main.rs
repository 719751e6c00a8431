//! `om-certreq`: certreq's command lines. `-new` makes a key and a PKCS#10 request from a
//! certreq.inf policy, keeping the key pending in the machine's store.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser};
use opsmgr_ca::{
    PendingInfo, PolicyOptions, PrivateKey, Stores, build_request, parse_policy, request_to_pem,
};
use opsmgr_tools::machine_dir;
use serde::Serialize;

/// certreq for agents in untrusted networks.
///
/// `om-certreq -new [-q] [-f] POLICY.inf REQUEST.req` generates the key the policy asks for,
/// keeps it pending in the machine's store (or the user's, with MachineKeySet = FALSE) and
/// writes the request as certreq does. Windows-style switches (`-new`, `-q`, `-f`) and
/// double-dash ones (`--new`, `--quiet`, `--force`) are both accepted.
#[derive(Debug, Parser)]
#[command(
    name = "om-certreq",
    version,
    group(ArgGroup::new("verb").required(true).args(["new"])),
    after_help = "Exit codes: 0 success, 2 bad usage or input (nothing written)."
)]
struct Cli {
    /// Make a new key and request from POLICY.inf into REQUEST.req.
    #[arg(long)]
    new: bool,
    /// Quiet: never ask (certreq's -q); this tool never asks anyway.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Overwrite REQUEST.req when it exists.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Accept KeyLength = 1024 (the seed's file). 1024-bit RSA is broken for this purpose.
    #[arg(long)]
    allow_legacy_rsa1024: bool,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// The certreq.inf policy.
    #[arg(value_name = "POLICY.inf")]
    policy: PathBuf,
    /// The request file to write.
    #[arg(value_name = "REQUEST.req")]
    request: PathBuf,
}

/// certreq's single-dash words become clap's double-dash flags.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| match a.to_ascii_lowercase().as_str() {
        "-new" => "--new".to_owned(),
        _ => a,
    })
    .collect()
}

#[derive(Serialize)]
struct Report {
    request: String,
    pending_id: String,
    subject: String,
    key: String,
    dns_names: Vec<String>,
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-certreq", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    let name = cli.policy.display().to_string();
    let bytes = std::fs::read(&cli.policy).with_context(|| format!("reading {name}"))?;
    let options = PolicyOptions {
        allow_legacy_rsa1024: cli.allow_legacy_rsa1024,
    };
    let policy = parse_policy(&bytes, &name, options)?;
    if cli.request.exists() && !cli.force {
        bail!("{} exists; -f overwrites it", cli.request.display());
    }
    let stores = Stores::open(&machine_dir(cli.machine)?, policy.machine_key_set)?;
    let key = PrivateKey::generate(policy.key)?;
    let request = build_request(&policy, &key)?;
    let pem = request_to_pem(&request)?;
    let info = PendingInfo {
        subject: policy.subject.to_string(),
        exportable: policy.exportable,
        friendly_name: policy.friendly_name.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    // The key is kept before the request is written: a request never exists without its key.
    let id = {
        let lock = stores.lock()?;
        stores.add_pending(&lock, &key, &info)?
    };
    write_atomic(&cli.request, pem.as_bytes())?;
    let mut out = io::stdout().lock();
    if cli.json {
        let report = Report {
            request: cli.request.display().to_string(),
            pending_id: id,
            subject: info.subject,
            key: policy.key.to_string(),
            dns_names: policy.dns_names,
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "CertReq: Request Created")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = atomic_write_file::AtomicWriteFile::open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.commit())
        .with_context(|| format!("writing {}", path.display()))
}

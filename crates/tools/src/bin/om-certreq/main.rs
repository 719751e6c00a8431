//! `om-certreq`: certreq's command lines. `-new` makes a key and a PKCS#10 request from a
//! certreq.inf policy, keeping the key pending in the machine's store.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser};
use opsmgr_ca::{
    PendingInfo, PolicyOptions, PrivateKey, Stores, USER_STORES, build_request, parse_policy,
    request_to_pem,
};
use opsmgr_tools::{format_utc, machine_dir};
use serde::Serialize;

/// certreq for agents in untrusted networks.
///
/// `om-certreq -new [-q] [-f] POLICY.inf REQUEST.req` generates the key the policy asks for,
/// keeps it pending in the machine's store (or the user's, with MachineKeySet = FALSE) and
/// writes the request as certreq does. `om-certreq -accept [-q] CERT.cer` joins the issued
/// certificate with its pending key in the `My` store. Windows-style switches (`-new`,
/// `-accept`, `-q`, `-f`) and double-dash ones are both accepted.
#[derive(Debug, Parser)]
#[command(
    name = "om-certreq",
    version,
    group(ArgGroup::new("verb").required(true).args(["new", "accept"])),
    after_help = "Exit codes: 0 success, 2 bad usage or input (nothing written)."
)]
struct Cli {
    /// Make a new key and request: FILES are POLICY.inf REQUEST.req.
    #[arg(long)]
    new: bool,
    /// Install an issued certificate with its pending key: FILES is CERT.cer.
    #[arg(long)]
    accept: bool,
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
    /// POLICY.inf REQUEST.req for -new; CERT.cer for -accept.
    #[arg(value_name = "FILES", required = true)]
    files: Vec<PathBuf>,
}

/// certreq's single-dash words become clap's double-dash flags.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|a| match a.to_ascii_lowercase().as_str() {
        "-new" => "--new".to_owned(),
        "-accept" => "--accept".to_owned(),
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
    if cli.accept {
        return accept(&cli);
    }
    let [policy_path, request_path] = cli.files.as_slice() else {
        bail!("-new takes POLICY.inf and REQUEST.req");
    };
    let name = policy_path.display().to_string();
    let bytes = std::fs::read(policy_path).with_context(|| format!("reading {name}"))?;
    let options = PolicyOptions {
        allow_legacy_rsa1024: cli.allow_legacy_rsa1024,
    };
    let policy = parse_policy(&bytes, &name, options)?;
    if request_path.exists() && !cli.force {
        bail!("{} exists; -f overwrites it", request_path.display());
    }
    let stores = Stores::open(&machine_dir(cli.machine.clone())?, policy.machine_key_set)?;
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
    opsmgr_fsutil::write_atomic(request_path, pem.as_bytes())
        .with_context(|| format!("writing {}", request_path.display()))?;
    let mut out = io::stdout().lock();
    if cli.json {
        let report = Report {
            request: request_path.display().to_string(),
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

#[derive(Serialize)]
struct AcceptReport {
    serial: String,
    subject: String,
    not_before: String,
    not_after: String,
    thumbprint: String,
    already_installed: bool,
}

/// certreq -accept: the machine's store first, then the user's.
fn accept(cli: &Cli) -> Result<ExitCode> {
    let [cert_path] = cli.files.as_slice() else {
        bail!("-accept takes one CERT.cer");
    };
    let bytes =
        std::fs::read(cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let machine = machine_dir(cli.machine.clone())?;
    let now = SystemTime::now();
    let mut first_error = None;
    let mut accepted = None;
    for machine_key_set in [true, false] {
        if !machine_key_set && !machine.join(USER_STORES).exists() {
            continue;
        }
        let stores = Stores::open(&machine, machine_key_set)?;
        let lock = stores.lock()?;
        match stores.accept(&lock, &bytes, now) {
            Ok(a) => {
                accepted = Some(a);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(done) = accepted else {
        let e =
            first_error.map_or_else(|| anyhow::anyhow!("nothing to accept"), anyhow::Error::new);
        return Err(e.context(cert_path.display().to_string()));
    };
    let c = &done.cert;
    let report = AcceptReport {
        serial: c.serial_hex(),
        subject: c.subject.clone(),
        not_before: format_utc(c.not_before),
        not_after: format_utc(c.not_after),
        thumbprint: c.thumbprint.clone(),
        already_installed: done.already,
    };
    let mut out = io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "Installed Certificate:")?;
        writeln!(out, "  Serial Number: {}", report.serial)?;
        writeln!(out, "  Subject: {}", report.subject)?;
        writeln!(out, "  NotBefore: {}", report.not_before)?;
        writeln!(out, "  NotAfter: {}", report.not_after)?;
        writeln!(out, "  Thumbprint: {}", report.thumbprint)?;
        if done.already {
            writeln!(out, "(already installed; nothing changed)")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

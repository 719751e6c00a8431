//! `om-ca`: creates the standalone CA of the seed and processes the drop folder where hosts
//! leave their requests.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use opsmgr_ca::authority::{Authority, CA_CERT, InitOptions};
use opsmgr_ca::dropfolder::{Outcome, ProcessOptions, Stage};
use opsmgr_ca::request::KeyType;
use opsmgr_ca::windows::{KitKey, SharePath, agent_kit};
use opsmgr_model::inventory::Inventory;
use opsmgr_tools::{
    PasswordArgs, format_utc, open_authority, password_weakness, read_password, rfc3339_utc,
};

/// The standalone CA for agents in untrusted networks.
///
/// `om-ca init DIR --name JAMA00` creates the root and the CA's folder (key 0600, optionally
/// password-encrypted; certificate; policy in config.json; SQLite request database).
/// `om-ca process --share SHARE --ca DIR [--issue]` turns every `<FQDN>.req` in SHARE into
/// `<FQDN>.cer` and `<FQDN>.bundle`, moving requests to processed/ or rejected/; running it
/// again after a kill finishes the batch.
#[derive(Debug, Parser)]
#[command(
    name = "om-ca",
    version,
    after_help = "Exit codes: 0 success, 1 process: some requests were rejected or left pending, \
or a CRL that was due could not be published; status: the CRL's next update has passed; 2 bad usage or \
input (nothing changed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RootKey {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KitKeyArg {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-4096")]
    Rsa4096,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates a CA in DIR.
    Init {
        /// The CA's folder (created; must not hold a CA).
        #[arg(value_parser = opsmgr_tools::local_path)]
        dir: PathBuf,
        /// The root's common name.
        #[arg(long, default_value_t = InitOptions::default().name)]
        name: String,
        /// The root's key [default: ecdsa-p256, the CA library's default].
        #[arg(long, value_enum)]
        key: Option<RootKey>,
        /// The root's validity in years (the seed used 100).
        #[arg(long, default_value_t = InitOptions::default().validity_years)]
        validity_years: u32,
        /// Validity of issued certificates in days; never beyond the root's end.
        #[arg(long, default_value_t = InitOptions::default().issued_validity_days)]
        issued_validity_days: u32,
        /// Issue requests when they are submitted instead of leaving them pending.
        #[arg(long)]
        auto_issue: bool,
        /// Encrypt the CA's key with a password (asked, or from the password switches).
        #[arg(long)]
        encrypt_key: bool,
        #[command(flatten)]
        password: PasswordArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the issued certificates (not revoked) that expire within a time: what to renew.
    Expiring {
        /// The CA's folder [default: $OPSMGR_CA, else the folder named in
        /// ~/.config/opsmgr/ca].
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        ca: Option<PathBuf>,
        /// How far ahead to look: days, weeks, months (of 30 days) or years: `60d`, `8w`,
        /// `2months`, `1y`.
        #[arg(long, value_name = "SPAN", default_value = "60d", value_parser = opsmgr_tools::days)]
        within: u32,
        #[command(flatten)]
        password: PasswordArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publishes a new CRL now (the batch publishes one when half of the last one's
    /// validity has passed): CA/ca.crl (PEM) and NAME.crl (DER, NAME the CA's name) in the policy's
    /// crl_publish_dir.
    Crl {
        /// The CA's folder [default: $OPSMGR_CA, else the folder named in
        /// ~/.config/opsmgr/ca].
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        ca: Option<PathBuf>,
        /// Only when one is due.
        #[arg(long)]
        if_due: bool,
        #[command(flatten)]
        password: PasswordArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes the agent kit: the agents' certreq.inf (from the CA's policy), request.ps1 and
    /// request.cmd (which find the machine's FQDN, run certreq -new and copy the request to the
    /// share) and the root, for stock Windows machines with nothing of ours installed.
    AgentKit {
        /// The CA's folder [default: $OPSMGR_CA, else the folder named in
        /// ~/.config/opsmgr/ca].
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        ca: Option<PathBuf>,
        /// The drop share as the agents reach it: a UNC path, `\\ca01\certrequests`.
        #[arg(long, value_name = "UNC")]
        share: String,
        /// The key the agents make, with the SChannel provider the agent reads: rsa-2048
        /// (every Windows from 2003) or rsa-4096. No ECDSA: the agent reads keys of legacy
        /// CryptoAPI providers only.
        #[arg(long, value_enum, default_value = "rsa-2048")]
        key: KitKeyArg,
        /// Overwrite files that are there.
        #[arg(short = 'f', long)]
        force: bool,
        #[command(flatten)]
        password: PasswordArgs,
        /// The folder to write the kit into (created).
        #[arg(value_parser = opsmgr_tools::local_path, value_name = "OUT")]
        out: PathBuf,
    },
    /// Processes the drop folder.
    Process {
        #[command(flatten)]
        share: ShareArgs,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs as a service: processes the share as requests arrive (file events, and a full
    /// sweep every --sweep for mounts that send none), republishes the CRL when it is due,
    /// and on SIGTERM or SIGINT finishes the batch in hand and exits 0. One line per outcome
    /// on stdout (key=value, or JSON lines with --json), for journald and log shippers.
    Serve {
        #[command(flatten)]
        share: ShareArgs,
        /// A full sweep of the share at least this often: `60s`, `5m`.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
        sweep: std::time::Duration,
        /// Write JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// The CA at a glance: requests by state, those held for an operator (and why, for how
    /// long), the root, the CRL, the current certificates expiring soon, the last batch. Reads
    /// the CA's public parts only: no key, no password, nothing written but --html's page.
    Status {
        /// The CA's folder [default: $OPSMGR_CA, else the folder named in
        /// ~/.config/opsmgr/ca].
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
        ca: Option<PathBuf>,
        /// How far ahead expiring certificates are listed: `60d`, `8w`, `2months`.
        #[arg(long, value_name = "SPAN", default_value = "60d", value_parser = opsmgr_tools::days)]
        within: u32,
        /// Also write the status as one self-contained HTML page, with charts of the
        /// certificates issued per week and ending per month.
        #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `process` and `serve` both take: the share, the CA and who is issued.
#[derive(Debug, clap::Args)]
struct ShareArgs {
    /// The drop folder.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "SHARE")]
    share: PathBuf,
    /// The CA's folder [default: $OPSMGR_CA, else the folder named in
    /// ~/.config/opsmgr/ca].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    ca: Option<PathBuf>,
    /// Issue approved requests now, even when the policy leaves them pending.
    #[arg(long)]
    issue: bool,
    /// Threads for reviewing and signing [default: all cores].
    #[arg(long, value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Allow only the agents and servers of this inventory (JSON); its servers (RMS,
    /// management servers, gateways) are never issued from the share: their requests stay
    /// pending for `om-certutil -config CA -resubmit ID`.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "INVENTORY")]
    inventory: Option<PathBuf>,
    /// Leave requests modified less than this long ago for the next run (a copy may still
    /// be arriving): `2s`, `500ms`, `0s`.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    settle: std::time::Duration,
    #[command(flatten)]
    password: PasswordArgs,
}

impl ShareArgs {
    /// The CA's folder, the CA opened, and the batch's options.
    fn open(&self) -> Result<(PathBuf, Authority, ProcessOptions)> {
        let inventory = self
            .inventory
            .as_ref()
            .map(|p| Inventory::load(p))
            .transpose()?;
        let ca = opsmgr_tools::ca_dir(self.ca.clone())?;
        let authority = open_authority(&ca, &self.password)?;
        let options = opsmgr_tools::jobs::drop_folder_options(
            inventory.as_ref(),
            self.issue,
            self.jobs,
            self.settle,
        );
        Ok((ca, authority, options))
    }
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-ca", run)
}

fn run() -> Result<ExitCode> {
    match Cli::parse_from(opsmgr_tools::windows_args(std::env::args(), &[])).command {
        Command::Init {
            dir,
            name,
            key,
            validity_years,
            issued_validity_days,
            auto_issue,
            encrypt_key,
            password,
            json,
        } => {
            let secret = if encrypt_key {
                let p = read_password(&password.source(), "Password for the CA's key: ", true)?;
                if let Some(why) = password_weakness(&p) {
                    bail!("the password is weak: {why}; nothing was written");
                }
                Some(p)
            } else {
                None
            };
            let options = InitOptions {
                name,
                key: match key {
                    None => InitOptions::default().key,
                    Some(RootKey::EcdsaP256) => KeyType::EcdsaP256,
                    Some(RootKey::EcdsaP384) => KeyType::EcdsaP384,
                    Some(RootKey::Rsa2048) => KeyType::Rsa(2048),
                    Some(RootKey::Rsa3072) => KeyType::Rsa(3072),
                    Some(RootKey::Rsa4096) => KeyType::Rsa(4096),
                },
                validity_years,
                issued_validity_days,
                password: secret,
                auto_issue,
            };
            let ca = Authority::init(&dir, &options, SystemTime::now())
                .with_context(|| format!("creating a CA in {}", dir.display()))?;
            let root = ca.issuer().root();
            let mut out = opsmgr_tools::stdout();
            if json {
                let report = serde_json::json!({
                    "dir": dir.display().to_string(),
                    "subject": root.subject,
                    "serial": root.serial_hex(),
                    "thumbprint": root.thumbprint,
                    "not_before": rfc3339_utc(root.not_before),
                    "not_after": rfc3339_utc(root.not_after),
                    "config": ca.issuer().config(),
                });
                opsmgr_tools::write_json(&mut out, &report)?;
            } else {
                writeln!(out, "Created the CA {} in {}", root.subject, dir.display())?;
                writeln!(out, "  Root certificate: {}", dir.join(CA_CERT).display())?;
                writeln!(out, "  Thumbprint: {}", root.thumbprint)?;
                writeln!(out, "  NotAfter: {}", format_utc(root.not_after))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Expiring {
            ca,
            within,
            password,
            json,
        } => {
            let authority = open_authority(&opsmgr_tools::ca_dir(ca)?, &password)?;
            let now = SystemTime::now();
            let records = opsmgr_tools::jobs::expiring(
                &authority,
                std::time::Duration::from_secs(u64::from(within) * 86_400),
                now,
            )?;
            let mut out = opsmgr_tools::stdout();
            if json {
                opsmgr_tools::write_json(&mut out, &records)?;
            } else {
                for r in &records {
                    // Only records with an end passed the filter.
                    let Some(end) = r.not_after else { continue };
                    let state = match end.duration_since(now) {
                        Ok(left) if !left.is_zero() => {
                            format!("{} days left", left.as_secs() / 86_400)
                        }
                        _ => "expired".to_owned(),
                    };
                    writeln!(
                        out,
                        "{:>6}  {:<32}  {:<32}  {}  {state}",
                        r.id,
                        r.common_name.as_deref().unwrap_or(&r.subject),
                        r.serial.as_deref().unwrap_or("-"),
                        format_utc(end)
                    )?;
                }
                let by = now + std::time::Duration::from_secs(u64::from(within) * 86_400);
                writeln!(
                    out,
                    "{} current certificate(s) expire within {} (by {}).",
                    records.len(),
                    opsmgr_tools::days_in_words(within),
                    format_utc(by)
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crl {
            ca,
            if_due,
            password,
            json,
        } => {
            let mut authority = open_authority(&opsmgr_tools::ca_dir(ca)?, &password)?;
            let now = SystemTime::now();
            let published = if if_due {
                authority.publish_crl_if_due(now)?
            } else {
                Some(authority.publish_crl(now)?)
            };
            let mut out = opsmgr_tools::stdout();
            match (&published, json) {
                (Some(crl), true) => {
                    let report = serde_json::json!({
                        "number": crl.number,
                        "this_update": rfc3339_utc(crl.this_update),
                        "next_update": rfc3339_utc(crl.next_update),
                        "revoked": crl.revoked,
                        "files": crl.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    });
                    opsmgr_tools::write_json(&mut out, &report)?;
                }
                (None, true) => writeln!(out, "null")?,
                (Some(crl), false) => {
                    for file in &crl.files {
                        writeln!(out, "CRL {} published to {}", crl.number, file.display())?;
                    }
                    writeln!(
                        out,
                        "  {} revoked; next update {}",
                        crl.revoked,
                        format_utc(crl.next_update)
                    )?;
                }
                (None, false) => writeln!(out, "No CRL was due.")?,
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AgentKit {
            ca,
            share,
            key,
            force,
            password,
            out,
        } => {
            let authority = open_authority(&opsmgr_tools::ca_dir(ca)?, &password)?;
            let share = SharePath::new(&share)?;
            let key = match key {
                KitKeyArg::Rsa2048 => KitKey::Rsa2048,
                KitKeyArg::Rsa4096 => KitKey::Rsa4096,
            };
            let name = &authority.issuer().config().name;
            if authority.issuer().root_is_ecdsa() {
                opsmgr_tools::warn(
                    "om-ca",
                    &format_args!(
                        "{name}'s root key is ECDSA: Windows Server 2003 and XP cannot verify the certificates it signs; for agents that old, make the CA with om-ca init --key rsa-2048"
                    ),
                );
            }
            let kit = agent_kit(&share, key, name)?;
            let root = opsmgr_ca::cert::certificate_to_pem(&authority.issuer().root().der)?;
            let files = [
                ("certreq.inf".to_owned(), kit.inf),
                ("request.ps1".to_owned(), kit.request_ps1),
                ("request.cmd".to_owned(), kit.request_cmd),
                (format!("{name}.cer"), root),
            ];
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (file, _) in &files {
                opsmgr_tools::refuse_overwrite(&out.join(file), force, "-f")?;
            }
            let mut stdout = opsmgr_tools::stdout();
            for (file, text) in &files {
                let path = out.join(file);
                opsmgr_fsutil::write_atomic(&path, text.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?;
                writeln!(stdout, "wrote {}", path.display())?;
            }
            writeln!(
                stdout,
                "On each agent, as an administrator, from a folder holding these files: powershell -ExecutionPolicy Bypass -File request.ps1 (or request.cmd). The root's thumbprint, to check {name}.cer by: {}",
                authority.issuer().root_pin()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { share, sweep, json } => serve(&share, sweep, json),
        Command::Status {
            ca,
            within,
            html,
            json,
        } => status(ca, within, html, json),
        Command::Process { share: args, json } => {
            let (ca, mut authority, options) = args.open()?;
            let share = args.share;
            let bar = progress_bar(json);
            let started = Instant::now();
            let (summary, record_warning) = opsmgr_tools::jobs::process(
                &mut authority,
                &share,
                &options,
                SystemTime::now(),
                &|stage, done, total| {
                    if let Some(bar) = &bar {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                        bar.set_message(match stage {
                            Stage::Review => "reviewing",
                            Stage::Sign => "signing",
                            Stage::Write => "writing",
                        });
                    }
                },
            )?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Some(w) = &record_warning {
                opsmgr_tools::warn("om-ca", w);
            }
            let seconds = started.elapsed().as_secs_f64();
            // Every request left pending says how an operator issues it.
            let mut summary = summary;
            for f in &mut summary.files {
                if let (Outcome::Pending, Some(id)) = (f.result, f.id) {
                    f.message.push_str(&format!(
                        " (request {id}: issue it with om-certutil -config {} -resubmit {id}, or refuse it with -deny {id})",
                        ca.display()
                    ));
                }
            }
            // Said once for the run, and only when it issued something.
            let note = authority
                .issuer()
                .truncated_at(SystemTime::now())
                .filter(|_| summary.issued > 0)
                .map(|end| {
                    format!(
                        "certificates issued now end with the root, on {}, before the {} days the policy asks",
                        format_utc(end),
                        authority.issuer().config().validity_days
                    )
                });
            let installers = authority.installer_dir();
            let mut out = opsmgr_tools::stdout();
            if json {
                let mut value = serde_json::to_value(&summary)?;
                value["crl"] = match &summary.crl {
                    Some(crl) => serde_json::json!({
                        "number": crl.number,
                        "next_update": rfc3339_utc(crl.next_update),
                        "files": crl.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                    }),
                    None => serde_json::Value::Null,
                };
                value["seconds"] = serde_json::json!(seconds);
                value["note"] = serde_json::json!(note);
                value["installers"] = serde_json::json!(installers.display().to_string());
                opsmgr_tools::write_json(&mut out, &value)?;
            } else {
                if let Some(note) = &note {
                    writeln!(out, "note: {note}")?;
                }
                for f in summary.files.iter().filter(|f| {
                    f.result != Outcome::Issued || f.message.contains("could not be moved")
                }) {
                    writeln!(out, "{}: {}: {}", f.file, f.result, f.message)?;
                }
                for removed in &summary.removed {
                    writeln!(out, "share: {removed}")?;
                }
                if let Some(crl) = &summary.crl {
                    for file in &crl.files {
                        writeln!(
                            out,
                            "CRL {} published to {} (next update {})",
                            crl.number,
                            file.display(),
                            format_utc(crl.next_update)
                        )?;
                    }
                }
                if let Some(e) = &summary.crl_error {
                    writeln!(
                        out,
                        "error: the CRL was due but could not be published: {e}"
                    )?;
                }
                if summary.issued > 0 {
                    writeln!(
                        out,
                        "installers of the hosts issued are in {}: publish that folder read-only to the agents (never through the share)",
                        installers.display()
                    )?;
                }
                writeln!(
                    out,
                    "processed {}, issued {}, pending {}, rejected {}, duplicates {}, waiting {} in {seconds:.2} s",
                    summary.processed,
                    summary.issued,
                    summary.pending,
                    summary.rejected,
                    summary.duplicates,
                    summary.waiting
                )?;
            }
            Ok(
                if summary.issued == summary.processed
                    && summary.crl_error.is_none()
                    && summary.unmoved == 0
                {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(opsmgr_tools::exit::NO)
                },
            )
        }
    }
}

fn progress_bar(json: bool) -> Option<ProgressBar> {
    if json || !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec}") {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// A `key=value` field of a log line: the value quoted when it holds a space, a quote, `=`
/// or nothing (control characters are escaped already in every text the CA reports).
fn field(out: &mut String, key: &str, value: &str) {
    let quote = value.is_empty() || value.contains([' ', '"', '=', '\\']);
    out.push(' ');
    out.push_str(key);
    out.push('=');
    if quote {
        out.push('"');
        out.push_str(&value.replace('\\', "\\\\").replace('"', "\\\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One line for each event of the service: `event key=value ...`, or a JSON object with the
/// same fields.
fn event_line(event: &opsmgr_tools::jobs::Event<'_>, json: bool) -> Result<String> {
    use opsmgr_tools::jobs::Event;
    use serde_json::{Value, json};
    let (name, fields): (&str, Vec<(&str, Value)>) = match event {
        Event::Started { no_events } => (
            "start",
            vec![
                ("watching", json!(no_events.is_none())),
                ("why_not", json!(no_events)),
            ],
        ),
        Event::Outcome(f) => (
            "outcome",
            vec![
                ("result", json!(f.result.to_string())),
                ("file", json!(f.file)),
                ("id", json!(f.id)),
                ("host", json!(f.host)),
                ("message", json!(f.message)),
            ],
        ),
        Event::Batch { summary, seconds } => (
            "batch",
            vec![
                ("processed", json!(summary.processed)),
                ("issued", json!(summary.issued)),
                ("pending", json!(summary.pending)),
                ("rejected", json!(summary.rejected)),
                ("duplicates", json!(summary.duplicates)),
                ("waiting", json!(summary.waiting)),
                ("seconds", json!((seconds * 1000.0).round() / 1000.0)),
            ],
        ),
        Event::Crl(crl) => (
            "crl",
            vec![
                ("number", json!(crl.number)),
                ("next_update", json!(rfc3339_utc(crl.next_update))),
            ],
        ),
        Event::Failed(why) => ("error", vec![("message", json!(why))]),
        Event::Stopped => ("stop", Vec::new()),
    };
    if json {
        let mut map = serde_json::Map::new();
        map.insert("event".into(), json!(name));
        for (k, v) in fields {
            map.insert(k.into(), v);
        }
        return Ok(Value::Object(map).to_string());
    }
    let mut line = name.to_owned();
    for (key, v) in &fields {
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        field(&mut line, key, &text);
    }
    Ok(line)
}

fn serve(args: &ShareArgs, sweep: std::time::Duration, json: bool) -> Result<ExitCode> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let (ca, mut authority, options) = args.open()?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("listening for SIGTERM and SIGINT")?;
    }
    let mut out = io::stdout().lock();
    let mut failure: Option<io::Error> = None;
    writeln!(
        out,
        "{}",
        if json {
            serde_json::json!({
                "event": "serve",
                "share": args.share.display().to_string(),
                "ca": ca.display().to_string(),
                "sweep_seconds": sweep.as_secs_f64(),
                "settle_seconds": args.settle.as_secs_f64(),
            })
            .to_string()
        } else {
            let mut line = "serve".to_owned();
            field(&mut line, "share", &args.share.display().to_string());
            field(&mut line, "ca", &ca.display().to_string());
            field(
                &mut line,
                "sweep",
                &humantime::format_duration(sweep).to_string(),
            );
            field(
                &mut line,
                "settle",
                &humantime::format_duration(args.settle).to_string(),
            );
            line
        }
    )?;
    out.flush()?;
    opsmgr_tools::jobs::serve(
        &mut authority,
        &args.share,
        &options,
        &opsmgr_tools::jobs::ServeOptions {
            sweep,
            ..Default::default()
        },
        &stop,
        &mut |event| {
            // Each line reaches the journal at once; a closed stdout stops the service.
            let written = event_line(&event, json)
                .map_err(io::Error::other)
                .and_then(|line| writeln!(out, "{line}"))
                .and_then(|()| out.flush());
            if let Err(e) = written
                && failure.is_none()
            {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                failure = Some(e);
            }
        },
    )?;
    match failure {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn status(ca: Option<PathBuf>, within: u32, html: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    // The public parts only: a monitoring account needs neither the key nor its password.
    let view = opsmgr_tools::open_view(&opsmgr_tools::ca_dir(ca)?)?;
    let s = opsmgr_tools::jobs::status(&view, within, SystemTime::now())?;
    if let Some(path) = &html {
        let page = opsmgr_tools::report::status_html(&s)?;
        opsmgr_fsutil::write_atomic(path, page.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = opsmgr_tools::stdout();
    if json {
        opsmgr_tools::write_json(&mut out, &s)?;
        out.flush()?;
        return Ok(overdue(&s));
    }
    let c = &s.counts;
    writeln!(
        out,
        "Certificate authority {}, at {}",
        s.name,
        format_utc(s.at)
    )?;
    writeln!(
        out,
        "Requests: {} pending, {} issued ({} current), {} denied, {} revoked",
        c.pending, c.issued, c.current, c.denied, c.revoked
    )?;
    if s.held.is_empty() {
        writeln!(out, "Held for an operator: none")?;
    } else {
        writeln!(out, "Held for an operator:")?;
        let rows: Vec<Vec<String>> = s
            .held
            .iter()
            .map(|h| {
                vec![
                    h.id.to_string(),
                    h.host.clone(),
                    format_utc(h.received),
                    opsmgr_tools::days_in_words(h.age_days as u32),
                    h.reason.clone(),
                ]
            })
            .collect();
        opsmgr_tools::write_table(
            &mut out,
            &["RequestId", "Host", "Waiting since", "Age", "Why"],
            &rows,
        )?;
    }
    writeln!(
        out,
        "Root: {}, thumbprint {}, expires {}",
        s.root.subject,
        s.root.thumbprint,
        format_utc(s.root.not_after)
    )?;
    match &s.crl {
        None => writeln!(out, "CRL: none published yet (om-ca crl publishes one)")?,
        Some(crl) => writeln!(
            out,
            "CRL: number {}, this update {}, next update {}{}",
            crl.number,
            format_utc(crl.this_update),
            crl.next_update
                .map_or_else(|| "none".to_owned(), format_utc),
            if crl.overdue {
                " (OVERDUE: relying parties that check it refuse every certificate; run om-ca crl)"
            } else {
                ""
            }
        )?,
    }
    writeln!(
        out,
        "Current certificates expiring within {}: {}",
        opsmgr_tools::days_in_words(s.expiring_within_days),
        s.expiring.len()
    )?;
    if !s.expiring.is_empty() {
        let rows: Vec<Vec<String>> = s
            .expiring
            .iter()
            .map(|e| {
                vec![
                    e.id.to_string(),
                    e.host.clone(),
                    e.serial.clone(),
                    format_utc(e.not_after),
                    opsmgr_tools::days_in_words(e.days_left as u32),
                ]
            })
            .collect();
        opsmgr_tools::write_table(
            &mut out,
            &["RequestId", "Host", "Serial", "NotAfter", "Left"],
            &rows,
        )?;
    }
    match &s.last_batch {
        None => writeln!(out, "Last batch: none has run")?,
        Some(b) => writeln!(
            out,
            "Last batch: {}, {:.2} s: processed {}, issued {}, pending {}, rejected {}, duplicates {}, waiting {}",
            format_utc(b.at),
            b.seconds,
            b.processed,
            b.issued,
            b.pending,
            b.rejected,
            b.duplicates,
            b.waiting
        )?,
    }
    if let Some(path) = &html {
        writeln!(out, "Wrote {}", path.display())?;
    }
    out.flush()?;
    Ok(overdue(&s))
}

/// `om-ca status`'s exit code: 1 when the CRL's next update has passed (relying parties that
/// check it refuse every certificate), for a monitoring check; else 0.
fn overdue(s: &opsmgr_tools::jobs::Status) -> ExitCode {
    if s.crl.as_ref().is_some_and(|c| c.overdue) {
        ExitCode::from(opsmgr_tools::exit::NO)
    } else {
        ExitCode::SUCCESS
    }
}

//! `om-momcertimport`: MOMCertImport. Chooses the agent's channel certificate from the
//! machine's `My` store and records it in the agent's settings, or clears it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use clap::{ArgGroup, Parser};
use opsmgr_ca::agent::{AgentSettings, Candidate};
use opsmgr_model::HostName;
use opsmgr_tools::{exit, format_utc, jobs, machine_dir, windows_args};
use serde::Serialize;

/// MOMCertImport for agents in untrusted networks.
///
/// `om-momcertimport /SubjectName FQDN` chooses, from the machine's My store, the certificate
/// whose common name or DNS alternative name is FQDN, that has its private key, is valid now,
/// carries both server and client authentication, and chains to a certificate in Root;
/// several: the newest. It records the certificate as the agent's
/// ChannelCertificateSerialNumber (serial bytes reversed) and ChannelCertificateHash (SHA-1
/// thumbprint). None qualifies: every certificate is listed with each condition it fails.
/// `om-momcertimport FILE.pfx` first imports the PFX's certificate and key into the machine's
/// My store (the key not exportable again; its root must already be in Root), as the 2007
/// tool's file argument did, then selects for the certificate's name (or /SubjectName).
/// `om-momcertimport /Remove` clears the setting. Restart the agent afterwards.
#[derive(Debug, Parser)]
#[command(
    name = "om-momcertimport",
    version,
    group(ArgGroup::new("verb").required(true).multiple(true).args(["subject_name", "remove", "file"])),
    after_help = "Exit codes: 0 installed (or removed), 1 no certificate in My qualifies (nothing changed), \
2 bad usage or input (nothing changed)."
)]
struct Cli {
    /// The agent's fully qualified host name.
    #[arg(long, value_name = "FQDN")]
    subject_name: Option<String>,
    /// Forget the channel certificate.
    #[arg(long, conflicts_with_all = ["subject_name", "file"])]
    remove: bool,
    /// A PFX to import into the machine's My store first.
    #[arg(value_parser = opsmgr_tools::local_path, value_name = "FILE.pfx")]
    file: Option<PathBuf>,
    /// The CA's CRL (PEM or DER) to keep in Root first: a certificate it lists is never
    /// chosen. Its root must be in Root, and have signed it.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE.crl", conflicts_with = "remove")]
    crl: Option<PathBuf>,
    #[command(flatten)]
    password: opsmgr_tools::PasswordArgs,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
}

/// MOMCertImport's `/Switch` words (any case, `/SubjectName:FQDN` too) become clap's
/// double-dash flags.
const SWITCHES: [(&str, &str); 4] = [
    ("subjectname", "--subject-name"),
    ("remove", "--remove"),
    ("crl", "--crl"),
    ("help", "--help"),
];

#[derive(Serialize)]
struct CandidateReport {
    thumbprint: String,
    subject: String,
    not_after: String,
    refusals: Vec<String>,
}

impl From<&Candidate> for CandidateReport {
    fn from(c: &Candidate) -> Self {
        Self {
            thumbprint: c.cert.thumbprint.clone(),
            subject: c.cert.subject.clone(),
            not_after: format_utc(c.cert.not_after),
            refusals: c.refusals.iter().map(ToString::to_string).collect(),
        }
    }
}

#[derive(Serialize)]
struct Report {
    /// The thumbprint of the certificate imported from the PFX, when one was given.
    imported: Option<String>,
    installed: bool,
    changed: bool,
    host: Option<String>,
    settings: AgentSettings,
    candidates: Vec<CandidateReport>,
}

fn main() -> ExitCode {
    opsmgr_tools::main_with_codes("om-momcertimport", run, |e| {
        if e.is::<Refused>() {
            exit::NO
        } else {
            exit::INPUT
        }
    })
}

/// No certificate qualifies: the command ran and its answer is no.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(windows_args(std::env::args(), &SWITCHES));
    let machine = machine_dir(cli.machine.clone())?;
    let host = cli
        .subject_name
        .as_deref()
        .map(|h| HostName::new(h).map_err(|e| anyhow::anyhow!("/SubjectName '{h}': {e}")))
        .transpose()?;
    let pfx = match &cli.file {
        Some(file) => {
            let bytes = opsmgr_tools::read_bounded(file, opsmgr_ca::store::MAX_PFX_BYTES)?;
            let password =
                opsmgr_tools::read_password(&cli.password.source(), "PFX password: ", false)?;
            Some((file, bytes, password))
        }
        None => None,
    };
    let crl = cli
        .crl
        .as_deref()
        .map(|p| opsmgr_tools::read_bounded(p, opsmgr_ca::store::MAX_CRL_BYTES))
        .transpose()?;
    let job = if cli.remove {
        jobs::Channel::Remove
    } else {
        jobs::Channel::Select {
            host: host.clone(),
            pfx: pfx.as_ref().map(|(path, bytes, password)| jobs::PfxFile {
                path,
                bytes,
                password,
            }),
            crl: crl.as_deref(),
        }
    };
    let mut out = opsmgr_tools::stdout();
    let done = jobs::record_channel(&machine, &job, SystemTime::now())?;
    let imported = done.imported.as_ref().map(|i| i.cert.thumbprint.clone());
    let host = done.host.as_ref().map(ToString::to_string);
    let selection = match done.outcome {
        jobs::ChannelOutcome::Recorded(selection) => selection,
        jobs::ChannelOutcome::NoneQualifies(candidates) => {
            let host = host.unwrap_or_default();
            if cli.json {
                let report = Report {
                    imported,
                    installed: false,
                    changed: false,
                    host: Some(host),
                    settings: done.settings,
                    candidates: candidates.iter().map(CandidateReport::from).collect(),
                };
                opsmgr_tools::write_json(&mut out, &report)?;
                return Ok(ExitCode::from(exit::NO));
            }
            let refusal = opsmgr_ca::agent::NoChannel {
                host: host.clone(),
                candidates,
            };
            let hint = if jobs::user_store_holds(&machine, &host)? {
                format!(
                    "\nnote: the user's My store holds a certificate for {host}, but the agent reads only the machine's: request it with MachineKeySet = TRUE"
                )
            } else {
                String::new()
            };
            return Err(Refused(format!("{refusal}{hint}")).into());
        }
        jobs::ChannelOutcome::Removed => {
            if cli.json {
                let report = Report {
                    imported,
                    installed: false,
                    changed: done.changed,
                    host: None,
                    settings: done.settings,
                    candidates: Vec::new(),
                };
                opsmgr_tools::write_json(&mut out, &report)?;
            } else if done.changed {
                writeln!(out, "Successfully removed the channel certificate setting.")?;
                writeln!(
                    out,
                    "Restart the Health Service for the change to take effect."
                )?;
            } else {
                writeln!(out, "No channel certificate was set; nothing changed.")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let c = &selection.chosen;
    if cli.json {
        let report = Report {
            imported,
            installed: true,
            changed: done.changed,
            host,
            candidates: selection
                .candidates
                .iter()
                .map(CandidateReport::from)
                .collect(),
            settings: done.settings,
        };
        opsmgr_tools::write_json(&mut out, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(i) = &done.imported {
        writeln!(
            out,
            "Imported {} ({}) into My{}.",
            i.cert.subject,
            i.cert.thumbprint,
            if i.already { " (already there)" } else { "" }
        )?;
    }
    writeln!(out, "Successfully installed the certificate.")?;
    writeln!(out, "  Subject: {}", c.subject)?;
    writeln!(out, "  Issuer: {}", c.issuer)?;
    writeln!(out, "  Serial Number: {}", c.serial_hex())?;
    writeln!(out, "  Thumbprint: {}", c.thumbprint)?;
    writeln!(out, "  NotAfter: {}", format_utc(c.not_after))?;
    let settings = &done.settings;
    writeln!(
        out,
        "ChannelCertificateSerialNumber: {}",
        settings
            .channel_certificate_serial_number
            .as_deref()
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "ChannelCertificateHash: {}",
        settings
            .channel_certificate_hash
            .as_deref()
            .unwrap_or_default()
    )?;
    if done.changed {
        writeln!(
            out,
            "Restart the Health Service for the change to take effect."
        )?;
    } else {
        writeln!(
            out,
            "It was already the channel certificate; nothing changed."
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

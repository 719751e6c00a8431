//! `om-momcertimport`: MOMCertImport. Chooses the agent's channel certificate from the
//! machine's `My` store and records it in the agent's settings, or clears it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{ArgGroup, Parser};
use opsmgr_ca::{
    AgentSettings, Candidate, Error, StoreName, Stores, USER_STORES, select_channel_certificate,
};
use opsmgr_model::HostName;
use opsmgr_tools::{exit, format_utc, machine_dir, windows_args};
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
    #[arg(value_name = "FILE.pfx")]
    file: Option<PathBuf>,
    #[command(flatten)]
    password: opsmgr_tools::PasswordArgs,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
}

/// MOMCertImport's `/Switch` words (any case, `/SubjectName:FQDN` too) become clap's
/// double-dash flags.
const SWITCHES: [(&str, &str); 3] = [
    ("subjectname", "--subject-name"),
    ("remove", "--remove"),
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

/// A note when the user's store (MachineKeySet = FALSE) holds a certificate for the host: the
/// agent reads only the machine's store, a frequent slip in request policies.
fn user_store_hint(machine: &std::path::Path, host: &str) -> Result<String> {
    if !machine.join(USER_STORES).exists() {
        return Ok(String::new());
    }
    let user = Stores::open(machine, false)?;
    let found = user
        .list(StoreName::My)?
        .into_iter()
        .filter_map(|e| e.cert)
        .any(|c| c.names_host(host));
    Ok(if found {
        format!(
            "\nnote: the user's My store holds a certificate for {host}, but the agent reads only the machine's: request it with MachineKeySet = TRUE"
        )
    } else {
        String::new()
    })
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(windows_args(std::env::args(), &SWITCHES));
    let machine = machine_dir(cli.machine.clone())?;
    let stores = Stores::open(&machine, true)?;
    let lock = stores.lock()?;
    let mut settings = AgentSettings::load(&machine)?;
    let mut out = opsmgr_tools::stdout();

    let imported = match &cli.file {
        Some(file) => {
            let bytes = opsmgr_tools::read_bounded(file, opsmgr_ca::MAX_PFX_BYTES)?;
            let password =
                opsmgr_tools::read_password(&cli.password.source(), "PFX password: ", false)?;
            let pfx = opsmgr_ca::read_pfx(&bytes, &password)
                .with_context(|| file.display().to_string())?;
            Some(stores.import_pfx(&lock, &pfx, false, false, SystemTime::now())?)
        }
        None => None,
    };
    let named = imported
        .as_ref()
        .and_then(|i| i.cert.common_name.clone())
        .or_else(|| cli.subject_name.clone());
    let Some(host) = cli.subject_name.as_ref().or(named.as_ref()) else {
        let changed = settings.clear_channel_certificate();
        if cli.file.is_some() {
            anyhow::bail!(
                "the PFX's certificate has no common name: give the agent's name with /SubjectName"
            );
        }
        if changed {
            settings.save(&machine)?;
        }
        drop(lock);
        if cli.json {
            let report = Report {
                imported: imported.as_ref().map(|i| i.cert.thumbprint.clone()),
                installed: false,
                changed,
                host: None,
                settings,
                candidates: Vec::new(),
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else if changed {
            writeln!(out, "Successfully removed the channel certificate setting.")?;
            writeln!(
                out,
                "Restart the Health Service for the change to take effect."
            )?;
        } else {
            writeln!(out, "No channel certificate was set; nothing changed.")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let host =
        HostName::new(host.as_str()).map_err(|e| anyhow::anyhow!("/SubjectName '{host}': {e}"))?;
    let selection = match select_channel_certificate(&stores, host.as_str(), SystemTime::now()) {
        Ok(s) => s,
        Err(Error::NoChannelCertificate { host, candidates }) if cli.json => {
            let report = Report {
                imported: imported.as_ref().map(|i| i.cert.thumbprint.clone()),
                installed: false,
                changed: false,
                host: Some(host),
                settings,
                candidates: candidates.iter().map(CandidateReport::from).collect(),
            };
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            return Ok(ExitCode::from(exit::NO));
        }
        Err(e @ Error::NoChannelCertificate { .. }) => {
            return Err(
                Refused(format!("{e}{}", user_store_hint(&machine, host.as_str())?)).into(),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let before = settings.clone();
    settings.set_channel_certificate(&selection.chosen);
    let changed = settings != before;
    if changed {
        settings.save(&machine)?;
    }
    drop(lock);
    let c = &selection.chosen;
    if cli.json {
        let report = Report {
            imported: imported.as_ref().map(|i| i.cert.thumbprint.clone()),
            installed: true,
            changed,
            host: Some(host.to_string()),
            settings,
            candidates: selection
                .candidates
                .iter()
                .map(CandidateReport::from)
                .collect(),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(i) = &imported {
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
    let (serial, hash) = (
        settings
            .channel_certificate_serial_number
            .unwrap_or_default(),
        settings.channel_certificate_hash.unwrap_or_default(),
    );
    writeln!(out, "ChannelCertificateSerialNumber: {serial}")?;
    writeln!(out, "ChannelCertificateHash: {hash}")?;
    if changed {
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

//! `om-certreq`: certreq's command lines. On the agent: `-new` makes a key and a PKCS#10
//! request from a certreq.inf policy, keeping the key pending in the machine's store;
//! `-accept` installs the issued certificate; `-install` does what the seed's installer did
//! with a bundle. Against a CA folder: `-submit` and `-retrieve`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser};
use opsmgr_ca::authority::{Disposition, Record, parse_request_id};
use opsmgr_ca::request::PolicyOptions;
use opsmgr_tools::{exit, format_utc, jobs, machine_dir, windows_args_refusing_unknown};
use serde::Serialize;

/// certreq for agents in untrusted networks.
///
/// `om-certreq -new [-q] [-f] POLICY.inf REQUEST.req` generates the key the policy asks for,
/// keeps it pending in the machine's store (or the user's, with MachineKeySet = FALSE) and
/// writes the request as certreq does. `om-certreq -accept [-q] CERT.cer` joins the issued
/// certificate with its pending key in the `My` store. `om-certreq -install BUNDLE` accepts
/// the bundle's certificate, trusts its root and selects the channel certificate.
/// `om-certreq -submit -config CA REQUEST.req [CERT.cer]` records a request with the CA and
/// prints its RequestId; `om-certreq -retrieve -config CA ID CERT.cer [-binary]` writes the
/// issued certificate. Windows-style switches (`-new`, `-accept`, `-q`, `-f`, `-config`) and
/// double-dash ones are both accepted.
#[derive(Debug, Parser)]
#[command(
    name = "om-certreq",
    version,
    group(ArgGroup::new("verb").required(true).args(["new", "accept", "install", "submit", "retrieve"])),
    after_help = "The CA (for -submit, -retrieve): -config CA, else $OPSMGR_CA, else the first line \
of ~/.config/opsmgr/ca.\n\nExit codes: 0 success (-submit: recorded, pending or issued), 1 -install: the \
certificate went to the user's stores and no channel certificate was set, 2 bad usage or input \
(nothing written), 3 -retrieve: the request is still pending, 4 the request was denied, \
5 -retrieve: the certificate was revoked."
)]
struct Cli {
    /// Make a new key and request: FILES are POLICY.inf REQUEST.req.
    #[arg(long)]
    new: bool,
    /// Install an issued certificate with its pending key: FILES is CERT.cer.
    #[arg(long)]
    accept: bool,
    /// Install a bundle from the CA (certificate and root) and select the channel certificate:
    /// FILES is BUNDLE.
    #[arg(long)]
    install: bool,
    /// Submit a request to the CA: FILES are `REQUEST.req [CERT.cer]`.
    #[arg(long)]
    submit: bool,
    /// Retrieve an issued certificate: FILES are ID CERT.cer.
    #[arg(long)]
    retrieve: bool,
    /// The CA's folder (for -submit and -retrieve).
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "CA")]
    config: Option<PathBuf>,
    /// Write the retrieved certificate as DER instead of PEM.
    #[arg(long)]
    binary: bool,
    #[command(flatten)]
    password: opsmgr_tools::PasswordArgs,
    /// Quiet: never ask (certreq's -q); this tool never asks anyway.
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// -install, and -accept of a bundle: trust the bundle's root when it is this one (its
    /// SHA-1 thumbprint, as certutil shows it, or its SHA-256; from the CA's operator, never
    /// from the share). Without it the root must already be in Root (om-certutil -addstore
    /// root); a bare CERT.cer always needs its root there.
    #[arg(long, value_name = "HASH")]
    trust_root: Option<String>,
    /// -install: the CA's CRL (PEM or DER), kept in Root with the root; a bundle whose
    /// certificate it lists is refused.
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "FILE.crl")]
    crl: Option<PathBuf>,
    /// -new: a renewal of this machine's current certificate for the policy's name (or the
    /// one the policy's RenewalCert names), proved with that certificate's key: the CA issues
    /// it though the host already holds a certificate.
    #[arg(long)]
    renew: bool,
    /// -accept and -install: only the user's stores (certreq -user), for a request made with
    /// MachineKeySet = FALSE. Without it the machine's stores are tried first, then the user's.
    #[arg(long)]
    user: bool,
    /// -new: overwrite REQUEST.req when it exists; -submit and -retrieve: CERT.cer.
    /// -accept: accept a certificate that cannot
    /// be the agent's channel certificate (another name, a missing purpose), for another use
    /// of the machine's key; its root and signature are checked all the same.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Accept KeyLength = 1024 (the seed's file). 1024-bit RSA is broken for this purpose.
    #[arg(long)]
    allow_legacy_rsa1024: bool,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// POLICY.inf REQUEST.req for -new; CERT.cer for -accept; BUNDLE for -install;
    /// `REQUEST.req [CERT.cer]` for -submit; ID CERT.cer for -retrieve.
    #[arg(value_parser = opsmgr_tools::local_path, value_name = "FILES", required = true)]
    files: Vec<PathBuf>,
}

/// certreq's single-dash (or slash) words, in any case, become clap's double-dash flags.
const SWITCHES: [(&str, &str); 11] = [
    ("q", "-q"),
    ("f", "-f"),
    ("new", "--new"),
    ("accept", "--accept"),
    ("install", "--install"),
    ("submit", "--submit"),
    ("retrieve", "--retrieve"),
    ("config", "--config"),
    ("binary", "--binary"),
    ("user", "--user"),
    ("renew", "--renew"),
];

#[derive(Serialize)]
struct Report {
    request: String,
    pending_id: String,
    subject: String,
    key: String,
    dns_names: Vec<String>,
    /// The thumbprint of the certificate a renewal renews.
    renews: Option<String>,
    /// What the INF asked for that has no effect here.
    notes: Vec<String>,
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-certreq", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(windows_args_refusing_unknown(
        std::env::args(),
        &SWITCHES,
        &[],
    ));
    refuse_unused(&cli)?;
    if cli.accept {
        return accept(&cli);
    }
    if cli.install {
        return install(&cli);
    }
    if cli.submit || cli.retrieve {
        return ca_verb(&cli);
    }
    let [policy, request] = cli.files.as_slice() else {
        bail!("-new takes POLICY.inf and REQUEST.req");
    };
    let machine = machine_dir(cli.machine.clone())?;
    let job = jobs::Enroll {
        machine: &machine,
        policy,
        request,
        overwrite: cli.force,
        renew: cli.renew,
        options: PolicyOptions {
            allow_legacy_rsa1024: cli.allow_legacy_rsa1024,
        },
    };
    let done = jobs::enroll(&job, SystemTime::now()).map_err(|e| {
        // The library names the danger; the tool names its switch.
        match e.downcast_ref::<opsmgr_ca::Error>() {
            Some(opsmgr_ca::Error::LegacyRsa1024 { .. }) => {
                anyhow::anyhow!("{e:#}, or pass --allow-legacy-rsa1024 to accept it anyway")
            }
            _ => e,
        }
    })?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        let report = Report {
            request: done.request.display().to_string(),
            pending_id: done.pending_id,
            subject: done.subject,
            key: done.key.to_string(),
            dns_names: done.dns_names,
            renews: done.renews,
            notes: done.notes.clone(),
        };
        opsmgr_tools::write_json(&mut out, &report)?;
    } else {
        writeln!(out, "CertReq: Request Created")?;
    }
    out.flush()?;
    // What the INF asked for that has no effect here, said at the time (MachineKeySet first:
    // a key in the user's store is one the agent never finds).
    #[allow(
        clippy::print_stderr,
        reason = "notes beside certreq's own output line"
    )]
    for note in &done.notes {
        eprintln!("om-certreq: note: {note}");
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
    /// "machine" or "user": whose My the certificate went to.
    store: &'static str,
}

/// Refuses a switch the verb would ignore (`-retrieve --crl FILE`, `-submit --machine M`): a
/// switch given is one the operator expects to matter.
fn refuse_unused(cli: &Cli) -> Result<()> {
    let on_ca = cli.submit || cli.retrieve;
    let on_machine = cli.new || cli.accept || cli.install;
    let password = cli.password.source() != opsmgr_tools::PasswordSource::Prompt;
    let misplaced = [
        (
            cli.config.is_some() && !on_ca,
            "-config",
            "-submit and -retrieve",
        ),
        (cli.binary && !on_ca, "-binary", "-submit and -retrieve"),
        (
            password && !cli.submit,
            "a password switch",
            "-submit (the CA key's)",
        ),
        (
            cli.machine.is_some() && !on_machine,
            "--machine",
            "-new, -accept and -install",
        ),
        (
            cli.user && !(cli.accept || cli.install),
            "-user",
            "-accept and -install",
        ),
        (
            cli.trust_root.is_some() && !(cli.accept || cli.install),
            "--trust-root",
            "-accept and -install",
        ),
        (cli.crl.is_some() && !cli.install, "--crl", "-install"),
        (cli.renew && !cli.new, "-renew", "-new"),
        (
            cli.allow_legacy_rsa1024 && !cli.new,
            "--allow-legacy-rsa1024",
            "-new",
        ),
        (
            cli.force && cli.install,
            "-f",
            "-new, -accept, -submit and -retrieve",
        ),
    ];
    if let Some((_, switch, verbs)) = misplaced.iter().find(|(given, ..)| *given) {
        bail!("{switch} is for {verbs} only; this verb would ignore it");
    }
    Ok(())
}

/// certreq -accept: the machine's store first, then the user's.
fn accept(cli: &Cli) -> Result<ExitCode> {
    let [cert_path] = cli.files.as_slice() else {
        bail!("-accept takes one CERT.cer");
    };
    let bytes = opsmgr_tools::read_bounded(cert_path, opsmgr_ca::agent::MAX_BUNDLE_BYTES)?;
    let machine = machine_dir(cli.machine.clone())?;
    let done = jobs::accept(
        &machine,
        &bytes,
        cli.user,
        cli.trust_root.as_deref(),
        cli.force,
        SystemTime::now(),
    )
    .map_err(with_root_hint)
    .with_context(|| cert_path.display().to_string())?;
    let c = &done.cert;
    let report = AcceptReport {
        serial: c.serial_hex(),
        subject: c.subject.clone(),
        not_before: opsmgr_tools::rfc3339_utc(c.not_before),
        not_after: opsmgr_tools::rfc3339_utc(c.not_after),
        thumbprint: c.thumbprint.clone(),
        already_installed: done.already,
        store: if done.machine_store {
            "machine"
        } else {
            "user"
        },
    };
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        opsmgr_tools::write_json(&mut out, &report)?;
    } else {
        writeln!(out, "Installed Certificate:")?;
        writeln!(out, "  Serial Number: {}", report.serial)?;
        writeln!(out, "  Subject: {}", report.subject)?;
        writeln!(out, "  NotBefore: {}", format_utc(c.not_before))?;
        writeln!(out, "  NotAfter: {}", format_utc(c.not_after))?;
        writeln!(out, "  Thumbprint: {}", report.thumbprint)?;
        writeln!(
            out,
            "  Store: My of the {}",
            if done.machine_store {
                "machine"
            } else {
                "user"
            }
        )?;
        if done.already {
            writeln!(out, "(already installed; nothing changed)")?;
        }
    }
    if !done.machine_store {
        out.flush()?;
        opsmgr_tools::warn(
            "om-certreq",
            &"the certificate went to the user's My, where its key was pending (the request said MachineKeySet = FALSE); the agent reads only the machine's, so om-momcertimport will not find it. Request it again with MachineKeySet = TRUE.",
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json(value: &impl Serialize) -> Result<()> {
    opsmgr_tools::write_json(&mut opsmgr_tools::stdout(), value)
}

/// The tool's hint on a root the machine does not trust.
fn with_root_hint(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<opsmgr_ca::Error>() {
        Some(opsmgr_ca::Error::UntrustedRoot { .. }) => anyhow::anyhow!(
            "{e:#}: add the root with om-certutil -addstore root, or give its thumbprint or SHA-256 (from the CA's operator, not from the share) with --trust-root"
        ),
        Some(opsmgr_ca::Error::UntrustedIssuer { .. }) => anyhow::anyhow!(
            "{e:#}: add the CA's root first with om-certutil -addstore root ROOT.cer (its thumbprint checked with the CA's operator), or accept the CA's bundle with --trust-root"
        ),
        _ => e,
    }
}

/// certreq -install (the seed's installer): accept, trust the root, MOMCertImport.
fn install(cli: &Cli) -> Result<ExitCode> {
    let [bundle_path] = cli.files.as_slice() else {
        bail!("-install takes one BUNDLE");
    };
    let machine = machine_dir(cli.machine.clone())?;
    let jobs::Install {
        installed: done,
        settings,
    } = jobs::install(
        &machine,
        bundle_path,
        cli.user,
        cli.trust_root.as_deref(),
        cli.crl.as_deref(),
        SystemTime::now(),
    )
    .map_err(with_root_hint)?;
    let c = &done.leaf.cert;
    let user_note = (!done.machine_key_set).then(|| {
        format!(
            "the certificate went to the user's stores, where its key was pending (the request said MachineKeySet = FALSE); the agent reads only the machine's: no channel certificate was set. Request it again with MachineKeySet = TRUE for {}.",
            c.common_name.as_deref().unwrap_or(&c.subject)
        )
    });
    if cli.json {
        return print_json(&serde_json::json!({
            "subject": c.subject,
            "serial": c.serial_hex(),
            "thumbprint": c.thumbprint,
            "not_after": opsmgr_tools::rfc3339_utc(c.not_after),
            "already_installed": done.leaf.already,
            "root": done.root.cert.subject,
            "root_already_trusted": done.root.already,
            "machine_key_set": done.machine_key_set,
            "channel_certificate": done.channel.as_ref().map(|c| &c.thumbprint),
            "note": user_note,
            "settings_changed": done.settings_changed,
            "settings": settings,
        }))
        .map(|()| {
            if done.machine_key_set {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(exit::NO)
            }
        });
    }
    let mut out = opsmgr_tools::stdout();
    writeln!(out, "Installed Certificate:")?;
    writeln!(out, "  Serial Number: {}", c.serial_hex())?;
    writeln!(out, "  Subject: {}", c.subject)?;
    writeln!(out, "  NotAfter: {}", format_utc(c.not_after))?;
    writeln!(out, "  Thumbprint: {}", c.thumbprint)?;
    writeln!(
        out,
        "Root {}: {}",
        done.root.cert.subject,
        if done.root.already {
            "already trusted"
        } else {
            "added to Root"
        }
    )?;
    if let Some(note) = &user_note {
        writeln!(out, "Note: {note}")?;
        return Ok(ExitCode::from(exit::NO));
    }
    writeln!(out, "Successfully installed the certificate.")?;
    writeln!(
        out,
        "ChannelCertificateSerialNumber: {}",
        settings
            .channel_certificate_serial_number
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "ChannelCertificateHash: {}",
        settings.channel_certificate_hash.unwrap_or_default()
    )?;
    if done.settings_changed {
        writeln!(
            out,
            "Restart the Health Service for the change to take effect."
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The line certreq prints for a request's state.
fn disposition_line(record: &Record) -> String {
    match record.disposition {
        Disposition::Pending => format!("Certificate request is pending: {} (0)", record.message),
        Disposition::Issued => format!("Certificate retrieved(Issued) {}", record.message),
        Disposition::Denied => format!("Certificate not issued (Denied) {}", record.message),
        Disposition::Revoked => format!(
            "Certificate retrieved(Revoked) revoked at {}",
            record.revoked_at.map(format_utc).unwrap_or_default()
        ),
    }
}

/// certreq -submit and -retrieve against a CA folder.
fn ca_verb(cli: &Cli) -> Result<ExitCode> {
    let ca_dir = &opsmgr_tools::ca_dir(cli.config.clone())?;
    let format = if cli.binary {
        jobs::CertFormat::Der
    } else {
        jobs::CertFormat::Pem
    };
    let answer = if cli.submit {
        let (request, out) = match cli.files.as_slice() {
            [r] => (r, None),
            [r, o] => (r, Some(o.as_path())),
            _ => bail!("-submit takes REQUEST.req and optionally CERT.cer"),
        };
        let mut ca = opsmgr_tools::open_authority(ca_dir, &cli.password)?;
        let job = jobs::Submit {
            request,
            out,
            overwrite: cli.force,
            format,
        };
        jobs::submit(&mut ca, &job, SystemTime::now())?
    } else {
        let [id, out] = cli.files.as_slice() else {
            bail!("-retrieve takes ID and CERT.cer");
        };
        let id = parse_request_id(&id.to_string_lossy())?;
        jobs::retrieve(
            &opsmgr_tools::open_view(ca_dir)?,
            id,
            out,
            format,
            cli.force,
        )?
    };
    let record = &answer.record;
    if cli.json {
        print_json(&serde_json::json!({
            "request_id": record.id,
            "disposition": record.disposition,
            "disposition_code": record.disposition.code(),
            "message": record.message,
            "serial": record.serial,
            "existing": answer.existing,
            "written": answer.written.as_ref().map(|p| p.display().to_string()),
        }))?;
    } else {
        let mut out = opsmgr_tools::stdout();
        writeln!(out, "RequestId: {}", record.id)?;
        writeln!(out, "RequestId: \"{}\"", record.id)?;
        writeln!(out, "{}", disposition_line(record))?;
        if answer.existing {
            writeln!(out, "(this request was submitted before; nothing changed)")?;
        }
    }
    Ok(ExitCode::from(exit::for_request(
        record.disposition,
        cli.retrieve,
    )))
}

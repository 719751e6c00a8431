//! `om-certutil`: certutil's store commands on a machine folder (`-addstore root`, `-store`,
//! `-delstore`, `-exportkey` and `-exportPFX`, which never give out a key made with
//! Exportable = FALSE, and `-importPFX`), and its commands against a CA folder (`-resubmit`,
//! `-deny`, `-revoke`, `-crl`, `-view`), each verb a clap subcommand behind certutil's
//! Windows switches; the CA's verbs are `opsmgr_tools::jobs`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use opsmgr_ca::authority::{
    Authority, Disposition, Filter, Record, RevocationReason, parse_request_id,
};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use opsmgr_ca::store::{
    AddedCrl, AddedToRoot, Entry, MAX_PFX_BYTES, PfxEncryption, StoreName, Stores, read_pfx,
};
use opsmgr_tools::{
    exit, format_utc, jobs, machine_dir, rfc3339_utc, windows_args_refusing_unknown,
};
use serde::Serialize;
use zeroize::Zeroizing;

/// certutil's store commands for agents in untrusted networks, and its commands against a CA.
///
/// ID is a thumbprint (spaces and case ignored), a serial number, or a pending request's key
/// id. `-user` works on the user's stores (MachineKeySet = FALSE). Windows-style switches
/// (`-store`, `-user`, `-f`, `-config`, in any case, with `-` or `/`) and double-dash ones
/// are both accepted, before or after the verb.
#[derive(Debug, Parser)]
#[command(
    name = "om-certutil",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = "The CA (for -resubmit, -deny, -revoke, -crl, -view): -config CA, else $OPSMGR_CA, \
else the first line of ~/.config/opsmgr/ca.\n\nExit codes: 0 success, 2 bad usage, bad input or \
refused (nothing changed), 4 -resubmit: the request was denied under the current policy."
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
    /// The CA's folder (for -resubmit, -deny, -revoke, -crl, -view).
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "CA", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    password: opsmgr_tools::PasswordArgs,
    /// The PFX password on the command line, as certutil's -p. Every user of the machine can
    /// read it there: prefer the prompt, --password-file or --password-env.
    #[arg(
        short = 'p',
        value_name = "PASSWORD",
        global = true,
        conflicts_with_all = ["password_file", "password_stdin", "password_env"]
    )]
    pfx_password: Option<String>,
    /// Force: add a certificate that is not a CA certificate to Root; overwrite OUT.key,
    /// OUT.pfx or -crl's OUT.crl (never a file in the CA's own folder).
    #[arg(short = 'f', long = "force", global = true)]
    force: bool,
    /// Use the user's stores (MachineKeySet = FALSE) instead of the machine's.
    #[arg(long, global = true)]
    user: bool,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR", global = true)]
    machine: Option<PathBuf>,
    /// Report as JSON.
    #[arg(long, global = true)]
    json: bool,
}

/// certutil's verbs, each also a flag (`-addstore` or `--addstore`) as certutil writes it.
#[derive(Debug, Subcommand)]
enum Verb {
    /// Trust a CA certificate (`-addstore root CA.cer`; with -f, even one that is not a CA
    /// certificate), or keep a CA's CRL beside its root (`-addstore root CA.crl`).
    #[command(long_flag = "addstore")]
    Addstore {
        /// The store: Root (certificates with keys enter My through om-certreq -accept).
        store: StoreName,
        /// The certificate or CRL, PEM or DER.
        #[arg(value_parser = opsmgr_tools::local_path, value_name = "FILE")]
        file: PathBuf,
    },
    /// List a store (My, Root or Request; default My), or one entry of it.
    #[command(long_flag = "store")]
    Store {
        /// The store.
        store: Option<StoreName>,
        /// The entry.
        id: Option<String>,
    },
    /// Remove an entry from a store.
    #[command(long_flag = "delstore")]
    Delstore {
        /// The store.
        store: StoreName,
        /// The entry.
        id: String,
    },
    /// Write an entry's private key as PKCS#8 PEM (0600), refusing keys made with
    /// Exportable = FALSE.
    #[command(long_flag = "exportkey")]
    Exportkey {
        /// The store.
        store: StoreName,
        /// The entry.
        id: String,
        /// The key file to write.
        #[arg(value_parser = opsmgr_tools::local_path, value_name = "OUT.key")]
        out: PathBuf,
    },
    /// Write a certificate of My with its private key and chain as a PFX:
    /// `[My] ID OUT.pfx [NoChain]`.
    #[command(long_flag = "exportpfx")]
    Exportpfx {
        /// `[My] ID OUT.pfx [MODIFIERS]` (NoChain, NoRoot: the PFX holds no chain).
        #[arg(value_name = "ARGS", required = true)]
        args: Vec<String>,
        /// The PFX's encryption, in any case. aes256-sha256 (PBES2 AES-256, SHA-256 MAC) is
        /// read by Windows 10 1709 / Server 2019 and later and OpenSSL 3; tripledes-sha1 is the
        /// only one Windows Server 2008 R2 and 2012 import.
        #[arg(long, value_enum, ignore_case = true, default_value = "aes256-sha256")]
        crypto_algorithm: CryptoAlgorithm,
    },
    /// Import a PFX into My: `[My] FILE.pfx [MODIFIERS]`.
    #[command(long_flag = "importpfx")]
    Importpfx {
        /// `[My] FILE.pfx [MODIFIERS]`, the modifiers comma-separated: NoExport keeps the key
        /// from ever being exported again, NoRoot does not trust the PFX's root.
        #[arg(value_name = "ARGS", required = true)]
        args: Vec<String>,
    },
    /// Issue a pending request under the CA's policy.
    #[command(long_flag = "resubmit")]
    Resubmit {
        /// The request id (decimal, or hex with 0x).
        #[arg(value_parser = parse_request_id)]
        id: i64,
    },
    /// Deny a pending request.
    #[command(long_flag = "deny")]
    Deny {
        /// The request id (decimal, or hex with 0x).
        #[arg(value_parser = parse_request_id)]
        id: i64,
        /// Why, recorded with the request.
        reason: Option<String>,
    },
    /// Revoke a certificate and publish a CRL at once.
    #[command(long_flag = "revoke")]
    Revoke {
        /// The certificate's serial number (hex).
        serial: String,
        /// A name such as KeyCompromise, or 0-10 [default: Unspecified].
        reason: Option<RevocationReason>,
    },
    /// Publish a CRL (the CA folder's ca.crl and the publish folder's), and copy it to OUT.crl.
    #[command(long_flag = "crl")]
    Crl {
        /// A further copy (PEM).
        #[arg(value_parser = opsmgr_tools::local_path, value_name = "OUT.crl")]
        out: Option<PathBuf>,
    },
    /// List the CA's database (read without the CA's key).
    #[command(long_flag = "view")]
    View {
        /// Only requests in this state (pending, issued, denied, revoked).
        #[arg(long)]
        disposition: Option<Disposition>,
        /// Only requests whose subject contains this text.
        #[arg(long)]
        subject: Option<String>,
        /// Only the certificate with this serial number.
        #[arg(long)]
        serial: Option<String>,
    },
}

/// A PFX's protection, by PowerShell's `Export-PfxCertificate -CryptoAlgorithmOption` names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CryptoAlgorithm {
    #[value(name = "aes256-sha256", alias = "aes256_sha256")]
    Aes256Sha256,
    #[value(name = "tripledes-sha1", alias = "tripledes_sha1")]
    TripleDesSha1,
}

/// certutil's single-dash (or slash) words, in any case, become clap's double-dash flags.
const SWITCHES: [(&str, &str); 16] = [
    ("f", "-f"),
    ("p", "-p"),
    ("addstore", "--addstore"),
    ("store", "--store"),
    ("delstore", "--delstore"),
    ("exportkey", "--exportkey"),
    ("exportpfx", "--exportpfx"),
    ("importpfx", "--importpfx"),
    ("user", "--user"),
    ("config", "--config"),
    ("resubmit", "--resubmit"),
    ("deny", "--deny"),
    ("revoke", "--revoke"),
    ("crl", "--crl"),
    ("view", "--view"),
    ("json", "--json"),
];

/// An entry as `--json` reports it.
#[derive(Serialize)]
struct EntryReport {
    store: StoreName,
    id: String,
    subject: String,
    issuer: Option<String>,
    serial: Option<String>,
    thumbprint: Option<String>,
    not_before: Option<String>,
    not_after: Option<String>,
    ekus: Vec<String>,
    is_ca: bool,
    has_key: bool,
    exportable: Option<bool>,
    friendly_name: Option<String>,
}

impl From<&Entry> for EntryReport {
    fn from(e: &Entry) -> Self {
        let c = e.cert.as_ref();
        Self {
            store: e.store,
            id: e.id.clone(),
            subject: e.subject.clone(),
            issuer: c.map(|c| c.issuer.clone()),
            serial: c.map(CertInfo::serial_hex),
            thumbprint: c.map(|c| c.thumbprint.clone()),
            not_before: c.map(|c| rfc3339_utc(c.not_before)),
            not_after: c.map(|c| rfc3339_utc(c.not_after)),
            ekus: c.map(|c| c.ekus.clone()).unwrap_or_default(),
            is_ca: c.is_some_and(|c| c.is_ca),
            has_key: e.has_key,
            exportable: e.exportable,
            friendly_name: e.friendly_name.clone(),
        }
    }
}

fn main() -> ExitCode {
    opsmgr_tools::main("om-certutil", run)
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse_from(windows_args_refusing_unknown(
        std::env::args(),
        &SWITCHES,
        &['p'],
    ));
    refuse_unused(&cli)?;
    let stores =
        || -> Result<Stores> { Ok(Stores::open(&machine_dir(cli.machine.clone())?, !cli.user)?) };
    match &cli.verb {
        Verb::Addstore { store, file } => add_store(&cli, &stores()?, *store, file),
        Verb::Store { store, id } => {
            let stores = stores()?;
            let store = store.unwrap_or(StoreName::My);
            let entries = match id {
                Some(id) => vec![stores.find(store, id)?],
                None => stores.list(store)?,
            };
            report(&cli, &entries, "-store")
        }
        Verb::Delstore { store, id } => {
            let stores = stores()?;
            let lock = stores.lock()?;
            let gone = stores.delete(&lock, *store, id)?;
            report(&cli, &[gone], "-delstore")
        }
        Verb::Exportkey { store, id, out } => export_key(&cli, &stores()?, *store, id, out),
        Verb::Exportpfx {
            args,
            crypto_algorithm,
        } => export_pfx(&cli, &stores()?, args, *crypto_algorithm),
        Verb::Importpfx { args } => import_pfx(&cli, &stores()?, args),
        Verb::Resubmit { id } => {
            let record = jobs::resubmit(&mut authority(&cli)?, *id, SystemTime::now())?;
            // A denial under the current policy is a refusal of what was asked.
            decided(
                &cli,
                &record,
                "-resubmit",
                exit::for_request(record.disposition, false),
            )
        }
        Verb::Deny { id, reason } => {
            let record = jobs::deny(&mut authority(&cli)?, *id, reason.as_deref())?;
            decided(&cli, &record, "-deny", exit::OK)
        }
        Verb::Revoke { serial, reason } => revoke(&cli, serial, *reason),
        Verb::Crl { out } => crl(&cli, out.as_deref()),
        Verb::View {
            disposition,
            subject,
            serial,
        } => {
            let filter = Filter {
                disposition: *disposition,
                subject: subject.clone(),
                serial: serial.clone(),
            };
            view(&cli, &filter)
        }
    }
}

/// Refuses a switch the verb would ignore (`-view --machine M`, `-store -config CA`, `-p` for
/// anything but a PFX): a switch given is one the operator expects to matter.
fn refuse_unused(cli: &Cli) -> Result<()> {
    let (on_ca, pfx) = match cli.verb {
        Verb::Resubmit { .. }
        | Verb::Deny { .. }
        | Verb::Revoke { .. }
        | Verb::Crl { .. }
        | Verb::View { .. } => (true, false),
        Verb::Exportpfx { .. } | Verb::Importpfx { .. } => (false, true),
        Verb::Addstore { .. }
        | Verb::Store { .. }
        | Verb::Delstore { .. }
        | Verb::Exportkey { .. } => (false, false),
    };
    let password_switch = cli.password.source() != opsmgr_tools::PasswordSource::Prompt;
    if on_ca && (cli.machine.is_some() || cli.user) {
        bail!("--machine and -user name a machine's stores; this verb works on a CA (-config)");
    }
    if !on_ca && cli.config.is_some() {
        bail!("-config names a CA; this verb works on a machine's stores (--machine, -user)");
    }
    if cli.pfx_password.is_some() && !pfx {
        bail!(
            "-p is the password of -exportPFX's and -importPFX's PFX; give the CA key's with --password-file, --password-stdin or --password-env"
        );
    }
    if password_switch && !on_ca && !pfx {
        bail!("this verb takes no password");
    }
    Ok(())
}

/// What -addstore root FILE.crl says.
fn crl_added(cli: &Cli, crl: &AddedCrl) -> Result<ExitCode> {
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        let report = serde_json::json!({
            "crl": true,
            "issuer": crl.issuer.subject,
            "number": crl.number,
            "this_update": rfc3339_utc(crl.this_update),
            "next_update": crl.next_update.map(rfc3339_utc),
            "revoked": crl.revoked,
            "stored": crl.stored,
        });
        opsmgr_tools::write_json(&mut out, &report)?;
    } else {
        writeln!(out, "Root \"Trusted Root Certification Authorities\"")?;
        writeln!(out, "CRL signature matches {}", crl.issuer.subject)?;
        writeln!(
            out,
            "CRL {} of {} ({} revoked, next update {}) {}.",
            crl.number.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            crl.issuer.subject,
            crl.revoked,
            crl.next_update.map_or_else(|| "-".to_owned(), format_utc),
            if crl.stored {
                "added to store"
            } else {
                "not added: the store holds it or a newer one"
            }
        )?;
        writeln!(out, "CertUtil: -addstore command completed successfully.")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn add_store(cli: &Cli, stores: &Stores, store: StoreName, file: &Path) -> Result<ExitCode> {
    if store != StoreName::Root {
        bail!(
            "-addstore adds trusted roots to Root; certificates with keys enter My through om-certreq -accept"
        );
    }
    let bytes = opsmgr_tools::read_bounded(file, opsmgr_ca::store::MAX_CRL_BYTES)?;
    let lock = stores.lock()?;
    let added = match stores
        .add_to_root(&lock, &bytes, cli.force)
        .map_err(|e| match e {
            // The library says why; the tool says how to insist.
            opsmgr_ca::Error::NotCa(_) => anyhow::anyhow!("{e}; -f adds it anyway"),
            e => e.into(),
        })
        .with_context(|| file.display().to_string())?
    {
        AddedToRoot::Certificate(added) => added,
        AddedToRoot::Crl(crl) => return crl_added(cli, &crl),
    };
    let entry = stores.find(StoreName::Root, &added.cert.thumbprint)?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        opsmgr_tools::write_json(&mut out, &EntryReport::from(&entry))?;
    } else {
        writeln!(out, "Root \"Trusted Root Certification Authorities\"")?;
        if added.self_signature_verified {
            writeln!(out, "Signature matches Public Key")?;
        } else {
            writeln!(
                out,
                "Signature not checked: issued by {}, which is not in this file",
                added.cert.issuer
            )?;
        }
        writeln!(
            out,
            "Certificate \"{}\" {}.",
            added.cert.subject,
            if added.already {
                "already in store"
            } else {
                "added to store"
            }
        )?;
        writeln!(out, "CertUtil: -addstore command completed successfully.")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export_key(
    cli: &Cli,
    stores: &Stores,
    store: StoreName,
    id: &str,
    out_path: &Path,
) -> Result<ExitCode> {
    opsmgr_tools::refuse_overwrite(out_path, cli.force, "-f")?;
    let pem = stores.export_key(store, id)?;
    opsmgr_fsutil::write_private(out_path, pem.as_bytes())
        .with_context(|| format!("writing {}", out_path.display()))?;
    let entry = stores.find(store, id)?;
    report(cli, &[entry], "-exportkey")
}

/// The PFX password: certutil's `-p` (with a warning), else the password switches or a
/// prompt (asked twice when a file is being protected with it).
fn pfx_password(cli: &Cli, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(p) = &cli.pfx_password {
        #[allow(clippy::print_stderr, reason = "a warning goes to stderr")]
        {
            eprintln!(
                "om-certutil: warning: a password given with -p is visible to every user of this machine (ps, /proc); prefer the prompt, --password-file or --password-env"
            );
        }
        return Ok(Zeroizing::new(p.clone()));
    }
    opsmgr_tools::read_password(&cli.password.source(), "PFX password: ", confirm)
}

/// certutil's modifiers: one comma-separated word list, any case.
fn modifiers(list: Option<&str>, known: &[&str]) -> Result<Vec<String>> {
    let words: Vec<String> = list
        .map(|l| {
            l.split(',')
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = words.iter().find(|w| !known.contains(&w.as_str())) {
        bail!("unknown modifier '{bad}' (known: {})", known.join(", "));
    }
    Ok(words)
}

fn export_pfx(
    cli: &Cli,
    stores: &Stores,
    args: &[String],
    crypto: CryptoAlgorithm,
) -> Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (id, out_file, rest) = match my_store_first(&args, "-exportPFX")? {
        [id, out, rest @ ..] => (*id, *out, rest),
        _ => bail!("-exportPFX takes [My] ID OUT.pfx [MODIFIERS]"),
    };
    let mods = modifiers(rest.first().copied(), &["nochain", "noroot"])?;
    if rest.len() > 1 {
        bail!("-exportPFX takes [My] ID OUT.pfx [MODIFIERS]");
    }
    let out_path = opsmgr_tools::local_path(out_file)?;
    opsmgr_tools::refuse_overwrite(&out_path, cli.force, "-f")?;
    // Refuse before asking for a password: the key must be here and exportable.
    let entry = stores.find(StoreName::My, id)?;
    let password = pfx_password(cli, true)?;
    let encryption = match crypto {
        CryptoAlgorithm::Aes256Sha256 => PfxEncryption::Aes256,
        CryptoAlgorithm::TripleDesSha1 => PfxEncryption::Legacy3Des,
    };
    let pfx = stores.export_pfx(&entry.id, &password, encryption, mods.is_empty())?;
    opsmgr_fsutil::write_private(&out_path, &pfx).with_context(|| format!("writing {out_file}"))?;
    report(cli, &[entry], "-exportPFX")
}

/// A PFX verb's arguments without the store name certutil lets them start with, which must
/// be My: PFX files hold certificates with their keys.
fn my_store_first<'a, 'b>(args: &'a [&'b str], verb: &str) -> Result<&'a [&'b str]> {
    match args.split_first() {
        Some((store, rest)) if store.parse::<StoreName>().is_ok() => {
            if store.parse::<StoreName>()? != StoreName::My {
                bail!("{verb} works on My (certificates with their keys), not {store}");
            }
            Ok(rest)
        }
        _ => Ok(args),
    }
}

fn import_pfx(cli: &Cli, stores: &Stores, args: &[String]) -> Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (file, modifier_list) = match my_store_first(&args, "-importPFX")? {
        [file] => (*file, None),
        [file, mods] => (*file, Some(*mods)),
        _ => bail!("-importPFX takes [My] FILE.pfx [MODIFIERS]"),
    };
    let mods = modifiers(modifier_list, &["noexport", "noroot"])?;
    let file = &opsmgr_tools::local_path(file)?;
    let bytes = opsmgr_tools::read_bounded(file, MAX_PFX_BYTES)?;
    let password = pfx_password(cli, false)?;
    let pfx = read_pfx(&bytes, &password).with_context(|| file.display().to_string())?;
    let lock = stores.lock()?;
    let imported = stores.import_pfx(
        &lock,
        &pfx,
        !mods.iter().any(|m| m == "noexport"),
        !mods.iter().any(|m| m == "noroot"),
        SystemTime::now(),
    )?;
    drop(lock);
    let entry = stores.find(StoreName::My, &imported.cert.thumbprint)?;
    if cli.json {
        let mut out = opsmgr_tools::stdout();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "certificate": EntryReport::from(&entry),
                "already": imported.already,
                "root": imported.root.as_ref().map(|r| &r.cert.subject),
                "root_already_trusted": imported.root.as_ref().map(|r| r.already),
                "root_note": imported.root_note,
            }),
        )?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = opsmgr_tools::stdout();
    writeln!(
        out,
        "Certificate \"{}\" {}.",
        imported.cert.subject,
        if imported.already {
            "already in My with its key"
        } else {
            "added to My with its key"
        }
    )?;
    match (&imported.root, &imported.root_note) {
        (Some(root), _) => writeln!(
            out,
            "Root \"{}\" {}.",
            root.cert.subject,
            if root.already {
                "already trusted"
            } else {
                "added to Root"
            }
        )?,
        (None, Some(note)) => writeln!(out, "Root not added: {note}.")?,
        (None, None) => {}
    }
    drop(out);
    report(cli, &[entry], "-importPFX")
}

fn report(cli: &Cli, entries: &[Entry], verb: &str) -> Result<ExitCode> {
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        let list: Vec<EntryReport> = entries.iter().map(EntryReport::from).collect();
        opsmgr_tools::write_json(&mut out, &list)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (n, e) in entries.iter().enumerate() {
        write_entry(&mut out, n, e)?;
    }
    writeln!(out, "CertUtil: {verb} command completed successfully.")?;
    Ok(ExitCode::SUCCESS)
}

fn eku_name(oid: &str) -> String {
    match oid {
        EKU_SERVER_AUTH => format!("Server Authentication ({oid})"),
        EKU_CLIENT_AUTH => format!("Client Authentication ({oid})"),
        _ => oid.to_owned(),
    }
}

fn write_entry(out: &mut impl Write, n: usize, e: &Entry) -> io::Result<()> {
    let Some(c) = &e.cert else {
        writeln!(out, "================ Request {n} ================")?;
        writeln!(out, "Subject: {}", e.subject)?;
        writeln!(out, "Key Id: {}", e.id)?;
        return write_key(out, e);
    };
    writeln!(out, "================ Certificate {n} ================")?;
    writeln!(out, "Serial Number: {}", c.serial_hex())?;
    writeln!(out, "Issuer: {}", c.issuer)?;
    writeln!(out, " NotBefore: {}", format_utc(c.not_before))?;
    writeln!(out, " NotAfter: {}", format_utc(c.not_after))?;
    writeln!(out, "Subject: {}", c.subject)?;
    if c.is_ca {
        writeln!(out, "CA certificate")?;
    }
    if !c.ekus.is_empty() {
        let names: Vec<String> = c.ekus.iter().map(|o| eku_name(o)).collect();
        writeln!(out, "Enhanced Key Usage: {}", names.join(", "))?;
    }
    writeln!(out, "Cert Hash(sha1): {}", c.thumbprint)?;
    if let Some(name) = &e.friendly_name {
        writeln!(out, "  Friendly Name: {name}")?;
    }
    if e.store == StoreName::My {
        write_key(out, e)?;
    }
    Ok(())
}

fn write_key(out: &mut impl Write, e: &Entry) -> io::Result<()> {
    match (e.has_key, e.exportable) {
        (false, _) => writeln!(out, "No key"),
        (true, Some(true)) => writeln!(out, "  Private key is exportable"),
        (true, _) => writeln!(out, "  Private key is NOT exportable"),
    }
}

/// certutil -view as a table: one row per request, one column per fact an operator
/// approves or checks.
fn write_view(out: &mut impl Write, records: &[Record]) -> io::Result<()> {
    let names = |n: &[String]| {
        if n.is_empty() {
            "-".to_owned()
        } else {
            n.join(",")
        }
    };
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let mut state = match (r.disposition, r.revocation_reason) {
                (Disposition::Revoked, Some(why)) => format!("revoked ({why})"),
                (d, _) => d.to_string(),
            };
            if let Some(by) = r.superseded_by {
                state.push_str(&format!(", superseded by {by}"));
            }
            vec![
                r.id.to_string(),
                state,
                r.common_name.clone().unwrap_or_else(|| r.subject.clone()),
                r.key.clone().unwrap_or_else(|| "-".into()),
                names(&r.requested_names),
                names(&r.certified_names),
                r.renews.map_or_else(|| "-".into(), |id| id.to_string()),
                r.serial.clone().unwrap_or_else(|| "-".into()),
                r.not_after.map_or_else(|| "-".into(), format_utc),
                r.message.clone(),
            ]
        })
        .collect();
    opsmgr_tools::write_table(
        out,
        &[
            "RequestId",
            "Disposition",
            "Host",
            "Key",
            "Requested names",
            "Certified names",
            "Renews",
            "Serial",
            "NotAfter",
            "Message",
        ],
        &rows,
    )
}

/// The CA named by -config (or its defaults), opened with its key.
fn authority(cli: &Cli) -> Result<Authority> {
    opsmgr_tools::open_authority(&opsmgr_tools::ca_dir(cli.config.clone())?, &cli.password)
}

/// certutil -view: the database as a table, or JSON.
fn view(cli: &Cli, filter: &Filter) -> Result<ExitCode> {
    let dir = opsmgr_tools::ca_dir(cli.config.clone())?;
    let records = jobs::view(&opsmgr_tools::open_view(&dir)?, filter)?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        return json(out, &records);
    }
    write_view(&mut out, &records)?;
    writeln!(
        out,
        "{} rows.\nCertUtil: -view command completed successfully.",
        records.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// certutil -crl: the files written, as certutil lists them.
fn crl(cli: &Cli, copy: Option<&Path>) -> Result<ExitCode> {
    let published = jobs::crl(&mut authority(cli)?, copy, cli.force, SystemTime::now())?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        return json(
            out,
            &serde_json::json!({
                "number": published.number,
                "this_update": rfc3339_utc(published.this_update),
                "next_update": rfc3339_utc(published.next_update),
                "revoked": published.revoked,
                "files": published.files,
            }),
        );
    }
    for f in &published.files {
        writeln!(out, "CRL {} written to {}", published.number, f.display())?;
    }
    writeln!(
        out,
        "  NextUpdate: {}\nCertUtil: -crl command completed successfully.",
        format_utc(published.next_update)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// certutil -revoke, with the CRL published at once.
fn revoke(cli: &Cli, serial: &str, reason: Option<RevocationReason>) -> Result<ExitCode> {
    let reason = reason.unwrap_or(RevocationReason::Unspecified);
    let jobs::Revoked { record, crl } =
        jobs::revoke(&mut authority(cli)?, serial, reason, SystemTime::now())?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        return json(out, &record);
    }
    let recorded = record.revocation_reason.unwrap_or(reason);
    writeln!(
        out,
        "Revoking \"{}\" -- Reason: {recorded}",
        record.serial.as_deref().unwrap_or(serial),
    )?;
    if recorded != reason {
        writeln!(
            out,
            "  (already revoked for {recorded}, which {reason} does not replace)"
        )?;
    }
    for f in &crl.files {
        writeln!(out, "CRL {} written to {}", crl.number, f.display())?;
    }
    writeln!(out, "CertUtil: -revoke command completed successfully.")?;
    Ok(ExitCode::SUCCESS)
}

/// What -resubmit and -deny print: the request's new state, and certutil's closing line when
/// the verb did what it was asked, as its exit `code` says (a -resubmit denied under the
/// policy did not).
fn decided(cli: &Cli, record: &Record, verb: &str, code: u8) -> Result<ExitCode> {
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        opsmgr_tools::write_json(&mut out, record)?;
    } else {
        if record.disposition == Disposition::Issued {
            writeln!(out, "Certificate issued.")?;
        } else {
            writeln!(out, "Certificate not issued (Denied) {}", record.message)?;
        }
        if code == exit::OK {
            writeln!(out, "CertUtil: {verb} command completed successfully.")?;
        }
    }
    Ok(ExitCode::from(code))
}

/// Writes `value` as pretty JSON.
fn json(mut out: impl Write, value: &impl Serialize) -> Result<ExitCode> {
    opsmgr_tools::write_json(&mut out, value)?;
    Ok(ExitCode::SUCCESS)
}

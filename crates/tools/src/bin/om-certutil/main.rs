//! `om-certutil`: certutil's store commands on a machine folder: `-addstore root`, `-store`,
//! `-delstore`, and `-exportkey`, which never gives out a key made with Exportable = FALSE.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Parser};
use opsmgr_ca::authority::{
    Disposition, Filter, Record, RevocationReason, parse_reason, parse_request_id,
};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use opsmgr_ca::store::{
    AddedCrl, AddedToRoot, Entry, MAX_PFX_BYTES, PfxEncryption, StoreName, Stores, read_pfx,
};
use opsmgr_tools::{format_utc, machine_dir, rfc3339_utc, windows_args};
use serde::Serialize;
use zeroize::Zeroizing;

/// certutil's store commands for agents in untrusted networks.
///
/// `om-certutil -addstore [-f] root CA.cer` trusts a CA certificate (-f: even one that is not
/// a CA certificate). `om-certutil -store [My|Root|Request] [ID]` lists a store (default My).
/// `om-certutil -delstore STORE ID` removes an entry. `om-certutil -exportkey STORE ID OUT.key`
/// writes an entry's private key as PKCS#8 PEM (0600), refusing keys made with
/// Exportable = FALSE. ID is a thumbprint (spaces and case ignored), a serial number, or a
/// pending request's key id. `-user` works on the user's stores (MachineKeySet = FALSE).
///
/// Against a CA folder (`-config CA`): `-resubmit ID` issues a pending request, `-deny ID`
/// refuses it, `-revoke SERIAL [REASON]` revokes a certificate, `-crl [OUT.crl]` writes the
/// CRL (default CA/ca.crl), `-view` lists the database (`--disposition`, `--subject`,
/// `--serial` filter it).
/// Windows-style switches (`-store`, `-user`, `-f`, `-config`) and double-dash ones are both
/// accepted.
#[derive(Debug, Parser)]
#[command(
    name = "om-certutil",
    version,
    group(ArgGroup::new("verb").required(true).args([
        "addstore", "store", "delstore", "exportkey", "exportpfx", "importpfx", "resubmit", "deny",
        "revoke", "crl", "view"
    ])),
    after_help = "The CA (for -resubmit, -deny, -revoke, -crl, -view): -config CA, else $OPSMGR_CA, \
else the first line of ~/.config/opsmgr/ca.\n\nExit codes: 0 success, 2 bad usage, bad input or \
refused (nothing changed), 4 -resubmit: the request was denied under the current policy."
)]
struct Cli {
    /// Issue a pending request: ARGS is ID.
    #[arg(long)]
    resubmit: bool,
    /// Deny a pending request: ARGS are `ID [REASON]`.
    #[arg(long)]
    deny: bool,
    /// Revoke a certificate: ARGS are `SERIAL [REASON]` (a name such as KeyCompromise, or 0-10).
    #[arg(long)]
    revoke: bool,
    /// Write the CRL: ARGS are `[OUT.crl]`.
    #[arg(long)]
    crl: bool,
    /// List the CA's database.
    #[arg(long)]
    view: bool,
    /// The CA's folder (for -resubmit, -deny, -revoke, -crl, -view).
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "CA")]
    config: Option<PathBuf>,
    /// -view: only requests in this state (pending, issued, denied, revoked).
    #[arg(long)]
    disposition: Option<String>,
    /// -view: only requests whose subject contains this text.
    #[arg(long)]
    subject: Option<String>,
    /// -view: only the certificate with this serial number.
    #[arg(long)]
    serial: Option<String>,
    #[command(flatten)]
    password: opsmgr_tools::PasswordArgs,
    /// Add a certificate to a store: ARGS are `root CA.cer`.
    #[arg(long)]
    addstore: bool,
    /// List a store: ARGS are `[My|Root|Request] [ID]`.
    #[arg(long)]
    store: bool,
    /// Remove an entry: ARGS are `STORE ID`.
    #[arg(long)]
    delstore: bool,
    /// Write an exportable private key: ARGS are `STORE ID OUT.key`.
    #[arg(long)]
    exportkey: bool,
    /// Write a certificate of My with its private key and chain as a PFX: ARGS are
    /// `[My] ID OUT.pfx [NoChain]`.
    #[arg(long)]
    exportpfx: bool,
    /// Import a PFX into My: ARGS are `FILE.pfx [MODIFIERS]` (comma-separated: NoExport keeps
    /// the key from ever being exported again, NoRoot does not trust the PFX's root).
    #[arg(long)]
    importpfx: bool,
    /// The PFX password on the command line, as certutil's -p. Every user of the machine can
    /// read it there: prefer the prompt, --password-file or --password-env.
    #[arg(short = 'p', value_name = "PASSWORD")]
    pfx_password: Option<String>,
    /// -exportPFX: the PFX's encryption. aes256-sha256 (PBES2 AES-256, SHA-256 MAC) is read by
    /// Windows 10 1709 / Server 2019 and later and OpenSSL 3; tripledes-sha1 is the only one
    /// Windows Server 2008 R2 and 2012 import.
    #[arg(long, value_enum, default_value = "aes256-sha256")]
    crypto_algorithm: CryptoAlgorithm,
    /// Force: add a certificate that is not a CA certificate to Root; overwrite OUT.key or
    /// OUT.pfx.
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Use the user's stores (MachineKeySet = FALSE) instead of the machine's.
    #[arg(long)]
    user: bool,
    /// The machine folder [default: $OPSMGR_MACHINE, else ~/.local/share/opsmgr/machine].
    #[arg(value_parser = opsmgr_tools::local_path, long, value_name = "DIR")]
    machine: Option<PathBuf>,
    /// Report as JSON.
    #[arg(long)]
    json: bool,
    /// The verb's arguments.
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
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
const SWITCHES: [(&str, &str); 14] = [
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
    let cli = Cli::parse_from(windows_args(std::env::args(), &SWITCHES));
    if cli.resubmit || cli.deny || cli.revoke || cli.crl || cli.view {
        return ca_verb(&cli);
    }
    let stores = Stores::open(&machine_dir(cli.machine.clone())?, !cli.user)?;
    let args: Vec<&str> = cli.args.iter().map(String::as_str).collect();
    if cli.addstore {
        add_store(&cli, &stores, &args)
    } else if cli.store {
        list(&cli, &stores, &args)
    } else if cli.exportpfx {
        export_pfx(&cli, &stores, &args)
    } else if cli.importpfx {
        import_pfx(&cli, &stores, &args)
    } else if cli.delstore {
        let [store, id] = args.as_slice() else {
            bail!("-delstore takes STORE and ID");
        };
        let store: StoreName = store.parse()?;
        let lock = stores.lock()?;
        let gone = stores.delete(&lock, store, id)?;
        report(&cli, &[gone], "-delstore")
    } else {
        export_key(&cli, &stores, &args)
    }
}

/// A file named among a verb's arguments: a local path, never a Windows one.
fn local(text: &str) -> Result<PathBuf> {
    opsmgr_tools::local_path(text).map_err(anyhow::Error::msg)
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
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
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

fn add_store(cli: &Cli, stores: &Stores, args: &[&str]) -> Result<ExitCode> {
    let [store, file] = args else {
        bail!("-addstore takes STORE and CERT.cer (for example: -addstore root JAMA00.cer)");
    };
    if store.parse::<StoreName>()? != StoreName::Root {
        bail!(
            "-addstore adds trusted roots to Root; certificates with keys enter My through om-certreq -accept"
        );
    }
    let bytes = opsmgr_tools::read_bounded(&local(file)?, opsmgr_ca::store::MAX_CRL_BYTES)?;
    let lock = stores.lock()?;
    let added = match stores
        .add_to_root(&lock, &bytes, cli.force)
        .with_context(|| file.to_string())?
    {
        AddedToRoot::Certificate(added) => added,
        AddedToRoot::Crl(crl) => return crl_added(cli, &crl),
    };
    let entry = stores.find(StoreName::Root, &added.cert.thumbprint)?;
    let mut out = opsmgr_tools::stdout();
    if cli.json {
        serde_json::to_writer_pretty(&mut out, &EntryReport::from(&entry))?;
        writeln!(out)?;
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

fn list(cli: &Cli, stores: &Stores, args: &[&str]) -> Result<ExitCode> {
    let (store, id) = match args {
        [] => (StoreName::My, None),
        [store] => (store.parse()?, None),
        [store, id] => (store.parse()?, Some(*id)),
        _ => bail!("-store takes at most STORE and ID"),
    };
    let entries = match id {
        Some(id) => vec![stores.find(store, id)?],
        None => stores.list(store)?,
    };
    report(cli, &entries, "-store")
}

fn export_key(cli: &Cli, stores: &Stores, args: &[&str]) -> Result<ExitCode> {
    let [store, id, out_file] = args else {
        bail!("-exportkey takes STORE, ID and OUT.key");
    };
    let store: StoreName = store.parse()?;
    let out_path = local(out_file)?;
    if out_path.exists() && !cli.force {
        bail!("{out_file} exists; -f overwrites it");
    }
    let pem = stores.export_key(store, id)?;
    opsmgr_fsutil::write_private(&out_path, pem.as_bytes())
        .with_context(|| format!("writing {out_file}"))?;
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
fn modifiers(list: Option<&&str>, known: &[&str]) -> Result<Vec<String>> {
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

fn export_pfx(cli: &Cli, stores: &Stores, args: &[&str]) -> Result<ExitCode> {
    let (id, out_file, rest) = match args {
        [store, id, out, rest @ ..] if store.parse::<StoreName>().is_ok() => {
            if store.parse::<StoreName>()? != StoreName::My {
                bail!("-exportPFX exports certificates of My (with their keys), not {store}");
            }
            (*id, *out, rest)
        }
        [id, out, rest @ ..] => (*id, *out, rest),
        _ => bail!("-exportPFX takes [My] ID OUT.pfx"),
    };
    let mods = modifiers(rest.first(), &["nochain", "noroot"])?;
    if rest.len() > 1 {
        bail!("-exportPFX takes [My] ID OUT.pfx [MODIFIERS]");
    }
    let out_path = local(out_file)?;
    if out_path.exists() && !cli.force {
        bail!("{out_file} exists; -f overwrites it");
    }
    // Refuse before asking for a password: the key must be here and exportable.
    let entry = stores.find(StoreName::My, id)?;
    let password = pfx_password(cli, true)?;
    let encryption = match cli.crypto_algorithm {
        CryptoAlgorithm::Aes256Sha256 => PfxEncryption::Aes256,
        CryptoAlgorithm::TripleDesSha1 => PfxEncryption::Legacy3Des,
    };
    let pfx = stores.export_pfx(&entry.id, &password, encryption, mods.is_empty())?;
    opsmgr_fsutil::write_private(&out_path, &pfx).with_context(|| format!("writing {out_file}"))?;
    report(cli, &[entry], "-exportPFX")
}

fn import_pfx(cli: &Cli, stores: &Stores, args: &[&str]) -> Result<ExitCode> {
    let (file, rest) = match args {
        [file, rest @ ..] if rest.len() <= 1 => (*file, rest),
        _ => bail!("-importPFX takes FILE.pfx [MODIFIERS]"),
    };
    let mods = modifiers(rest.first(), &["noexport", "noroot"])?;
    let bytes = opsmgr_tools::read_bounded(&local(file)?, MAX_PFX_BYTES)?;
    let password = pfx_password(cli, false)?;
    let pfx = read_pfx(&bytes, &password).with_context(|| file.to_owned())?;
    let lock = stores.lock()?;
    let imported = stores.import_pfx(
        &lock,
        &pfx,
        !mods.iter().any(|m| m == "noexport"),
        !mods.iter().any(|m| m == "noroot"),
        std::time::SystemTime::now(),
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
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
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

/// The verbs against a CA folder.
fn ca_verb(cli: &Cli) -> Result<ExitCode> {
    let dir = &opsmgr_tools::ca_dir(cli.config.clone())?;
    let mut ca = opsmgr_tools::open_authority(dir, &cli.password)?;
    let now = std::time::SystemTime::now();
    let args: Vec<&str> = cli.args.iter().map(String::as_str).collect();
    let mut out = opsmgr_tools::stdout();
    if cli.view {
        if !args.is_empty() {
            bail!("-view takes no arguments; filter with --disposition, --subject, --serial");
        }
        let filter = Filter {
            disposition: cli.disposition.as_deref().map(str::parse).transpose()?,
            subject: cli.subject.clone(),
            serial: cli.serial.clone(),
        };
        let records = ca.list(&filter)?;
        if cli.json {
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)?;
        } else {
            write_view(&mut out, &records)?;
            writeln!(
                out,
                "{} rows.\nCertUtil: -view command completed successfully.",
                records.len()
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cli.crl {
        let extra = match args.as_slice() {
            [] => None,
            [p] => Some(local(p)?),
            _ => bail!("-crl takes at most OUT.crl"),
        };
        let published = ca.publish_crl(now)?;
        let mut files = published.files.clone();
        if let Some(path) = extra {
            let pem = std::fs::read(&published.files[0])
                .with_context(|| format!("reading {}", published.files[0].display()))?;
            opsmgr_fsutil::write_atomic(&path, &pem)
                .with_context(|| format!("writing {}", path.display()))?;
            files.push(path);
        }
        for f in &files {
            writeln!(out, "CRL {} written to {}", published.number, f.display())?;
        }
        writeln!(
            out,
            "  NextUpdate: {}\nCertUtil: -crl command completed successfully.",
            format_utc(published.next_update)
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if cli.revoke {
        let (serial, reason) = match args.as_slice() {
            [s] => (*s, RevocationReason::Unspecified),
            [s, r] => (*s, parse_reason(r)?),
            _ => bail!("-revoke takes SERIAL and optionally REASON"),
        };
        let opsmgr_tools::jobs::Revoked {
            record,
            crl: published,
        } = opsmgr_tools::jobs::revoke(&mut ca, serial, reason, now)?;
        if cli.json {
            serde_json::to_writer_pretty(&mut out, &record)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "Revoking \"{}\" -- Reason: {}",
                record.serial.as_deref().unwrap_or(serial),
                record.revocation_reason.unwrap_or(reason)
            )?;
            for f in &published.files {
                writeln!(out, "CRL {} written to {}", published.number, f.display())?;
            }
            writeln!(out, "CertUtil: -revoke command completed successfully.")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (id, reason) = match args.as_slice() {
        [id] => (parse_request_id(id)?, None),
        [id, reason] if cli.deny => (parse_request_id(id)?, Some(*reason)),
        _ => bail!("-resubmit takes ID; -deny takes ID and optionally REASON"),
    };
    let record = if cli.deny {
        ca.deny(id, reason.unwrap_or("Denied by the CA's administrator"))?
    } else {
        ca.resubmit(id, now)?
    };
    if cli.json {
        serde_json::to_writer_pretty(&mut out, &record)?;
        writeln!(out)?;
    } else if record.disposition == Disposition::Issued {
        writeln!(
            out,
            "Certificate issued.\nCertUtil: -resubmit command completed successfully."
        )?;
    } else {
        writeln!(out, "Certificate not issued (Denied) {}", record.message)?;
    }
    Ok(
        if cli.resubmit && record.disposition == Disposition::Denied {
            ExitCode::from(4)
        } else {
            ExitCode::SUCCESS
        },
    )
}

//! Shared helpers of the opsmgr command-line tools: exit codes, error reporting and output.
//!
//! Every tool's `main` is `opsmgr_tools::main(run)`: `run` returns the exit code, or an error
//! that is printed as `<tool>: error: <message with its causes>` and exits with
//! [`exit::INPUT`]. A closed stdout (`om-balance plan … | head`) is not an error.

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use opsmgr_ca::authority::{Authority, CA_CERT, CA_KEY, CaView, Disposition};

pub mod group;
pub mod jobs;
pub mod report;
pub mod runbooks;

/// Times as RFC 3339 in JSON (`2027-12-05T20:09:31Z`), for serde's `with`.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339, to the second.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string())
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an optional time (`null` when absent).
    pub mod option {
        use std::time::SystemTime;

        use serde::Serializer;

        /// Writes `t` as RFC 3339, or `null`.
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}
use zeroize::Zeroizing;

/// The exit codes every tool documents.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command ran and its answer is "no" (for example: not balanced).
    pub const NO: u8 = 1;
    /// Bad usage or bad input: nothing was changed.
    pub const INPUT: u8 = 2;
    /// certreq -retrieve: the request is still pending.
    pub const PENDING: u8 = 3;
    /// The request was denied.
    pub const DENIED: u8 = 4;
    /// certreq -retrieve: the certificate was revoked.
    pub const REVOKED: u8 = 5;

    /// The exit code for a request in state `d` after a verb that submits or issues it
    /// (`retrieving` false: certreq -submit, certutil -resubmit) or one that fetches its
    /// certificate (`retrieving` true: certreq -retrieve). A denial is never success; pending
    /// and revoked are failures only when a certificate was asked for.
    pub fn for_request(d: super::Disposition, retrieving: bool) -> u8 {
        use super::Disposition as D;
        match d {
            D::Issued => OK,
            D::Denied => DENIED,
            D::Pending if retrieving => PENDING,
            D::Revoked if retrieving => REVOKED,
            D::Pending | D::Revoked => OK,
        }
    }
}

/// Runs a tool's body and turns its outcome into an exit code, printing errors to stderr.
pub fn main(tool: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    main_with_codes(tool, run, |_| exit::INPUT)
}

/// As [`main`], with `code` choosing the exit code of each error.
pub fn main_with_codes(
    tool: &str,
    run: impl FnOnce() -> anyhow::Result<ExitCode>,
    code: impl Fn(&anyhow::Error) -> u8,
) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(
                clippy::print_stderr,
                reason = "the one place a tool reports its error"
            )]
            {
                eprintln!("{tool}: error: {e:#}");
            }
            ExitCode::from(code(&e))
        }
    }
}

/// Writes `tool: warning: text` to stderr: something the user should know that does not stop
/// the command (stdout keeps the command's result).
pub fn warn(tool: &str, text: &dyn std::fmt::Display) {
    #[allow(clippy::print_stderr, reason = "the one place a tool warns")]
    {
        eprintln!("{tool}: warning: {text}");
    }
}

/// A Windows-style command line for clap: `-?` and `/?` ask for help (in every tool), and each
/// `(word, flag)` of `switches` is accepted as `-word` or `/word` in any case, and as
/// `/word:value` or `-word:value` (the value becomes the flag's argument). An en dash, em dash
/// or minus sign at an argument's start is a hyphen (the seed's blog prints `certreq –new –q`,
/// as word processors make them). Everything else, including the program name, passes
/// unchanged.
pub fn windows_args(
    args: impl IntoIterator<Item = String>,
    switches: &[(&str, &str)],
) -> Vec<String> {
    windows_args_with_verbs(args, switches, &[])
}

/// As [`windows_args`], and the first argument that is one of `verbs` (in any case, as
/// Windows tools take `Backup` or `PROMOTERMS`) is given in lower case.
pub fn windows_args_with_verbs(
    args: impl IntoIterator<Item = String>,
    switches: &[(&str, &str)],
    verbs: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut verb_seen = false;
    for (i, arg) in args.into_iter().enumerate() {
        let typographic = ['\u{2013}', '\u{2014}', '\u{2212}'];
        let arg = match arg.strip_prefix(typographic) {
            Some(rest) if i > 0 => match rest.strip_prefix(typographic) {
                Some(rest) => format!("--{rest}"),
                None => format!("-{rest}"),
            },
            _ => arg,
        };
        let lower = arg.to_ascii_lowercase();
        if i > 0 && !verb_seen && verbs.contains(&lower.as_str()) {
            verb_seen = true;
            out.push(lower);
            continue;
        }
        if i > 0 && (lower == "-?" || lower == "/?") {
            out.push("--help".to_owned());
            continue;
        }
        let word = lower
            .strip_prefix('-')
            .or_else(|| lower.strip_prefix('/'))
            .filter(|_| i > 0);
        let switch = word.and_then(|w| {
            let (name, value) = match w.split_once(':') {
                Some((name, _)) => (name, Some(&arg[arg.len() - (w.len() - name.len() - 1)..])),
                None => (w, None),
            };
            switches
                .iter()
                .find(|(word, _)| *word == name)
                .map(|(_, flag)| (*flag, value))
        });
        match switch {
            Some((flag, None)) => out.push(flag.to_owned()),
            Some((flag, Some(value))) => {
                out.push(flag.to_owned());
                out.push(value.to_owned());
            }
            None => out.push(arg),
        }
    }
    out
}

/// A command-line value one of the tools' value parsers refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    /// A Windows path, which this machine would take as a file name in the current folder.
    #[error(
        "'{given}' is a Windows path, which this machine would take as a file name in the current folder: give a path here, such as ./{last} or /srv/{last}"
    )]
    WindowsPath {
        /// The path given.
        given: String,
        /// The file or folder it names, as a path of this machine would end.
        last: String,
    },
    /// A `.csv` name for an output written as JSON.
    #[error(
        "'{0}' names a CSV file, but the balanced inventory is written as JSON: give a .json output (-o balanced.json)"
    )]
    CsvOutput(String),
    /// Not a host name.
    #[error("'{given}': {why}")]
    NotAHost {
        /// The name given.
        given: String,
        /// What is wrong with it.
        why: opsmgr_model::HostNameError,
    },
    /// A host name that is not fully qualified.
    #[error(
        "'{0}' is a short name: the seed's procedure names the new RMS by its fully qualified domain name (for example DeathSting.Odyssey.com), which resolves from the Reporting and Web Console servers whatever their domain"
    )]
    ShortName(String),
    /// A span that does not start with a number.
    #[error("'{0}' is not a number of days, weeks or months ({SPAN_EXAMPLE})")]
    NotANumber(String),
    /// A span without its unit.
    #[error("'{0}' has no unit: give days, weeks or months, {SPAN_EXAMPLE}")]
    NoUnit(String),
    /// A span's unit that is none of ours.
    #[error(
        "'{unit}' in '{given}' is not a unit of days, weeks, months or years ({SPAN_EXAMPLE}; a month is 30 days)"
    )]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The span given.
        given: String,
    },
    /// A span longer than any certificate lasts.
    #[error("'{0}' is further ahead than any certificate lasts")]
    TooFar(String),
}

const SPAN_EXAMPLE: &str = "such as 60d, 8w, 2months or 1y";

/// Refuses to replace an existing `path` unless `overwrite`, naming the tool's `switch` that
/// would (`-f`, `--force`): every tool checks this before it asks for a password or does work.
pub fn refuse_overwrite(
    path: &std::path::Path,
    overwrite: bool,
    switch: &str,
) -> anyhow::Result<()> {
    if !overwrite && path.exists() {
        bail!("{} exists; {switch} overwrites it", path.display());
    }
    Ok(())
}

/// As [`windows_args`], for a tool whose Windows original has verbs of its own (certutil's
/// `-hashfile`, certreq's `-policy`): a `-word` the tool does not know becomes `--word`, which
/// clap refuses by name, instead of a bundle of one-letter switches (`-hashfile` would be `-h`,
/// the help, and a success). A word right after one of `value_shorts` (`-p`) is that switch's
/// value and stays as it is, and so does a word glued to it (`-pPASSWORD`), which no error
/// message should repeat.
pub fn windows_args_refusing_unknown(
    args: impl IntoIterator<Item = String>,
    switches: &[(&str, &str)],
    value_shorts: &[char],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, arg) in windows_args(args, switches).into_iter().enumerate() {
        let after_value_short = out
            .last()
            .and_then(|prev| prev.strip_prefix('-'))
            .is_some_and(|p| p.len() == 1 && p.starts_with(value_shorts));
        let glued = arg
            .strip_prefix('-')
            .is_some_and(|w| w.starts_with(value_shorts));
        if i > 0 && !after_value_short && !glued && is_unknown_word(&arg) {
            out.push(format!("-{arg}"));
        } else {
            out.push(arg);
        }
    }
    out
}

/// `-word`: one dash, then at least two letters or digits, the first a letter.
fn is_unknown_word(arg: &str) -> bool {
    let Some(word) = arg.strip_prefix('-').filter(|w| !w.starts_with('-')) else {
        return false;
    };
    word.len() >= 2
        && word.starts_with(|c: char| c.is_ascii_alphabetic())
        && word.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A path given on the command line, refused when it is a Windows path (`c:\\backups\\x.bin`,
/// `\\\\server\\share\\x`, `backups\\x.bin`): copied from a Windows runbook, it would be
/// taken here as a file name in the current folder.
pub fn local_path(text: &str) -> Result<PathBuf, ArgError> {
    let b = text.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    let unc = text.starts_with("\\\\");
    if drive || unc || text.contains('\\') {
        let last = text
            .rsplit(['\\', '/', ':'])
            .find(|part| !part.is_empty())
            .unwrap_or("FILE");
        return Err(ArgError::WindowsPath {
            given: text.to_owned(),
            last: last.to_owned(),
        });
    }
    Ok(PathBuf::from(text))
}

/// [`local_path`] for an inventory that om-balance writes: JSON, so never a `.csv` name (an
/// Export-Csv file overwritten with JSON is something neither PowerShell nor we read back).
pub fn json_output_path(text: &str) -> Result<PathBuf, ArgError> {
    let path = local_path(text)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Err(ArgError::CsvOutput(text.to_owned()));
    }
    Ok(path)
}

/// The RMS's name where a config must hold its fully qualified domain name: the seed's
/// chapter says to put "the new RMS name (specify the Fully Qualified Domain Name)" in the
/// Web Console's Web.config, and the Reporting server resolves it likewise; a short name
/// resolves only inside its own domain.
pub fn fqdn(text: &str) -> Result<String, ArgError> {
    let host = opsmgr_model::HostName::new(text).map_err(|why| ArgError::NotAHost {
        given: text.to_owned(),
        why,
    })?;
    if !host.as_str().contains('.') {
        return Err(ArgError::ShortName(text.to_owned()));
    }
    Ok(host.to_string())
}

/// The CA folder for `-config` (certutil and certreq have a default CA; so do we): the
/// option, else `$OPSMGR_CA`, else the first line of `~/.config/opsmgr/ca`.
pub const CA_ENV: &str = "OPSMGR_CA";

/// The CA folder: `-config`, else [`CA_ENV`], else `~/.config/opsmgr/ca` (its first line);
/// an error naming the three when none is set.
pub fn ca_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = arg {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os(CA_ENV).filter(|v| !v.is_empty()) {
        return local_path(&dir.to_string_lossy()).map_err(|e| anyhow::anyhow!("${CA_ENV}: {e}"));
    }
    let file = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("opsmgr").join("ca"));
    if let Some(file) = file.filter(|f| f.is_file()) {
        let text = String::from_utf8(read_bounded(&file, 4096)?)
            .with_context(|| format!("{} is not UTF-8", file.display()))?;
        let line = text.lines().next().unwrap_or("").trim();
        if !line.is_empty() {
            return local_path(line).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()));
        }
    }
    bail!(
        "no CA given: name the CA's folder (-config CA; om-ca: --ca CA), or set ${CA_ENV}, or write the folder in ~/.config/opsmgr/ca"
    )
}

/// Reads a file of at most `max` bytes: the bound holds on the read itself (a pipe or a
/// growing file cannot make it read more), and only a regular file is read. Its type is
/// checked before it is opened (opening a FIFO would wait for a writer) and again after.
pub fn read_bounded(path: &std::path::Path, max: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let regular = |meta: std::fs::Metadata| -> anyhow::Result<()> {
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(())
    };
    regular(std::fs::metadata(path).with_context(|| format!("opening {}", path.display()))?)?;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    regular(
        file.metadata()
            .with_context(|| format!("reading {}", path.display()))?,
    )?;
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    Ok(bytes)
}

/// Standard output through one 64 KiB buffer, for every tool: the standard library's stdout
/// is line-buffered, a system call per line, which a report of thousands of lines pays for
/// each. Flush it before asking a question; it is flushed when dropped.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Writes `value` as pretty JSON and a line end: every tool's `--json` report.
pub fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// The environment variable that names the machine folder when `--machine` is not given.
pub const MACHINE_ENV: &str = "OPSMGR_MACHINE";

/// The machine folder: `--machine DIR`, else `$OPSMGR_MACHINE`, else the per-user default
/// `$XDG_DATA_HOME/opsmgr/machine` (`~/.local/share/opsmgr/machine`).
pub fn machine_dir(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = arg {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os(MACHINE_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("no --machine, no $OPSMGR_MACHINE and no home folder to default to")?;
    Ok(data.join("opsmgr/machine"))
}

/// Where a password comes from. Never the command line: argv is visible to every user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Asked on the terminal, without echo.
    Prompt,
    /// The first line of a file.
    File(PathBuf),
    /// The first line of standard input.
    Stdin,
    /// An environment variable.
    Env(String),
}

/// The password switches every tool that needs a password takes, before or after its verb.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of this file.
    #[arg(value_parser = crate::local_path, long, value_name = "FILE", conflicts_with_all = ["password_stdin", "password_env"], global = true)]
    pub password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "password_env", global = true)]
    pub password_stdin: bool,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", global = true)]
    pub password_env: Option<String>,
}

impl PasswordArgs {
    /// Where the password comes from: the switch given, else a prompt.
    pub fn source(&self) -> PasswordSource {
        match (&self.password_file, self.password_stdin, &self.password_env) {
            (Some(f), _, _) => PasswordSource::File(f.clone()),
            (_, true, _) => PasswordSource::Stdin,
            (_, _, Some(v)) => PasswordSource::Env(v.clone()),
            _ => PasswordSource::Prompt,
        }
    }
}

/// Opens the CA in `dir`, asking for its key's password only when the key is encrypted.
pub fn open_authority(dir: &std::path::Path, password: &PasswordArgs) -> anyhow::Result<Authority> {
    if !dir.join(CA_KEY).exists() {
        bail!("{} is not a CA folder (no {})", dir.display(), CA_KEY);
    }
    let context = || format!("opening the CA in {}", dir.display());
    match Authority::open(dir, None) {
        Err(opsmgr_ca::Error::PasswordRequired(_)) => {
            let secret = read_password(&password.source(), "Password of the CA's key: ", false)?;
            Authority::open(dir, Some(&secret)).with_context(context)
        }
        other => other.with_context(context),
    }
}

/// Opens the CA in `dir` to read, without its key: what `-view` and `-retrieve` need, so
/// they never ask for the key's password.
pub fn open_view(dir: &std::path::Path) -> anyhow::Result<CaView> {
    if !dir.join(CA_CERT).exists() {
        bail!("{} is not a CA folder (no {})", dir.display(), CA_CERT);
    }
    CaView::open(dir).with_context(|| format!("opening the CA in {}", dir.display()))
}

/// The first line of a password file's bytes, read as the text Windows tools write: UTF-8
/// with or without a byte-order mark (Notepad, `Set-Content -Encoding UTF8`), or UTF-16 LE or
/// BE with one (Notepad's "Unicode", `Out-File` and `>` in Windows PowerShell). The mark is
/// never part of the password.
pub fn password_text(bytes: &[u8]) -> anyhow::Result<Zeroizing<String>> {
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| -> anyhow::Result<Zeroizing<String>> {
        if !rest.len().is_multiple_of(2) {
            bail!("the UTF-16 text has an odd number of bytes");
        }
        let units: Zeroizing<Vec<u16>> =
            Zeroizing::new(rest.chunks_exact(2).map(|p| unit([p[0], p[1]])).collect());
        String::from_utf16(&units)
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("the UTF-16 text is not valid"))
    };
    let text = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        utf16(rest, u16::from_le_bytes)?
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        utf16(rest, u16::from_be_bytes)?
    } else {
        let rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        Zeroizing::new(
            std::str::from_utf8(rest)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "it is not UTF-8 or UTF-16 with a byte-order mark (save it as UTF-8 or Unicode)"
                    )
                })?
                .to_owned(),
        )
    };
    let end = text.find(['\r', '\n']).unwrap_or(text.len());
    Ok(Zeroizing::new(text[..end].to_owned()))
}

/// Reads a password. With `confirm`, a prompt asks twice and refuses a mismatch (as
/// [`read_new_password`] with no check); the other sources are taken as given (a script
/// confirms by construction).
pub fn read_password(
    source: &PasswordSource,
    prompt: &str,
    confirm: bool,
) -> anyhow::Result<Zeroizing<String>> {
    if confirm {
        read_new_password(source, prompt, |_| Ok(()))
    } else {
        read_once(source, prompt)
    }
}

/// A password from `source`, asked once at the prompt.
fn read_once(source: &PasswordSource, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    match source {
        PasswordSource::File(path) => {
            let bytes = Zeroizing::new(
                std::fs::read(path)
                    .with_context(|| format!("reading the password from {}", path.display()))?,
            );
            password_text(&bytes)
                .with_context(|| format!("reading the password from {}", path.display()))
        }
        PasswordSource::Stdin => {
            let mut line = Zeroizing::new(Vec::new());
            io::stdin()
                .lock()
                .read_until(b'\n', &mut line)
                .context("reading the password from stdin")?;
            password_text(&line).context("reading the password from stdin")
        }
        PasswordSource::Env(var) => {
            let value =
                std::env::var(var).with_context(|| format!("reading the password from ${var}"))?;
            Ok(Zeroizing::new(value))
        }
        PasswordSource::Prompt => {
            if !io::stdin().is_terminal() {
                bail!(
                    "no terminal to ask for the password: use --password-file, --password-stdin or --password-env"
                );
            }
            Ok(Zeroizing::new(
                rpassword::prompt_password(prompt).context("reading the password")?,
            ))
        }
    }
}

/// A new password or secret: read from `source`, checked by `check` at once (at the prompt,
/// before it is asked again to confirm, so a refused one is never typed twice), then
/// confirmed at the prompt.
pub fn read_new_password(
    source: &PasswordSource,
    prompt: &str,
    check: impl Fn(&str) -> anyhow::Result<()>,
) -> anyhow::Result<Zeroizing<String>> {
    let password = read_once(source, prompt)?;
    check(&password)?;
    if matches!(source, PasswordSource::Prompt) {
        let again = Zeroizing::new(
            rpassword::prompt_password("Confirm the password: ").context("reading the password")?,
        );
        if *again != *password {
            bail!("the two passwords do not match; nothing was written");
        }
    }
    Ok(password)
}

/// A line typed at the terminal after `prompt` (on stderr), without its line end; refused
/// without a terminal.
pub fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    if !io::stdin().is_terminal() {
        bail!("no terminal to ask at");
    }
    let mut err = io::stderr().lock();
    write!(err, "{prompt}")?;
    err.flush()?;
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the answer")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// A time as every JSON report writes one: RFC 3339 to the second (`2027-12-05T20:09:31Z`).
pub fn rfc3339_utc(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A time as every message a person reads shows one: `2027-12-05 20:09 UTC`, from the Unix
/// epoch to X.509's last second (9999-12-31 23:59): earlier or later times show as those.
pub fn format_utc(time: SystemTime) -> String {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    let time = time.clamp(UNIX_EPOCH, last);
    let rfc3339 = humantime::format_rfc3339_seconds(time).to_string();
    // 2027-12-05T20:09:31Z -> 2027-12-05 20:09 UTC
    format!("{} UTC", rfc3339[..16].replace('T', " "))
}

/// A span of days as an operator writes one (`--within 60d`, `8w`, `2months`, `1y`): days,
/// weeks, months of 30 days or years of 365, with the unit required (a bare `60` could be
/// anything). The value is in days.
pub fn days(text: &str) -> Result<u32, ArgError> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u32 = number
        .parse()
        .map_err(|_| ArgError::NotANumber(text.to_owned()))?;
    let per = match unit.trim() {
        "" => return Err(ArgError::NoUnit(text.to_owned())),
        "d" | "day" | "days" => 1,
        "w" | "week" | "weeks" => 7,
        "mo" | "month" | "months" => 30,
        "y" | "year" | "years" => 365,
        other => {
            return Err(ArgError::UnknownUnit {
                unit: other.to_owned(),
                given: text.to_owned(),
            });
        }
    };
    n.checked_mul(per)
        .filter(|d| *d <= 36_525 * 2)
        .ok_or_else(|| ArgError::TooFar(text.to_owned()))
}

/// A number of days in words: `1 day`, `60 days`.
pub fn days_in_words(days: u32) -> String {
    if days == 1 {
        "1 day".to_owned()
    } else {
        format!("{days} days")
    }
}

/// A table as the tools print one: a header row, then one row per item, every column but
/// the last padded to its widest cell (two spaces between columns).
pub fn write_table(out: &mut impl Write, headers: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let cells: Vec<&str> = cells.collect();
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut headers.iter().copied())?;
    for row in rows {
        line(out, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// Why a password is weak, if it is: short, or one kind of character.
pub fn password_weakness(password: &str) -> Option<String> {
    let kinds = [
        password.chars().any(char::is_lowercase),
        password.chars().any(char::is_uppercase),
        password.chars().any(char::is_numeric),
        password.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    let length = password.chars().count();
    if length < 12 {
        Some(format!(
            "it has only {length} characters; 12 or more are advised"
        ))
    } else if kinds < 2 && length < 20 {
        Some("it uses one kind of character; mix kinds or use a longer passphrase".into())
    } else {
        None
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the certificate tools refuse a Windows verb they lack by name; a password after or
    /// glued to `-p` is never touched, and nor are the other tools' arguments.
    #[test]
    fn unknown_windows_words_are_refused_by_name() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let switches = [("f", "-f"), ("p", "-p"), ("view", "--view")];
        let table: [(&[&str], &[&str]); 5] = [
            (&["t", "-hashfile", "x"], &["t", "--hashfile", "x"]),
            (&["t", "-VIEW", "-F"], &["t", "--view", "-f"]),
            (
                &["t", "-p", "-secret1", "-exportpfx"],
                &["t", "-p", "-secret1", "--exportpfx"],
            ),
            (&["t", "-pSecret1", "-q"], &["t", "-pSecret1", "-q"]),
            (&["t", "--json", "-1"], &["t", "--json", "-1"]),
        ];
        for (given, expected) in table {
            assert_eq!(
                windows_args_refusing_unknown(args(given), &switches, &['p']),
                args(expected),
                "{given:?}"
            );
        }
        // The shared rewrite leaves a word it does not know alone: om-balance's -o and the
        // like are clap's to read.
        assert_eq!(
            windows_args(args(&["t", "-ofile", "-hashfile"]), &switches),
            args(&["t", "-ofile", "-hashfile"])
        );
    }

    /// certreq's documented codes: -submit fails only on a denial; -retrieve also on a request
    /// still pending and a certificate revoked.
    #[test]
    fn request_exit_codes() {
        use Disposition as D;
        let table = [
            (D::Issued, false, 0),
            (D::Pending, false, 0),
            (D::Denied, false, 4),
            (D::Revoked, false, 0),
            (D::Issued, true, 0),
            (D::Pending, true, 3),
            (D::Denied, true, 4),
            (D::Revoked, true, 5),
        ];
        for (d, retrieving, code) in table {
            assert_eq!(exit::for_request(d, retrieving), code, "{d} {retrieving}");
        }
    }

    #[test]
    fn spans_of_days_need_their_unit() {
        for (text, expected) in [
            ("60d", 60),
            ("60 days", 60),
            ("1day", 1),
            ("8w", 56),
            ("2 weeks", 14),
            ("2months", 60),
            ("1 MONTH", 30),
            ("3mo", 90),
            ("1y", 365),
        ] {
            assert_eq!(days(text), Ok(expected), "{text}");
        }
        assert_eq!(
            days("60").unwrap_err().to_string(),
            "'60' has no unit: give days, weeks or months, such as 60d, 8w, 2months or 1y"
        );
        assert_eq!(
            days("60s").unwrap_err().to_string(),
            "'s' in '60s' is not a unit of days, weeks, months or years (such as 60d, 8w, 2months or 1y; a month is 30 days)"
        );
        assert_eq!(days("d"), Err(ArgError::NotANumber("d".into())));
        assert_eq!(days("99999999y"), Err(ArgError::TooFar("99999999y".into())));
        assert_eq!(days_in_words(1), "1 day");
        assert_eq!(days_in_words(60), "60 days");
    }

    #[test]
    fn utc_formatting() {
        let mut table = Vec::new();
        write_table(
            &mut table,
            &["Id", "Host", "Message"],
            &[
                vec!["1".into(), "agent01.company.local".into(), "Issued".into()],
                vec!["12".into(), "a".into(), "Taken Under Submission".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(table).unwrap(),
            "Id  Host                   Message\n1   agent01.company.local  Issued\n12  a                      Taken Under Submission\n"
        );
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(format_utc(at(0)), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(at(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(at(1_795_363_447)), "2026-11-22 16:04 UTC");
        assert_eq!(
            format_utc(at(1_795_363_447) + Duration::from_millis(999)),
            "2026-11-22 16:04 UTC"
        );
        assert_eq!(format_utc(at(400_000_000_000)), "9999-12-31 23:59 UTC");
        assert_eq!(
            format_utc(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01 00:00 UTC"
        );
    }

    #[test]
    fn weak_passwords_are_named() {
        assert!(
            password_weakness("Password1")
                .unwrap()
                .contains("only 9 characters")
        );
        assert!(
            password_weakness("aaaaaaaaaaaaaa")
                .unwrap()
                .contains("one kind")
        );
        assert_eq!(password_weakness("correct horse battery staple"), None);
        assert_eq!(password_weakness("Tr0ub4dor&3xyz"), None);
    }

    #[test]
    fn passwords_from_files_take_the_first_line() {
        let dir = std::env::temp_dir().join(format!("opsmgr-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "secret one\r\nsecond line\n").unwrap();
        let pw = read_password(&PasswordSource::File(f), "", true).unwrap();
        assert_eq!(pw.as_str(), "secret one");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn password_files_as_windows_writes_them() {
        let utf16 = |s: &str, be: bool| -> Vec<u8> {
            let mut out = if be {
                vec![0xFE, 0xFF]
            } else {
                vec![0xFF, 0xFE]
            };
            for u in s.encode_utf16() {
                out.extend(if be { u.to_be_bytes() } else { u.to_le_bytes() });
            }
            out
        };
        let want = "Pässwörd 1!";
        for bytes in [
            want.as_bytes().to_vec(),
            [b"\xEF\xBB\xBF".as_slice(), want.as_bytes(), b"\r\n"].concat(),
            utf16(&format!("{want}\r\n"), false),
            utf16(want, true),
        ] {
            assert_eq!(password_text(&bytes).unwrap().as_str(), want, "{bytes:?}");
        }
        assert!(
            password_text(&[0xFF, 0xFE, 0x41])
                .unwrap_err()
                .to_string()
                .contains("odd number")
        );
        assert!(
            password_text(b"caf\xE9")
                .unwrap_err()
                .to_string()
                .contains("not UTF-8 or UTF-16")
        );
    }

    #[test]
    fn windows_switches_help_and_colon_values() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let switches = [("subjectname", "--subject-name"), ("remove", "--remove")];
        assert_eq!(
            windows_args(
                args(&["tool", "/SubjectName:Agent01.Company.local", "/tmp/x.pfx"]),
                &switches
            ),
            args(&[
                "tool",
                "--subject-name",
                "Agent01.Company.local",
                "/tmp/x.pfx"
            ])
        );
        assert_eq!(
            windows_args(args(&["tool", "-SUBJECTNAME", "h", "/Remove"]), &switches),
            args(&["tool", "--subject-name", "h", "--remove"])
        );
        assert_eq!(
            windows_args(args(&["tool", "-?"]), &[]),
            args(&["tool", "--help"])
        );
        assert_eq!(
            windows_args(args(&["tool", "/?", "-x"]), &[]),
            args(&["tool", "--help", "-x"])
        );
    }

    #[test]
    fn broken_pipe_anywhere_in_the_chain_is_recognised() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound)).context("reading");
        assert!(!is_broken_pipe(&e));
    }
}

//! The certreq.inf request policy: the INI-like file certreq reads, and what it asks for.

use crate::sigalg::Hash;
use std::collections::HashMap;
use std::fmt;

use super::dn::{DistinguishedName, parse_dn};
use crate::error::{Error, Result};

/// Agent channel EKUs: server authentication.
pub const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// Agent channel EKUs: client authentication.
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// The subject alternative name extension.
const SAN_OID: &str = "2.5.29.17";
/// The extended key usage extension.
const EKU_OID: &str = "2.5.29.37";
/// The basic constraints extension.
const BASIC_CONSTRAINTS_OID: &str = "2.5.29.19";

/// The largest policy file read (certreq.inf files are a few hundred bytes).
pub const MAX_INF_BYTES: usize = 64 * 1024;

/// KeyUsage bits, as certreq names them.
const KEY_USAGE_NAMES: [(&str, u8); 7] = [
    ("CERT_DIGITAL_SIGNATURE_KEY_USAGE", 0x80),
    ("CERT_NON_REPUDIATION_KEY_USAGE", 0x40),
    ("CERT_KEY_ENCIPHERMENT_KEY_USAGE", 0x20),
    ("CERT_DATA_ENCIPHERMENT_KEY_USAGE", 0x10),
    ("CERT_KEY_AGREEMENT_KEY_USAGE", 0x08),
    ("CERT_KEY_CERT_SIGN_KEY_USAGE", 0x04),
    ("CERT_CRL_SIGN_KEY_USAGE", 0x02),
];

/// The key a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA with this modulus size.
    Rsa(u32),
    /// ECDSA on P-256.
    EcdsaP256,
    /// ECDSA on P-384.
    EcdsaP384,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa(bits) => write!(f, "RSA-{bits}"),
            KeyType::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyType::EcdsaP384 => f.write_str("ECDSA P-384"),
        }
    }
}

/// What a certreq.inf asks for, after every line was understood and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPolicy {
    /// The subject, in the order written.
    pub subject: DistinguishedName,
    /// The key to generate.
    pub key: KeyType,
    /// The request's signature digest.
    pub hash: Hash,
    /// `AlternateSignatureAlgorithm = TRUE`: an RSA request is signed with RSASSA-PSS (salt
    /// as long as the digest, MGF1 with the same digest), as certreq does.
    pub alternate_signature: bool,
    /// KeyUsage bits (0x80 digitalSignature ... 0x02 cRLSign); `None` when not given.
    pub key_usage: Option<u8>,
    /// Extended key usages (dotted OIDs), in order; the agent channel's two when not given.
    pub ekus: Vec<String>,
    /// DNS subject alternative names; the subject's CN when not given.
    pub dns_names: Vec<String>,
    /// Whether the private key may be exported.
    pub exportable: bool,
    /// Whether the key goes into the machine's store (else the user's).
    pub machine_key_set: bool,
    /// The friendly name to store with the certificate.
    pub friendly_name: Option<String>,
    /// `RenewalCert`: the certificate (its thumbprint or serial number) this request renews,
    /// proved with that certificate's key.
    pub renewal_cert: Option<String>,
    /// `UseExistingKeySet = TRUE` with `KeyContainer`: the key already in the stores that
    /// the request is made for (a pending key's id, or a certificate's thumbprint in My)
    /// instead of a new one.
    pub existing_key: Option<String>,
    /// Name-value pairs the request carries for the CA (`[RequestAttributes]`,
    /// `CertificateTemplate`, `NotBefore`, `NotAfter`, `ValidityPeriod`,
    /// `ValidityPeriodUnits`), as certreq sends them (Microsoft's enrollment name-value pair
    /// attribute). This CA decides validity itself and names them as ignored.
    pub request_attributes: Vec<(String, String)>,
    /// Keys of Microsoft's reference that are read and have no effect here, each with why.
    pub notes: Vec<String>,
}

/// Options a caller may give the policy reader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOptions {
    /// Accept `KeyLength = 1024` for RSA (the seed's file), which is broken for this use.
    pub allow_legacy_rsa1024: bool,
}

/// One `Key = Value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: String,
    value: String,
    line: usize,
}

/// One `[Section]` with its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    name: String,
    entries: Vec<Entry>,
}

/// Windows-1252's characters for the bytes 0x80 to 0x9F (the rest of its upper half is
/// Latin-1's); the five bytes it leaves undefined read as the C1 controls, as Windows maps them.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// Decodes a policy file as certreq does: UTF-16 with a byte-order mark (Notepad's
/// "Unicode"), UTF-8 with or without one, else the ANSI code page: Windows-1252, what
/// Notepad's "ANSI" writes on US and Western European Windows (then said in a note, since
/// another code page would read those bytes differently).
fn decode(bytes: &[u8], file: &str) -> Result<(String, Option<String>)> {
    let fail = |message: String| Error::Inf {
        file: file.into(),
        line: 0,
        key: None,
        message,
    };
    if bytes.len() > MAX_INF_BYTES {
        return Err(fail(format!(
            "the file is larger than {MAX_INF_BYTES} bytes"
        )));
    }
    let utf16 = |rest: &[u8], unit: fn([u8; 2]) -> u16| {
        if !rest.len().is_multiple_of(2) {
            return Err(fail("UTF-16 file with an odd number of bytes".into()));
        }
        char::decode_utf16(rest.chunks_exact(2).map(|c| unit([c[0], c[1]])))
            .collect::<std::result::Result<String, _>>()
            .map_err(|e| fail(format!("invalid UTF-16: {e}")))
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes).map(|t| (t, None));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes).map(|t| (t, None));
    }
    let rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if rest.contains(&0) {
        return Err(fail(
            "a NUL byte: UTF-16 without a byte-order mark? Save it from Notepad as Unicode or UTF-8".into(),
        ));
    }
    match std::str::from_utf8(rest) {
        Ok(text) => Ok((text.to_owned(), None)),
        Err(e) => {
            let at = e.valid_up_to();
            let text = rest
                .iter()
                .map(|&b| match b {
                    0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
                    _ => char::from(b),
                })
                .collect();
            Ok((
                text,
                Some(format!(
                    "the file is not UTF-8 (byte 0x{:02X} at offset {at}): read as Windows-1252, the ANSI code page of US and Western European Windows; save it as UTF-8 if it was written elsewhere",
                    rest[at]
                )),
            ))
        }
    }
}

/// Splits `text` at the first `;` outside double quotes.
fn strip_comment(text: &str) -> &str {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &text[..i],
            _ => {}
        }
    }
    text
}

/// A value as written: surrounding white space trimmed, one pair of double quotes removed,
/// `""` inside quotes read as one quote.
fn unquote(raw: &str) -> std::result::Result<String, String> {
    let raw = raw.trim();
    let Some(inner) = raw.strip_prefix('"') else {
        return Ok(raw.to_owned());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!("unterminated quoted value {raw}"));
    };
    Ok(inner.replace("\"\"", "\""))
}

fn parse_sections(text: &str, file: &str) -> Result<Vec<Section>> {
    let fail = |line: usize, key: Option<&str>, message: String| Error::Inf {
        file: file.into(),
        line,
        key: key.map(str::to_owned),
        message,
    };
    let mut sections: Vec<Section> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            continue;
        }
        if let Some(rest) = content.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| fail(line, None, format!("section header '{content}' lacks ']'")))?
                .trim();
            if name.is_empty() {
                return Err(fail(line, None, "empty section name".into()));
            }
            sections.push(Section {
                name: name.to_owned(),
                entries: Vec::new(),
            });
            continue;
        }
        let section = sections
            .last_mut()
            .ok_or_else(|| {
                fail(
                    line,
                    None,
                    format!(
                        "'{content}' is outside any [Section]: certreq.inf starts with [Version] (Signature = \"$Windows NT$\") and puts the request's keys under [NewRequest]; add those two headers above this line"
                    ),
                )
            })?;
        let (key, value) = content.split_once('=').ok_or_else(|| {
            fail(
                line,
                None,
                format!("expected 'Key = Value', found '{content}'"),
            )
        })?;
        let key = key.trim();
        if key.is_empty() {
            return Err(fail(line, None, "a line starts with '='".into()));
        }
        let value = unquote(value).map_err(|m| fail(line, Some(key), m))?;
        if key.eq_ignore_ascii_case("_continue_") {
            let last = section.entries.last_mut().ok_or_else(|| {
                fail(
                    line,
                    Some(key),
                    "_continue_ with nothing to continue".into(),
                )
            })?;
            last.value.push_str(&value);
            continue;
        }
        section.entries.push(Entry {
            key: key.to_owned(),
            value,
            line,
        });
    }
    Ok(sections)
}

/// The longest a value may grow to by `[Strings]` substitution: far more than any subject or
/// name list, far less than what repeated expansion of a large string could cost.
const MAX_EXPANDED: usize = 16 * 1024;

/// At most the first 60 characters of `text`, for a message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// Replaces `%name%` with the `[Strings]` value of `name` (case-insensitive); `%%` is `%`.
/// Substitution is one pass (a value brought in is not expanded again) and bounded: a value
/// that would grow past [`MAX_EXPANDED`] bytes is refused before it is built.
fn substitute(
    value: &str,
    strings: &HashMap<String, String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(value.len().min(MAX_EXPANDED));
    let mut rest = value;
    let push = |out: &mut String, text: &str| {
        if out.len() + text.len() > MAX_EXPANDED {
            return Err(format!(
                "the value grows past {MAX_EXPANDED} bytes when [Strings] are substituted: '{}'",
                clip(value)
            ));
        }
        out.push_str(text);
        Ok(())
    };
    while let Some(start) = rest.find('%') {
        push(&mut out, &rest[..start])?;
        let after = &rest[start + 1..];
        let end = after
            .find('%')
            .ok_or_else(|| format!("unmatched '%' in '{}'", clip(value)))?;
        let name = &after[..end];
        if name.is_empty() {
            push(&mut out, "%")?;
        } else {
            let v = strings
                .get(&name.to_ascii_lowercase())
                .ok_or_else(|| format!("%{}% is not defined in [Strings]", clip(name)))?;
            push(&mut out, v)?;
        }
        rest = &after[end + 1..];
    }
    push(&mut out, rest)?;
    Ok(out)
}

fn parse_bool(value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_uppercase().as_str() {
        "TRUE" | "1" | "YES" => Ok(true),
        "FALSE" | "0" | "NO" => Ok(false),
        _ => Err(format!("'{value}' is not TRUE or FALSE")),
    }
}

fn parse_number(value: &str) -> std::result::Result<u32, String> {
    let v = value.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("'{value}' is not a number (decimal or 0x hex)"))
}

/// `KeySpec`: a number or the name certreq's reference gives it (`AT_KEYEXCHANGE`).
fn parse_key_spec(value: &str) -> std::result::Result<u32, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "AT_NONE" => Ok(0),
        "AT_KEYEXCHANGE" => Ok(1),
        "AT_SIGNATURE" => Ok(2),
        _ => parse_number(value).map_err(|_| {
            format!("'{value}' is neither a number nor AT_NONE, AT_KEYEXCHANGE or AT_SIGNATURE")
        }),
    }
}

/// `KeyUsageProperty`: a number or `NCRYPT_ALLOW_*` names joined by `|`, as certreq's
/// reference writes it.
fn parse_key_usage_property(value: &str) -> std::result::Result<u32, String> {
    const NAMES: [(&str, u32); 4] = [
        ("NCRYPT_ALLOW_DECRYPT_FLAG", 0x1),
        ("NCRYPT_ALLOW_SIGNING_FLAG", 0x2),
        ("NCRYPT_ALLOW_KEY_AGREEMENT_FLAG", 0x4),
        ("NCRYPT_ALLOW_ALL_USAGES", 0x00ff_ffff),
    ];
    let mut bits = 0;
    for part in value.split('|').map(str::trim) {
        bits |= match NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(part)) {
            Some(&(_, b)) => b,
            None => parse_number(part)
                .map_err(|_| format!("'{part}' is neither a number nor an NCRYPT_ALLOW_* name"))?,
        };
    }
    Ok(bits)
}

fn parse_key_usage(value: &str) -> std::result::Result<u8, String> {
    let mut bits = 0u32;
    for part in value.split('|').map(str::trim) {
        bits |= match KEY_USAGE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(part))
        {
            Some(&(_, b)) => u32::from(b),
            None => parse_number(part)
                .map_err(|_| format!("'{part}' is neither a number nor a CERT_*_KEY_USAGE name"))?,
        };
    }
    u8::try_from(bits)
        .map_err(|_| format!("{bits:#x} has bits beyond the ones certreq sets (0xfe)"))
}

/// The names of a subject alternative name in certreq's text form
/// (`{text}dns=host.company.local&dns=alias.company.local`): the DNS names, each checked to
/// be a host name, and the other kinds given, which the CA does not certify: `IPAddress=`,
/// `EMail=`, `UPN=`, `URL=`, `DirectoryName=`, `RegisteredId=`, `GUID=` and other names
/// (`1.2.3.4={utf8}text`, `{asn}1.2.3.4=...`), as Microsoft's reference writes them.
fn parse_san(value: &str) -> std::result::Result<(Vec<String>, Vec<String>), String> {
    let text = text_form(value)?;
    let mut names = Vec::new();
    let mut others = Vec::new();
    for part in text.split('&').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, name) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not kind=value"))?;
        let kind = kind.trim().to_ascii_lowercase();
        let name = name.trim();
        match kind.as_str() {
            "dns" => {
                crate::names::check_dns_name(name).map_err(|e| {
                    // A missing '&' glues the next part onto this name.
                    let glued = if name.contains('=') {
                        "; each name ends with '&' (\"dns=a.company.local&\"), a _continue_ line's too, except the last"
                    } else {
                        ""
                    };
                    format!("dns={name} is not a host name ({e}){glued}")
                })?;
                names.push(name.to_owned());
            }
            "ipaddress" | "ip address" | "ip" | "email" | "upn" | "url" | "dn"
            | "directoryname" | "registeredid" | "guid" | "rid" => {
                others.push(format!("{kind}={name}"));
            }
            _ if kind.starts_with("{asn}") || check_oid(&kind).is_ok() => {
                others.push(format!("other name {kind}={name}"));
            }
            _ => {
                return Err(format!(
                    "'{kind}' is not a kind of name certreq knows (DNS, IPAddress, EMail, UPN, URL, DirectoryName, RegisteredId, GUID, or an OID for another name)"
                ));
            }
        }
    }
    if names.is_empty() && others.is_empty() {
        return Err("the subject alternative name lists no name".into());
    }
    Ok((names, others))
}

/// The text of a `{text}` extension value; certreq's other form, base64 DER, is refused with
/// the text form to write instead (the request must say what the agent asks for in words an
/// operator can read on the share).
fn text_form(value: &str) -> std::result::Result<&str, String> {
    let v = value.trim();
    match v.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("{text}") => Ok(&v[6..]),
        _ => Err(format!(
            "the value must be in certreq's text form, starting with {{text}} (for example \"{{text}}dns=agent01.company.local\"), found '{}'",
            clip(value)
        )),
    }
}

/// Why a section other than the ones read cannot be honoured.
fn section_refusal(name: &str) -> String {
    let ca_only = [
        "PolicyStatementExtension",
        "ApplicationPolicyStatementExtension",
        "PolicyMappingsExtension",
        "ApplicationPolicyMappingsExtension",
        "PolicyConstraintsExtension",
        "ApplicationPolicyConstraintsExtension",
        "BasicConstraintsExtension",
        "NameConstraintsExtension",
        "CRLDistributionPoint",
        "AuthorityInformationAccess",
        "certsrv_server",
    ];
    if ca_only.iter().any(|k| k.eq_ignore_ascii_case(name)) {
        format!(
            "section [{name}] cannot be honoured: it describes a CA's own certificate (qualified subordination or CAPolicy.inf), which an agent's request never is"
        )
    } else {
        format!(
            "section [{name}] cannot be honoured: certreq.inf's sections are [Version], [NewRequest], [Extensions], [EnhancedKeyUsageExtension], [RequestAttributes] and [Strings]"
        )
    }
}

/// The extensions of Microsoft's certreq.inf reference that the CA sets itself whatever a
/// request asks, with what they are.
fn extension_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.29.15" => "key usage (KeyUsage in [NewRequest] says it)",
        "2.5.29.14" => "subject key identifier",
        "2.5.29.35" => "authority key identifier",
        "2.5.29.31" => "CRL distribution points",
        "1.3.6.1.5.5.7.1.1" => "authority information access",
        "2.5.29.32" => "certificate policies",
        "1.3.6.1.4.1.311.21.7" => "certificate template information",
        "1.3.6.1.4.1.311.20.2" => "certificate template name",
        "1.3.6.1.4.1.311.21.10" => "application policies",
        "1.2.840.113549.1.9.15" => "S/MIME capabilities",
        _ => return None,
    })
}

/// The key type a legacy CryptoAPI provider implies, if it implies one.
fn provider_key(name: &str) -> std::result::Result<Option<&'static str>, String> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "microsoft rsa schannel cryptographic provider"
        | "microsoft enhanced rsa and aes cryptographic provider"
        | "microsoft enhanced cryptographic provider v1.0"
        | "microsoft base cryptographic provider v1.0"
        | "microsoft strong cryptographic provider" => Ok(Some("RSA")),
        "microsoft software key storage provider" | "microsoft platform crypto provider" => {
            Ok(None)
        }
        _ => Err(format!("provider '{name}' is not one we can stand in for")),
    }
}

/// Reads a certreq.inf. `file` names it in errors (every error names the file, the line and
/// the key).
pub fn parse_policy(bytes: &[u8], file: &str, options: PolicyOptions) -> Result<RequestPolicy> {
    let (text, encoding_note) = decode(bytes, file)?;
    let sections = parse_sections(&text, file)?;
    let fail = |line: usize, key: &str, message: String| Error::Inf {
        file: file.into(),
        line,
        key: Some(key.to_owned()),
        message,
    };
    let find = |name: &'static str| {
        sections
            .iter()
            .filter(move |s| s.name.eq_ignore_ascii_case(name))
    };
    let strings: HashMap<String, String> = find("Strings")
        .flat_map(|s| &s.entries)
        .map(|e| (e.key.to_ascii_lowercase(), e.value.clone()))
        .collect();
    let value = |e: &Entry| substitute(&e.value, &strings).map_err(|m| fail(e.line, &e.key, m));

    for section in &sections {
        let known = [
            "Version",
            "NewRequest",
            "EnhancedKeyUsageExtension",
            "Extensions",
            "Strings",
            "RequestAttributes",
        ];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(&section.name)) {
            let line = section.entries.first().map_or(0, |e| e.line);
            return Err(fail(line, &section.name, section_refusal(&section.name)));
        }
    }
    for e in find("Version").flat_map(|s| &s.entries) {
        let v = value(e)?;
        if !e.key.eq_ignore_ascii_case("Signature") {
            return Err(fail(
                e.line,
                &e.key,
                "the [Version] section holds only Signature".into(),
            ));
        }
        if !v.eq_ignore_ascii_case("$Windows NT$") && !v.eq_ignore_ascii_case("$Chicago$") {
            return Err(fail(
                e.line,
                &e.key,
                format!("unknown signature '{v}' (expected \"$Windows NT$\")"),
            ));
        }
    }

    let mut subject = None;
    let mut key_length: Option<(u32, usize)> = None;
    let mut key_algorithm: Option<(String, usize)> = None;
    let mut provider_algorithm: Option<&'static str> = None;
    let mut hash = None;
    let mut alternate_signature = false;
    let mut alternate_signature_line = 0;
    let mut key_usage = None;
    let mut exportable = false;
    let mut machine_key_set = false;
    let mut friendly_name = None;
    let mut renewal_cert = None;
    let mut use_existing = None;
    let mut key_container = None;
    let mut suppress_defaults = false;
    let mut request_attributes: Vec<(String, String)> = Vec::new();
    let mut notes: Vec<String> = encoding_note.into_iter().collect();
    let mut seen: Vec<String> = Vec::new();
    for e in find("NewRequest").flat_map(|s| &s.entries) {
        let v = value(e)?;
        let key = e.key.to_ascii_lowercase();
        if seen.contains(&key) {
            return Err(fail(e.line, &e.key, "given twice".into()));
        }
        seen.push(key.clone());
        let bad = |m: String| fail(e.line, &e.key, m);
        match key.as_str() {
            "subject" => subject = Some((parse_dn(&v).map_err(bad)?, e.line)),
            "alternatesignaturealgorithm" => {
                alternate_signature = parse_bool(&v).map_err(bad)?;
                alternate_signature_line = e.line;
            }
            "keylength" => key_length = Some((parse_number(&v).map_err(bad)?, e.line)),
            "keyalgorithm" => key_algorithm = Some((v.to_ascii_uppercase(), e.line)),
            "keyusage" => key_usage = Some(parse_key_usage(&v).map_err(bad)?),
            "exportable" => exportable = parse_bool(&v).map_err(bad)?,
            "machinekeyset" => machine_key_set = parse_bool(&v).map_err(bad)?,
            "friendlyname" => friendly_name = Some(v),
            "renewalcert" => renewal_cert = Some(v),
            "keyspec" => match parse_key_spec(&v).map_err(bad)? {
                1 | 2 => {}
                0 => notes.push(format!(
                    "KeySpec = {v}: a CNG key (AT_NONE); the key is made here, for signing and key exchange alike"
                )),
                n => {
                    return Err(bad(format!(
                        "KeySpec {n} is not 0 (AT_NONE), 1 (AT_KEYEXCHANGE) or 2 (AT_SIGNATURE)"
                    )));
                }
            },
            "providername" => {
                provider_algorithm = provider_key(&v).map_err(bad)?;
                notes.push(format!(
                    "ProviderName {v}: read for its key algorithm; the key is made by this tool, not by a Windows provider"
                ));
            }
            "providertype" => match parse_number(&v).map_err(bad)? {
                1 | 12 | 24 => provider_algorithm = provider_algorithm.or(Some("RSA")),
                n => {
                    return Err(bad(format!(
                        "ProviderType {n} is not an RSA provider type we can stand in for (1, 12, 24)"
                    )));
                }
            },
            "requesttype" => {
                if !v.eq_ignore_ascii_case("PKCS10") {
                    return Err(bad(format!(
                        "RequestType {v} cannot be honoured: the CA reads PKCS #10 requests only; write RequestType = PKCS10"
                    )));
                }
            }
            "usexistingkeyset" | "useexistingkeyset" => {
                use_existing = Some((parse_bool(&v).map_err(bad)?, e.line));
            }
            "keycontainer" => key_container = Some(v),
            "suppressdefaults" => suppress_defaults = parse_bool(&v).map_err(bad)?,
            "notbefore" | "notafter" | "validityperiod" | "validityperiodunits" => {
                let name = match key.as_str() {
                    "notbefore" => "NotBefore",
                    "notafter" => "NotAfter",
                    "validityperiod" => "ValidityPeriod",
                    _ => "ValidityPeriodUnits",
                };
                request_attributes.push((name.to_owned(), v));
            }
            "certificatetemplate" => request_attributes.push(("CertificateTemplate".into(), v)),
            "keyusageproperty" => {
                parse_key_usage_property(&v).map_err(bad)?;
                notes.push(format!(
                    "KeyUsageProperty = {v}: the key's use is what KeyUsage and the certificate say; the property of a Windows key container has no counterpart here"
                ));
            }
            "hashalgorithm" => {
                hash = Some(match v.to_ascii_uppercase().as_str() {
                    "SHA256" => Hash::Sha256,
                    "SHA384" => Hash::Sha384,
                    "SHA512" => Hash::Sha512,
                    "SHA1" | "MD5" => {
                        return Err(bad(format!("{v} is broken for signatures; use SHA256")));
                    }
                    _ => return Err(bad(format!("unknown hash algorithm '{v}'"))),
                })
            }
            other => match ignored_key(other) {
                Some(why) => notes.push(format!("{} ignored: {why}", e.key)),
                None => return Err(bad(format!("unknown key {} in [NewRequest]", e.key))),
            },
        }
    }
    for e in find("RequestAttributes").flat_map(|s| &s.entries) {
        request_attributes.push((e.key.clone(), value(e)?));
    }
    let existing_key = match (use_existing, key_container) {
        (Some((true, _)), Some(container)) => Some(container),
        (Some((true, line)), None) => {
            return Err(fail(
                line,
                "UseExistingKeySet",
                "UseExistingKeySet = TRUE needs KeyContainer naming the key: a pending key's id or a certificate's thumbprint in My".into(),
            ));
        }
        (_, Some(_)) => {
            notes.push(
                "KeyContainer ignored: a new key is made (UseExistingKeySet is not TRUE)".into(),
            );
            None
        }
        _ => None,
    };
    if !machine_key_set {
        notes.push(
            "MachineKeySet is not TRUE: the key goes to the user's store, as on Windows, where the agent does not look (add MachineKeySet = TRUE for an agent's certificate)".into(),
        );
    }
    for (name, _) in &request_attributes {
        notes.push(format!(
            "{name} is sent to the CA as a request attribute; this CA decides templates and validity itself and ignores it"
        ));
    }
    let (subject, subject_line) =
        subject.ok_or_else(|| {
            let message = if find("NewRequest").next().is_none() {
                "the file has no [NewRequest] section: certreq -new needs one with Subject = \"CN=<this machine's FQDN>\" (a file of [Extensions] alone is a certreq -policy file, for a request made elsewhere)"
            } else {
                "[NewRequest] has no Subject"
            };
            fail(0, "Subject", message.into())
        })?;
    let cn = subject
        .common_name()
        .ok_or_else(|| fail(subject_line, "Subject", "the subject has no CN".into()))?
        .to_owned();
    // The agent is known by its CN: a placeholder like the seed's `CN=<FQDN>` would only be
    // refused later by the CA, after the key was made and the request copied to the share.
    crate::names::check_dns_name(&cn).map_err(|e| {
        fail(
            subject_line,
            "Subject",
            format!(
                "the common name '{cn}' is not a host name ({e}): put this machine's fully qualified domain name there, for example Subject = \"CN=agent01.company.local\""
            ),
        )
    })?;

    let algorithm = match (&key_algorithm, provider_algorithm) {
        (Some((a, line)), Some(p)) if a != p => {
            return Err(fail(
                *line,
                "KeyAlgorithm",
                format!("{a} does not match the provider, which implies {p}"),
            ));
        }
        (Some((a, _)), _) => a.clone(),
        (None, Some(p)) => p.to_owned(),
        (None, None) => "RSA".to_owned(),
    };
    let key = match algorithm.as_str() {
        "RSA" => {
            let (bits, line) = key_length.unwrap_or((2048, 0));
            match bits {
                2048 | 3072 | 4096 => KeyType::Rsa(bits),
                1024 if options.allow_legacy_rsa1024 => KeyType::Rsa(1024),
                1024 => {
                    return Err(Error::LegacyRsa1024 {
                        file: file.into(),
                        line,
                    });
                }
                n => {
                    return Err(fail(
                        line,
                        "KeyLength",
                        format!("RSA keys of {n} bits are not supported; use 2048, 3072 or 4096"),
                    ));
                }
            }
        }
        "ECDSA_P256" | "ECDSA_P384" | "ECDSA" | "ECC" => {
            // The curve is in the name, or (plain ECDSA) in the key length.
            let named = match algorithm.as_str() {
                "ECDSA_P256" => Some(256),
                "ECDSA_P384" => Some(384),
                _ => None,
            };
            match (named, key_length) {
                (Some(n), Some((bits, line))) if bits != n => {
                    return Err(fail(
                        line,
                        "KeyLength",
                        format!("{algorithm} keys are {n} bits, not {bits}"),
                    ));
                }
                (Some(384), _) | (None, Some((384, _))) => KeyType::EcdsaP384,
                (Some(_), _) | (None, None | Some((256, _))) => KeyType::EcdsaP256,
                (None, Some((bits, line))) => {
                    return Err(fail(
                        line,
                        "KeyLength",
                        format!(
                            "ECDSA keys of {bits} bits are not supported; use 256 (P-256) or 384 (P-384)"
                        ),
                    ));
                }
            }
        }
        other => {
            let line = key_algorithm.as_ref().map_or(0, |(_, l)| *l);
            return Err(fail(
                line,
                "KeyAlgorithm",
                format!("unknown key algorithm '{other}' (RSA, ECDSA_P256 or ECDSA_P384)"),
            ));
        }
    };
    // certreq's default is SHA-256; a P-384 key is signed with the digest of its size.
    let hash = hash.unwrap_or(if key == KeyType::EcdsaP384 {
        Hash::Sha384
    } else {
        Hash::Sha256
    });
    if alternate_signature && !matches!(key, KeyType::Rsa(_)) {
        return Err(fail(
            alternate_signature_line,
            "AlternateSignatureAlgorithm",
            format!(
                "AlternateSignatureAlgorithm = TRUE asks for RSASSA-PSS, which needs an RSA key, not {key}"
            ),
        ));
    }

    let mut ekus: Vec<String> = Vec::new();
    let add_eku = |oid: String, ekus: &mut Vec<String>| {
        if !ekus.contains(&oid) {
            ekus.push(oid);
        }
    };
    for e in find("EnhancedKeyUsageExtension").flat_map(|s| &s.entries) {
        if e.key.eq_ignore_ascii_case("Critical") {
            parse_bool(&value(e)?).map_err(|m| fail(e.line, &e.key, m))?;
            notes.push(format!(
                "{} ignored: the CA decides which extensions are critical",
                e.key
            ));
            continue;
        }
        if !e.key.eq_ignore_ascii_case("OID") {
            return Err(fail(
                e.line,
                &e.key,
                "[EnhancedKeyUsageExtension] holds only OID= lines (and Critical)".into(),
            ));
        }
        let oid = value(e)?;
        check_oid(&oid).map_err(|m| fail(e.line, &e.key, m))?;
        add_eku(oid, &mut ekus);
    }

    // [Extensions]: an extension's object identifier (or a [Strings] name for it, as
    // %szOID_SUBJECT_ALT_NAME2%) = its value, and Critical = the OIDs to mark critical.
    let mut dns_names = Vec::new();
    for e in find("Extensions").flat_map(|s| &s.entries) {
        let key = substitute(&e.key, &strings).map_err(|m| fail(e.line, &e.key, m))?;
        let v = value(e)?;
        let bad = |m: String| fail(e.line, &e.key, m);
        if key.eq_ignore_ascii_case("Critical") {
            for oid in v.split(',').map(str::trim) {
                check_oid(oid).map_err(bad)?;
            }
            notes.push(format!(
                "Critical = {v} ignored: the CA decides which extensions are critical"
            ));
            continue;
        }
        if key.eq_ignore_ascii_case("OID") {
            return Err(bad(
                "OID = names a purpose, which belongs in [EnhancedKeyUsageExtension]; under [Extensions] a key is an extension's object identifier (2.5.29.37 = \"{text}1.3.6.1.5.5.7.3.1\") or Critical".into(),
            ));
        }
        check_oid(&key).map_err(|m| {
            bad(format!(
                "{m}: a key of [Extensions] is an extension's object identifier or Critical"
            ))
        })?;
        match key.as_str() {
            SAN_OID => {
                let (names, others) = parse_san(&v).map_err(bad)?;
                dns_names.extend(names);
                for other in others {
                    notes.push(format!(
                        "{other} in the subject alternative name ignored: the CA certifies DNS names only (an agent is known by its FQDN)"
                    ));
                }
            }
            EKU_OID => {
                for oid in text_form(&v).map_err(bad)?.split(',').map(str::trim) {
                    check_oid(oid).map_err(bad)?;
                    add_eku(oid.to_owned(), &mut ekus);
                }
            }
            BASIC_CONSTRAINTS_OID => {
                let ca = text_form(&v)
                    .map_err(bad)?
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("ca"))
                    .map(|(_, v)| parse_bool(v.trim()))
                    .transpose()
                    .map_err(bad)?;
                if ca == Some(true) {
                    return Err(bad(
                        "ca=1 asks for a CA certificate, which an agent's channel certificate never is (the CA issues end-entity certificates only): write ca=0 or leave the extension out".into(),
                    ));
                }
                notes.push(format!(
                    "{key} (basic constraints) ignored: the CA marks every certificate it issues CA:FALSE itself"
                ));
            }
            oid => notes.push(match extension_name(oid) {
                Some(name) => format!(
                    "extension {oid} ({name}) ignored: the CA sets it itself, whatever a request asks"
                ),
                None => format!(
                    "extension {oid} ignored: the CA puts only the names, purposes and key usage it decides into a certificate"
                ),
            }),
        }
    }
    // SuppressDefaults = TRUE: no extension certreq would add by default (the CA sets the
    // channel's EKUs itself all the same).
    if ekus.is_empty() && !suppress_defaults {
        ekus = vec![EKU_SERVER_AUTH.to_owned(), EKU_CLIENT_AUTH.to_owned()];
    }
    if dns_names.is_empty() {
        dns_names.push(cn);
    }

    Ok(RequestPolicy {
        subject,
        key,
        hash,
        alternate_signature,
        key_usage,
        ekus,
        dns_names,
        exportable,
        machine_key_set,
        friendly_name,
        renewal_cert,
        existing_key,
        request_attributes,
        notes,
    })
}

/// Keys of Microsoft's certreq.inf reference ([NewRequest]) that are read and have no effect
/// here, with why; `None` for a key the reference does not have.
fn ignored_key(key: &str) -> Option<&'static str> {
    Some(match key {
        "smime" => {
            "S/MIME capabilities are for mail certificates; the CA issues channel certificates only"
        }
        "privatekeyarchive" => {
            "key archival needs an enterprise CA's exchange certificate; this CA never holds agents' keys"
        }
        "encryptionalgorithm" | "encryptionlength" => {
            "they choose the cipher of key archival, which this CA does not do"
        }
        "userprotected" => {
            "strong key protection prompts a user at every use; an agent's service has no user to prompt"
        }
        "keyprotection" => {
            "strong key protection prompts a user at every use; an agent's service has no user to prompt"
        }
        "silent" => "the tools never open a window",
        "securitydescriptor" => {
            "the key file is the owner's alone (0600) whatever the descriptor says"
        }
        "exportableencrypted" => "a key is exported encrypted (PFX) or not at all here",
        "requestername" => {
            "enroll-on-behalf-of is an enterprise CA's; this CA takes requests from the share"
        }
        "attestprivatekey" | "attestationencryptioncert" => {
            "key attestation needs a TPM and an enterprise CA"
        }
        "alternatesignaturealgorithm" => return None,
        "cafile" | "caexchange" => "they name an enterprise CA's exchange certificate",
        "keyalgorithmparameters" => "the curve is named by KeyAlgorithm (ECDSA_P256, ECDSA_P384)",
        "subjectnameflags" => {
            "it asks an enterprise CA's template to build the subject from Active Directory; the subject is the Subject line"
        }
        "x500nameflags" => {
            "the subject is encoded as RFC 5280 asks (UTF8String; PrintableString for C, IA5String for DC and E), in the order written"
        }
        "renewalpfx" => "renew from a certificate in My with RenewalCert instead",
        "fileformat" => {
            "the request is written as certreq writes it (base64 between BEGIN NEW CERTIFICATE REQUEST lines)"
        }
        _ => return None,
    })
}

fn check_oid(oid: &str) -> std::result::Result<(), String> {
    let arcs: Vec<&str> = oid.split('.').collect();
    let ok = arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
        && matches!(arcs[0], "0" | "1" | "2");
    if ok {
        Ok(())
    } else {
        Err(format!("'{oid}' is not a dotted object identifier"))
    }
}

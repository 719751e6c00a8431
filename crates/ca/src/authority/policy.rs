//! The CA's issuing policy (`config.json`) and how a CA is made.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::check_dns_name;
use crate::request::KeyType;

/// What happens when an issued certificate would outlive the root (Vault's
/// `leaf_not_after_behavior`; `permit` is deliberately missing: a certificate that outlives
/// its issuer fails validation the day the root expires).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeafNotAfter {
    /// End the certificate with the root (what the seed relies on).
    #[default]
    Truncate,
    /// Deny the request.
    Err,
}

/// The CA's issuing policy (`config.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The CA's name (the root's common name).
    pub name: String,
    /// Validity of issued certificates, in days.
    pub validity_days: u32,
    /// When an issued certificate would outlive the root.
    #[serde(default)]
    pub leaf_not_after: LeafNotAfter,
    /// Issue on submission instead of leaving requests pending.
    #[serde(default)]
    pub auto_issue: bool,
    /// Accept RSA keys of 1024 bits (broken for this purpose; the seed's file uses them).
    #[serde(default)]
    pub allow_legacy_rsa1024: bool,
    /// DNS names a request may add beside its common name: names ending in one of these
    /// suffixes (for example `.company.local`). Empty: only the common name.
    #[serde(default)]
    pub allowed_dns_suffixes: Vec<String>,
    /// How long a CRL is valid, in days. A new one is published when half of it has passed.
    #[serde(default = "default_crl_days")]
    pub crl_validity_days: u32,
    /// Where relying parties fetch the CRL (`http://pki.company.local/JAMA00.crl`): every
    /// certificate issued carries these as its CRL distribution points. The operator's
    /// choice, never guessed: a URL the agents cannot reach makes their revocation check
    /// fail. Empty: certificates carry none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crl_urls: Vec<String>,
    /// Where relying parties fetch the root (authority information access, caIssuers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_issuers_url: Option<String>,
    /// A folder the CRL is also written to when it is published (the one a web server serves
    /// at the CRL URLs), as `<CA name>.crl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_publish_dir: Option<PathBuf>,
    /// The folder the installers of issued hosts (`<host>.install.ps1`, `.install.cmd`) are
    /// written to, for the operator to publish read-only to the agents; a relative path is
    /// in the CA's folder. Never the drop share: an administrator runs these scripts, and
    /// anyone who can drop a request can replace a file there. Default: `installers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer_dir: Option<PathBuf>,
    /// The root's SHA-1 thumbprint, pinned when the CA was made: the CA refuses to open with
    /// another `ca.cer`, and the installers it writes check the root they carry against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_thumbprint: Option<String>,
}

pub(crate) fn default_crl_days() -> u32 {
    7
}

/// How to create a CA.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The root's common name.
    pub name: String,
    /// The root's key.
    pub key: KeyType,
    /// The root's validity in years.
    pub validity_years: u32,
    /// Validity of issued certificates, in days.
    pub issued_validity_days: u32,
    /// Encrypt the CA's key with this password.
    pub password: Option<zeroize::Zeroizing<String>>,
    /// Issue approved requests from the drop folder without an operator (the policy's
    /// `auto_issue`), written with the rest of the policy when the CA is made.
    pub auto_issue: bool,
}

impl Default for InitOptions {
    /// A careful operator's choice today: a P-256 root for 10 years, agent certificates for
    /// one year (a standalone CA's default), the key unencrypted only when no password is given.
    fn default() -> Self {
        Self {
            name: "JAMA00".into(),
            key: KeyType::EcdsaP256,
            validity_years: 10,
            issued_validity_days: 365,
            password: None,
            auto_issue: false,
        }
    }
}

/// Whether `name` (lower case) lies below the DNS suffix `suffix` (`.company.local` or
/// `company.local`): on a label boundary, so `company.local` admits `a.company.local` but not
/// `evilcompany.local`, nor the suffix itself.
pub(crate) fn under_suffix(name: &str, suffix: &str) -> bool {
    let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
    !suffix.is_empty()
        && name.len() > suffix.len() + 1
        && name.ends_with(&suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// Checks a URL a certificate carries: `http://`, `https://` or `ldap://` with a host, ASCII
/// without spaces or control characters (an IA5String, which pkilint also checks).
fn check_url(url: &str) -> std::result::Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = ["http://", "https://", "ldap://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .ok_or("it must start with http://, https:// or ldap://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("it names no host".into());
    }
    if !url.is_ascii() || url.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err("it must be ASCII without spaces or control characters".into());
    }
    Ok(())
}

impl CaConfig {
    /// Checks the policy's values, naming the field at fault: a suffix must be a DNS name (an
    /// empty one would admit every name), validities at least a day, URLs fetchable.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: String, message: String| Err(Error::Policy { field, message });
        if let Err(e) = check_dns_name(&self.name) {
            return bad("name".into(), format!("'{}': {e}", self.name));
        }
        if self.validity_days == 0 {
            return bad("validity_days".into(), "must be at least 1".into());
        }
        if self.crl_validity_days == 0 {
            return bad("crl_validity_days".into(), "must be at least 1".into());
        }
        for (i, suffix) in self.allowed_dns_suffixes.iter().enumerate() {
            let field = format!("allowed_dns_suffixes[{i}]");
            let bare = suffix.trim_start_matches('.');
            if bare.is_empty() {
                return bad(
                    field,
                    format!(
                        "'{suffix}' is empty, which would admit every name; give a domain such as .company.local"
                    ),
                );
            }
            if let Err(e) = check_dns_name(bare) {
                return bad(field, format!("'{suffix}' is not a DNS name: {e}"));
            }
        }
        for (i, url) in self.crl_urls.iter().enumerate() {
            if let Err(e) = check_url(url) {
                return bad(format!("crl_urls[{i}]"), format!("'{url}': {e}"));
            }
        }
        if let Some(url) = &self.ca_issuers_url
            && let Err(e) = check_url(url)
        {
            return bad("ca_issuers_url".into(), format!("'{url}': {e}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CaConfig {
        CaConfig {
            name: "JAMA00".into(),
            validity_days: 365,
            leaf_not_after: LeafNotAfter::Truncate,
            auto_issue: false,
            allow_legacy_rsa1024: false,
            allowed_dns_suffixes: Vec::new(),
            crl_validity_days: 7,
            crl_urls: Vec::new(),
            ca_issuers_url: None,
            crl_publish_dir: None,
            installer_dir: None,
            root_thumbprint: None,
        }
    }

    #[test]
    fn urls_must_be_fetchable_and_name_their_field() {
        let mut c = config();
        c.crl_urls = vec!["http://pki.company.local/JAMA00.crl".into()];
        c.ca_issuers_url = Some("http://pki.company.local/JAMA00.cer".into());
        assert!(c.validate().is_ok());
        for bad in [
            "pki.company.local/JAMA00.crl",
            "file:///srv/JAMA00.crl",
            "http:///JAMA00.crl",
            "http://pki.company.local/JAMA 00.crl",
            "http://pki.company.local/\nx",
        ] {
            c.crl_urls = vec![bad.into()];
            let e = c.validate().unwrap_err().to_string();
            assert!(e.starts_with("crl_urls[0]: "), "{e}");
        }
    }

    #[test]
    fn suffixes_sit_on_label_boundaries() {
        assert!(under_suffix("a.company.local", ".company.local"));
        assert!(!under_suffix("evilcompany.local", "company.local"));
        assert!(!under_suffix("company.local", "company.local"));
        let mut c = config();
        c.allowed_dns_suffixes = vec![".".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("admit every name")
        );
    }
}

//! Host names: validated DNS names that compare case-insensitively and keep their spelling.
//!
//! One type and one rule for every crate of the workspace that handles host names (the
//! management group's model, the CA, which also makes file names of them, and the config
//! rewriters): a leaf crate that depends on nothing of ours, as `rustls-pki-types` is shared by
//! rustls and webpki. A valid name can never be `..`, hold a path separator, or be empty.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest host name DNS allows in presentation form, without a trailing dot.
const MAX_NAME_LEN: usize = 253;
/// The longest label DNS allows.
const MAX_LABEL_LEN: usize = 63;

/// A DNS host name such as `MGT01.prod.local`, or a workgroup computer's single-label name.
///
/// Names are stored as given and compare, hash and order case-insensitively (ASCII), as
/// Windows and DNS treat them: `MGT01.prod.local` and `mgt01.PROD.local` are the same server.
///
/// ```
/// use opsmgr_hostname::HostName;
/// let a: HostName = "MGT01.prod.local".parse()?;
/// let b: HostName = "mgt01.PROD.local".parse()?;
/// assert_eq!(a, b);
/// assert_eq!(b.as_str(), "mgt01.PROD.local");
/// assert!("../etc".parse::<HostName>().is_err());
/// # Ok::<(), opsmgr_hostname::HostNameError>(())
/// ```
#[derive(Clone)]
pub struct HostName(String);

/// Why a string is not a valid host name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostNameError {
    /// The name is empty.
    #[error("host name is empty")]
    Empty,
    /// The name is longer than DNS allows.
    #[error("host name is {0} characters long; DNS allows at most 253")]
    TooLong(usize),
    /// Two dots in a row, or a dot at the start or the end.
    #[error("host name has an empty label (a leading, trailing or doubled dot)")]
    EmptyLabel,
    /// One label is longer than DNS allows.
    #[error("label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    /// A character outside letters, digits and hyphens.
    #[error(
        "character {ch:?} at position {position} is not allowed (letters, digits, '-' and '.' only)"
    )]
    BadCharacter {
        /// The offending character.
        ch: char,
        /// Its zero-based character position in the name.
        position: usize,
    },
    /// A label starts or ends with a hyphen.
    #[error("label '{0}' starts or ends with '-'")]
    HyphenAtEdge(String),
}

impl HostName {
    /// Validates `name` and keeps it as given.
    pub fn new(name: impl Into<String>) -> Result<Self, HostNameError> {
        let name = name.into();
        validate(&name)?;
        Ok(Self(name))
    }

    /// The name as it was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label: the computer name of a fully qualified name.
    pub fn short_name(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }

    /// The name in lower case, the form used for stable hashing and ordering.
    pub fn to_lowercase(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The name's bytes, ASCII lower-cased: what equality, hashing and ordering use.
    pub fn lower_bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

fn validate(name: &str) -> Result<(), HostNameError> {
    if name.is_empty() {
        return Err(HostNameError::Empty);
    }
    if let Some((position, ch)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(HostNameError::BadCharacter { ch, position });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostNameError::TooLong(name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostNameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostNameError::LabelTooLong(label.to_owned()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostNameError::HyphenAtEdge(label.to_owned()));
        }
    }
    Ok(())
}

impl FromStr for HostName {
    type Err = HostNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for HostName {
    type Error = HostNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl PartialEq for HostName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for HostName {}

impl PartialEq<str> for HostName {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq<&str> for HostName {
    fn eq(&self, other: &&str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl Hash for HostName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Hash the lower-case bytes in chunks: one `write` per chunk keeps fast hashers fast.
        let mut buf = [0u8; 64];
        let bytes = self.0.as_bytes();
        for chunk in bytes.chunks(buf.len()) {
            let out = &mut buf[..chunk.len()];
            out.copy_from_slice(chunk);
            out.make_ascii_lowercase();
            state.write(out);
        }
        state.write_u8(0xff);
    }
}

impl Ord for HostName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.lower_bytes().cmp(other.lower_bytes())
    }
}

impl PartialOrd for HostName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for HostName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        HostName::new(s.clone())
            .map_err(|e| serde::de::Error::custom(format!("invalid host name {s:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn accepts_fqdns_and_workgroup_names() {
        for ok in [
            "RMS.prod.local",
            "server01",
            "a-b.c1.d",
            "x",
            &"a".repeat(63),
        ] {
            assert!(HostName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_with_the_reason() {
        assert_eq!(HostName::new(""), Err(HostNameError::Empty));
        assert_eq!(HostName::new("a..b"), Err(HostNameError::EmptyLabel));
        assert_eq!(HostName::new("a.b."), Err(HostNameError::EmptyLabel));
        assert_eq!(
            HostName::new("../x"),
            Err(HostNameError::BadCharacter {
                ch: '/',
                position: 2
            })
        );
        assert_eq!(
            HostName::new("a b"),
            Err(HostNameError::BadCharacter {
                ch: ' ',
                position: 1
            })
        );
        assert_eq!(
            HostName::new("-a.b"),
            Err(HostNameError::HyphenAtEdge("-a".into()))
        );
        assert_eq!(
            HostName::new("a".repeat(64)),
            Err(HostNameError::LabelTooLong("a".repeat(64)))
        );
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(HostName::new(long), Err(HostNameError::TooLong(259)));
    }

    #[test]
    fn case_insensitive_identity_keeps_spelling() {
        let a = HostName::new("MGT01.Prod.Local").unwrap();
        let b = HostName::new("mgt01.prod.local").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        let set: HashSet<_> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(a.to_string(), "MGT01.Prod.Local");
        assert_eq!(a.short_name(), "MGT01");
    }

    #[test]
    fn long_names_hash_case_insensitively_across_chunks() {
        let upper = format!("{}.{}", "A".repeat(63), "B".repeat(63));
        let lower = upper.to_ascii_lowercase();
        let (a, b) = (HostName::new(upper).unwrap(), HostName::new(lower).unwrap());
        let hash = |h: &HostName| {
            let mut s = std::collections::hash_map::DefaultHasher::new();
            h.hash(&mut s);
            s.finish()
        };
        assert_eq!(hash(&a), hash(&b));
    }
}

//! Names, at the bottom of the crate (they import nothing of it): DNS host names as the CA
//! accepts them, in certificates and as file names in the drop folder (the workspace's rule,
//! [`opsmgr_hostname::HostName`], RFC 1123 host names, shared through a leaf crate so the
//! libraries still do not depend on each other); and the names of a machine's certificate
//! stores, which errors name too.

use serde::{Deserialize, Serialize};

/// Checks that `name` is a DNS host name: letters, digits and `-` in dot-separated labels of
/// 1 to 63 characters that neither start nor end with `-`, 253 characters at most. Such a
/// name can never be `..`, hold a path separator, or be empty: it is safe as a file name.
pub(crate) fn check_dns_name(name: &str) -> Result<(), String> {
    opsmgr_hostname::HostName::new(name)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The stores of a machine, by certutil's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StoreName {
    /// Pending requests' keys.
    Request,
    /// Personal certificates with their keys.
    My,
    /// Trusted root certificates.
    Root,
}

impl StoreName {
    /// Every store, in the order listings show them.
    pub const ALL: [StoreName; 3] = [StoreName::My, StoreName::Root, StoreName::Request];

    /// Its folder in a machine folder, and its name as certutil writes it.
    pub(crate) fn dir(self) -> &'static str {
        match self {
            StoreName::Request => "Request",
            StoreName::My => "My",
            StoreName::Root => "Root",
        }
    }
}

impl std::fmt::Display for StoreName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.dir())
    }
}

#[cfg(test)]
mod tests {
    use super::check_dns_name;

    #[test]
    fn names_that_could_escape_a_folder_are_refused() {
        for bad in [
            "", "..", "../../x", "a/b", "a\\b", ".a", "a.", "a..b", "-a.b", "a b", "ä.local",
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
        for good in ["agent01", "agent01.company.local", "A-1.B2.local"] {
            assert_eq!(check_dns_name(good), Ok(()), "{good}");
        }
        assert!(check_dns_name(&"a".repeat(64)).is_err());
        assert!(check_dns_name(&["a"; 127].join(".")).is_ok());
        assert!(check_dns_name(&["ab"; 85].join(".")).is_err());
    }
}

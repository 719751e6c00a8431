//! DNS host names as the CA accepts them: in certificates, and as file names in the drop
//! folder. The CA checks names itself (the libraries of this workspace do not depend on each
//! other); the rules are those of RFC 1123 host names.

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// Checks that `name` is a DNS host name: letters, digits and `-` in dot-separated labels of
/// 1 to 63 characters that neither start nor end with `-`, 253 characters at most. Such a
/// name can never be `..`, hold a path separator, or be empty: it is safe as a file name.
pub fn check_dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.'))
    {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '-' and '.' only)"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("it has {} characters; DNS allows 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (a leading, trailing or doubled dot)".into());
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(format!("label '{label}' is longer than 63 characters"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label '{label}' starts or ends with '-'"));
        }
    }
    Ok(())
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

//! Escaping a value for where it goes, and reading one back.

/// Escapes element text: `&`, `<` and `>` as entities, and CR as a character reference (a raw
/// one would be folded into LF when the file is read back).
pub(crate) fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value delimited by `quote`: `&`, `<` and that quote as entities, and
/// tab, LF and CR as character references (raw ones turn into spaces when read back).
pub(crate) fn escape_attribute(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' if quote == '"' => out.push_str("&quot;"),
            '\'' if quote == '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Resolves the predefined entities and character references of `raw`. Any other entity
/// (declared in a DTD) cannot be resolved here and is refused.
pub(crate) fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find(';').filter(|&e| e <= 12).ok_or_else(|| {
            format!(
                "unterminated reference '&{}'",
                after.chars().take(12).collect::<String>()
            )
        })?;
        let name = &after[..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    return Err(format!("entity '&{name};' is not one XML predefines"));
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("invalid character reference '&{name};'"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_for_the_context_and_reads_back() {
        let v = "a&b<c>d\"e'f\tg\nh\ri";
        assert_eq!(escape_text(v), "a&amp;b&lt;c&gt;d\"e'f\tg\nh&#13;i");
        assert_eq!(
            escape_attribute(v, '"'),
            "a&amp;b&lt;c>d&quot;e'f&#9;g&#10;h&#13;i"
        );
        assert_eq!(
            escape_attribute(v, '\''),
            "a&amp;b&lt;c>d\"e&apos;f&#9;g&#10;h&#13;i"
        );
        for q in ['"', '\''] {
            assert_eq!(unescape(&escape_attribute(v, q)).unwrap(), v);
        }
        assert_eq!(unescape(&escape_text(v)).unwrap(), v);
    }

    #[test]
    fn unescape_refuses_what_it_cannot_resolve() {
        assert_eq!(unescape("&#x41;&#66;&amp;").unwrap(), "AB&");
        assert_eq!(
            unescape("&custom;").unwrap_err(),
            "entity '&custom;' is not one XML predefines"
        );
        assert_eq!(
            unescape("&#xD800;").unwrap_err(),
            "invalid character reference '&#xD800;'"
        );
        assert!(
            unescape("a & b")
                .unwrap_err()
                .starts_with("unterminated reference")
        );
    }
}

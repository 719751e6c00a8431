//! Text from outside (a request, a file name, a PFX's friendly name) made safe for every place
//! it is shown: the database, a terminal, a log line, `--json`, a reason file.

/// `text` with its control characters (and the Unicode line and bidirectional controls) as
/// `\u{..}`: a newline or an escape sequence from a request can then neither forge a line of
/// output nor drive the terminal.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}')
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c);
        if c.is_control() || bidi {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_unescaped() {
        assert_eq!(escape_control("ok.req"), "ok.req");
        assert_eq!(
            escape_control("a\nb\x1b[31mred\u{202e}"),
            "a\\u{a}b\\u{1b}[31mred\\u{202e}"
        );
    }
}

//! Text files as Windows tools write them: UTF-8 with or without a byte order mark, UTF-16
//! (little or big endian) with one, CRLF line ends; and line numbers that are the file's own.

use std::borrow::Cow;

/// Why bytes are not text we read, and where (one-based line and column of the decoded text
/// before the fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEncoding {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// What was found, for the error message.
    pub(crate) found: String,
}

/// Decodes a file: a UTF-8 (`EF BB BF`), UTF-16 LE (`FF FE`, what Windows PowerShell's `>`
/// writes) or UTF-16 BE (`FE FF`) byte order mark selects the encoding and is dropped;
/// without one the file must be UTF-8 without NUL bytes (NUL bytes in a text file mean
/// UTF-16 without a byte order mark).
pub(crate) fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, BadEncoding> {
    if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return utf8(rest, 3).map(Cow::Borrowed);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xff\xfe") {
        return utf16(rest, u16::from_le_bytes, "UTF-16 LE").map(Cow::Owned);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xfe\xff") {
        return utf16(rest, u16::from_be_bytes, "UTF-16 BE").map(Cow::Owned);
    }
    utf8(bytes, 0).map(Cow::Borrowed)
}

fn utf8(bytes: &[u8], bom: usize) -> Result<&str, BadEncoding> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let at = e.valid_up_to();
            let (line, column) = line_column(&bytes[..at]);
            let found = format!(
                "byte 0x{:02X} at byte offset {} is not UTF-8 (a Windows code page such as \
                 Windows-1252, as Windows PowerShell's Out-File -Encoding Default or \
                 Export-Csv -Encoding Default writes?)",
                bytes[at],
                bom + at
            );
            return Err(BadEncoding {
                line,
                column,
                found,
            });
        }
    };
    if let Some(at) = text.bytes().position(|b| b == 0) {
        let (line, column) = line_column(&bytes[..at]);
        let found = format!(
            "a NUL byte at byte offset {}: UTF-16 text without a byte order mark \
             (as .NET's Encoding.Unicode.GetBytes or Set-Content -Encoding Unicode \
             without a BOM writes)?",
            bom + at
        );
        return Err(BadEncoding {
            line,
            column,
            found,
        });
    }
    Ok(text)
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16, name: &str) -> Result<String, BadEncoding> {
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    let mut out = String::with_capacity(bytes.len() / 2);
    for (i, c) in char::decode_utf16(units).enumerate() {
        match c {
            Ok('\0') | Err(_) => {
                let (line, column) = line_column(out.as_bytes());
                let what = match c {
                    Ok(_) => "a NUL character".to_owned(),
                    Err(e) => format!("an unpaired surrogate 0x{:04X}", e.unpaired_surrogate()),
                };
                return Err(BadEncoding {
                    line,
                    column,
                    found: format!("{what} in {name} text (code unit {i})"),
                });
            }
            Ok(c) => out.push(c),
        }
    }
    if bytes.len() % 2 == 1 {
        let (line, column) = line_column(out.as_bytes());
        return Err(BadEncoding {
            line,
            column,
            found: format!("{name} text with an odd number of bytes (cut short?)"),
        });
    }
    Ok(out)
}

/// The one-based line and column (in characters) just after `before`.
fn line_column(before: &[u8]) -> (usize, usize) {
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count();
    (line, column)
}

/// Maps byte offsets of a text to one-based line numbers: a line ends at `\n` (so CRLF
/// counts once), whatever the CSV parser thinks.
#[derive(Debug)]
pub(crate) struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Self { starts }
    }

    /// The line of byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> u64 {
        self.starts.partition_point(|&s| s <= offset) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn every_bom_windows_writes_is_read() {
        let text = "Agent,Primary\r\nä.local,x\r\n";
        let mut le = vec![0xff, 0xfe];
        le.extend(utf16le(text));
        let mut be = vec![0xfe, 0xff];
        be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let mut u8bom = b"\xef\xbb\xbf".to_vec();
        u8bom.extend(text.as_bytes());
        for bytes in [le, be, u8bom, text.as_bytes().to_vec()] {
            assert_eq!(decode(&bytes).unwrap(), text);
        }
    }

    #[test]
    fn other_encodings_say_what_was_found_and_where() {
        let e = decode(&utf16le("Agent\r\n")).unwrap_err();
        assert_eq!((e.line, e.column), (1, 2));
        assert!(
            e.found
                .starts_with("a NUL byte at byte offset 1: UTF-16 text without a byte order mark"),
            "{}",
            e.found
        );
        let e = decode(b"Agent\r\ncaf\xe9").unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert!(
            e.found
                .starts_with("byte 0xE9 at byte offset 10 is not UTF-8"),
            "{}",
            e.found
        );
        let e = decode(b"\xff\xfeA\x00\x00\xd8").unwrap_err();
        assert_eq!(
            e.found,
            "an unpaired surrogate 0xD800 in UTF-16 LE text (code unit 1)"
        );
        let e = decode(b"\xff\xfeA\x00B").unwrap_err();
        assert_eq!(
            e.found,
            "UTF-16 LE text with an odd number of bytes (cut short?)"
        );
    }

    #[test]
    fn lines_count_crlf_once() {
        let text = "a\r\nb\r\n\r\nc";
        let lines = Lines::new(text);
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(3), 2);
        assert_eq!(lines.line(6), 3);
        assert_eq!(lines.line(text.find('c').unwrap()), 4);
    }
}

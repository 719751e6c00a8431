//! The encodings config files come in, and how to get every byte of them back.

use std::fmt;

use crate::error::{Error, Result};

/// How a file is encoded. Decoding and re-encoding is lossless for each of them, so a file
/// is written back in its own encoding with its own byte-order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 with a byte-order mark (as Notepad and .NET often write).
    Utf8Bom,
    /// UTF-16 little-endian with a byte-order mark (Windows' "Unicode").
    Utf16Le,
    /// UTF-16 big-endian with a byte-order mark.
    Utf16Be,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Utf16Le => "UTF-16 LE",
            Encoding::Utf16Be => "UTF-16 BE",
        })
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

impl Encoding {
    /// The length of the byte-order mark.
    pub(crate) fn bom_len(self) -> usize {
        match self {
            Encoding::Utf8 => 0,
            Encoding::Utf8Bom => 3,
            Encoding::Utf16Le | Encoding::Utf16Be => 2,
        }
    }

    /// The byte offset in the encoded file of the character at `offset` in `text`.
    pub(crate) fn file_offset(self, text: &str, offset: usize) -> usize {
        match self {
            Encoding::Utf8 | Encoding::Utf8Bom => self.bom_len() + offset,
            Encoding::Utf16Le | Encoding::Utf16Be => {
                2 + 2 * text[..offset].chars().map(char::len_utf16).sum::<usize>()
            }
        }
    }

    /// Encodes `text` with this encoding's byte-order mark.
    pub(crate) fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Encoding::Utf8 => text.as_bytes().to_vec(),
            Encoding::Utf8Bom => [UTF8_BOM, text.as_bytes()].concat(),
            Encoding::Utf16Le => [0xFF, 0xFE]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
                .collect(),
            Encoding::Utf16Be => [0xFE, 0xFF]
                .into_iter()
                .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
                .collect(),
        }
    }
}

/// Detects the encoding by its byte-order mark and decodes. UTF-8 is assumed without one;
/// UTF-16 without one, or any invalid sequence, is refused with its position.
pub(crate) fn decode(mut bytes: Vec<u8>) -> Result<(Encoding, String)> {
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
        return Ok((Encoding::Utf8Bom, utf8(bytes)?));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return Ok((Encoding::Utf16Le, utf16(rest, u16::from_le_bytes)?));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return Ok((Encoding::Utf16Be, utf16(rest, u16::from_be_bytes)?));
    }
    if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
        return Err(Error::Encoding(
            "the file looks like UTF-16 without a byte-order mark; save it with one".into(),
        ));
    }
    Ok((Encoding::Utf8, utf8(bytes)?))
}

/// Takes the bytes as text without copying them.
fn utf8(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        Error::Encoding(format!(
            "invalid UTF-8 at byte {at} (the file is neither UTF-8 nor UTF-16 with a byte-order mark)"
        ))
    })
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String> {
    if !bytes.len().is_multiple_of(2) {
        return Err(Error::Encoding(
            "UTF-16 file with an odd number of bytes".into(),
        ));
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    let mut text = String::with_capacity(bytes.len() / 2);
    for (i, c) in char::decode_utf16(units).enumerate() {
        match c {
            Ok(c) => text.push(c),
            Err(e) => {
                return Err(Error::Encoding(format!(
                    "unpaired UTF-16 surrogate {:#06x} near code unit {i}",
                    e.unpaired_surrogate()
                )));
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips_byte_for_byte() {
        let text = "<a b=\"é\u{1F600}\">\r\n\tx</a>";
        for enc in [
            Encoding::Utf8,
            Encoding::Utf8Bom,
            Encoding::Utf16Le,
            Encoding::Utf16Be,
        ] {
            let bytes = enc.encode(text);
            let (found, decoded) = decode(bytes.clone()).unwrap();
            assert_eq!((found, decoded.as_str()), (enc, text));
            assert_eq!(enc.encode(&decoded), bytes);
            let i = text.find('x').unwrap();
            let at = enc.file_offset(text, i);
            let unit = if matches!(enc, Encoding::Utf16Le | Encoding::Utf16Be) {
                2
            } else {
                1
            };
            assert_eq!(
                &bytes[at..at + unit],
                &enc.encode("x")[enc.bom_len()..],
                "{enc}"
            );
        }
    }

    #[test]
    fn refusals() {
        let refuse = |bytes: &[u8]| match decode(bytes.to_vec()) {
            Err(Error::Encoding(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(refuse(b"<\0a\0").contains("without a byte-order mark"));
        assert!(refuse(b"<a>\xff</a>").contains("invalid UTF-8 at byte 3"));
        assert!(refuse(b"\xEF\xBB\xBF<a>\xff</a>").contains("invalid UTF-8 at byte 3"));
        assert!(refuse(b"\xFF\xFE<\0a").contains("odd number"));
        assert!(refuse(b"\xFF\xFE\x00\xD8a\0").contains("unpaired"));
    }
}

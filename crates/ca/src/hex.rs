//! Hex as Windows shows thumbprints and serial numbers: upper case, no separators; and back.

/// `bytes` as upper-case hex.
pub(crate) fn upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// `bytes` as lower-case hex (the stores' key ids, the database's digests).
pub(crate) fn lower(bytes: &[u8]) -> String {
    upper(bytes).to_ascii_lowercase()
}

/// Hex (case and spaces ignored) to bytes.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes = [0x00, 0x0f, 0xa5, 0xff];
        assert_eq!(super::upper(&bytes), "000FA5FF");
        assert_eq!(super::lower(&bytes), "000fa5ff");
        assert_eq!(super::decode("00 0f A5 ff").as_deref(), Some(&bytes[..]));
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
    }
}

//! PEM as its producers write it. certreq and certutil wrap base64 at 64 columns with CRLF;
//! Perl's and Java's encoders at 76; a request pasted from a web form may be one long line or
//! carry spaces at line ends. None of that changes the bytes, so none of it is refused. What
//! is refused: a BEGIN line without its END, labels that differ, RFC 1421 headers
//! (`Proc-Type:`), anything but base64 between the lines.

use base64ct::{Base64, Encoding};

/// Whether `bytes` (leading whitespace trimmed) start a PEM block.
pub(crate) fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// The label and DER of the first PEM block of `bytes`. The caller bounds the input.
pub(crate) fn decode(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = std::str::from_utf8(bytes.trim_ascii_start())
        .map_err(|_| "the PEM text is not ASCII".to_owned())?;
    let rest = text
        .strip_prefix("-----BEGIN ")
        .ok_or("no -----BEGIN line")?;
    let (label, rest) = rest
        .split_once("-----")
        .ok_or("the -----BEGIN line does not end in -----")?;
    if label.is_empty()
        || label.len() > 64
        || !label.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(format!("'{}' is not a PEM label", label.escape_default()));
    }
    let end = format!("-----END {label}-----");
    let at = rest.find(&end).ok_or_else(|| format!("no {end} line"))?;
    let body = &rest[..at];
    if body.contains(':') {
        return Err("PEM headers (Proc-Type:, DEK-Info:) are not read: the block is encrypted or not plain PEM".into());
    }
    let base64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = Base64::decode_vec(&base64)
        .map_err(|e| format!("the base64 between the lines is not valid: {e}"))?;
    if der.is_empty() {
        return Err(format!("the {label} block is empty"));
    }
    Ok((label.to_owned(), der))
}

#[cfg(test)]
mod tests {
    use base64ct::Encoding;

    use super::decode;

    #[test]
    fn line_lengths_and_ends_do_not_matter() {
        let der: Vec<u8> = (0u8..=200).collect();
        let b64 = base64ct::Base64::encode_string(&der);
        for wrap in [64, 76, 1000] {
            for eol in ["\n", "\r\n", "  \r\n"] {
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(wrap)
                    .map(|c| std::str::from_utf8(c).unwrap_or(""))
                    .collect();
                let text = format!(
                    "-----BEGIN CERTIFICATE REQUEST-----{eol}{}{eol}-----END CERTIFICATE REQUEST-----{eol}",
                    lines.join(eol)
                );
                assert_eq!(
                    decode(text.as_bytes()),
                    Ok(("CERTIFICATE REQUEST".to_owned(), der.clone()))
                );
            }
        }
    }

    #[test]
    fn what_is_refused_says_why() {
        assert_eq!(
            decode(b"-----BEGIN X-----\nAAAA\n-----END Y-----\n"),
            Err("no -----END X----- line".to_owned())
        );
        assert_eq!(
            decode(b"-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END X-----\n"),
            Err("PEM headers (Proc-Type:, DEK-Info:) are not read: the block is encrypted or not plain PEM".to_owned())
        );
        assert!(
            decode(b"-----BEGIN X-----\nAA*A\n-----END X-----\n")
                .unwrap_err()
                .starts_with("the base64 between the lines is not valid")
        );
        assert_eq!(
            decode(b"-----BEGIN X-----\n-----END X-----\n"),
            Err("the X block is empty".to_owned())
        );
    }
}

//! RFC 5280's revocation reasons (5.3.1), by the names and numbers certutil takes.

use serde::Serialize;
use x509_cert::ext::pkix::crl::CrlReason;

use crate::error::{Error, Result};

/// Why a certificate was revoked (certutil -revoke's REASON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RevocationReason {
    /// 0: no reason given (the CRL entry carries no reason code).
    Unspecified,
    /// 1: the certificate's private key was exposed. The key is never certified again, and
    /// the certificates the revoked one superseded are revoked with it.
    KeyCompromise,
    /// 2: the CA's key was exposed.
    CaCompromise,
    /// 3: the subject's name or other information changed.
    AffiliationChanged,
    /// 4: replaced by a newer certificate.
    Superseded,
    /// 5: the host is gone.
    CessationOfOperation,
    /// 6: on hold.
    CertificateHold,
    /// 9: the privilege it grants was withdrawn.
    PrivilegeWithdrawn,
    /// 10: an attribute authority's key was exposed.
    AaCompromise,
}

const ALL: [RevocationReason; 9] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::CaCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::CertificateHold,
    RevocationReason::PrivilegeWithdrawn,
    RevocationReason::AaCompromise,
];

impl RevocationReason {
    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// The reason with this RFC 5280 code.
    pub fn from_code(code: u8) -> Option<Self> {
        ALL.into_iter().find(|r| r.code() == code)
    }

    /// certutil's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "Unspecified",
            Self::KeyCompromise => "KeyCompromise",
            Self::CaCompromise => "CACompromise",
            Self::AffiliationChanged => "AffiliationChanged",
            Self::Superseded => "Superseded",
            Self::CessationOfOperation => "CessationOfOperation",
            Self::CertificateHold => "CertificateHold",
            Self::PrivilegeWithdrawn => "PrivilegeWithdrawn",
            Self::AaCompromise => "AACompromise",
        }
    }

    /// The CRL entry's reason code extension; none for `Unspecified` (RFC 5280 5.3.1: the
    /// code should be absent rather than unspecified).
    pub(crate) fn crl_reason(self) -> Option<CrlReason> {
        Some(match self {
            Self::Unspecified => return None,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            Self::AaCompromise => CrlReason::AaCompromise,
        })
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = Error;

    /// certutil's names (any case, `_` and `-` ignored, with or without its `CRL_REASON_`
    /// prefix: `KeyCompromise`, `CRL_REASON_KEY_COMPROMISE`) or the numbers 0-6, 9, 10.
    fn from_str(text: &str) -> Result<Self> {
        let lower = text.to_ascii_lowercase().replace(['_', '-'], "");
        let lower = lower.strip_prefix("crlreason").unwrap_or(&lower);
        ALL.into_iter()
            .find(|r| r.name().to_ascii_lowercase() == lower)
            .or_else(|| text.parse::<u8>().ok().and_then(Self::from_code))
            .ok_or_else(|| Error::UnknownReason {
                given: text.to_owned(),
            })
    }
}

/// RFC 5280's revocation reasons, by certutil's names (case-insensitive) or number.
pub fn parse_reason(text: &str) -> Result<RevocationReason> {
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for r in ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(r.name().parse::<RevocationReason>().ok(), Some(r));
            assert_eq!(
                r.code().to_string().parse::<RevocationReason>().ok(),
                Some(r)
            );
        }
        assert_eq!(
            "key_compromise".parse::<RevocationReason>().ok(),
            Some(RevocationReason::KeyCompromise)
        );
        // certutil's own constants, as its -revoke help lists them.
        for (text, reason) in [
            ("CRL_REASON_KEY_COMPROMISE", RevocationReason::KeyCompromise),
            ("CRL_REASON_SUPERSEDED", RevocationReason::Superseded),
            (
                "CRL_REASON_CESSATION_OF_OPERATION",
                RevocationReason::CessationOfOperation,
            ),
        ] {
            assert_eq!(
                text.parse::<RevocationReason>().ok(),
                Some(reason),
                "{text}"
            );
        }
        assert!("CRL_REASON_".parse::<RevocationReason>().is_err());
        for bad in ["7", "8", "11", "compromised", ""] {
            assert!(bad.parse::<RevocationReason>().is_err(), "{bad}");
        }
    }
}

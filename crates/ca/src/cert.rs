//! Certificates as the stores, the CA and the tools see them: [`CertInfo`] reads one (PEM or
//! DER, bounded) into the facts they print and check; [`certificate_to_pem`] and
//! [`crl_to_pem`] write them as certutil does; [`verify_certificate`] checks a signature on one.

use std::time::SystemTime;

use der::{Decode, Encode};
use sha1::{Digest, Sha1};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    BasicConstraints, CrlDistributionPoints, ExtendedKeyUsage, SubjectAltName,
};

use crate::error::{Error, Result};
use crate::text::escape_control;

pub use crate::sigalg::verify_certificate;

/// The largest certificate file read.
pub const MAX_CERT_BYTES: usize = 64 * 1024;

/// A certificate as certreq and certutil write it: PEM (`CERTIFICATE`) with CRLF line ends.
pub fn certificate_to_pem(der: &[u8]) -> Result<String> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::CRLF, der)
        .map_err(|e| Error::certificate_from("encoding", e))
}

/// A CRL as certutil writes it: PEM (`X509 CRL`) with CRLF line ends.
pub fn crl_to_pem(der: &[u8]) -> Result<String> {
    der::pem::encode_string("X509 CRL", der::pem::LineEnding::CRLF, der)
        .map_err(|e| Error::certificate_from("encoding the CRL", e))
}

/// A parsed certificate with the facts the tools print and check.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate's DER.
    pub der: Vec<u8>,
    /// SHA-1 of the DER, upper-case hex: Windows' thumbprint.
    pub thumbprint: String,
    /// The serial number's bytes, big-endian as encoded.
    pub serial: Vec<u8>,
    /// Subject, RFC 4514 (control characters escaped, as in every text here: a certificate
    /// comes from outside).
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// The subject's first common name, as the agent reads it.
    pub common_name: Option<String>,
    /// The DNS names of the subject alternative name extension, in order.
    pub dns_names: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity (the certificate is valid through this second).
    pub not_after: SystemTime,
    /// Extended key usages (dotted OIDs).
    pub ekus: Vec<String>,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
    /// The public key (SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    /// Where its CRL is published: the URIs of its CRL distribution points.
    pub crl_urls: Vec<String>,
}

impl CertInfo {
    /// Reads a certificate file: PEM (`CERTIFICATE`) or DER, bounded in size.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_CERT_BYTES {
            return Err(Error::certificate(format!(
                "larger than {MAX_CERT_BYTES} bytes"
            )));
        }
        let der = if crate::pem::is_pem(bytes) {
            let (label, der) =
                crate::pem::decode(bytes).map_err(|e| Error::certificate(format!("PEM: {e}")))?;
            if label != "CERTIFICATE" {
                return Err(Error::certificate(format!(
                    "PEM label '{label}' is not CERTIFICATE"
                )));
            }
            der
        } else {
            bytes.trim_ascii_start().to_vec()
        };
        let cert = Certificate::from_der(&der)
            .map_err(|e| Error::certificate_from("not an X.509 certificate", e))?;
        let tbs = cert.tbs_certificate();
        let ekus = tbs
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| Error::certificate_from("extended key usage", e))?
            .map(|(_, e)| e.0.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        let is_ca = tbs
            .get_extension::<BasicConstraints>()
            .map_err(|e| Error::certificate_from("basic constraints", e))?
            .is_some_and(|(_, b)| b.ca);
        let common_name = tbs
            .subject()
            .common_name()
            .map_err(|e| Error::certificate_from("subject common name", e))?
            .map(|cn| escape_control(&String::from(cn)));
        let dns_names = tbs
            .get_extension::<SubjectAltName>()
            .map_err(|e| Error::certificate_from("subject alternative name", e))?
            .map(|(_, san)| {
                san.0
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DnsName(d) => Some(escape_control(d.as_ref())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let crl_urls = tbs
            .get_extension::<CrlDistributionPoints>()
            .map_err(|e| Error::certificate_from("CRL distribution points", e))?
            .map(|(_, points)| {
                points
                    .0
                    .iter()
                    .filter_map(|p| match &p.distribution_point {
                        Some(DistributionPointName::FullName(names)) => Some(names),
                        _ => None,
                    })
                    .flatten()
                    .filter_map(|n| match n {
                        GeneralName::UniformResourceIdentifier(u) => {
                            Some(escape_control(u.as_ref()))
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let public_key = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| Error::certificate_from("its public key", e))?;
        Ok(Self {
            thumbprint: crate::hex::upper(&Sha1::digest(&der)),
            serial: tbs.serial_number().as_bytes().to_vec(),
            subject: escape_control(&tbs.subject().to_string()),
            issuer: escape_control(&tbs.issuer().to_string()),
            common_name,
            dns_names,
            not_before: tbs.validity().not_before.to_system_time(),
            not_after: tbs.validity().not_after.to_system_time(),
            ekus,
            is_ca,
            public_key,
            crl_urls,
            der,
        })
    }

    /// The serial number as upper-case hex.
    pub fn serial_hex(&self) -> String {
        crate::hex::upper(&self.serial)
    }

    /// Whether the certificate names `host` (case-insensitively, a trailing dot ignored) in its
    /// subject's common name or one of its DNS subject alternative names.
    pub fn names_host(&self, host: &str) -> bool {
        let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
        let host = norm(host);
        self.common_name
            .iter()
            .chain(&self.dns_names)
            .any(|n| norm(n) == host)
    }

    /// Whether the extended key usage extension lists `oid` (dotted).
    pub fn has_eku(&self, oid: &str) -> bool {
        self.ekus.iter().any(|e| e == oid)
    }

    /// Whether `now` lies in the validity window (to the second, as the certificate counts).
    pub fn valid_at(&self, now: SystemTime) -> bool {
        let now = crate::time::whole(now);
        self.not_before <= now && now <= self.not_after
    }
}

/// A CRL as the agent's checks and the CA's status read it.
#[derive(Debug, Clone)]
pub struct CrlInfo {
    /// Its DER.
    pub der: Vec<u8>,
    /// Issuer, RFC 4514 (control characters escaped).
    pub issuer: String,
    /// Its CRL number, when it has one that fits 64 bits.
    pub number: Option<u64>,
    /// When it was made.
    pub this_update: SystemTime,
    /// Until when it is valid.
    pub next_update: Option<SystemTime>,
    /// The serial numbers it lists (bytes as encoded).
    pub serials: Vec<Vec<u8>>,
}

impl CrlInfo {
    /// Reads a CRL: PEM (`X509 CRL`) or DER, at most 1 MiB.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let der =
            crl_der(bytes).ok_or_else(|| Error::certificate("not a CRL (PEM X509 CRL or DER)"))?;
        let crl =
            x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
                .map_err(|e| Error::certificate_from("the CRL cannot be read", e))?;
        let tbs = &crl.tbs_cert_list;
        let number = tbs
            .crl_extensions
            .as_ref()
            .and_then(|exts| {
                exts.iter()
                    .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_NUMBER)
            })
            .and_then(|e| {
                x509_cert::ext::pkix::crl::CrlNumber::from_der(e.extn_value.as_bytes()).ok()
            })
            .and_then(|n| {
                let bytes = n.0.as_bytes();
                (bytes.len() <= 8)
                    .then(|| bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            });
        Ok(Self {
            issuer: escape_control(&tbs.issuer.to_string()),
            number,
            this_update: tbs.this_update.to_system_time(),
            next_update: tbs.next_update.map(|t| t.to_system_time()),
            serials: tbs
                .revoked_certificates
                .iter()
                .flatten()
                .map(|r| r.serial_number.as_bytes().to_vec())
                .collect(),
            der,
        })
    }

    /// Whether it lists `serial`.
    pub fn lists(&self, serial: &[u8]) -> bool {
        self.serials.iter().any(|s| s == serial)
    }
}

/// The largest CRL file read.
pub const MAX_CRL_BYTES: usize = 1024 * 1024;

/// A CRL's DER, from PEM (`X509 CRL`) or DER, bounded; `None` when it is not a CRL at all.
pub fn crl_der(bytes: &[u8]) -> Option<Vec<u8>> {
    use der::Decode;
    if bytes.len() > MAX_CRL_BYTES {
        return None;
    }
    let der = if crate::pem::is_pem(bytes) {
        match crate::pem::decode(bytes) {
            Ok((label, der)) if label == "X509 CRL" => der,
            _ => return None,
        }
    } else {
        bytes.trim_ascii_start().to_vec()
    };
    x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&der)
        .ok()
        .map(|_| der)
}

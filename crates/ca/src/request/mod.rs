//! Making and reading certificate requests, on the agent and at the CA: the certreq.inf policy
//! ([`parse_policy`] into a checked [`RequestPolicy`]), the key ([`PrivateKey`]), the signed
//! PKCS#10 request ([`build_request`], written by [`request_to_pem`] as certreq writes it), a
//! renewal's wrapper ([`wrap_renewal`]), and reading and checking requests from any source,
//! ours, certreq's or OpenSSL's ([`parse_request`] into a [`ReceivedRequest`], then
//! [`verify_request`]).
//!
//! ```
//! use opsmgr_ca::request::{
//!     PolicyOptions, PrivateKey, build_request, parse_policy, parse_request, request_to_pem,
//!     verify_request,
//! };
//! let inf = b"[NewRequest]\r\nSubject = \"CN=agent01.company.local\"\r\nKeyAlgorithm = ECDSA_P256\r\n";
//! let policy = parse_policy(inf, "certreq.inf", PolicyOptions::default())?;
//! let key = PrivateKey::generate(policy.key)?;
//! let pem = request_to_pem(&build_request(&policy, &key)?)?;
//! assert!(pem.starts_with("-----BEGIN NEW CERTIFICATE REQUEST-----"));
//! let received = parse_request(pem.as_bytes())?;
//! verify_request(&received)?;
//! # Ok::<(), opsmgr_ca::Error>(())
//! ```

mod dn;
mod inf;
mod keys;
mod pkcs10;
mod renewal;

pub use crate::sigalg::Hash;
pub use crate::sigalg::{AlgorithmError, SignatureAlgorithm, SignatureError, verify_signature};
pub use dn::{Attribute, DistinguishedName};
pub use inf::{
    EKU_CLIENT_AUTH, EKU_SERVER_AUTH, KeyType, MAX_INF_BYTES, PolicyOptions, RequestPolicy,
    parse_policy,
};
pub use keys::PrivateKey;
pub use pkcs10::{
    MAX_REQUEST_BYTES, NEW_REQUEST_LABEL, REQUEST_LABEL, ReceivedRequest, build_request,
    parse_request, request_der_to_pem, request_to_pem, to_x509_name, verify_request,
};
pub use renewal::{BrokenProof, RenewalProof, wrap_renewal};
/// A PKCS#10 request as x509-cert holds it: what [`build_request`] makes.
pub use x509_cert::request::CertReq;

pub(crate) use dn::parse_dn;
pub(crate) use keys::os_rng;

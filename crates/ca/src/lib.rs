//! Pure-Rust certificate pipeline for agents in untrusted networks: certreq.inf request
//! policies, keys and PKCS#10 requests, a standalone CA with its request database, the
//! drop-folder batch processor and the agent-side stores.
//!
//! So far: [`parse_policy`] reads a certreq.inf into a checked [`RequestPolicy`], refusing
//! anything it cannot honour with the file, line and key; [`PrivateKey::generate`] and
//! [`build_request`] make the key and the signed PKCS#10 request; [`request_to_pem`] writes
//! it as certreq does; [`parse_request`] and [`verify_request`] read and check requests from
//! any source (ours, certreq's, OpenSSL's).
//!
//! On the agent: [`Stores`] keeps a machine's pending keys, its `My` certificates with their
//! keys and its trusted `Root` certificates as files (private keys 0600, atomic writes, a lock
//! file); [`select_channel_certificate`] makes MOMCertImport's choice, the chain checked by
//! rustls-webpki, and [`AgentSettings`] records it as the agent's registry values.
//!
//! ```
//! use opsmgr_ca::{parse_policy, KeyType, PolicyOptions};
//! let inf = b"[NewRequest]\r\nSubject = \"CN=server01.company.local\"\r\nKeyLength = 2048\r\n";
//! let policy = parse_policy(inf, "certreq.inf", PolicyOptions::default())?;
//! assert_eq!(policy.key, KeyType::Rsa(2048));
//! assert_eq!(policy.dns_names, ["server01.company.local"]);
//! assert_eq!(policy.ekus, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
//! # Ok::<(), opsmgr_ca::Error>(())
//! ```

mod authority;
mod bundle;
mod cert;
mod channel;
mod db;
mod dn;
mod dropfolder;
mod error;
mod hex;
mod inf;
mod keys;
mod names;
mod pfx;
mod renewal;
mod request;
mod sigalg;
mod store;

pub use authority::{
    Approved, Authority, CA_CERT, CA_CONFIG, CA_DB, CA_KEY, CaConfig, Denial, InitOptions, Issuer,
    LeafNotAfter, Signed, Submitted, parse_reason, parse_request_id,
};
pub use bundle::{
    BUNDLE_LABEL, Bundle, Installed, MAX_BUNDLE_BYTES, install_bundle, pin_matches, read_bundle,
    write_bundle,
};
pub use cert::{CertInfo, MAX_CERT_BYTES, certificate_to_pem, crl_to_pem};
pub use channel::{
    AGENT_SETTINGS, AgentSettings, Candidate, Held, KeyState, Refusal, Selection,
    channel_serial_number, choose_channel_certificate, select_channel_certificate,
};
pub use db::{Batch, Database, Disposition, Filter, Issue, NewRequest, Record, SCHEMA_VERSION};
pub use dn::{Attribute, DistinguishedName};
pub use dropfolder::{
    DROP_LOCK, FileOutcome, Outcome, PROCESSED, ProcessOptions, REJECTED, Stage, Summary,
    escape_control, process_share,
};
pub use error::{Error, Result};
pub use inf::{
    EKU_CLIENT_AUTH, EKU_SERVER_AUTH, Hash, KeyType, MAX_INF_BYTES, PolicyOptions, RequestPolicy,
    parse_policy,
};
pub use keys::PrivateKey;
pub use names::check_dns_name;
pub use pfx::{MAX_PFX_BYTES, Pfx, PfxEncryption, read_pfx, write_pfx};
pub use renewal::wrap_renewal;
pub use request::{
    MAX_REQUEST_BYTES, NEW_REQUEST_LABEL, REQUEST_LABEL, ReceivedRequest, build_request,
    parse_request, request_der_to_pem, request_to_pem, to_x509_name, verify_request,
};
pub use sigalg::{SignatureAlgorithm, verify_certificate, verify_signature};
pub use store::{
    Accepted, Added, Entry, Imported, MACHINE_STORES, Pending, PendingInfo, StoreLock, StoreName,
    Stores, USER_STORES, key_id,
};
pub use x509_cert::request::CertReq;

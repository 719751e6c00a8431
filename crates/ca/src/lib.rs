//! Pure-Rust certificate pipeline for agents in untrusted networks: certreq.inf request
//! policies, keys and PKCS#10 requests, a standalone CA with its request database, the
//! drop-folder batch processor and the agent-side stores.
//!
//! The API is grouped by who uses it:
//! - [`request`]: making a request on the agent and reading one at the CA. [`parse_policy`]
//!   reads a certreq.inf into a checked [`RequestPolicy`], refusing anything it cannot honour
//!   with the file, line and key; [`PrivateKey::generate`] and [`build_request`] make the key
//!   and the signed PKCS#10 request; [`parse_request`] and [`verify_request`] read and check
//!   requests from any source (ours, certreq's, OpenSSL's).
//! - [`authority`]: the CA. [`Authority`] holds its root, policy and request database, and
//!   answers certreq's and certutil's verbs with [`Record`]s; nothing is recorded as issued
//!   without its review.
//! - [`dropfolder`]: the seed's automation, [`process_share`] turning a share of `<FQDN>.req`
//!   files into certificates and installer bundles in one crash-safe batch.
//! - [`store`]: a machine's certificate stores as files ([`Stores`]: pending keys, `My`,
//!   `Root`; private keys 0600, atomic writes, a lock file), and PFX files.
//! - [`agent`]: what the agent does with them: install the CA's bundle
//!   ([`install_bundle`]), make MOMCertImport's choice of channel certificate
//!   ([`select_channel_certificate`], the chain checked by rustls-webpki) and record it as the
//!   agent's registry values ([`AgentSettings`]).
//! - [`cert`]: a certificate as all of them see it ([`CertInfo`]).
//!
//! ```
//! use opsmgr_ca::request::{KeyType, PolicyOptions, parse_policy};
//! let inf = b"[NewRequest]\r\nSubject = \"CN=server01.company.local\"\r\nKeyLength = 2048\r\n";
//! let policy = parse_policy(inf, "certreq.inf", PolicyOptions::default())?;
//! assert_eq!(policy.key, KeyType::Rsa(2048));
//! assert_eq!(policy.dns_names, ["server01.company.local"]);
//! assert_eq!(policy.ekus, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
//! # Ok::<(), opsmgr_ca::Error>(())
//! ```
//!
//! [`parse_policy`]: request::parse_policy
//! [`RequestPolicy`]: request::RequestPolicy
//! [`PrivateKey::generate`]: request::PrivateKey::generate
//! [`build_request`]: request::build_request
//! [`parse_request`]: request::parse_request
//! [`verify_request`]: request::verify_request
//! [`Authority`]: authority::Authority
//! [`Record`]: authority::Record
//! [`process_share`]: dropfolder::process_share
//! [`Stores`]: store::Stores
//! [`install_bundle`]: agent::install_bundle
//! [`select_channel_certificate`]: agent::select_channel_certificate
//! [`AgentSettings`]: agent::AgentSettings
//! [`CertInfo`]: cert::CertInfo

pub mod agent;
pub mod authority;
pub mod cert;
pub mod dropfolder;
pub mod request;
pub mod store;
pub mod windows;

mod error;
mod hex;
mod names;
mod pem;
mod pool;
mod text;
// Shared by request (request signatures) and cert (certificate signatures), which re-export it.
mod sigalg;
mod time;

pub use error::{Cause, Error, Result, error_chain};
pub use text::escape_control;

//! Pure-Rust certificate pipeline for agents in untrusted networks: certreq.inf request policies, keys and PKCS#10 requests, a standalone CA with its request database, the drop-folder batch processor and the agent-side stores.
//!
//! This crate is laid out by the workspace foundation; its contents arrive with the issue
//! that builds it (see the README).

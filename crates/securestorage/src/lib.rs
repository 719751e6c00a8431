//! The root management server's key store and a password-sealed, versioned backup format (argon2id + AES-256-GCM).
//!
//! This crate is laid out by the workspace foundation; its contents arrive with the issue
//! that builds it (see the README).

//! Lossless XML rewriters for rsreportserver.config and the Web Console's Web.config: every byte but the changed value stays as it was.
//!
//! This crate is laid out by the workspace foundation; its contents arrive with the issue
//! that builds it (see the README).

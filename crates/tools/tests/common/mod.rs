//! What the CLI tests share: running a tool and reading its output.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::process::{Command, Output};

/// Runs the tool at `bin` with `args`, without standard input.
pub(crate) fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .output()
        .expect("the tool runs")
}

/// Output bytes as text, lossily.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

//! Shared helpers of the opsmgr command-line tools: exit codes, error reporting and output.
//!
//! Every tool's `main` is `opsmgr_tools::main(run)`: `run` returns the exit code, or an error
//! that is printed as `<tool>: error: <message with its causes>` and exits with
//! [`exit::INPUT`]. A closed stdout (`om-balance plan … | head`) is not an error.

use std::io;
use std::process::ExitCode;

/// The exit codes every tool documents.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command ran and its answer is "no" (for example: not balanced).
    pub const NO: u8 = 1;
    /// Bad usage or bad input: nothing was changed.
    pub const INPUT: u8 = 2;
}

/// Runs a tool's body and turns its outcome into an exit code, printing errors to stderr.
pub fn main(tool: &str, run: impl FnOnce() -> anyhow::Result<ExitCode>) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(
                clippy::print_stderr,
                reason = "the one place a tool reports its error"
            )]
            {
                eprintln!("{tool}: error: {e:#}");
            }
            ExitCode::from(exit::INPUT)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipe_anywhere_in_the_chain_is_recognised() {
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&e));
        let e = anyhow::Error::new(io::Error::from(io::ErrorKind::NotFound)).context("reading");
        assert!(!is_broken_pipe(&e));
    }
}

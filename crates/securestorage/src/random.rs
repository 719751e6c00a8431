//! Where random bytes come from.

use crate::error::{Error, Result};

/// A source of cryptographically secure random bytes. [`OsRandom`] is the one to use; tests
/// plug in a fixed source to make files reproducible.
pub trait RandomSource {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<()>;
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
    }
}

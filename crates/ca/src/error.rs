//! The crate's error type.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the certificate pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request policy (certreq.inf) line that cannot be read or honoured.
    #[error("{file}{}{}: {message}", line_part(*.line), key_part(.key.as_deref()))]
    Inf {
        /// The policy file's name.
        file: String,
        /// One-based line, 0 when the problem is the file as a whole.
        line: usize,
        /// The key at fault.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be read, or is refused.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A key could not be generated, encoded or read.
    #[error("key: {0}")]
    Key(String),
    /// A certificate request could not be built, read or verified.
    #[error("certificate request: {0}")]
    Request(String),
}

fn line_part(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

fn key_part(key: Option<&str>) -> String {
    key.map_or(String::new(), |k| format!(": {k}"))
}

//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong locating and rewriting a value. When an error is returned,
/// nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Any other error, about a particular file.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: Box<Error>,
    },
    /// The file's encoding is not one we write back faithfully.
    #[error("unsupported encoding: {0}")]
    Encoding(String),
    /// The file is not well-formed XML.
    #[error("line {line}, column {column}: malformed XML: {message}")]
    Malformed {
        /// One-based line.
        line: usize,
        /// One-based column, in characters.
        column: usize,
        /// What the parser found.
        message: String,
    },
    /// A target path does not parse.
    #[error("target '{target}': {reason}")]
    Target {
        /// The path as given.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The target matched a different number of places than expected.
    #[error("expected {expected} match(es) of {target}, found {found}; nothing changed")]
    Count {
        /// The target(s).
        target: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: usize,
    },
    /// A matched element holds more than text, so its value cannot be replaced safely.
    #[error(
        "line {line}, column {column}: <{name}> contains markup (elements, comments or CDATA), not just a value"
    )]
    NotText {
        /// One-based line.
        line: usize,
        /// One-based column.
        column: usize,
        /// The element's name.
        name: String,
    },
    /// A matched element lacks the attribute the target names.
    #[error("line {line}, column {column}: <{name}> has no attribute '{attribute}'")]
    MissingAttribute {
        /// One-based line.
        line: usize,
        /// One-based column.
        column: usize,
        /// The element's name.
        name: String,
        /// The attribute.
        attribute: String,
    },
    /// A value holds an entity reference we cannot resolve.
    #[error("line {line}, column {column}: {reason}")]
    Entity {
        /// One-based line.
        line: usize,
        /// One-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// Compare-and-swap: a current value is neither the expected old value nor the new one.
    #[error(
        "line {line}, column {column}: the value is '{found}', not '{expected}'; nothing changed"
    )]
    Mismatch {
        /// One-based line.
        line: usize,
        /// One-based column.
        column: usize,
        /// The current value.
        found: String,
        /// The value `--from` expected.
        expected: String,
    },
    /// The new value cannot be written (not a host name, or characters XML cannot hold).
    #[error("invalid value '{value}': {reason}")]
    InvalidValue {
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Self {
        Error::InFile {
            path: path.into(),
            error: Box::new(self),
        }
    }
}

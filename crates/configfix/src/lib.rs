//! Lossless XML rewriters for the Reporting server's `rsreportserver.config` and the Web
//! Console's `Web.config`: every byte but the changed value stays as it was.
//!
//! Tools that load a config into a DOM and save it rewrite the whole file: quotes, attribute
//! spacing, entities, the byte-order mark and line endings change. This crate locates a value
//! with quick-xml (its position in the original text) and splices the new, correctly escaped
//! value into the original bytes, in the file's own encoding.
//!
//! - [`Document`] holds a file; [`Document::find`] locates a [`Target`] and
//!   [`Document::edit`] computes the new file ([`Edit`]) under [`EditOptions`]: how many
//!   matches there must be, and an optional compare-and-swap old value.
//! - [`reporting`] and [`webconsole`] are the two rewriters the move of the RMS needs.
//! - [`edit_file`] reads, edits and writes a file atomically with a backup.
//!
//! ```
//! use opsmgr_configfix::{Document, webconsole};
//! let file = b"<configuration>\r\n  <appSettings>\r\n    <add key='MOMServer' value='RMS.prod.local' />\r\n  </appSettings>\r\n</configuration>\r\n";
//! let doc = Document::parse(file.to_vec())?;
//! let edit = webconsole(&doc, "MGT01.prod.local", Some("RMS.prod.local"))?;
//! assert_eq!(edit.changed(), 1);
//! let out = edit.output.unwrap();
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "<configuration>\r\n  <appSettings>\r\n    <add key='MOMServer' value='MGT01.prod.local' />\r\n  </appSettings>\r\n</configuration>\r\n"
//! );
//! # Ok::<(), opsmgr_configfix::Error>(())
//! ```

mod document;
mod encoding;
mod error;
mod escape;
mod file;
mod rewriters;
mod target;

pub use document::{Compare, Document, Edit, EditOptions, Expect, Found, MatchOutcome};
pub use encoding::Encoding;
pub use error::{Error, Result};
pub use file::{FileEdit, WriteOptions, edit_file};
pub use rewriters::{
    REPORTING_EXPECTED, REPORTING_TARGETS, WEBCONSOLE_TARGET, check_host_name, reporting,
    webconsole,
};
pub use target::Target;

//! Rewriting files in place: atomically, keeping permissions, with a backup.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::document::{Document, Edit};
use crate::error::{Error, Result};

/// How to write an edited file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Keep the original as `PATH.bak` (or `PATH.bak.<UTC timestamp>` when that exists).
    pub backup: bool,
    /// Compute the edit but write nothing.
    pub dry_run: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            backup: true,
            dry_run: false,
        }
    }
}

/// What happened to a file.
#[derive(Debug, Clone)]
pub struct FileEdit {
    /// The file.
    pub path: PathBuf,
    /// The document as it was read.
    pub document: Document,
    /// What the edit found and would change.
    pub edit: Edit,
    /// Whether the file was rewritten (false: nothing to change, or a dry run; the file,
    /// and its modification time, are untouched).
    pub written: bool,
    /// Where the original was kept.
    pub backup: Option<PathBuf>,
}

/// Reads `path`, applies `edit`, and when anything changes writes the result atomically (a
/// temporary file in the same folder, flushed, renamed over the original, the folder
/// flushed), keeping the file's permissions, after saving the original as a backup. `now`
/// names a backup when `PATH.bak` exists already. Errors name the file; on any error the file
/// is untouched.
pub fn edit_file(
    path: &Path,
    edit: impl FnOnce(&Document) -> Result<Edit>,
    options: WriteOptions,
    now: SystemTime,
) -> Result<FileEdit> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = fs::read(path).map_err(io)?;
    let document = Document::parse(bytes).map_err(|e| e.in_file(path))?;
    let result = edit(&document).map_err(|e| e.in_file(path))?;
    let mut file_edit = FileEdit {
        path: path.to_owned(),
        document,
        edit: result,
        written: false,
        backup: None,
    };
    let Some(output) = &file_edit.edit.output else {
        return Ok(file_edit);
    };
    if options.dry_run {
        return Ok(file_edit);
    }
    let permissions = fs::metadata(path).map_err(io)?.permissions();
    if options.backup {
        let backup = backup_name(path, now);
        write_atomic(
            &backup,
            &file_edit.document.bytes(),
            Some(permissions.clone()),
        )?;
        file_edit.backup = Some(backup);
    }
    write_atomic(path, output, Some(permissions))?;
    file_edit.written = true;
    Ok(file_edit)
}

fn write_atomic(path: &Path, bytes: &[u8], permissions: Option<fs::Permissions>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    opsmgr_fsutil::write_atomic_with(path, permissions, |w| w.write_all(bytes)).map_err(io)
}

/// `PATH.bak`, or `PATH.bak.<YYYYMMDDTHHMMSSZ>` when that exists, or with `-N` after it.
fn backup_name(path: &Path, now: SystemTime) -> PathBuf {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let plain = with(".bak");
    if !plain.exists() {
        return plain;
    }
    let stamp = format!(".bak.{}", opsmgr_fsutil::utc_stamp(now));
    let stamped = with(&stamp);
    if !stamped.exists() {
        return stamped;
    }
    (2..)
        .map(|n| with(&format!("{stamp}-{n}")))
        .find(|p| !p.exists())
        .unwrap_or(stamped)
}

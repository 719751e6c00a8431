//! Crash-safe file writes shared by the opsmgr crates.
//!
//! Every write goes to a temporary file in the destination's folder, is flushed to disk, and
//! is renamed over the destination, the folder flushed after: a reader sees the old bytes or
//! the new ones, never half of them, whenever the process or the machine stops.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

#[cfg(unix)]
pub mod untrusted;

/// Creates `dir` and its missing parents, owner-only (0700) on Unix.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens (creating when missing) the lock file at `path` and takes its exclusive lock, waiting
/// for another holder; the lock is released when the file is dropped. Two tools working on the
/// same folder take turns this way.
pub fn lock_exclusive(path: &Path) -> io::Result<fs::File> {
    let file = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

/// Writes `bytes` to `path` atomically and owner-only (0600 from the first byte, whatever an
/// old file's mode was), creating a missing folder owner-only. For keys and key stores.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = atomic_write_file::OpenOptions::new();
    #[cfg(unix)]
    {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        atomic_write_file::unix::OpenOptionsExt::preserve_mode(&mut options, false);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Writes `bytes` to `path` atomically; a replaced file keeps its permissions, a new one gets
/// the default mode. For files that are not secret (requests, certificates, reports).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, None, |w| w.write_all(bytes))
}

/// Writes `path` atomically with what `fill` writes (through a buffer, so a large document is
/// streamed, never held twice): `permissions` are set on the new file when given, else a
/// replaced file keeps its own and a new one gets the default mode.
pub fn write_atomic_with(
    path: &Path,
    permissions: Option<fs::Permissions>,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = atomic_write_file::AtomicWriteFile::open(path)?;
    {
        let mut buffered = io::BufWriter::new(&mut file);
        fill(&mut buffered)?;
        buffered.flush()?;
    }
    if let Some(p) = permissions {
        file.set_permissions(p)?;
    }
    file.commit()
}

/// `YYYYMMDDTHHMMSSZ` for `time` (UTC, proleptic Gregorian; before 1970 as 1970): RFC 3339
/// without its separators, so that names made with it sort by time and fit any file system.
/// The one stamp of the workspace's kept copies (`.bak.<stamp>`, `replaced-<stamp>`, a group's
/// `history/<stamp>`).
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn utc_stamps() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(utc_stamp(at(0)), "19700101T000000Z");
        assert_eq!(utc_stamp(at(951_782_400)), "20000229T000000Z");
        assert_eq!(utc_stamp(at(1_795_363_447)), "20261122T160407Z");
        // 2100 is not a leap year.
        assert_eq!(utc_stamp(at(4_107_542_399)), "21000228T235959Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH - Duration::from_secs(5)),
            "19700101T000000Z"
        );
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only_even_over_an_open_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys/a.key");
        write_private(&key, b"one").unwrap();
        assert_eq!((mode(&key), mode(key.parent().unwrap())), (0o600, 0o700));
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&key, b"two").unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(fs::read(&key).unwrap(), b"two");
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_keep_a_replaced_files_mode_and_leave_no_temporary_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.req");
        write_atomic(&f, b"one").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!((mode(&f), fs::read(&f).unwrap()), (0o640, b"two".to_vec()));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

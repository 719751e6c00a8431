//! A folder that others write into (a drop share), used without trusting its contents: every
//! name is opened relative to a handle on the folder, never following a link; files are
//! checked to be regular after opening, opened non-blocking (a FIFO cannot hang the reader),
//! and read through a bound on the open file itself; files are created exclusively and
//! renamed into place, so a planted link is replaced, never written through.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};

/// What a directory entry is, looked at without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A character or block device.
    Device,
    /// Something else.
    Other,
}

impl EntryKind {
    fn of(t: FileType) -> Self {
        match t {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink,
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
            FileType::CharacterDevice | FileType::BlockDevice => EntryKind::Device,
            _ => EntryKind::Other,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "a regular file",
            EntryKind::Dir => "a folder",
            EntryKind::Symlink => "a symbolic link",
            EntryKind::Fifo => "a named pipe (FIFO)",
            EntryKind::Socket => "a socket",
            EntryKind::Device => "a device",
            EntryKind::Other => "not a regular file",
        })
    }
}

/// Why a file of the folder was not read.
#[derive(Debug)]
pub enum ReadRefusal {
    /// Not a regular file: a link, a pipe, a device, a folder.
    NotRegular(EntryKind),
    /// Larger than the bound.
    TooLarge(usize),
    /// It changed too recently: perhaps still being written.
    Settling,
    /// It is gone.
    Missing,
    /// The operating system refused.
    Io(io::Error),
}

impl fmt::Display for ReadRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadRefusal::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadRefusal::TooLarge(max) => write!(f, "it is larger than {max} bytes"),
            ReadRefusal::Settling => {
                f.write_str("it was modified moments ago (still being written?)")
            }
            ReadRefusal::Missing => f.write_str("it disappeared"),
            ReadRefusal::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A file read from the folder.
#[derive(Debug)]
pub struct Contents {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its change time (ctime).
    pub changed: SystemTime,
}

/// A handle on a folder whose contents are not trusted.
#[derive(Debug)]
pub struct UntrustedDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Temporary names are unique within the process by this counter and the process id.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

fn time(sec: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec).unwrap_or(0);
    match u64::try_from(sec) {
        Ok(s) => UNIX_EPOCH + Duration::new(s, nsec),
        Err(_) => UNIX_EPOCH,
    }
}

fn kind_of(stat: &rustix::fs::Stat) -> EntryKind {
    EntryKind::of(FileType::from_raw_mode(stat.st_mode))
}

/// Whether `name` is a temporary name this module makes: `.<name>.<pid>.<n>.tmp`.
pub fn is_temporary(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b".") && b.ends_with(b".tmp")
}

impl UntrustedDir {
    /// Opens the folder at `path` (the path itself is the operator's and may be a link; nothing
    /// below it is followed).
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sub-folder `name`, created (0755) when missing. Anything else planted at that name
    /// (a link, a file, a pipe) is removed without being followed and replaced by a real
    /// folder: nothing is ever written through it, and a planted entry cannot stop the work
    /// that needs the folder. Returns the folder and what was removed.
    pub fn subdir(&self, name: &str) -> io::Result<(UntrustedDir, Option<EntryKind>)> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut removed = None;
        // Twice at most: a second entry planted between the removal and the mkdir is a race
        // someone is running on purpose, and an error.
        for _ in 0..2 {
            match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
                Ok(fd) => return Ok((Self { fd, path }, removed)),
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    let kind = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|s| kind_of(&s))
                        .unwrap_or(EntryKind::Other);
                    // unlinkat removes a link itself, never what it points at.
                    rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?;
                    removed = Some(kind);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} was replaced again while it was being made a folder",
                path.display()
            ),
        ))
    }

    /// The names of every entry but `.` and `..`, in name order, without looking at what they
    /// are (one `getdents` pass; [`UntrustedDir::read_file`] checks each file it opens).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        let dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// What `name` is, without following it; `None` when nothing is there.
    pub fn kind(&self, name: &OsStr) -> io::Result<Option<EntryKind>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(kind_of(&stat))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the regular file `name`, at most `max` bytes, refusing anything else: opened
    /// without following a link and without blocking, its type checked on the open file, the
    /// bound applied to the read. With `settled_before`, a file changed after that moment is
    /// left alone ([`ReadRefusal::Settling`]): judged by its change time, which every write
    /// sets and no one can set back or ahead (a modification time copied from a client whose
    /// clock runs ahead, or set with `touch -d`, would keep a file settling for ever).
    pub fn read_file(
        &self,
        name: &OsStr,
        max: usize,
        settled_before: Option<SystemTime>,
    ) -> Result<Vec<u8>, ReadRefusal> {
        self.read_regular(name, max, settled_before)
            .map(|c| c.bytes)
    }

    /// As [`UntrustedDir::read_file`], with the file's change time: when it arrived under its
    /// name (a rename or a write sets it; unlike the modification time, no one can set it
    /// back).
    pub fn read_regular(
        &self,
        name: &OsStr,
        max: usize,
        settled_before: Option<SystemTime>,
    ) -> Result<Contents, ReadRefusal> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => {
                return Err(ReadRefusal::NotRegular(EntryKind::Symlink));
            }
            Err(rustix::io::Errno::NOENT) => return Err(ReadRefusal::Missing),
            Err(e) => return Err(ReadRefusal::Io(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| ReadRefusal::Io(e.into()))?;
        let kind = kind_of(&stat);
        if kind != EntryKind::File {
            return Err(ReadRefusal::NotRegular(kind));
        }
        if let Some(limit) = settled_before
            && time(stat.st_ctime, stat.st_ctime_nsec as i64) > limit
        {
            return Err(ReadRefusal::Settling);
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(max as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadRefusal::Io)?;
        if bytes.len() > max {
            return Err(ReadRefusal::TooLarge(max));
        }
        Ok(Contents {
            bytes,
            changed: time(stat.st_ctime, stat.st_ctime_nsec as i64),
        })
    }

    /// Writes `bytes` as `name` by a fresh temporary file (created exclusively, never through
    /// a link) renamed over it, without flushing (see [`UntrustedDir::sync`]). Whatever stood
    /// at `name` (a file, a link, a pipe) is replaced, not written through; a folder there is
    /// an error.
    pub fn replace_file(&self, name: &OsStr, bytes: &[u8]) -> io::Result<()> {
        // `.<name>.<pid>.<n>.tmp`, the name cut short so that the whole stays within the 255
        // bytes a file name may have (a long name must not make its own write fail).
        let mut tmp = OsString::from(".");
        let stem = name.as_bytes();
        tmp.push(OsStr::from_bytes(&stem[..stem.len().min(200)]));
        tmp.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            TEMPORARY.fetch_add(1, Ordering::Relaxed)
        ));
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, &tmp, flags, Mode::from_raw_mode(0o644))?;
        let result = File::from(fd).write_all(bytes).and_then(|()| {
            rustix::fs::renameat(&self.fd, &tmp, &self.fd, name).map_err(Into::into)
        });
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, &tmp, AtFlags::empty());
        }
        result
    }

    /// Moves the entry `name` (whatever it is; a link moves as a link) into `to` as `new_name`,
    /// never replacing what is there.
    pub fn move_into(&self, name: &OsStr, to: &UntrustedDir, new_name: &OsStr) -> io::Result<()> {
        rustix::fs::renameat_with(&self.fd, name, &to.fd, new_name, RenameFlags::NOREPLACE)
            .map_err(Into::into)
    }

    /// Removes the entry `name` (a link is removed, not followed; a folder is not removed).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(Into::into)
    }

    /// Removes the temporary files ([`is_temporary`]) a killed writer left, whatever they are
    /// (a link planted at such a name is removed itself); folders are left. The caller makes
    /// sure no writer is running. Returns how many were removed.
    pub fn remove_temporaries(&self) -> io::Result<usize> {
        let mut removed = 0;
        for name in self.names()?.into_iter().filter(|n| is_temporary(n)) {
            if self.kind(&name)? != Some(EntryKind::Dir) {
                match self.remove(&name) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(removed)
    }

    /// Flushes every pending write of the file system that holds the folder (one `syncfs`).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::syncfs(self.fd.as_fd()).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn os(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn links_pipes_and_folders_are_refused_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"secret").unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("link.req")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", share.join("zero.req")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            share.join("pipe.req"),
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        std::fs::create_dir(share.join("dir.req")).unwrap();
        std::fs::write(share.join("ok.req"), b"hello").unwrap();
        let d = UntrustedDir::open(&share).unwrap();
        let kinds: Vec<(String, EntryKind)> = d
            .names()
            .unwrap()
            .into_iter()
            .map(|n| {
                (
                    n.to_string_lossy().into_owned(),
                    d.kind(&n).unwrap().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("dir.req".to_owned(), EntryKind::Dir),
                ("link.req".to_owned(), EntryKind::Symlink),
                ("ok.req".to_owned(), EntryKind::File),
                ("pipe.req".to_owned(), EntryKind::Fifo),
                ("zero.req".to_owned(), EntryKind::Symlink),
            ]
        );
        assert_eq!(d.read_file(os("ok.req"), 5, None).unwrap(), b"hello");
        assert!(matches!(
            d.read_file(os("ok.req"), 4, None),
            Err(ReadRefusal::TooLarge(4))
        ));
        for (name, kind) in [
            ("link.req", EntryKind::Symlink),
            ("zero.req", EntryKind::Symlink),
            ("pipe.req", EntryKind::Fifo),
            ("dir.req", EntryKind::Dir),
        ] {
            match d.read_file(os(name), 64, None) {
                Err(ReadRefusal::NotRegular(k)) => assert_eq!(k, kind, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        // A file changed after the settle moment is left for later.
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert!(matches!(
            d.read_file(os("ok.req"), 64, Some(past)),
            Err(ReadRefusal::Settling)
        ));

        // Writing over a link replaces the link; the file it pointed at is untouched.
        d.replace_file(os("link.req"), b"mine").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
        assert_eq!(std::fs::read(share.join("link.req")).unwrap(), b"mine");
        // Over a pipe: replaced without opening it (no hang).
        d.replace_file(os("pipe.req"), b"mine").unwrap();
        // A name of 255 bytes is written like any other.
        let longest = "n".repeat(251) + ".txt";
        d.replace_file(os(&longest), b"long").unwrap();
        assert_eq!(std::fs::read(share.join(&longest)).unwrap(), b"long");
        // Over a folder: an error, nothing changed.
        assert!(d.replace_file(os("dir.req"), b"mine").is_err());
        assert!(share.join("dir.req").is_dir());

        // A temporary name planted as a link to a file outside: the sweep removes the link.
        std::os::unix::fs::symlink(&outside, share.join(".x.cer.1.2.tmp")).unwrap();
        std::fs::create_dir(share.join(".keep.tmp")).unwrap();
        assert_eq!(d.remove_temporaries().unwrap(), 1);
        assert_eq!(std::fs::read(&outside).unwrap(), b"secret");
        assert!(share.join(".keep.tmp").is_dir());
        assert!(d.kind(os(".x.cer.1.2.tmp")).unwrap().is_none());
    }

    #[test]
    fn sub_folders_must_be_real_and_moves_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::os::unix::fs::symlink(&elsewhere, share.join("processed")).unwrap();
        std::fs::write(share.join("held"), b"planted").unwrap();
        let d = UntrustedDir::open(&share).unwrap();
        // A link at the name is removed, not followed, and a real folder takes its place.
        let (_, removed) = d.subdir("processed").unwrap();
        assert_eq!(removed, Some(EntryKind::Symlink));
        assert!(
            std::fs::symlink_metadata(share.join("processed"))
                .unwrap()
                .is_dir()
        );
        let (_, removed) = d.subdir("held").unwrap();
        assert_eq!(removed, Some(EntryKind::File));
        let (rejected, removed) = d.subdir("rejected").unwrap();
        assert_eq!(removed, None);
        assert!(share.join("rejected").is_dir());
        std::fs::write(share.join("a.req"), b"1").unwrap();
        std::fs::write(share.join("rejected/a.req"), b"old").unwrap();
        let e = d
            .move_into(os("a.req"), &rejected, os("a.req"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        d.move_into(os("a.req"), &rejected, os("a.req.1")).unwrap();
        assert_eq!(std::fs::read(share.join("rejected/a.req")).unwrap(), b"old");
        assert_eq!(std::fs::read(share.join("rejected/a.req.1")).unwrap(), b"1");
        assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    }
}

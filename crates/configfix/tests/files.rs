//! Rewriting real files: atomic, permissions kept, backups, nothing written when nothing
//! changes or on any error.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opsmgr_configfix::{Error, WriteOptions, edit_file, webconsole};

const WEB: &str = "<configuration>\r\n  <appSettings>\r\n    <add key=\"MOMServer\" value=\"RMS.prod.local\"/>\r\n  </appSettings>\r\n</configuration>";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_363_447)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn rewrites_atomically_keeping_permissions_and_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Web.config");
    fs::write(&path, WEB).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

    let to = |rms: &'static str| move |doc: &_| webconsole(doc, rms, None);
    let done = edit_file(
        &path,
        to("MGT01.prod.local"),
        WriteOptions::default(),
        now(),
    )
    .unwrap();
    assert!(done.written);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        WEB.replace("RMS.prod.local", "MGT01.prod.local")
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let backup = done.backup.unwrap();
    assert_eq!(backup, dir.path().join("Web.config.bak"));
    assert_eq!(fs::read_to_string(&backup).unwrap(), WEB);
    assert_eq!(
        fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // A second change keeps the first backup and names the new one by time.
    let done = edit_file(
        &path,
        to("MGT02.prod.local"),
        WriteOptions::default(),
        now(),
    )
    .unwrap();
    assert_eq!(
        done.backup.unwrap(),
        dir.path().join("Web.config.bak.20261122T160407Z")
    );
    let done = edit_file(
        &path,
        to("MGT03.prod.local"),
        WriteOptions::default(),
        now(),
    )
    .unwrap();
    assert_eq!(
        done.backup.unwrap(),
        dir.path().join("Web.config.bak.20261122T160407Z-2")
    );
    assert_eq!(
        names(dir.path()),
        [
            "Web.config",
            "Web.config.bak",
            "Web.config.bak.20261122T160407Z",
            "Web.config.bak.20261122T160407Z-2"
        ]
    );
}

#[test]
fn nothing_to_change_leaves_the_file_and_its_time_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Web.config");
    fs::write(&path, WEB).unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let done = edit_file(
        &path,
        |d| webconsole(d, "rms.prod.LOCAL", None),
        WriteOptions::default(),
        now(),
    )
    .unwrap();
    assert!(!done.written && done.backup.is_none());
    assert_eq!(done.edit.changed(), 0);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), old);
    assert_eq!(names(dir.path()), ["Web.config"]);
}

#[test]
fn dry_run_and_errors_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Web.config");
    fs::write(&path, WEB).unwrap();
    let dry = WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    };
    let done = edit_file(
        &path,
        |d| webconsole(d, "MGT01.prod.local", None),
        dry,
        now(),
    )
    .unwrap();
    assert!(!done.written);
    assert_eq!(done.edit.changed(), 1);
    assert!(done.edit.output.is_some());

    let e = edit_file(
        &path,
        |d| webconsole(d, "MGT01.prod.local", Some("X.prod.local")),
        WriteOptions::default(),
        now(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 3, column 33: the value is 'RMS.prod.local', not 'X.prod.local'; nothing changed",
            path.display()
        )
    );
    assert!(matches!(e, Error::InFile { .. }));
    assert_eq!(fs::read_to_string(&path).unwrap(), WEB);
    assert_eq!(names(dir.path()), ["Web.config"]);

    let missing = dir.path().join("nope.config");
    let e = edit_file(
        &missing,
        |d| webconsole(d, "MGT01.prod.local", None),
        WriteOptions::default(),
        now(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
}

#[test]
fn no_backup_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Web.config");
    fs::write(&path, WEB).unwrap();
    let opts = WriteOptions {
        backup: false,
        ..WriteOptions::default()
    };
    let done = edit_file(
        &path,
        |d| webconsole(d, "MGT01.prod.local", None),
        opts,
        now(),
    )
    .unwrap();
    assert!(done.written && done.backup.is_none());
    assert_eq!(names(dir.path()), ["Web.config"]);
}

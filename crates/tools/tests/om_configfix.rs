//! om-configfix driven as an operator would, on copies of the fixtures in a temp folder.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};

mod common;
use common::text;

fn run(args: &[&str]) -> std::process::Output {
    common::run(env!("CARGO_BIN_EXE_om-configfix"), args)
}

fn fixture(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configfix/tests/data")
        .join(name);
    let dst = dir.join(name);
    std::fs::copy(src, &dst).unwrap();
    dst
}

#[test]
fn reporting_dry_run_then_change_then_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "rsreportserver.config");
    let p = path.to_str().unwrap();
    let original = std::fs::read(&path).unwrap();

    let dry = run(&["reporting", p, "--rms", "MGT01.prod.local", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let diff = text(&dry.stdout);
    assert_eq!(
        diff.lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .count(),
        2
    );
    assert_eq!(
        diff.lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count(),
        2
    );
    assert!(diff.contains("+\t\t\t\t\t<ServerName>MGT01.prod.local</ServerName>"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        original,
        "dry run writes nothing"
    );

    let done = run(&[
        "reporting",
        p,
        "--rms",
        "MGT01.prod.local",
        "--from",
        "RMS.prod.local",
    ]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert_eq!(
        text(&done.stdout),
        format!(
            "{p}: changed 2 of 2 ServerName value(s) to 'MGT01.prod.local'; original kept as {p}.bak\n"
        )
    );
    let expected = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configfix/tests/data/rsreportserver.expected.config"),
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    assert_eq!(std::fs::read(format!("{p}.bak")).unwrap(), original);

    let again = run(&[
        "reporting",
        p,
        "--rms",
        "mgt01.prod.local",
        "--from",
        "RMS.prod.local",
        "--json",
    ]);
    assert_eq!(again.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["changed"], 0);
    assert_eq!(v["written"], false);
    assert_eq!(v["matches"].as_array().unwrap().len(), 2);
}

#[test]
fn refusals_exit_2_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "web.config");
    let p = path.to_str().unwrap();
    let original = std::fs::read(&path).unwrap();

    let wrong = run(&[
        "webconsole",
        p,
        "--rms",
        "MGT01.prod.local",
        "--from",
        "OTHER.prod.local",
    ]);
    assert_eq!(wrong.status.code(), Some(2));
    assert_eq!(
        text(&wrong.stderr),
        format!(
            "om-configfix: error: {p}: line 4, column 35: the value is 'RMS.prod.local', not 'OTHER.prod.local'; nothing changed\n"
        )
    );
    let bad = run(&["webconsole", p, "--rms", "MGT01 prod"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("invalid value 'MGT01 prod'"));
    let count = run(&["reporting", p, "--rms", "MGT01.prod.local"]);
    assert_eq!(count.status.code(), Some(2));
    assert!(text(&count.stderr).contains("found 0; nothing changed"));
    assert_eq!(std::fs::read(&path).unwrap(), original);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no backup, no temp file"
    );
}

#[test]
fn set_edits_any_value_escaped_for_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = fixture(dir.path(), "web.config");
    let p = path.to_str().unwrap();
    let out = run(&[
        "set",
        p,
        "configuration/appSettings/add[@key='Banner']/@value",
        "A & B \"quoted\"",
        "--expect",
        "1",
        "--no-backup",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let now = std::fs::read_to_string(&path).unwrap();
    assert!(
        now.contains(r#"<add key="Banner" value="A &amp; B &quot;quoted&quot;"/>"#),
        "{now}"
    );
    assert!(!Path::new(&format!("{p}.bak")).exists());
}

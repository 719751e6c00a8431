//! The README's main job, small: the whole drill passes every check, reports every phase, and
//! refuses a folder that is not fresh.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_om-drill"))
        .args(args)
        .output()
        .expect("om-drill runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Standard output of a run that must have succeeded (exit 0).
fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// As every tool: `-?`, `/?` and the blog's typographic dashes ask for the help.
#[test]
fn windows_habits_ask_for_the_help() {
    for ask in ["-?", "/?", "\u{2013}\u{2013}help", "\u{2014}\u{2014}help"] {
        let help = ok(&run(&[ask]));
        assert!(help.contains("Usage: om-drill"), "{ask}: {help}");
    }
}

#[test]
fn the_drill_passes_every_check_and_keeps_its_files_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("drill");
    let out = run(&["--agents", "12", "--dir", work.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let phases: Vec<&str> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases.len(), 5, "{phases:?}");
    assert!(
        v["phases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["seconds"].as_f64().unwrap() >= 0.0)
    );
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 5);
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
    }
    // The story happened on real files: the RMS is gone, MGT01 holds the key, the group says so.
    assert!(!work.join("machines/RMS.prod.local").exists());
    assert!(
        work.join("machines/MGT01.prod.local/SecureStorage/keystore.bin")
            .exists()
    );
    let inventory = std::fs::read_to_string(work.join("group/inventory.json")).unwrap();
    assert!(inventory.contains("\"MGT01.prod.local\""), "{inventory}");
    assert_eq!(
        std::fs::read_dir(work.join("share/processed"))
            .unwrap()
            .count(),
        15
    );

    // A folder that is not fresh is refused.
    let again = run(&["--agents", "1", "--dir", work.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
}

/// Without --dir the drill works in a temporary folder and removes all of it, the removal
/// timed as the last phase.
#[test]
fn the_temporary_folder_is_removed_and_its_removal_timed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_om-drill"))
        .args(["--agents", "3", "--json"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let last = &v["phases"].as_array().unwrap().last().unwrap()["name"];
    assert_eq!(last, "6. clean-up (the temporary folder)");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the temporary folder is gone"
    );
}

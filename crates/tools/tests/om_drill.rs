//! The README's main job, small: the whole drill passes every check, reports every phase, and
//! refuses a folder that is not fresh.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

mod common;
use common::{ok, text};

#[test]
fn the_drill_passes_every_check_and_keeps_its_files_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("drill");
    let out = common::run(
        env!("CARGO_BIN_EXE_om-drill"),
        &["--agents", "12", "--dir", work.to_str().unwrap(), "--json"],
    );
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
    let again = common::run(
        env!("CARGO_BIN_EXE_om-drill"),
        &["--agents", "1", "--dir", work.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("is not empty"),
        "{}",
        text(&again.stderr)
    );
}

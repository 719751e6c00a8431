//! Replays every committed seed through its target: the stable-toolchain stand-in for
//! fuzzing, and a guard that the seeds still exercise the code.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("seed folder") {
        let path = entry.expect("seed entry").path();
        run(&std::fs::read(&path).expect("seed file"));
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn inventory_seeds() {
    replay("inventory", opsmgr_fuzz::inventory);
}

#[test]
fn configfix_seeds() {
    replay("configfix", opsmgr_fuzz::configfix);
}

#[test]
fn backup_seeds() {
    replay("backup", opsmgr_fuzz::backup);
}

#[test]
fn keystore_records_seeds() {
    replay("keystore_records", opsmgr_fuzz::keystore_records);
}

#[test]
fn certreq_inf_seeds() {
    replay("certreq_inf", opsmgr_fuzz::certreq_inf);
}

#[test]
fn request_seeds() {
    replay("request", opsmgr_fuzz::request);
}

#[test]
fn certificate_seeds() {
    replay("certificate", opsmgr_fuzz::certificate);
}

#[test]
fn bundle_seeds() {
    replay("bundle", opsmgr_fuzz::bundle);
}

#[test]
fn pfx_seeds() {
    replay("pfx", opsmgr_fuzz::pfx);
}

//! Issue 19's attacks on the group key, done with the release's tools against a group with
//! no Run As secrets (every group our tools make): NewKey on a machine that holds the key,
//! PromoteRMS of a machine with the wrong key, and the checks that now stand on the key check
//! record; then Run As secrets managed by `om-msconfigtool RunAs`, and Verify and Restore
//! asked about the group.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use opsmgr_model::HostName;
use opsmgr_model::inventory::{Inventory, Server, ServerRole};
use opsmgr_securestorage::keystore::{KeyStore, keystore_path};
use opsmgr_tools::group::Group;

mod common;
use common::{ok, text};

const RMS: &str = "RMS.prod.local";
const MGT01: &str = "MGT01.prod.local";
const MGT02: &str = "MGT02.prod.local";

fn h(s: &str) -> HostName {
    HostName::new(s).unwrap()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A group made as our tools make one: an RMS and two management servers, no secrets.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let servers = vec![
            Server::new(h(RMS), ServerRole::Rms),
            Server::new(h(MGT01), ServerRole::Management),
            Server::new(h(MGT02), ServerRole::Management),
        ];
        Group::create(
            &w.group(),
            Inventory {
                management_group: "PROD".into(),
                servers,
                agents: Vec::new(),
            },
        )
        .unwrap();
        w
    }
    fn group(&self) -> PathBuf {
        self.dir.path().join("group")
    }
    fn machine(&self, host: &str) -> PathBuf {
        self.dir.path().join("machines").join(host)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let exe = match tool {
            "msconfigtool" => env!("CARGO_BIN_EXE_om-msconfigtool"),
            _ => env!("CARGO_BIN_EXE_om-securestoragebackup"),
        };
        Command::new(exe)
            .args(args)
            .env_remove("OPSMGR_MACHINE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    /// om-msconfigtool VERB --group G --machine M, then `extra`.
    fn ms(&self, verb: &[&str], host: &str, extra: &[&str]) -> Output {
        let (g, m) = (s(&self.group()), s(&self.machine(host)));
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(["--group", &g, "--machine", &m]);
        args.extend(extra);
        self.run("msconfigtool", &args)
    }
    /// om-securestoragebackup --machine M, then `args`.
    fn ssb(&self, host: &str, args: &[&str]) -> Output {
        let m = s(&self.machine(host));
        let mut all = vec!["--machine", &m];
        all.extend(args);
        self.run("ssb", &all)
    }
    fn copy_key(&self, from: &str, to: &str) {
        let store = KeyStore::load(&keystore_path(&self.machine(from))).unwrap();
        store.save(&keystore_path(&self.machine(to))).unwrap();
    }
    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        s(&p)
    }
}

fn refused(out: &Output, code: i32, why: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

/// The first two attacks, as written: a group with no Run As secrets.
#[test]
fn with_no_secrets_new_key_and_promote_rms_stand_on_the_key_check_record() {
    let w = World::new();
    // The RMS's key made without --group (as before the record existed), restored on MGT01;
    // MGT02 made its own.
    ok(&w.ssb(RMS, &["CreateKey"]));
    w.copy_key(RMS, MGT01);
    ok(&w.ssb(MGT02, &["CreateKey"]));
    let key_of = |host: &str| {
        KeyStore::load(&keystore_path(&w.machine(host)))
            .unwrap()
            .current()
            .id()
            .to_string()
    };
    let mgt01_key = key_of(MGT01);

    // Nothing says whose key is the group's: NewKey no longer replaces it, and PromoteRMS,
    // dry run or not, no longer promotes.
    for host in [RMS, MGT01] {
        refused(
            &w.ms(&["NewKey"], host, &[]),
            2,
            &format!("{host} has a key store, and nothing says whether its key is the group's"),
        );
    }
    assert_eq!(key_of(MGT01), mgt01_key);
    assert_eq!(key_of(RMS), mgt01_key);
    for extra in [["--dry-run"], ["--yes"]] {
        let mut args = vec!["/DeleteExistingRMS:true"];
        args.extend(extra);
        refused(
            &w.ms(&["PromoteRMS"], MGT02, &args),
            2,
            "nothing proves MGT02.prod.local holds the management group's encryption key",
        );
    }
    // KeyCheck from a server that is not the RMS does not record its key.
    refused(
        &w.ms(&["KeyCheck"], MGT02, &[]),
        2,
        "run KeyCheck on the RMS, which owns the key",
    );
    assert!(!w.group().join("keycheck.bin").exists());

    // The RMS records it, once.
    let said = ok(&w.ms(&["KeyCheck"], RMS, &[]));
    assert!(
        said.contains(
            "The group had no key check record: wrote one from RMS.prod.local's current key"
        ),
        "{said}"
    );
    let record = std::fs::read(w.group().join("keycheck.bin")).unwrap();
    let again = ok(&w.ms(&["KeyCheck"], RMS, &["--json"]));
    let v: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["record_written"], false);
    assert_eq!(v["holds_group_key"], true);
    assert_eq!(
        std::fs::read(w.group().join("keycheck.bin")).unwrap(),
        record
    );

    // Now the record decides: MGT01 (the RMS's key) is refused a new key and promotable;
    // MGT02 (its own key) is refused, with the reason.
    for host in [RMS, MGT01] {
        refused(
            &w.ms(&["NewKey"], host, &[]),
            2,
            &format!(
                "{host} holds the group's key already (its current key is the one the key check record names; the group has no Run As secrets)"
            ),
        );
    }
    assert_eq!(key_of(MGT01), mgt01_key);
    let check = w.ms(&["KeyCheck"], MGT02, &[]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("MGT02.prod.local does NOT hold the group's key"),
        "{}",
        text(&check.stdout)
    );
    refused(
        &w.ms(
            &["PromoteRMS"],
            MGT02,
            &["/DeleteExistingRMS:true", "--dry-run"],
        ),
        2,
        "MGT02.prod.local does not hold the management group's encryption key (it does not hold the key the key check record names; the group has no Run As secrets)",
    );
    let dry = ok(&w.ms(
        &["PromoteRMS"],
        MGT01,
        &["/DeleteExistingRMS:true", "--dry-run"],
    ));
    assert!(
        dry.contains("Would promote MGT01.prod.local to RMS"),
        "{dry}"
    );

    // A record that was changed is an error naming the file, never a pass.
    let mut bent = record.clone();
    let last = bent.len() - 1;
    bent[last] ^= 1;
    std::fs::write(w.group().join("keycheck.bin"), &bent).unwrap();
    refused(&w.ms(&["KeyCheck"], RMS, &[]), 2, "keycheck.bin");
}

/// CreateKey --group makes the group's key on its RMS and records it; a second group key, or
/// one made on another server, is refused before anything is made. With the RMS lost and no
/// record, a server whose key was restored records it with --force.
#[test]
fn create_key_records_the_group_key_and_a_lost_rms_is_replaced_by_force() {
    let w = World::new();
    let g = s(&w.group());
    refused(
        &w.ssb(MGT01, &["CreateKey", "--group", &g]),
        2,
        "MGT01.prod.local is not the RMS of management group PROD: the group's key is created on its RMS; nothing was made",
    );
    assert!(!keystore_path(&w.machine(MGT01)).exists());
    let made = ok(&w.ssb(RMS, &["CreateKey", "--group", &g]));
    assert!(made.contains("Recorded it as the group's key in"), "{made}");
    std::fs::remove_dir_all(w.machine(RMS)).unwrap();
    refused(
        &w.ssb(RMS, &["CreateKey", "--group", &g]),
        2,
        "management group PROD has a key already (its key check record or its Run As secrets)",
    );

    // Another group, whose RMS is lost before anything recorded its key.
    let w = World::new();
    ok(&w.ssb(RMS, &["CreateKey"]));
    w.copy_key(RMS, MGT01);
    std::fs::remove_dir_all(w.machine(RMS)).unwrap();
    let forced = ok(&w.ms(&["KeyCheck"], MGT01, &["--force"]));
    assert!(
        forced.contains("wrote one from MGT01.prod.local's current key"),
        "{forced}"
    );
    ok(&w.ms(
        &["PromoteRMS"],
        MGT01,
        &["/DeleteExistingRMS:true", "--yes"],
    ));
}

/// Run As secrets by the tool: added from a file (never argv), listed without the secret,
/// replaced only when asked, removed with history, and rotated under a new key that makes
/// every older backup and copy of the key "not the group's".
#[test]
fn run_as_secrets_added_listed_replaced_removed_and_rotated() {
    let w = World::new();
    let g = s(&w.group());
    ok(&w.ssb(RMS, &["CreateKey", "--group", &g]));
    w.copy_key(RMS, MGT01);
    let secret = w.write("sql.txt", "Sup3r-secret SQL password\n");
    let added = ok(&w.ms(
        &["RunAs", "add", "SQL Action Account"],
        RMS,
        &["--account", "CONTOSO\\svc-sql", "--secret-file", &secret],
    ));
    assert!(
        added
            .contains("Added the secret of SQL Action Account (CONTOSO\\svc-sql), sealed with key"),
        "{added}"
    );
    let dw = w.write("dw.txt", "another one\n");
    ok(&w.ms(
        &["runas", "ADD", "Data Warehouse Write"],
        RMS,
        &["--account", "svc-dw@contoso.com", "--secret-file", &dw],
    ));
    // The secret opens with the group's key, bound to its name and account.
    let group = Group::load(&w.group()).unwrap();
    let store = KeyStore::load(&keystore_path(&w.machine(RMS))).unwrap();
    assert_eq!(
        group
            .open_secret(&store, "SQL Action Account")
            .unwrap()
            .as_slice(),
        b"Sup3r-secret SQL password"
    );
    assert_eq!(
        group.runas.secrets[0].account.as_deref(),
        Some("CONTOSO\\svc-sql")
    );

    // Refusals, each before anything changes: a name taken, an account that is no account,
    // a machine whose key is not the group's.
    let runas_before = std::fs::read(w.group().join("runas.json")).unwrap();
    refused(
        &w.ms(
            &["RunAs", "add", "SQL Action Account"],
            RMS,
            &["--account", "CONTOSO\\svc-sql", "--secret-file", &dw],
        ),
        2,
        "the group has a Run As account named 'SQL Action Account' already; --replace seals the new secret in its place",
    );
    for account in [
        "svc-sql",
        "CONTOSO\\svc:sql",
        "TOOLONGNETBIOSNAME1\\x",
        "a@b",
    ] {
        refused(
            &w.ms(
                &["RunAs", "add", "Other"],
                RMS,
                &["--account", account, "--secret-file", &dw],
            ),
            2,
            "is not DOMAIN\\user or user@dns.domain",
        );
    }
    ok(&w.ssb(MGT02, &["CreateKey"]));
    refused(
        &w.ms(
            &["RunAs", "add", "Other"],
            MGT02,
            &["--account", "CONTOSO\\other", "--secret-file", &dw],
        ),
        2,
        "MGT02.prod.local does not hold the group's key",
    );
    assert_eq!(
        std::fs::read(w.group().join("runas.json")).unwrap(),
        runas_before
    );

    // The list names and keys, never a secret; with a machine, whether it opens each.
    let listed = w.ms(&["RunAs", "list"], MGT02, &[]);
    assert_eq!(listed.status.code(), Some(1), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    assert!(table.starts_with("Name"), "{table}");
    assert!(table.contains("SQL Action Account"), "{table}");
    assert!(table.contains("NO"), "{table}");
    let json = ok(&w.run("msconfigtool", &["RunAs", "list", "--group", &g, "--json"]));
    for leak in ["Sup3r-secret", "another one"] {
        assert!(!json.contains(leak) && !table.contains(leak), "{json}");
    }
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[1]["account"], "svc-dw@contoso.com");
    assert_eq!(v[0]["key"], store.current().id().to_string());

    // Replaced on request, the old state in the history.
    ok(&w.ms(
        &["RunAs", "add", "SQL Action Account"],
        RMS,
        &[
            "--account",
            "CONTOSO\\svc-sql",
            "--secret-file",
            &dw,
            "--replace",
        ],
    ));
    assert!(w.group().join("history").read_dir().unwrap().count() >= 1);

    // A backup made now, then the key rotated on the RMS: every secret sealed again, the
    // record renewed; the backup and MGT01's copy are no longer the group's key.
    let pw = w.write("pw.txt", "correct horse battery staple\n");
    let backup = s(&w.path("before-rotate.omkb"));
    ok(&w.ssb(RMS, &["Backup", &backup, "--password-file", &pw]));
    refused(
        &w.ms(&["RunAs", "rotate"], MGT01, &[]),
        2,
        "MGT01.prod.local is not the RMS of management group PROD",
    );
    let rotated = ok(&w.ms(&["RunAs", "rotate"], RMS, &["--json"]));
    let r: serde_json::Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(r["resealed"], 2);
    let store = KeyStore::load(&keystore_path(&w.machine(RMS))).unwrap();
    assert_eq!(r["new_key"], store.current().id().to_string());
    let group = Group::load(&w.group()).unwrap();
    assert!(group.unopenable(&store).is_empty());
    for s in &group.runas.secrets {
        assert_eq!(s.key_id().unwrap(), store.current().id());
    }
    refused(
        &w.ms(
            &["PromoteRMS"],
            MGT01,
            &["/DeleteExistingRMS:true", "--dry-run"],
        ),
        2,
        "MGT01.prod.local does not hold the management group's encryption key",
    );
    let verify = w.ssb(
        MGT02,
        &["Verify", &backup, "--password-file", &pw, "--group", &g],
    );
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).contains("Its current key is NOT management group PROD's key"),
        "{}",
        text(&verify.stdout)
    );
    refused(
        &w.ssb(
            "MGT03.prod.local",
            &["Restore", &backup, "--password-file", &pw, "--group", &g],
        ),
        2,
        "the backup does not hold the management group's key",
    );
    assert!(!keystore_path(&w.machine("MGT03.prod.local")).exists());
    // A backup made after the rotation is the group's, and restores.
    let after = s(&w.path("after-rotate.omkb"));
    ok(&w.ssb(RMS, &["Backup", &after, "--password-file", &pw]));
    let restored = ok(&w.ssb(
        MGT01,
        &[
            "Restore",
            &after,
            "--password-file",
            &pw,
            "--group",
            &g,
            "--force",
        ],
    ));
    assert!(
        restored.contains("It holds the management group's key"),
        "{restored}"
    );
    ok(&w.ms(
        &["PromoteRMS"],
        MGT01,
        &["/DeleteExistingRMS:true", "--dry-run"],
    ));

    // Removed, with the previous state kept.
    let removed = ok(&w.run(
        "msconfigtool",
        &["RunAs", "remove", "Data Warehouse Write", "--group", &g],
    ));
    assert!(
        removed.contains("Removed the secret of Data Warehouse Write"),
        "{removed}"
    );
    assert_eq!(Group::load(&w.group()).unwrap().runas.secrets.len(), 1);
    refused(
        &w.run(
            "msconfigtool",
            &["RunAs", "remove", "Nobody", "--group", &g],
        ),
        2,
        "no Run As account named 'Nobody' (the group's: SQL Action Account)",
    );
}

/// A key rotated on the RMS while the operator reads PromoteRMS's warning: the promotion,
/// confirmed after the plan was made, is refused before anything is written.
#[test]
fn a_promotion_checks_the_key_again_after_the_question() {
    let w = World::new();
    let g = s(&w.group());
    ok(&w.ssb(RMS, &["CreateKey", "--group", &g]));
    let secret = w.write("sql.txt", "Sup3r-secret SQL password\n");
    ok(&w.ms(
        &["RunAs", "add", "SQL Action Account"],
        RMS,
        &["--account", "CONTOSO\\svc-sql", "--secret-file", &secret],
    ));
    w.copy_key(RMS, MGT01);
    let mgt01 = w.machine(MGT01);
    let plan = opsmgr_tools::jobs::plan_promotion(
        &opsmgr_tools::jobs::Promote {
            group: &w.group(),
            machine: &mgt01,
            host: None,
            delete_existing_rms: true,
            reporting: None,
            webconsole: None,
        },
        std::time::SystemTime::now(),
    )
    .unwrap();
    let inventory = std::fs::read(w.group().join("inventory.json")).unwrap();
    ok(&w.ms(&["RunAs", "rotate"], RMS, &[]));
    let e = opsmgr_tools::jobs::promote(
        plan,
        std::time::SystemTime::now(),
        &mut opsmgr_securestorage::random::OsRandom,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("MGT01.prod.local no longer holds the management group's encryption key as its current one"),
        "{e:#}"
    );
    assert_eq!(
        std::fs::read(w.group().join("inventory.json")).unwrap(),
        inventory
    );
}

/// Without a record, secrets prove a key only when they were sealed with the store's current
/// key: a store whose current key is newer than the one that sealed them is not recorded.
#[test]
fn secrets_under_an_older_key_prove_nothing_about_the_current_one() {
    let w = World::new();
    ok(&w.ssb(RMS, &["CreateKey"]));
    let store = KeyStore::load(&keystore_path(&w.machine(RMS))).unwrap();
    let mut group = Group::load(&w.group()).unwrap();
    group
        .add_secret(
            &store,
            "SQL Action Account",
            b"s3cret",
            &mut opsmgr_securestorage::random::OsRandom,
        )
        .unwrap();
    // A rotation that stopped after the store was saved: a new current key, the secret still
    // under the old one, no record.
    let mut rotated = store;
    rotated
        .rotate(
            std::time::SystemTime::now(),
            &mut opsmgr_securestorage::random::OsRandom,
        )
        .unwrap();
    rotated.save(&keystore_path(&w.machine(RMS))).unwrap();
    let verdict = Group::load(&w.group())
        .unwrap()
        .key_verdict(&rotated)
        .unwrap();
    assert_eq!(verdict.under_older_key, 1);
    assert_eq!(verdict.holds(), Some(false), "{}", verdict.reason());
    assert!(
        verdict
            .reason()
            .contains("were sealed with an older key than its current one"),
        "{}",
        verdict.reason()
    );
}

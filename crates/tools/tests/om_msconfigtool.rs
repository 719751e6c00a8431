//! ManagementServerConfigTool on a management group folder: every refusal of PromoteRMS and
//! NewKey named in the issue, the confirmation, the dry run, and a promotion that rewrites both
//! configs, keeps the previous state and names the agents to move.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use opsmgr_model::HostName;
use opsmgr_model::inventory::{Agent, Inventory, Server, ServerRole};
use opsmgr_securestorage::keystore::{KeyStore, keystore_path};
use opsmgr_securestorage::random::OsRandom;
use opsmgr_tools::group::Group;

mod common;
use common::text;

fn h(s: &str) -> HostName {
    HostName::new(s).unwrap()
}

/// Runs om-msconfigtool with `args`, feeding `stdin`.
fn tool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_om-msconfigtool"))
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A tool that refuses before its question never reads the answer: the pipe may close
    // before the answer is written, and that is no failure of the test.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    child.wait_with_output().unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// The seed's production: an RMS agents cannot reach, three management servers, a
    /// gateway, agents on MGT01; two Run As secrets sealed with the RMS's key.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inventory = Inventory {
            management_group: "PROD".into(),
            servers: vec![
                Server {
                    agent_reachable: false,
                    ..Server::new(h("RMS.prod.local"), ServerRole::Rms)
                },
                Server::new(h("MGT01.prod.local"), ServerRole::Management),
                Server::new(h("MGT02.prod.local"), ServerRole::Management),
                Server::new(h("GW01.prod.local"), ServerRole::Gateway),
            ],
            agents: (0..4)
                .map(|i| Agent {
                    name: h(&format!("agent{i}.prod.local")),
                    primary: Some(h("MGT01.prod.local")),
                    failover: vec![h("MGT02.prod.local")],
                })
                .collect(),
        };
        let s = Self { dir };
        let mut group = Group::create(&s.group(), inventory).unwrap();
        let store = KeyStore::generate(std::time::SystemTime::now(), &mut OsRandom).unwrap();
        store
            .save(&keystore_path(&s.machine("RMS.prod.local")))
            .unwrap();
        for (name, secret) in [
            ("SQL Action Account", "s3cret-1"),
            ("Data Warehouse Write", "s3cret-2"),
        ] {
            group
                .add_secret(&store, name, secret.as_bytes(), &mut OsRandom)
                .unwrap();
        }
        s
    }
    fn group(&self) -> PathBuf {
        self.dir.path().join("group")
    }
    fn machine(&self, host: &str) -> PathBuf {
        self.dir.path().join("machines").join(host)
    }
    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }
    fn promote(&self, host: &str, extra: &[&str], stdin: &str) -> Output {
        let (g, m) = (Self::s(&self.group()), Self::s(&self.machine(host)));
        let mut args = vec!["PromoteRMS", "--group", &g, "--machine", &m];
        args.extend_from_slice(extra);
        tool(&args, stdin)
    }
    fn give_key_of(&self, from: &str, to: &str) {
        let store = KeyStore::load(&keystore_path(&self.machine(from))).unwrap();
        store.save(&keystore_path(&self.machine(to))).unwrap();
    }
    fn inventory(&self) -> String {
        std::fs::read_to_string(self.group().join("inventory.json")).unwrap()
    }
}

fn refused(out: &Output, why: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
}

#[test]
fn promote_rms_refuses_until_everything_is_in_place() {
    let s = Setup::new();
    let before = s.inventory();
    // No key store at all on MGT01.
    refused(
        &s.promote(
            "MGT01.prod.local",
            &["/DeleteExistingRMS:true", "--yes"],
            "",
        ),
        "MGT01.prod.local has no key store",
    );
    // A key store of its own, not the group's: the check that would have saved the seed's operator.
    KeyStore::generate(std::time::SystemTime::now(), &mut OsRandom)
        .unwrap()
        .save(&keystore_path(&s.machine("MGT01.prod.local")))
        .unwrap();
    refused(
        &s.promote(
            "MGT01.prod.local",
            &["/DeleteExistingRMS:true", "--yes"],
            "",
        ),
        "MGT01.prod.local does not hold the management group's encryption key (the group has no key check record; it cannot open 2 of 2 Run As secret(s) (SQL Action Account, Data Warehouse Write))",
    );
    s.give_key_of("RMS.prod.local", "MGT01.prod.local");
    // The group has an RMS: the switch is required.
    refused(
        &s.promote("MGT01.prod.local", &["--yes"], ""),
        "give /DeleteExistingRMS:true",
    );
    refused(
        &s.promote(
            "MGT01.prod.local",
            &["/DeleteExistingRMS:false", "--yes"],
            "",
        ),
        "give /DeleteExistingRMS:true",
    );
    // Not a management server of this group.
    s.give_key_of("RMS.prod.local", "GW01.prod.local");
    refused(
        &s.promote("GW01.prod.local", &["/DeleteExistingRMS:true", "--yes"], ""),
        "GW01.prod.local is a gateway server",
    );
    s.give_key_of("RMS.prod.local", "stranger.prod.local");
    refused(
        &s.promote(
            "stranger.prod.local",
            &["/DeleteExistingRMS:true", "--yes"],
            "",
        ),
        "stranger.prod.local is not a server of management group PROD",
    );
    // Not confirmed: nothing changes.
    let no = s.promote("MGT01.prod.local", &["/DeleteExistingRMS:true"], "n\n");
    assert_eq!(no.status.code(), Some(1));
    assert!(
        text(&no.stdout).starts_with(
            "Running this tool can cause irreversible damage to\nyour Operations Database.\nType Y"
        ),
        "{}",
        text(&no.stdout)
    );
    // A dry run: nothing changes.
    let dry = s.promote(
        "MGT01.prod.local",
        &["/DeleteExistingRMS:true", "--dry-run"],
        "",
    );
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains(
        "Would promote MGT01.prod.local to RMS; RMS.prod.local would become a management server."
    ));
    assert_eq!(s.inventory(), before);
    assert!(!s.group().join("history").exists());
    // A config that cannot be edited (missing; naming another RMS) refuses the promotion
    // before the question and before anything changes, the dry run too.
    let dir = s.dir.path();
    let missing = Setup::s(&dir.join("missing.config"));
    let elsewhere = dir.join("Web.config");
    std::fs::write(
        &elsewhere,
        "<configuration><appSettings><add key=\"MOMServer\" value=\"OTHER.prod.local\"/></appSettings></configuration>",
    )
    .unwrap();
    let elsewhere = Setup::s(&elsewhere);
    for extra in [
        ["--reporting", missing.as_str(), "--dry-run"],
        ["--reporting", missing.as_str(), "--yes"],
        ["--webconsole", elsewhere.as_str(), "--yes"],
    ] {
        let mut args = vec!["/DeleteExistingRMS:true"];
        args.extend(extra);
        let out = s.promote("MGT01.prod.local", &args, "y\n");
        refused(&out, "nothing was changed");
        assert!(
            !text(&out.stdout).contains("Type Y"),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(s.inventory(), before, "{extra:?}");
        assert!(!s.group().join("history").exists(), "{extra:?}");
    }
}

#[test]
fn promote_rms_swaps_roles_rewrites_configs_and_keeps_the_previous_state() {
    let s = Setup::new();
    let before = s.inventory();
    s.give_key_of("RMS.prod.local", "MGT01.prod.local");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configfix/tests/data");
    let reporting = s.dir.path().join("rsreportserver.config");
    let web = s.dir.path().join("Web.config");
    std::fs::copy(data.join("rsreportserver.config"), &reporting).unwrap();
    std::fs::copy(data.join("web.config"), &web).unwrap();
    let out = s.promote(
        "MGT01.prod.local",
        &[
            "/deleteexistingrms:TRUE",
            "--reporting",
            &Setup::s(&reporting),
            "--webconsole",
            &Setup::s(&web),
        ],
        "Y\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("MGT01.prod.local is now the Root Management Server.\nRMS.prod.local is now a management server.\n"), "{stdout}");
    assert!(
        stdout.contains("rsreportserver.config: 2 value(s) now name MGT01.prod.local."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Web.config: 1 value(s) now name MGT01.prod.local."),
        "{stdout}"
    );
    assert!(
        stdout.contains("4 agent assignment(s) name a server agents cannot use now"),
        "{stdout}"
    );
    let inventory = s.group().join("inventory.json").display().to_string();
    assert!(
        stdout.contains(&format!("Move them in the live management group: om-balance plan {inventory} --format ps2007 > balance.ps1 (--format ps2012 on 2012 and later), then in the Command Shell .\\balance.ps1 -WhatIf and .\\balance.ps1\nThen record the move in the inventory: om-balance apply {inventory} -o {inventory}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "Restart the Health Service on RMS.prod.local: net stop HealthService && net start HealthService"
        ),
        "{stdout}"
    );

    let group = Group::load(&s.group()).unwrap();
    let role = |n: &str| {
        group
            .inventory
            .servers
            .iter()
            .find(|x| x.name == h(n))
            .unwrap()
            .role
    };
    assert_eq!(
        (role("MGT01.prod.local"), role("RMS.prod.local")),
        (ServerRole::Rms, ServerRole::Management)
    );
    // The previous state is kept, byte for byte.
    let history: Vec<PathBuf> = std::fs::read_dir(s.group().join("history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(history.len(), 1);
    assert_eq!(
        std::fs::read_to_string(history[0].join("inventory.json")).unwrap(),
        before
    );
    // The configs name the new RMS and differ only there; the originals are kept.
    assert_eq!(
        std::fs::read_to_string(&reporting).unwrap(),
        std::fs::read_to_string(data.join("rsreportserver.config"))
            .unwrap()
            .replace(
                "<ServerName>RMS.prod.local<",
                "<ServerName>MGT01.prod.local<"
            )
    );
    assert!(
        std::fs::read_to_string(&web)
            .unwrap()
            .contains("value='MGT01.prod.local'")
    );
    assert!(s.dir.path().join("Web.config.bak").exists());
    // The secrets still open on the new RMS.
    let store = KeyStore::load(&keystore_path(&s.machine("MGT01.prod.local"))).unwrap();
    assert_eq!(
        &*group.open_secret(&store, "SQL Action Account").unwrap(),
        b"s3cret-1"
    );
}

#[test]
fn new_key_lists_the_secrets_to_enter_again_and_deletes_nothing() {
    let s = Setup::new();
    let runas_before = std::fs::read_to_string(s.group().join("runas.json")).unwrap();
    let (g, m) = (
        Setup::s(&s.group()),
        Setup::s(&s.machine("MGT02.prod.local")),
    );
    // A mistyped machine folder is refused, never made.
    refused(
        &tool(&["NewKey", "--group", &g, "--machine", &m], ""),
        "is not a machine folder (it does not exist); nothing was changed",
    );
    assert!(!s.machine("MGT02.prod.local").exists());
    // The group has a key (its secrets) that MGT02 does not hold: only --force replaces it.
    std::fs::create_dir_all(s.machine("MGT02.prod.local")).unwrap();
    refused(
        &tool(&["NewKey", "--group", &g, "--machine", &m], ""),
        "management group PROD has a key (its Run As secrets), and MGT02.prod.local has no key store: NewKey would replace the group's key and make every backup of it stale. If the key is truly lost (no backup anywhere), --force makes a new one",
    );
    assert!(!keystore_path(&s.machine("MGT02.prod.local")).exists());
    let out = tool(
        &[
            "NewKey",
            "--group",
            &g,
            "--machine",
            &m,
            "--json",
            "--force",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["reenter"],
        serde_json::json!(["SQL Action Account", "Data Warehouse Write"])
    );
    assert_eq!(
        std::fs::read_to_string(s.group().join("runas.json")).unwrap(),
        runas_before
    );
    assert!(keystore_path(&s.machine("MGT02.prod.local")).exists());
    // On the machine that holds the key the secrets were sealed with, NewKey is refused.
    let rms = Setup::s(&s.machine("RMS.prod.local"));
    let again = tool(&["newkey", "--group", &g, "--machine", &rms], "");
    refused(
        &again,
        "RMS.prod.local opens every Run As secret (2): it holds the key they were sealed with, so a new key is not needed",
    );
    // MGT02's new key is the group's now: NewKey there again is refused by the record alone.
    let twice = tool(&["NewKey", "--group", &g, "--machine", &m], "");
    refused(
        &twice,
        "MGT02.prod.local holds the group's key already (its current key is the one the key check record names",
    );
    // Not a server of the group.
    let other = Setup::s(&s.machine("elsewhere.prod.local"));
    refused(
        &tool(&["NewKey", "--group", &g, "--machine", &other], ""),
        "is not a server of management group PROD",
    );
}

#[test]
fn runbooks_print_numbered_steps_with_the_exact_commands() {
    let out = tool(&["Runbook", "restore-clustered-rms"], "");
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(
        t.contains("7. In SQL Server Management Studio, check that Service Broker is enabled"),
        "{t}"
    );
    assert!(
        t.contains(
            "       SELECT is_broker_enabled FROM sys.databases WHERE name='OperationsManager'\n"
        ),
        "{t}"
    );
    assert!(
        t.contains("   Ours: om-securestoragebackup --machine NODE Restore FILE"),
        "{t}"
    );
    let list = text(&tool(&["runbook"], "").stdout);
    assert!(list.contains("restore-clustered-rms") && list.contains("promote-pre-sp1"));
    let unknown = tool(&["Runbook", "nope"], "");
    refused(
        &unknown,
        "no runbook 'nope': restore-clustered-rms, promote-pre-sp1",
    );
}

#[test]
fn run_as_secrets_swapped_between_accounts_do_not_open() {
    let s = Setup::new();
    let store = KeyStore::load(&keystore_path(&s.machine("RMS.prod.local"))).unwrap();
    let mut group = Group::load(&s.group()).unwrap();
    assert!(group.unopenable(&store).is_empty());
    assert_eq!(
        group
            .open_secret(&store, "SQL Action Account")
            .unwrap()
            .as_slice(),
        b"s3cret-1"
    );
    // Someone with write access to runas.json swaps the two blobs.
    let (a, b) = (
        group.runas.secrets[0].sealed.clone(),
        group.runas.secrets[1].sealed.clone(),
    );
    group.runas.secrets[0].sealed = b;
    group.runas.secrets[1].sealed = a;
    group.save_runas().unwrap();
    let group = Group::load(&s.group()).unwrap();
    assert_eq!(
        group.unopenable(&store),
        ["SQL Action Account", "Data Warehouse Write"]
    );
    assert!(group.open_secret(&store, "SQL Action Account").is_err());

    // Unswapped, but read as another management group's: they do not open either.
    let s = Setup::new();
    let store = KeyStore::load(&keystore_path(&s.machine("RMS.prod.local"))).unwrap();
    let mut group = Group::load(&s.group()).unwrap();
    assert!(group.unopenable(&store).is_empty());
    group.inventory.management_group = "TEST".into();
    assert_eq!(group.unopenable(&store).len(), 2);

    // A secret sealed before secrets were bound to their account still opens.
    group.inventory.management_group = "PROD".into();
    let old = store.seal(b"sealed by 1.0", &mut OsRandom).unwrap();
    group.runas.secrets[0].sealed = old.iter().map(|b| format!("{b:02x}")).collect();
    assert!(group.unopenable(&store).is_empty());
    assert_eq!(
        group
            .open_secret(&store, "SQL Action Account")
            .unwrap()
            .as_slice(),
        b"sealed by 1.0"
    );
}

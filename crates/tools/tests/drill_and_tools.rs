//! One code path per job: the drill and the tools, given the same group, leave the same
//! files. The drill runs in one folder; in another, the same story is told by running each
//! tool's command line (the world around the tools, the group set up and the bulk install, is
//! the drill's `Scenario` in both). Keys, certificates and time stamps differ from run to run;
//! the set of files (random and dated parts of names masked), their modes, and every file
//! whose content is not random must be the same.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ok, text};
use opsmgr_ca::agent::read_bundle;
use opsmgr_ca::cert::CertInfo;
use opsmgr_drill::{BACKUP_PASSWORD, NEW_RMS, RMS, Scenario};

const AGENTS: usize = 2;

fn tool(name: &str) -> &'static str {
    match name {
        "ca" => env!("CARGO_BIN_EXE_om-ca"),
        "certreq" => env!("CARGO_BIN_EXE_om-certreq"),
        "certutil" => env!("CARGO_BIN_EXE_om-certutil"),
        "balance" => env!("CARGO_BIN_EXE_om-balance"),
        "securestoragebackup" => env!("CARGO_BIN_EXE_om-securestoragebackup"),
        "msconfigtool" => env!("CARGO_BIN_EXE_om-msconfigtool"),
        other => panic!("no tool named {other}"),
    }
}

/// Runs a tool that must succeed, the backup password in its environment.
fn run(name: &str, args: &[&Path]) -> String {
    let out = Command::new(tool(name))
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .env("DRILL_BACKUP_PASSWORD", BACKUP_PASSWORD)
        .output()
        .unwrap();
    ok(&out)
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// The drill's story, told with the tools' command lines in `dir`.
fn with_the_tools(dir: &Path, allow: &Path) {
    let w = Scenario::new(dir, AGENTS).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    w.build_group().unwrap();
    // The CA's operator allows the group's machines (`--inventory`), outside the tree.
    w.inventory_with_agents().unwrap().save(allow).unwrap();

    // Phase 2: each machine requests, the CA processes the share, the operator approves the
    // held servers, the CA writes their files, each machine installs its bundle.
    let (ca, share) = (w.ca_dir(), w.share());
    run("ca", &[p("init"), &ca]);
    std::fs::create_dir_all(&share).unwrap();
    for h in w.hosts() {
        let machine = w.machine(&h);
        std::fs::create_dir_all(&machine).unwrap();
        let inf = machine.join("certreq.inf");
        std::fs::write(&inf, Scenario::certreq_inf(&h)).unwrap();
        let req = share.join(format!("{h}.req"));
        run(
            "certreq",
            &[
                p("-new"),
                p("-q"),
                p("-f"),
                &inf,
                &req,
                p("--machine"),
                &machine,
            ],
        );
    }
    let process = [
        p("process"),
        p("--share"),
        &share,
        p("--ca"),
        &ca,
        p("--issue"),
        p("--inventory"),
        allow,
        p("--settle"),
        p("0s"),
        p("--json"),
    ];
    let out = Command::new(tool("ca")).args(process).output().unwrap();
    let first: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    let held: Vec<String> = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["result"] == "pending")
        .map(|f| f["id"].as_i64().unwrap().to_string())
        .collect();
    assert_eq!(held.len(), w.servers().len(), "{first}");
    for id in &held {
        run(
            "certutil",
            &[p("-config"), &ca, p("-resubmit"), Path::new(id)],
        );
    }
    run("ca", &process);
    let root = opsmgr_ca::authority::Authority::open(&ca, None)
        .unwrap()
        .issuer()
        .root()
        .thumbprint
        .clone();
    for h in w.hosts() {
        let bundle = share.join(format!("{h}.bundle"));
        let machine = w.machine(&h);
        run(
            "certreq",
            &[
                p("-install"),
                &bundle,
                p("--trust-root"),
                p(&root),
                p("--machine"),
                &machine,
            ],
        );
    }

    // Phase 3: the bulk install, balanced.
    w.bulk_install().unwrap();
    let inventory = w.group_dir().join("inventory.json");
    run("balance", &[p("apply"), &inventory, p("-o"), &inventory]);

    // Phase 4: back up on the RMS, lose it, restore on MGT01, promote, balance.
    let backup = w.backup_file();
    run(
        "securestoragebackup",
        &[
            p("--machine"),
            &w.machine(RMS),
            p("Backup"),
            &backup,
            p("--password-env"),
            p("DRILL_BACKUP_PASSWORD"),
        ],
    );
    std::fs::remove_dir_all(w.machine(RMS)).unwrap();
    let mgt01 = w.machine(NEW_RMS);
    run(
        "securestoragebackup",
        &[
            p("--machine"),
            &mgt01,
            p("Restore"),
            &backup,
            p("--password-env"),
            p("DRILL_BACKUP_PASSWORD"),
        ],
    );
    run(
        "msconfigtool",
        &[
            p("PromoteRMS"),
            p("/DeleteExistingRMS:true"),
            p("--group"),
            &w.group_dir(),
            p("--machine"),
            &mgt01,
            p("--reporting"),
            &w.reporting(),
            p("--webconsole"),
            &w.webconsole(),
            p("--yes"),
        ],
    );
    run("balance", &[p("apply"), &inventory, p("-o"), &inventory]);
}

/// A file's name with what is random or dated in it masked: runs of 8 or more hex digits
/// (thumbprints, key ids, serials) and of digits (time stamps, counters).
fn mask(name: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 8 || (!run.is_empty() && run.chars().all(|c| c.is_ascii_digit())) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in name.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Every file below `dir`: its masked relative path, its mode, and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<(u32, PathBuf)>> {
    use std::os::unix::fs::PermissionsExt;
    let mut all: BTreeMap<String, Vec<(u32, PathBuf)>> = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir).unwrap().to_str().unwrap();
            let masked = rel.split('/').map(mask).collect::<Vec<_>>().join("/");
            all.entry(masked)
                .or_default()
                .push((meta.permissions().mode() & 0o777, path));
        }
    }
    // Files whose masked names collide (one per machine) pair up by their real names.
    for group in all.values_mut() {
        group.sort_by(|x, y| x.1.cmp(&y.1));
    }
    all
}

/// What a certificate says that does not change from run to run: subject, issuer, names,
/// purposes, whether it is a CA, and how long it is valid.
fn facts(der: &[u8]) -> String {
    let c = CertInfo::parse(der).unwrap();
    let days = c
        .not_after
        .duration_since(c.not_before)
        .unwrap()
        .as_secs()
        .div_ceil(86_400);
    format!(
        "{} / {} / {:?} / {:?} / ca {} / {days} days",
        c.subject, c.issuer, c.dns_names, c.ekus, c.is_ca
    )
}

/// The facts of every certificate below `dir` (in `.cer` files and bundles), sorted.
fn certificates(dir: &Path, files: &BTreeMap<String, Vec<(u32, PathBuf)>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, paths) in files {
        for (_, path) in paths {
            let bytes = std::fs::read(path).unwrap();
            if name.ends_with(".bundle") {
                let b = read_bundle(&bytes).unwrap();
                out.push(format!("bundle leaf {}", facts(&b.leaf.der)));
                out.push(format!("bundle root {}", facts(&b.root.der)));
            } else if name.ends_with(".cer") {
                out.push(format!("{name}: {}", facts(&bytes)));
            }
        }
    }
    assert!(!out.is_empty(), "no certificates below {}", dir.display());
    out.sort();
    out
}

/// Each machine's recorded channel certificate is one of its own, with its key, for its name.
fn channels_are_recorded(w: &Scenario) {
    for h in w.hosts() {
        let (cert, _key) = opsmgr_ca::agent::channel_identity(&w.machine(&h))
            .unwrap()
            .expect("a channel certificate");
        assert!(cert.names_host(&h), "{h}: {}", cert.subject);
    }
}

#[test]
fn the_drill_and_the_tools_leave_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (drill, tools) = (tmp.path().join("drill"), tmp.path().join("tools"));

    let report = opsmgr_drill::run_drill(&drill, AGENTS, &mut |_| {}).unwrap();
    assert!(report.checks.iter().all(|c| c.passed), "{report:?}");
    // The drill's verification enrolls an intruder with another root, to be refused: the
    // world around the tools, which the tools' story has no part of.
    std::fs::remove_dir_all(drill.join("intruder")).unwrap();

    let w = Scenario::new(&drill, AGENTS).unwrap();
    let allow_path = tmp.path().join("allow.json");
    with_the_tools(&tools, &allow_path);

    let (a, b) = (files(&drill), files(&tools));
    let names = |m: &BTreeMap<String, Vec<(u32, PathBuf)>>| -> Vec<(String, usize)> {
        m.iter().map(|(k, v)| (k.clone(), v.len())).collect()
    };
    assert_eq!(names(&a), names(&b), "the same files, by masked name");
    for (name, drilled) in &a {
        let tooled = &b[name];
        let modes = |v: &Vec<(u32, PathBuf)>| -> Vec<u32> {
            let mut m: Vec<u32> = v.iter().map(|(mode, _)| *mode).collect();
            m.sort_unstable();
            m
        };
        assert_eq!(modes(drilled), modes(tooled), "{name}: modes");
    }
    // What is not random is the same byte for byte: the balanced, promoted inventory, both
    // configs and their originals, each machine's request policy.
    let mut compared = 0;
    for name in a.keys().filter(|n| {
        n.ends_with("inventory.json")
            || n.starts_with("reporting/")
            || n.starts_with("webconsole/")
            || n.ends_with("certreq.inf")
    }) {
        for ((_, x), (_, y)) in a[name].iter().zip(&b[name]) {
            assert_eq!(
                std::fs::read(x).unwrap(),
                std::fs::read(y).unwrap(),
                "{name} differs"
            );
            compared += 1;
        }
    }
    // inventory + its history copies, two configs + two originals, a policy per machine.
    assert!(compared >= 1 + 4 + w.hosts().len(), "{compared} compared");
    // The certificates say the same things (the CA's defaults and policy are the tools'),
    // and every machine's channel setting names its own certificate in both trees.
    assert_eq!(certificates(&drill, &a), certificates(&tools, &b));
    channels_are_recorded(&w);
    channels_are_recorded(&Scenario::new(&tools, AGENTS).unwrap());
}

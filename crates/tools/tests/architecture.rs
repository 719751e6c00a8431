//! The house's shape, held: within every crate of the workspace, the top-level modules import
//! each other without a circle (a module that needs another's type sits above it, never
//! beside it in a loop), and the four libraries never depend on each other.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 8] = [
    "ca",
    "configfix",
    "drill",
    "fsutil",
    "hostname",
    "model",
    "securestorage",
    "tools",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Each top-level module of the crate at `src` and the top-level modules it names through
/// `crate::`, outside comments and test modules. Binaries are not modules of the library.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let top = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(src).unwrap();
        let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
        if first == "bin" {
            return None;
        }
        Some(first.trim_end_matches(".rs").to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| top(p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &files {
        let Some(m) = top(p) else { continue };
        let text = std::fs::read_to_string(p).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let out = edges.entry(m.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != m && modules.contains(&name) {
                    out.insert(name);
                }
            }
        }
    }
    edges
}

/// The circles of `edges`: its strongly connected components of more than one module.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (m, r) in &reached {
        let circle: BTreeSet<String> = r
            .iter()
            .filter(|n| reached.get(n).is_some_and(|back| back.contains(*m)))
            .cloned()
            .collect();
        if circle.len() > 1 && !out.contains(&circle) {
            out.push(circle);
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_circle() {
    let root = workspace();
    for name in CRATES {
        let src = root.join("crates").join(name).join("src");
        let edges = graph(&src);
        assert!(
            edges.len() >= 2 || name == "hostname",
            "{name}: no modules found"
        );
        assert_eq!(
            circles(&edges),
            Vec::<BTreeSet<String>>::new(),
            "{name}: {edges:#?}"
        );
    }
    // The check finds a circle where there is one.
    let mut planted = BTreeMap::new();
    planted.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    planted.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    planted.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    planted.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        circles(&planted),
        [BTreeSet::from([
            "a".to_owned(),
            "b".to_owned(),
            "c".to_owned()
        ])]
    );
}

#[test]
fn the_four_libraries_never_depend_on_each_other() {
    let root = workspace();
    let libraries = ["ca", "configfix", "model", "securestorage"];
    let packages = [
        "opsmgr-ca",
        "opsmgr-configfix",
        "opsmgr-model",
        "opsmgr-securestorage",
    ];
    for lib in libraries {
        let manifest =
            std::fs::read_to_string(root.join("crates").join(lib).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap()
            .split("\n[")
            .next()
            .unwrap();
        for other in packages {
            assert!(
                !dependencies
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{other}."))
                        || l.trim_start().starts_with(&format!("{other} "))),
                "{lib} depends on {other}"
            );
        }
    }
}

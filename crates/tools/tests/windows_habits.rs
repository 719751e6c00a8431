//! Habits of Windows administrators every tool honours: `-?` and `/?` print the help (exit 0),
//! and MOMCertImport's `/SubjectName:FQDN` form works like `/SubjectName FQDN`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

mod common;
use common::text;

const TOOLS: [&str; 9] = [
    env!("CARGO_BIN_EXE_om-balance"),
    env!("CARGO_BIN_EXE_om-ca"),
    env!("CARGO_BIN_EXE_om-certreq"),
    env!("CARGO_BIN_EXE_om-certutil"),
    env!("CARGO_BIN_EXE_om-configfix"),
    env!("CARGO_BIN_EXE_om-drill"),
    env!("CARGO_BIN_EXE_om-momcertimport"),
    env!("CARGO_BIN_EXE_om-msconfigtool"),
    env!("CARGO_BIN_EXE_om-securestoragebackup"),
];

#[test]
fn question_mark_prints_help_in_every_tool() {
    for tool in TOOLS {
        for ask in ["-?", "/?"] {
            let out = common::run(tool, &[ask]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{tool} {ask}: {}",
                text(&out.stderr)
            );
            let help = text(&out.stdout);
            assert!(help.contains("Usage:"), "{tool} {ask}: {help}");
        }
    }
}

#[test]
fn subject_name_with_a_colon_is_the_same_switch() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_om-momcertimport");
    for form in [
        vec!["/SubjectName:agent01.company.local"],
        vec!["/SUBJECTNAME", "agent01.company.local"],
        vec!["-subjectname:agent01.company.local"],
    ] {
        let mut args = form.clone();
        args.extend(["--machine", machine]);
        let out = common::run(bin, &args);
        // An empty machine: the selection runs for that name and finds nothing.
        assert_eq!(
            out.status.code(),
            Some(1),
            "{form:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(
                "no certificate in My can be the channel certificate of agent01.company.local"
            ),
            "{form:?}: {}",
            text(&out.stderr)
        );
    }
}

//! Habits of Windows administrators every tool honours: `-?` and `/?` print the help (exit 0),
//! and MOMCertImport's `/SubjectName:FQDN` form works like `/SubjectName FQDN`.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

mod common;
use common::text;

/// Every tool of this package (om-drill, in its own crate, checks the same habits).
const TOOLS: [&str; 8] = [
    env!("CARGO_BIN_EXE_om-balance"),
    env!("CARGO_BIN_EXE_om-ca"),
    env!("CARGO_BIN_EXE_om-certreq"),
    env!("CARGO_BIN_EXE_om-certutil"),
    env!("CARGO_BIN_EXE_om-configfix"),
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

/// The seed's lines as the blog prints them: en and em dashes (a word processor's) for
/// switches, in every tool.
#[test]
fn the_seeds_lines_with_typographic_dashes_work_in_every_tool() {
    for tool in TOOLS {
        for dash in ["\u{2013}", "\u{2014}"] {
            let out = common::run(tool, &[&format!("{dash}{dash}help")]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{tool} {dash}: {}",
                text(&out.stderr)
            );
            assert!(text(&out.stdout).contains("Usage:"), "{tool}");
        }
    }
    // certreq –new –q –f, verbatim.
    let dir = tempfile::tempdir().unwrap();
    let inf = dir.path().join("certreq.inf");
    std::fs::write(
        &inf,
        "[NewRequest]\r\nSubject = \"CN=agent01.company.local\"\r\nMachineKeySet = TRUE\r\n",
    )
    .unwrap();
    let req = dir.path().join("agent01.company.local.req");
    let out = common::run(
        env!("CARGO_BIN_EXE_om-certreq"),
        &[
            "\u{2013}new",
            "\u{2013}q",
            "\u{2013}f",
            inf.to_str().unwrap(),
            req.to_str().unwrap(),
            "--machine",
            dir.path().join("m").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(req.is_file());
}

/// A Windows path copied from a runbook is refused with the reason, never taken as a file
/// name in the current folder.
#[test]
fn windows_paths_are_refused_not_made_into_file_names() {
    let dir = tempfile::tempdir().unwrap();
    // Each with the path to give instead, named after the file it meant.
    for (tool, args, instead) in [
        (
            env!("CARGO_BIN_EXE_om-securestoragebackup"),
            vec!["Backup", "c:\\backups\\BackupKey.bin"],
            "such as ./BackupKey.bin or /srv/BackupKey.bin",
        ),
        (
            env!("CARGO_BIN_EXE_om-certutil"),
            vec!["-addstore", "root", "\\\\ca01\\share\\JAMA00.cer"],
            "such as ./JAMA00.cer or /srv/JAMA00.cer",
        ),
        (
            env!("CARGO_BIN_EXE_om-configfix"),
            vec![
                "webconsole",
                "C:/inetpub/Web.config",
                "--rms",
                "MGT01.prod.local",
            ],
            "such as ./Web.config or /srv/Web.config",
        ),
    ] {
        let out = std::process::Command::new(tool)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{tool}");
        assert!(
            text(&out.stderr)
                .contains("is a Windows path, which this machine would take as a file name"),
            "{tool}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(instead),
            "{tool}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{tool} wrote a file"
        );
    }
}

/// certutil and certreq have a default CA; so do ours: $OPSMGR_CA, so that the seed's
/// `certutil -resubmit 2` works as printed.
#[test]
fn a_default_ca_lets_the_seeds_resubmit_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ok = |out: std::process::Output| {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(common::run(
        env!("CARGO_BIN_EXE_om-ca"),
        &["init", ca.to_str().unwrap()],
    ));
    let inf = dir.path().join("a.inf");
    std::fs::write(
        &inf,
        "[NewRequest]\nSubject = \"CN=agent02.company.local\"\nMachineKeySet = TRUE\n",
    )
    .unwrap();
    let req = dir.path().join("agent02.company.local.req");
    ok(common::run(
        env!("CARGO_BIN_EXE_om-certreq"),
        &[
            "-new",
            inf.to_str().unwrap(),
            req.to_str().unwrap(),
            "--machine",
            dir.path().join("m").to_str().unwrap(),
        ],
    ));
    let with_env = |tool: &str, args: &[&str]| {
        std::process::Command::new(tool)
            .args(args)
            .env("OPSMGR_CA", &ca)
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let submitted = ok(with_env(
        env!("CARGO_BIN_EXE_om-certreq"),
        &["-submit", "-q", req.to_str().unwrap()],
    ));
    assert!(submitted.starts_with("RequestId: 1"), "{submitted}");
    let issued = ok(with_env(
        env!("CARGO_BIN_EXE_om-certutil"),
        &["-resubmit", "1"],
    ));
    assert!(issued.starts_with("Certificate issued."), "{issued}");
    // om-ca's commands take the same default: the agent-kit line as written.
    let kit = dir.path().join("kit");
    let made = ok(with_env(
        env!("CARGO_BIN_EXE_om-ca"),
        &[
            "agent-kit",
            "--share",
            "\\\\ca01\\certrequests",
            kit.to_str().unwrap(),
        ],
    ));
    assert!(made.contains("request.ps1"), "{made}");
    assert!(kit.join("certreq.inf").is_file());
    let expiring = ok(with_env(
        env!("CARGO_BIN_EXE_om-ca"),
        &["expiring", "--within", "400d"],
    ));
    assert!(expiring.contains("agent02.company.local"), "{expiring}");
    // Without it (and without ~/.config/opsmgr/ca) the error names all three ways.
    let none = std::process::Command::new(env!("CARGO_BIN_EXE_om-certutil"))
        .args(["-resubmit", "1"])
        .env_remove("OPSMGR_CA")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(text(&none.stderr).contains("name the CA's folder (-config CA; om-ca: --ca CA), or set $OPSMGR_CA, or write the folder in ~/.config/opsmgr/ca"));
    // The config file works as well.
    std::fs::create_dir_all(dir.path().join(".config/opsmgr")).unwrap();
    std::fs::write(
        dir.path().join(".config/opsmgr/ca"),
        format!("{}\n", ca.display()),
    )
    .unwrap();
    let viewed = std::process::Command::new(env!("CARGO_BIN_EXE_om-certutil"))
        .args(["-view"])
        .env_remove("OPSMGR_CA")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(
        text(&viewed.stdout).contains("agent02.company.local"),
        "{}",
        text(&viewed.stderr)
    );
}

/// The seed insists on the new RMS's fully qualified domain name in the configs.
#[test]
fn configfix_refuses_a_short_rms_name_with_the_seeds_reason() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("Web.config");
    std::fs::write(&web, "<configuration><appSettings><add key=\"MOMServer\" value=\"Hydra.Odyssey.com\"/></appSettings></configuration>").unwrap();
    let out = common::run(
        env!("CARGO_BIN_EXE_om-configfix"),
        &["webconsole", web.to_str().unwrap(), "--rms", "Hydra"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'Hydra' is a short name: the seed's procedure names the new RMS by its fully qualified domain name"), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&web)
            .unwrap()
            .contains("Hydra.Odyssey.com")
    );
}

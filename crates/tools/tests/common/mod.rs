//! What the CLI tests share: running a tool and reading its output.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the tool at `bin` with `args`, without standard input.
pub(crate) fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .output()
        .expect("the tool runs")
}

/// Output bytes as text, lossily.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The certificate tools by their short names.
pub(crate) fn bin(name: &str) -> &'static str {
    match name {
        "ca" => env!("CARGO_BIN_EXE_om-ca"),
        "certreq" => env!("CARGO_BIN_EXE_om-certreq"),
        "certutil" => env!("CARGO_BIN_EXE_om-certutil"),
        "momcertimport" => env!("CARGO_BIN_EXE_om-momcertimport"),
        other => panic!("no tool named {other}"),
    }
}

/// Runs the certificate tool `name` with `args` on the machine folder `machine`.
pub(crate) fn on_machine(name: &str, args: &[&str], machine: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--machine", machine.to_str().expect("a UTF-8 path")]);
    run(bin(name), &all)
}

/// Standard output of a run that must have succeeded (exit 0); its output when it did not.
pub(crate) fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Standard error of a run that must have been refused (exit 2): the reason, to check.
pub(crate) fn refused(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

/// A PKCS #10 request for `host` (ECDSA P-256, made here), PEM as certreq writes it.
pub(crate) fn request_pem(host: &str) -> String {
    use opsmgr_ca::request::{
        PolicyOptions, PrivateKey, build_request, parse_policy, request_to_pem,
    };
    let inf = format!(
        "[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\nMachineKeySet = TRUE\n"
    );
    let policy = parse_policy(inf.as_bytes(), "t.inf", PolicyOptions::default()).expect("a policy");
    let key = PrivateKey::generate(policy.key).expect("a key");
    request_to_pem(&build_request(&policy, &key).expect("a request")).expect("PEM")
}

/// Whether an independent tool this test needs is on the machine. When it is not, the test
/// says so and passes, unless `require` (an environment variable CI sets) is set: then the
/// absence is the failure.
pub(crate) fn have_tool(tool: &str, require: &str) -> bool {
    let there = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !there {
        assert!(
            std::env::var_os(require).is_none(),
            "{tool} is not installed, and {require} is set"
        );
        #[allow(
            clippy::print_stderr,
            reason = "the note a skipped check owes its reader"
        )]
        {
            eprintln!("note: {tool} is not installed; this check is skipped (CI sets {require})");
        }
    }
    there
}

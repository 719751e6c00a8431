//! The agent's side of the seed, end to end with OpenSSL as the CA: `certreq -new`, the CA
//! signs, `certutil -addstore root`, `certreq -accept`, `MOMCertImport /SubjectName`; and the
//! refusals a user meets on the way.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{ok, text};

fn tool(name: &str, args: &[&str], machine: &Path) -> Output {
    common::on_machine(name, args, machine)
}

#[path = "../../ca/tests/support/openssl.rs"]
mod openssl;
use openssl::{OpensslCa, Sign};

const HOST: &str = "agent01.company.local";

struct Agent {
    dir: tempfile::TempDir,
    ca: OpensslCa,
}

impl Agent {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
        Self { dir, ca }
    }
    fn machine(&self) -> PathBuf {
        self.dir.path().join("agent01")
    }
    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn run(&self, name: &str, args: &[&str]) -> Output {
        tool(name, args, &self.machine())
    }
    /// certreq -new with `inf`, the OpenSSL CA signs as told; returns the certificate's path.
    fn request_and_sign(&mut self, n: usize, inf: &str, how: &Sign<'_>) -> String {
        let (inf_file, req, cer) = (
            self.file(&format!("{n}.inf")),
            self.file(&format!("{HOST}.{n}.req")),
            self.file(&format!("{HOST}.{n}.cer")),
        );
        std::fs::write(&inf_file, inf).unwrap();
        ok(&self.run("certreq", &["-new", "-q", "-f", &inf_file, &req]));
        self.ca.sign(Path::new(&req), Path::new(&cer), how);
        cer
    }
}

const SEED_LIKE_INF: &str = "[NewRequest]\r\nSubject=\"CN=agent01.company.local\"\r\nExportable=FALSE\r\nKeyLength=2048\r\nKeySpec=1\r\nKeyUsage=0xa0\r\nMachineKeySet=TRUE\r\n";

#[test]
fn the_seeds_agent_steps_with_an_openssl_ca() {
    let mut a = Agent::new();
    let cer = a.request_and_sign(1, SEED_LIKE_INF, &Sign::default());
    // Not trusted yet: certreq -accept refuses (as Windows does: the chain ends in an
    // untrusted root), nothing changes.
    let untrusted = a.run("certreq", &["-accept", "-q", &cer]);
    assert_eq!(untrusted.status.code(), Some(2));
    assert!(
        text(&untrusted.stderr).contains("which is not in this machine's Root store"),
        "{}",
        text(&untrusted.stderr)
    );

    let root = a.ca.cert.to_str().unwrap().to_owned();
    let added = ok(&a.run("certutil", &["-addstore", "root", &root]));
    assert!(
        added.contains("Certificate \"CN=JAMA00\" added to store."),
        "{added}"
    );
    let again = ok(&a.run("certutil", &["-addstore", "Root", &root]));
    assert!(again.contains("already in store"), "{again}");
    let accepted = ok(&a.run("certreq", &["-accept", "-q", &cer]));
    assert!(
        accepted.starts_with("Installed Certificate:\n"),
        "{accepted}"
    );

    // The root taken out again: MOMCertImport says why, exit 1, nothing recorded.
    let thumb_root = {
        let roots: serde_json::Value =
            serde_json::from_str(&ok(&a.run("certutil", &["-store", "root", "--json"]))).unwrap();
        roots[0]["thumbprint"].as_str().unwrap().to_owned()
    };
    ok(&a.run("certutil", &["-delstore", "Root", &thumb_root]));
    let refused = a.run("momcertimport", &["/SubjectName", HOST]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr)
            .contains("it does not chain to a trusted root in Root: the Root store is empty"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!a.machine().join("Agent/settings.json").exists());
    ok(&a.run("certutil", &["-addstore", "root", &root]));

    let installed = ok(&a.run("momcertimport", &["/SubjectName", HOST]));
    assert!(
        installed.starts_with("Successfully installed the certificate.\n"),
        "{installed}"
    );
    let settings: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.machine().join("Agent/settings.json")).unwrap())
            .unwrap();
    // Independent check of the recorded values against OpenSSL's view of the certificate.
    let serial = String::from_utf8(openssl::openssl(
        a.dir.path(),
        &["x509", "-in", &cer, "-noout", "-serial"],
    ))
    .unwrap();
    let serial = serial.trim().strip_prefix("serial=").unwrap().to_owned();
    let bytes: Vec<&str> = (0..serial.len())
        .step_by(2)
        .map(|i| &serial[i..i + 2])
        .collect();
    let reversed: String = bytes.into_iter().rev().collect();
    assert_eq!(
        settings["ChannelCertificateSerialNumber"],
        reversed.as_str()
    );
    let fingerprint = String::from_utf8(openssl::openssl(
        a.dir.path(),
        &["x509", "-in", &cer, "-noout", "-fingerprint", "-sha1"],
    ))
    .unwrap();
    let thumb = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "");
    assert_eq!(settings["ChannelCertificateHash"], thumb.as_str());

    // Again: nothing changes. --json for scripts.
    let json = ok(&a.run("momcertimport", &["--subject-name", HOST, "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (v["installed"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(v["settings"]["ChannelCertificateHash"], thumb.as_str());

    // The key was made with Exportable = FALSE: no tool of ours gives it out.
    let export = a.run(
        "certutil",
        &["-exportkey", "My", &thumb, &a.file("out.key")],
    );
    assert_eq!(export.status.code(), Some(2));
    assert!(text(&export.stderr).contains("Exportable = FALSE and is never exported"));
    assert!(!Path::new(&a.file("out.key")).exists());

    // -store shows the pair; /Remove clears the setting.
    let listed = ok(&a.run("certutil", &["-store", "My"]));
    assert!(
        listed.contains(&format!("Cert Hash(sha1): {thumb}\n")),
        "{listed}"
    );
    assert!(listed.contains("Enhanced Key Usage: Server Authentication (1.3.6.1.5.5.7.3.1), Client Authentication (1.3.6.1.5.5.7.3.2)\n"), "{listed}");
    assert!(
        listed.contains("  Private key is NOT exportable\n"),
        "{listed}"
    );
    assert!(listed.ends_with("CertUtil: -store command completed successfully.\n"));
    let removed = ok(&a.run("momcertimport", &["/Remove"]));
    assert!(removed.starts_with("Successfully removed"), "{removed}");
    let settings = std::fs::read_to_string(a.machine().join("Agent/settings.json")).unwrap();
    assert_eq!(settings, "{}\n");
}

#[test]
fn refusals_name_the_condition_for_each_certificate() {
    let mut a = Agent::new();
    ok(&a.run(
        "certutil",
        &["-addstore", "root", a.ca.cert.to_str().unwrap()],
    ));
    let inf = "[NewRequest]\nSubject = \"CN=agent01.company.local\"\nKeyAlgorithm = ECDSA_P256\nMachineKeySet = TRUE\n";
    let one_eku = a.request_and_sign(
        1,
        inf,
        &Sign {
            extensions: Some(
                "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:agent01.company.local",
            ),
            ..Sign::default()
        },
    );
    // -accept refuses it for the channel; -f takes it for another use of the key.
    let refused = a.run("certreq", &["-accept", &one_eku]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("it lacks the client authentication extended key usage"),
        "{}",
        text(&refused.stderr)
    );
    ok(&a.run("certreq", &["-accept", "-f", &one_eku]));
    // A second root's certificate for the same host, with its key in a PFX: -accept refuses
    // it even with -f (its root is not trusted); -importPFX takes it (as certutil does), and
    // MOMCertImport then names the problem.
    let mut other = OpensslCa::new(&a.dir.path().join("other"), "ELSEWHERE");
    let (key, req, cer, pfx) = (
        a.file("elsewhere.key"),
        a.file("elsewhere.req"),
        a.file("elsewhere.cer"),
        a.file("elsewhere.pfx"),
    );
    openssl::openssl(
        a.dir.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=agent01.company.local",
            "-addext",
            "extendedKeyUsage=serverAuth,clientAuth",
            "-keyout",
            &key,
            "-out",
            &req,
        ],
    );
    other.sign(Path::new(&req), Path::new(&cer), &Sign::default());
    openssl::openssl(
        a.dir.path(),
        &[
            "pkcs12",
            "-export",
            "-inkey",
            &key,
            "-in",
            &cer,
            "-out",
            &pfx,
            "-passout",
            "pass:elsewhere",
        ],
    );
    ok(&a.run(
        "certutil",
        &["-importPFX", "-p", "elsewhere", &pfx, "NoRoot"],
    ));

    let out = a.run("momcertimport", &["/subjectname", HOST, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["installed"], false);
    let mut reasons: Vec<String> = v["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["refusals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "it does not chain to a trusted root in Root: no certificate in Root issued it (its issuer is CN=ELSEWHERE)",
            "it lacks the client authentication extended key usage (1.3.6.1.5.5.7.3.2)",
        ]
    );

    // An expired certificate is refused at accept, and its key stays pending.
    let expired = a.request_and_sign(
        3,
        inf,
        &Sign {
            start: Some("20200101000000Z"),
            end: Some("20210101000000Z"),
            ..Sign::default()
        },
    );
    let refused = a.run("certreq", &["-accept", &expired]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("it expired on 2021-01-01 00:00 UTC"),
        "{}",
        text(&refused.stderr)
    );
    let pending = ok(&a.run("certutil", &["-store", "Request", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&pending).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);

    // A bad host name is a usage error, not a refusal.
    let bad = a.run("momcertimport", &["/SubjectName", "agent01..company"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[test]
fn certutil_refuses_a_leaf_as_root_unless_forced_and_deletes_entries() {
    let mut a = Agent::new();
    let inf = "[NewRequest]\nSubject = \"CN=agent01.company.local\"\nKeyAlgorithm = ECDSA_P256\nExportable = TRUE\nMachineKeySet = TRUE\n";
    let cer = a.request_and_sign(1, inf, &Sign::default());
    let refused = a.run("certutil", &["-addstore", "root", &cer]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("CN=agent01.company.local is not a CA certificate"),
        "{}",
        text(&refused.stderr)
    );
    ok(&a.run("certutil", &["-addstore", "-f", "root", &cer]));
    let roots: serde_json::Value =
        serde_json::from_str(&ok(&a.run("certutil", &["--store", "root", "--json"]))).unwrap();
    assert_eq!(roots[0]["is_ca"], false);
    let thumb = roots[0]["thumbprint"].as_str().unwrap().to_owned();
    ok(&a.run("certutil", &["-delstore", "Root", &thumb]));
    let gone = a.run("certutil", &["-store", "Root", &thumb]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(text(&gone.stderr).contains("the Root store has no entry"));

    // An exportable key is written 0600 and OpenSSL reads it.
    ok(&a.run(
        "certutil",
        &["-addstore", "root", a.ca.cert.to_str().unwrap()],
    ));
    ok(&a.run("certreq", &["-accept", &cer]));
    let key = a.file("agent01.key");
    ok(&a.run("certutil", &["-exportkey", "My", &thumb, &key]));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let from_key = openssl::openssl(a.dir.path(), &["pkey", "-in", &key, "-pubout"]);
    let from_cert = openssl::openssl(a.dir.path(), &["x509", "-in", &cer, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    let again = a.run("certutil", &["-exportkey", "My", &thumb, &key]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("exists; -f overwrites it"));
}

#[test]
fn a_certificate_in_the_users_store_is_pointed_out() {
    let mut a = Agent::new();
    ok(&a.run(
        "certutil",
        &["-addstore", "root", a.ca.cert.to_str().unwrap()],
    ));
    // MachineKeySet defaults to FALSE, as on Windows: the pair lands in the user's store.
    let inf = "[NewRequest]\nSubject = \"CN=agent01.company.local\"\nKeyAlgorithm = ECDSA_P256\n";
    let cer = a.request_and_sign(1, inf, &Sign::default());
    ok(&a.run("certreq", &["-accept", &cer]));
    let out = a.run("momcertimport", &["/SubjectName", HOST]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "om-momcertimport: error: no certificate in My can be the channel certificate of {HOST}: the My store is empty (accept the issued certificate first)\nnote: the user's My store holds a certificate for {HOST}, but the agent reads only the machine's: request it with MachineKeySet = TRUE\n"
        )
    );
}

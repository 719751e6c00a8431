//! The seed's certificate story on real files: a CA, hosts dropping requests into a share,
//! the batch, the installer bundles on the agents; certreq/certutil's CA verbs with their
//! exact output and exit codes; every refusal of the drop folder; and a batch killed at random
//! moments, then finished by running it again.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use opsmgr_ca::agent::read_bundle;
use opsmgr_ca::authority::{Authority, Disposition, Filter};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy, request_to_pem};

mod common;
use common::{bin, ok, refused, text};

#[path = "../../ca/tests/support/openssl.rs"]
mod openssl;

fn run(name: &str, args: &[&str]) -> Output {
    common::run(bin(name), args)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.share()).unwrap();
        ok(&run("ca", &["init", &s(&w.ca()), "--name", "JAMA00"]));
        w
    }
    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca")
    }
    fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }
    /// The root's SHA-1 thumbprint, as the CA's operator hands it to the agents' installers.
    fn root_thumbprint(&self) -> String {
        let root = std::fs::read(self.ca().join("ca.cer")).unwrap();
        CertInfo::parse(&root).unwrap().thumbprint
    }
    fn machine(&self, host: &str) -> PathBuf {
        self.dir.path().join("machines").join(host)
    }
    /// certreq -new on `host`, the request dropped into the share as `<FQDN>.req`.
    fn enroll(&self, host: &str, key_line: &str) {
        let inf = self.dir.path().join(format!("{host}.inf"));
        std::fs::write(
            &inf,
            format!(
                "[NewRequest]\r\nSubject = \"CN={host}\"\r\n{key_line}\r\nMachineKeySet = TRUE\r\n"
            ),
        )
        .unwrap();
        let req = self.share().join(format!("{host}.req"));
        ok(&run(
            "certreq",
            &[
                "-new",
                "-q",
                "-f",
                &s(&inf),
                &s(&req),
                "--machine",
                &s(&self.machine(host)),
            ],
        ));
    }
    fn process(&self, extra: &[&str]) -> Output {
        let (share, ca) = (s(&self.share()), s(&self.ca()));
        // The tests write their requests themselves, just before: nothing is still arriving.
        let mut args = vec!["process", "--share", &share, "--ca", &ca, "--settle", "0s"];
        args.extend_from_slice(extra);
        run("ca", &args)
    }
    /// certreq -install of the host's bundle from the share on its machine, the root pinned
    /// by the CA's thumbprint (as its operator hands it over).
    fn install(&self, host: &str, extra: &[&str]) -> Output {
        let bundle = s(&self.share().join(format!("{host}.bundle")));
        let (machine, pin) = (s(&self.machine(host)), self.root_thumbprint());
        let mut args = vec![
            "-install",
            &bundle,
            "--machine",
            &machine,
            "--trust-root",
            &pin,
        ];
        args.extend_from_slice(extra);
        run("certreq", &args)
    }
}

#[test]
fn drop_folder_to_installed_channel_certificates() {
    let w = World::new();
    let hosts = [
        "agent01.company.local",
        "agent02.company.local",
        "mgt01.company.local",
    ];
    w.enroll(hosts[0], "KeyAlgorithm = ECDSA_P256");
    w.enroll(hosts[1], "KeyLength = 2048");
    w.enroll(hosts[2], "KeyLength = 3072");
    // OpenSSL-made requests go through the same way (RSA and P-256).
    openssl::openssl(
        &w.share(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=linux01.company.local",
            "-keyout",
            "../linux01.key",
            "-out",
            "linux01.company.local.req",
        ],
    );
    openssl::openssl(
        &w.share(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=linux02.company.local",
            "-keyout",
            "../linux02.key",
            "-out",
            "linux02.company.local.req",
        ],
    );

    let json = ok(&w.process(&["--issue", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (
            v["processed"].as_u64(),
            v["issued"].as_u64(),
            v["rejected"].as_u64()
        ),
        (Some(5), Some(5), Some(0)),
        "{json}"
    );
    let root = s(&w.ca().join("ca.cer"));
    for host in hosts
        .iter()
        .chain(&["linux01.company.local", "linux02.company.local"])
    {
        let cer = s(&w.share().join(format!("{host}.cer")));
        openssl::openssl(
            w.dir.path(),
            &["verify", "-x509_strict", "-CAfile", &root, &cer],
        );
        let printed = String::from_utf8(openssl::openssl(
            w.dir.path(),
            &[
                "pkcs7",
                "-print_certs",
                "-noout",
                "-in",
                &s(&w.share().join(format!("{host}.bundle"))),
            ],
        ))
        .unwrap();
        assert!(
            printed.contains(&format!("subject=CN = {host}"))
                && printed.contains("subject=CN = JAMA00"),
            "{printed}"
        );
    }
    let processed: Vec<String> = std::fs::read_dir(w.share().join("processed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(processed.len(), 5, "{processed:?}");
    assert!(!w.share().join(format!("{}.req", hosts[0])).exists());

    // On each agent, the seed's installer: accept, trust the root, MOMCertImport. A fresh
    // agent trusts the root the operator names, not whatever the share offers.
    for host in hosts {
        let bundle = s(&w.share().join(format!("{host}.bundle")));
        let said = refused(&run(
            "certreq",
            &["-install", &bundle, "--machine", &s(&w.machine(host))],
        ));
        assert!(
            said.contains("is not in this machine's Root store")
                && said.contains("with --trust-root"),
            "{said}"
        );
        let out = ok(&w.install(host, &[]));
        assert!(
            out.contains("Successfully installed the certificate."),
            "{out}"
        );
        assert!(out.contains("Root CN=JAMA00: added to Root"), "{out}");
        let settings =
            std::fs::read_to_string(w.machine(host).join("Agent/settings.json")).unwrap();
        assert!(settings.contains("ChannelCertificateHash"), "{settings}");
        // Installing again changes nothing.
        let again = ok(&run(
            "certreq",
            &[
                "-install",
                &bundle,
                "--machine",
                &s(&w.machine(host)),
                "--json",
            ],
        ));
        let v: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(
            (
                v["already_installed"].as_bool(),
                v["settings_changed"].as_bool()
            ),
            (Some(true), Some(false))
        );
    }
    // A bundle for another machine's key is refused there.
    let out = run(
        "certreq",
        &[
            "-install",
            &s(&w.share().join(format!("{}.bundle", hosts[1]))),
            "--machine",
            &s(&w.machine(hosts[0])),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no pending key on this machine"),
        "{}",
        text(&out.stderr)
    );

    // Running the batch again over an empty share does nothing.
    let again = ok(&w.process(&["--issue"]));
    assert!(
        again.starts_with("processed 0, issued 0, pending 0, rejected 0"),
        "{again}"
    );
}

#[test]
fn the_drop_folder_refuses_spoofed_names_small_keys_junk_and_strangers() {
    let w = World::new();
    w.enroll("agent01.company.local", "KeyAlgorithm = ECDSA_P256");
    // agent01 drops a request for itself under agent02's name.
    std::fs::rename(
        w.share().join("agent01.company.local.req"),
        w.share().join("agent02.company.local.req"),
    )
    .unwrap();
    openssl::openssl(
        &w.share(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-subj",
            "/CN=old.company.local",
            "-keyout",
            "../old.key",
            "-out",
            "old.company.local.req",
        ],
    );
    openssl::openssl(
        &w.share(),
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=..\\/..\\/x",
            "-keyout",
            "../x.key",
            "-out",
            "x.req",
        ],
    );
    std::fs::write(w.share().join("junk.company.local.req"), "not a request").unwrap();
    w.enroll("stranger.company.local", "KeyAlgorithm = ECDSA_P256");
    w.enroll("agent03.company.local", "KeyAlgorithm = ECDSA_P256");
    let inventory = w.dir.path().join("inventory.json");
    std::fs::write(&inventory, r#"{"management_group": "PROD", "servers": [{"name": "mgt01.company.local", "role": "management"}], "agents": [{"name": "agent03.company.local", "primary": "mgt01.company.local"}]}"#).unwrap();

    let out = w.process(&["--issue", "--inventory", &s(&inventory), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_file = |f: &str| {
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["file"] == f)
            .unwrap()
            .clone()
    };
    let reason = |f: &str| {
        std::fs::read_to_string(w.share().join("rejected").join(format!("{f}.reason.txt"))).unwrap()
    };
    assert_eq!(by_file("agent03.company.local.req")["result"], "issued");
    for (file, why) in [
        (
            "agent02.company.local.req",
            "the request is for agent01.company.local but the file is named agent02.company.local.req",
        ),
        (
            "old.company.local.req",
            "1024 bits is below the policy's 2048",
        ),
        ("x.req", "is not a DNS host name"),
        ("junk.company.local.req", "certificate request"),
        (
            "stranger.company.local.req",
            "stranger.company.local is not an agent or server of the management group's inventory",
        ),
    ] {
        assert_ne!(by_file(file)["result"], "issued", "{file}");
        assert!(reason(file).contains(why), "{file}: {}", reason(file));
        assert!(w.share().join("rejected").join(file).exists(), "{file}");
    }
    // Nothing was written for a refused name, and nothing outside the share.
    let cers: Vec<String> = std::fs::read_dir(w.share())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cer"))
        .collect();
    assert_eq!(cers, ["agent03.company.local.cer"]);
    assert!(!w.dir.path().join("x.cer").exists());
}

#[test]
fn certreq_and_certutil_against_the_ca() {
    let w = World::new();
    let ca = s(&w.ca());
    w.enroll("agent01.company.local", "KeyAlgorithm = ECDSA_P256");
    w.enroll("agent02.company.local", "KeyAlgorithm = ECDSA_P256");
    let req1 = s(&w.share().join("agent01.company.local.req"));
    let req2 = s(&w.share().join("agent02.company.local.req"));
    let cer = s(&w.dir.path().join("out.cer"));

    let out = ok(&run("certreq", &["-submit", "-q", "-config", &ca, &req1]));
    assert_eq!(
        out,
        "RequestId: 1\nRequestId: \"1\"\nCertificate request is pending: Taken Under Submission (0)\n"
    );
    let again = ok(&run("certreq", &["-submit", "-config", &ca, &req1]));
    assert!(
        again.starts_with("RequestId: 1\n") && again.contains("submitted before"),
        "{again}"
    );
    ok(&run("certreq", &["-submit", "-config", &ca, &req2]));

    let pending = run("certreq", &["-retrieve", "-config", &ca, "1", &cer]);
    assert_eq!(pending.status.code(), Some(3));
    assert!(!Path::new(&cer).exists());
    assert_eq!(
        ok(&run("certutil", &["-config", &ca, "-resubmit", "1"])),
        "Certificate issued.\nCertUtil: -resubmit command completed successfully.\n"
    );
    let got = ok(&run(
        "certreq",
        &["-retrieve", "-q", "-config", &ca, "0x1", &cer],
    ));
    assert!(
        got.contains("Certificate retrieved(Issued) Issued"),
        "{got}"
    );
    assert!(
        std::fs::read_to_string(&cer)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\r\n")
    );
    let der = s(&w.dir.path().join("out.der"));
    ok(&run(
        "certreq",
        &["-retrieve", "-binary", "-config", &ca, "1", &der],
    ));
    openssl::openssl(
        w.dir.path(),
        &["x509", "-inform", "DER", "-in", &der, "-noout"],
    );

    ok(&run(
        "certutil",
        &["-config", &ca, "-deny", "2", "unknown host"],
    ));
    let denied = run("certreq", &["-retrieve", "-config", &ca, "2", &cer]);
    assert_eq!(denied.status.code(), Some(4));
    assert_eq!(
        text(&denied.stdout),
        "RequestId: 2\nRequestId: \"2\"\nCertificate not issued (Denied) unknown host\n"
    );

    let view: serde_json::Value = serde_json::from_str(&ok(&run(
        "certutil",
        &["-config", &ca, "-view", "--disposition", "issued", "--json"],
    )))
    .unwrap();
    let serial = view[0]["serial"].as_str().unwrap().to_owned();
    assert_eq!(view.as_array().unwrap().len(), 1);
    assert_eq!(view[0]["requester"], "agent01.company.local.req");
    let revoked = ok(&run(
        "certutil",
        &["-config", &ca, "-revoke", &serial, "KeyCompromise"],
    ));
    assert!(
        revoked.starts_with(&format!("Revoking \"{serial}\" -- Reason: KeyCompromise")),
        "{revoked}"
    );
    let r = run("certreq", &["-retrieve", "-config", &ca, "1", &cer]);
    assert_eq!(r.status.code(), Some(5));
    ok(&run("certutil", &["-config", &ca, "-crl"]));
    let crl = String::from_utf8(openssl::openssl(
        w.dir.path(),
        &[
            "crl",
            "-in",
            &s(&w.ca().join("ca.crl")),
            "-CAfile",
            &s(&w.ca().join("ca.cer")),
            "-noout",
            "-text",
        ],
    ))
    .unwrap();
    assert!(crl.contains(&format!("Serial Number: {serial}")), "{crl}");
    let bad = run("certutil", &["-config", &ca, "-revoke", &serial, "Bored"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("unknown revocation reason 'Bored'"));
    // The database is plain SQLite: the sqlite3 shell reads it.
    let rows = Command::new("sqlite3")
        .args([
            &s(&w.ca().join("ca.db")),
            "SELECT id, disposition FROM requests ORDER BY id",
        ])
        .output()
        .unwrap();
    assert_eq!(text(&rows.stdout), "1|revoked\n2|denied\n");
}

/// certutil's verb is a subcommand behind its Windows forms: `-view`, `/VIEW`, `--view` and
/// `view` are one verb, before or after `-config`; two verbs are refused. The verbs that only
/// read (-view, certreq -retrieve) open the CA without its key, so a CA whose key is encrypted
/// answers them without its password; -resubmit needs the key and asks for it.
#[test]
fn reading_verbs_need_no_key_password_and_verbs_take_every_form() {
    let w = World::new();
    w.enroll("agent01.company.local", "KeyAlgorithm = ECDSA_P256");
    let ca = s(&w.dir.path().join("sealed"));
    let pw = w.dir.path().join("pw.txt");
    std::fs::write(&pw, "a long CA key passphrase\n").unwrap();
    let pw = s(&pw);
    ok(&run(
        "ca",
        &["init", &ca, "--encrypt-key", "--password-file", &pw],
    ));
    let req = s(&w.share().join("agent01.company.local.req"));
    // The password switches come before the verb or after it.
    ok(&run(
        "certreq",
        &["--password-file", &pw, "-submit", "-config", &ca, &req],
    ));

    let forms: [&[&str]; 5] = [
        &["-view", "-config", &ca, "--json"],
        &["/VIEW", "/config", &ca, "/json"],
        &["--view", "--config", &ca, "--json"],
        &["view", "--config", &ca, "--json"],
        &["-config", &ca, "-View", "--json"],
    ];
    for args in forms {
        let rows: serde_json::Value = serde_json::from_str(&ok(&run("certutil", args))).unwrap();
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{args:?}: {rows}");
        assert_eq!(rows[0]["disposition"], "pending", "{args:?}");
    }
    let cer = s(&w.dir.path().join("out.cer"));
    let pending = run("certreq", &["-retrieve", "-config", &ca, "1", &cer]);
    assert_eq!(pending.status.code(), Some(3), "{}", text(&pending.stderr));

    let two = refused(&run("certutil", &["-config", &ca, "-view", "-crl"]));
    assert!(two.contains("unexpected argument '--crl'"), "{two}");
    let asked = refused(&run("certutil", &["-config", &ca, "-resubmit", "1"]));
    assert!(
        asked.contains("no terminal to ask for the password"),
        "{asked}"
    );
    assert_eq!(
        ok(&run(
            "certutil",
            &["-resubmit", "1", "-config", &ca, "--password-file", &pw]
        )),
        "Certificate issued.\nCertUtil: -resubmit command completed successfully.\n"
    );
    ok(&run("certreq", &["-retrieve", "-config", &ca, "1", &cer]));
    let issued = CertInfo::parse(&std::fs::read(&cer).unwrap()).unwrap();
    assert_eq!(issued.subject, "CN=agent01.company.local");
}

/// A certificate or CRL copied out of the CA replaces a file only with -f, and never one of
/// the CA's own files (a CRL written over ca.key leaves a CA that cannot open); a -submit
/// refused for its CERT.cer records nothing.
#[test]
fn copies_out_of_the_ca_replace_nothing_unasked_and_never_the_cas_own_files() {
    let w = World::new();
    let ca = s(&w.ca());
    let auto = s(&w.dir.path().join("auto"));
    ok(&run("ca", &["init", &auto, "--auto-issue"]));
    w.enroll("agent01.company.local", "KeyAlgorithm = ECDSA_P256");
    let req = s(&w.share().join("agent01.company.local.req"));
    let kept = w.dir.path().join("kept.txt");
    std::fs::write(&kept, "an operator's file\n").unwrap();
    let unchanged = |what: &str| {
        assert_eq!(
            std::fs::read_to_string(&kept).unwrap(),
            "an operator's file\n",
            "{what}"
        );
    };
    let key_before = std::fs::read(w.ca().join("ca.key")).unwrap();

    // -submit to a CA that issues at once, CERT.cer in the way: refused before the CA records.
    let said = refused(&run(
        "certreq",
        &["-submit", "-config", &auto, &req, &s(&kept)],
    ));
    assert!(said.contains("exists; -f overwrites it"), "{said}");
    unchanged("-submit");
    let rows: serde_json::Value = serde_json::from_str(&ok(&run(
        "certutil",
        &["-config", &auto, "-view", "--json"],
    )))
    .unwrap();
    assert_eq!(rows, serde_json::json!([]), "nothing was recorded");

    // -retrieve and -crl: refused without -f; the CA's folder refused even with it.
    ok(&run("certreq", &["-submit", "-config", &ca, &req]));
    ok(&run("certutil", &["-config", &ca, "-resubmit", "1"]));
    let into_ca = s(&w.ca().join("ca.key"));
    std::fs::create_dir_all(w.ca().join("sub")).unwrap();
    let below_ca = s(&w.ca().join("sub/x.crl"));
    let kept_s = s(&kept);
    let (exists, ca_folder) = ("exists; -f overwrites it", "is in the CA's own folder");
    let cases: [(&[&str], &str); 5] = [
        (
            &["certreq", "-retrieve", "-config", &ca, "1", &kept_s],
            exists,
        ),
        (&["certutil", "-config", &ca, "-crl", &kept_s], exists),
        (
            &["certreq", "-retrieve", "-f", "-config", &ca, "1", &into_ca],
            ca_folder,
        ),
        (
            &["certutil", "-config", &ca, "-crl", "-f", &into_ca],
            ca_folder,
        ),
        (&["certutil", "-config", &ca, "-crl", &below_ca], ca_folder),
    ];
    for (args, why) in cases {
        let said = refused(&run(args[0], &args[1..]));
        assert!(said.contains(why), "{args:?}: {said}");
        unchanged(&format!("{args:?}"));
    }
    assert!(!w.ca().join("sub/x.crl").exists());
    assert_eq!(std::fs::read(w.ca().join("ca.key")).unwrap(), key_before);
    let crl: serde_json::Value = serde_json::from_str(&ok(&run(
        "certutil",
        &[
            "-config",
            &ca,
            "-crl",
            "-f",
            kept.to_str().unwrap(),
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(
        crl["files"],
        serde_json::json!([s(&w.ca().join("ca.crl")), s(&kept)]),
        "{crl}"
    );
    assert!(
        std::fs::read_to_string(&kept)
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );

    // -deny names a request that does not exist as such, and says it is done as certutil does.
    let missing = refused(&run("certutil", &["-config", &ca, "-deny", "99"]));
    assert!(missing.contains("no request has id 99"), "{missing}");
    w.enroll("agent02.company.local", "KeyAlgorithm = ECDSA_P256");
    let req2 = s(&w.share().join("agent02.company.local.req"));
    ok(&run("certreq", &["-submit", "-config", &ca, &req2]));
    assert_eq!(
        ok(&run(
            "certutil",
            &["-config", &ca, "-deny", "2", "not this one"]
        )),
        "Certificate not issued (Denied) not this one\nCertUtil: -deny command completed successfully.\n"
    );

    // A second revocation with a milder reason says the first one stays.
    let rows: serde_json::Value =
        serde_json::from_str(&ok(&run("certutil", &["-config", &ca, "-view", "--json"]))).unwrap();
    let serial = rows[0]["serial"].as_str().unwrap().to_owned();
    ok(&run(
        "certutil",
        &[
            "-config",
            &ca,
            "-revoke",
            &serial,
            "CRL_REASON_KEY_COMPROMISE",
        ],
    ));
    let again = ok(&run(
        "certutil",
        &["-config", &ca, "-revoke", &serial, "Superseded"],
    ));
    assert!(
        again.contains("Reason: KeyCompromise\n  (already revoked for KeyCompromise, which Superseded does not replace)"),
        "{again}"
    );
}

/// A switch the verb would ignore is refused, naming what it is for.
#[test]
fn certutil_and_certreq_refuse_a_switch_their_verb_would_ignore() {
    let w = World::new();
    let ca = s(&w.ca());
    let machine = s(&w.machine("agent01.company.local"));
    let cases: [(&[&str], &str); 4] = [
        (
            &["-config", &ca, "-view", "--machine", &machine],
            "this verb works on a CA",
        ),
        (
            &["-config", &ca, "-store", "My"],
            "this verb works on a machine's stores",
        ),
        (
            &["-store", "My", "-p", "secret", "--machine", &machine],
            "-p is the password of",
        ),
        (
            &["-config", &ca, "-crl", "-p", "secret"],
            "-p is the password of",
        ),
    ];
    for (args, why) in cases {
        let said = refused(&run("certutil", args));
        assert!(said.contains(why), "{args:?}: {said}");
    }
    // The same verbs without them run.
    ok(&run("certutil", &["-config", &ca, "-view"]));
    ok(&run("certutil", &["-store", "My", "--machine", &machine]));
    // certreq likewise.
    let cer = s(&w.dir.path().join("x.cer"));
    let cases: [(&[&str], &str); 3] = [
        (
            &["-retrieve", "-config", &ca, "1", &cer, "--crl", &cer],
            "--crl is for -install only",
        ),
        (
            &["-submit", "-config", &ca, &cer, "--machine", &machine],
            "--machine is for -new, -accept and -install only",
        ),
        (&["-accept", &cer, "-renew"], "-renew is for -new only"),
    ];
    for (args, why) in cases {
        let said = refused(&run("certreq", args));
        assert!(said.contains(why), "{args:?}: {said}");
    }
}

#[test]
fn a_batch_killed_at_random_moments_is_finished_by_running_it_again() {
    let w = World::new();
    // 300 requests made with the library (fast), as agents would drop them.
    let hosts: Vec<String> = (0..300)
        .map(|i| format!("agent{i:03}.company.local"))
        .collect();
    for host in &hosts {
        let text = format!("[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\n");
        let policy = parse_policy(text.as_bytes(), "t.inf", Default::default()).unwrap();
        let key = PrivateKey::generate(policy.key).unwrap();
        let pem = request_to_pem(&build_request(&policy, &key).unwrap()).unwrap();
        std::fs::write(w.share().join(format!("{host}.req")), pem).unwrap();
    }
    let (share, ca) = (s(&w.share()), s(&w.ca()));
    let mut seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut interrupted = 0;
    // Growing, jittered delays: whatever the machine's speed, the early kills land inside the
    // first batch (only the first run has much to do; the later ones finish what it left).
    for base in [3u64, 6, 12, 25, 50, 100] {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_millis(base + (seed >> 33) % base);
        let mut child = Command::new(bin("ca"))
            .args([
                "process", "--share", &share, "--ca", &ca, "--issue", "--settle", "0s",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        interrupted > 0,
        "no run was killed mid-batch: the test proves nothing"
    );
    let last = ok(&w.process(&["--issue", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["rejected"], 0, "{last}");

    // Every host: exactly one issued request, its files equal to the database's certificate.
    let ca = Authority::open(&w.ca(), None).unwrap();
    let records = ca.list(&Filter::default()).unwrap();
    assert_eq!(records.len(), 300, "one record per request, never two");
    let mut ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    for r in &records {
        assert_eq!(r.disposition, Disposition::Issued, "{r:?}");
        let host = r.common_name.clone().unwrap();
        let on_disk = std::fs::read(w.share().join(format!("{host}.cer"))).unwrap();
        let cert = CertInfo::parse(&on_disk).unwrap();
        assert_eq!(Some(cert.der), r.certificate, "{host}");
        let bundle = std::fs::read(w.share().join(format!("{host}.bundle"))).unwrap();
        assert_eq!(
            read_bundle(&bundle).unwrap().leaf.serial_hex(),
            r.serial.clone().unwrap()
        );
    }
    let mut serials: Vec<_> = records.iter().map(|r| r.serial.clone()).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 300);
    // No request left, none lost, no temporary file, no certificate the database does not know.
    let names: Vec<String> = std::fs::read_dir(w.share())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".req") && !n.ends_with(".tmp")),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| n.ends_with(".cer")).count(), 300);
    assert_eq!(
        std::fs::read_dir(w.share().join("processed"))
            .unwrap()
            .count(),
        300
    );
}

#[test]
fn install_finds_a_key_pending_in_the_users_store_and_says_the_agent_cannot_use_it() {
    let w = World::new();
    let host = "agent09.company.local";
    // MachineKeySet left at Windows' default (FALSE): the key is pending in the user's store.
    let inf = w.dir.path().join("user.inf");
    std::fs::write(
        &inf,
        format!("[NewRequest]\r\nSubject = \"CN={host}\"\r\nKeyAlgorithm = ECDSA_P256\r\n"),
    )
    .unwrap();
    let machine = s(&w.machine(host));
    let req = s(&w.share().join(format!("{host}.req")));
    ok(&run(
        "certreq",
        &["-new", "-q", "-f", &s(&inf), &req, "--machine", &machine],
    ));
    ok(&w.process(&["--issue"]));
    // -user limits the search to the user's stores; without it the machine's come first.
    for extra in [&["-user"][..], &[][..]] {
        let out = w.install(host, extra);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let said = text(&out.stdout);
        assert!(
            said.contains("the certificate went to the user's stores")
                && said.contains("MachineKeySet = TRUE"),
            "{said}"
        );
    }
    let user_my = ok(&run(
        "certutil",
        &["-user", "-store", "My", "--machine", &machine],
    ));
    assert!(
        user_my.contains(&format!("Subject: CN={host}")),
        "{user_my}"
    );
    let settings = w.machine(host).join("Agent/settings.json");
    assert!(!settings.exists(), "no channel certificate was recorded");
}

#[test]
fn a_renewal_proved_with_the_old_key_is_issued_and_a_plain_second_request_waits() {
    let w = World::new();
    let host = "agent07.company.local";
    let machine = s(&w.machine(host));
    w.enroll(host, "KeyAlgorithm = ECDSA_P256");
    ok(&w.process(&["--issue"]));
    let bundle = s(&w.share().join(format!("{host}.bundle")));
    ok(&w.install(host, &[]));
    let first = std::fs::read(w.share().join(format!("{host}.cer"))).unwrap();

    // A plain second request for the host (a new key, no proof): it waits for an operator,
    // even with --issue.
    w.enroll(host, "KeyAlgorithm = ECDSA_P256");
    let plain = w.process(&["--issue", "--json"]);
    assert_eq!(plain.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(v["files"][0]["result"], "pending", "{v:#}");
    let said = v["files"][0]["message"].as_str().unwrap();
    assert!(said.contains("already holds certificate"), "{said}");
    assert_eq!(
        std::fs::read(w.share().join(format!("{host}.cer"))).unwrap(),
        first
    );

    // The renewal (om-certreq -new -renew, proved with the installed certificate's key)
    // replaces the plain request in the share and is issued without --issue.
    let inf = w.dir.path().join(format!("{host}.inf"));
    let req = s(&w.share().join(format!("{host}.req")));
    // om-certreq -new -renew on the agent, the request written to `req`.
    let renew = |inf: &Path, req: &str| {
        ok(&run(
            "certreq",
            &[
                "-new",
                "-renew",
                "-q",
                "-f",
                &s(inf),
                req,
                "--machine",
                &machine,
            ],
        ))
    };
    renew(&inf, &req);
    // Certificates are dated to the second: the renewed one must start after the first, or
    // "the newest" would be a coin toss between two of the same second.
    std::thread::sleep(Duration::from_millis(1100));
    let renewed = w.process(&["--json"]);
    assert_eq!(renewed.status.code(), Some(0), "{}", text(&renewed.stdout));
    let v: serde_json::Value = serde_json::from_slice(&renewed.stdout).unwrap();
    assert_eq!(v["files"][0]["result"], "issued", "{v:#}");
    let first_serial = CertInfo::parse(&first).unwrap().serial_hex();
    assert!(
        v["files"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "renews certificate {first_serial} (proved with its key)"
            )),
        "{v:#}"
    );
    let second = std::fs::read(w.share().join(format!("{host}.cer"))).unwrap();
    assert_ne!(second, first, "a new certificate");

    // A renewal whose proof was tampered with proves nothing: it waits.
    let inf2 = w.dir.path().join("renew2.inf");
    std::fs::copy(&inf, &inf2).unwrap();
    renew(&inf2, &req);
    let pem = std::fs::read(&req).unwrap();
    let (label, mut der) = der::pem::decode_vec(&pem).unwrap();
    // The wrapper's last byte is the old key's signature.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    std::fs::write(
        &req,
        der::pem::encode_string(label, der::pem::LineEnding::CRLF, &der).unwrap(),
    )
    .unwrap();
    let forged = w.process(&["--issue", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&forged.stdout).unwrap();
    assert_eq!(v["files"][0]["result"], "pending", "{v:#}");
    assert!(
        v["files"][0]["message"]
            .as_str()
            .unwrap()
            .contains("this renewal's proof fails"),
        "{v:#}"
    );

    // Two proven renewals for one host in one batch (say, run twice by a script): one
    // certificate, the other held.
    // The agent installs its renewed certificate first; the tampered request leaves.
    ok(&run(
        "certreq",
        &["-install", &bundle, "--machine", &machine],
    ));
    std::fs::remove_file(w.share().join(format!("{host}.req"))).unwrap();
    for name in [host.to_owned(), host.to_ascii_uppercase()] {
        renew(&inf, &s(&w.share().join(format!("{name}.req"))));
    }
    let twice = w.process(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&twice.stdout).unwrap();
    let mut results: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["result"].as_str().unwrap())
        .collect();
    results.sort_unstable();
    assert_eq!(results, ["issued", "pending"], "{v:#}");
    assert!(v.to_string().contains("was issued in this batch"), "{v:#}");

    // What expires: of the host's three certificates only its current one (the other two
    // are superseded) within two years, none within a day.
    let ca = s(&w.ca());
    let soon = ok(&run(
        "ca",
        &["expiring", "--ca", &ca, "--within", "730d", "--json"],
    ));
    let list: serde_json::Value = serde_json::from_str(&soon).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    let current =
        CertInfo::parse(&std::fs::read(w.share().join(format!("{host}.cer"))).unwrap()).unwrap();
    assert_eq!(list[0]["serial"], current.serial_hex(), "{list:#}");
    assert_eq!(
        list[0]["superseded_by"],
        serde_json::Value::Null,
        "{list:#}"
    );
    let none = ok(&run("ca", &["expiring", "--ca", &ca, "--within", "1d"]));
    assert!(
        none.contains("0 current certificate(s) expire within 1 day (by "),
        "{none}"
    );
    let two = ok(&run(
        "ca",
        &["expiring", "--ca", &ca, "--within", "104 weeks"],
    ));
    assert!(
        two.contains("1 current certificate(s) expire within 728 days (by "),
        "{two}"
    );
    let bare = run("ca", &["expiring", "--ca", &ca, "--within", "60"]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        text(&bare.stderr).contains("'60' has no unit: give days, weeks or months"),
        "{}",
        text(&bare.stderr)
    );
}

/// The stock-Windows path: the agent kit's certreq.inf, with the machine's FQDN put in as its
/// request.ps1 does, read by certreq -new; the batch then leaves the installers beside the
/// certificate, carrying it and the root whose thumbprint the CA pinned when it was made.
#[test]
fn the_agent_kit_and_the_installers_for_a_stock_windows_agent() {
    let w = World::new();
    let host = "agent33.company.local";
    let kit = w.dir.path().join("kit");
    let made = run(
        "ca",
        &[
            "agent-kit",
            "--ca",
            &s(&w.ca()),
            "--share",
            "\\\\ca01\\certrequests",
            &s(&kit),
        ],
    );
    // This CA's root is ECDSA (the default): the kit is written, with a word for 2003 agents.
    assert!(
        text(&made.stderr).contains(
            "om-ca: warning: JAMA00's root key is ECDSA: Windows Server 2003 and XP cannot verify the certificates it signs; for agents that old, make the CA with om-ca init --key rsa-2048"
        ),
        "{}",
        text(&made.stderr)
    );
    let made = ok(&made);
    assert!(made.contains(&w.root_thumbprint()), "{made}");
    for f in ["certreq.inf", "request.ps1", "request.cmd", "JAMA00.cer"] {
        assert!(kit.join(f).is_file(), "{f}");
    }
    // Again without -f: refused, nothing overwritten.
    let again = run(
        "ca",
        &[
            "agent-kit",
            "--ca",
            &s(&w.ca()),
            "--share",
            "\\\\ca01\\x",
            &s(&kit),
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("exists; -f overwrites it"));
    // A share that is no UNC path is refused with what to give.
    let bad = run(
        "ca",
        &[
            "agent-kit",
            "--ca",
            &s(&w.ca()),
            "--share",
            "C:\\share",
            &s(&w.dir.path().join("k2")),
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("give a UNC path such as \\\\ca01\\certrequests"));

    let inf = std::fs::read_to_string(kit.join("certreq.inf"))
        .unwrap()
        .replace("<FQDN>", host);
    let inf_file = w.dir.path().join(format!("{host}.inf"));
    std::fs::write(&inf_file, inf).unwrap();
    ok(&run(
        "certreq",
        &[
            "-new",
            "-q",
            "-f",
            &s(&inf_file),
            &s(&w.share().join(format!("{host}.req"))),
            "--machine",
            &s(&w.machine(host)),
        ],
    ));
    ok(&w.process(&["--issue"]));
    let cer = std::fs::read(w.share().join(format!("{host}.cer"))).unwrap();
    let leaf = CertInfo::parse(&cer).unwrap();
    for ext in ["install.ps1", "install.cmd"] {
        // The installers are the CA's, for the operator to publish read-only: a script an
        // administrator runs is never in the share anyone can write.
        assert!(!w.share().join(format!("{host}.{ext}")).exists(), "{ext}");
        let script =
            std::fs::read_to_string(w.ca().join("installers").join(format!("{host}.{ext}")))
                .unwrap();
        assert!(script.contains(&w.root_thumbprint()), "{ext}");
        assert!(script.contains(host), "{ext}");
        // The certificate travels inside, base64 as in the .cer.
        let first_line = std::str::from_utf8(&cer)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_owned();
        assert!(script.contains(&first_line), "{ext}");
    }
    assert_eq!(leaf.common_name.as_deref(), Some(host));
    // The pin is in the policy, and the CA refuses to open with another root.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.ca().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root_thumbprint"], w.root_thumbprint());
    let other = w.dir.path().join("other");
    ok(&run("ca", &["init", &s(&other), "--name", "JAMA00"]));
    std::fs::copy(other.join("ca.cer"), w.ca().join("ca.cer")).unwrap();
    std::fs::copy(other.join("ca.key"), w.ca().join("ca.key")).unwrap();
    let swapped = w.process(&[]);
    assert_eq!(swapped.status.code(), Some(2));
    assert!(
        text(&swapped.stderr).contains("not the")
            && text(&swapped.stderr).contains("pinned when the CA was made"),
        "{}",
        text(&swapped.stderr)
    );
}

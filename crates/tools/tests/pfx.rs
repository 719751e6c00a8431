//! PFX files in and out, with OpenSSL as the independent judge: `om-certutil -exportPFX`
//! writes files `openssl pkcs12` opens (AES-256 with a SHA-256 MAC by default, 3DES with a
//! SHA-1 MAC for Windows Server 2008 R2 / 2012), never for a key made with Exportable = FALSE;
//! `om-certutil -importPFX` and `om-momcertimport FILE.pfx` read what `openssl pkcs12 -export`
//! writes in both styles, after which MOMCertImport's selection works. Passwords come from
//! files (one written as Notepad does, with a byte-order mark), never from argv except where
//! certutil's `-p` itself is tested.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{ok, refused, text};

fn tool(name: &str, args: &[&str], machine: &Path) -> Output {
    common::on_machine(name, args, machine)
}

#[path = "../../ca/tests/support/openssl.rs"]
mod openssl;
use openssl::{OpensslCa, Sign, openssl};

const HOST: &str = "agent01.company.local";
const PASSWORD: &str = "Pfx pässword 42!";
const CHANNEL: &str = "extendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = DNS:agent01.company.local\nbasicConstraints = CA:FALSE";

struct Lab {
    dir: tempfile::TempDir,
    ca: OpensslCa,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
        // The password as Notepad saves it (UTF-8 with a byte-order mark, CRLF), and plain
        // for OpenSSL's -passin.
        std::fs::write(
            dir.path().join("notepad.txt"),
            [b"\xEF\xBB\xBF".as_slice(), PASSWORD.as_bytes(), b"\r\n"].concat(),
        )
        .unwrap();
        std::fs::write(dir.path().join("plain.txt"), PASSWORD).unwrap();
        Self { dir, ca }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn machine(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn passin(&self) -> String {
        format!("file:{}", self.path("plain.txt"))
    }
    /// An agent that made its request with `inf_tail`, was issued by the OpenSSL CA, accepted
    /// it and trusts the root: the certificate's thumbprint.
    fn enrolled(&mut self, machine: &str, inf_tail: &str) -> String {
        let m = self.machine(machine);
        let (inf, req, cer) = (
            self.path(&format!("{machine}.inf")),
            self.path(&format!("{machine}.req")),
            self.path(&format!("{machine}.cer")),
        );
        std::fs::write(
            &inf,
            format!("[NewRequest]\r\nSubject=\"CN={HOST}\"\r\nMachineKeySet=TRUE\r\n{inf_tail}"),
        )
        .unwrap();
        ok(&tool("certreq", &["-new", "-q", "-f", &inf, &req], &m));
        self.ca.sign(
            Path::new(&req),
            Path::new(&cer),
            &Sign {
                extensions: Some(CHANNEL),
                ..Sign::default()
            },
        );
        let root = self.ca.cert.to_str().unwrap().to_owned();
        ok(&tool("certutil", &["-addstore", "root", &root], &m));
        ok(&tool("certreq", &["-accept", "-q", &cer], &m));
        let listed = ok(&tool("certutil", &["-store", "My", "--json"], &m));
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        v[0]["thumbprint"].as_str().unwrap().to_owned()
    }
    /// A key and certificate made by OpenSSL alone, exported by `openssl pkcs12 -export`.
    fn openssl_pfx(&mut self, name: &str, legacy: bool) -> String {
        let (key, req, cer, pfx) = (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
            self.path(&format!("{name}.cer")),
            self.path(&format!("{name}.pfx")),
        );
        openssl(
            self.dir.path(),
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={HOST}"),
                "-keyout",
                &key,
                "-out",
                &req,
            ],
        );
        self.ca.sign(
            Path::new(&req),
            Path::new(&cer),
            &Sign {
                extensions: Some(CHANNEL),
                ..Sign::default()
            },
        );
        let passout = format!("file:{}", self.path("plain.txt"));
        let root = self.ca.cert.to_str().unwrap().to_owned();
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            &key,
            "-in",
            &cer,
            "-certfile",
            &root,
            "-name",
            "SCOM agent",
            "-passout",
            &passout,
            "-out",
            &pfx,
        ];
        if legacy {
            args.push("-legacy");
        }
        openssl(self.dir.path(), &args);
        pfx
    }
}

#[test]
fn export_pfx_writes_what_openssl_opens_in_both_styles() {
    let mut lab = Lab::new();
    for (key_line, name) in [
        ("KeyLength=2048", "rsa"),
        ("KeyAlgorithm=ECDSA_P384", "p384"),
    ] {
        let thumb = lab.enrolled(name, &format!("Exportable=TRUE\r\n{key_line}\r\n"));
        let m = lab.machine(name);
        for (style, flags, cipher, mac) in [
            ("aes", &[][..], "PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"),
            (
                "3des",
                &["--crypto-algorithm", "tripledes-sha1"][..],
                "pbeWithSHA1And3-KeyTripleDES-CBC",
                "MAC: sha1",
            ),
        ] {
            let out = lab.path(&format!("{name}-{style}.pfx"));
            let notepad = lab.path("notepad.txt");
            let mut args = vec![
                "-exportPFX",
                "My",
                &thumb,
                &out,
                "--password-file",
                &notepad,
            ];
            args.extend(flags);
            let printed = ok(&tool("certutil", &args, &m));
            assert!(
                printed.contains("CertUtil: -exportPFX command completed successfully."),
                "{printed}"
            );
            // Owner-only, like every file holding a key.
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&out).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);

            // OpenSSL opens it with the password as typed (the mark was not part of it).
            // `-info` prints the algorithms on stderr.
            let passin = lab.passin();
            let info = std::process::Command::new("openssl")
                .args([
                    "pkcs12", "-legacy", "-in", &out, "-info", "-noout", "-passin", &passin,
                ])
                .output()
                .unwrap();
            let details = text(&info.stderr);
            assert!(info.status.success(), "{style}: {details}");
            assert!(details.contains(cipher), "{style}: {details}");
            assert!(details.contains(mac), "{style}: {details}");
            // The key, its certificate and the root.
            let pem = text(&openssl(
                lab.dir.path(),
                &[
                    "pkcs12", "-legacy", "-in", &out, "-nodes", "-passin", &passin,
                ],
            ));
            assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "{pem}");
            assert!(pem.contains("BEGIN PRIVATE KEY"), "{pem}");
            assert!(pem.contains(&format!("subject=CN = {HOST}")), "{pem}");

            // Our import reads our export on another machine, where MOMCertImport selects it.
            let other = lab.machine(&format!("{name}-{style}-elsewhere"));
            let imported = ok(&tool(
                "certutil",
                &["-importPFX", &out, "--password-file", &notepad],
                &other,
            ));
            assert!(imported.contains("added to My with its key"), "{imported}");
            assert!(
                imported.contains("Root \"CN=JAMA00\" added to Root."),
                "{imported}"
            );
            let chosen = ok(&tool("momcertimport", &["/SubjectName", HOST], &other));
            assert!(chosen.contains(&format!("Thumbprint: {thumb}")), "{chosen}");
        }
    }
}

#[test]
fn a_key_made_with_exportable_false_never_leaves_as_a_pfx() {
    let mut lab = Lab::new();
    let thumb = lab.enrolled("locked", "Exportable=FALSE\r\n");
    let out = lab.path("locked.pfx");
    let notepad = lab.path("notepad.txt");
    let err = refused(&tool(
        "certutil",
        &[
            "-exportPFX",
            "My",
            &thumb,
            &out,
            "--password-file",
            &notepad,
        ],
        &lab.machine("locked"),
    ));
    assert!(
        err.contains("was made with Exportable = FALSE and is never exported"),
        "{err}"
    );
    assert!(!Path::new(&out).exists());
}

#[test]
fn openssl_pfx_files_import_in_both_styles_and_the_channel_is_selected() {
    let mut lab = Lab::new();
    let notepad = lab.path("notepad.txt");
    for legacy in [false, true] {
        let pfx = lab.openssl_pfx(if legacy { "legacy" } else { "modern" }, legacy);

        // certutil -importPFX, then MOMCertImport /SubjectName:FQDN.
        let m = lab.machine(&format!("certutil-{legacy}"));
        let imported = ok(&tool(
            "certutil",
            &["-importPFX", &pfx, "--password-file", &notepad],
            &m,
        ));
        assert!(imported.contains("Friendly Name: SCOM agent"), "{imported}");
        assert!(imported.contains("Private key is exportable"), "{imported}");
        let chosen = ok(&tool(
            "momcertimport",
            &[&format!("/SubjectName:{HOST}")],
            &m,
        ));
        assert!(chosen.starts_with("Successfully installed"), "{chosen}");
        // Importing again changes nothing.
        let again = ok(&tool(
            "certutil",
            &["-importPFX", &pfx, "--password-file", &notepad],
            &m,
        ));
        assert!(again.contains("already in My with its key"), "{again}");

        // MOMCertImport FILE.pfx on a machine that already trusts the root; NoExport honoured
        // by the file form (the agent's key stays on the agent).
        let m = lab.machine(&format!("momcertimport-{legacy}"));
        let root = lab.ca.cert.to_str().unwrap().to_owned();
        ok(&tool("certutil", &["-addstore", "root", &root], &m));
        let chosen = ok(&tool(
            "momcertimport",
            &[&pfx, "--password-file", &notepad],
            &m,
        ));
        assert!(chosen.contains("into My."), "{chosen}");
        assert!(
            chosen.contains("Successfully installed the certificate."),
            "{chosen}"
        );
        assert!(chosen.contains("ChannelCertificateHash: "), "{chosen}");
        let listed = ok(&tool("certutil", &["-store", "My"], &m));
        assert!(listed.contains("Private key is NOT exportable"), "{listed}");
    }
}

#[test]
fn import_modifiers_wrong_passwords_and_certutils_p() {
    let mut lab = Lab::new();
    let pfx = lab.openssl_pfx("agent", false);
    let m = lab.machine("agent");
    std::fs::write(lab.path("wrong.txt"), "not the password\n").unwrap();
    let wrong = lab.path("wrong.txt");
    let err = refused(&tool(
        "certutil",
        &["-importPFX", &pfx, "--password-file", &wrong],
        &m,
    ));
    assert!(
        err.contains("the password does not open the PFX file"),
        "{err}"
    );
    assert!(
        !m.join("Certificates/My").exists()
            || std::fs::read_dir(m.join("Certificates/My"))
                .unwrap()
                .count()
                == 0,
        "nothing was imported"
    );

    // certutil's own -p works, with a warning about argv; NoExport and NoRoot are honoured.
    let out = tool(
        "certutil",
        &["-importPFX", "-p", PASSWORD, &pfx, "NoExport,NoRoot"],
        &m,
    );
    let printed = ok(&out);
    assert!(
        text(&out.stderr).contains("visible to every user of this machine"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        printed.contains("Private key is NOT exportable"),
        "{printed}"
    );
    assert!(
        printed.contains("Root not added: its root CN=JAMA00 was not added (NoRoot)."),
        "{printed}"
    );
    let roots = ok(&tool("certutil", &["-store", "Root"], &m));
    assert!(!roots.contains("CN=JAMA00"), "{roots}");
    let err = refused(&tool(
        "certutil",
        &["-importPFX", "-p", PASSWORD, &pfx, "NoSuchThing"],
        &m,
    ));
    assert!(err.contains("unknown modifier 'nosuchthing'"), "{err}");

    // Something that is not a PFX at all says so.
    let junk = lab.path("junk.pfx");
    std::fs::write(&junk, b"\x30\x03\x02\x01\x03").unwrap();
    let err = refused(&tool(
        "certutil",
        &["-importPFX", "-p", PASSWORD, &junk],
        &m,
    ));
    assert!(
        err.contains("PFX: the file cannot be read as PKCS #12"),
        "{err}"
    );
}

/// The forms a Windows administrator types: `-p:PASSWORD` and `/F` as certutil reads them,
/// options between a verb's arguments, PowerShell's spelling of the algorithm, the optional
/// store name before -importPFX's file; a verb certutil has and we do not is refused, never
/// taken as `-h` and a success.
#[test]
fn certutil_takes_the_forms_windows_administrators_type() {
    let mut lab = Lab::new();
    let thumb = lab.enrolled("agent", "Exportable=TRUE\r\n");
    let m = lab.machine("agent");
    let out = lab.path("agent.pfx");
    let colon = format!("-p:{PASSWORD}");
    let exported = ok(&tool(
        "certutil",
        &[
            "-exportPFX",
            &thumb,
            &colon,
            &out,
            "--crypto-algorithm",
            "TripleDES_SHA1",
        ],
        &m,
    ));
    assert!(
        exported.contains("-exportPFX command completed"),
        "{exported}"
    );
    // Again over it: /F between the file and the modifiers.
    ok(&tool(
        "certutil",
        &[
            "-exportPFX",
            "My",
            &thumb,
            &out,
            "/F",
            "NoChain",
            "/p",
            PASSWORD,
        ],
        &m,
    ));
    let err = refused(&tool("certutil", &["-exportPFX", "My", &thumb], &m));
    assert!(err.contains("-exportPFX takes [My] ID OUT.pfx"), "{err}");

    // The password was the one after -p: (not ":..."), as another machine's import shows.
    let other = lab.machine("other");
    let plain = lab.path("plain.txt");
    let imported = ok(&tool(
        "certutil",
        &[
            "-importPFX",
            "My",
            &out,
            "--password-file",
            &plain,
            "NoRoot",
        ],
        &other,
    ));
    assert!(imported.contains("added to My with its key"), "{imported}");

    // -p and a password switch together: which one is meant is not guessed.
    let both = tool(
        "certutil",
        &[
            "-importPFX",
            &out,
            "-p",
            PASSWORD,
            "--password-file",
            &plain,
        ],
        &other,
    );
    assert_eq!(both.status.code(), Some(2));
    assert!(
        text(&both.stderr).contains("cannot be used with"),
        "{}",
        text(&both.stderr)
    );

    for unknown in ["-hashfile", "-verifystore", "/setreg"] {
        let said = tool("certutil", &[unknown, &out], &m);
        assert_eq!(
            said.status.code(),
            Some(2),
            "{unknown}: {}",
            text(&said.stdout)
        );
        assert!(
            text(&said.stderr).contains(&unknown[1..]),
            "{unknown}: {}",
            text(&said.stderr)
        );
    }
}

//! An OpenSSL certificate authority for tests: an independent peer that signs our requests with
//! the dates and extensions a test asks for (`openssl ca`, so validity can lie in the past).

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl` with `args` in `dir`, panicking with its error output when it fails.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `openssl req -new` in `dir`: a new key made with `newkey` (`-newkey` and its options, e.g.
/// `["rsa:2048"]`), the request for `subject` with `extra` arguments, written as
/// `<stem>.key` and `<stem>.req`; returns the request's bytes.
pub(crate) fn openssl_request(
    dir: &Path,
    newkey: &[&str],
    subject: &str,
    extra: &[&str],
    stem: &str,
) -> Vec<u8> {
    let (key, req) = (format!("{stem}.key"), format!("{stem}.req"));
    let mut args = vec!["req", "-new", "-newkey"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&["-nodes", "-subj", subject]);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-keyout", &key, "-out", &req]);
    openssl(dir, &args);
    std::fs::read(dir.join(&req)).unwrap()
}

/// A root CA made by OpenSSL in its own folder.
pub(crate) struct OpensslCa {
    dir: PathBuf,
    /// The root certificate (PEM).
    pub(crate) cert: PathBuf,
    issued: usize,
}

/// How to sign one request.
#[derive(Default)]
pub(crate) struct Sign<'a> {
    /// Start of validity, `YYYYMMDDHHMMSSZ`; now when absent.
    pub(crate) start: Option<&'a str>,
    /// End of validity, `YYYYMMDDHHMMSSZ`; a year from now when absent.
    pub(crate) end: Option<&'a str>,
    /// Extensions to put in instead of copying the request's (OpenSSL config lines).
    pub(crate) extensions: Option<&'a str>,
}

impl OpensslCa {
    /// A P-256 root named `/CN=<name>` valid for ten years, in `dir` (created).
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "3650",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        Self {
            cert: dir.join("ca.pem"),
            dir: dir.to_owned(),
            issued: 0,
        }
    }

    /// The root's private key (PEM).
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Signs the request at `req`, writing the certificate (PEM) to `out`.
    pub(crate) fn sign(&mut self, req: &Path, out: &Path, how: &Sign<'_>) {
        self.issued += 1;
        let (copy, ext) = match how.extensions {
            Some(lines) => ("none", format!("[leaf]\n{lines}\n")),
            None => ("copy", "[leaf]\nbasicConstraints = CA:FALSE\n".to_owned()),
        };
        let config = format!(
            "[ca]\ndefault_ca = test\n[test]\ndir = .\ndatabase = index.txt\nnew_certs_dir = newcerts\n\
             certificate = ca.pem\nprivate_key = ca.key\nserial = serial\ndefault_md = sha256\n\
             default_days = 365\npolicy = any\ncopy_extensions = {copy}\nunique_subject = no\n\
             x509_extensions = leaf\n[any]\ncommonName = supplied\n{ext}"
        );
        let cnf = self.dir.join(format!("sign{}.cnf", self.issued));
        std::fs::write(&cnf, config).unwrap();
        let (req, out, cnf) = (
            req.to_str().unwrap(),
            out.to_str().unwrap(),
            cnf.to_str().unwrap(),
        );
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", cnf, "-in", req, "-out", out,
        ];
        if let Some(start) = how.start {
            args.extend(["-startdate", start]);
        }
        if let Some(end) = how.end {
            args.extend(["-enddate", end]);
        }
        openssl(&self.dir, &args);
    }
}

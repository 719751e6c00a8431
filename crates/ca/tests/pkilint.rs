//! pkilint (PyPI `pkilint`: `lint_pkix_cert`, `lint_crl`) as an independent judge of what the
//! CA writes: roots and agent certificates of every key type, and CRLs with and without
//! revoked certificates, with no finding at NOTICE or above. Skipped with a note where pkilint
//! is not installed, unless `OPSMGR_REQUIRE_PKILINT` is set (CI installs it and sets it).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use opsmgr_ca::authority::{Authority, InitOptions, RevocationReason};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{KeyType, PrivateKey, build_request, parse_policy};

fn available() -> bool {
    let found = Command::new("lint_pkix_cert")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("OPSMGR_REQUIRE_PKILINT").is_none(),
            "pkilint is not installed and OPSMGR_REQUIRE_PKILINT is set"
        );
        #[allow(
            clippy::print_stderr,
            reason = "the note a skipped check owes its reader"
        )]
        {
            eprintln!(
                "note: pkilint is not installed (pip install pkilint): its checks are skipped"
            );
        }
    }
    found
}

/// Runs a pkilint linter on `file`; its findings at NOTICE or above, or nothing.
fn lint(tool: &str, extra: &[&str], file: &Path) -> String {
    let out = Command::new(tool)
        .arg("lint")
        .args(extra)
        .args(["-s", "NOTICE"])
        .arg(file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        said.trim().to_owned()
    } else {
        format!("exit {:?}: {said}", out.status.code())
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

#[test]
fn pkilint_finds_nothing_in_our_certificates_and_crls() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    for root_key in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa(2048)] {
        let tag = root_key.to_string().replace(' ', "");
        let mut ca = Authority::init(
            &dir.path().join(&tag),
            &InitOptions {
                key: root_key,
                ..InitOptions::default()
            },
            now,
        )
        .unwrap();
        // Certificates with their CRL distribution point and the root's address (two of the
        // three CAs; the third issues without, as a policy without URLs does).
        if root_key != KeyType::EcdsaP384 {
            let mut config = ca.issuer().config().clone();
            config.crl_urls = vec![format!("http://pki.company.local/{tag}.crl")];
            config.ca_issuers_url = Some(format!("http://pki.company.local/{tag}.cer"));
            ca.set_config(config).unwrap();
        }
        let root = dir.path().join(format!("{tag}-root.pem"));
        std::fs::write(&root, pem("CERTIFICATE", &ca.issuer().root().der)).unwrap();
        assert_eq!(lint("lint_pkix_cert", &[], &root), "", "{tag} root");

        let empty = dir.path().join(format!("{tag}-empty.crl"));
        std::fs::write(&empty, pem("X509 CRL", &ca.crl(now).unwrap())).unwrap();
        assert_eq!(
            lint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &empty),
            "",
            "{tag} CRL with nothing revoked"
        );

        let mut serials = Vec::new();
        for (i, leaf_key) in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa(2048)]
            .into_iter()
            .enumerate()
        {
            let host = format!("agent{i}.company.local");
            let inf = format!(
                "[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = {}\nKeyLength = {}\n",
                if matches!(leaf_key, KeyType::Rsa(_)) {
                    "RSA"
                } else {
                    "ECDSA"
                },
                match leaf_key {
                    KeyType::EcdsaP256 => 256,
                    KeyType::EcdsaP384 => 384,
                    _ => 2048,
                }
            );
            let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
            let key = PrivateKey::generate(policy.key).unwrap();
            let request = der::Encode::to_der(&build_request(&policy, &key).unwrap()).unwrap();
            let id = ca
                .submit(&request, &format!("{host}.req"), now)
                .unwrap()
                .record
                .id;
            let issued = ca.resubmit(id, now).unwrap();
            let leaf = dir.path().join(format!("{tag}-{host}.pem"));
            std::fs::write(
                &leaf,
                pem("CERTIFICATE", issued.certificate.as_ref().unwrap()),
            )
            .unwrap();
            assert_eq!(lint("lint_pkix_cert", &[], &leaf), "", "{tag} {leaf_key}");
            let has_cdp = CertInfo::parse(issued.certificate.as_ref().unwrap())
                .unwrap()
                .crl_urls
                .contains(&format!("http://pki.company.local/{tag}.crl"));
            assert_eq!(has_cdp, root_key != KeyType::EcdsaP384, "{tag} {leaf_key}");
            serials.push(issued.serial.unwrap());
        }
        ca.revoke(&serials[0], RevocationReason::KeyCompromise, now)
            .unwrap();
        ca.revoke(&serials[1], RevocationReason::Unspecified, now)
            .unwrap();
        let revoked = dir.path().join(format!("{tag}-revoked.crl"));
        std::fs::write(&revoked, pem("X509 CRL", &ca.crl(now).unwrap())).unwrap();
        assert_eq!(
            lint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &revoked),
            "",
            "{tag} CRL with revoked certificates"
        );
    }
}

//! The CA against OpenSSL as the independent judge: roots and leaves of every key type verify
//! with `openssl verify -x509_strict`, the validity clamp and the extensions are what
//! `openssl x509 -text` shows, the CRL verifies, the encrypted key opens with `openssl pkey`;
//! and the request database's rules: ids, duplicates, denials, revocation.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use opsmgr_ca::Error;
use opsmgr_ca::authority::{
    Authority, Disposition, Filter, InitOptions, LeafNotAfter, RevocationReason,
};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{KeyType, PrivateKey, build_request, parse_policy, request_to_pem};

mod support;
use support::openssl::{openssl, openssl_request};

fn our_request(cn: &str, key: KeyType, extra: &str) -> Vec<u8> {
    let key_line = match key {
        KeyType::EcdsaP256 => "KeyAlgorithm = ECDSA_P256".to_owned(),
        KeyType::EcdsaP384 => "KeyAlgorithm = ECDSA_P384".to_owned(),
        KeyType::Rsa(bits) => format!("KeyLength = {bits}"),
        other => panic!("{other}"),
    };
    let inf = format!("[NewRequest]\nSubject = \"CN={cn}, O=Contoso, C=NL\"\n{key_line}\n{extra}");
    let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
    let key = PrivateKey::generate(policy.key).unwrap();
    request_to_pem(&build_request(&policy, &key).unwrap())
        .unwrap()
        .into_bytes()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

fn pem(der: &[u8]) -> Vec<u8> {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .unwrap()
        .into_bytes()
}

fn text(dir: &Path, cert: &str) -> String {
    String::from_utf8(openssl(dir, &["x509", "-in", cert, "-noout", "-text"])).unwrap()
}

#[test]
fn every_root_and_leaf_key_type_verifies_with_openssl_x509_strict() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let roots = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa(2048),
        KeyType::Rsa(3072),
        KeyType::Rsa(4096),
    ];
    for root_key in roots {
        let ca_dir = dir.path().join(format!("ca-{root_key}").replace(' ', ""));
        let mut ca = Authority::init(
            &ca_dir,
            &InitOptions {
                key: root_key,
                ..InitOptions::default()
            },
            now,
        )
        .unwrap();
        let root_text = text(dir.path(), ca_dir.join("ca.cer").to_str().unwrap());
        assert!(root_text.contains("CA:TRUE"), "{root_text}");
        assert!(
            root_text.contains("Certificate Sign, CRL Sign"),
            "{root_text}"
        );
        assert!(
            root_text.contains("X509v3 Subject Key Identifier"),
            "{root_text}"
        );
        // Every leaf type under the P-256 root; under RSA roots the two common ones.
        let leaves: &[KeyType] = if root_key == KeyType::EcdsaP256 {
            &[
                KeyType::EcdsaP256,
                KeyType::EcdsaP384,
                KeyType::Rsa(2048),
                KeyType::Rsa(3072),
                KeyType::Rsa(4096),
            ]
        } else {
            &[KeyType::EcdsaP256, KeyType::Rsa(2048)]
        };
        for &leaf_key in leaves {
            let cn = "agent01.company.local";
            let submitted = ca
                .submit(
                    &our_request(cn, leaf_key, ""),
                    "agent01.company.local.req",
                    now,
                )
                .unwrap();
            assert_eq!(submitted.record.disposition, Disposition::Pending);
            let issued = ca.resubmit(submitted.record.id, now).unwrap();
            assert_eq!(issued.disposition, Disposition::Issued);
            let der = issued.certificate.clone().unwrap();
            let leaf = write(dir.path(), "leaf.pem", &pem(&der));
            openssl(
                dir.path(),
                &[
                    "verify",
                    "-x509_strict",
                    "-CAfile",
                    ca_dir.join("ca.cer").to_str().unwrap(),
                    &leaf,
                ],
            );
            let t = text(dir.path(), &leaf);
            assert!(
                t.contains("Subject: CN = agent01.company.local\n"),
                "only the CN is kept: {t}"
            );
            assert!(t.contains("DNS:agent01.company.local"), "{t}");
            assert!(
                t.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
                "{t}"
            );
            assert!(t.contains("X509v3 Authority Key Identifier"), "{t}");
            let usage = if matches!(leaf_key, KeyType::EcdsaP256 | KeyType::EcdsaP384) {
                "Digital Signature\n"
            } else {
                "Digital Signature, Key Encipherment\n"
            };
            assert!(t.contains(usage), "{t}");
            let info = CertInfo::parse(&der).unwrap();
            assert_eq!(info.serial.len(), 16, "16 random octets");
            assert_eq!(issued.serial.as_deref(), Some(info.serial_hex().as_str()));
            assert_eq!(info.issuer, "CN=JAMA00");
            assert!(
                issued.message.contains("subject attribute"),
                "{}",
                issued.message
            );
        }
    }
}

#[test]
fn issued_validity_is_clamped_to_the_root_or_denied_by_policy() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    // The seed: root and certificates for 100 years; the certificate ends with the root.
    let mut ca = Authority::init(
        &dir.path().join("ca"),
        &InitOptions {
            validity_years: 100,
            issued_validity_days: 36_525,
            ..InitOptions::default()
        },
        now,
    )
    .unwrap();
    let root = ca.issuer().root().clone();
    assert!(
        root.not_after > SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800),
        "past 2100: GeneralizedTime"
    );
    let id = ca
        .submit(
            &our_request("a.company.local", KeyType::EcdsaP256, ""),
            "a.company.local.req",
            now,
        )
        .unwrap()
        .record
        .id;
    let r = ca.resubmit(id, now + Duration::from_secs(86_400)).unwrap();
    let leaf = CertInfo::parse(r.certificate.as_ref().unwrap()).unwrap();
    assert_eq!(
        leaf.not_after, root.not_after,
        "truncated to the root's end"
    );
    // Said once for the CA, not in every request's message.
    assert!(!r.message.contains("truncated"), "{}", r.message);
    assert_eq!(ca.issuer().truncated_at(now), Some(root.not_after));
    let leaf_file = write(dir.path(), "a.pem", &pem(r.certificate.as_ref().unwrap()));
    let t = text(dir.path(), &leaf_file);
    let root_t = text(dir.path(), dir.path().join("ca/ca.cer").to_str().unwrap());
    let not_after = |t: &str| {
        t.lines()
            .find(|l| l.contains("Not After"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(not_after(&t), not_after(&root_t));

    let mut config = ca.issuer().config().clone();
    config.leaf_not_after = LeafNotAfter::Err;
    ca.set_config(config).unwrap();
    let r = ca
        .submit(
            &our_request("b.company.local", KeyType::EcdsaP256, ""),
            "b.company.local.req",
            now,
        )
        .unwrap()
        .record;
    assert_eq!(r.disposition, Disposition::Denied);
    assert!(
        r.message.contains("would outlive the root"),
        "{}",
        r.message
    );
    assert!(r.certificate.is_none());
}

#[test]
fn openssl_requests_small_keys_and_foreign_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = SystemTime::now();
    let mut ca = Authority::init(&d.join("ca"), &InitOptions::default(), now).unwrap();
    let mut config = ca.issuer().config().clone();
    config.allowed_dns_suffixes = vec![".company.local".into()];
    config.auto_issue = true;
    ca.set_config(config).unwrap();

    // OpenSSL's request with names of its own: the allowed one kept, the foreign one ignored.
    let w = openssl_request(
        d,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=web01.company.local",
        &[
            "-addext",
            "subjectAltName=DNS:web01.company.local,DNS:alias.company.local,DNS:www.evil.example",
        ],
        "w",
    );
    let r = ca.submit(&w, "w.req", now).unwrap().record;
    assert_eq!(
        r.disposition,
        Disposition::Issued,
        "auto-issue: {}",
        r.message
    );
    let info = CertInfo::parse(r.certificate.as_ref().unwrap()).unwrap();
    assert_eq!(
        info.dns_names,
        ["web01.company.local", "alias.company.local"]
    );
    assert!(
        r.message
            .contains("alternative name 'www.evil.example' ignored"),
        "{}",
        r.message
    );

    // RSA-1024 is denied with the reason and the override's name.
    let o = openssl_request(d, &["rsa:1024"], "/CN=old.company.local", &[], "o");
    let r = ca.submit(&o, "o.req", now).unwrap().record;
    assert_eq!(r.disposition, Disposition::Denied);
    assert!(
        r.message.contains("1024 bits is below the policy's 2048"),
        "{}",
        r.message
    );
    assert!(r.message.contains("allow_legacy_rsa1024"), "{}", r.message);

    // A common name that is not a host name never becomes a certificate.
    let x = openssl_request(
        d,
        &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=..\\/..\\/x",
        &[],
        "x",
    );
    let r = ca.submit(&x, "x.req", now).unwrap().record;
    assert_eq!(r.disposition, Disposition::Denied);
    assert!(
        r.message.contains("is not a DNS host name"),
        "{}",
        r.message
    );

    // Same request again: the first id, nothing new.
    let again = ca
        .submit(&std::fs::read(d.join("w.req")).unwrap(), "w.req", now)
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.record.id, 1);
    assert_eq!(ca.list(&Filter::default()).unwrap().len(), 3);
    // A tampered request (its CN changed after signing) is recorded as denied.
    let (_, mut der) = der::pem::decode_vec(&std::fs::read(d.join("w.req")).unwrap()).unwrap();
    let at = der.windows(5).position(|w| w == b"web01").unwrap();
    der[at] = b'v';
    let r = ca.submit(&der, "bad.req", now).unwrap().record;
    assert_eq!(r.disposition, Disposition::Denied);
    assert!(
        r.message.contains("signature does not verify"),
        "{}",
        r.message
    );
    // Bytes that are no request at all are refused before the database, with the DER
    // reader's own error as the source.
    match ca.submit(b"not a request", "junk.req", now) {
        Err(Error::Request {
            message,
            source: Some(source),
        }) => {
            assert!(message.starts_with("not a PKCS#10 request"), "{message}");
            assert!(source.downcast_ref::<der::Error>().is_some(), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ca.list(&Filter::default()).unwrap().len(), 4);
}

#[test]
fn ids_denials_revocation_and_a_crl_openssl_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = SystemTime::now();
    let mut ca = Authority::init(&d.join("ca"), &InitOptions::default(), now).unwrap();
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            let cn = format!("a{i}.company.local");
            ca.submit(
                &our_request(&cn, KeyType::EcdsaP256, ""),
                &format!("{cn}.req"),
                now,
            )
            .unwrap()
            .record
            .id
        })
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let denied = ca.deny(2, "not one of ours").unwrap();
    assert_eq!(
        (denied.disposition, denied.message.as_str()),
        (Disposition::Denied, "not one of ours")
    );
    let one = ca.resubmit(1, now).unwrap();
    let three = ca.resubmit(3, now).unwrap();
    assert!(matches!(ca.resubmit(1, now), Err(Error::NotPending(1))));
    let revoked = ca
        .revoke(
            one.serial.as_deref().unwrap(),
            RevocationReason::KeyCompromise,
            now,
        )
        .unwrap();
    assert_eq!(revoked.disposition, Disposition::Revoked);
    // Again: harmless, the first reason stays.
    assert_eq!(
        ca.revoke(
            one.serial.as_deref().unwrap(),
            RevocationReason::Superseded,
            now
        )
        .unwrap()
        .revocation_reason,
        Some(RevocationReason::KeyCompromise)
    );
    assert!(matches!(
        ca.revoke("00AB", RevocationReason::Unspecified, now),
        Err(Error::NoSuchSerial(_))
    ));

    let crl = ca.crl(now).unwrap();
    let crl_pem = der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, &crl).unwrap();
    let crl_file = write(d, "ca.crl", crl_pem.as_bytes());
    let out = String::from_utf8(openssl(
        d,
        &[
            "crl",
            "-in",
            &crl_file,
            "-CAfile",
            d.join("ca/ca.cer").to_str().unwrap(),
            "-noout",
            "-text",
        ],
    ))
    .unwrap();
    assert!(
        out.contains(&format!(
            "Serial Number: {}",
            one.serial.as_deref().unwrap()
        )),
        "{out}"
    );
    assert!(!out.contains(three.serial.as_deref().unwrap()), "{out}");
    assert!(out.contains("Key Compromise"), "{out}");
    let verify = std::process::Command::new("openssl")
        .args([
            "crl",
            "-in",
            &crl_file,
            "-CAfile",
            d.join("ca/ca.cer").to_str().unwrap(),
            "-noout",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains("verify OK"),
        "{verify:?}"
    );
    // CRL numbers grow.
    let second = ca.crl(now).unwrap();
    let second_file = write(
        d,
        "ca2.crl",
        der::pem::encode_string("X509 CRL", der::pem::LineEnding::LF, &second)
            .unwrap()
            .as_bytes(),
    );
    let numbers: Vec<String> = [&crl_file, &second_file]
        .iter()
        .map(|f| String::from_utf8(openssl(d, &["crl", "-in", f, "-noout", "-crlnumber"])).unwrap())
        .collect();
    assert_eq!(numbers, ["crlNumber=0x01\n", "crlNumber=0x02\n"]);

    let filter = Filter {
        disposition: Some(Disposition::Issued),
        ..Filter::default()
    };
    assert_eq!(
        ca.list(&filter)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [3]
    );
    // A denied request may be resubmitted: it is reviewed again under today's policy.
    let again = ca.resubmit(2, now).unwrap();
    assert_eq!(again.disposition, Disposition::Issued, "{}", again.message);
    assert!(matches!(ca.resubmit(2, now), Err(Error::NotPending(2))));
    // Reopened: same ids continue; the deleted-row case cannot reuse an id (AUTOINCREMENT).
    drop(ca);
    let mut ca = Authority::open(&d.join("ca"), None).unwrap();
    let next = ca
        .submit(
            &our_request("b.company.local", KeyType::EcdsaP256, ""),
            "b.req",
            now,
        )
        .unwrap();
    assert_eq!(next.record.id, 4);
}

#[test]
fn an_encrypted_ca_key_opens_with_its_password_and_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = InitOptions {
        password: Some(zeroize::Zeroizing::new("correct horse battery".into())),
        ..InitOptions::default()
    };
    Authority::init(&d.join("ca"), &options, SystemTime::now()).unwrap();
    let key = std::fs::read_to_string(d.join("ca/ca.key")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(d.join("ca/ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(matches!(
        Authority::open(&d.join("ca"), None),
        Err(Error::PasswordRequired(_))
    ));
    assert!(matches!(
        Authority::open(&d.join("ca"), Some("wrong")),
        Err(Error::WrongPassword(_))
    ));
    Authority::open(&d.join("ca"), Some("correct horse battery")).unwrap();
    let from_key = openssl(
        d,
        &[
            "pkey",
            "-in",
            "ca/ca.key",
            "-passin",
            "pass:correct horse battery",
            "-pubout",
        ],
    );
    let from_cert = openssl(d, &["x509", "-in", "ca/ca.cer", "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
    let again = Authority::init(&d.join("ca"), &options, SystemTime::now()).unwrap_err();
    assert!(again.to_string().contains("already holds a CA"), "{again}");
}

#[test]
fn who_may_get_which_name_and_the_policy_checked_when_opened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = SystemTime::now();
    // An existing folder, made with a loose mode, is tightened; the database is owner-only.
    std::fs::create_dir(d.join("ca")).unwrap();
    std::fs::set_permissions(d.join("ca"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut ca = Authority::init(&d.join("ca"), &InitOptions::default(), now).unwrap();
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca"), 0o700);
    assert_eq!(mode("ca/ca.db"), 0o600);

    // Suffixes match on a label boundary only.
    let mut config = ca.issuer().config().clone();
    config.allowed_dns_suffixes = vec!["company.local".into()];
    ca.set_config(config.clone()).unwrap();
    let extra = "[Extensions]\n2.5.29.17 = \"{text}\"\n_continue_ = \"dns=h1.company.local&\"\n_continue_ = \"dns=alias.company.local&\"\n_continue_ = \"dns=evilcompany.local&\"\n_continue_ = \"dns=company.local\"\n";
    let r = ca
        .submit(
            &our_request("h1.company.local", KeyType::EcdsaP256, extra),
            "h1.company.local.req",
            now,
        )
        .unwrap()
        .record;
    let issued = ca.resubmit(r.id, now).unwrap();
    let cert = CertInfo::parse(issued.certificate.as_ref().unwrap()).unwrap();
    assert_eq!(cert.dns_names, ["h1.company.local", "alias.company.local"]);
    for dropped in ["'evilcompany.local' ignored", "'company.local' ignored"] {
        assert!(issued.message.contains(dropped), "{}", issued.message);
    }

    // A policy that would admit every name, or names no DNS name, is refused, both when set
    // and when a hand-edited config.json is opened.
    for (suffix, said) in [
        ("", "is empty, which would admit every name"),
        (".", "is empty, which would admit every name"),
        ("bad name.local", "is not a DNS name"),
    ] {
        config.allowed_dns_suffixes = vec![suffix.into()];
        let e = ca.set_config(config.clone()).unwrap_err().to_string();
        assert!(
            e.contains("allowed_dns_suffixes[0]") && e.contains(said),
            "{e}"
        );
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("ca/config.json")).unwrap()).unwrap();
        json["allowed_dns_suffixes"] = serde_json::json!([suffix]);
        let hand_edited = d.join("edited");
        if !hand_edited.exists() {
            copy_dir(&d.join("ca"), &hand_edited);
        }
        std::fs::write(
            hand_edited.join("config.json"),
            serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        let e = Authority::open(&hand_edited, None).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains(said), "{e}");
    }

    // A CRL with nothing revoked has no revokedCertificates at all.
    let crl = ca.crl(now).unwrap();
    let parsed = <x509_cert::crl::CertificateList as der::Decode>::from_der(&crl).unwrap();
    assert!(parsed.tbs_cert_list.revoked_certificates.is_none());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_hundred_year_root_ends_a_hundred_calendar_years_later() {
    let dir = tempfile::tempdir().unwrap();
    // 2024-02-29 12:34:56 UTC: the leap day, into a year without one.
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
    for (years, end) in [
        // 2124-02-29 is a leap day again; 2025 has none: 28 February.
        (100, 4_864_883_696_u64),
        (1, 1_740_746_096),
    ] {
        let ca = Authority::init(
            &dir.path().join(format!("ca{years}")),
            &InitOptions {
                validity_years: years,
                ..InitOptions::default()
            },
            start,
        )
        .unwrap();
        assert_eq!(
            ca.issuer().root().not_after,
            std::time::UNIX_EPOCH + Duration::from_secs(end),
            "{years} years"
        );
    }
}

/// A repeatable generator for tests: the same seed, the same bytes.
struct Counter(u8);

impl getrandom::rand_core::TryRng for Counter {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
        Ok(())
    }
}

impl getrandom::rand_core::TryCryptoRng for Counter {}

#[test]
fn serial_numbers_come_from_the_generator_given() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Authority::init(&dir.path().join("ca"), &InitOptions::default(), now).unwrap();
    let request =
        opsmgr_ca::request::parse_request(&our_request("a.company.local", KeyType::EcdsaP256, ""))
            .unwrap();
    let approved = ca.issuer().review(&request, now).unwrap();
    let one = ca
        .issuer()
        .sign_with_rng(&approved, &mut Counter(0x80))
        .unwrap();
    let two = ca
        .issuer()
        .sign_with_rng(&approved, &mut Counter(0x80))
        .unwrap();
    // 16 octets from the generator, positive with a non-zero first octet.
    let mut expected: Vec<u8> = (0x81..=0x90).collect();
    expected[0] = (expected[0] & 0x7f) | 0x01;
    assert_eq!(one.serial, expected);
    assert_eq!(
        two.serial, one.serial,
        "the same generator, the same serial"
    );
    assert_eq!(CertInfo::parse(&one.der).unwrap().serial, expected);
}

#[test]
fn a_denial_has_a_kind_a_tool_can_act_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = SystemTime::now();
    let ca = Authority::init(&d.join("ca"), &InitOptions::default(), now).unwrap();
    let old = openssl_request(d, &["rsa:1024"], "/CN=old.company.local", &[], "old");
    let request = opsmgr_ca::request::parse_request(&old).unwrap();
    let denial = ca.issuer().review(&request, now).unwrap_err();
    assert_eq!(
        denial,
        opsmgr_ca::authority::Denial::WeakKey {
            bits: 1024,
            floor: 2048
        }
    );
    assert!(
        denial
            .to_string()
            .contains("Make a new request with KeyLength = 2048"),
        "{denial}"
    );
    let anon = openssl_request(d, &["rsa:2048"], "/O=No Name", &[], "anon");
    let anon = opsmgr_ca::request::parse_request(&anon).unwrap();
    assert!(matches!(
        ca.issuer().review(&anon, now),
        Err(opsmgr_ca::authority::Denial::NoCommonName)
    ));
}

/// A database of version 1 (before lineage and key digests) opens with every row completed
/// from its stored request: the digests, the names, and one current certificate per host.
#[test]
fn a_version_1_database_is_upgraded_and_its_rows_completed() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca_dir = dir.path().join("ca");
    let mut ca = Authority::init(&ca_dir, &InitOptions::default(), now).unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let inf =
            "[NewRequest]\nSubject = \"CN=agent01.company.local\"\nKeyAlgorithm = ECDSA_P256\n";
        let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
        let key = PrivateKey::generate(policy.key).unwrap();
        let req = request_to_pem(&build_request(&policy, &key).unwrap()).unwrap();
        let id = ca.submit(req.as_bytes(), "a.req", now).unwrap().record.id;
        ca.resubmit(id, now).unwrap();
        ids.push(id);
    }
    drop(ca);
    // Back to version 1, as the previous release left it.
    let db = rusqlite::Connection::open(ca_dir.join("ca.db")).unwrap();
    db.execute_batch(
        "DROP INDEX requests_inner; DROP INDEX requests_key; DROP TABLE compromised_keys;
         ALTER TABLE requests DROP COLUMN inner_sha256; ALTER TABLE requests DROP COLUMN key_sha256;
         ALTER TABLE requests DROP COLUMN key_desc; ALTER TABLE requests DROP COLUMN requested_names;
         ALTER TABLE requests DROP COLUMN certified_names; ALTER TABLE requests DROP COLUMN renews;
         ALTER TABLE requests DROP COLUMN superseded_by; ALTER TABLE crls DROP COLUMN next_update;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(db);

    let ca = Authority::open(&ca_dir, None).unwrap();
    let (old, new) = (ca.record(ids[0]).unwrap(), ca.record(ids[1]).unwrap());
    assert_eq!(
        old.superseded_by,
        Some(ids[1]),
        "one current certificate per host"
    );
    assert_eq!(new.superseded_by, None);
    for r in [&old, &new] {
        assert_eq!(r.key.as_deref(), Some("ECDSA P-256"));
        assert_eq!(r.requested_names, ["agent01.company.local"]);
        assert_eq!(r.certified_names, ["agent01.company.local"]);
    }
    let version: i64 = rusqlite::Connection::open(ca_dir.join("ca.db"))
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

/// verify_certificate says what kind of failure it met: not a certificate, a key of the wrong
/// kind, a signature that does not match (with the verifier's error as its source).
#[test]
fn a_certificates_signature_failure_is_typed() {
    use der::Decode;
    use opsmgr_ca::cert::verify_certificate;
    use opsmgr_ca::request::SignatureError;
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::init(
        &dir.path().join("ca"),
        &InitOptions::default(),
        SystemTime::now(),
    )
    .unwrap();
    let root = ca.issuer().root().clone();
    let own = spki::SubjectPublicKeyInfoOwned::from_der(&root.public_key).unwrap();
    verify_certificate(&root.der, &own).unwrap();

    assert!(matches!(
        verify_certificate(b"not a certificate", &own),
        Err(SignatureError::NotACertificate(_))
    ));
    let rsa = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let rsa = spki::SubjectPublicKeyInfoOwned::from_der(&rsa.public_key_der().unwrap()).unwrap();
    assert!(matches!(
        verify_certificate(&root.der, &rsa),
        Err(SignatureError::WrongKey { expected: "EC", .. })
    ));
    let mut tampered = root.der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let err = verify_certificate(&tampered, &own).unwrap_err();
    assert!(matches!(&err, SignatureError::Mismatch { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
}

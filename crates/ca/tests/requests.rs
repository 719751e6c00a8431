//! Requests checked by an independent peer: `openssl req -verify` and `-text` accept ours, and
//! we parse and verify OpenSSL's.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::process::Command;

use opsmgr_ca::request::{
    KeyType, PolicyOptions, PrivateKey, build_request, parse_policy, parse_request, request_to_pem,
    verify_request,
};

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn policy_inf(algorithm: &str, length: &str) -> String {
    format!(
        "[Version]\r\nSignature=\"$Windows NT$\"\r\n[NewRequest]\r\nSubject = \"CN=agent01.company.local, O=Contoso, C=NL\"\r\n\
         KeyAlgorithm = {algorithm}\r\n{length}KeyUsage = 0xa0\r\nExportable = TRUE\r\nMachineKeySet = TRUE\r\n\
         [Extensions]\r\n2.5.29.17 = \"{{text}}\"\r\n_continue_ = \"dns=agent01.company.local&\"\r\n_continue_ = \"dns=agent01\"\r\n"
    )
}

fn check_with_openssl(dir: &Path, kind: KeyType, inf: &str, key_text: &str, key_usage: &str) {
    let policy = parse_policy(inf.as_bytes(), "certreq.inf", PolicyOptions::default()).unwrap();
    assert_eq!(policy.key, kind);
    let key = PrivateKey::generate(kind).unwrap();
    let request = build_request(&policy, &key).unwrap();
    let pem = request_to_pem(&request).unwrap();
    assert!(pem.starts_with("-----BEGIN NEW CERTIFICATE REQUEST-----\r\n"));
    assert!(
        pem.trim_end()
            .ends_with("-----END NEW CERTIFICATE REQUEST-----")
    );
    let file = dir.join(format!("{kind}.req"));
    std::fs::write(&file, &pem).unwrap();
    let f = file.to_str().unwrap();

    let (ok, text) = openssl(&["req", "-in", f, "-verify", "-noout"]);
    assert!(ok && text.contains("verify OK"), "{kind}: {text}");
    let (ok, text) = openssl(&["req", "-in", f, "-text", "-noout"]);
    assert!(ok, "{text}");
    for want in [
        "Subject: C = NL, O = Contoso, CN = agent01.company.local",
        key_text,
        key_usage,
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "DNS:agent01.company.local, DNS:agent01",
    ] {
        assert!(text.contains(want), "{kind}: missing '{want}' in\n{text}");
    }

    // Our own reader agrees, and a changed byte breaks the signature.
    let parsed = parse_request(pem.as_bytes()).unwrap();
    verify_request(&parsed).unwrap();
    let mut der = parsed.der().to_vec();
    let at = der.windows(7).position(|w| w == b"Contoso").unwrap();
    der[at] = b'K';
    let tampered = parse_request(&der).unwrap();
    assert!(
        verify_request(&tampered).is_err(),
        "{kind}: tampered request verified"
    );

    // The key's PKCS#8 form is readable by OpenSSL and by us.
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let key_file = dir.join(format!("{kind}.key.der"));
    std::fs::write(&key_file, pkcs8.as_slice()).unwrap();
    let (ok, text) = openssl(&[
        "pkey",
        "-in",
        key_file.to_str().unwrap(),
        "-inform",
        "DER",
        "-noout",
    ]);
    assert!(ok, "{text}");
    assert_eq!(
        PrivateKey::from_pkcs8_der(&pkcs8)
            .unwrap()
            .public_key_der()
            .unwrap(),
        key.public_key_der().unwrap()
    );
}

#[test]
fn openssl_accepts_our_requests_for_every_key_type() {
    let dir = tempfile::tempdir().unwrap();
    check_with_openssl(
        dir.path(),
        KeyType::Rsa(2048),
        &policy_inf("RSA", "KeyLength = 2048\r\n"),
        "Public-Key: (2048 bit)",
        "Digital Signature, Key Encipherment",
    );
    check_with_openssl(
        dir.path(),
        KeyType::Rsa(3072),
        &policy_inf("RSA", "KeyLength = 3072\r\n"),
        "Public-Key: (3072 bit)",
        "Digital Signature, Key Encipherment",
    );
    check_with_openssl(
        dir.path(),
        KeyType::EcdsaP256,
        &policy_inf("ECDSA_P256", ""),
        "ASN1 OID: prime256v1",
        "Digital Signature, Key Encipherment",
    );
    check_with_openssl(
        dir.path(),
        KeyType::EcdsaP384,
        &policy_inf("ECDSA_P384", ""),
        "ASN1 OID: secp384r1",
        "Digital Signature, Key Encipherment",
    );
    let p384 = std::fs::read(dir.path().join("ECDSA P-384.req")).unwrap();
    assert_eq!(
        parse_request(&p384).unwrap().verify().unwrap().to_string(),
        "sha384ECDSA"
    );
    // AlternateSignatureAlgorithm = TRUE: RSASSA-PSS, as certreq signs.
    let pss_dir = dir.path().join("pss");
    std::fs::create_dir(&pss_dir).unwrap();
    check_with_openssl(
        &pss_dir,
        KeyType::Rsa(2048),
        &policy_inf(
            "RSA",
            "KeyLength = 2048\r\nAlternateSignatureAlgorithm = TRUE\r\n",
        ),
        "Public-Key: (2048 bit)",
        "Digital Signature, Key Encipherment",
    );
    let pss = std::fs::read(pss_dir.join("RSA-2048.req")).unwrap();
    assert_eq!(
        parse_request(&pss).unwrap().verify().unwrap().to_string(),
        "RSASSA-PSS (sha256, MGF1, salt 32)"
    );
    let (ok, text) = openssl(&[
        "req",
        "-in",
        pss_dir.join("RSA-2048.req").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        ok && text.contains("Signature Algorithm: rsassaPss"),
        "{text}"
    );
}

#[test]
fn we_parse_and_verify_openssl_requests() {
    let dir = tempfile::tempdir().unwrap();
    for (name, newkey) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let req = dir.path().join(format!("{name}.req"));
        let key = dir.path().join(format!("{name}.key"));
        let mut args = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=host.company.local",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            req.to_str().unwrap(),
        ];
        let params = dir.path().join("p256.pem");
        if name == "ec" {
            assert!(
                openssl(&[
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    params.to_str().unwrap()
                ])
                .0
            );
            args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        } else {
            args.extend(["-newkey", newkey]);
        }
        let (ok, text) = openssl(&args);
        assert!(ok, "{text}");
        let request = parse_request(&std::fs::read(&req).unwrap()).unwrap();
        verify_request(&request).unwrap();
        assert_eq!(
            request.request().info.subject.to_string(),
            "CN=host.company.local"
        );
        // DER works too.
        let der = dir.path().join(format!("{name}.der"));
        assert!(
            openssl(&[
                "req",
                "-in",
                req.to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                der.to_str().unwrap()
            ])
            .0
        );
        verify_request(&parse_request(&std::fs::read(&der).unwrap()).unwrap()).unwrap();
    }
}

#[test]
fn request_refusals() {
    assert!(
        parse_request(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
    );
    assert!(
        parse_request(&vec![0u8; 70_000])
            .unwrap_err()
            .to_string()
            .contains("larger than 65536")
    );
    assert!(parse_request(b"\x30\x03\x02\x01\x00").is_err());
    let policy = parse_policy(
        policy_inf("RSA", "").as_bytes(),
        "x.inf",
        PolicyOptions::default(),
    )
    .unwrap();
    let ec = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    assert_eq!(
        build_request(&policy, &ec).unwrap_err().to_string(),
        "certificate request: the key is ECDSA P-256, the policy asks for RSA-2048"
    );
}

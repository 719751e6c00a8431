//! Requests exactly as Windows certreq writes them, through the drop folder: the four
//! Microsoft attributes in certreq's order (not DER's sorted SET OF order), `sha1RSA` from a
//! legacy CSP, SHA-256 from a CNG provider, RSASSA-PSS (`AlternateSignatureAlgorithm = TRUE`),
//! ECDSA on P-256 and P-384 with SHA-256 and SHA-384. Each must verify over the bytes as
//! received, be accepted by `openssl req -verify` (the independent judge of the file), and end
//! in a certificate that `openssl verify -x509_strict` accepts, with nothing Microsoft-specific
//! in it.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;
use std::str::FromStr;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitString, BmpString, Ia5String, OctetString, SetOfVec, Utf8StringRef};
use der::{Any, Decode, Encode, Tag, TagNumber};
use opsmgr_ca::authority::{Authority, InitOptions};
use opsmgr_ca::dropfolder::{ProcessOptions, process_share};
use opsmgr_ca::request::{KeyType, PrivateKey, SignatureAlgorithm, parse_request};
use signature::hazmat::PrehashSigner;
use x509_cert::attr::Attribute;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::name::Name;

mod support;
use support::openssl::openssl;

/// How the test request is signed.
#[derive(Debug, Clone, Copy)]
enum Sig {
    Sha1Rsa,
    Sha256Rsa,
    Pss(usize),
    EcdsaSha256,
    EcdsaSha384,
}

fn oid(s: &str) -> ObjectIdentifier {
    ObjectIdentifier::from_str(s).unwrap()
}

fn attribute(id: &str, value: Any) -> Vec<u8> {
    Attribute {
        oid: oid(id),
        values: SetOfVec::try_from(vec![value]).unwrap(),
    }
    .to_der()
    .unwrap()
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    AnyRef::new(Tag::Sequence, &parts.concat())
        .unwrap()
        .to_der()
        .unwrap()
}

fn any(der: &[u8]) -> Any {
    Any::from_der(der).unwrap()
}

fn bmp(s: &str) -> Vec<u8> {
    BmpString::from_utf8(s).unwrap().to_der().unwrap()
}

fn extension<T: Encode>(id: &str, critical: bool, value: &T) -> Extension {
    Extension {
        extn_id: oid(id),
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    }
}

/// The request certreq writes for `cn` with `provider`: attributes in certreq's order, then
/// signed over exactly those bytes.
fn windows_request(key: &PrivateKey, cn: &str, provider: &str, sig: Sig) -> Vec<u8> {
    windows_request_with(key, cn, provider, sig, false)
}

/// The same, with the certificate template name extension when `template` (which makes the
/// extension request long enough to sort last anyway).
fn windows_request_with(
    key: &PrivateKey,
    cn: &str,
    provider: &str,
    sig: Sig,
    template: bool,
) -> Vec<u8> {
    let os_version = attribute(
        "1.3.6.1.4.1.311.13.2.3",
        Any::encode_from(&Ia5String::new("6.1.7601.2").unwrap()).unwrap(),
    );
    let name_values = attribute(
        "1.3.6.1.4.1.311.13.2.1",
        any(&sequence(&[bmp("CertificateTemplate"), bmp("Machine")])),
    );
    let client_info = attribute(
        "1.3.6.1.4.1.311.21.20",
        any(&sequence(&[
            5u8.to_der().unwrap(),
            Utf8StringRef::new(&cn.to_ascii_uppercase())
                .unwrap()
                .to_der()
                .unwrap(),
            Utf8StringRef::new("COMPANY\\administrator")
                .unwrap()
                .to_der()
                .unwrap(),
            Utf8StringRef::new("certreq.exe").unwrap().to_der().unwrap(),
        ])),
    );
    let csp = attribute(
        "1.3.6.1.4.1.311.13.2.2",
        any(&sequence(&[
            1u8.to_der().unwrap(),
            bmp(provider),
            BitString::from_bytes(&[]).unwrap().to_der().unwrap(),
        ])),
    );
    // Template name and application policies (Microsoft), EKU, KeyUsage critical: the CA must
    // keep none of the Microsoft ones.
    let mut extensions = Vec::new();
    if template {
        extensions.push(extension(
            "1.3.6.1.4.1.311.20.2",
            false,
            &BmpString::from_utf8("Machine").unwrap(),
        ));
    }
    extensions.extend([
        extension(
            "1.3.6.1.4.1.311.21.10",
            false,
            &any(&sequence(&[sequence(&[oid("1.3.6.1.5.5.7.3.1")
                .to_der()
                .unwrap()])])),
        ),
        extension(
            "2.5.29.37",
            false,
            &ExtendedKeyUsage(vec![oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2")]),
        ),
        extension(
            "2.5.29.15",
            true,
            &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
        ),
    ]);
    let extension_request = attribute("1.2.840.113549.1.9.14", any(&extensions.to_der().unwrap()));
    // certreq's order, not DER's: the extension request comes last though it is shorter.
    let attributes = [os_version, name_values, client_info, csp, extension_request].concat();
    let info = sequence(&[
        0u8.to_der().unwrap(),
        Name::from_str(&format!("CN={cn}"))
            .unwrap()
            .to_der()
            .unwrap(),
        key.public_key_der().unwrap(),
        AnyRef::new(
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber(0),
            },
            &attributes,
        )
        .unwrap()
        .to_der()
        .unwrap(),
    ]);
    let (algorithm, signature) = sign(key, &info, sig);
    sequence(&[
        info,
        algorithm,
        BitString::from_bytes(&signature).unwrap().to_der().unwrap(),
    ])
}

fn rsa_id(o: &str) -> Vec<u8> {
    sequence(&[oid(o).to_der().unwrap(), der::asn1::Null.to_der().unwrap()])
}

fn sign(key: &PrivateKey, info: &[u8], sig: Sig) -> (Vec<u8>, Vec<u8>) {
    use signature::{RandomizedSigner, SignatureEncoding, Signer};
    use spki::DynSignatureAlgorithmIdentifier;
    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
    match (key, sig) {
        (PrivateKey::Rsa(k), Sig::Sha1Rsa) => (
            rsa_id("1.2.840.113549.1.1.5"),
            rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new((**k).clone())
                .sign(info)
                .to_vec(),
        ),
        (PrivateKey::Rsa(k), Sig::Sha256Rsa) => (
            rsa_id("1.2.840.113549.1.1.11"),
            rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new((**k).clone())
                .sign(info)
                .to_vec(),
        ),
        (PrivateKey::Rsa(k), Sig::Pss(salt)) => {
            let signer =
                rsa::pss::SigningKey::<sha2::Sha256>::new_with_salt_len((**k).clone(), salt);
            let id = signer.signature_algorithm_identifier().unwrap();
            (
                id.to_der().unwrap(),
                signer.sign_with_rng(&mut rng, info).to_vec(),
            )
        }
        (PrivateKey::P256(k), Sig::EcdsaSha256 | Sig::EcdsaSha384) => {
            let (id, digest) = ec_digest(info, sig);
            let s: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(k)
                .sign_prehash(&digest)
                .unwrap();
            (id, s.to_der().to_vec())
        }
        (PrivateKey::P384(k), Sig::EcdsaSha256 | Sig::EcdsaSha384) => {
            let (id, digest) = ec_digest(info, sig);
            let s: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(k)
                .sign_prehash(&digest)
                .unwrap();
            (id, s.to_der().to_vec())
        }
        (_, other) => panic!("{other:?} does not fit the key"),
    }
}

fn ec_digest(info: &[u8], sig: Sig) -> (Vec<u8>, Vec<u8>) {
    use sha2::Digest;
    match sig {
        Sig::EcdsaSha256 => (
            sequence(&[oid("1.2.840.10045.4.3.2").to_der().unwrap()]),
            sha2::Sha256::digest(info).to_vec(),
        ),
        _ => (
            sequence(&[oid("1.2.840.10045.4.3.3").to_der().unwrap()]),
            sha2::Sha384::digest(info).to_vec(),
        ),
    }
}

fn pem(der: &[u8], label: &str) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::CRLF, der).unwrap()
}

struct Case {
    host: &'static str,
    /// With the template name extension (its attributes then happen to be in DER order).
    template: bool,
    key: KeyType,
    provider: &'static str,
    sig: Sig,
    shown: &'static str,
}

const LEGACY_CSP: &str = "Microsoft RSA SChannel Cryptographic Provider";
const CNG: &str = "Microsoft Software Key Storage Provider";

fn cases() -> Vec<Case> {
    vec![
        Case {
            host: "legacy.company.local",
            template: false,
            key: KeyType::Rsa(2048),
            provider: LEGACY_CSP,
            sig: Sig::Sha1Rsa,
            shown: "sha1RSA",
        },
        Case {
            host: "cng.company.local",
            template: false,
            key: KeyType::Rsa(2048),
            provider: CNG,
            sig: Sig::Sha256Rsa,
            shown: "sha256RSA",
        },
        Case {
            host: "pss.company.local",
            template: false,
            key: KeyType::Rsa(2048),
            provider: CNG,
            sig: Sig::Pss(32),
            shown: "RSASSA-PSS (sha256, MGF1, salt 32)",
        },
        Case {
            host: "p256.company.local",
            template: false,
            key: KeyType::EcdsaP256,
            provider: CNG,
            sig: Sig::EcdsaSha256,
            shown: "sha256ECDSA",
        },
        Case {
            host: "p256-sha384.company.local",
            template: false,
            key: KeyType::EcdsaP256,
            provider: CNG,
            sig: Sig::EcdsaSha384,
            shown: "sha384ECDSA",
        },
        Case {
            host: "p384.company.local",
            template: false,
            key: KeyType::EcdsaP384,
            provider: CNG,
            sig: Sig::EcdsaSha384,
            shown: "sha384ECDSA",
        },
        Case {
            host: "template.company.local",
            template: true,
            key: KeyType::Rsa(2048),
            provider: LEGACY_CSP,
            sig: Sig::Sha256Rsa,
            shown: "sha256RSA",
        },
        Case {
            host: "p384-sha256.company.local",
            template: false,
            key: KeyType::EcdsaP384,
            provider: CNG,
            sig: Sig::EcdsaSha256,
            shown: "sha256ECDSA",
        },
    ]
}

/// `openssl req -verify` checks the file's signature itself (it panics when it fails).
fn check_with_openssl(dir: &Path, file: &str) {
    openssl(dir, &["req", "-in", file, "-verify", "-noout"]);
}

#[test]
fn windows_shaped_requests_verify_over_the_bytes_received() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let key = PrivateKey::generate(case.key).unwrap();
        let der = windows_request_with(&key, case.host, case.provider, case.sig, case.template);
        let file = format!("{}.req", case.host);
        std::fs::write(dir.path().join(&file), pem(&der, "NEW CERTIFICATE REQUEST")).unwrap();
        // The independent judge accepts the file as it is.
        check_with_openssl(dir.path(), &file);

        let received = parse_request(&std::fs::read(dir.path().join(&file)).unwrap()).unwrap();
        assert_eq!(received.der(), der, "the bytes are kept as received");
        // The attributes are not in DER order: a re-encoding would change the signed bytes.
        let reencoded = received.request().to_der().unwrap();
        assert_eq!(
            reencoded == der,
            case.template,
            "{}: the attributes are in certreq's order, not DER's",
            case.host
        );
        let algorithm = received.verify().unwrap();
        assert_eq!(algorithm.to_string(), case.shown);

        // One changed byte in the signed part breaks it.
        let mut tampered = der.clone();
        let at = tampered.windows(7).position(|w| w == b"certreq").unwrap();
        tampered[at] = b'C';
        let err = parse_request(&tampered).unwrap().verify().unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}

#[test]
fn windows_shaped_requests_are_issued_through_the_drop_folder() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    for root_key in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa(2048)] {
        let tag = root_key.to_string().replace(' ', "");
        let share = dir.path().join(format!("share-{tag}"));
        std::fs::create_dir(&share).unwrap();
        let ca_dir = dir.path().join(format!("ca-{tag}"));
        let mut ca = Authority::init(
            &ca_dir,
            &InitOptions {
                key: root_key,
                ..InitOptions::default()
            },
            now,
        )
        .unwrap();
        for case in cases() {
            let key = PrivateKey::generate(case.key).unwrap();
            let der = windows_request_with(&key, case.host, case.provider, case.sig, case.template);
            std::fs::write(
                share.join(format!("{}.req", case.host)),
                pem(&der, "NEW CERTIFICATE REQUEST"),
            )
            .unwrap();
        }
        let summary = process_share(
            &mut ca,
            &share,
            &ProcessOptions {
                issue: true,
                ..ProcessOptions::default()
            },
            now,
            &|_, _, _| {},
        )
        .unwrap();
        assert_eq!(summary.issued, cases().len(), "{tag}: {:#?}", summary.files);
        for case in cases() {
            let outcome = summary
                .files
                .iter()
                .find(|f| f.host.as_deref() == Some(case.host))
                .unwrap();
            // Every Microsoft attribute and extension is named as ignored.
            for ignored in [
                "1.3.6.1.4.1.311.13.2.3 (OS version) ignored",
                "1.3.6.1.4.1.311.13.2.1 (enrollment name-value pairs) ignored",
                "1.3.6.1.4.1.311.21.20 (client information) ignored",
                "1.3.6.1.4.1.311.13.2.2 (enrollment CSP) ignored",
                "1.3.6.1.4.1.311.21.10 (application policies) ignored",
            ] {
                assert!(
                    outcome.message.contains(ignored),
                    "{}: '{ignored}' missing from {}",
                    case.host,
                    outcome.message
                );
            }
            let template = "1.3.6.1.4.1.311.20.2 (certificate template name) ignored";
            assert_eq!(
                outcome.message.contains(template),
                case.template,
                "{}",
                outcome.message
            );
            let sha1_note = outcome
                .message
                .contains("sha1RSA: accepted as proof of possession");
            assert_eq!(
                sha1_note,
                matches!(case.sig, Sig::Sha1Rsa),
                "{}",
                outcome.message
            );

            let cer = share.join(format!("{}.cer", case.host));
            let cer = cer.to_str().unwrap();
            openssl(
                dir.path(),
                &[
                    "verify",
                    "-x509_strict",
                    "-CAfile",
                    ca_dir.join("ca.cer").to_str().unwrap(),
                    cer,
                ],
            );
            let text = String::from_utf8(openssl(
                dir.path(),
                &["x509", "-in", cer, "-noout", "-text"],
            ))
            .unwrap();
            assert!(!text.contains("1.3.6.1.4.1.311"), "{text}");
            assert!(!text.to_ascii_lowercase().contains("sha1"), "{text}");
            assert!(
                text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
                "{text}"
            );
        }
    }
}

#[test]
fn cmc_and_pkcs7_wrapped_requests_are_refused_naming_pkcs10() {
    // What certreq writes for RequestType = CMC: a CMS SignedData, under certreq's usual
    // request label. The content does not matter: the wrapper is refused before it.
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let inner = windows_request(&key, "cmc.company.local", CNG, Sig::EcdsaSha256);
    let signed_data = sequence(&[
        oid("1.2.840.113549.1.7.2").to_der().unwrap(),
        AnyRef::new(
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber(0),
            },
            &sequence(&[
                3u8.to_der().unwrap(),
                AnyRef::new(Tag::Set, &[]).unwrap().to_der().unwrap(),
                sequence(&[
                    oid("1.3.6.1.5.5.7.12.2").to_der().unwrap(),
                    AnyRef::new(
                        Tag::ContextSpecific {
                            constructed: true,
                            number: TagNumber(0),
                        },
                        &OctetString::new(inner).unwrap().to_der().unwrap(),
                    )
                    .unwrap()
                    .to_der()
                    .unwrap(),
                ]),
                AnyRef::new(Tag::Set, &[]).unwrap().to_der().unwrap(),
            ]),
        )
        .unwrap()
        .to_der()
        .unwrap(),
    ]);
    for bytes in [
        pem(&signed_data, "NEW CERTIFICATE REQUEST").into_bytes(),
        pem(&signed_data, "PKCS7").into_bytes(),
        signed_data.clone(),
    ] {
        let err = parse_request(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("CMC or PKCS #7-wrapped") && err.contains("RequestType = PKCS10"),
            "{err}"
        );
    }
}

#[test]
fn pss_parameters_are_checked() {
    // MGF1 over another digest than the message's is refused by name.
    let key = PrivateKey::generate(KeyType::Rsa(2048)).unwrap();
    let der = windows_request(&key, "pss.company.local", CNG, Sig::Pss(32));
    let received = parse_request(&der).unwrap();
    let mut id = received.request().algorithm.clone();
    let good = SignatureAlgorithm::from_identifier(&id).unwrap();
    assert_eq!(
        good,
        SignatureAlgorithm::RsaPss {
            hash: opsmgr_ca::request::Hash::Sha256,
            salt_len: 32
        }
    );
    let PrivateKey::Rsa(rsa_key) = &key else {
        unreachable!("an RSA key was generated")
    };
    let mixed = spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(
        &rsa::pss::SigningKey::<sha2::Sha384>::new_with_salt_len((**rsa_key).clone(), 32),
    )
    .unwrap();
    let mut params = mixed.parameters.clone().unwrap().to_der().unwrap();
    // Swap the message digest (SHA-384) for SHA-256 while MGF1 keeps SHA-384.
    let sha384 = oid("2.16.840.1.101.3.4.2.2").to_der().unwrap();
    let sha256 = oid("2.16.840.1.101.3.4.2.1").to_der().unwrap();
    let at = params
        .windows(sha384.len())
        .position(|w| w == sha384)
        .unwrap();
    params[at..at + sha256.len()].copy_from_slice(&sha256);
    id.parameters = Some(Any::from_der(&params).unwrap());
    let err = SignatureAlgorithm::from_identifier(&id).unwrap_err();
    assert!(
        matches!(&err, opsmgr_ca::request::AlgorithmError::Pss(why) if why.contains("MGF1's digest")),
        "{err}"
    );
    id.parameters = None;
    let err = SignatureAlgorithm::from_identifier(&id).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

//! certreq.inf policies: the seed's file, the SCOM documentation's file, what Notepad saves,
//! and a refusal, with file, line and key, for everything that cannot be honoured.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::Path;

use opsmgr_ca::request::{Attribute, Hash, KeyType, PolicyOptions, RequestPolicy, parse_policy};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

fn parse(text: &str) -> RequestPolicy {
    parse_policy(text.as_bytes(), "certreq.inf", PolicyOptions::default()).unwrap()
}

fn refuse(text: &str) -> String {
    parse_policy(text.as_bytes(), "certreq.inf", PolicyOptions::default())
        .unwrap_err()
        .to_string()
}

const CHANNEL_EKUS: [&str; 2] = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"];

#[test]
fn the_seeds_file_needs_the_legacy_override() {
    let seed = data("seed.inf");
    let e = parse_policy(&seed, "seed.inf", PolicyOptions::default()).unwrap_err();
    assert!(
        matches!(&e, opsmgr_ca::Error::LegacyRsa1024 { file, line: 6 } if file == "seed.inf"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "seed.inf:6: KeyLength: 1024-bit RSA is broken for this purpose today (factorable with public effort); use 2048 or more"
    );
    let p = parse_policy(
        &seed,
        "seed.inf",
        PolicyOptions {
            allow_legacy_rsa1024: true,
        },
    )
    .unwrap();
    assert_eq!(p.key, KeyType::Rsa(1024));
    assert_eq!(p.key_usage, Some(0xa0));
    assert_eq!(
        p.ekus, CHANNEL_EKUS,
        "no EKU section: the agent channel's two"
    );
    assert_eq!(
        p.dns_names,
        ["server01.company.local"],
        "the CN as DNS name"
    );
    assert!(p.exportable && p.machine_key_set);
    assert_eq!(p.subject.common_name(), Some("server01.company.local"));
}

#[test]
fn the_scom_documentations_file_in_every_encoding_notepad_writes() {
    let utf8 = data("scom-docs.inf");
    let text = String::from_utf8(utf8.clone()).unwrap();
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let bom = [b"\xEF\xBB\xBF".as_slice(), &utf8].concat();
    let lf = text.replace("\r\n", "\n").into_bytes();
    let expected = parse_policy(&utf8, "scom.inf", PolicyOptions::default()).unwrap();
    assert_eq!(expected.key, KeyType::Rsa(2048));
    assert_eq!(expected.key_usage, Some(0xf0));
    assert_eq!(expected.hash, Hash::Sha256);
    assert_eq!(expected.ekus, CHANNEL_EKUS);
    assert_eq!(expected.dns_names, ["server.contoso.com"]);
    for bytes in [utf16le, utf16be, bom, lf] {
        assert_eq!(
            parse_policy(&bytes, "scom.inf", PolicyOptions::default()).unwrap(),
            expected
        );
    }
}

#[test]
fn subject_alternative_names_with_continue_lines() {
    let p = parse(
        "[NewRequest]\nSubject = \"CN=host.company.local\"\nKeyAlgorithm = ECDSA_P256\n\
         [Extensions]\n2.5.29.17 = \"{text}\"\n_continue_ = \"dns=host.company.local&\"\n_continue_ = \"dns=alias.company.local\"\n",
    );
    assert_eq!(p.key, KeyType::EcdsaP256);
    assert_eq!(p.dns_names, ["host.company.local", "alias.company.local"]);
}

/// The [Extensions] examples of Microsoft's certreq reference: extension OIDs named through
/// [Strings] (`%szOID_SUBJECT_ALT_NAME2%`), the text forms of a subject alternative name with
/// kinds the CA does not certify, extended key usages, basic constraints and Critical.
#[test]
fn extensions_as_microsoft_documents_them() {
    let p = parse(
        "[Version]\r\nSignature=\"$Windows NT$\"\r\n\r\n[Strings]\r\n\
         szOID_SUBJECT_ALT_NAME2 = \"2.5.29.17\"\r\n\
         szOID_ENHANCED_KEY_USAGE = \"2.5.29.37\"\r\n\
         szOID_PKIX_KP_SERVER_AUTH = \"1.3.6.1.5.5.7.3.1\"\r\n\
         szOID_PKIX_KP_CLIENT_AUTH = \"1.3.6.1.5.5.7.3.2\"\r\n\r\n\
         [NewRequest]\r\nSubject = \"CN=www01.fabrikam.com\"\r\nExportable = TRUE\r\nKeyLength = 2048\r\n\
         KeySpec = 1\r\nKeyUsage = 0xA0\r\nMachineKeySet = True\r\n\
         ProviderName = \"Microsoft RSA SChannel Cryptographic Provider\"\r\nProviderType = 12\r\n\
         SMIME = FALSE\r\nRequestType = PKCS10\r\n\r\n\
         [Extensions]\r\n\
         %szOID_SUBJECT_ALT_NAME2% = \"{text}dns=www01.fabrikam.com&\"\r\n\
         _continue_ = \"dns=www.fabrikam.com&\"\r\n\
         _continue_ = \"ipaddress=172.31.10.134&\"\r\n\
         _continue_ = \"upn=hazem@fabrikam.com&\"\r\n\
         %szOID_ENHANCED_KEY_USAGE% = \"{text}%szOID_PKIX_KP_SERVER_AUTH%,%szOID_PKIX_KP_CLIENT_AUTH%\"\r\n\
         2.5.29.19 = \"{text}ca=0&pathlength=0\"\r\n\
         Critical = 2.5.29.19\r\n\
         1.3.6.1.4.1.311.21.10 = \"{text}1.3.6.1.5.5.7.3.1\"\r\n\
         1.2.3.4.5 = \"{text}anything\"\r\n\r\n\
         [RequestAttributes]\r\nCertificateTemplate = WebServer\r\n",
    );
    assert_eq!(p.dns_names, ["www01.fabrikam.com", "www.fabrikam.com"]);
    assert_eq!(p.ekus, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    let noted = |text: &str| p.notes.iter().any(|n| n.contains(text));
    for text in [
        "ipaddress=172.31.10.134 in the subject alternative name ignored: the CA certifies DNS names only",
        "upn=hazem@fabrikam.com in the subject alternative name ignored",
        "2.5.29.19 (basic constraints) ignored: the CA marks every certificate it issues CA:FALSE itself",
        "Critical = 2.5.29.19 ignored: the CA decides which extensions are critical",
        "extension 1.3.6.1.4.1.311.21.10 (application policies) ignored: the CA sets it itself",
        "extension 1.2.3.4.5 ignored: the CA puts only the names, purposes and key usage it decides into a certificate",
        "SMIME ignored: S/MIME capabilities are for mail certificates",
        "CertificateTemplate is sent to the CA as a request attribute",
    ] {
        assert!(noted(text), "no note '{text}' in {:?}", p.notes);
    }
    // Both ways of listing purposes add up, without repeats.
    let p = parse(
        "[NewRequest]\nSubject = \"CN=a.company.local\"\n\
         [EnhancedKeyUsageExtension]\nOID = 1.3.6.1.5.5.7.3.2\nCritical = FALSE\n\
         [Extensions]\n2.5.29.37 = \"{text}1.3.6.1.5.5.7.3.1, 1.3.6.1.5.5.7.3.2\"\n",
    );
    assert_eq!(p.ekus, ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1"]);
}

#[test]
fn strings_names_quotes_and_case() {
    let p = parse(
        "; a certreq.inf\n[strings]\nHOST = \"web01.company.local\"\n\
         [newrequest]\nsubject = \"CN=%host%, OU=\"\"Ops, Monitoring\"\", O=Contoso\\, Inc., C=NL\" ; trailing comment\n\
         KEYUSAGE = \"CERT_DIGITAL_SIGNATURE_KEY_USAGE | CERT_KEY_ENCIPHERMENT_KEY_USAGE\"\n\
         friendlyname = \"SCOM agent; channel\"\nexportable = false\n",
    );
    assert_eq!(p.subject.common_name(), Some("web01.company.local"));
    assert_eq!(
        p.subject.parts,
        [
            (Attribute::CommonName, "web01.company.local".to_owned()),
            (Attribute::OrganizationalUnit, "Ops, Monitoring".to_owned()),
            (Attribute::Organization, "Contoso, Inc.".to_owned()),
            (Attribute::Country, "NL".to_owned()),
        ]
    );
    assert_eq!(
        p.subject.to_string(),
        "CN=web01.company.local, OU=Ops\\, Monitoring, O=Contoso\\, Inc., C=NL"
    );
    assert_eq!(p.key_usage, Some(0xa0));
    assert_eq!(p.friendly_name.as_deref(), Some("SCOM agent; channel"));
    assert!(!p.exportable && !p.machine_key_set);
}

#[test]
fn every_refusal_names_file_line_and_key() {
    let head = "[NewRequest]\nSubject = \"CN=h.local\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "KeyAlgorithm = DSA\n",
            "certreq.inf:3: KeyAlgorithm: unknown key algorithm 'DSA' (RSA, ECDSA_P256 or ECDSA_P384)",
        ),
        (
            "KeyAlgorithm = ECDSA_P384\nKeyLength = 256\n",
            "certreq.inf:4: KeyLength: ECDSA_P384 keys are 384 bits, not 256",
        ),
        (
            "KeyAlgorithm = ECDSA\nKeyLength = 521\n",
            "certreq.inf:4: KeyLength: ECDSA keys of 521 bits are not supported; use 256 (P-256) or 384 (P-384)",
        ),
        (
            "KeyAlgorithm = ECDSA_P256\nAlternateSignatureAlgorithm = TRUE\n",
            "certreq.inf:4: AlternateSignatureAlgorithm: AlternateSignatureAlgorithm = TRUE asks for RSASSA-PSS, which needs an RSA key, not ECDSA P-256",
        ),
        (
            "KeyLength = 1536\n",
            "certreq.inf:3: KeyLength: RSA keys of 1536 bits are not supported; use 2048, 3072 or 4096",
        ),
        (
            "KeyAlgorithm = ECDSA_P256\nKeyLength = 384\n",
            "certreq.inf:4: KeyLength: ECDSA_P256 keys are 256 bits, not 384",
        ),
        (
            "RequestType = CMC\n",
            "certreq.inf:3: RequestType: RequestType CMC cannot be honoured: the CA reads PKCS #10 requests only; write RequestType = PKCS10",
        ),
        (
            "UseExistingKeySet = TRUE\n",
            "certreq.inf:3: UseExistingKeySet: UseExistingKeySet = TRUE needs KeyContainer naming the key: a pending key's id or a certificate's thumbprint in My",
        ),
        (
            "HashAlgorithm = SHA1\n",
            "certreq.inf:3: HashAlgorithm: SHA1 is broken for signatures; use SHA256",
        ),
        (
            "ProviderName = \"Contoso HSM\"\n",
            "certreq.inf:3: ProviderName: provider 'Contoso HSM' is not one we can stand in for",
        ),
        (
            "ProviderType = 13\n",
            "certreq.inf:3: ProviderType: ProviderType 13 is not an RSA provider type we can stand in for (1, 12, 24)",
        ),
        (
            "ProviderName = \"Microsoft RSA SChannel Cryptographic Provider\"\nKeyAlgorithm = ECDSA_P256\n",
            "certreq.inf:4: KeyAlgorithm: ECDSA_P256 does not match the provider, which implies RSA",
        ),
        (
            "KeyUsage = FULL_CONTROL\n",
            "certreq.inf:3: KeyUsage: 'FULL_CONTROL' is neither a number nor a CERT_*_KEY_USAGE name",
        ),
        (
            "Exportable = maybe\n",
            "certreq.inf:3: Exportable: 'maybe' is not TRUE or FALSE",
        ),
        (
            "Colour = blue\n",
            "certreq.inf:3: Colour: unknown key Colour in [NewRequest]",
        ),
        (
            "KeyLength = 2048\nkeylength = 4096\n",
            "certreq.inf:4: keylength: given twice",
        ),
        (
            "FriendlyName = %missing%\n",
            "certreq.inf:3: FriendlyName: %missing% is not defined in [Strings]",
        ),
        (
            "[Extensions]\n2.5.29.17 = \"{text}colour=blue\"\n",
            "certreq.inf:4: 2.5.29.17: 'colour' is not a kind of name certreq knows (DNS, IPAddress, EMail, UPN, URL, DirectoryName, RegisteredId, GUID, or an OID for another name)",
        ),
        (
            "[Extensions]\n2.5.29.17 = \"{text}\"\n_continue_ = \"dns=a.company.local\"\n_continue_ = \"dns=b.company.local\"\n",
            "certreq.inf:4: 2.5.29.17: dns=a.company.localdns=b.company.local is not a host name (character '=' at position 18 is not allowed (letters, digits, '-' and '.' only)); each name ends with '&' (\"dns=a.company.local&\"), a _continue_ line's too, except the last",
        ),
        (
            "[Extensions]\n2.5.29.17 = \"{text}dns=agent 01.company.local\"\n",
            "certreq.inf:4: 2.5.29.17: dns=agent 01.company.local is not a host name (character ' ' at position 5 is not allowed (letters, digits, '-' and '.' only))",
        ),
        (
            "[Extensions]\nOID = 1.3.6.1.5.5.7.3.1\n",
            "certreq.inf:4: OID: OID = names a purpose, which belongs in [EnhancedKeyUsageExtension]; under [Extensions] a key is an extension's object identifier (2.5.29.37 = \"{text}1.3.6.1.5.5.7.3.1\") or Critical",
        ),
        (
            "KeySpec = AT_BOTH\n",
            "certreq.inf:3: KeySpec: 'AT_BOTH' is neither a number nor AT_NONE, AT_KEYEXCHANGE or AT_SIGNATURE",
        ),
        (
            "KeySpec = 3\n",
            "certreq.inf:3: KeySpec: KeySpec 3 is not 0 (AT_NONE), 1 (AT_KEYEXCHANGE) or 2 (AT_SIGNATURE)",
        ),
        (
            "KeyUsageProperty = NCRYPT_ALLOW_SIGNING_FLAG | NCRYPT_ALLOW_EVERYTHING\n",
            "certreq.inf:3: KeyUsageProperty: 'NCRYPT_ALLOW_EVERYTHING' is neither a number nor an NCRYPT_ALLOW_* name",
        ),
        (
            "[Extensions]\n2.5.29.17 = \"MBSCEWFnZW50MDEuY29tcGFueS5sb2NhbA==\"\n",
            "certreq.inf:4: 2.5.29.17: the value must be in certreq's text form, starting with {text} (for example \"{text}dns=agent01.company.local\"), found 'MBSCEWFnZW50MDEuY29tcGFueS5sb2NhbA=='",
        ),
        (
            "[Extensions]\n2.5.29.19 = \"{text}ca=1&pathlength=0\"\n",
            "certreq.inf:4: 2.5.29.19: ca=1 asks for a CA certificate, which an agent's channel certificate never is (the CA issues end-entity certificates only): write ca=0 or leave the extension out",
        ),
        (
            "[Extensions]\nSubjectAltName = \"{text}dns=a.company.local\"\n",
            "certreq.inf:4: SubjectAltName: 'SubjectAltName' is not a dotted object identifier: a key of [Extensions] is an extension's object identifier or Critical",
        ),
        (
            "[Extensions]\nCritical = 2.5.29.19, basic\n",
            "certreq.inf:4: Critical: 'basic' is not a dotted object identifier",
        ),
        (
            "[EnhancedKeyUsageExtension]\nOID = client\n",
            "certreq.inf:4: OID: 'client' is not a dotted object identifier",
        ),
        (
            "[PolicyStatementExtension]\nPolicies = x\n",
            "certreq.inf:4: PolicyStatementExtension: section [PolicyStatementExtension] cannot be honoured: it describes a CA's own certificate (qualified subordination or CAPolicy.inf), which an agent's request never is",
        ),
        (
            "FriendlyName = \"unterminated\n",
            "certreq.inf:3: FriendlyName: unterminated quoted value \"unterminated",
        ),
        (
            "just some words\n",
            "certreq.inf:3: expected 'Key = Value', found 'just some words'",
        ),
    ];
    for (tail, expected) in cases {
        assert_eq!(refuse(&format!("{head}{tail}")), *expected, "{tail}");
    }
    // The seed's placeholder, left in by a hurried operator, is refused on its line with what
    // to write instead, before any key is made.
    for subject in ["CN=<FQDN>", "CN=agent 01", "CN=..company.local"] {
        let e = refuse(&format!(
            "[Version]\nSignature = \"$Windows NT$\"\n[NewRequest]\nSubject = \"{subject}\"\n"
        ));
        assert!(
            e.starts_with("certreq.inf:4: Subject: the common name '")
                && e.ends_with(
                    "put this machine's fully qualified domain name there, for example Subject = \"CN=agent01.company.local\""
                ),
            "{e}"
        );
    }
    assert_eq!(
        refuse("Subject = \"CN=x\"\n"),
        "certreq.inf:1: 'Subject = \"CN=x\"' is outside any [Section]: certreq.inf starts with [Version] (Signature = \"$Windows NT$\") and puts the request's keys under [NewRequest]; add those two headers above this line"
    );
    assert_eq!(
        refuse("[NewRequest]\nKeyLength = 2048\n"),
        "certreq.inf: Subject: [NewRequest] has no Subject"
    );
    assert_eq!(
        refuse("[NewRequest]\nSubject = \"O=Org\"\n"),
        "certreq.inf:2: Subject: the subject has no CN"
    );
    assert_eq!(
        refuse("[NewRequest]\nSubject = \"CN=a, C=Netherlands\"\n"),
        "certreq.inf:2: Subject: C=Netherlands is not a two-letter country code"
    );
    assert_eq!(
        refuse("[NewRequest]\nSubject = \"CN=a+OU=b\"\n"),
        "certreq.inf:2: Subject: multi-valued names (with '+') are not supported in the subject"
    );
    assert_eq!(
        refuse("[NewRequest]\nSubject = \"XX=a\"\n"),
        "certreq.inf:2: Subject: unknown attribute type 'XX' in the subject"
    );
    assert_eq!(
        refuse("[Version]\nSignature = \"$Linux$\"\n[NewRequest]\nSubject = \"CN=a\"\n"),
        "certreq.inf:2: Signature: unknown signature '$Linux$' (expected \"$Windows NT$\")"
    );
    let big = vec![b' '; 70_000];
    assert_eq!(
        parse_policy(&big, "big.inf", PolicyOptions::default())
            .unwrap_err()
            .to_string(),
        "big.inf: the file is larger than 65536 bytes"
    );
    assert!(
        parse_policy(b"\xff\xfe\x00", "odd.inf", PolicyOptions::default())
            .unwrap_err()
            .to_string()
            .contains("odd number")
    );
    // Notepad's "ANSI" is read as Windows-1252: the byte is the letter it stands for there.
    assert!(
        parse_policy(
            b"[NewRequest]\nSubject = \"CN=\xe9\"\n",
            "latin1.inf",
            PolicyOptions::default()
        )
        .unwrap_err()
        .to_string()
        .starts_with("latin1.inf:2: Subject: the common name '\u{e9}' is not a host name")
    );
    assert_eq!(
        parse_policy(b"[\0N\0e\0w\0", "nobom.inf", PolicyOptions::default())
            .unwrap_err()
            .to_string(),
        "nobom.inf: a NUL byte: UTF-16 without a byte-order mark? Save it from Notepad as Unicode or UTF-8"
    );
}

#[test]
fn strings_that_expand_repeatedly_are_refused_before_they_grow() {
    // 60 KB: a 30 KB string, and a value naming it 6,000 times (180 MB once expanded).
    let big = "A".repeat(30_000);
    let refs = "%big%".repeat(6_000);
    let inf = format!(
        "[Strings]\nbig = \"{big}\"\n[NewRequest]\nSubject = \"CN=agent01.company.local\"\nFriendlyName = \"{refs}\"\n"
    );
    assert!(inf.len() < 64 * 1024, "{}", inf.len());
    let e = refuse(&inf);
    assert!(
        e.starts_with("certreq.inf:5: FriendlyName: the value grows past 16384 bytes when [Strings] are substituted: '%big%%big%"),
        "{}",
        &e[..e.len().min(300)]
    );
    // The message names the value, clipped: not megabytes of it.
    assert!(e.len() < 300, "{} bytes of error", e.len());
}

/// Every key of Microsoft's certreq.inf reference is applied or named as ignored, never
/// refused for being there: a file copied from the documentation reads.
#[test]
fn microsofts_documented_keys_are_applied_or_named() {
    let inf = "[Version]\r\nSignature=\"$Windows NT$\"\r\n\r\n[NewRequest]\r\n\
        Subject = \"CN=agent01.company.local\"\r\n\
        Exportable = TRUE\r\nExportableEncrypted = FALSE\r\nHashAlgorithm = SHA256\r\n\
        KeyLength = 2048\r\nKeySpec = 1\r\nKeyUsage = 0xf0\r\nKeyUsageProperty = 2\r\n\
        MachineKeySet = TRUE\r\nProviderName = \"Microsoft RSA SChannel Cryptographic Provider\"\r\n\
        ProviderType = 12\r\nRequestType = PKCS10\r\nSMIME = FALSE\r\nPrivateKeyArchive = FALSE\r\n\
        UserProtected = FALSE\r\nKeyProtection = NCRYPT_UI_NO_PROTECTION_FLAG\r\nSilent = TRUE\r\n\
        SecurityDescriptor = \"D:P(A;;GA;;;SY)\"\r\nSuppressDefaults = FALSE\r\nFriendlyName = \"Agent\"\r\n\
        ValidityPeriod = Years\r\nValidityPeriodUnits = 2\r\nNotBefore = \"01/01/2027 10:00 AM\"\r\n\
        RequesterName = CONTOSO\\agent\r\nEncryptionAlgorithm = 3des\r\nEncryptionLength = 168\r\n\
        UseExistingKeySet = FALSE\r\n\
        \r\n[RequestAttributes]\r\nCertificateTemplate = WebServer\r\n\
        \r\n[EnhancedKeyUsageExtension]\r\nOID=1.3.6.1.5.5.7.3.1\r\nOID=1.3.6.1.5.5.7.3.2\r\n";
    let p = parse(inf);
    assert_eq!(p.key, KeyType::Rsa(2048));
    assert!(p.exportable && p.machine_key_set);
    assert_eq!(p.friendly_name.as_deref(), Some("Agent"));
    assert_eq!(
        p.request_attributes,
        [
            ("ValidityPeriod".to_owned(), "Years".to_owned()),
            ("ValidityPeriodUnits".to_owned(), "2".to_owned()),
            ("NotBefore".to_owned(), "01/01/2027 10:00 AM".to_owned()),
            ("CertificateTemplate".to_owned(), "WebServer".to_owned()),
        ]
    );
    let notes = p.notes.join("\n");
    for named in [
        "SMIME ignored",
        "PrivateKeyArchive ignored",
        "UserProtected ignored",
        "KeyProtection ignored",
        "Silent ignored",
        "SecurityDescriptor ignored",
        "ExportableEncrypted ignored",
        "RequesterName ignored",
        "EncryptionAlgorithm ignored",
        "KeyUsageProperty = 2",
        "ProviderName Microsoft RSA SChannel Cryptographic Provider",
        "CertificateTemplate is sent to the CA as a request attribute",
    ] {
        assert!(notes.contains(named), "{named}: {notes}");
    }
    // The request carries the attributes as certreq does (enrollment name-value pairs), and
    // our CA names them ignored.
    let key = opsmgr_ca::request::PrivateKey::generate(p.key).unwrap();
    let req = opsmgr_ca::request::build_request(&p, &key).unwrap();
    assert!(
        req.info
            .attributes
            .iter()
            .any(|a| a.oid.to_string() == "1.3.6.1.4.1.311.13.2.1")
    );

    // The reference's names for KeySpec and KeyUsageProperty, its subject flags, and every
    // kind of alternative name its [Extensions] example lists.
    let named = parse(
        "[NewRequest]\r\nSubject = \"CN=agent01.company.local\"\r\nMachineKeySet = TRUE\r\n\
         KeySpec = AT_KEYEXCHANGE\r\n\
         KeyUsageProperty = \"NCRYPT_ALLOW_DECRYPT_FLAG | NCRYPT_ALLOW_SIGNING_FLAG\"\r\n\
         SubjectNameFlags = template\r\nX500NameFlags = CERT_NAME_STR_DISABLE_UTF8_DIR_STR_FLAG\r\n\
         [Extensions]\r\n2.5.29.17 = \"{text}\"\r\n\
         _continue_ = \"UPN=User@Domain.com&\"\r\n_continue_ = \"EMail=User@Domain.com&\"\r\n\
         _continue_ = \"DNS=agent01.company.local&\"\r\n\
         _continue_ = \"DirectoryName=CN=Name,DC=Domain,DC=com&\"\r\n\
         _continue_ = \"URL=http://host.domain.com/default.html&\"\r\n\
         _continue_ = \"IPAddress=10.0.0.1&\"\r\n_continue_ = \"RegisteredId=1.2.3.4.5&\"\r\n\
         _continue_ = \"1.2.3.4.6.1={utf8}String&\"\r\n\
         _continue_ = \"{asn}1.2.3.4.6.3=BAgAAQIDBAUGBw==\"\r\n",
    );
    assert_eq!(named.dns_names, ["agent01.company.local"]);
    let notes = named.notes.join("\n");
    for text in [
        "KeyUsageProperty = NCRYPT_ALLOW_DECRYPT_FLAG | NCRYPT_ALLOW_SIGNING_FLAG",
        "SubjectNameFlags ignored: it asks an enterprise CA's template",
        "X500NameFlags ignored: the subject is encoded as RFC 5280 asks",
        "upn=User@Domain.com in the subject alternative name ignored",
        "directoryname=CN=Name,DC=Domain,DC=com in the subject alternative name ignored",
        "registeredid=1.2.3.4.5 in the subject alternative name ignored",
        "other name 1.2.3.4.6.1={utf8}String in the subject alternative name ignored",
        "other name {asn}1.2.3.4.6.3=BAgAAQIDBAUGBw== in the subject alternative name ignored",
    ] {
        assert!(notes.contains(text), "{text}: {notes}");
    }
    let cng = parse(
        "[NewRequest]\nSubject = \"CN=a.company.local\"\nMachineKeySet = TRUE\nKeySpec = AT_NONE\n",
    );
    assert!(
        cng.notes
            .iter()
            .any(|n| n.starts_with("KeySpec = AT_NONE: a CNG key (AT_NONE)")),
        "{:?}",
        cng.notes
    );

    // SuppressDefaults = TRUE: no default EKUs in the request.
    let bare = parse(
        "[NewRequest]\nSubject = \"CN=a.company.local\"\nSuppressDefaults = TRUE\nMachineKeySet = TRUE\n",
    );
    assert!(bare.ekus.is_empty());
    // MachineKeySet left out: the user's store, said at once.
    let user = parse("[NewRequest]\nSubject = \"CN=a.company.local\"\n");
    assert!(!user.machine_key_set);
    assert!(
        user.notes
            .iter()
            .any(|n| n.contains("MachineKeySet is not TRUE"))
    );
    // UseExistingKeySet with KeyContainer names the key to use.
    let existing = parse(
        "[NewRequest]\nSubject = \"CN=a.company.local\"\nUseExistingKeySet = TRUE\nKeyContainer = 0a1b\n",
    );
    assert_eq!(existing.existing_key.as_deref(), Some("0a1b"));
}

/// The seed's file as the blog prints it, without section headers: the message says what to
/// add.
#[test]
fn the_seeds_headerless_file_is_told_what_to_add() {
    let e = refuse(
        "Signature= \"$Windows NT$\"\nSubject = \"CN=agent01.company.local\"\nKeySpec = 1\n",
    );
    assert!(e.starts_with("certreq.inf:1: 'Signature= \"$Windows NT$\"' is outside any [Section]: certreq.inf starts with [Version]"), "{e}");
    assert!(e.contains("under [NewRequest]"), "{e}");
}

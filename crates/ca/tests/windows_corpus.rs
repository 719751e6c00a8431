//! Our readers against files made by real Windows machines (certreq on Windows Server 2003,
//! Windows 7 and 11, IIS Manager, the Certificates MMC snap-in, PowerShell's CertEnroll,
//! CryptoAPI and certmgr PFX exports, certreq.inf files as people wrote them for Windows), kept
//! in `tests/data/windows/` with where each came from (`SOURCES.md`). Each must be read for
//! what it is, and each refusal must give the file's real fault.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use opsmgr_ca::authority::{Authority, Disposition, InitOptions};
use opsmgr_ca::request::{KeyType, PolicyOptions, ReceivedRequest, parse_policy};
use opsmgr_ca::store::read_pfx;

fn corpus(path: &str) -> Vec<u8> {
    let file: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/windows")
        .join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every request, its signature checked over the bytes received, then submitted to a CA
/// whose policy admits the requests' domains: the outcome and the reason in the record.
#[test]
fn windows_requests_are_read_and_judged_for_their_real_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let mut ca = Authority::init(&dir.path().join("ca"), &InitOptions::default(), now).unwrap();
    // (file, what the CA does, words its message must hold)
    let cases: [(&str, Disposition, &[&str]); 8] = [
        (
            // certreq on Windows Server 2003: sha1RSA, Strong CSP, template "Machine".
            "certreq-win2003-machine-template-strongcsp-sha1.der",
            Disposition::Pending,
            &[
                "signed with sha1RSA: accepted as proof of possession only",
                "1.3.6.1.4.1.311.13.2.3 (OS version) ignored",
                "1.3.6.1.4.1.311.20.2 (certificate template name) ignored",
            ],
        ),
        (
            // IIS Manager on Windows 7 SP1: RSA 1024, which the policy refuses by name.
            "iis7-inetmgr-win7sp1-schannel-rsa1024-sha1.req",
            Disposition::Denied,
            &["an RSA key of 1024 bits is below the policy's 2048"],
        ),
        (
            // certreq on Windows 7, 76-column PEM (re-wrapped by its publisher's encoder).
            "certreq-win7sp1-user-template-strongcsp-sha1.pem",
            Disposition::Denied,
            &["an RSA key of 1024 bits is below the policy's 2048"],
        ),
        (
            "powershell-win10-ksp-rsa2048-sha256.pem",
            Disposition::Pending,
            &["1.3.6.1.4.1.311.13.2.2 (enrollment CSP) ignored"],
        ),
        (
            // Windows 11's Base DSS provider: the key, not the signature, is the fault.
            "certreq-win11-dss-dsa1024-sha1.pem",
            Disposition::Denied,
            &[
                "key algorithm 1.2.840.10040.4.1 (DSA, as Microsoft's DSS providers make) is not accepted",
            ],
        ),
        (
            "powershell-win10-ksp-ecdsa-p256.pem",
            Disposition::Pending,
            &["1.3.6.1.4.1.311.21.20 (client information) ignored"],
        ),
        (
            "powershell-win10-ksp-rsa2048-san.pem",
            Disposition::Pending,
            &["came first and is pending with another key"],
        ),
        (
            // A renewal from Windows 7's enrollment client: signed without signed attributes
            // (over the request itself), by a certificate of another CA: read, verified, and
            // its proof refused for what it is.
            "renewal-pkcs7-win7-cestest-enhancedcsp-sha1.der",
            Disposition::Pending,
            &[
                "certificate 18D9DF0600000000003E was not issued by this CA: its issuer is CN=FB_EntSubCA,OU=Microsoft PKI Team, not CN=JAMA00",
                "subject attribute 0.9.2342.19200300.100.1.25 (domain component) ignored (4 times)",
                "request attribute 1.3.6.1.4.1.311.13.1 (renewal certificate) ignored",
            ],
        ),
    ];
    let mut ecdsa_id = None;
    for (file, disposition, words) in cases {
        let bytes = corpus(&format!("requests/{file}"));
        let received = ReceivedRequest::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        if disposition != Disposition::Denied || !file.contains("dsa") {
            received
                .verify()
                .unwrap_or_else(|e| panic!("{file}: the signature over the bytes received: {e}"));
        }
        let submitted = ca.submit(&bytes, &format!("{file}.req"), now).unwrap();
        let record = &submitted.record;
        if file.contains("ecdsa") {
            ecdsa_id = Some(record.id);
        }
        assert_eq!(
            record.disposition, disposition,
            "{file}: {}",
            record.message
        );
        for w in words {
            assert!(
                record.message.contains(w),
                "{file}: no '{w}' in {}",
                record.message
            );
        }
    }
    // Nothing Windows-specific passes into an issued certificate: the PowerShell requests
    // issue with the names asked for and no more.
    let id = ecdsa_id.unwrap();
    let issued = ca.resubmit(id, now).unwrap();
    assert_eq!(
        issued.disposition,
        Disposition::Issued,
        "{}",
        issued.message
    );
    assert_eq!(issued.certified_names, ["intranet.adcslabor.de"]);

    // The MMC snap-in's CMC request is refused before it is recorded, naming the fix.
    let cmc = corpus("requests/mmc-win10-cmc-schannel-template-sha1.pem");
    let e = ReceivedRequest::parse(&cmc).unwrap_err().to_string();
    assert!(e.contains("RequestType = PKCS10"), "{e}");
}

#[test]
fn windows_pfx_exports_open() {
    // CryptoAPI's PFXExportCertStoreEx (Enhanced CSP), 3DES and a SHA-1 MAC.
    let capi = read_pfx(
        &corpus("pfx/capi-enhanced-csp-3des-TestPassword.pfx"),
        "TestPassword",
    )
    .unwrap();
    assert_eq!(capi.certificate.subject, "CN=PythonForWindowsTest");
    // certmgr's export wizard with AES256-SHA256 (Windows 10 1709 and later).
    let aes = read_pfx(
        &corpus("pfx/certmgr-ksp-aes256-sha256-password.pfx"),
        "password",
    )
    .unwrap();
    assert_eq!(aes.certificate.subject, "CN=*.ad.standalone.com");
    assert_eq!(aes.key.key_type(), KeyType::Rsa(2048));
    // Exported without a password: Windows writes no password at all (not an empty
    // BMPString), and an empty password opens it.
    let azure = read_pfx(&corpus("pfx/azure-tools-ksp-3des-rc2-nullpw.pfx"), "").unwrap();
    assert_eq!(azure.certificate.subject, "CN=Windows Azure Tools");
    // A wrong password is said as such, for each.
    for (file, wrong) in [
        (
            "pfx/capi-enhanced-csp-3des-TestPassword.pfx",
            "testpassword",
        ),
        ("pfx/certmgr-ksp-aes256-sha256-password.pfx", ""),
        ("pfx/azure-tools-ksp-3des-rc2-nullpw.pfx", "x"),
    ] {
        let e = read_pfx(&corpus(file), wrong).unwrap_err().to_string();
        assert!(e.contains("the password does not open"), "{file}: {e}");
    }
}

#[test]
fn certreq_inf_files_as_people_wrote_them_for_windows() {
    let read = |file: &str| {
        parse_policy(
            &corpus(&format!("inf/{file}")),
            file,
            PolicyOptions::default(),
        )
    };
    // A SCOM gateway guide's file: no [Version], a subject of six parts, KeySpec, an en dash
    // in a comment (UTF-8).
    let scom = read("scom-workgroup-offline-request.inf").unwrap();
    assert_eq!(scom.subject.common_name(), Some("IIS-2019"));
    assert_eq!(scom.ekus, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert!(scom.machine_key_set && scom.exportable);
    let web = read("tamemycerts-webserver-rsa2048.inf").unwrap();
    assert_eq!(web.key, KeyType::Rsa(2048));
    assert!(
        web.notes
            .iter()
            .any(|n| n.starts_with("MachineKeySet is not TRUE"))
    );
    // Templates left with their placeholders are refused on the placeholder's line.
    let exchange = read("exchange-template-crlf-cp1252.inf")
        .unwrap_err()
        .to_string();
    assert!(
        exchange.starts_with("exchange-template-crlf-cp1252.inf:5: Subject: the common name '##COMMONNAME##' is not a host name"),
        "{exchange}"
    );
    let kdc = read("dc-kdc-template-utf16le-bom-crlf.inf")
        .unwrap_err()
        .to_string();
    assert_eq!(
        kdc,
        "dc-kdc-template-utf16le-bom-crlf.inf:6: Subject: '{DCDN}' has no '='"
    );
    let dsa = read("tamemycerts-dsa-base-dss.inf")
        .unwrap_err()
        .to_string();
    assert_eq!(
        dsa,
        "tamemycerts-dsa-base-dss.inf:2: Subject: CN has an empty value"
    );
    // A certreq -policy file is told what certreq -new needs.
    let policy = read("tamemycerts-policy-strings-san.inf")
        .unwrap_err()
        .to_string();
    assert!(
        policy.contains("the file has no [NewRequest] section"),
        "{policy}"
    );
}

/// The Exchange file is Windows-1252 (Notepad's "ANSI"): once its placeholders are filled in
/// it is read, the code page said in a note.
#[test]
fn an_ansi_inf_is_read_as_windows_1252() {
    let bytes = corpus("inf/exchange-template-crlf-cp1252.inf");
    let filled: Vec<u8> = String::from_utf8_lossy(&bytes)
        .replace("##COMMONNAME##", "mail.company.local")
        .replace("{text}##DNSSAN##", "{text}dns=mail.company.local")
        .into_bytes();
    // The lossy round trip replaced the 0x96 byte; put Windows' byte back where it was.
    assert!(
        bytes.contains(&0x96),
        "the file as published holds Windows-1252's en dash"
    );
    let marker = "\u{fffd}".as_bytes();
    let mut ansi = Vec::new();
    let pos = filled
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    ansi.extend_from_slice(&filled[..pos]);
    ansi.push(0x96);
    ansi.extend_from_slice(&filled[pos + marker.len()..]);
    let p = parse_policy(&ansi, "exchange.inf", PolicyOptions::default()).unwrap();
    assert_eq!(p.dns_names, ["mail.company.local"]);
    assert!(
        p.notes.iter().any(
            |n| n.starts_with("the file is not UTF-8 (byte 0x96 at offset")
                && n.contains("read as Windows-1252")
        ),
        "{:?}",
        p.notes
    );
}

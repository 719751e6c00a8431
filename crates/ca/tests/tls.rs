//! Certificates our CA issues do the job they exist for: a mutual TLS handshake on loopback
//! between an agent and its management server (rustls, both sides verifying the other against
//! the root), and a client certificate from another root is refused; the same with OpenSSL's
//! `s_server` and `s_client` as the peers, for RSA and ECDSA.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::SystemTime;

use opsmgr_ca::authority::{Authority, InitOptions, RevocationReason};
use opsmgr_ca::request::{KeyType, PrivateKey, build_request, parse_policy};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
};

/// A key and the certificate `ca` issues for it.
fn issue(
    ca: &mut Authority,
    host: &str,
    key: KeyType,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let line = match key {
        KeyType::EcdsaP256 => "KeyAlgorithm = ECDSA_P256".to_owned(),
        KeyType::EcdsaP384 => "KeyAlgorithm = ECDSA_P384".to_owned(),
        KeyType::Rsa(bits) => format!("KeyLength = {bits}"),
        other => panic!("{other}"),
    };
    let inf = format!("[NewRequest]\nSubject = \"CN={host}\"\n{line}\n");
    let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
    let private = PrivateKey::generate(policy.key).unwrap();
    let request = der::Encode::to_der(&build_request(&policy, &private).unwrap()).unwrap();
    let now = SystemTime::now();
    let id = ca
        .submit(&request, &format!("{host}.req"), now)
        .unwrap()
        .record
        .id;
    let record = ca.resubmit(id, now).unwrap();
    let pkcs8 = private.to_pkcs8_der().unwrap().to_vec();
    (
        vec![CertificateDer::from(record.certificate.unwrap())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
    )
}

fn roots(ca: &Authority) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.issuer().root().der.clone()))
        .unwrap();
    Arc::new(roots)
}

/// Runs one exchange; the server's and the client's outcome.
fn handshake(
    server_ca: &Authority,
    server_cert: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    client_ca: &Authority,
    client_cert: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
    handshake_with_crls(server_ca, server_cert, client_ca, client_cert, Vec::new())
}

/// As [`handshake`], the server checking client certificates against `crls` (DER).
fn handshake_with_crls(
    server_ca: &Authority,
    server_cert: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    client_ca: &Authority,
    client_cert: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    crls: Vec<Vec<u8>>,
) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots(server_ca),
        provider.clone(),
    )
    .with_crls(crls.into_iter().map(CertificateRevocationListDer::from))
    .build()
    .unwrap();
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_cert.0, server_cert.1)
            .unwrap(),
    );
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(client_ca))
            .with_client_auth_cert(client_cert.0, client_cert.1)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = std::thread::spawn(move || -> Result<Vec<u8>, String> {
        let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
        let conn = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(b"world").map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(buf.to_vec())
    });
    let client_side = (|| -> Result<Vec<u8>, String> {
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let name = ServerName::try_from("mgt01.company.local").unwrap();
        let conn = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        // Under TLS 1.3 a refused client learns it here, on its read.
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf.to_vec())
    })();
    (server_side.join().unwrap(), client_side)
}

#[test]
fn agent_and_management_server_authenticate_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    for (i, (root_key, ms_key, agent_key)) in [
        (KeyType::EcdsaP256, KeyType::Rsa(2048), KeyType::EcdsaP256),
        (KeyType::Rsa(2048), KeyType::EcdsaP256, KeyType::Rsa(2048)),
        (KeyType::EcdsaP384, KeyType::EcdsaP384, KeyType::EcdsaP256),
        (KeyType::EcdsaP256, KeyType::EcdsaP256, KeyType::EcdsaP384),
    ]
    .into_iter()
    .enumerate()
    {
        let ca_dir = dir.path().join(format!("{i}-{root_key}").replace(' ', ""));
        let options = InitOptions {
            key: root_key,
            ..InitOptions::default()
        };
        let mut ca = Authority::init(&ca_dir, &options, now).unwrap();
        let ms = issue(&mut ca, "mgt01.company.local", ms_key);
        let agent = issue(&mut ca, "agent01.company.local", agent_key);
        let (server, client) = handshake(&ca, ms, &ca, agent);
        assert_eq!(server, Ok(b"hello".to_vec()), "{root_key}");
        assert_eq!(client, Ok(b"world".to_vec()), "{root_key}");
    }
}

#[test]
fn a_client_certificate_from_another_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let mut ours = Authority::init(&dir.path().join("ours"), &InitOptions::default(), now).unwrap();
    let other_options = InitOptions {
        name: "ELSEWHERE".into(),
        ..InitOptions::default()
    };
    let mut other = Authority::init(&dir.path().join("other"), &other_options, now).unwrap();
    let ms = issue(&mut ours, "mgt01.company.local", KeyType::EcdsaP256);
    let intruder = issue(&mut other, "agent01.company.local", KeyType::EcdsaP256);
    // The intruder trusts our root (it knows whom it talks to) but holds another root's cert.
    let (server, client) = handshake(&ours, ms, &ours, intruder);
    let server = server.unwrap_err();
    assert!(server.contains("UnknownIssuer"), "{server}");
    assert!(client.is_err(), "{client:?}");
}

/// Writes a certificate and its key as PEM files for OpenSSL: `<name>.pem`, `<name>.key`.
fn write_pem(
    dir: &std::path::Path,
    name: &str,
    (certs, key): &(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
) -> (String, String) {
    let cert = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(
        &cert,
        opsmgr_ca::cert::certificate_to_pem(&certs[0]).unwrap(),
    )
    .unwrap();
    let pkcs8 = PrivateKey::from_pkcs8_der(key.secret_der()).unwrap();
    std::fs::write(&key_path, pkcs8.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    (
        cert.to_str().unwrap().to_owned(),
        key_path.to_str().unwrap().to_owned(),
    )
}

/// `openssl s_server` with the management server's certificate, demanding and verifying a
/// client certificate against `root`, and `openssl s_client` with the agent's, verifying the
/// server and its name: what the server received and what the client printed.
fn openssl_handshake(
    dir: &std::path::Path,
    root: &str,
    server: (&str, &str),
    client: (&str, &str),
) -> (String, String) {
    openssl_handshake_with_crl(dir, root, server, client, None)
}

/// As [`openssl_handshake`], `s_server` checking the client's certificate against the CRL in
/// `crl` (PEM) with `-crl_check`.
fn openssl_handshake_with_crl(
    dir: &std::path::Path,
    root: &str,
    server: (&str, &str),
    client: (&str, &str),
    crl: Option<&str>,
) -> (String, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut s_server = Command::new("timeout")
        .args([
            "30",
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-naccept",
            "1",
        ])
        .args(["-cert", server.0, "-key", server.1, "-CAfile", root])
        .args(["-Verify", "1", "-verify_return_error"])
        .args(crl.map_or(Vec::new(), |c| vec!["-crl_check", "-CRL", c]))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(s_server.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.rsplit(':').next().unwrap().to_owned();
        }
    };
    let mut s_client = Command::new("timeout")
        .args([
            "30",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-cert", client.0, "-key", client.1, "-CAfile", root])
        .args([
            "-verify_return_error",
            "-verify_hostname",
            "mgt01.company.local",
        ])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s_client
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello from the agent\n")
        .unwrap();
    let client_out = s_client.wait_with_output().unwrap();
    drop(s_server.stdin.take());
    let mut received: Vec<String> = lines.map_while(Result::ok).collect();
    let mut err = String::new();
    s_server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    s_server.wait().unwrap();
    received.push(err);
    (
        received.join("\n"),
        format!(
            "{}{}",
            String::from_utf8_lossy(&client_out.stdout),
            String::from_utf8_lossy(&client_out.stderr)
        ),
    )
}

#[test]
fn openssl_peers_handshake_with_our_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let elsewhere = InitOptions {
        name: "ELSEWHERE".into(),
        ..InitOptions::default()
    };
    let mut other = Authority::init(&dir.path().join("other"), &elsewhere, now).unwrap();
    let intruder = issue(&mut other, "agent01.company.local", KeyType::EcdsaP256);
    let intruder = write_pem(dir.path(), "intruder", &intruder);
    for (i, (root_key, ms_key, agent_key)) in [
        (KeyType::Rsa(2048), KeyType::Rsa(2048), KeyType::Rsa(2048)),
        (KeyType::EcdsaP256, KeyType::EcdsaP256, KeyType::EcdsaP384),
    ]
    .into_iter()
    .enumerate()
    {
        let ca_dir = dir.path().join(format!("ca{i}"));
        let options = InitOptions {
            key: root_key,
            ..InitOptions::default()
        };
        let mut ca = Authority::init(&ca_dir, &options, now).unwrap();
        let root = ca_dir.join("ca.cer").to_str().unwrap().to_owned();
        let ms = issue(&mut ca, "mgt01.company.local", ms_key);
        let agent = issue(&mut ca, "agent01.company.local", agent_key);
        let ms = write_pem(dir.path(), &format!("ms{i}"), &ms);
        let agent = write_pem(dir.path(), &format!("agent{i}"), &agent);

        let (server, client) =
            openssl_handshake(dir.path(), &root, (&ms.0, &ms.1), (&agent.0, &agent.1));
        assert!(client.contains("Verify return code: 0 (ok)"), "{client}");
        assert!(server.contains("hello from the agent"), "{server}");

        // A client certificate from another root: the server refuses the handshake and
        // never reads the agent's words.
        let (server, _) = openssl_handshake(
            dir.path(),
            &root,
            (&ms.0, &ms.1),
            (&intruder.0, &intruder.1),
        );
        assert!(!server.contains("hello from the agent"), "{server}");
        assert!(
            server.contains("verify error:unable to get local issuer certificate"),
            "{server}"
        );
    }
}

/// Revocation reaches relying parties: after the operator revokes an agent's certificate and
/// the CRL is published, `openssl s_server -crl_check -CRL` and a rustls server with the CRL
/// both refuse that agent's handshake, while another agent's goes through.
#[test]
fn servers_that_read_the_crl_refuse_a_revoked_agent() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca_dir = dir.path().join("ca");
    let mut ca = Authority::init(&ca_dir, &InitOptions::default(), now).unwrap();
    let root = ca_dir.join("ca.cer").to_str().unwrap().to_owned();
    let ms = issue(&mut ca, "mgt01.company.local", KeyType::EcdsaP256);
    let revoked = issue(&mut ca, "agent01.company.local", KeyType::EcdsaP256);
    let fine = issue(&mut ca, "agent02.company.local", KeyType::EcdsaP256);
    let serial = opsmgr_ca::cert::CertInfo::parse(&revoked.0[0])
        .unwrap()
        .serial_hex();
    ca.revoke(&serial, RevocationReason::KeyCompromise, now)
        .unwrap();
    let published = ca.publish_crl(now).unwrap();
    assert_eq!(published.revoked, 1);
    let crl_pem = published.files[0].to_str().unwrap().to_owned();
    let crl_der = ca.crl(now).unwrap();

    let (ms_files, revoked_files, fine_files) = (
        write_pem(dir.path(), "ms", &ms),
        write_pem(dir.path(), "revoked", &revoked),
        write_pem(dir.path(), "fine", &fine),
    );
    let pair = |f: &(String, String)| (f.0.clone(), f.1.clone());
    let (ms_c, ms_k) = pair(&ms_files);
    let (server, _) = openssl_handshake_with_crl(
        dir.path(),
        &root,
        (&ms_c, &ms_k),
        (&revoked_files.0, &revoked_files.1),
        Some(&crl_pem),
    );
    assert!(!server.contains("hello from the agent"), "{server}");
    assert!(server.contains("certificate revoked"), "{server}");
    let (server, _) = openssl_handshake_with_crl(
        dir.path(),
        &root,
        (&ms_c, &ms_k),
        (&fine_files.0, &fine_files.1),
        Some(&crl_pem),
    );
    assert!(server.contains("hello from the agent"), "{server}");

    let ms_again = (ms.0.clone(), ms.1.clone_key());
    let (server, client) = handshake_with_crls(&ca, ms_again, &ca, revoked, vec![crl_der.clone()]);
    assert!(server.is_err() && client.is_err(), "{server:?} {client:?}");
    assert!(
        server.unwrap_err().contains("Revoked"),
        "the server names the revocation"
    );
    let (server, client) = handshake_with_crls(&ca, ms, &ca, fine, vec![crl_der]);
    assert_eq!(server.unwrap(), b"hello");
    assert_eq!(client.unwrap(), b"world");
}

/// A P-256 request whose public key is a compressed point (legal in X.509, sent by some
/// stacks), signed properly.
fn compressed_request(host: &str, key: &PrivateKey) -> Vec<u8> {
    use der::asn1::{BitString, SetOfVec};
    use der::{Decode, Encode};
    use p256::elliptic_curve::sec1::ToSec1Point;
    use std::str::FromStr;
    let PrivateKey::P256(secret) = key else {
        unreachable!("a P-256 key was generated")
    };
    let point = secret.public_key().to_sec1_point(true);
    let full = spki::SubjectPublicKeyInfoOwned::from_der(&key.public_key_der().unwrap()).unwrap();
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: x509_cert::name::Name::from_str(&format!("CN={host}")).unwrap(),
        public_key: spki::SubjectPublicKeyInfoOwned {
            algorithm: full.algorithm,
            subject_public_key: BitString::from_bytes(point.as_bytes()).unwrap(),
        },
        attributes: SetOfVec::new(),
    };
    let signed = info.to_der().unwrap();
    let signature: p256::ecdsa::DerSignature =
        signature::Signer::sign(&p256::ecdsa::SigningKey::from(secret), &signed);
    x509_cert::request::CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2"),
            parameters: None,
        },
        signature: BitString::from_bytes(signature.as_bytes()).unwrap(),
    }
    .to_der()
    .unwrap()
}

#[test]
fn a_compressed_point_request_ends_in_a_certificate_rustls_can_use() {
    use der::Decode;
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let mut ca = Authority::init(&dir.path().join("ca"), &InitOptions::default(), now).unwrap();
    let ms = issue(&mut ca, "mgt01.company.local", KeyType::EcdsaP256);
    let key = PrivateKey::generate(KeyType::EcdsaP256).unwrap();
    let request = compressed_request("agent01.company.local", &key);
    let id = ca
        .submit(&request, "agent01.company.local.req", now)
        .unwrap()
        .record
        .id;
    let record = ca.resubmit(id, now).unwrap();
    assert!(
        record
            .message
            .contains("compressed EC point is written uncompressed"),
        "{}",
        record.message
    );
    let der = record.certificate.unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let point = cert
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    assert_eq!(point.len(), 65, "uncompressed: 0x04, x, y");
    assert_eq!(point[0], 0x04);
    let agent = (
        vec![CertificateDer::from(der)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.to_pkcs8_der().unwrap().to_vec(),
        )),
    );
    let (server, client) = handshake(&ca, ms, &ca, agent);
    assert_eq!(server, Ok(b"hello".to_vec()));
    assert_eq!(client, Ok(b"world".to_vec()));
}

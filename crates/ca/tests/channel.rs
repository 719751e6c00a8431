//! MOMCertImport's selection against certificates an OpenSSL CA issued for our requests: the
//! chosen one, and every refusal the issue names, each for the reason it names.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use opsmgr_ca::agent::{
    AgentSettings, Held, KeyState, NoChannel, Refusal, Trust, channel_serial_number,
    choose_channel_certificate, select_channel_certificate,
};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{PrivateKey, build_request, parse_policy, request_to_pem};
use opsmgr_ca::store::{PendingInfo, StoreName, Stores};

mod support;
use support::openssl::{OpensslCa, Sign, openssl};

const HOST: &str = "agent01.company.local";
const BOTH_EKUS: &str = "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth, clientAuth\nsubjectAltName = DNS:agent01.company.local";

struct Machine {
    dir: tempfile::TempDir,
    stores: Stores,
    ca: OpensslCa,
    n: usize,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::open(&dir.path().join("machine"), true).unwrap();
        let ca = OpensslCa::new(&dir.path().join("ca"), "JAMA00");
        Self {
            dir,
            stores,
            ca,
            n: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes a key and request for `cn` here, has the CA sign it as told, accepts it.
    fn enroll(&mut self, cn: &str, how: &Sign<'_>) -> CertInfo {
        self.n += 1;
        let inf = format!("[NewRequest]\nSubject = \"CN={cn}\"\nKeyAlgorithm = ECDSA_P256\n");
        let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
        let key = PrivateKey::generate(policy.key).unwrap();
        let req = self.path(&format!("{}.req", self.n));
        let cer = self.path(&format!("{}.cer", self.n));
        std::fs::write(
            &req,
            request_to_pem(&build_request(&policy, &key).unwrap()).unwrap(),
        )
        .unwrap();
        let lock = self.stores.lock().unwrap();
        let info = PendingInfo {
            subject: format!("CN={cn}"),
            exportable: false,
            friendly_name: None,
            created: SystemTime::UNIX_EPOCH,
        };
        self.stores.add_pending(&lock, &key, &info).unwrap();
        self.ca.sign(&req, &cer, how);
        let bytes = std::fs::read(&cer).unwrap();
        // accept checks validity now; expired ones are placed as accept would at issue time.
        let at = CertInfo::parse(&bytes).unwrap().not_before + Duration::from_secs(1);
        self.stores.accept(&lock, &bytes, at).unwrap().cert
    }

    fn trust(&self, root: &Path) {
        let lock = self.stores.lock().unwrap();
        let added = self
            .stores
            .add_root(&lock, &std::fs::read(root).unwrap(), false)
            .unwrap();
        assert!(added.cert.is_ca);
    }
}

fn refusals_of(e: NoChannel, thumbprint: &str) -> Vec<Refusal> {
    e.candidates
        .into_iter()
        .find(|c| c.cert.thumbprint == thumbprint)
        .unwrap()
        .refusals
}

#[test]
fn an_openssl_issued_certificate_is_selected_once_its_root_is_trusted() {
    let mut m = Machine::new();
    let cert = m.enroll(HOST, &Sign::default());

    let untrusted = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refusals_of(untrusted, &cert.thumbprint),
        [Refusal::Untrusted {
            detail: "the Root store is empty".into()
        }]
    );

    m.trust(&m.ca.cert.clone());
    let chosen = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap()
        .chosen;
    assert_eq!(chosen.thumbprint, cert.thumbprint);
    // Case and a trailing dot do not matter in host names.
    assert!(
        select_channel_certificate(&m.stores, "AGENT01.Company.Local.", SystemTime::now())
            .unwrap()
            .is_ok()
    );

    // The serial as MOMCertImport records it: OpenSSL's serial, bytes reversed.
    let serial_hex = String::from_utf8(openssl(
        m.dir.path(),
        &["x509", "-in", &format!("{}.cer", m.n), "-noout", "-serial"],
    ))
    .unwrap();
    let serial_hex = serial_hex.trim().strip_prefix("serial=").unwrap();
    let reversed: String = (0..serial_hex.len())
        .step_by(2)
        .rev()
        .map(|i| &serial_hex[i..i + 2])
        .collect();
    let machine = m.path("machine");
    let mut settings = AgentSettings::load(&machine).unwrap();
    assert_eq!(settings, AgentSettings::default());
    settings.set_channel_certificate(&chosen);
    settings.save(&machine).unwrap();
    let again = AgentSettings::load(&machine).unwrap();
    assert_eq!(
        again.channel_certificate_serial_number.as_deref(),
        Some(reversed.as_str())
    );
    assert_eq!(
        again.channel_certificate_hash.as_deref(),
        Some(cert.thumbprint.as_str())
    );
    let mut cleared = again.clone();
    assert!(cleared.clear_channel_certificate());
    assert!(!cleared.clear_channel_certificate());
}

#[test]
fn the_whole_serial_is_reversed_whatever_its_length() {
    assert_eq!(
        channel_serial_number(&[0x00, 0x81, 0x02]),
        [0x02, 0x81, 0x00]
    );
    let twenty: Vec<u8> = (1..=20).collect();
    let reversed: Vec<u8> = (1..=20).rev().collect();
    assert_eq!(channel_serial_number(&twenty), reversed);
}

#[test]
fn one_eku_only_is_refused_for_the_missing_one() {
    let mut m = Machine::new();
    m.trust(&m.ca.cert.clone());
    let cert = m.enroll(
        HOST,
        &Sign {
            extensions: Some(
                "extendedKeyUsage = clientAuth\nsubjectAltName = DNS:agent01.company.local",
            ),
            ..Sign::default()
        },
    );
    let e = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refusals_of(e, &cert.thumbprint),
        [Refusal::MissingEku {
            purpose: "server authentication",
            oid: "1.3.6.1.5.5.7.3.1"
        }]
    );
}

#[test]
fn a_certificate_from_another_root_is_untrusted_and_says_whose_it_is() {
    let mut m = Machine::new();
    let other = OpensslCa::new(&m.path("other"), "SOMEONE-ELSE");
    m.trust(&other.cert);
    let cert = m.enroll(HOST, &Sign::default());
    let e = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(
        refusals_of(e, &cert.thumbprint),
        [Refusal::Untrusted {
            detail: "no certificate in Root issued it (its issuer is CN=JAMA00)".into()
        }]
    );
    assert!(text.starts_with(&format!(
        "no certificate in My can be the channel certificate of {HOST}\n  {} (CN={HOST}): it does not chain to a trusted root in Root",
        cert.thumbprint
    )), "{text}");
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let mut m = Machine::new();
    m.trust(&m.ca.cert.clone());
    let expired = m.enroll(
        HOST,
        &Sign {
            start: Some("20200101000000Z"),
            end: Some("20210101000000Z"),
            extensions: Some(BOTH_EKUS),
        },
    );
    let future = m.enroll(
        HOST,
        &Sign {
            start: Some("20990101000000Z"),
            end: Some("20991231000000Z"),
            extensions: Some(BOTH_EKUS),
        },
    );
    let e = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap_err();
    let candidates = e.candidates;
    let find = |t: &str| candidates.iter().find(|c| c.cert.thumbprint == t).unwrap();
    assert_eq!(
        find(&expired.thumbprint).refusals,
        [Refusal::Expired {
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_609_459_200)
        }]
    );
    assert_eq!(
        find(&future.thumbprint).refusals,
        [Refusal::NotYetValid {
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(4_070_908_800)
        }]
    );
}

#[test]
fn a_certificate_that_ends_before_it_starts_is_refused_not_a_panic() {
    let m = Machine::new();
    let inf = format!("[NewRequest]\nSubject = \"CN={HOST}\"\nKeyAlgorithm = ECDSA_P256\n");
    let policy = parse_policy(inf.as_bytes(), "t.inf", Default::default()).unwrap();
    let key = PrivateKey::generate(policy.key).unwrap();
    let (req, cer) = (m.path("inverted.req"), m.path("inverted.cer"));
    std::fs::write(
        &req,
        request_to_pem(&build_request(&policy, &key).unwrap()).unwrap(),
    )
    .unwrap();
    let mut ca = OpensslCa::new(&m.path("ca2"), "JAMA00");
    ca.sign(
        &req,
        &cer,
        &Sign {
            start: Some("20300101000000Z"),
            end: Some("20200101000000Z"),
            extensions: Some(BOTH_EKUS),
        },
    );
    let cert = CertInfo::parse(&std::fs::read(&cer).unwrap()).unwrap();
    assert!(cert.not_before > cert.not_after);
    let root = CertInfo::parse(&std::fs::read(&ca.cert).unwrap()).unwrap();
    let held = Held {
        cert,
        key: KeyState::Matches,
    };
    let trust = Trust {
        roots: vec![root],
        crls: Vec::new(),
    };
    let e = choose_channel_certificate(&[held], &trust, HOST, SystemTime::now()).unwrap_err();
    assert_eq!(
        e.candidates[0].refusals[0],
        Refusal::NotYetValid {
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        }
    );
}

#[test]
fn the_newest_qualifying_certificate_wins_and_other_names_and_missing_keys_are_refused() {
    let mut m = Machine::new();
    m.trust(&m.ca.cert.clone());
    let older = m.enroll(
        HOST,
        &Sign {
            start: Some("20250101000000Z"),
            end: Some("20300101000000Z"),
            extensions: Some(BOTH_EKUS),
        },
    );
    let newer = m.enroll(
        HOST,
        &Sign {
            start: Some("20260101000000Z"),
            end: Some("20290101000000Z"),
            extensions: Some(BOTH_EKUS),
        },
    );
    let other = m.enroll("agent02.company.local", &Sign::default());
    let selection = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(selection.chosen.thumbprint, newer.thumbprint);
    assert_eq!(selection.candidates.len(), 3);
    let refusals = |t: &str| {
        selection
            .candidates
            .iter()
            .find(|c| c.cert.thumbprint == t)
            .unwrap()
            .refusals
            .clone()
    };
    assert!(refusals(&older.thumbprint).is_empty());
    assert_eq!(
        refusals(&other.thumbprint),
        [Refusal::OtherName {
            names: vec![
                "agent02.company.local".into(),
                "agent02.company.local".into()
            ]
        }]
    );

    // A damaged store: the newer certificate's key is gone; the older one is chosen.
    let key = m.stores.root().join(format!("My/{}.key", newer.thumbprint));
    std::fs::remove_file(key).unwrap();
    let selection = select_channel_certificate(&m.stores, HOST, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(selection.chosen.thumbprint, older.thumbprint);
    let newer_refusals = selection
        .candidates
        .iter()
        .find(|c| c.cert.thumbprint == newer.thumbprint)
        .unwrap();
    assert_eq!(newer_refusals.refusals, [Refusal::NoPrivateKey]);
    let entry = m.stores.find(StoreName::My, &newer.thumbprint).unwrap();
    assert!(!entry.has_key);
}

/// What the agent presents: nothing before MOMCertImport records a certificate, and an error
/// naming the thumbprint when the recorded certificate has left My.
#[test]
fn channel_identity_is_none_unrecorded_and_an_error_when_the_certificate_left() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path();
    assert!(
        opsmgr_ca::agent::channel_identity(machine)
            .unwrap()
            .is_none()
    );
    let settings = AgentSettings {
        channel_certificate_hash: Some("00AA11BB22CC33DD44EE55FF66007788990011AA".into()),
        ..Default::default()
    };
    settings.save(machine).unwrap();
    let err = opsmgr_ca::agent::channel_identity(machine).unwrap_err();
    assert!(
        matches!(&err, opsmgr_ca::Error::NoSuchEntry { store: StoreName::My, id } if id.starts_with("00AA11")),
        "{err:?}"
    );
}

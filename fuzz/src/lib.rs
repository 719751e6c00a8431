//! The bodies of the fuzz targets, as plain functions so that the committed seeds can also be
//! replayed on stable (`cargo test` in this folder) where no nightly toolchain exists.

use std::collections::HashMap;

use opsmgr_configfix::{Document, EditOptions, Target};
use opsmgr_model::HostName;
use opsmgr_model::balance::{Policy, plan};
use opsmgr_model::inventory::{Inventory, ServerRole};

/// Arbitrary bytes to the inventory reader; when they parse, the balancer runs and its
/// properties 1 (balance), 4 (valid failover lists) and 5 (determinism, idempotence) are
/// asserted. Every other outcome must be a clean error, never a panic.
pub fn inventory(data: &[u8]) {
    let Ok(inv) = Inventory::from_json_reader(data, "fuzz") else {
        return;
    };
    let policy = Policy {
        tolerance: 0.0,
        ..Policy::default()
    };
    let Ok(p) = plan(&inv, &policy) else {
        return;
    };
    let after = p.apply();
    assert!(
        after.validate().is_ok(),
        "the plan's result is a valid inventory"
    );

    // Pools: agents behind a gateway stay with gateways, the others with management servers.
    let role = |name: &HostName| inv.server(name).map(|s| s.role);
    let gateway =
        |a: &opsmgr_model::inventory::Agent| a.primary.as_ref().and_then(role) == Some(ServerRole::Gateway);
    let eligible = |name: &HostName, behind_gateway: bool| {
        inv.server(name).is_some_and(|s| {
            s.agent_reachable
                && s.capacity() > 0
                && s.role != ServerRole::Rms
                && (s.role == ServerRole::Gateway) == behind_gateway
        })
    };
    let mut load: HashMap<&HostName, u64> = HashMap::new();
    let mut members = [0u64; 2];
    for (before, a) in inv.agents.iter().zip(&after.agents) {
        let behind = gateway(before);
        members[usize::from(behind)] += 1;
        let primary = a.primary.as_ref().expect("every agent has a primary");
        assert!(
            eligible(primary, behind),
            "{primary} is not eligible for {}",
            a.name
        );
        *load.entry(primary).or_default() += 1;
        // 4. Failover lists: distinct, not the primary, eligible.
        for (j, f) in a.failover.iter().enumerate() {
            assert!(f != primary && !a.failover[..j].contains(f));
            assert!(eligible(f, behind), "failover {f} is not eligible");
        }
    }
    // 1. Balance: each eligible server holds the floor or ceiling of its weighted share.
    for behind in [false, true] {
        let servers: Vec<_> = inv
            .servers
            .iter()
            .filter(|s| eligible(&s.name, behind))
            .collect();
        let total = members[usize::from(behind)];
        if total == 0 {
            continue;
        }
        let sum: u64 = servers.iter().map(|s| u64::from(s.capacity())).sum();
        for s in servers {
            let share = u128::from(total) * u128::from(s.capacity());
            let floor = share / u128::from(sum);
            let ceil = floor + u128::from(share % u128::from(sum) != 0);
            let n = u128::from(load.get(&s.name).copied().unwrap_or(0));
            assert!(
                n == floor || n == ceil,
                "{} carries {n}, share {floor}..{ceil}",
                s.name
            );
        }
    }
    // 5. Determinism and idempotence.
    let mut reversed = inv.clone();
    reversed.agents.reverse();
    reversed.servers.reverse();
    let targets = |p: &opsmgr_model::balance::Plan<'_>| {
        let mut t: Vec<(String, String, Vec<String>)> = p
            .assignments()
            .map(|a| {
                (
                    a.agent.to_lowercase(),
                    a.primary.to_lowercase(),
                    a.failover.iter().map(|f| f.to_lowercase()).collect(),
                )
            })
            .collect();
        t.sort();
        t
    };
    let again = plan(&reversed, &policy).expect("a reordered inventory plans too");
    assert_eq!(
        targets(&p),
        targets(&again),
        "the plan depends on input order"
    );
    let settled = plan(&after, &policy).expect("the result plans");
    assert_eq!(settled.changed(), 0, "planning the result again changes it");
}

/// The targets the config fuzzer aims at: the two real ones and some general shapes.
const CONFIG_TARGETS: [&str; 5] = [
    "configuration/appSettings/add[@key='MOMServer']/@value",
    "Configuration/Extensions/Security/Extension/Configuration/ServerName",
    "//a/@k",
    "//b",
    "*//*[@x]/@x",
];

/// Arbitrary bytes to the locate-and-splice path: the first byte picks a target and a value,
/// the rest is the file. It must never panic; when an edit succeeds, the result parses, every
/// match reads back as the new value, and every byte outside the spans is unchanged.
pub fn configfix(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let target: Target = CONFIG_TARGETS[usize::from(pick) % CONFIG_TARGETS.len()]
        .parse()
        .expect("the fuzz targets parse");
    let value = if pick & 0x80 == 0 {
        "MGT01.prod.local"
    } else {
        "a&b<c>\"d'e\tf"
    };
    let Ok(doc) = Document::parse(file.to_vec()) else {
        return;
    };
    // Refusals (malformed, no match, markup in a value, ...) are fine; panics are not.
    let Ok(edit) = doc.edit(
        std::slice::from_ref(&target),
        value,
        &EditOptions::default(),
    ) else {
        return;
    };
    let Some(out) = &edit.output else {
        assert!(edit.matches.iter().all(|m| m.old == value));
        return;
    };
    let (mut b, mut a) = (0, 0);
    for (old, new) in edit.spans.iter().zip(&edit.new_spans) {
        assert_eq!(
            file[b..old.start],
            out[a..new.start],
            "bytes between values changed"
        );
        (b, a) = (old.end, new.end);
    }
    assert_eq!(file[b..], out[a..], "bytes after the last value changed");
    let again = Document::parse(out.clone()).expect("the result decodes");
    let found = again.find(&target).expect("the result parses");
    assert_eq!(found.len(), edit.matches.len());
    for f in found {
        if target.is_attribute() {
            assert_eq!(f.value, value);
        } else {
            // Element text is read back without surrounding white space.
            assert_eq!(f.value, value.trim_matches([' ', '\t', '\r', '\n']));
        }
    }
}

/// Arbitrary bytes to the backup reader, the key store reader and the sealed-secret reader:
/// never a panic. Key derivation runs only when the file asks for at most 1 MiB and 2 passes:
/// the readers' own bounds (4 GiB at most) are checked by `inspect_backup` first, and the
/// fuzzer must not spend its memory proving that Argon2 allocates what it is told.
pub fn backup(data: &[u8]) {
    use opsmgr_securestorage::backup::{inspect_backup, open_backup};
    use opsmgr_securestorage::keystore::KeyStore;
    if let Ok(info) = inspect_backup(data) {
        assert!(info.kdf.memory_kib <= opsmgr_securestorage::format::limits::MAX_MEMORY_KIB);
        if info.kdf.memory_kib <= 1024 && info.kdf.passes <= 2 {
            let _ = open_backup(data, "fuzzing password");
        }
    }
    if let Ok(store) = KeyStore::from_bytes(data) {
        // A store that parses writes back to the same bytes.
        assert_eq!(store.to_bytes().as_slice(), data);
    }
    let _ = KeyStore::sealed_key_id(data);
}

/// Arbitrary key records behind a valid key store header, with the SHA-256 recomputed, so that
/// fuzzing reaches the record parser (the digest and the backup's GCM tag stop random bytes
/// before it). Whatever parses writes back to the same bytes (one current key, unique ids),
/// and its current key seals and opens.
pub fn keystore_records(data: &[u8]) {
    use opsmgr_securestorage::keystore::{KeyStore, SealedFor};
    use opsmgr_securestorage::random::RandomSource;
    use sha2::{Digest, Sha256};
    struct Fixed;
    impl RandomSource for Fixed {
        fn fill(&mut self, buf: &mut [u8]) -> opsmgr_securestorage::Result<()> {
            buf.fill(7);
            Ok(())
        }
    }
    let mut bytes = b"OMKS\x01".to_vec();
    bytes.extend_from_slice(data);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    let Ok(store) = KeyStore::from_bytes(&bytes) else {
        return;
    };
    assert_eq!(store.to_bytes().as_slice(), bytes.as_slice());
    assert_eq!(
        store.keys().len(),
        usize::from(u16::from_be_bytes([data[0], data[1]]))
    );
    let owner = SealedFor {
        management_group: "PROD",
        account: "fuzz",
    };
    let sealed = store
        .seal_for(b"secret", owner, &mut Fixed)
        .expect("sealing");
    assert_eq!(
        store.open_for(&sealed, owner).expect("opening").as_slice(),
        b"secret"
    );
}

/// Arbitrary bytes to the certreq.inf reader: never a panic; a policy that parses names a CN,
/// at least one DNS name and at least one EKU.
pub fn certreq_inf(data: &[u8]) {
    use opsmgr_ca::request::{PolicyOptions, parse_policy};
    for allow_legacy_rsa1024 in [false, true] {
        if let Ok(p) = parse_policy(
            data,
            "fuzz.inf",
            PolicyOptions {
                allow_legacy_rsa1024,
            },
        ) {
            assert!(p.subject.common_name().is_some());
            assert!(!p.dns_names.is_empty() && !p.ekus.is_empty());
        }
    }
}

/// Arbitrary bytes to the request reader and signature check: never a panic, bounded input.
pub fn request(data: &[u8]) {
    if let Ok(request) = opsmgr_ca::request::parse_request(data) {
        let _ = opsmgr_ca::request::verify_request(&request);
    }
}

/// Arbitrary bytes as a certificate file (what `-accept` and `-addstore` read): a clean error
/// or a certificate whose DER reads back to the same facts.
pub fn certificate(data: &[u8]) {
    let Ok(cert) = opsmgr_ca::cert::CertInfo::parse(data) else {
        return;
    };
    assert_eq!(cert.thumbprint.len(), 40);
    let again = opsmgr_ca::cert::CertInfo::parse(&cert.der).expect("its own DER parses");
    assert_eq!(again.thumbprint, cert.thumbprint);
    assert_eq!(again.dns_names, cert.dns_names);
    let _ = cert.names_host("agent01.company.local");
}

/// Arbitrary bytes as an installer bundle (what `om-certreq -install` reads on an agent): a
/// clean error, or one CA certificate and one certificate it issued.
pub fn bundle(data: &[u8]) {
    let Ok(b) = opsmgr_ca::agent::read_bundle(data) else {
        return;
    };
    assert!(b.root.is_ca && !b.leaf.is_ca);
    assert_eq!(b.leaf.issuer, b.root.subject);
}

/// Arbitrary bytes as a PFX opened with the password "fuzz" (what `-importPFX` and
/// `om-momcertimport FILE.pfx` read): a clean error, or one key that is its certificate's key.
pub fn pfx(data: &[u8]) {
    let Ok(p) = opsmgr_ca::store::read_pfx(data, "fuzz") else {
        return;
    };
    assert_eq!(
        p.key.public_key_der().expect("a read key encodes"),
        p.certificate.public_key
    );
}

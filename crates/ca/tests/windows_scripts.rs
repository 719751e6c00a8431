//! The scripts a stock Windows agent runs: the installers the CA writes beside each
//! certificate and the agent kit. No Windows runs here, so each is read by what stands in for
//! one: a real PowerShell grammar (no ERROR or MISSING node; no token PowerShell 1.0 lacks)
//! and a checker of cmd.exe's rules (`support/cmd.rs`); the certificate and root they carry
//! are decoded back and compared; the kit's certreq.inf is read by our own certreq.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

#[path = "support/cmd.rs"]
mod cmd;
#[path = "support/powershell.rs"]
mod powershell;

use opsmgr_ca::authority::{Authority, InitOptions};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::request::{
    EKU_CLIENT_AUTH, EKU_SERVER_AUTH, KeyType, PolicyOptions, PrivateKey, build_request,
    parse_policy,
};
use opsmgr_ca::windows::{
    AgentKit, FQDN_PLACEHOLDER, InstallExit, Installer, KitKey, SharePath, agent_kit, install_cmd,
    install_ps1,
};
use opsmgr_hostname::HostName;

/// A CA and a certificate it issued for `host`.
fn issued(host: &str) -> (tempfile::TempDir, Vec<u8>, CertInfo) {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now();
    let mut ca = Authority::init(&dir.path().join("ca"), &InitOptions::default(), now).unwrap();
    let inf = format!("[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\n");
    let policy = parse_policy(inf.as_bytes(), "t.inf", PolicyOptions::default()).unwrap();
    let key = PrivateKey::generate(policy.key).unwrap();
    let req = der::Encode::to_der(&build_request(&policy, &key).unwrap()).unwrap();
    let id = ca.submit(&req, "t.req", now).unwrap().record.id;
    let record = ca.resubmit(id, now).unwrap();
    let root = ca.issuer().root().clone();
    (dir, record.certificate.unwrap(), root)
}

/// The base64 between a here-string's or an echo block's BEGIN and END lines, decoded.
fn carried(script: &str, after: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in script.lines() {
        let line = line.trim().trim_start_matches("echo ").trim();
        match &mut current {
            None if line == after => current = Some(String::new()),
            Some(b64) if line == "'@" || line == "-----END CERTIFICATE-----" => {
                let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----\n");
                out.push(der::pem::decode_vec(pem.as_bytes()).unwrap().1);
                current = None;
            }
            Some(b64) => {
                b64.push_str(line);
                b64.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn installers_parse_carry_the_certificate_and_check_the_pin() {
    for host in [
        "agent01.company.local",
        "a",
        "x-1.y-2.company.local",
        &format!("{}.company.local", "h".repeat(50)),
    ] {
        let (_dir, cert, root) = issued(host);
        let name = HostName::new(host).unwrap();
        let installer = Installer {
            host: &name,
            request_id: 12,
            certificate: &cert,
            root: &root.der,
            root_thumbprint: &root.thumbprint,
            ca_name: "JAMA00",
        };
        let ps1 = install_ps1(&installer).unwrap();
        assert_eq!(powershell::faults(&ps1), Vec::<String>::new(), "{ps1}");
        assert_eq!(
            powershell::not_in_powershell_1(&ps1),
            Vec::<String>::new(),
            "{ps1}"
        );
        assert_eq!(
            carried(&ps1, "$RootBase64 = @'"),
            std::slice::from_ref(&root.der)
        );
        assert_eq!(
            carried(&ps1, "$CertBase64 = @'"),
            std::slice::from_ref(&cert)
        );
        assert!(ps1.contains(&format!("$RootThumbprint = '{}'", root.thumbprint)));
        assert!(ps1.contains(&format!("$Fqdn = '{host}'")));
        // Every exit code is in the script's header, and each failure path uses its own.
        for (code, what) in InstallExit::ALL {
            assert!(
                ps1.contains(&format!("#   {:>2}  {what}", code as u8)),
                "{what}"
            );
        }
        // The steps, in the seed's order.
        let order: Vec<usize> = [
            "& certutil.exe -addstore root",
            "& certreq.exe -accept -q",
            "& $MomCertImport /SubjectName $Fqdn",
            "& net.exe stop HealthService",
            "& net.exe start HealthService",
        ]
        .iter()
        .map(|step| ps1.find(step).unwrap_or_else(|| panic!("{step}")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        // -WhatIf leaves before the first change.
        assert!(ps1.find("if ($WhatIf)").unwrap() < order[0]);
        assert!(ps1.contains("\r\n") && !ps1.replace("\r\n", "").contains('\n'));

        let cmd = install_cmd(&installer).unwrap();
        assert_eq!(cmd::cmd_faults(&cmd), Vec::<String>::new(), "{cmd}");
        let echoed = carried(&cmd, "-----BEGIN CERTIFICATE-----");
        assert_eq!(echoed, [root.der.clone(), cert.clone()]);
        assert!(cmd.contains(&format!("set \"PIN={}\"", root.thumbprint)));
        let steps: Vec<usize> = [
            "\r\ncertutil -addstore root",
            "\r\ncertreq -accept -q",
            "\r\n\"%MOMCERT%\" /SubjectName",
            "\r\nnet stop HealthService",
            "\r\nnet start HealthService",
        ]
        .iter()
        .map(|step| cmd.find(step).unwrap_or_else(|| panic!("{step}")))
        .collect();
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "{steps:?}");
        assert!(cmd.find("if defined CHECK goto :check").unwrap() < steps[0]);
    }
}

#[test]
fn what_could_carry_code_into_a_script_is_refused() {
    let (_dir, cert, root) = issued("agent01.company.local");
    let name = HostName::new("agent01.company.local").unwrap();
    let base = Installer {
        host: &name,
        request_id: 1,
        certificate: &cert,
        root: &root.der,
        root_thumbprint: &root.thumbprint,
        ca_name: "JAMA00",
    };
    for ca_name in ["JAMA'00", "JA%MA", "J\"A", "a&b", "x y"] {
        let i = Installer { ca_name, ..base };
        assert!(install_ps1(&i).is_err(), "{ca_name}");
        assert!(install_cmd(&i).is_err(), "{ca_name}");
    }
    for pin in ["", "'; Remove-Item", &"A".repeat(39), &"G".repeat(40)] {
        let i = Installer {
            root_thumbprint: pin,
            ..base
        };
        assert!(install_ps1(&i).is_err(), "{pin}");
    }
    // Host names are validated before a script sees them: the type itself refuses these.
    for host in ["a'b", "a\"b", "a%b", "a&b.local", "a b", "a;b", "a\r\nb"] {
        assert!(HostName::new(host).is_err(), "{host:?}");
    }
    for share in [
        "C:\\share",
        "\\\\ca01",
        "\\\\ca01\\a'b",
        "\\\\ca01\\a%b%",
        "\\\\ca01\\a\"b",
        "\\\\ca01\\a&b",
        "\\\\ca 01\\share",
        "\\\\ca01\\..\\x",
        "//ca01/share",
    ] {
        assert!(SharePath::new(share).is_err(), "{share}");
    }
    assert_eq!(
        SharePath::new("\\\\ca01.company.local\\cert requests$\\in\\")
            .unwrap()
            .as_str(),
        "\\\\ca01.company.local\\cert requests$\\in"
    );
}

fn kit(key: KitKey) -> AgentKit {
    agent_kit(
        &SharePath::new("\\\\ca01\\certrequests").unwrap(),
        key,
        "JAMA00",
    )
    .unwrap()
}

#[test]
fn the_agent_kit_writes_what_our_certreq_reads_and_scripts_that_parse() {
    for (key, expected) in [
        (KitKey::Rsa2048, KeyType::Rsa(2048)),
        (KitKey::Rsa4096, KeyType::Rsa(4096)),
    ] {
        let kit = kit(key);
        // What the scripts do with it: the machine's FQDN in place of the placeholder.
        let inf = kit.inf.replace(FQDN_PLACEHOLDER, "agent42.company.local");
        let policy = parse_policy(inf.as_bytes(), "certreq.inf", PolicyOptions::default())
            .unwrap_or_else(|e| panic!("{e}\n{inf}"));
        assert_eq!(policy.key, expected);
        assert_eq!(policy.subject.common_name(), Some("agent42.company.local"));
        assert!(policy.machine_key_set);
        // The seed: "the private key must be exportable".
        assert!(policy.exportable);
        assert_eq!(policy.ekus, [EKU_SERVER_AUTH, EKU_CLIENT_AUTH]);

        assert_eq!(powershell::faults(&kit.request_ps1), Vec::<String>::new());
        assert_eq!(
            powershell::not_in_powershell_1(&kit.request_ps1),
            Vec::<String>::new()
        );
        assert!(
            kit.request_ps1
                .contains("$Share = '\\\\ca01\\certrequests'")
        );
        assert!(
            kit.request_ps1
                .contains("& certreq.exe -new -q -f $inf $req")
        );
        assert_eq!(cmd::cmd_faults(&kit.request_cmd), Vec::<String>::new());
        assert!(
            kit.request_cmd
                .contains("certreq -new -q -f \"%INF%\" \"%REQ%\"")
        );
        // request.cmd writes the same certreq.inf, line by line, %FQDN% in place.
        let written: Vec<String> = kit
            .request_cmd
            .lines()
            .filter_map(|l| l.strip_prefix(">>\"%INF%\" echo("))
            .map(|l| l.replace("%FQDN%", "agent42.company.local"))
            .collect();
        assert_eq!(written, inf.lines().collect::<Vec<_>>());
    }
}

/// The README's table of the installers' exit codes is the scripts' own, row for row.
#[test]
fn the_readmes_exit_codes_are_the_installers() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let table = &readme[readme.find("| Exit | Meaning |").unwrap()..];
    let rows: Vec<&str> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let want: Vec<String> = InstallExit::ALL
        .iter()
        .map(|(code, what)| format!("| {} | {what} |", *code as u8))
        .collect();
    assert_eq!(rows, want);
}

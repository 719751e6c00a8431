//! Every PowerShell script the model writes is parsed by a real PowerShell grammar
//! (tree-sitter-powershell): no ERROR or MISSING node, also when the management group's name
//! holds every kind of quote. The grammar is modern PowerShell, so for the 2007 R2 shell a
//! second check refuses the tokens PowerShell 1.0 does not know.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use opsmgr_model::HostName;
use opsmgr_model::balance::{Policy, plan};
use opsmgr_model::inventory::{Agent, Inventory, Server, ServerRole};
use opsmgr_model::script::{
    EXPORT_CSV_HEADER, Shell, ps_comment, ps_quote, write_export_script, write_powershell,
};
use proptest::prelude::*;
#[path = "../../ca/tests/support/powershell.rs"]
mod powershell;
use powershell::{faults, find, not_in_powershell_1, parse};

fn assert_parses(what: &str, script: &str) {
    let faults = faults(script);
    assert!(faults.is_empty(), "{what}: {faults:?}\n{script}");
}

fn h(s: &str) -> HostName {
    HostName::new(s).unwrap()
}

/// Every quote PowerShell knows, and typographic double quotes: all allowed in a management
/// group name by Operations Manager's rule (which forbids only ASCII ' " ` $).
const HOSTILE_GROUP: &str = "Ops \u{2018}a\u{2019} \u{201a}b\u{201b} \u{201c}c\u{201d} \u{201e}d";

fn group(name: &str, failovers_in_use: bool) -> Inventory {
    let servers = ["MGT01.prod.local", "MGT02.prod.local", "MGT03.prod.local"];
    let mut agents: Vec<Agent> = (0..9)
        .map(|i| Agent {
            name: h(&format!("server{i:02}.company.local")),
            primary: Some(h(servers[0])),
            failover: if failovers_in_use {
                vec![h(servers[1]), h(servers[2])]
            } else {
                vec![]
            },
        })
        .collect();
    agents[0].primary = Some(h("RMS.prod.local"));
    agents[1].primary = None;
    Inventory {
        management_group: name.into(),
        servers: std::iter::once(Server {
            agent_reachable: false,
            ..Server::new(h("RMS.prod.local"), ServerRole::Rms)
        })
        .chain(
            servers
                .iter()
                .map(|s| Server::new(h(s), ServerRole::Management)),
        )
        .chain([Server::new(h("GW01.dmz.local"), ServerRole::Gateway)])
        .collect(),
        agents,
    }
}

fn script(inv: &Inventory, policy: &Policy, shell: Shell) -> String {
    let p = plan(inv, policy).unwrap();
    let mut out = Vec::new();
    write_powershell(&p, shell, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn export(shell: Shell) -> String {
    let mut out = Vec::new();
    write_export_script(shell, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// Every script the model writes, named.
fn all_scripts() -> Vec<(String, Shell, String)> {
    let mut out = Vec::new();
    for shell in [Shell::OpsMgr2007, Shell::Scom2012] {
        for name in ["PROD", HOSTILE_GROUP] {
            for failovers in [None, Some(0), Some(1)] {
                let policy = Policy {
                    failovers,
                    tolerance: 0.0,
                    ..Policy::default()
                };
                let inv = group(name, true);
                out.push((
                    format!("{shell:?} plan, group {name:?}, failovers {failovers:?}"),
                    shell,
                    script(&inv, &policy, shell),
                ));
            }
            // A balanced group: the empty plan.
            let inv = plan(&group(name, false), &Policy::default())
                .unwrap()
                .apply();
            let empty = script(&inv, &Policy::default(), shell);
            assert!(empty.contains("this script changes nothing"), "{empty}");
            out.push((
                format!("{shell:?} empty plan, group {name:?}"),
                shell,
                empty,
            ));
        }
        out.push((format!("{shell:?} export"), shell, export(shell)));
    }
    out
}

#[test]
fn every_script_parses() {
    // The check finds what PowerShell would refuse.
    assert!(!faults("if ($x { Write-Host 'a' }").is_empty());
    assert!(!faults("foreach ($n in @('a', 'b')) { throw \"x\"").is_empty());
    let scripts = all_scripts();
    assert_eq!(scripts.len(), 2 * (2 * 4 + 1));
    for (what, _, script) in &scripts {
        assert_parses(what, script);
    }
}

#[test]
fn the_group_name_reaches_scripts_only_quoted_or_in_one_comment_line() {
    for shell in [Shell::OpsMgr2007, Shell::Scom2012] {
        let s = script(&group(HOSTILE_GROUP, true), &Policy::default(), shell);
        let tree = parse(&s);
        let mut strings = Vec::new();
        find(tree.root_node(), "verbatim_string_characters", &mut strings);
        let literal = ps_quote(HOSTILE_GROUP);
        let assigned: Vec<&str> = strings
            .iter()
            .map(|n| &s[n.byte_range()])
            .filter(|t| *t == literal)
            .collect();
        assert_eq!(
            assigned.len(),
            1,
            "$group = '...' is one whole literal: {s}"
        );
        assert!(s.contains(&format!("$group = {literal}\n")));
        // Outside string literals the name appears only in comments.
        let mut comments = Vec::new();
        find(tree.root_node(), "comment", &mut comments);
        let in_comments = comments
            .iter()
            .filter(|n| s[n.byte_range()].contains("\u{201e}d"))
            .count();
        assert_eq!(in_comments, 1, "{s}");
        assert_eq!(s.matches("\u{201e}d").count(), 2, "{s}");
    }
}

/// PowerShell's own tokenizer (unlike the grammar) ends a single-quoted string at any of
/// ' ‘ ’ ‚ ‛, and reads two in a row as one: inside our literals every run of them must
/// have even length.
fn quote_runs_are_even(literal: &str) -> bool {
    let inner: Vec<char> = literal.chars().collect();
    let inner = &inner[1..inner.len() - 1];
    let is_quote = |c: &char| matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}');
    inner
        .chunk_by(|a, b| is_quote(a) == is_quote(b))
        .filter(|run| is_quote(&run[0]))
        .all(|run| run.len() % 2 == 0)
}

fn unquote(literal: &str) -> String {
    let inner: Vec<char> = literal.chars().collect();
    let mut out = String::new();
    let mut chars = inner[1..inner.len() - 1].iter();
    while let Some(&c) = chars.next() {
        out.push(c);
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}') {
            chars.next();
        }
    }
    out
}

proptest! {
    #[test]
    fn any_text_quoted_is_one_literal(text in "[a-z '\u{2018}\u{2019}\u{201a}\u{201b}\"\u{201c}\u{201d}\u{201e}$`(){};#\n\r]{0,40}") {
        let literal = ps_quote(&text);
        let statement = format!("$x = {literal}\n$y = 1\n");
        prop_assert!(faults(&statement).is_empty(), "{statement}");
        let tree = parse(&statement);
        let mut strings = Vec::new();
        find(tree.root_node(), "verbatim_string_characters", &mut strings);
        prop_assert_eq!(strings.len(), 1);
        prop_assert_eq!(&statement[strings[0].byte_range()], literal.as_str());
        prop_assert!(quote_runs_are_even(&literal));
        prop_assert_eq!(unquote(&literal), text);
    }

    #[test]
    fn any_text_in_a_comment_stays_a_comment(text in "[a-z '\"$`;\n\r\t\u{2028}\u{2029}\u{85}\u{b}\u{c}]{0,40}") {
        let script = format!("# {}\n$y = 1\n", ps_comment(&text));
        prop_assert!(faults(&script).is_empty(), "{script}");
        let tree = parse(&script);
        let mut comments = Vec::new();
        find(tree.root_node(), "comment", &mut comments);
        prop_assert_eq!(comments.len(), 1);
        prop_assert_eq!(comments[0].end_position().row, 0);
        prop_assert_eq!(script.lines().count(), 2);
    }
}

#[test]
fn ps2007_scripts_use_only_powershell_1() {
    // The check itself finds a 2.0 token.
    assert!(
        not_in_powershell_1("try { Set-StrictMode -Version 2.0 }")
            .contains(&"set-strictmode".to_owned())
    );
    let mut checked = 0;
    for (what, shell, script) in all_scripts() {
        let found = not_in_powershell_1(&script);
        if shell == Shell::OpsMgr2007 {
            assert!(found.is_empty(), "{what} uses {found:?}:\n{script}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn failovers_0_clears_the_list_in_both_shells() {
    let policy = Policy {
        failovers: Some(0),
        tolerance: 0.0,
        ..Policy::default()
    };
    let inv = group("PROD", true);
    let p = plan(&inv, &policy).unwrap();
    assert_eq!(
        p.changed(),
        inv.agents.len(),
        "every failover list is cleared"
    );
    let s2007 = script(&inv, &policy, Shell::OpsMgr2007);
    let s2012 = script(&inv, &policy, Shell::Scom2012);
    for c in p.changes() {
        let agent = format!("$agents[{}]", ps_quote(c.agent.name.as_str()));
        assert!(s2007.contains(&format!(
            "Set-ManagementServer -AgentManagedComputer {agent} -PrimaryManagementServer $ms['{}'] -FailoverServer @()\n    if (@({agent}.GetFailoverManagementServers()).Count -ne 0) {{ throw",
            c.primary
        )), "{s2007}");
        let last = s2012
            .lines()
            .rfind(|l| l.contains(&agent) && l.contains("Set-SCOM"))
            .unwrap();
        assert_eq!(
            last.trim(),
            format!("Set-SCOMParentManagementServer -Agent {agent} -FailoverServer $null")
        );
    }
}

#[test]
fn what_if_prints_one_line_per_agent_and_changes_nothing() {
    for shell in [Shell::OpsMgr2007, Shell::Scom2012] {
        let inv = group("PROD", true);
        let p = plan(&inv, &Policy::default()).unwrap();
        let s = script(&inv, &Policy::default(), shell);
        assert!(s.contains("\nparam([switch]$WhatIf)\n"), "{s}");
        // Every change is one `if ($WhatIf) { Write-Host 'What if: ...' } else { ... }`.
        let blocks: Vec<&str> = s.split("if ($WhatIf) {\n").skip(1).collect();
        assert_eq!(blocks.len(), p.changed());
        for (block, c) in blocks.iter().zip(p.changes()) {
            let (dry, wet) = block.split_once("} else {\n").unwrap();
            assert_eq!(
                dry.trim(),
                format!(
                    "Write-Host 'What if: {}: primary {} -> {}; failover {} -> {}'",
                    c.agent.name,
                    c.agent.primary.as_ref().map_or("(none)", |p| p.as_str()),
                    c.primary,
                    if c.agent.failover.is_empty() {
                        "(none)".to_owned()
                    } else {
                        c.agent
                            .failover
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    c.failover
                        .iter()
                        .map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            );
            let wet = wet.split("\n}").next().unwrap();
            assert!(wet.contains("Set-"), "{wet}");
            assert!(
                wet.trim_end().ends_with(&format!(
                    "Write-Host 'Changed {}",
                    &dry.trim()["Write-Host 'What if: ".len()..]
                )),
                "{wet}"
            );
        }
    }
}

#[test]
fn export_scripts_write_what_the_reader_accepts() {
    for shell in [Shell::OpsMgr2007, Shell::Scom2012] {
        let s = export(shell);
        assert!(s.contains(&format!(
            "[void]$lines.Add({})",
            ps_quote(EXPORT_CSV_HEADER)
        )));
        assert!(s.contains("Set-Content -Path $AgentsFile -Value $lines.ToArray() -Encoding UTF8"));
        assert!(s.contains("Set-Content -Path $ServersFile -Value $json.ToArray() -Encoding UTF8"));
        let cmdlets: &[&str] = match shell {
            Shell::OpsMgr2007 => &[
                "Get-Agent",
                "$a.GetPrimaryManagementServer()",
                "$a.GetFailoverManagementServers()",
                "$s.IsRootManagementServer",
                "Get-GatewayManagementServer",
                "Get-ManagementGroupConnection",
            ],
            _ => &[
                "Get-SCOMAgent",
                "Get-SCOMParentManagementServer -Agent $a",
                "$a.GetFailoverManagementServers()",
                "Get-SCOMManagementServer",
                "$s.IsGateway",
            ],
        };
        for c in cmdlets {
            assert!(s.contains(c), "{c}: {s}");
        }
    }
    // What Set-Content -Encoding UTF8 writes from those lines: a byte order mark, CRLF, the
    // Csv and Json functions' quoting.
    let agents = format!(
        "\u{feff}{EXPORT_CSV_HEADER}\r\n\
         \"server01.company.local\",\"MGT01.prod.local\",\"MGT02.prod.local;MGT03.prod.local\"\r\n\
         \"server02.company.local\",\"\",\"\"\r\n\
         \"server03.company.local\",\"GW01.dmz.local\",\"\"\r\n"
    );
    let servers = "\u{feff}{\r\n  \"management_group\": \"PROD\",\r\n  \"servers\": [\r\n    \
         {\"name\": \"RMS.prod.local\", \"role\": \"rms\", \"agent_reachable\": false},\r\n    \
         {\"name\": \"MGT01.prod.local\", \"role\": \"management\"},\r\n    \
         {\"name\": \"MGT02.prod.local\", \"role\": \"management\"},\r\n    \
         {\"name\": \"MGT03.prod.local\", \"role\": \"management\"},\r\n    \
         {\"name\": \"GW01.dmz.local\", \"role\": \"gateway\"}\r\n  ]\r\n}\r\n";
    let servers = Inventory::from_json_bytes(servers.as_bytes(), "servers.json").unwrap();
    assert_eq!(servers.rms().unwrap().capacity(), 0);
    let inv = Inventory::from_csv_bytes(servers, agents.as_bytes(), "agents.csv").unwrap();
    assert_eq!(inv.agents.len(), 3);
    assert_eq!(
        inv.agents[0].failover,
        [h("MGT02.prod.local"), h("MGT03.prod.local")]
    );
    assert_eq!(inv.agents[1].primary, None);
    // The 2007 script writes the JSON lines in exactly that shape.
    let s = export(Shell::OpsMgr2007);
    assert!(s.contains(r#"[void]$servers.Add('    {"name": ' + (Json $s.Name) + ', "role": "' + $role + '"' + $reach + '}')"#));
    assert!(s.contains(r#"$reach = ', "agent_reachable": false'"#));
}

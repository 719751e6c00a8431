//! om-balance driven as an operator would: real files in a temp folder, stdout, stderr and
//! exit codes asserted.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};

mod common;
use common::text;

fn om_balance(args: &[&str]) -> std::process::Output {
    common::run(env!("CARGO_BIN_EXE_om-balance"), args)
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/inventory.json")
}

#[test]
fn plan_table_shows_before_after_and_failures() {
    let out = om_balance(&["plan", example().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("MGT01.prod.local  management"),
        ["MGT01.prod.local", "management", "yes", "3000", "36", "12"]
    );
    assert_eq!(
        row("RMS.prod.local"),
        ["RMS.prod.local", "rms", "no", "0", "0", "0"]
    );
    assert!(stdout.contains(
        "Agents moved to another primary: 24; agents changed (primary or failover list): 36"
    ));
    let failure = row("MGT01.prod.local  MGT0");
    assert_eq!(&failure[2..], ["18", "18.0"]);
}

#[test]
fn json_apply_and_check_agree() {
    let dir = tempfile::tempdir().unwrap();
    let out = om_balance(&["plan", example().to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["assignments"].as_array().unwrap().len(), 36);
    assert_eq!(v["changes"].as_array().unwrap().len(), 36);
    assert_eq!(v["load_after"]["MGT02.prod.local"], 12);

    let before = om_balance(&["check", example().to_str().unwrap()]);
    assert_eq!(before.status.code(), Some(1));
    assert_eq!(
        text(&before.stdout),
        "not balanced: 24 of 36 management agent(s) (66.7%) above their server's share (tolerance 5.0%); 12 failover list(s) to correct\n"
    );

    let new = dir.path().join("new.json");
    let apply = om_balance(&[
        "apply",
        example().to_str().unwrap(),
        "-o",
        new.to_str().unwrap(),
    ]);
    assert_eq!(apply.status.code(), Some(0), "{}", text(&apply.stderr));
    let after = om_balance(&["check", new.to_str().unwrap()]);
    assert_eq!(after.status.code(), Some(0), "{}", text(&after.stdout));
    assert!(text(&after.stdout).starts_with("balanced: 36 agent(s)"));

    // The applied inventory matches the plan's complete target.
    let applied: serde_json::Value = serde_json::from_slice(&std::fs::read(&new).unwrap()).unwrap();
    for (a, t) in applied["agents"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["assignments"].as_array().unwrap())
    {
        assert_eq!(a["name"], t["agent"]);
        assert_eq!(a["primary"], t["primary"]);
        assert_eq!(a["failover"], t["failover"]);
    }
}

#[test]
fn csv_export_with_servers_file() {
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    std::fs::write(
        &servers,
        r#"{"management_group": "PROD", "servers": [
            {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
            {"name": "MGT01.prod.local", "role": "management"},
            {"name": "MGT02.prod.local", "role": "management"}]}"#,
    )
    .unwrap();
    let csv = dir.path().join("agents.csv");
    std::fs::write(
        &csv,
        "Agent,PrimaryManagementServer,FailoverManagementServers\r\n\
         a1.local,RMS.prod.local,MGT01.prod.local\r\n\
         a2.local,MGT01.prod.local,\r\n",
    )
    .unwrap();
    let out = om_balance(&[
        "plan",
        csv.to_str().unwrap(),
        "--servers",
        servers.to_str().unwrap(),
        "--format",
        "ps2007",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    let calls: Vec<&str> = script
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("Set-ManagementServer"))
        .collect();
    assert!(
        calls[0].contains("$agents['a1.local'] -PrimaryManagementServer $ms['MGT0"),
        "urgent agent first: {script}"
    );

    let no_servers = om_balance(&["plan", csv.to_str().unwrap()]);
    assert_eq!(no_servers.status.code(), Some(2));
    assert!(
        text(&no_servers.stderr)
            .contains("a CSV export needs the servers: add --servers SERVERS.json")
    );
}

#[test]
fn bad_input_exits_2_naming_the_place_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"management_group": "PROD", "servers": [{"name": "MGT01.prod.local", "role": "management"}],
            "agents": [{"name": "a1.local", "primary": "MGT07.prod.local"}]}"#,
    )
    .unwrap();
    let out_file = dir.path().join("out.json");
    let out = om_balance(&[
        "apply",
        bad.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "om-balance: error: {}: agents[0].primary: unknown server 'MGT07.prod.local' (not in the server list)\n",
            bad.display()
        )
    );
    assert!(!out_file.exists());

    let out = om_balance(&["plan", example().to_str().unwrap(), "--tolerance", "150"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("150 is not a percentage between 0 and 100"));
    let out = om_balance(&["plan", example().to_str().unwrap(), "--exclude", "bad/name"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn over_capacity_is_a_loud_warning() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.json");
    let small = std::fs::read_to_string(example()).unwrap().replace(
        r#""role": "management""#,
        r#""role": "management", "capacity": 10"#,
    );
    std::fs::write(&inv, small).unwrap();
    let out = om_balance(&["plan", inv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let warnings: Vec<String> = (1..=3)
        .map(|i| format!("om-balance: WARNING: MGT0{i}.prod.local is over capacity: 12 agents, it supports 10\n"))
        .collect();
    assert_eq!(text(&out.stderr), warnings.concat());
}

#[test]
fn reads_what_windows_powershell_writes_and_refuses_a_hostile_group_name() {
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    // Out-File -Encoding UTF8 writes a byte order mark.
    std::fs::write(
        &servers,
        "\u{feff}{\"management_group\": \"PROD\", \"servers\": [\r\n\
         {\"name\": \"MGT01.prod.local\", \"role\": \"management\"},\r\n\
         {\"name\": \"MGT02.prod.local\", \"role\": \"management\"}]}\r\n",
    )
    .unwrap();
    // `Export-Csv ... ; Get-Content x.csv > agents.csv`: #TYPE, quotes, CRLF, UTF-16 LE + BOM.
    let csv_text = "#TYPE System.Management.Automation.PSCustomObject\r\n\
        \"Agent\",\"PrimaryManagementServer\",\"FailoverManagementServers\"\r\n\
        \"a1.local\",\"MGT01.prod.local\",\"MGT02.prod.local\"\r\n\
        \"a2.local\",\"MGT01.prod.local\",\"MGT07.prod.local\"\r\n";
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(csv_text.encode_utf16().flat_map(u16::to_le_bytes));
    let csv = dir.path().join("agents.csv");
    std::fs::write(&csv, &utf16).unwrap();
    let args = [
        "plan",
        csv.to_str().unwrap(),
        "--servers",
        servers.to_str().unwrap(),
    ];
    let out = om_balance(&args);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "om-balance: error: {}: line 4: unknown server 'MGT07.prod.local' (not in the server list)\n",
            csv.display()
        )
    );
    let fixed: Vec<u8> = std::iter::once(0xfeff)
        .chain(csv_text.replace("MGT07", "MGT02").encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(&csv, fixed).unwrap();
    let out = om_balance(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let hostile = dir.path().join("hostile.json");
    std::fs::write(
        &hostile,
        r#"{"management_group": "PROD\nRemove-Item -Recurse -Force C:\\Important #", "servers": [{"name": "MGT01.prod.local", "role": "management"}]}"#,
    )
    .unwrap();
    let out = om_balance(&["plan", hostile.to_str().unwrap(), "--format", "ps2007"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stdout).is_empty());
    assert!(
        text(&out.stderr).starts_with(&format!(
            "om-balance: error: {}: management_group: management group name \"PROD\\nRemove-Item -Recurse -Force C:\\\\Important #\" is refused: character '\\n' at position 4",
            hostile.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn export_script_prints_the_models_script_and_help_documents_the_files() {
    for (flag, shell) in [
        ("ps2007", opsmgr_model::script::Shell::OpsMgr2007),
        ("ps2012", opsmgr_model::script::Shell::Scom2012),
    ] {
        let out = om_balance(&["export-script", "--shell", flag]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let mut want = Vec::new();
        opsmgr_model::script::write_export_script(shell, &mut want).unwrap();
        assert_eq!(text(&out.stdout), text(&want));
        assert!(text(&out.stdout).contains(&format!(
            "# Then: om-balance plan $AgentsFile --servers $ServersFile --format {flag}"
        )));
    }
    let out = om_balance(&["export-script", "--shell", "ps2010"]);
    assert_eq!(out.status.code(), Some(2));

    let help = text(&om_balance(&["--help"]).stdout);
    for needle in [
        "\"Agent\",\"PrimaryManagementServer\",\"FailoverManagementServers\"",
        "#TYPE System.Management.Automation.PSCustomObject",
        "{\"name\": \"RMS.prod.local\", \"role\": \"rms\", \"agent_reachable\": false}",
        "om-balance export-script --shell ps2007|ps2012",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

#[test]
fn help_examples_are_read_as_documented() {
    // The two example files of `om-balance --help`, cut out of the help text.
    let help = text(&om_balance(&["--help"]).stdout);
    let indented = |first: &str, lines: usize| -> String {
        let start = help.find(first).unwrap();
        help[start..]
            .lines()
            .take(lines)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let csv = indented("    #TYPE", 4);
    let servers = indented("{\"management_group\"", 7);
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (dir.path().join("a.csv"), dir.path().join("s.json"));
    std::fs::write(&c, csv).unwrap();
    std::fs::write(&s, servers).unwrap();
    let out = om_balance(&[
        "plan",
        c.to_str().unwrap(),
        "--servers",
        s.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["assignments"].as_array().unwrap().len(), 2);
}

#[test]
fn two_failovers_by_default_all_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("five.json");
    let servers: Vec<String> = (1..=5)
        .map(|i| format!(r#"{{"name": "MGT0{i}.prod.local", "role": "management"}}"#))
        .collect();
    let agents: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"name": "a{i:02}.local", "primary": "MGT01.prod.local"}}"#))
        .collect();
    std::fs::write(
        &inv,
        format!(
            r#"{{"management_group": "PROD", "servers": [{}], "agents": [{}]}}"#,
            servers.join(","),
            agents.join(",")
        ),
    )
    .unwrap();
    let lengths = |extra: &[&str]| -> Vec<usize> {
        let mut args = vec!["plan", inv.to_str().unwrap(), "--format", "json"];
        args.extend(extra);
        let out = om_balance(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["failover"].as_array().unwrap().len())
            .collect()
    };
    assert_eq!(lengths(&[]), [2; 20]);
    assert_eq!(lengths(&["--failovers", "all"]), [4; 20]);
    assert_eq!(lengths(&["--failovers", "ALL"]), [4; 20]);
    assert_eq!(lengths(&["--failovers", "1"]), [1; 20]);
    assert_eq!(lengths(&["--failovers", "9"]), [4; 20], "capped");

    let table = text(&om_balance(&["plan", inv.to_str().unwrap(), "--failovers", "all"]).stdout);
    assert!(
        table.contains("failovers: all other eligible servers"),
        "{table}"
    );
    let table = text(&om_balance(&["plan", inv.to_str().unwrap()]).stdout);
    assert!(table.contains("failovers: 2,"), "{table}");

    let out = om_balance(&["plan", inv.to_str().unwrap(), "--failovers", "many"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("'many' is not a number of failover servers or 'all'"),
        "{}",
        text(&out.stderr)
    );
    let help = text(&om_balance(&["plan", "--help"]).stdout);
    assert!(help.contains("--failovers <K|all>"), "{help}");
    assert!(help.contains("[default: 2]"), "{help}");
}

/// `om-balance apply -o` onto its own input keeps the input first, dated, beside it.
#[test]
fn apply_onto_its_input_keeps_a_dated_copy() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    let before = serde_json::json!({
        "management_group": "PROD",
        "servers": [
            {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
            {"name": "MGT01.prod.local", "role": "management"},
            {"name": "MGT02.prod.local", "role": "management"}
        ],
        "agents": [
            {"name": "a1.company.local", "primary": "MGT01.prod.local"},
            {"name": "a2.company.local", "primary": "MGT01.prod.local"}
        ]
    });
    std::fs::write(&inventory, serde_json::to_vec_pretty(&before).unwrap()).unwrap();
    let original = std::fs::read(&inventory).unwrap();
    let out = om_balance(&[
        "apply",
        inventory.to_str().unwrap(),
        "-o",
        inventory.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("kept the previous"), "{said}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &inventory)
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let name = kept[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("inventory.") && name.ends_with("Z.json"),
        "{name}"
    );
    assert_eq!(std::fs::read(&kept[0]).unwrap(), original);
    assert_ne!(std::fs::read(&inventory).unwrap(), original);
}

/// `apply -o` onto a CSV (an Export-Csv inventory, or any .csv name) is refused before
/// anything is written: the output is JSON, which Import-Csv could not read back.
#[test]
fn apply_refuses_to_write_json_into_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("agents.csv");
    let original =
        "\"Name\",\"PrimaryManagementServerName\"\r\n\"a1.company.local\",\"MGT01.prod.local\"\r\n";
    std::fs::write(&csv, original).unwrap();
    let out = om_balance(&[
        "apply",
        csv.to_str().unwrap(),
        "-o",
        dir.path().join("AGENTS.CSV").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("AGENTS.CSV' names a CSV file, but the balanced inventory is written as JSON: give a .json output (-o balanced.json)"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), original);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// `plan --chart` draws the plan: every server by name with its agents before and after, the
/// RMS and unreachable servers marked, and how many agents move, in an SVG that parses.
#[test]
fn plan_draws_a_chart_of_every_server_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.json");
    let agents: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"name": format!("a{i}.company.local"), "primary": "MGT01.prod.local"}))
        .collect();
    std::fs::write(
        &inventory,
        serde_json::to_vec(&serde_json::json!({
            "management_group": "PROD",
            "servers": [
                {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
                {"name": "MGT01.prod.local", "role": "management", "capacity": 10},
                {"name": "MGT02.prod.local", "role": "management", "capacity": 10}
            ],
            "agents": agents
        }))
        .unwrap(),
    )
    .unwrap();
    let chart = dir.path().join("plan.svg");
    let out = om_balance(&[
        "plan",
        inventory.to_str().unwrap(),
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .collect();
    for want in [
        "RMS.prod.local",
        "MGT01.prod.local",
        "MGT02.prod.local",
        "RMS, unreachable",
        "before",
        "after",
        "capacity",
        // Before: all twelve on MGT01; after: six and six.
        "12",
        "6",
        "Management group PROD: 6 of 12 agents move to another primary",
    ] {
        assert!(texts.iter().any(|t| t == want), "{want} not in {texts:?}");
    }
    // The table still goes to stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains("MGT02.prod.local"));
}

/// The CSV reader's hint names the agent export script; om-balance adds the command that
/// prints it (the library names no command of ours).
#[test]
fn a_wrong_csv_header_is_told_the_command_that_prints_the_export_script() {
    let dir = tempfile::tempdir().unwrap();
    let servers = dir.path().join("servers.json");
    std::fs::write(
        &servers,
        r#"{"management_group":"PROD","servers":[{"name":"MGT01.prod.local","role":"management"}],"agents":[]}"#,
    )
    .unwrap();
    let csv = dir.path().join("agents.csv");
    std::fs::write(
        &csv,
        "\"Name\",\"Status\"\r\n\"a1.company.local\",\"Running\"\r\n",
    )
    .unwrap();
    let out = om_balance(&[
        "check",
        csv.to_str().unwrap(),
        "--servers",
        servers.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(
            "or write the file with the agent export script (om-balance export-script --shell ps2007 or ps2012 prints it)"
        ),
        "{said}"
    );
}

//! The procedures of the seed that involve systems these tools do not run (SQL Server, the
//! cluster, the services), as numbered steps with the exact commands, each naming the tool of
//! ours that does its part. They name our tools, so they live with them
//! (`om-msconfigtool Runbook NAME` prints one).

use serde::Serialize;

/// One step of a runbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What to do.
    pub text: &'static str,
    /// The exact commands or queries, in order.
    pub commands: &'static [&'static str],
    /// The tool of ours that does it, where one exists.
    pub tool: Option<&'static str>,
}

/// A procedure of the seed that involves systems these tools do not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Runbook {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it is for.
    pub title: &'static str,
    /// The steps, in order.
    pub steps: &'static [Step],
}

const RESTORE_CLUSTERED_RMS: Runbook = Runbook {
    name: "restore-clustered-rms",
    title: "Restore a clustered RMS (the RMS and the Operational database are reinstalled)",
    steps: &[
        Step {
            text: "Back up the OperationsManager database to a separate system (disk or tape).",
            commands: &[
                "BACKUP DATABASE OperationsManager TO DISK = N'\\\\backupserver\\share\\OperationsManager.bak'",
            ],
            tool: None,
        },
        Step {
            text: "Back up the RMS encryption key with a password (twice; at least 8 characters).",
            commands: &["SecureStorageBackup Backup \\\\backupserver\\share\\BackupKey.bin"],
            tool: Some("om-securestoragebackup --machine RMS Backup FILE"),
        },
        Step {
            text: "Create a new clustered RMS configuration in the same way as the previous management group.",
            commands: &[],
            tool: None,
        },
        Step {
            text: "Drop the new Operational database and restore the original one.",
            commands: &[
                "RESTORE DATABASE OperationsManager FROM DISK = N'\\\\backupserver\\share\\OperationsManager.bak' WITH REPLACE",
            ],
            tool: None,
        },
        Step {
            text: "Restore the original encryption key on every cluster node.",
            commands: &["SecureStorageBackup Restore \\\\backupserver\\share\\BackupKey.bin"],
            tool: Some("om-securestoragebackup --machine NODE Restore FILE (once per node)"),
        },
        Step {
            text: "Bring the clustered RMS resource group back online in Cluster Administrator.",
            commands: &[],
            tool: None,
        },
        Step {
            text: "In SQL Server Management Studio, check that Service Broker is enabled on the Operational database.",
            commands: &[
                "SELECT is_broker_enabled FROM sys.databases WHERE name='OperationsManager'",
            ],
            tool: None,
        },
        Step {
            text: "If it returned 0, enable the broker (reopen Management Studio before the last statement).",
            commands: &[
                "ALTER DATABASE OperationsManager SET SINGLE_USER WITH ROLLBACK IMMEDIATE",
                "ALTER DATABASE OperationsManager SET ENABLE_BROKER",
                "ALTER DATABASE OperationsManager SET MULTI_USER",
            ],
            tool: None,
        },
        Step {
            text: "Restart the SQL services if they are stopped, then the SDK service.",
            commands: &["net start MSSQLSERVER", "net start OMSDK"],
            tool: None,
        },
    ],
};

const PROMOTE_PRE_SP1: Runbook = Runbook {
    name: "promote-pre-sp1",
    title: "Promote a management server on OpsMgr 2007 before SP1 (data warehouse processing stays behind)",
    steps: &[
        Step {
            text: "Back up the RMS encryption key and copy it to a share the new RMS can read.",
            commands: &["SecureStorageBackup Backup \\\\fileserver\\share\\BackupKey.bin"],
            tool: Some("om-securestoragebackup --machine RMS Backup FILE"),
        },
        Step {
            text: "Restore the key on the management server that becomes the RMS.",
            commands: &["SecureStorageBackup Restore \\\\fileserver\\share\\BackupKey.bin"],
            tool: Some("om-securestoragebackup --machine NEW-RMS Restore FILE"),
        },
        Step {
            text: "Promote it; answer Y to the warning.",
            commands: &["ManagementServerConfigTool PromoteRMS /DeleteExistingRMS:true"],
            tool: Some(
                "om-msconfigtool PromoteRMS /DeleteExistingRMS:true --group DIR --machine NEW-RMS",
            ),
        },
        Step {
            text: "Restart the Health Service on the old RMS (service name HealthService in every version; its display name is \"OpsMgr Health Service\" before 2007 R2 and \"System Center Management\" in 2007 R2).",
            commands: &["net stop HealthService", "net start HealthService"],
            tool: None,
        },
        Step {
            text: "Before SP1 the data warehouse synchronisation stays on the old RMS and assumes the SDK is local: start the SDK service on the old RMS so management pack data keeps moving to the data warehouse.",
            commands: &["net start OMSDK"],
            tool: None,
        },
        Step {
            text: "After installing SP1, promote another management server to RMS and then back, which moves data warehouse processing to the real RMS.",
            commands: &[
                "ManagementServerConfigTool PromoteRMS /DeleteExistingRMS:true",
                "ManagementServerConfigTool PromoteRMS /DeleteExistingRMS:true",
            ],
            tool: Some("om-msconfigtool PromoteRMS (run twice, on each server in turn)"),
        },
        Step {
            text: "Point the Reporting server and the Web Console at the new RMS.",
            commands: &[],
            tool: Some(
                "om-configfix reporting PATH --rms NEW-RMS; om-configfix webconsole PATH --rms NEW-RMS",
            ),
        },
    ],
};

/// Every runbook, by name.
pub const RUNBOOKS: [Runbook; 2] = [RESTORE_CLUSTERED_RMS, PROMOTE_PRE_SP1];

/// The runbook named `name` (case-insensitive).
pub fn runbook(name: &str) -> Option<&'static Runbook> {
    RUNBOOKS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Each runbook is found by its name in any case and no other; every tool a step names
    /// is one of our binaries with a verb it has (the runbooks are text, and text goes stale
    /// when a tool is renamed).
    #[test]
    fn runbooks_name_only_tools_and_verbs_that_exist() {
        let manifest = include_str!("../Cargo.toml");
        let binaries: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \"om-"))
            .map(|n| n.trim_end_matches('"'))
            .collect();
        assert!(binaries.len() >= 8, "{binaries:?}");
        for r in &RUNBOOKS {
            assert_eq!(
                runbook(&r.name.to_ascii_uppercase()).map(|x| x.name),
                Some(r.name)
            );
            for step in r.steps {
                let Some(tool) = step.tool else { continue };
                for command in tool.split(';') {
                    let words: Vec<&str> = command.split_whitespace().collect();
                    let binary = words[0].strip_prefix("om-").unwrap();
                    assert!(binaries.contains(&binary), "{tool}: no om-{binary}");
                    // The verb: the first word that is neither an option nor its value.
                    let mut rest = words[1..].iter();
                    let mut verb = None;
                    while let Some(w) = rest.next() {
                        if w.starts_with("--") {
                            rest.next();
                        } else {
                            verb = Some(w.to_ascii_lowercase());
                            break;
                        }
                    }
                    let verb = verb.unwrap_or_else(|| panic!("{tool}: no verb"));
                    let folder = format!("{}/src/bin/om-{binary}", env!("CARGO_MANIFEST_DIR"));
                    let main: String = std::fs::read_dir(&folder)
                        .unwrap()
                        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                        .collect::<String>()
                        .to_ascii_lowercase();
                    assert!(
                        main.contains(&format!("\"{verb}\""))
                            || main.contains(&format!("    {verb}")),
                        "{tool}: om-{binary} has no verb {verb}"
                    );
                }
            }
        }
        assert!(runbook("nothing").is_none());
    }

    /// Every command that is not SQL can be typed into PowerShell as written: a PowerShell
    /// grammar (tree-sitter-powershell) parses it without an error or a missing node.
    #[test]
    fn runbook_commands_parse_as_powershell() {
        let mut parser = tree_sitter::Parser::new();
        parser
            .set_language(&tree_sitter_powershell::LANGUAGE.into())
            .unwrap();
        let mut n = 0;
        for r in &RUNBOOKS {
            for c in r.steps.iter().flat_map(|s| s.commands) {
                let sql = ["SELECT", "ALTER", "BACKUP", "RESTORE"]
                    .iter()
                    .any(|k| c.starts_with(k));
                if !sql {
                    let tree = parser.parse(c, None).unwrap();
                    assert!(!tree.root_node().has_error(), "{}: {c}", r.name);
                    n += 1;
                }
            }
        }
        assert!(n >= 8, "{n}");
    }
}

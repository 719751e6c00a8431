//! PowerShell scripts that carry a plan out on a running management group.

use std::collections::BTreeSet;
use std::io::{self, Write};

use crate::HostName;
use crate::balance::{Change, Plan};

/// Which Operations Manager shell the script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shell {
    /// The Operations Manager 2007 R2 Command Shell: `Set-ManagementServer` sets an agent's
    /// primary and whole failover list in one call.
    OpsMgr2007,
    /// Operations Manager 2012 and later: `Set-SCOMParentManagementServer` sets the primary
    /// and the failover list in separate calls.
    Scom2012,
}

/// A PowerShell single-quoted string literal. PowerShell also ends single-quoted strings at
/// the typographic single quotes, so each of those is doubled too.
pub fn ps_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Text for a PowerShell `#` comment: one line whatever it holds. Control characters, line
/// and paragraph separators and every whitespace but the space become `?`, so the text
/// cannot end the comment and run as a command.
pub fn ps_comment(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || (c.is_whitespace() && c != ' ') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn server_list(servers: &[&HostName]) -> String {
    servers
        .iter()
        .map(|s| format!("$ms[{}]", ps_quote(s.as_str())))
        .collect::<Vec<_>>()
        .join(",")
}

fn names_or_none(servers: &[&HostName]) -> String {
    if servers.is_empty() {
        "(none)".to_owned()
    } else {
        servers
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The lines every script starts with after its comments: the dry-run switch, stop at the
/// first error, and for 2012 strict mode (PowerShell 2.0 and later only).
fn prologue(out: &mut impl Write, shell: Shell, params: &str) -> io::Result<()> {
    writeln!(out, "param({params})")?;
    if shell == Shell::Scom2012 {
        writeln!(out, "Set-StrictMode -Version 2.0")?;
    }
    writeln!(out, "$ErrorActionPreference = 'Stop'")?;
    // `trap` is PowerShell 1.0's error handler (try/catch came with 2.0); `break` stops.
    writeln!(
        out,
        "trap {{ Write-Host ('om-balance: stopped at the first error: ' + $_); break }}"
    )
}

/// The lines that set `$connected` to the name of the management group the shell is
/// connected to, refusing when it is connected to none or several.
fn connected_group(out: &mut impl Write, shell: Shell) -> io::Result<()> {
    match shell {
        Shell::OpsMgr2007 => {
            writeln!(out, "$connections = @(Get-ManagementGroupConnection)")?;
            writeln!(
                out,
                "if ($connections.Count -ne 1) {{ throw ('Connect this shell to exactly one management group; Get-ManagementGroupConnection lists ' + $connections.Count) }}"
            )?;
            writeln!(out, "$connected = $connections[0].ManagementGroup.Name")
        }
        Shell::Scom2012 => {
            writeln!(out, "$groups = @(Get-SCOMManagementGroup)")?;
            writeln!(
                out,
                "if ($groups.Count -ne 1) {{ throw ('Connect this shell to exactly one management group; Get-SCOMManagementGroup lists ' + $groups.Count) }}"
            )?;
            writeln!(out, "$connected = $groups[0].Name")
        }
    }
}

fn shell_name(shell: Shell) -> &'static str {
    match shell {
        Shell::OpsMgr2007 => "the Operations Manager 2007 R2 Command Shell (PowerShell 1.0 or 2.0)",
        Shell::Scom2012 => "the Operations Manager Shell (2012 or later)",
    }
}

/// Writes a script that carries out `plan`'s changes, and only those.
///
/// The script takes a `-WhatIf` switch (`param([switch]$WhatIf)`, which PowerShell 1.0
/// scripts accept too): with it, it prints one line per agent it would change and changes
/// nothing; without it, it prints one line per agent it changed. It refuses to run in a shell
/// connected to another management group, stops at the first error (`$ErrorActionPreference
/// = 'Stop'` and a `trap`), looks every server and agent up once and refuses to start when
/// one is missing, and orders the work make-before-break: agents whose current primary is
/// unusable come first, and no call ever leaves an agent without a primary. For 2012, where
/// the new primary may not also be a failover, the new primary is first taken out of the
/// failover list (keeping the rest), then the primary is set, then the target failover list.
/// An empty failover target clears the list in both shells. An empty plan gives a script that
/// says so and touches nothing.
///
/// The 2007 script uses only PowerShell 1.0 commands and syntax. Inventory text reaches the
/// script only as single-quoted literals ([`ps_quote`]) or in comments ([`ps_comment`]).
pub fn write_powershell(plan: &Plan<'_>, shell: Shell, mut out: impl Write) -> io::Result<()> {
    let out = &mut out;
    let changes: Vec<Change<'_>> = plan.changes().collect();
    let used: BTreeSet<&HostName> = changes
        .iter()
        .flat_map(|c| {
            std::iter::once(c.primary)
                .chain(c.failover.iter().copied())
                .chain(c.agent.primary.iter())
                .chain(c.agent.failover.iter())
        })
        .collect();
    let group = &plan.inventory().management_group;
    writeln!(
        out,
        "# Balances the agents of management group {}: {} agent(s) change, {} of them their primary.",
        ps_comment(&ps_quote(group)),
        changes.len(),
        plan.moved()
    )?;
    writeln!(
        out,
        "# Generated by om-balance; run it in {}.",
        shell_name(shell)
    )?;
    if changes.is_empty() {
        writeln!(out, "# The plan is empty: this script changes nothing.")?;
        writeln!(out, "param([switch]$WhatIf)")?;
        writeln!(
            out,
            "Write-Host {}",
            ps_quote(&format!(
                "om-balance: nothing to change in management group {group}; no agent was touched."
            ))
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "# Make-before-break: agents without a usable primary first; no agent is ever left without a primary."
    )?;
    writeln!(
        out,
        "# Dry run: .\\balance.ps1 -WhatIf prints one line per agent it would change, and changes nothing."
    )?;
    prologue(out, shell, "[switch]$WhatIf")?;
    writeln!(out)?;
    writeln!(out, "$group = {}", ps_quote(group))?;
    connected_group(out, shell)?;
    writeln!(
        out,
        "if ($connected -ne $group) {{ throw ('This shell is connected to management group ' + $connected + '; the plan is for ' + $group) }}"
    )?;
    let (lookup_servers, lookup_agents) = match shell {
        Shell::OpsMgr2007 => (
            "@(Get-ManagementServer) + @(Get-GatewayManagementServer)",
            "Get-Agent",
        ),
        Shell::Scom2012 => ("@(Get-SCOMManagementServer)", "Get-SCOMAgent"),
    };
    writeln!(out, "$ms = @{{}}")?;
    writeln!(
        out,
        "foreach ($s in {lookup_servers}) {{ $ms[$s.Name] = $s }}"
    )?;
    writeln!(out, "$agents = @{{}}")?;
    writeln!(
        out,
        "foreach ($a in @({lookup_agents})) {{ $agents[$a.PrincipalName] = $a }}"
    )?;
    let names = |it: &mut dyn Iterator<Item = &HostName>| {
        it.map(|n| ps_quote(n.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        out,
        "foreach ($n in @({})) {{ if (-not $ms.ContainsKey($n)) {{ throw \"Management server $n not found\" }} }}",
        names(&mut used.iter().copied())
    )?;
    writeln!(
        out,
        "foreach ($n in @({})) {{ if (-not $agents.ContainsKey($n)) {{ throw \"Agent $n not found\" }} }}",
        names(&mut changes.iter().map(|c| &c.agent.name))
    )?;
    for change in &changes {
        writeln!(out)?;
        let current: Vec<&HostName> = change.agent.failover.iter().collect();
        let what = format!(
            "{}: primary {} -> {}; failover {} -> {}",
            change.agent.name,
            change
                .agent
                .primary
                .as_ref()
                .map_or("(none)", |p| p.as_str()),
            change.primary,
            names_or_none(&current),
            names_or_none(&change.failover),
        );
        writeln!(out, "if ($WhatIf) {{")?;
        writeln!(
            out,
            "    Write-Host {}",
            ps_quote(&format!("What if: {what}"))
        )?;
        writeln!(out, "}} else {{")?;
        let agent = format!("$agents[{}]", ps_quote(change.agent.name.as_str()));
        let primary = format!("$ms[{}]", ps_quote(change.primary.as_str()));
        match shell {
            Shell::OpsMgr2007 => {
                // One call sets the primary and the whole failover list; an empty list is
                // passed as such, and checked, so that no old failover stays behind.
                let failover = if change.failover.is_empty() {
                    "@()".to_owned()
                } else {
                    server_list(&change.failover)
                };
                writeln!(
                    out,
                    "    Set-ManagementServer -AgentManagedComputer {agent} -PrimaryManagementServer {primary} -FailoverServer {failover}"
                )?;
                if change.failover.is_empty() {
                    writeln!(
                        out,
                        "    if (@({agent}.GetFailoverManagementServers()).Count -ne 0) {{ throw {} }}",
                        ps_quote(&format!(
                            "Set-ManagementServer left failover servers on {}; clear them in the agent's properties",
                            change.agent.name
                        ))
                    )?;
                }
            }
            Shell::Scom2012 => {
                if current.contains(&change.primary) {
                    let kept: Vec<&HostName> = current
                        .iter()
                        .copied()
                        .filter(|&f| f != change.primary)
                        .collect();
                    let kept = if kept.is_empty() {
                        "$null".to_owned()
                    } else {
                        server_list(&kept)
                    };
                    writeln!(
                        out,
                        "    Set-SCOMParentManagementServer -Agent {agent} -FailoverServer {kept}"
                    )?;
                }
                if change.primary_changes() {
                    writeln!(
                        out,
                        "    Set-SCOMParentManagementServer -Agent {agent} -PrimaryServer {primary}"
                    )?;
                }
                let target = if change.failover.is_empty() {
                    "$null".to_owned()
                } else {
                    server_list(&change.failover)
                };
                writeln!(
                    out,
                    "    Set-SCOMParentManagementServer -Agent {agent} -FailoverServer {target}"
                )?;
            }
        }
        writeln!(
            out,
            "    Write-Host {}",
            ps_quote(&format!("Changed {what}"))
        )?;
        writeln!(out, "}}")?;
    }
    Ok(())
}

/// The header of the agents CSV the export script writes, as the script writes it.
pub const EXPORT_CSV_HEADER: &str =
    "\"Agent\",\"PrimaryManagementServer\",\"FailoverManagementServers\"";

/// Writes a script that, run in a shell connected to a live management group, writes the two
/// files om-balance reads: the agents CSV (`Agent,PrimaryManagementServer,
/// FailoverManagementServers`, every field quoted, failovers in order separated by `;`) and
/// the servers file (JSON: the management group's name and its servers with their role; the
/// RMS marked unreachable by agents unless the script is run with `-RmsReachable`), both
/// UTF-8 with a byte order mark and CRLF (`Set-Content -Encoding UTF8`). The file names are
/// parameters (`-AgentsFile`, `-ServersFile`; default `agents.csv` and `servers.json`).
///
/// For 2007 R2 it uses `Get-Agent`, the agents' `GetPrimaryManagementServer()` and
/// `GetFailoverManagementServers()`, `Get-ManagementServer` (`IsRootManagementServer`,
/// `IsGateway`) and `Get-GatewayManagementServer`, in PowerShell 1.0 syntax. For 2012,
/// `Get-SCOMAgent`, `Get-SCOMParentManagementServer` (the primary), the agents'
/// `GetFailoverManagementServers()` and `Get-SCOMManagementServer` (`IsGateway`); 2012 has
/// no RMS that agents must avoid, so every server is a management server or a gateway.
pub fn write_export_script(shell: Shell, mut out: impl Write) -> io::Result<()> {
    let out = &mut out;
    let flag = match shell {
        Shell::OpsMgr2007 => "ps2007",
        Shell::Scom2012 => "ps2012",
    };
    writeln!(
        out,
        "# Writes the two files om-balance reads, from the management group this shell is connected to:"
    )?;
    writeln!(
        out,
        "#   $AgentsFile  (agents.csv): Agent,PrimaryManagementServer,FailoverManagementServers; failovers in order, ';' between"
    )?;
    writeln!(
        out,
        "#   $ServersFile (servers.json): the management group and its servers, role rms, management or gateway"
    )?;
    writeln!(
        out,
        "# Generated by om-balance export-script --shell {flag}; run it in {}.",
        shell_name(shell)
    )?;
    if shell == Shell::OpsMgr2007 {
        writeln!(
            out,
            "# Agents often cannot reach the RMS: it is written with agent_reachable false unless you run this with -RmsReachable."
        )?;
    }
    writeln!(
        out,
        "# Then: om-balance plan $AgentsFile --servers $ServersFile --format {flag}"
    )?;
    prologue(
        out,
        shell,
        "[string]$AgentsFile = 'agents.csv', [string]$ServersFile = 'servers.json', [switch]$RmsReachable",
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "function Csv($text) {{ return '\"' + ([string]$text).Replace('\"', '\"\"') + '\"' }}"
    )?;
    writeln!(
        out,
        "function Json($text) {{ return '\"' + ([string]$text).Replace('\\', '\\\\').Replace('\"', '\\\"') + '\"' }}"
    )?;
    connected_group(out, shell)?;
    writeln!(out)?;
    writeln!(out, "$lines = New-Object System.Collections.ArrayList")?;
    writeln!(out, "[void]$lines.Add({})", ps_quote(EXPORT_CSV_HEADER))?;
    let (agents, primary) = match shell {
        Shell::OpsMgr2007 => ("Get-Agent", "$a.GetPrimaryManagementServer()"),
        Shell::Scom2012 => ("Get-SCOMAgent", "Get-SCOMParentManagementServer -Agent $a"),
    };
    writeln!(out, "foreach ($a in @({agents})) {{")?;
    writeln!(out, "    $p = {primary}")?;
    writeln!(out, "    $primary = ''")?;
    writeln!(out, "    if ($p -ne $null) {{ $primary = $p.Name }}")?;
    writeln!(out, "    $failover = ''")?;
    writeln!(
        out,
        "    foreach ($f in @($a.GetFailoverManagementServers())) {{"
    )?;
    writeln!(out, "        if ($f -eq $null) {{ continue }}")?;
    writeln!(out, "        if ($failover -ne '') {{ $failover += ';' }}")?;
    writeln!(out, "        $failover += $f.Name")?;
    writeln!(out, "    }}")?;
    writeln!(
        out,
        "    [void]$lines.Add((Csv $a.PrincipalName) + ',' + (Csv $primary) + ',' + (Csv $failover))"
    )?;
    writeln!(out, "}}")?;
    writeln!(
        out,
        "Set-Content -Path $AgentsFile -Value $lines.ToArray() -Encoding UTF8"
    )?;
    writeln!(out)?;
    writeln!(out, "$servers = New-Object System.Collections.ArrayList")?;
    writeln!(out, "$seen = @{{}}")?;
    let servers = match shell {
        Shell::OpsMgr2007 => "@(Get-ManagementServer) + @(Get-GatewayManagementServer)",
        Shell::Scom2012 => "@(Get-SCOMManagementServer)",
    };
    writeln!(out, "foreach ($s in {servers}) {{")?;
    writeln!(out, "    if ($seen.ContainsKey($s.Name)) {{ continue }}")?;
    writeln!(out, "    $seen[$s.Name] = $true")?;
    writeln!(out, "    $role = 'management'")?;
    writeln!(out, "    $reach = ''")?;
    match shell {
        Shell::OpsMgr2007 => {
            writeln!(out, "    if ($s.IsRootManagementServer) {{")?;
            writeln!(out, "        $role = 'rms'")?;
            writeln!(
                out,
                "        if (-not $RmsReachable) {{ $reach = ', \"agent_reachable\": false' }}"
            )?;
            writeln!(out, "    }} elseif ($s.IsGateway) {{")?;
        }
        Shell::Scom2012 => writeln!(out, "    if ($s.IsGateway) {{")?,
    }
    writeln!(out, "        $role = 'gateway'")?;
    writeln!(out, "    }}")?;
    writeln!(
        out,
        "    [void]$servers.Add('    {{\"name\": ' + (Json $s.Name) + ', \"role\": \"' + $role + '\"' + $reach + '}}')"
    )?;
    writeln!(out, "}}")?;
    writeln!(out, "$json = New-Object System.Collections.ArrayList")?;
    writeln!(out, "[void]$json.Add('{{')")?;
    writeln!(
        out,
        "[void]$json.Add('  \"management_group\": ' + (Json $connected) + ',')"
    )?;
    writeln!(out, "[void]$json.Add('  \"servers\": [')")?;
    writeln!(out, "for ($i = 0; $i -lt $servers.Count; $i++) {{")?;
    writeln!(out, "    $line = $servers[$i]")?;
    writeln!(out, "    if ($i -lt $servers.Count - 1) {{ $line += ',' }}")?;
    writeln!(out, "    [void]$json.Add($line)")?;
    writeln!(out, "}}")?;
    writeln!(out, "[void]$json.Add('  ]')")?;
    writeln!(out, "[void]$json.Add('}}')")?;
    writeln!(
        out,
        "Set-Content -Path $ServersFile -Value $json.ToArray() -Encoding UTF8"
    )?;
    writeln!(
        out,
        "Write-Host ('Wrote ' + $AgentsFile + ' (' + ($lines.Count - 1) + ' agents) and ' + $ServersFile + ' (' + $servers.Count + ' servers) of management group ' + $connected)"
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_every_kind_of_single_quote() {
        assert_eq!(ps_quote("MGT01.prod.local"), "'MGT01.prod.local'");
        assert_eq!(ps_quote("a'b\u{2019}c"), "'a''b\u{2019}\u{2019}c'");
        assert_eq!(ps_quote("$(evil)"), "'$(evil)'");
    }

    #[test]
    fn comments_stay_on_one_line() {
        assert_eq!(
            ps_comment("PROD\nRemove-Item C:\\x\r\u{2028}\u{85}\tend"),
            "PROD?Remove-Item C:\\x????end"
        );
    }
}

//! The management group's inventory: servers, agents, and the files they are kept in.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::HostName;
use crate::apportion::sort_by_hash;
use crate::error::{
    Error, GroupNameFault, HeaderHint, Location, MANAGEMENT_GROUP_FORBIDDEN,
    MANAGEMENT_GROUP_NAME_MAX, Problem, Result,
};
use crate::hash::stable_hash;
use crate::text::{Lines, decode};

/// Agents a management server supports (Operations Manager 2007 R2 sizing).
pub const MANAGEMENT_SERVER_CAPACITY: u32 = 3000;
/// Agents a gateway server supports.
pub const GATEWAY_CAPACITY: u32 = 2000;

/// What a server does in the management group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// The root management server: owns the encryption key and talks to the databases.
    Rms,
    /// A management server agents report to.
    Management,
    /// A gateway server, for agents in untrusted networks.
    Gateway,
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerRole::Rms => "rms",
            ServerRole::Management => "management",
            ServerRole::Gateway => "gateway",
        })
    }
}

/// A server of the management group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Its host name.
    pub name: HostName,
    /// What it does.
    pub role: ServerRole,
    /// Whether agents can reach it; the RMS often is not reachable.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub agent_reachable: bool,
    /// How many agents it supports, when not the role's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Server {
    /// A server with the role's defaults: reachable, default capacity.
    pub fn new(name: HostName, role: ServerRole) -> Self {
        Self {
            name,
            role,
            agent_reachable: true,
            capacity: None,
        }
    }

    /// How many agents the server supports: the configured capacity, else the role's default
    /// (3000 for a management server or a reachable RMS, 2000 for a gateway, 0 for an RMS
    /// agents cannot reach).
    pub fn capacity(&self) -> u32 {
        self.capacity.unwrap_or(match self.role {
            ServerRole::Management => MANAGEMENT_SERVER_CAPACITY,
            ServerRole::Gateway => GATEWAY_CAPACITY,
            ServerRole::Rms if self.agent_reachable => MANAGEMENT_SERVER_CAPACITY,
            ServerRole::Rms => 0,
        })
    }
}

/// An agent and the servers it reports to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Its host name.
    pub name: HostName,
    /// Its primary management server; absent for a newly installed agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<HostName>,
    /// Its failover servers, in the order the agent tries them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<HostName>,
}

/// A management group: its servers and agents. One file per environment.
///
/// Construct it freely; [`Inventory::validate`] (which every reader and the balancer call)
/// checks the rules a management group obeys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// The management group's name.
    pub management_group: String,
    /// Its servers.
    pub servers: Vec<Server>,
    /// Its agents.
    #[serde(default)]
    pub agents: Vec<Agent>,
}

/// Checks a management group name as Operations Manager does: not empty, at most
/// [`MANAGEMENT_GROUP_NAME_MAX`] characters, no leading or trailing space, none of
/// [`MANAGEMENT_GROUP_FORBIDDEN`], no control characters, no whitespace but the plain space,
/// and no invisible formatting characters (bidirectional overrides, zero-width characters).
/// Says what is wrong.
pub fn check_management_group_name(name: &str) -> std::result::Result<(), GroupNameFault> {
    let len = name.chars().count();
    if len > MANAGEMENT_GROUP_NAME_MAX {
        return Err(GroupNameFault::TooLong(len));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(GroupNameFault::EdgeSpace);
    }
    for (position, c) in name.chars().enumerate() {
        let forbidden = MANAGEMENT_GROUP_FORBIDDEN.contains(c) && c != ' ';
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}' | '\u{ad}');
        if forbidden || c.is_control() || (c.is_whitespace() && c != ' ') || invisible {
            return Err(GroupNameFault::Character {
                character: c,
                position,
            });
        }
    }
    Ok(())
}

/// The CSV header of an agent export as om-balance's export script writes it, in order.
pub const CSV_COLUMNS: [&str; 3] = [
    "Agent",
    "PrimaryManagementServer",
    "FailoverManagementServers",
];

/// The names a column of each kind has in what PowerShell writes, in order of preference:
/// the export script's (`Agent`), and `Get-Agent | Export-Csv`'s with every property
/// (`PrincipalName` is the FQDN, `Name` too in 2007 R2; `PrimaryManagementServerName`).
const AGENT_COLUMNS: [&str; 4] = ["Agent", "PrincipalName", "Name", "DisplayName"];
const PRIMARY_COLUMNS: [&str; 2] = ["PrimaryManagementServer", "PrimaryManagementServerName"];
const FAILOVER_COLUMNS: [&str; 2] = ["FailoverManagementServers", "FailoverManagementServer"];

/// A column of a header: where it is and the name it answered to.
type Column = (usize, &'static str);

/// Where each needed column is in a header: agent, primary, failovers (optional).
fn columns(header: &csv::StringRecord) -> Option<(Column, Column, Option<Column>)> {
    let find = |names: &[&'static str]| {
        names.iter().find_map(|&n| {
            header
                .iter()
                .position(|h| {
                    h.trim()
                        .trim_start_matches('\u{feff}')
                        .eq_ignore_ascii_case(n)
                })
                .map(|i| (i, n))
        })
    };
    Some((
        find(&AGENT_COLUMNS)?,
        find(&PRIMARY_COLUMNS)?,
        find(&FAILOVER_COLUMNS),
    ))
}

/// The delimiter of a header line: `,` unless `;` (Export-Csv -UseCulture in many locales)
/// or a tab gives the columns an export needs and the comma does not.
fn delimiter(header_line: &str) -> u8 {
    for d in [b',', b';', b'\t'] {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(d)
            .from_reader(header_line.as_bytes());
        if let Some(Ok(record)) = reader.records().next()
            && columns(&record).is_some()
        {
            return d;
        }
    }
    b','
}

const IN_MEMORY: &str = "<input>";

/// "No server" in [`Resolved::primary`].
pub(crate) const NONE: u32 = u32::MAX;

/// An inventory's names resolved to positions, made while validating it.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Each agent's stable name hash.
    pub(crate) hashes: Vec<u64>,
    /// Each agent's primary server, or [`NONE`].
    pub(crate) primary: Vec<u32>,
    /// Where each agent's failovers start in `failover`; one more entry than agents.
    pub(crate) failover_start: Vec<u32>,
    /// All failover lists, one after the other.
    pub(crate) failover: Vec<u32>,
}

impl Resolved {
    /// The failover servers of agent `a`.
    pub(crate) fn failover_of(&self, a: usize) -> &[u32] {
        &self.failover[self.failover_start[a] as usize..self.failover_start[a + 1] as usize]
    }
}

/// The first repeated name, as (first position, repeat position) with the smallest repeat
/// position. Names are compared where their stable hashes are equal: sorting a million
/// hashes is several times faster than a million random inserts into a hash set.
fn first_duplicate<'n>(
    hashes: &[u64],
    name: impl Fn(usize) -> &'n HostName,
) -> Option<(usize, usize)> {
    let mut sorted: Vec<(u64, u32)> = hashes
        .iter()
        .enumerate()
        .map(|(i, &h)| (h, i as u32))
        .collect();
    sort_by_hash(&mut sorted, |a, b| a.1.cmp(&b.1));
    let mut found: Option<(usize, usize)> = None;
    for run in sorted
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|run| run.len() > 1)
    {
        // Positions are ascending within a run; equal hashes of distinct names are rare.
        for (k, &(_, later)) in run.iter().enumerate().skip(1) {
            let later = later as usize;
            if let Some(&(_, first)) = run[..k]
                .iter()
                .find(|&&(_, j)| name(j as usize) == name(later))
            {
                if found.is_none_or(|(_, r)| later < r) {
                    found = Some((first as usize, later));
                }
                break;
            }
        }
    }
    found
}

impl Inventory {
    /// Checks the rules of a management group, naming the first place that breaks one:
    /// a non-empty group name and server list, no duplicate servers or agents (names compare
    /// case-insensitively), at most one RMS, agents that only name known servers, and
    /// failover lists without duplicates or the agent's own primary.
    pub fn validate(&self) -> Result<()> {
        self.validate_as(IN_MEMORY)
    }

    fn validate_as(&self, input: &str) -> Result<()> {
        self.resolve(input).map(drop)
    }

    /// Validates, and resolves every name to a position: what the balancer works on.
    pub(crate) fn resolve(&self, input: &str) -> Result<Resolved> {
        let invalid = |at: String, problem| Error::invalid(input, Location::json(at), problem);
        if self.management_group.trim().is_empty() {
            return Err(invalid(
                "management_group".into(),
                Problem::EmptyManagementGroup,
            ));
        }
        if let Err(reason) = check_management_group_name(&self.management_group) {
            return Err(invalid(
                "management_group".into(),
                Problem::InvalidManagementGroup {
                    name: self.management_group.clone(),
                    reason,
                },
            ));
        }
        if self.servers.is_empty() {
            return Err(invalid("servers".into(), Problem::NoServers));
        }
        let mut servers: HashMap<&HostName, u32, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(self.servers.len(), Default::default());
        let mut rms: Option<&HostName> = None;
        for (i, server) in self.servers.iter().enumerate() {
            if let Some(first) = servers.insert(&server.name, i as u32) {
                return Err(invalid(
                    format!("servers[{i}].name"),
                    Problem::DuplicateServer {
                        name: server.name.clone(),
                        first: format!("servers[{first}]"),
                    },
                ));
            }
            if server.role == ServerRole::Rms {
                if let Some(first) = rms {
                    return Err(invalid(
                        format!("servers[{i}].role"),
                        Problem::MultipleRms {
                            name: server.name.clone(),
                            first: first.clone(),
                        },
                    ));
                }
                rms = Some(&server.name);
            }
        }
        // Agents repeat their servers' names, so one remembered look-up saves most of them.
        let mut last: Option<(&HostName, u32)> = None;
        let mut lookup = |name: &HostName| -> Option<u32> {
            if let Some((n, i)) = last
                && n == name
            {
                return Some(i);
            }
            let i = *servers.get(name)?;
            last = Some((&self.servers[i as usize].name, i));
            Some(i)
        };
        let mut resolved = Resolved {
            hashes: Vec::with_capacity(self.agents.len()),
            primary: Vec::with_capacity(self.agents.len()),
            failover_start: Vec::with_capacity(self.agents.len() + 1),
            failover: Vec::new(),
        };
        for (i, agent) in self.agents.iter().enumerate() {
            let hash = stable_hash(&agent.name);
            resolved.hashes.push(hash);
            let primary = match &agent.primary {
                None => NONE,
                Some(p) => lookup(p).ok_or_else(|| {
                    invalid(
                        format!("agents[{i}].primary"),
                        Problem::UnknownServer(p.clone()),
                    )
                })?,
            };
            resolved.primary.push(primary);
            let start = resolved.failover.len();
            resolved.failover_start.push(start as u32);
            for (j, failover) in agent.failover.iter().enumerate() {
                let at = || format!("agents[{i}].failover[{j}]");
                let f = lookup(failover)
                    .ok_or_else(|| invalid(at(), Problem::UnknownServer(failover.clone())))?;
                if f == primary {
                    return Err(invalid(at(), Problem::PrimaryInFailover(failover.clone())));
                }
                if resolved.failover[start..].contains(&f) {
                    return Err(invalid(at(), Problem::DuplicateFailover(failover.clone())));
                }
                resolved.failover.push(f);
            }
        }
        resolved.failover_start.push(resolved.failover.len() as u32);
        if let Some((first, i)) = first_duplicate(&resolved.hashes, |i| &self.agents[i].name) {
            return Err(invalid(
                format!("agents[{i}].name"),
                Problem::DuplicateAgent {
                    name: self.agents[i].name.clone(),
                    first: format!("agents[{first}]"),
                },
            ));
        }
        Ok(resolved)
    }

    /// The server with this name, if the inventory has it.
    pub fn server(&self, name: &HostName) -> Option<&Server> {
        self.servers.iter().find(|s| &s.name == name)
    }

    /// The root management server, if the inventory has one.
    pub fn rms(&self) -> Option<&Server> {
        self.servers.iter().find(|s| s.role == ServerRole::Rms)
    }

    /// Reads and validates an inventory from JSON text (a leading byte order mark is
    /// skipped). `input` names it in errors.
    pub fn from_json_str(text: &str, input: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut de = serde_json::Deserializer::from_str(text);
        let inventory: Inventory =
            serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(input, e))?;
        de.end().map_err(|e| syntax_error(input, ".".into(), e))?;
        inventory.validate_as(input)?;
        Ok(inventory)
    }

    /// Reads and validates an inventory from a JSON reader: UTF-8, or UTF-8 or UTF-16 with a
    /// byte order mark. `input` names it in errors.
    pub fn from_json_reader(mut reader: impl Read, input: &str) -> Result<Self> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(|source| Error::Io {
            path: input.into(),
            source,
        })?;
        Self::from_json_bytes(&bytes, input)
    }

    /// Reads and validates an inventory from the bytes of a JSON file: UTF-8, or UTF-8 or
    /// UTF-16 with a byte order mark (what PowerShell's `Out-File` and `>` write). `input`
    /// names it in errors.
    pub fn from_json_bytes(bytes: &[u8], input: &str) -> Result<Self> {
        let text = decode(bytes).map_err(|e| {
            Error::invalid(
                input,
                Location::Json {
                    path: ".".into(),
                    line_column: Some((e.line, e.column)),
                },
                Problem::Encoding(e.found),
            )
        })?;
        Self::from_json_str(&text, input)
    }

    /// Reads and validates an inventory file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json_bytes(&text, &path.display().to_string())
    }

    /// Builds an inventory from the servers of `servers` (an inventory without agents) and an
    /// agent export in CSV. Columns are picked by name and the others ignored: the agent from
    /// `Agent`, `PrincipalName`, `Name` or `DisplayName`, its primary from
    /// `PrimaryManagementServer` or `PrimaryManagementServerName`, failovers (optional) from
    /// `FailoverManagementServers`, in order, separated by `;` or `,` and whitespace. Reads what
    /// Windows PowerShell's `Export-Csv` writes: a `#TYPE ...` first line (skipped), quoted
    /// fields, CRLF, `,`, `;` (`-UseCulture`) or tab between fields. `input` names the CSV in
    /// errors; line numbers are the file's own.
    pub fn from_csv(servers: Inventory, csv_text: &str, input: &str) -> Result<Self> {
        if !servers.agents.is_empty() {
            return Err(Error::invalid(
                IN_MEMORY,
                Location::json("agents"),
                Problem::AgentsInServersFile,
            ));
        }
        let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
        let lines = Lines::new(text);
        let invalid = |line: u64, column, problem| {
            Error::invalid(input, Location::Csv { line, column }, problem)
        };
        // Export-Csv without -NoTypeInformation writes `#TYPE <type name>` first.
        let skip = match text.get(..5) {
            Some(t) if t.eq_ignore_ascii_case("#TYPE") => {
                text.find('\n').map_or(text.len(), |i| i + 1)
            }
            _ => 0,
        };
        // The CSV parser starts a record after a lone CR, so its position can be the LF of
        // the CRLF before: count from the record's first character.
        let line_of = |pos: Option<&csv::Position>| {
            pos.map_or(0, |p| {
                let start = skip + p.byte() as usize;
                let first = text.as_bytes()[start.min(text.len())..]
                    .iter()
                    .position(|&b| b != b'\r' && b != b'\n')
                    .map_or(text.len(), |i| start + i);
                lines.line(first)
            })
        };
        let first_line = text[skip..].lines().next().unwrap_or("");
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter(first_line))
            .from_reader(&text.as_bytes()[skip..]);
        let mut records = reader.records();
        let csv_error = |e: csv::Error| {
            let line = line_of(e.position());
            invalid(line, None, Problem::Syntax(e.to_string()))
        };
        let header_line = lines.line(skip);
        let header = match records.next() {
            Some(r) => r.map_err(csv_error)?,
            None => {
                return Err(invalid(
                    header_line,
                    None,
                    Problem::CsvHeader {
                        found: String::new(),
                        hint: HeaderHint::NoHeader,
                    },
                ));
            }
        };
        let Some(((agent_col, agent_name), (primary_col, primary_name), failover)) =
            columns(&header)
        else {
            let found = header.iter().collect::<Vec<_>>().join(",");
            // The line under the header (the first line with text).
            let next_line = text[skip..]
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .nth(1)
                .unwrap_or("");
            let hint = header_hint(&header, next_line);
            return Err(invalid(
                header_line,
                None,
                Problem::CsvHeader { found, hint },
            ));
        };
        let needed = 1 + agent_col
            .max(primary_col)
            .max(failover.map_or(0, |(i, _)| i));
        let host = |value: &str, line: u64, column| {
            HostName::new(value.trim()).map_err(|reason| {
                invalid(
                    line,
                    Some(column),
                    Problem::InvalidHostName {
                        name: value.to_owned(),
                        reason,
                    },
                )
            })
        };
        let mut agents = Vec::new();
        let mut lines = Vec::new();
        for record in records {
            let record = record.map_err(csv_error)?;
            let line = line_of(record.position());
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            if record.len() < needed {
                return Err(invalid(
                    line,
                    None,
                    Problem::CsvFieldCount {
                        needed,
                        found: record.len(),
                    },
                ));
            }
            let name = host(&record[agent_col], line, agent_name)?;
            let primary = match record[primary_col].trim() {
                "" => None,
                p => Some(host(p, line, primary_name)?),
            };
            let failover = match failover {
                None => Vec::new(),
                Some((col, failover_name)) => record[col]
                    .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
                    .filter(|f| !f.is_empty())
                    .map(|f| host(f, line, failover_name))
                    .collect::<Result<Vec<_>>>()?,
            };
            agents.push(Agent {
                name,
                primary,
                failover,
            });
            lines.push(line);
        }
        let inventory = Inventory { agents, ..servers };
        // Report rule violations at the CSV line of the agent, not a JSON path.
        inventory.validate_as(input).map_err(|mut e| {
            if let Error::Invalid(invalid) = &mut e
                && let Location::Json { path, .. } = &invalid.at
                && let Some(&line) = agent_index(path).and_then(|i| lines.get(i))
            {
                invalid.at = Location::Csv { line, column: None };
                // The row it repeats, by its line too.
                if let Problem::DuplicateAgent { first, .. } = &mut invalid.problem
                    && let Some(&first_line) = agent_index(first).and_then(|i| lines.get(i))
                {
                    *first = format!("line {first_line}");
                }
            }
            e
        })?;
        Ok(inventory)
    }

    /// Writes the inventory as pretty-printed JSON with a final newline.
    pub fn to_json_writer(&self, mut writer: impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut writer, self)?;
        writer.write_all(b"\n")
    }

    /// The inventory as pretty-printed JSON with a final newline.
    pub fn to_json_string(&self) -> io::Result<String> {
        let mut out = Vec::new();
        self.to_json_writer(&mut out)?;
        String::from_utf8(out).map_err(io::Error::other)
    }

    /// Validates the inventory and writes it to `path` atomically: a temporary file in the
    /// same folder, flushed to disk, then renamed over the old file, so a crash leaves either
    /// the old or the new file, never a mix.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate_as(&path.display().to_string())?;
        let io_err = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        opsmgr_fsutil::write_atomic_with(path, None, |w| self.to_json_writer(w)).map_err(io_err)
    }
}

fn agent_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("agents[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// What PowerShell wrote to give this header, and how to get the right one.
fn header_hint(header: &csv::StringRecord, next_line: &str) -> HeaderHint {
    let has = |names: &[&str]| {
        header
            .iter()
            .any(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
    };
    let underline = next_line.trim();
    if !underline.is_empty() && underline.chars().all(|c| c == '-' || c == ' ') {
        HeaderHint::FormatTable
    } else if has(&["SyncRoot"]) && has(&["Keys"]) && has(&["Values"]) {
        HeaderHint::Hashtable
    } else if header.get(0).is_some_and(|h| h.starts_with('#')) {
        HeaderHint::CommentLines
    } else if has(&AGENT_COLUMNS) {
        HeaderHint::NoPrimaryColumn
    } else if has(&PRIMARY_COLUMNS) {
        HeaderHint::NoAgentColumn
    } else {
        HeaderHint::Unknown
    }
}

impl Inventory {
    /// [`Inventory::from_csv`] over the file's bytes, decoded as PowerShell writes them:
    /// UTF-8 with or without a byte order mark (`Out-File -Encoding UTF8`,
    /// `Export-Csv -Encoding UTF8`) or UTF-16 LE or BE with one (`>` in Windows PowerShell,
    /// `-Encoding Unicode` or `BigEndianUnicode`).
    pub fn from_csv_bytes(servers: Inventory, bytes: &[u8], input: &str) -> Result<Self> {
        let text = decode(bytes).map_err(|e| {
            Error::invalid(
                input,
                Location::Csv {
                    line: e.line as u64,
                    column: None,
                },
                Problem::Encoding(e.found),
            )
        })?;
        Self::from_csv(servers, &text, input)
    }
}

fn json_error(input: &str, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    // The path is `?` where the error is not inside any value (end of input, say).
    let path = match e.path().to_string() {
        p if p == "?" => ".".to_owned(),
        p => p,
    };
    syntax_error(input, path, e.into_inner())
}

fn syntax_error(input: &str, path: String, inner: serde_json::Error) -> Error {
    let line_column = (inner.line() > 0).then(|| (inner.line(), inner.column()));
    // serde_json appends " at line L column C" to its messages; the location says that.
    let message = inner.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    Error::invalid(
        input,
        Location::Json { path, line_column },
        Problem::Syntax(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
      "management_group": "PROD",
      "servers": [
        {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
        {"name": "MGT01.prod.local", "role": "management"},
        {"name": "MGT02.prod.local", "role": "management", "capacity": 2000}
      ],
      "agents": [
        {"name": "server01.company.local", "primary": "MGT01.prod.local", "failover": ["MGT02.prod.local"]},
        {"name": "server02.company.local"}
      ]
    }"#;

    fn refuse(text: &str) -> String {
        Inventory::from_json_str(text, "inv.json")
            .expect_err("must be refused")
            .to_string()
    }

    fn with_agents(agents: &str) -> String {
        SEED.replace(
            r#"{"name": "server02.company.local"}"#,
            &format!(r#"{{"name": "server02.company.local"}}, {agents}"#),
        )
    }

    #[test]
    fn reads_the_issue_example_and_round_trips() {
        let inv = Inventory::from_json_str(SEED, "inv.json").unwrap();
        assert_eq!(inv.management_group, "PROD");
        assert_eq!(inv.servers[0].capacity(), 0, "unreachable RMS");
        assert_eq!(inv.servers[1].capacity(), 3000);
        assert_eq!(inv.servers[2].capacity(), 2000);
        assert_eq!(inv.agents[1].primary, None);
        assert_eq!(inv.rms().map(|s| s.name.as_str()), Some("RMS.prod.local"));
        let again = Inventory::from_json_str(&inv.to_json_string().unwrap(), "again").unwrap();
        assert_eq!(again, inv);
        // Defaults are not written out.
        assert!(
            !inv.to_json_string()
                .unwrap()
                .contains("agent_reachable\": true")
        );
    }

    #[test]
    fn refusals_name_the_place_and_reason() {
        assert_eq!(
            refuse(&with_agents(
                r#"{"name": "x.local", "primary": "MGT09.prod.local"}"#
            )),
            "inv.json: agents[2].primary: unknown server 'MGT09.prod.local' (not in the server list)"
        );
        assert_eq!(
            refuse(&with_agents(r#"{"name": "SERVER01.company.local"}"#)),
            "inv.json: agents[2].name: agent 'SERVER01.company.local' is listed twice (first at agents[0])"
        );
        assert_eq!(
            refuse(&with_agents(
                r#"{"name": "x.local", "primary": "MGT01.prod.local", "failover": ["mgt01.prod.local"]}"#
            )),
            "inv.json: agents[2].failover[0]: the primary server 'mgt01.prod.local' is also in the failover list"
        );
        assert_eq!(
            refuse(&with_agents(
                r#"{"name": "x.local", "failover": ["MGT02.prod.local", "MGT02.PROD.local"]}"#
            )),
            "inv.json: agents[2].failover[1]: failover server 'MGT02.PROD.local' is listed twice"
        );
        assert_eq!(
            refuse(&with_agents(
                r#"{"name": "x.local", "primry": "MGT01.prod.local"}"#
            )),
            "inv.json: line 10, column 72 (agents[2].primry): unknown field `primry`, expected one of `name`, `primary`, `failover`"
        );
        let e = refuse(&with_agents(r#"{"name": "bad_name.local"}"#));
        assert!(
            e.contains("(agents[2].name): invalid host name \"bad_name.local\": character '_' at position 3"),
            "{e}"
        );
        let two_rms = SEED.replace(
            r#""MGT02.prod.local", "role": "management""#,
            r#""MGT02.prod.local", "role": "rms""#,
        );
        assert_eq!(
            refuse(&two_rms),
            "inv.json: servers[2].role: a second root management server 'MGT02.prod.local' (the first is 'RMS.prod.local'); a management group has one"
        );
        let dup_server = SEED.replace("MGT02.prod.local\", \"role", "mgt01.PROD.local\", \"role");
        assert!(refuse(&dup_server).starts_with("inv.json: servers[2].name: server 'mgt01.PROD.local' is listed twice (first at servers[1])"));
        assert_eq!(
            refuse(r#"{"management_group": "PROD", "servers": []}"#),
            "inv.json: servers: the server list is empty"
        );
        assert_eq!(
            refuse(r#"{"management_group": " ", "servers": []}"#),
            "inv.json: management_group: the management group name is empty"
        );
        assert_eq!(
            refuse("{\"management_group\": \"PROD\","),
            "inv.json: line 1, column 28 (.): EOF while parsing a value"
        );
        let e = refuse(&format!("{SEED} trailing"));
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn non_utf8_is_refused_with_position() {
        let mut bytes = b"{\n  \"management_group\": \"P".to_vec();
        bytes.push(0xff);
        let e = Inventory::from_json_reader(&bytes[..], "x.json").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "x.json: line 2, column 25 (.): byte 0xFF at byte offset 26 is not UTF-8"
            ),
            "{e}"
        );
        // What Out-File -Encoding UTF8 and `>` write is read.
        let mut bom = b"\xef\xbb\xbf".to_vec();
        bom.extend(SEED.as_bytes());
        assert!(Inventory::from_json_bytes(&bom, "x.json").is_ok());
        let mut utf16 = vec![0xff, 0xfe];
        utf16.extend(SEED.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            Inventory::from_json_bytes(&utf16, "x.json").unwrap(),
            Inventory::from_json_str(SEED, "x.json").unwrap()
        );
    }

    fn servers() -> Inventory {
        let mut inv = Inventory::from_json_str(SEED, "inv.json").unwrap();
        inv.agents.clear();
        inv
    }

    #[test]
    fn csv_export_is_read_with_servers_from_json() {
        let csv = "\u{feff}Agent,PrimaryManagementServer,FailoverManagementServers\r\n\
                   server01.company.local,MGT01.prod.local,MGT02.prod.local\r\n\
                   \r\n\
                   server02.company.local,,\r\n\
                   server03.company.local,MGT02.prod.local,\"MGT01.prod.local; \"\r\n";
        let inv = Inventory::from_csv(servers(), csv, "agents.csv").unwrap();
        assert_eq!(inv.agents.len(), 3);
        assert_eq!(inv.agents[1].primary, None);
        assert_eq!(
            inv.agents[2].failover,
            vec![HostName::new("MGT01.prod.local").unwrap()]
        );
    }

    #[test]
    fn csv_refusals_name_the_line() {
        let head = "Agent,PrimaryManagementServer,FailoverManagementServers\n";
        let e = |body: &str| {
            Inventory::from_csv(servers(), &format!("{head}{body}"), "a.csv")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("s1.local,MGT01.prod.local,\ns2.local,MGT07.prod.local,\n"),
            "a.csv: line 3: unknown server 'MGT07.prod.local' (not in the server list)"
        );
        assert_eq!(
            e("s1.local,MGT01.prod.local\n"),
            "a.csv: line 2: expected at least 3 fields, found 2"
        );
        assert!(e("s 1,,\n").starts_with("a.csv: line 2, column Agent: invalid host name \"s 1\""));
        let bad_header =
            Inventory::from_csv(servers(), "Name,Primary,Failover\n", "a.csv").unwrap_err();
        assert_eq!(
            bad_header.to_string(),
            "a.csv: line 1: expected a header with the columns Agent (or Name, PrincipalName) and PrimaryManagementServer (or PrimaryManagementServerName), and optionally FailoverManagementServers, found 'Name,Primary,Failover'; the export has no primary server column: add PrimaryManagementServerName to Select-Object, or write the file with the agent export script"
        );
        let inv = Inventory::from_json_str(SEED, "inv.json").unwrap();
        assert!(matches!(
            Inventory::from_csv(inv, head, "a.csv"),
            Err(Error::Invalid(e)) if e.problem == Problem::AgentsInServersFile
        ));
    }

    /// What Windows PowerShell's Export-Csv writes: `#TYPE`, every field quoted, CRLF.
    const EXPORT_CSV: &str = "#TYPE System.Management.Automation.PSCustomObject\r\n\
        \"Agent\",\"PrimaryManagementServer\",\"FailoverManagementServers\"\r\n\
        \"s1.local\",\"MGT01.prod.local\",\"MGT02.prod.local\"\r\n\
        \"s2.local\",\"MGT02.prod.local\",\"RMS.prod.local, MGT01.prod.local\"\r\n\
        \"s3.local\",\"\",\"MGT01.prod.local ; MGT02.prod.local\"\r\n";

    #[test]
    fn csv_as_powershell_writes_it_in_every_encoding() {
        let utf8 = EXPORT_CSV.as_bytes().to_vec();
        let mut utf8_bom = b"\xef\xbb\xbf".to_vec();
        utf8_bom.extend(&utf8);
        let mut le = vec![0xff, 0xfe];
        le.extend(EXPORT_CSV.encode_utf16().flat_map(u16::to_le_bytes));
        let mut be = vec![0xfe, 0xff];
        be.extend(EXPORT_CSV.encode_utf16().flat_map(u16::to_be_bytes));
        for bytes in [utf8, utf8_bom, le, be] {
            let inv = Inventory::from_csv_bytes(servers(), &bytes, "agents.csv").unwrap();
            let names = |a: &Agent| {
                a.failover
                    .iter()
                    .map(|f| f.as_str().to_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(inv.agents.len(), 3);
            assert_eq!(
                names(&inv.agents[1]),
                ["RMS.prod.local", "MGT01.prod.local"]
            );
            assert_eq!(inv.agents[2].primary, None);
            assert_eq!(
                names(&inv.agents[2]),
                ["MGT01.prod.local", "MGT02.prod.local"]
            );
        }
    }

    #[test]
    fn csv_line_numbers_are_the_files_own() {
        // Line 6 of the file (after #TYPE, the header, three agents), CRLF throughout.
        let csv = format!("{EXPORT_CSV}\"s4.local\",\"MGT09.prod.local\",\"\"\r\n");
        assert_eq!(
            Inventory::from_csv(servers(), &csv, "a.csv")
                .unwrap_err()
                .to_string(),
            "a.csv: line 6: unknown server 'MGT09.prod.local' (not in the server list)"
        );
        // A repeated row names both lines, not JSON paths the user never wrote.
        let csv = format!("{EXPORT_CSV}\"S2.local\",\"MGT01.prod.local\",\"\"\r\n");
        assert_eq!(
            Inventory::from_csv(servers(), &csv, "a.csv")
                .unwrap_err()
                .to_string(),
            "a.csv: line 6: agent 'S2.local' is listed twice (first at line 4)"
        );
        let csv = format!("{EXPORT_CSV}\r\n\"s 5\",\"\",\"\"\r\n");
        assert!(
            Inventory::from_csv(servers(), &csv, "a.csv")
                .unwrap_err()
                .to_string()
                .starts_with("a.csv: line 7, column Agent: invalid host name \"s 5\""),
        );
        let csv = format!("{EXPORT_CSV}\"s4.local\",\"\"\r\n");
        assert_eq!(
            Inventory::from_csv(servers(), &csv, "a.csv")
                .unwrap_err()
                .to_string(),
            "a.csv: line 6: expected at least 3 fields, found 2"
        );
        // The header's own line, after #TYPE.
        let e = Inventory::from_csv(servers(), "#TYPE X\r\nName,Primary\r\n", "a.csv");
        assert!(
            e.unwrap_err()
                .to_string()
                .starts_with("a.csv: line 2: expected a header")
        );
    }

    #[test]
    fn csv_in_other_encodings_or_shapes_says_what_powershell_wrote() {
        let e = |bytes: &[u8]| {
            Inventory::from_csv_bytes(servers(), bytes, "a.csv")
                .unwrap_err()
                .to_string()
        };
        let no_bom: Vec<u8> = EXPORT_CSV
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            e(&no_bom),
            "a.csv: line 1: a NUL byte at byte offset 1: UTF-16 text without a byte order mark (as .NET's Encoding.Unicode.GetBytes or Set-Content -Encoding Unicode without a BOM writes)?; PowerShell writes a file read here with `Out-File -Encoding UTF8` or `Export-Csv -NoTypeInformation -Encoding UTF8` (UTF-16 with a byte order mark, what `>` writes in Windows PowerShell, is read too)"
        );
        let ansi = EXPORT_CSV
            .replace("s3.local", "s\u{e9}.local")
            .replace('\u{e9}', "\u{1}");
        let mut ansi = ansi.into_bytes();
        let at = ansi.iter().position(|&b| b == 1).unwrap();
        ansi[at] = 0xe9;
        assert!(
            e(&ansi).starts_with("a.csv: line 5: byte 0xE9 at byte offset"),
            "{}",
            e(&ansi)
        );
        assert!(
            e(b"\"PrincipalName\",\"HealthState\",\"Version\"\r\n")
                .ends_with("; the export has no primary server column: add PrimaryManagementServerName to Select-Object, or write the file with the agent export script")
        );
        assert!(
            e(b"\"PrimaryManagementServerName\",\"HealthState\"\r\n")
                .ends_with("; the export has no agent name column: add Name to Select-Object, or write the file with the agent export script")
        );
        assert!(
            e(b"#TYPE A\r\n#TYPE B\r\nAgent\r\n").ends_with(
                "found '#TYPE B'; Export-Csv writes at most one '#TYPE ...' line before the header: remove the other comment lines, or export with -NoTypeInformation"
            )
        );
        assert!(e(b"").starts_with("a.csv: line 1: expected a header"));
    }

    /// `Get-Agent | Export-Csv agents.csv` in the OpsMgr 2007 R2 Command Shell: every
    /// property of `AgentManagedComputer` (its SDK names, in the order the shell lists them),
    /// values with commas quoted, `#TYPE` with the full type name, CRLF.
    const GET_AGENT_EXPORT: &str = "#TYPE Microsoft.EnterpriseManagement.Administration.AgentManagedComputer\r\n\
        \"PrimaryManagementServerName\",\"ComputerName\",\"Domain\",\"IPAddress\",\"PrincipalName\",\"Version\",\"HealthState\",\"InstallTime\",\"ManuallyInstalled\",\"ProxyingEnabled\",\"DisplayName\",\"Name\",\"Id\",\"ManagementGroup\"\r\n\
        \"MGT01.prod.local\",\"server01\",\"COMPANY\",\"10.1.2.3, fe80::1\",\"server01.company.local\",\"6.1.7221.0\",\"Success\",\"11/25/2009 10:12:01 AM\",\"True\",\"False\",\"server01.company.local\",\"server01.company.local\",\"5f2c1c4e-6c1b-4e8f-9d0a-0c7d3b1e2a11\",\"PROD\"\r\n\
        \"MGT02.prod.local\",\"server02\",\"COMPANY\",\"10.1.2.4\",\"server02.company.local\",\"6.1.7221.0\",\"Warning\",\"11/26/2009 9:02:44 AM\",\"False\",\"True\",\"server02.company.local\",\"server02.company.local\",\"0b8f4a7d-2e5c-4f71-8a3b-6d9e1c0f4b22\",\"PROD\"\r\n";

    fn agents_of(inv: &Inventory) -> Vec<(String, Option<String>, Vec<String>)> {
        inv.agents
            .iter()
            .map(|a| {
                (
                    a.name.as_str().to_owned(),
                    a.primary.as_ref().map(|p| p.as_str().to_owned()),
                    a.failover.iter().map(|f| f.as_str().to_owned()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn csv_exports_with_other_columns_are_read_by_column_name() {
        let want = vec![
            (
                "server01.company.local".to_owned(),
                Some("MGT01.prod.local".to_owned()),
                vec![],
            ),
            (
                "server02.company.local".to_owned(),
                Some("MGT02.prod.local".to_owned()),
                vec![],
            ),
        ];
        let read = |bytes: &[u8]| {
            agents_of(&Inventory::from_csv_bytes(servers(), bytes, "agents.csv").unwrap())
        };
        // Every property, as Windows PowerShell 5.1 writes it (ASCII) and as 2.0's
        // `Get-Agent | ConvertTo-Csv | Out-File` writes it (UTF-16 LE with a BOM).
        assert_eq!(read(GET_AGENT_EXPORT.as_bytes()), want);
        let mut le = vec![0xff, 0xfe];
        le.extend(GET_AGENT_EXPORT.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(read(&le), want);
        // `Export-Csv -UseCulture` in a locale whose list separator is ';' (de-DE, fr-FR).
        let culture = GET_AGENT_EXPORT.replace("\",\"", "\";\"");
        assert_eq!(read(culture.as_bytes()), want);
        // `ConvertTo-Csv -Delimiter "`t"`.
        let tabs = GET_AGENT_EXPORT.replace("\",\"", "\"\t\"");
        assert_eq!(read(tabs.as_bytes()), want);
        // `Select-Object Name,PrimaryManagementServerName | Export-Csv`: the type name is
        // prefixed `Selected.`, the columns are the ones selected, in the order given.
        let subset = "#TYPE Selected.Microsoft.EnterpriseManagement.Administration.AgentManagedComputer\r\n\
            \"PrimaryManagementServerName\",\"Name\"\r\n\
            \"MGT01.prod.local\",\"server01.company.local\"\r\n\
            \"MGT02.prod.local\",\"server02.company.local\"\r\n";
        assert_eq!(read(subset.as_bytes()), want);
        // The export script's own columns win over the properties' where a file has both.
        let both = "\"Name\",\"Agent\",\"PrimaryManagementServer\",\"FailoverManagementServers\"\r\n\
            \"ignored\",\"server01.company.local\",\"MGT01.prod.local\",\"MGT02.prod.local\"\r\n";
        assert_eq!(
            read(both.as_bytes()),
            vec![(
                "server01.company.local".to_owned(),
                Some("MGT01.prod.local".to_owned()),
                vec!["MGT02.prod.local".to_owned()],
            )]
        );
        // A row errs at its own line and under the column name the file gives it.
        let bad =
            GET_AGENT_EXPORT.replace("\"server02.company.local\",\"6.1", "\"server 02\",\"6.1");
        assert!(
            Inventory::from_csv(servers(), &bad, "agents.csv")
                .unwrap_err()
                .to_string()
                .starts_with(
                    "agents.csv: line 4, column PrincipalName: invalid host name \"server 02\""
                )
        );
        // A row cut short before a needed column names how many fields it needed.
        let short = format!("{GET_AGENT_EXPORT}\"MGT01.prod.local\",\"server03\"\r\n");
        assert_eq!(
            Inventory::from_csv(servers(), &short, "agents.csv")
                .unwrap_err()
                .to_string(),
            "agents.csv: line 5: expected at least 5 fields, found 2"
        );
    }

    #[test]
    fn management_group_names_follow_operations_managers_rule() {
        let with_group = |name: &str| {
            let mut inv = servers();
            inv.management_group = name.into();
            inv.validate().map_err(|e| e.to_string())
        };
        for good in [
            "PROD",
            "Prod Group-2_x",
            "Zürich Büro",
            "a\u{2019}b \u{201c}c\u{201d}",
        ] {
            assert_eq!(with_group(good), Ok(()), "{good}");
        }
        assert_eq!(
            with_group("PROD\nRemove-Item -Recurse -Force C:\\Important #").unwrap_err(),
            "<input>: management_group: management group name \"PROD\\nRemove-Item -Recurse -Force C:\\\\Important #\" is refused: character '\\n' at position 4 (Operations Manager allows at most 64 characters, no control characters, no leading or trailing space, and none of ( ) ^ ~ : ; . ! ? \" , ' ` @ # $ % & * + = [ ] { } | \\ / < >)"
        );
        let reason = |name: &str| {
            let e = with_group(name).unwrap_err();
            let start = e.find("is refused: ").unwrap() + "is refused: ".len();
            e[start..e.find(" (Operations Manager").unwrap()].to_owned()
        };
        assert_eq!(reason(" PROD"), "it starts or ends with a space");
        assert_eq!(reason("PROD "), "it starts or ends with a space");
        assert_eq!(reason(&"x".repeat(65)), "it is 65 characters long");
        assert_eq!(with_group(&"x".repeat(64)), Ok(()));
        assert_eq!(reason("a$b"), "character '$' at position 1");
        assert_eq!(reason("a`b"), "character '`' at position 1");
        assert_eq!(reason("a'b"), "character '\\'' at position 1");
        assert_eq!(reason("a\u{2028}b"), "character '\\u{2028}' at position 1");
        assert_eq!(reason("a\u{202e}b"), "character '\\u{202e}' at position 1");
        assert_eq!(reason("PROD.local"), "character '.' at position 4");
        // Read from a file, the error names the file and field.
        let e = Inventory::from_json_str(&SEED.replace("\"PROD\"", "\"PR\\rOD\""), "inv.json");
        assert!(e.unwrap_err().to_string().starts_with("inv.json: management_group: management group name \"PR\\rOD\" is refused: character '\\r' at position 2"));
    }

    #[test]
    fn save_is_atomic_and_refuses_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inv.json");
        let inv = Inventory::from_json_str(SEED, "inv.json").unwrap();
        inv.save(&path).unwrap();
        assert_eq!(Inventory::load(&path).unwrap(), inv);
        let mut bad = inv.clone();
        bad.agents[0].primary = Some(HostName::new("nowhere.local").unwrap());
        assert!(bad.save(&path).is_err());
        assert_eq!(Inventory::load(&path).unwrap(), inv, "the good file stays");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }
}

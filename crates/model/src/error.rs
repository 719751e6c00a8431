//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::HostName;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading, checking or balancing a management group.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An input was refused; nothing was written.
    #[error(transparent)]
    Invalid(Box<InvalidInput>),
    /// The balancing policy names a server the inventory does not have.
    #[error("policy names server '{0}', which is not in the inventory")]
    UnknownPolicyServer(HostName),
    /// The policy asks to use the RMS for agents, but agents cannot reach it.
    #[error("the root management server '{0}' is not reachable by agents; it cannot be included")]
    RmsUnreachable(HostName),
    /// Agents need a server of a pool that has no eligible server.
    #[error(
        "{agents} agent(s) need a {pool} server, but no {pool} server is eligible (reachable, capacity above 0, not excluded)"
    )]
    NoEligibleServer {
        /// The pool (management servers or gateways).
        pool: crate::pool::Pool,
        /// How many agents are left without a server.
        agents: usize,
    },
}

/// What is wrong with an input, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input}: {at}: {problem}")]
pub struct InvalidInput {
    /// The input's name: a file name, or `<input>` for in-memory data.
    pub input: String,
    /// Where in the input.
    pub at: Location,
    /// What is wrong there.
    pub problem: Problem,
}

impl Error {
    pub(crate) fn invalid(input: impl Into<String>, at: Location, problem: Problem) -> Self {
        Error::Invalid(Box::new(InvalidInput {
            input: input.into(),
            at,
            problem,
        }))
    }
}

/// A place in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A place in a JSON document: its path (`agents[3].failover[0]`) and, where the parser
    /// knows it, the line and column.
    Json {
        /// The JSON path, `.` for the document itself.
        path: String,
        /// One-based line and column, where known.
        line_column: Option<(usize, usize)>,
    },
    /// A line of a CSV file, one-based, with the column's header where one is at fault.
    Csv {
        /// One-based line number.
        line: u64,
        /// The column at fault.
        column: Option<&'static str>,
    },
}

impl Location {
    pub(crate) fn json(path: impl Into<String>) -> Self {
        Location::Json {
            path: path.into(),
            line_column: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Json {
                path,
                line_column: Some((line, column)),
            } => write!(f, "line {line}, column {column} ({path})"),
            Location::Json {
                path,
                line_column: None,
            } => f.write_str(path),
            Location::Csv { line, column: None } => write!(f, "line {line}"),
            Location::Csv {
                line,
                column: Some(column),
            } => write!(f, "line {line}, column {column}"),
        }
    }
}

/// What is wrong with an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The file is not well-formed, a value has the wrong type, or a field is unknown.
    #[error("{0}")]
    Syntax(String),
    /// A host name is not a valid DNS name.
    #[error("invalid host name {name:?}: {reason}")]
    InvalidHostName {
        /// The name as written.
        name: String,
        /// Why it is refused.
        reason: crate::HostNameError,
    },
    /// The management group's name is empty.
    #[error("the management group name is empty")]
    EmptyManagementGroup,
    /// The management group's name breaks Operations Manager's naming rule.
    #[error(
        "management group name {name:?} is refused: {reason} (Operations Manager allows at most {MANAGEMENT_GROUP_NAME_MAX} characters, no control characters, no leading or trailing space, and none of {MANAGEMENT_GROUP_FORBIDDEN})"
    )]
    InvalidManagementGroup {
        /// The name as written.
        name: String,
        /// What is wrong with it.
        reason: GroupNameFault,
    },
    /// The file is not in an encoding we read.
    #[error(
        "{0}; PowerShell writes a file read here with `Out-File -Encoding UTF8` or `Export-Csv -NoTypeInformation -Encoding UTF8` (UTF-16 with a byte order mark, what `>` writes in Windows PowerShell, is read too)"
    )]
    Encoding(String),
    /// There are no servers.
    #[error("the server list is empty")]
    NoServers,
    /// A server is listed twice (names compare case-insensitively).
    #[error("server '{name}' is listed twice (first at {first})")]
    DuplicateServer {
        /// The name.
        name: HostName,
        /// Where it was first listed.
        first: String,
    },
    /// More than one server has the RMS role.
    #[error(
        "a second root management server '{name}' (the first is '{first}'); a management group has one"
    )]
    MultipleRms {
        /// The second one.
        name: HostName,
        /// The first one.
        first: HostName,
    },
    /// An agent is listed twice.
    #[error("agent '{name}' is listed twice (first at {first})")]
    DuplicateAgent {
        /// The name.
        name: HostName,
        /// Where it was first listed.
        first: String,
    },
    /// An agent names a server that is not in the server list.
    #[error("unknown server '{0}' (not in the server list)")]
    UnknownServer(HostName),
    /// An agent's primary server is also in its failover list.
    #[error("the primary server '{0}' is also in the failover list")]
    PrimaryInFailover(HostName),
    /// A failover list names a server twice.
    #[error("failover server '{0}' is listed twice")]
    DuplicateFailover(HostName),
    /// A servers file handed to the CSV reader also lists agents.
    #[error("a servers file must not list agents; the agents come from the CSV export")]
    AgentsInServersFile,
    /// A CSV header without the columns an agent export needs.
    #[error(
        "expected a header with the columns Agent (or Name, PrincipalName) and PrimaryManagementServer (or PrimaryManagementServerName), and optionally FailoverManagementServers, found '{found}'{hint}"
    )]
    CsvHeader {
        /// The header found.
        found: String,
        /// What PowerShell wrote to make it so, and how to fix it.
        hint: HeaderHint,
    },
    /// A CSV row with fewer fields than the header's columns it needs.
    #[error("expected at least {needed} fields, found {found}")]
    CsvFieldCount {
        /// The fields the row needs.
        needed: usize,
        /// The fields it has.
        found: usize,
    },
}

/// The longest management group name we accept, in characters. Operations Manager's setup
/// refuses longer names; the 2012 agent configuration API documents 50, so keep names short.
pub const MANAGEMENT_GROUP_NAME_MAX: usize = 64;

/// The punctuation Operations Manager refuses in a management group name (its setup lists
/// these), as the error message shows them.
pub const MANAGEMENT_GROUP_FORBIDDEN: &str =
    "( ) ^ ~ : ; . ! ? \" , ' ` @ # $ % & * + = [ ] { } | \\ / < >";

/// What is wrong with a management group name ([`crate::inventory::check_management_group_name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupNameFault {
    /// Longer than [`MANAGEMENT_GROUP_NAME_MAX`] characters.
    #[error("it is {0} characters long")]
    TooLong(usize),
    /// A space at either end.
    #[error("it starts or ends with a space")]
    EdgeSpace,
    /// A forbidden, control, whitespace or invisible character.
    #[error("character {character:?} at position {position}")]
    Character {
        /// The character.
        character: char,
        /// Its position, in characters from 0.
        position: usize,
    },
}

/// What PowerShell wrote to give a CSV header the reader refuses, and how to get the right one
/// ([`Problem::CsvHeader`]). The words name PowerShell's commands; a tool adds its own (the
/// command that prints the agent export script), as the library names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderHint {
    /// The file has no header line at all.
    NoHeader,
    /// A table as Format-Table or Out-File prints it, not CSV.
    FormatTable,
    /// A hashtable's own properties (Keys, Values, Count...).
    Hashtable,
    /// More comment lines than Export-Csv's one `#TYPE` line.
    CommentLines,
    /// An agent column, but no primary server column.
    NoPrimaryColumn,
    /// A primary server column, but no agent column.
    NoAgentColumn,
    /// Nothing recognisable.
    Unknown,
}

impl HeaderHint {
    /// Whether the fix it says is the agent export script.
    pub fn names_export_script(self) -> bool {
        !matches!(
            self,
            HeaderHint::NoHeader | HeaderHint::FormatTable | HeaderHint::CommentLines
        )
    }
}

impl fmt::Display for HeaderHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderHint::NoHeader => "; the file has no header line",
            HeaderHint::FormatTable => {
                "; this is a table as Format-Table or Out-File prints it, not CSV: pipe the objects to Export-Csv instead"
            }
            HeaderHint::Hashtable => {
                "; Export-Csv wrote a hashtable's own properties (Keys, Values, Count...): export objects ([PSCustomObject]$hashtable, or the agent export script)"
            }
            HeaderHint::CommentLines => {
                "; Export-Csv writes at most one '#TYPE ...' line before the header: remove the other comment lines, or export with -NoTypeInformation"
            }
            HeaderHint::NoPrimaryColumn => {
                "; the export has no primary server column: add PrimaryManagementServerName to Select-Object, or write the file with the agent export script"
            }
            HeaderHint::NoAgentColumn => {
                "; the export has no agent name column: add Name to Select-Object, or write the file with the agent export script"
            }
            HeaderHint::Unknown => "; write the file with the agent export script",
        })
    }
}

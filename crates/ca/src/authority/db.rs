//! The CA's request database: SQLite (WAL, full sync) in one file beside the CA's key.
//!
//! One row per request ever received. Ids come from `AUTOINCREMENT`, so an id is never reused
//! even after a crash or a deleted row; serial numbers and request digests are `UNIQUE`, so a
//! serial can never be issued twice and a re-submitted request finds its first id.
//!
//! Version 2 keeps what a certificate's life after its issue needs: the digest of the PKCS #10
//! request inside a renewal's wrapper (`inner_sha256`: the same request wrapped again is the
//! same request) and of its public key (`key_sha256`), the lineage (`renews`, `superseded_by`:
//! one current certificate per host), the keys revoked for keyCompromise (never certified
//! again), and the names asked for and certified (what an operator approves). A version 1
//! database is upgraded in place when opened; the rows it held are completed by
//! [`Authority::open`](super::Authority::open) from their stored DER.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use super::reason::RevocationReason;
use crate::error::{Error, Result};
use crate::time;

/// The schema's version, kept in SQLite's `user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    received          INTEGER NOT NULL,
    requester         TEXT    NOT NULL,
    request_der       BLOB    NOT NULL,
    request_sha256    BLOB    NOT NULL UNIQUE,
    subject           TEXT    NOT NULL,
    common_name       TEXT,
    disposition       TEXT    NOT NULL
        CHECK (disposition IN ('pending', 'issued', 'denied', 'revoked')),
    message           TEXT    NOT NULL,
    serial            BLOB    UNIQUE,
    certificate       BLOB,
    not_after         INTEGER,
    revoked_at        INTEGER,
    revocation_reason INTEGER,
    inner_sha256      BLOB,
    key_sha256        BLOB,
    key_desc          TEXT,
    requested_names   TEXT,
    certified_names   TEXT,
    renews            INTEGER REFERENCES requests (id),
    superseded_by     INTEGER REFERENCES requests (id),
    CHECK ((disposition IN ('issued', 'revoked')) = (certificate IS NOT NULL AND serial IS NOT NULL))
);
CREATE TABLE IF NOT EXISTS crls (
    number      INTEGER PRIMARY KEY AUTOINCREMENT,
    made        INTEGER NOT NULL,
    next_update INTEGER
);
CREATE TABLE IF NOT EXISTS compromised_keys (
    key_sha256 BLOB    PRIMARY KEY,
    serial     BLOB    NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_disposition ON requests (disposition);
CREATE INDEX IF NOT EXISTS requests_common_name ON requests (common_name COLLATE NOCASE);
";

/// Run after [`SCHEMA`] on every open: indexes over columns a version 1 database gains first.
const INDEXES_V2: &str = "
CREATE INDEX IF NOT EXISTS requests_inner ON requests (inner_sha256);
CREATE INDEX IF NOT EXISTS requests_key ON requests (key_sha256);
";

/// What version 1 lacks.
const UPGRADE_1_TO_2: &str = "
ALTER TABLE requests ADD COLUMN inner_sha256 BLOB;
ALTER TABLE requests ADD COLUMN key_sha256 BLOB;
ALTER TABLE requests ADD COLUMN key_desc TEXT;
ALTER TABLE requests ADD COLUMN requested_names TEXT;
ALTER TABLE requests ADD COLUMN certified_names TEXT;
ALTER TABLE requests ADD COLUMN renews INTEGER REFERENCES requests (id);
ALTER TABLE requests ADD COLUMN superseded_by INTEGER REFERENCES requests (id);
ALTER TABLE crls ADD COLUMN next_update INTEGER;
";

/// Where a request stands, with the Windows disposition codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// Waiting for a person (`Taken Under Submission`, 5).
    Pending,
    /// A certificate was issued (3).
    Issued,
    /// Refused (2).
    Denied,
    /// Issued, then revoked (6).
    Revoked,
}

impl Disposition {
    /// The word stored in the database and shown by the tools.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Pending => "pending",
            Disposition::Issued => "issued",
            Disposition::Denied => "denied",
            Disposition::Revoked => "revoked",
        }
    }

    /// The Windows CA's disposition code.
    pub fn code(self) -> u8 {
        match self {
            Disposition::Pending => 5,
            Disposition::Issued => 3,
            Disposition::Denied => 2,
            Disposition::Revoked => 6,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Disposition::Pending,
            Disposition::Issued,
            Disposition::Denied,
            Disposition::Revoked,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for Disposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Disposition {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Disposition::parse(&s.to_ascii_lowercase()).ok_or_else(|| Error::UnknownDisposition {
            given: s.to_owned(),
        })
    }
}

/// One request as the CA's database keeps it (its DER apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The request id certreq prints.
    pub id: i64,
    /// When it was received (to the second; RFC 3339 in JSON).
    #[serde(serialize_with = "time::as_rfc3339::serialize")]
    pub received: SystemTime,
    /// Who sent it: the request file's name.
    pub requester: String,
    /// SHA-256 of the request's DER as received, hex.
    pub request_sha256: String,
    /// SHA-256 of the PKCS #10 request (a renewal's inner one), hex: the same request
    /// wrapped again has the same.
    pub inner_sha256: Option<String>,
    /// SHA-256 of the request's public key (SubjectPublicKeyInfo, EC points uncompressed),
    /// hex.
    pub key_sha256: Option<String>,
    /// The subject the request asked for, RFC 4514 (control characters escaped).
    pub subject: String,
    /// The request's common name.
    pub common_name: Option<String>,
    /// The key: `RSA 2048`, `ECDSA P-256`.
    pub key: Option<String>,
    /// The DNS names the request asks for (the common name first; control characters
    /// escaped).
    pub requested_names: Vec<String>,
    /// The DNS names its certificate carries.
    pub certified_names: Vec<String>,
    /// The request whose certificate this one renews, proved with that certificate's key.
    pub renews: Option<i64>,
    /// The request whose certificate replaced this one's for its host: it is no longer the
    /// host's current certificate and never proves a renewal again.
    pub superseded_by: Option<i64>,
    /// Where it stands.
    pub disposition: Disposition,
    /// The CA's message: why it was denied, what was ignored, what was issued.
    pub message: String,
    /// The issued certificate's serial number, upper-case hex.
    pub serial: Option<String>,
    /// The issued certificate (DER).
    #[serde(skip)]
    pub certificate: Option<Vec<u8>>,
    /// The certificate's end of validity (RFC 3339 in JSON).
    #[serde(serialize_with = "time::option_as_rfc3339::serialize")]
    pub not_after: Option<SystemTime>,
    /// When it was revoked (to the second; RFC 3339 in JSON).
    #[serde(serialize_with = "time::option_as_rfc3339::serialize")]
    pub revoked_at: Option<SystemTime>,
    /// Why it was revoked.
    pub revocation_reason: Option<RevocationReason>,
}

impl Record {
    /// Whether this is its host's current certificate at `now`: issued, not revoked, not
    /// superseded, not expired.
    pub fn is_current(&self, now: SystemTime) -> bool {
        self.disposition == Disposition::Issued
            && self.superseded_by.is_none()
            && self.not_after.is_some_and(|t| t >= time::whole(now))
    }
}

/// What [`Authority::list`](super::Authority::list) selects; every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only requests in this state.
    pub disposition: Option<Disposition>,
    /// Only requests whose subject contains this text (case-insensitive).
    pub subject: Option<String>,
    /// Only the certificate with this serial number (hex).
    pub serial: Option<String>,
}

/// A new request's row.
#[derive(Debug, Clone)]
pub(crate) struct NewRequest<'a> {
    /// When it was received.
    pub(crate) received: SystemTime,
    /// The request file's name.
    pub(crate) requester: &'a str,
    /// The request's DER as received.
    pub(crate) der: &'a [u8],
    /// SHA-256 of `der`.
    pub(crate) sha256: &'a [u8],
    /// SHA-256 of the PKCS #10 request (inside a renewal's wrapper).
    pub(crate) inner_sha256: &'a [u8],
    /// SHA-256 of its public key.
    pub(crate) key_sha256: Option<&'a [u8]>,
    /// The key, in words.
    pub(crate) key_desc: Option<&'a str>,
    /// The DNS names asked for.
    pub(crate) requested_names: &'a [String],
    /// The subject, RFC 4514.
    pub(crate) subject: &'a str,
    /// The common name.
    pub(crate) common_name: Option<&'a str>,
    /// The request whose certificate it renews, proved.
    pub(crate) renews: Option<i64>,
    /// Its first state: pending, or denied with the reason.
    pub(crate) disposition: Disposition,
    /// The CA's message.
    pub(crate) message: &'a str,
}

/// An issued certificate to record.
#[derive(Debug, Clone)]
pub(crate) struct Issue<'a> {
    /// The request's id.
    pub(crate) id: i64,
    /// The serial number's bytes.
    pub(crate) serial: &'a [u8],
    /// The certificate's DER.
    pub(crate) certificate: &'a [u8],
    /// Its end of validity.
    pub(crate) not_after: SystemTime,
    /// The DNS names it carries.
    pub(crate) names: Vec<String>,
    /// The host it is for (lower case): its other current certificates are superseded.
    pub(crate) host: &'a str,
    /// The CA's message.
    pub(crate) message: &'a str,
}

/// The CA's database.
#[derive(Debug)]
pub(crate) struct Database {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Database(e)
}

fn opening(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::DatabaseFile {
        path: path.to_owned(),
        source,
    }
}

const COLUMNS: &str = "id, received, requester, request_sha256, subject, common_name, disposition, \
     message, serial, certificate, not_after, revoked_at, revocation_reason, key_desc, \
     requested_names, certified_names, renews, superseded_by, inner_sha256, key_sha256";

/// Names kept in one column: comma-separated (a DNS name holds no comma).
fn join_names(names: &[String]) -> String {
    names.join(",")
}

fn split_names(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn record(row: &Row<'_>) -> rusqlite::Result<Record> {
    let digest: Vec<u8> = row.get(3)?;
    let disposition: String = row.get(6)?;
    let serial: Option<Vec<u8>> = row.get(8)?;
    let as_u64 = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Ok(Record {
        id: row.get(0)?,
        received: time::at(as_u64(row.get(1)?).unwrap_or(0)),
        requester: row.get(2)?,
        request_sha256: crate::hex::lower(&digest),
        subject: row.get(4)?,
        common_name: row.get(5)?,
        disposition: Disposition::parse(&disposition).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("unknown disposition '{disposition}'").into(),
            )
        })?,
        message: row.get(7)?,
        serial: serial.as_deref().map(crate::hex::upper),
        certificate: row.get(9)?,
        not_after: as_u64(row.get(10)?).map(time::at),
        revoked_at: as_u64(row.get(11)?).map(time::at),
        revocation_reason: row
            .get::<_, Option<i64>>(12)?
            .and_then(|r| u8::try_from(r).ok())
            .and_then(RevocationReason::from_code),
        key: row.get(13)?,
        requested_names: split_names(row.get(14)?),
        certified_names: split_names(row.get(15)?),
        renews: row.get(16)?,
        superseded_by: row.get(17)?,
        inner_sha256: row
            .get::<_, Option<Vec<u8>>>(18)?
            .map(|d| crate::hex::lower(&d)),
        key_sha256: row
            .get::<_, Option<Vec<u8>>>(19)?
            .map(|d| crate::hex::lower(&d)),
    })
}

/// A time as the database keeps it: whole seconds since the Unix epoch.
fn sql_time(t: SystemTime) -> i64 {
    i64::try_from(time::seconds(t)).unwrap_or(i64::MAX)
}

/// A key revoked for keyCompromise: its digest, the serial revoked, when.
pub(crate) type CompromisedKey = (Vec<u8>, Vec<u8>, SystemTime);

/// A revoked certificate as the CRL lists it: serial number, when, why.
pub(crate) type RevokedEntry = (Vec<u8>, SystemTime, Option<RevocationReason>);

/// A row of a version 1 database to complete: its id, request DER and certificate.
pub(crate) type OldRow = (i64, Vec<u8>, Option<Vec<u8>>);

/// What [`Database::complete`] writes for one old row.
#[derive(Debug, Clone)]
pub(crate) struct Completion {
    pub(crate) id: i64,
    pub(crate) inner_sha256: Vec<u8>,
    pub(crate) key_sha256: Option<Vec<u8>>,
    pub(crate) key_desc: Option<String>,
    pub(crate) requested_names: Vec<String>,
    pub(crate) certified_names: Vec<String>,
}

impl Database {
    /// Opens (creating when missing) the database at `path`, upgrading a version 1 database.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        // A new database is owner-only from its first byte; SQLite gives its WAL and shared
        // memory files the database's permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| Error::Io {
                    path: path.to_owned(),
                    source,
                })?;
        }
        let conn = Connection::open(path).map_err(opening(path))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(opening(path))?;
        // FULL: a committed issue survives a power cut, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(opening(path))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(opening(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(opening(path))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(opening(path))?;
        if version > SCHEMA_VERSION {
            return Err(Error::DatabaseVersion {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let fresh: bool = conn
            .query_row(
                "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'requests'",
                [],
                |r| r.get(0),
            )
            .map_err(opening(path))?;
        if !fresh && version < 2 {
            conn.execute_batch(&format!("BEGIN IMMEDIATE;{UPGRADE_1_TO_2}COMMIT;"))
                .map_err(opening(path))?;
        }
        conn.execute_batch(SCHEMA).map_err(opening(path))?;
        conn.execute_batch(INDEXES_V2).map_err(opening(path))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(opening(path))?;
        Ok(Self { conn })
    }

    /// Opens the database at `path` to read only: nothing is created, upgraded or written
    /// (a reader that may not write the CA's folder, a report). A database of another
    /// version than this library's is refused.
    pub(crate) fn open_read_only(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(opening(path))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(opening(path))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(opening(path))?;
        if version != SCHEMA_VERSION {
            return Err(Error::DatabaseVersion {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(Self { conn })
    }

    /// The rows a version 1 database left without the version 2 facts.
    pub(crate) fn incomplete(&self) -> Result<Vec<OldRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, request_der, certificate FROM requests WHERE inner_sha256 IS NULL ORDER BY id")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// Completes old rows, and gives each host one current certificate (its newest issued
    /// one supersedes the others), in one transaction.
    pub(crate) fn complete(&mut self, done: &[Completion]) -> Result<()> {
        self.transaction(|b| {
            for c in done {
                b.tx.execute(
                    "UPDATE requests SET inner_sha256 = ?2, key_sha256 = ?3, key_desc = ?4,
                         requested_names = ?5, certified_names = ?6
                     WHERE id = ?1",
                    params![
                        c.id,
                        c.inner_sha256,
                        c.key_sha256,
                        c.key_desc,
                        join_names(&c.requested_names),
                        join_names(&c.certified_names).as_str()
                    ],
                )
                .map_err(db_err)?;
            }
            b.tx.execute(
                "UPDATE requests AS old SET superseded_by = (
                     SELECT new.id FROM requests AS new
                     WHERE new.common_name = old.common_name COLLATE NOCASE
                       AND new.disposition IN ('issued', 'revoked') AND new.id > old.id
                     ORDER BY new.id DESC LIMIT 1)
                 WHERE old.disposition IN ('issued', 'revoked') AND old.superseded_by IS NULL
                   AND EXISTS (SELECT 1 FROM requests AS new
                     WHERE new.common_name = old.common_name COLLATE NOCASE
                       AND new.disposition IN ('issued', 'revoked') AND new.id > old.id)",
                [],
            )
            .map_err(db_err)?;
            Ok(())
        })
    }

    /// Runs `f` in one transaction: all of its writes land, or none.
    pub(crate) fn transaction<T>(&mut self, f: impl FnOnce(&Batch<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let out = f(&Batch { tx: &tx })?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    fn one(&self, condition: &str, value: impl rusqlite::ToSql) -> Result<Option<Record>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM requests WHERE {condition}"))
            .and_then(|mut stmt| stmt.query_row([value], record).optional())
            .map_err(db_err)
    }

    /// Every request whose `column` (an expression of the table's, with its collation) is one
    /// of `values`, by id: one statement per 500 values, for a batch's lookups.
    pub(crate) fn where_in<T: rusqlite::ToSql>(
        &self,
        column: &str,
        values: &[T],
    ) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for chunk in values.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let mut stmt = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM requests WHERE {column} IN ({marks}) ORDER BY id"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(chunk), record)
                .map_err(db_err)?;
            for row in rows {
                out.push(row.map_err(db_err)?);
            }
        }
        out.sort_by_key(|r| r.id);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    /// Every key revoked for keyCompromise: its digest, the serial revoked and when.
    pub(crate) fn compromised_keys(&self) -> Result<Vec<CompromisedKey>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key_sha256, serial, revoked_at FROM compromised_keys")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    time::at(u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0)),
                ))
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// The request with this id; [`Error::NoSuchRequest`] when there is none.
    pub(crate) fn record(&self, id: i64) -> Result<Record> {
        self.one("id = ?1", id)?.ok_or(Error::NoSuchRequest(id))
    }

    /// The certificate with this serial number.
    pub(crate) fn by_serial(&self, serial: &[u8]) -> Result<Option<Record>> {
        self.one("serial = ?1", serial)
    }

    /// The stored DER of request `id`.
    pub(crate) fn request_der(&self, id: i64) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT request_der FROM requests WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
    }

    /// Every request `filter` selects, by id.
    pub(crate) fn list(&self, filter: &Filter) -> Result<Vec<Record>> {
        let serial = match &filter.serial {
            Some(s) => Some(crate::hex::decode(s).ok_or_else(|| Error::BadSerial {
                given: s.to_owned(),
            })?),
            None => None,
        };
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM requests
                 WHERE (?1 IS NULL OR disposition = ?1)
                   AND (?2 IS NULL OR instr(lower(subject), lower(?2)) > 0)
                   AND (?3 IS NULL OR serial = ?3)
                 ORDER BY id"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(
                params![
                    filter.disposition.map(Disposition::as_str),
                    filter.subject,
                    serial
                ],
                record,
            )
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }

    /// A new CRL number, never given before, for a CRL made at `now` and valid until `next`.
    pub(crate) fn next_crl_number(&mut self, now: SystemTime, next: SystemTime) -> Result<u64> {
        self.transaction(|b| {
            b.tx.execute(
                "INSERT INTO crls (made, next_update) VALUES (?1, ?2)",
                [sql_time(now), sql_time(next)],
            )
            .map_err(db_err)?;
            Ok(u64::try_from(b.tx.last_insert_rowid()).unwrap_or(0))
        })
    }

    /// The newest CRL made: its number, when, and until when it is valid.
    pub(crate) fn last_crl(&self) -> Result<Option<(u64, SystemTime, Option<SystemTime>)>> {
        self.conn
            .query_row(
                "SELECT number, made, next_update FROM crls ORDER BY number DESC LIMIT 1",
                [],
                |r| {
                    let at = |v: i64| time::at(u64::try_from(v).unwrap_or(0));
                    Ok((
                        u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                        at(r.get(1)?),
                        r.get::<_, Option<i64>>(2)?.map(at),
                    ))
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// The serial numbers, revocation times and reasons of every revoked certificate.
    pub(crate) fn revoked(&self) -> Result<Vec<RevokedEntry>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT serial, revoked_at, revocation_reason FROM requests
                 WHERE disposition = 'revoked' ORDER BY revoked_at, id",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    time::at(u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)),
                    u8::try_from(r.get::<_, i64>(2)?)
                        .ok()
                        .and_then(RevocationReason::from_code),
                ))
            })
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
    }
}

/// The writes of one transaction.
#[derive(Debug)]
pub(crate) struct Batch<'t> {
    tx: &'t Transaction<'t>,
}

impl Batch<'_> {
    /// Records a request, or finds the first one with the same PKCS #10 request: `(id, true)`
    /// when it was there already.
    pub(crate) fn insert(&self, r: &NewRequest<'_>) -> Result<(i64, bool)> {
        if let Some(id) = self
            .tx
            .prepare_cached(
                "SELECT id FROM requests WHERE inner_sha256 = ?1 OR request_sha256 = ?2
                 ORDER BY id LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([r.inner_sha256, r.sha256], |row| row.get::<_, i64>(0))
                    .optional()
            })
            .map_err(db_err)?
        {
            return Ok((id, true));
        }
        let mut stmt = self
            .tx
            .prepare_cached(
                "INSERT INTO requests (received, requester, request_der, request_sha256, subject,
                     common_name, disposition, message, inner_sha256, key_sha256, key_desc,
                     requested_names, renews)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .map_err(db_err)?;
        stmt.execute(params![
            sql_time(r.received),
            r.requester,
            r.der,
            r.sha256,
            r.subject,
            r.common_name,
            r.disposition.as_str(),
            r.message,
            r.inner_sha256,
            r.key_sha256,
            r.key_desc,
            join_names(r.requested_names),
            r.renews
        ])
        .map_err(db_err)?;
        Ok((self.tx.last_insert_rowid(), false))
    }

    /// Records an issued certificate for a pending request, and makes it its host's one
    /// current certificate: the host's other issued certificates are superseded by it. A
    /// serial number already used anywhere is refused by the database
    /// ([`Error::SerialInUse`]).
    pub(crate) fn issue(&self, i: &Issue<'_>) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "UPDATE requests SET disposition = 'issued', serial = ?2, certificate = ?3,
                     not_after = ?4, message = ?5, certified_names = ?6
                 WHERE id = ?1 AND disposition = 'pending'",
            )
            .map_err(db_err)?;
        match stmt.execute(params![
            i.id,
            i.serial,
            i.certificate,
            sql_time(i.not_after),
            i.message,
            join_names(&i.names)
        ]) {
            Ok(1) => {}
            Ok(_) => return Err(Error::NotPending(i.id)),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::SerialInUse(crate::hex::upper(i.serial)));
            }
            Err(e) => return Err(db_err(e)),
        }
        self.tx
            .prepare_cached(
                "UPDATE requests SET superseded_by = ?1
                 WHERE common_name = ?2 COLLATE NOCASE AND id <> ?1 AND superseded_by IS NULL
                   AND disposition IN ('issued', 'revoked')",
            )
            .and_then(|mut stmt| stmt.execute(params![i.id, i.host]))
            .map_err(db_err)?;
        Ok(())
    }

    /// Makes a denied request pending again, for a new review (certutil -resubmit of a failed
    /// request).
    pub(crate) fn reopen(&self, id: i64) -> Result<()> {
        let n = self
            .tx
            .execute(
                "UPDATE requests SET disposition = 'pending'
                 WHERE id = ?1 AND disposition = 'denied'",
                params![id],
            )
            .map_err(db_err)?;
        if n == 1 {
            Ok(())
        } else {
            Err(Error::NotPending(id))
        }
    }

    /// Denies a pending request with the reason.
    pub(crate) fn deny(&self, id: i64, message: &str) -> Result<()> {
        let n = self
            .tx
            .execute(
                "UPDATE requests SET disposition = 'denied', message = ?2
                 WHERE id = ?1 AND disposition = 'pending'",
                params![id, message],
            )
            .map_err(db_err)?;
        if n == 1 {
            return Ok(());
        }
        Err(if self.get(id)?.is_some() {
            Error::NotPending(id)
        } else {
            Error::NoSuchRequest(id)
        })
    }

    /// Revokes the issued certificate with this serial number; revoking it again is harmless
    /// and keeps the first time and reason (but for keyCompromise, which takes the place of a
    /// milder reason: the key must be recorded). For keyCompromise its key is recorded as
    /// compromised, and revoked with it is everything that key could have obtained or been
    /// part of: the certificates with the same key, the ones it superseded (they lived on the
    /// same disk) and the renewals it proved, and so on from each of those. Returns the
    /// request's id.
    pub(crate) fn revoke(
        &self,
        serial: &[u8],
        at: SystemTime,
        reason: RevocationReason,
    ) -> Result<i64> {
        let row: Option<i64> = self
            .tx
            .query_row("SELECT id FROM requests WHERE serial = ?1", [serial], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_err)?;
        let Some(id) = row else {
            return Err(Error::NoSuchSerial(crate::hex::upper(serial)));
        };
        let mut closure = vec![id];
        if reason == RevocationReason::KeyCompromise {
            let mut related = self
                .tx
                .prepare_cached(
                    "SELECT r.id FROM requests AS r, requests AS c
                     WHERE c.id = ?1 AND r.serial IS NOT NULL AND r.id <> c.id
                       AND (r.superseded_by = c.id OR r.renews = c.id
                            OR (c.key_sha256 IS NOT NULL AND r.key_sha256 = c.key_sha256))",
                )
                .map_err(db_err)?;
            let mut next = 0;
            while let Some(&current) = closure.get(next) {
                let found = related
                    .query_map([current], |r| r.get::<_, i64>(0))
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)?;
                for f in found {
                    if !closure.contains(&f) {
                        closure.push(f);
                    }
                }
                next += 1;
            }
        }
        for row in &closure {
            self.tx
                .execute(
                    "UPDATE requests SET disposition = 'revoked', revoked_at = ?2,
                         revocation_reason = ?3
                     WHERE id = ?1 AND disposition = 'issued'",
                    params![row, sql_time(at), i64::from(reason.code())],
                )
                .map_err(db_err)?;
            if reason == RevocationReason::KeyCompromise {
                self.tx
                    .execute(
                        "UPDATE requests SET revocation_reason = ?2
                         WHERE id = ?1 AND disposition = 'revoked' AND revocation_reason <> ?2",
                        params![row, i64::from(reason.code())],
                    )
                    .map_err(db_err)?;
                self.tx
                    .execute(
                        "INSERT OR IGNORE INTO compromised_keys (key_sha256, serial, revoked_at)
                         SELECT key_sha256, serial, ?2 FROM requests
                         WHERE id = ?1 AND key_sha256 IS NOT NULL",
                        params![row, sql_time(at)],
                    )
                    .map_err(db_err)?;
            }
        }
        Ok(id)
    }

    /// The request with this id, seen from inside the transaction.
    pub(crate) fn get(&self, id: i64) -> Result<Option<Record>> {
        self.tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
            .map_err(db_err)
    }
}

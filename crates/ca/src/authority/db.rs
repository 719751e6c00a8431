//! The CA's request database: SQLite (WAL, full sync) in one file beside the CA's key.
//!
//! One row per request ever received. Ids come from `AUTOINCREMENT`, so an id is never reused
//! even after a crash or a deleted row; serial numbers and request digests are `UNIQUE`, so a
//! serial can never be issued twice and a re-submitted request finds its first id.

use std::path::Path;
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::time;

/// The schema's version, kept in SQLite's `user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 1;

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
    CHECK ((disposition IN ('issued', 'revoked')) = (certificate IS NOT NULL AND serial IS NOT NULL))
);
CREATE TABLE IF NOT EXISTS crls (
    number  INTEGER PRIMARY KEY AUTOINCREMENT,
    made    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_disposition ON requests (disposition);
CREATE INDEX IF NOT EXISTS requests_common_name ON requests (common_name COLLATE NOCASE);
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
        Disposition::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            Error::Database(format!(
                "unknown disposition '{s}': pending, issued, denied or revoked"
            ))
        })
    }
}

/// One request as the CA's database keeps it (its DER apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The request id certreq prints.
    pub id: i64,
    /// When it was received (to the second; seconds since the Unix epoch in JSON).
    #[serde(serialize_with = "time::as_seconds::serialize")]
    pub received: SystemTime,
    /// Who sent it: the request file's name.
    pub requester: String,
    /// SHA-256 of the request's DER, hex.
    pub request_sha256: String,
    /// The subject the request asked for, RFC 4514.
    pub subject: String,
    /// The request's common name.
    pub common_name: Option<String>,
    /// Where it stands.
    pub disposition: Disposition,
    /// The CA's message: why it was denied, what was ignored, what was issued.
    pub message: String,
    /// The issued certificate's serial number, upper-case hex.
    pub serial: Option<String>,
    /// The issued certificate (DER).
    #[serde(skip)]
    pub certificate: Option<Vec<u8>>,
    /// The certificate's end of validity (seconds since the Unix epoch in JSON).
    #[serde(serialize_with = "time::option_as_seconds::serialize")]
    pub not_after: Option<SystemTime>,
    /// When it was revoked (to the second; seconds since the Unix epoch in JSON).
    #[serde(serialize_with = "time::option_as_seconds::serialize")]
    pub revoked_at: Option<SystemTime>,
    /// RFC 5280's revocation reason code.
    pub revocation_reason: Option<u8>,
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
    /// The request's DER.
    pub(crate) der: &'a [u8],
    /// SHA-256 of `der`.
    pub(crate) sha256: &'a [u8],
    /// The subject, RFC 4514.
    pub(crate) subject: &'a str,
    /// The common name.
    pub(crate) common_name: Option<&'a str>,
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
    /// The CA's message.
    pub(crate) message: &'a str,
}

/// The CA's database.
#[derive(Debug)]
pub(crate) struct Database {
    conn: Connection,
}

fn db_err(e: rusqlite::Error) -> Error {
    Error::Database(e.to_string())
}

const COLUMNS: &str = "id, received, requester, request_sha256, subject, common_name, disposition, \
     message, serial, certificate, not_after, revoked_at, revocation_reason";

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
            .and_then(|r| u8::try_from(r).ok()),
    })
}

/// A time as the database keeps it: whole seconds since the Unix epoch.
fn sql_time(t: SystemTime) -> i64 {
    i64::try_from(time::seconds(t)).unwrap_or(i64::MAX)
}

impl Database {
    /// Opens (creating when missing) the database at `path`.
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
                .map_err(|e| Error::Database(format!("{}: {e}", path.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| Error::Database(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_err)?;
        // FULL: a committed issue survives a power cut, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(db_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Database(format!(
                "{}: schema version {version} is newer than this tool's {SCHEMA_VERSION}",
                path.display()
            )));
        }
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        Ok(Self { conn })
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

    /// The request with this id.
    pub(crate) fn get(&self, id: i64) -> Result<Option<Record>> {
        self.conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"))
            .and_then(|mut stmt| stmt.query_row([id], record).optional())
            .map_err(db_err)
    }

    /// The request with this digest.
    pub(crate) fn by_digest(&self, sha256: &[u8]) -> Result<Option<Record>> {
        // Cached: a batch asks once per request file.
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM requests WHERE request_sha256 = ?1"
            ))
            .and_then(|mut stmt| stmt.query_row([sha256], record).optional())
            .map_err(db_err)
    }

    /// The newest certificate of this CA for `host` (its common name, any case) that is
    /// issued, not revoked and still valid at `now`.
    pub(crate) fn valid_certificate_for(
        &self,
        host: &str,
        now: SystemTime,
    ) -> Result<Option<Record>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM requests
                 WHERE common_name = ?1 COLLATE NOCASE AND disposition = 'issued'
                   AND not_after > ?2
                 ORDER BY not_after DESC, id DESC LIMIT 1"
            ))
            .and_then(|mut stmt| {
                stmt.query_row(params![host, sql_time(now)], record)
                    .optional()
            })
            .map_err(db_err)
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
            Some(s) => Some(
                crate::hex::decode(s)
                    .ok_or_else(|| Error::Database(format!("serial number '{s}' is not hex")))?,
            ),
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

    /// A new CRL number, never given before.
    pub(crate) fn next_crl_number(&mut self, now: SystemTime) -> Result<u64> {
        self.transaction(|b| {
            b.tx.execute("INSERT INTO crls (made) VALUES (?1)", [sql_time(now)])
                .map_err(db_err)?;
            Ok(u64::try_from(b.tx.last_insert_rowid()).unwrap_or(0))
        })
    }

    /// The serial numbers, revocation times and reasons of every revoked certificate.
    pub(crate) fn revoked(&self) -> Result<Vec<(Vec<u8>, SystemTime, u8)>> {
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
                    u8::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
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
    /// Records a request, or finds the one with the same digest: `(id, true)` when it was
    /// there already.
    pub(crate) fn insert(&self, r: &NewRequest<'_>) -> Result<(i64, bool)> {
        if let Some(id) = self
            .tx
            .prepare_cached("SELECT id FROM requests WHERE request_sha256 = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([r.sha256], |row| row.get::<_, i64>(0))
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
                     common_name, disposition, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
            r.message
        ])
        .map_err(db_err)?;
        Ok((self.tx.last_insert_rowid(), false))
    }

    /// Records an issued certificate for a pending request. A serial number already used
    /// anywhere is refused by the database ([`Error::SerialInUse`]).
    pub(crate) fn issue(&self, i: &Issue<'_>) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "UPDATE requests SET disposition = 'issued', serial = ?2, certificate = ?3,
                     not_after = ?4, message = ?5
                 WHERE id = ?1 AND disposition = 'pending'",
            )
            .map_err(db_err)?;
        match stmt.execute(params![
            i.id,
            i.serial,
            i.certificate,
            sql_time(i.not_after),
            i.message
        ]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::NotPending(i.id)),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::SerialInUse(crate::hex::upper(i.serial)))
            }
            Err(e) => Err(db_err(e)),
        }
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
            Ok(())
        } else {
            Err(Error::NotPending(id))
        }
    }

    /// Revokes the issued certificate with this serial number; revoking it again is harmless
    /// and keeps the first time and reason. Returns the request's id.
    pub(crate) fn revoke(&self, serial: &[u8], at: SystemTime, reason: u8) -> Result<i64> {
        let row: Option<(i64, String)> = self
            .tx
            .query_row(
                "SELECT id, disposition FROM requests WHERE serial = ?1",
                [serial],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        let Some((id, disposition)) = row else {
            return Err(Error::NoSuchSerial(crate::hex::upper(serial)));
        };
        if disposition == "issued" {
            self.tx
                .execute(
                    "UPDATE requests SET disposition = 'revoked', revoked_at = ?2,
                         revocation_reason = ?3
                     WHERE id = ?1",
                    params![id, sql_time(at), i64::from(reason)],
                )
                .map_err(db_err)?;
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

//! The crate's error type.

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the certificate pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request policy (certreq.inf) line that cannot be read or honoured.
    #[error("{file}{}{}: {message}", line_part(*.line), key_part(.key.as_deref()))]
    Inf {
        /// The policy file's name.
        file: String,
        /// One-based line, 0 when the problem is the file as a whole.
        line: usize,
        /// The key at fault.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A request policy asking for a 1024-bit RSA key, which is refused unless
    /// [`PolicyOptions::allow_legacy_rsa1024`](crate::request::PolicyOptions) says otherwise.
    #[error(
        "{file}:{line}: KeyLength: 1024-bit RSA is broken for this purpose today (factorable with public effort); use 2048 or more"
    )]
    LegacyRsa1024 {
        /// The policy file's name.
        file: String,
        /// The one-based line of its KeyLength.
        line: usize,
    },
    /// A file could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or CRL could not be read, or is refused.
    #[error("certificate: {message}")]
    Certificate {
        /// What is wrong.
        message: String,
        /// What the library beneath said, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// A drop share's UNC path that cannot stand in the agents' scripts.
    #[error("the share '{share}' {problem}: give a UNC path such as \\\\ca01\\certrequests")]
    SharePath {
        /// The path given, control characters escaped.
        share: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key could not be generated, encoded or read.
    #[error("key: {message}")]
    Key {
        /// What is wrong.
        message: String,
        /// What the library beneath said, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// A certificate request could not be built, read or verified.
    #[error("certificate request: {message}")]
    Request {
        /// What is wrong.
        message: String,
        /// What the library beneath said, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// A store name that is not one of ours.
    #[error("no store named '{0}': the stores are My, Root and Request")]
    NoSuchStore(String),
    /// No entry of the store has that id.
    #[error("the {store} store has no entry '{id}' (give a thumbprint, serial number or key id)")]
    NoSuchEntry {
        /// The store.
        store: crate::names::StoreName,
        /// The id given.
        id: String,
    },
    /// Several entries match an id.
    #[error("'{id}' names {count} entries of the {store} store; give the thumbprint")]
    Ambiguous {
        /// The store.
        store: crate::names::StoreName,
        /// The id given.
        id: String,
        /// How many matched.
        count: usize,
    },
    /// A certificate meant for `Root` that is not a CA certificate.
    #[error(
        "{0} is not a CA certificate (its basicConstraints does not say CA), so it cannot be a trusted root"
    )]
    NotCa(String),
    /// The CA's database failed.
    #[error("the CA's database")]
    Database(#[source] rusqlite::Error),
    /// The CA's database file cannot be opened.
    #[error("{}", path.display())]
    DatabaseFile {
        /// The database file.
        path: std::path::PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A database written by a newer version of this library.
    #[error("{}: schema version {found} is newer than this library's {supported}", path.display())]
    DatabaseVersion {
        /// The database file.
        path: std::path::PathBuf,
        /// Its version.
        found: i64,
        /// The newest this library reads.
        supported: i64,
    },
    /// No request has that id.
    #[error("no request has id {0}")]
    NoSuchRequest(i64),
    /// An operation for pending requests on one that is not pending.
    #[error("request {0} is not pending")]
    NotPending(i64),
    /// A serial number the database already holds.
    #[error("serial number {0} is already in use")]
    SerialInUse(String),
    /// No issued certificate has that serial number.
    #[error("no certificate with serial number {0} was issued by this CA")]
    NoSuchSerial(String),
    /// A serial number that is not hex.
    #[error("serial number '{given}' is not hex")]
    BadSerial {
        /// What was given.
        given: String,
    },
    /// A request id that is not a positive number.
    #[error("'{given}' is not a request id (a positive number, decimal or 0x hex)")]
    BadRequestId {
        /// What was given.
        given: String,
    },
    /// A revocation reason that RFC 5280 does not define.
    #[error(
        "unknown revocation reason '{given}': Unspecified, KeyCompromise, CACompromise, AffiliationChanged, Superseded, CessationOfOperation, CertificateHold, PrivilegeWithdrawn, AACompromise (or 0-6, 9, 10)"
    )]
    UnknownReason {
        /// What was given.
        given: String,
    },
    /// A disposition that is not one of the four.
    #[error("unknown disposition '{given}': pending, issued, denied or revoked")]
    UnknownDisposition {
        /// What was given.
        given: String,
    },
    /// A value of the CA's policy that cannot be honoured.
    #[error("{field}: {message}")]
    Policy {
        /// The field at fault (with its file, when read from one).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The CA's policy file cannot be read.
    #[error("{}", path.display())]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What the JSON reader said.
        #[source]
        source: serde_json::Error,
    },
    /// Something could not be written as JSON.
    #[error("{what}")]
    Json {
        /// What.
        what: &'static str,
        /// What the JSON writer said.
        #[source]
        source: serde_json::Error,
    },
    /// A folder that already holds a CA.
    #[error("{} already holds a CA; nothing was changed", dir.display())]
    CaExists {
        /// The folder.
        dir: std::path::PathBuf,
    },
    /// A certificate that is not the certificate of the key it is paired with.
    #[error("{certificate} is not the certificate of its key")]
    KeyMismatch {
        /// The certificate.
        certificate: String,
    },
    /// A validity that reaches past the year 9999.
    #[error("{years} years from now is past the year 9999")]
    Validity {
        /// The years asked for.
        years: u32,
    },
    /// Something could not be encoded in DER.
    #[error("encoding {what}")]
    Encoding {
        /// What.
        what: &'static str,
        /// What the encoder said.
        #[source]
        source: der::Error,
    },
    /// Signing a certificate or CRL failed.
    #[error("signing")]
    Signing(#[source] x509_cert::builder::Error),
    /// A CRL was published, yet none is on record (the database was changed meanwhile).
    #[error("no CRL was recorded")]
    NoCrlRecorded,
    /// The agent's settings file cannot be read or written as JSON.
    #[error("agent settings {}", path.display())]
    Settings {
        /// The settings file.
        path: std::path::PathBuf,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// A key whose request said `Exportable = FALSE`.
    #[error(
        "the private key of {subject} ({id}) was made with Exportable = FALSE and is never exported"
    )]
    NotExportable {
        /// The certificate's or request's subject.
        subject: String,
        /// The entry's id.
        id: String,
    },
    /// A bundle whose root this machine does not trust and no pin names.
    #[error(
        "the bundle's root {subject} (thumbprint {thumbprint}) is not in this machine's Root store{}; nothing was installed",
        if *pinned { " and is not the pinned root" } else { "" }
    )]
    UntrustedRoot {
        /// The bundle root's subject.
        subject: String,
        /// Its SHA-1 thumbprint.
        thumbprint: String,
        /// Whether a pin was given (and did not match).
        pinned: bool,
    },
    /// A certificate whose issuer is not a root this machine trusts.
    #[error(
        "{subject} is issued by {issuer}, which is not in this machine's Root store; nothing was installed"
    )]
    UntrustedIssuer {
        /// The certificate's subject.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// A PFX (PKCS #12) file that cannot be written or read, or holds the wrong things.
    #[error("PFX: {message}")]
    Pfx {
        /// What is wrong.
        message: String,
        /// What the library beneath said, when one did.
        #[source]
        source: Option<Cause>,
    },
    /// An encrypted key opened without a password.
    #[error("{0} is encrypted: a password is needed")]
    PasswordRequired(String),
    /// A password that does not open what it was given for (or the file was changed).
    #[error("the password does not open {0} (or the file was changed)")]
    WrongPassword(String),
}

/// What a library beneath this one said, kept as the source of [`Error::Certificate`],
/// [`Error::Key`], [`Error::Request`] and [`Error::Pfx`]: the `der` crate's error (reading or
/// encoding certificates, requests, CRLs and PFX structures), `spki` and `pkcs8` errors (keys),
/// `rsa`'s (RSA key generation), [`SignatureError`](crate::request::SignatureError) (a
/// signature that does not verify), the PKCS #12 crates' (PFX MACs and encryption), a JSON
/// error (a store's metadata), or this crate's own [`Error`] (a certificate read inside a
/// larger operation). It is boxed rather than an enum so that those crates' versions stay out
/// of this crate's API: match on the variant, read the source as text
/// ([`error_chain`](crate::error_chain)), and downcast only to types whose versions you share.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

macro_rules! constructors {
    ($($variant:ident: $plain:ident, $from:ident;)*) => {
        impl Error {
            $(
                pub(crate) fn $plain(message: impl Into<String>) -> Self {
                    Self::$variant {
                        message: message.into(),
                        source: None,
                    }
                }

                pub(crate) fn $from(
                    message: impl Into<String>,
                    source: impl std::error::Error + Send + Sync + 'static,
                ) -> Self {
                    Self::$variant {
                        message: message.into(),
                        source: Some(Box::new(source)),
                    }
                }
            )*
        }
    };
}

constructors! {
    Certificate: certificate, certificate_from;
    Key: key, key_from;
    Request: request, request_from;
    Pfx: pfx, pfx_from;
}

/// `e` and its sources, joined as `anyhow` shows them (`a: b: c`): the whole story, where it
/// is written into a record or a report rather than handed up.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

fn line_part(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}")
    }
}

fn key_part(key: Option<&str>) -> String {
    key.map_or(String::new(), |k| format!(": {k}"))
}

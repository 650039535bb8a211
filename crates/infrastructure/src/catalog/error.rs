//! Classification of SQLite failures at the adapter boundary (STYLE §5, spec 10 §5.10).
//!
//! sqlx reports SQLite busy/locked as a generic database error; the primary result
//! code (the low byte of the extended code that sqlx exposes) tells them apart. The
//! classes decide what callers do: `Busy` is retried or reported as `catalog_busy`,
//! `Corrupt` and `ReadOnly` during opening trigger self-healing (spec 10 §4.7).

use fen_domain::ports::{LifecycleLockError, RepoError};

/// `SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_READONLY`, `SQLITE_CORRUPT`, `SQLITE_NOTADB`.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;

/// Opening the catalog failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogOpenError {
    /// The catalog itself failed (busy, too new, migration, storage).
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// Creating, migrating or healing the file needed the lifecycle lock and it could
    /// not be taken (`lock_timeout`, exit 75, or `io`, exit 3).
    #[error(transparent)]
    Lock(#[from] LifecycleLockError),
}

impl CatalogOpenError {
    /// The same failure as a `RepoError`, for callers that can only return that (a lazy
    /// open inside a repository method). A lock timeout becomes `Busy` (both exit 75).
    pub fn into_repo_error(self) -> RepoError {
        match self {
            CatalogOpenError::Repo(error) => error,
            CatalogOpenError::Lock(LifecycleLockError::Timeout { .. }) => RepoError::Busy,
            CatalogOpenError::Lock(other) => RepoError::Storage(other.to_string()),
        }
    }
}

/// One SQLite failure, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SqlFailure {
    /// Busy or locked beyond the busy timeout.
    Busy,
    /// Corrupt file or not a database.
    Corrupt(String),
    /// "attempt to write a readonly database".
    ReadOnly(String),
    /// Anything else.
    Other(String),
}

impl SqlFailure {
    /// True for the failures that self-healing handles by moving the file aside.
    pub(crate) fn is_damage(&self) -> bool {
        matches!(self, SqlFailure::Corrupt(_) | SqlFailure::ReadOnly(_))
    }
}

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlFailure::Busy => f.write_str("database is busy"),
            SqlFailure::Corrupt(message)
            | SqlFailure::ReadOnly(message)
            | SqlFailure::Other(message) => f.write_str(message),
        }
    }
}

impl From<sqlx::Error> for SqlFailure {
    fn from(error: sqlx::Error) -> SqlFailure {
        classify(&error)
    }
}

impl From<SqlFailure> for RepoError {
    fn from(failure: SqlFailure) -> RepoError {
        match failure {
            SqlFailure::Busy => RepoError::Busy,
            SqlFailure::Corrupt(message) => RepoError::Corrupt(message),
            SqlFailure::ReadOnly(message) | SqlFailure::Other(message) => {
                RepoError::Storage(message)
            }
        }
    }
}

/// Classifies a sqlx error by the SQLite result code it carries.
pub(crate) fn classify(error: &sqlx::Error) -> SqlFailure {
    match error {
        sqlx::Error::Database(database) => {
            let primary = database
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            let message = database.message().to_owned();
            match primary {
                Some(SQLITE_BUSY | SQLITE_LOCKED) => SqlFailure::Busy,
                Some(SQLITE_CORRUPT | SQLITE_NOTADB) => SqlFailure::Corrupt(message),
                Some(SQLITE_READONLY) => SqlFailure::ReadOnly(message),
                _ => SqlFailure::Other(message),
            }
        }
        other => SqlFailure::Other(other.to_string()),
    }
}

/// `?`-friendly conversion of a sqlx error into the domain's error.
pub(crate) fn repo_error(error: sqlx::Error) -> RepoError {
    classify(&error).into()
}

/// Why one attempt to open the catalog failed; decides whether self-healing applies.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// A classified SQLite failure.
    Sql(SqlFailure),
    /// The catalog records a version this binary does not embed.
    TooNew { found: i64, supported: i64 },
    /// A migration failed and was rolled back, or a recorded one was edited or dirty.
    Migration { version: i64, message: String },
    /// The lifecycle lock could not be taken.
    Lock(LifecycleLockError),
    /// The file system refused (missing `.fen/`, a failed rename).
    Io(String),
}

impl OpenFailure {
    /// Spec 10 §4.7 step 2: corrupt, not a database, read-only during migration, or a
    /// migration error. `CatalogTooNew` and `Busy` are never healed.
    pub(crate) fn is_healable(&self) -> bool {
        match self {
            OpenFailure::Sql(failure) => failure.is_damage(),
            OpenFailure::Migration { .. } => true,
            OpenFailure::TooNew { .. } | OpenFailure::Lock(_) | OpenFailure::Io(_) => false,
        }
    }
}

impl std::fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenFailure::Sql(failure) => write!(f, "{failure}"),
            OpenFailure::TooNew { found, supported } => {
                write!(f, "schema version {found} is newer than {supported}")
            }
            OpenFailure::Migration { version, message } => {
                write!(f, "migration {version} failed: {message}")
            }
            OpenFailure::Lock(error) => write!(f, "{error}"),
            OpenFailure::Io(message) => f.write_str(message),
        }
    }
}

impl From<SqlFailure> for OpenFailure {
    fn from(failure: SqlFailure) -> OpenFailure {
        OpenFailure::Sql(failure)
    }
}

impl From<OpenFailure> for CatalogOpenError {
    fn from(failure: OpenFailure) -> CatalogOpenError {
        match failure {
            OpenFailure::Sql(failure) => CatalogOpenError::Repo(failure.into()),
            OpenFailure::TooNew { found, supported } => {
                CatalogOpenError::Repo(RepoError::CatalogTooNew { found, supported })
            }
            OpenFailure::Migration { version, message } => {
                CatalogOpenError::Repo(RepoError::Migration { version, message })
            }
            OpenFailure::Lock(error) => CatalogOpenError::Lock(error),
            OpenFailure::Io(message) => CatalogOpenError::Repo(RepoError::Storage(message)),
        }
    }
}

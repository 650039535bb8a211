//! The embedded migrations and what the opener and `cargo xtask migrate` ask of them
//! (spec 10 §4.6).
//!
//! sqlx's migrator takes no lock across processes; every call that applies migrations
//! runs while this process holds the lifecycle lock, so processes that open a missing
//! catalog at the same moment apply each migration exactly once. sqlx runs each
//! migration in its own (deferred) transaction: a failing statement rolls that
//! migration back and `_sqlx_migrations` gets no row for it.

use std::collections::BTreeMap;
use std::path::Path;

use fen_domain::ports::{LifecycleGuard, RepoError};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::SqliteConnection;

use super::connection::{self, Access};
use super::error::{classify, CatalogOpenError, OpenFailure, SqlFailure};
use super::opener;

/// `crates/infrastructure/migrations/*.sql`, embedded at build time.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!();

/// The 16 columns of `bundle_types` after migration 0003 (spec 10 §4.2): the row
/// layout the repository reads and writes, which the schema check verifies.
pub(crate) const COLUMNS: [&str; 16] = super::rows::ROW_COLUMNS;

/// The four indexes of spec 10 §4.4.
pub(crate) const INDEXES: [&str; 4] = [
    "idx_bundle_types_kind",
    "idx_bundle_types_extends",
    "idx_bundle_types_type",
    "idx_bundle_types_identity",
];

/// Which migrations a catalog file has and which this binary would apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Every version this binary embeds, ascending.
    pub embedded: Vec<i64>,
    /// Versions recorded in the file (empty when the file does not exist).
    pub applied: Vec<i64>,
    /// Embedded versions the file does not record yet.
    pub pending: Vec<i64>,
}

/// The outcome of [`verify_schema`]: an empty `problems` list means the catalog is
/// exactly what the embedded migrations produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaCheck {
    /// One line per deviation.
    pub problems: Vec<String>,
}

/// Every version this binary embeds, ascending.
pub fn embedded_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// Reads the migration status of the catalog at `db` without creating, locking or
/// changing anything. A catalog that records a version this binary does not embed is
/// `RepoError::CatalogTooNew`.
pub async fn migration_status(db: &Path) -> Result<MigrationStatus, RepoError> {
    let embedded = embedded_versions();
    if !db.exists() {
        return Ok(MigrationStatus {
            pending: embedded.clone(),
            embedded,
            applied: Vec::new(),
        });
    }
    let mut conn = connection::connect(db, Access::ReadOnly).await?;
    let applied = read_applied(&mut conn).await;
    connection::close(conn).await;
    let applied = applied?;
    if let SchemaState::TooNew { found, supported } = assess(&applied, &MIGRATOR) {
        return Err(RepoError::CatalogTooNew { found, supported });
    }
    let applied: Vec<i64> = applied.iter().map(|row| row.version).collect();
    let pending = embedded
        .iter()
        .copied()
        .filter(|version| !applied.contains(version))
        .collect();
    Ok(MigrationStatus {
        embedded,
        applied,
        pending,
    })
}

/// Creates the catalog at `db` if needed, switches it to WAL and applies the pending
/// migrations; returns the versions applied now. The guard is the proof that the
/// caller holds the lifecycle lock beside the catalog (`cargo xtask migrate`). No
/// self-healing: a failure is returned as is and the file stays where it is.
pub async fn migrate_with_guard(db: &Path, _held: &LifecycleGuard) -> Result<Vec<i64>, RepoError> {
    let opened = opener::open_under_lock(db)
        .await
        .map_err(|failure| CatalogOpenError::from(failure).into_repo_error())?;
    connection::close(opened.conn).await;
    Ok(opened.migrated)
}

/// Checks the catalog at `db` against the embedded migrations: every version recorded
/// and successful with its checksum, exactly the 16 columns of spec 10 §4.2 and the
/// four indexes of §4.4. Opens the file read-only.
pub async fn verify_schema(db: &Path) -> Result<SchemaCheck, RepoError> {
    if !db.exists() {
        return Err(RepoError::Storage(format!(
            "no catalog at {}",
            db.display()
        )));
    }
    let mut conn = connection::connect(db, Access::ReadOnly).await?;
    let check = check_schema(&mut conn).await;
    connection::close(conn).await;
    Ok(check?)
}

/// One row of `_sqlx_migrations`.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct AppliedRow {
    pub(crate) version: i64,
    pub(crate) success: bool,
    pub(crate) checksum: Vec<u8>,
}

/// How a catalog's recorded migrations compare with a migrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SchemaState {
    /// Every embedded version is applied, unchanged.
    UpToDate,
    /// Some embedded versions are missing (all of them in a new file).
    Behind,
    /// A recorded version is not embedded.
    TooNew { found: i64, supported: i64 },
    /// A recorded migration failed or was edited after it was applied.
    Damaged { version: i64, message: String },
}

/// What the lock-free open reads in one statement (one round trip to sqlx's worker
/// thread): the journal mode, the recorded migrations, and for the first
/// `guards_and_outline` the guard keys and the number of rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenState {
    pub(crate) wal: bool,
    pub(crate) applied: Vec<AppliedRow>,
    /// `bundle_meta` as `(key, value)` pairs.
    pub(crate) meta: Vec<(String, String)>,
    /// `count(*)` of `bundle_types`.
    pub(crate) rows: i64,
}

/// Reads [`OpenState`]. Fails with `SqlFailure::Other` when a table does not exist
/// (a new file) or a record cannot be read; [`read_applied`] and
/// `connection::is_wal` then decide.
pub(crate) async fn read_open_state(conn: &mut SqliteConnection) -> Result<OpenState, SqlFailure> {
    let (mode, applied, meta, rows): (String, String, String, i64) = sqlx::query_as(
        "SELECT (SELECT journal_mode FROM pragma_journal_mode), \
                (SELECT json_group_array(json_array(version, success, hex(checksum))) \
                   FROM (SELECT version, success, checksum FROM _sqlx_migrations \
                          ORDER BY version)), \
                (SELECT json_group_array(json_array(key, value)) FROM bundle_meta), \
                (SELECT count(*) FROM bundle_types)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let unreadable = || SqlFailure::Other("unreadable migration records".to_owned());
    let rows_applied: Vec<(i64, i64, String)> =
        serde_json::from_str(&applied).map_err(|_| unreadable())?;
    let applied = rows_applied
        .into_iter()
        .map(|(version, success, checksum)| {
            Ok(AppliedRow {
                version,
                success: success != 0,
                checksum: unhex(&checksum).ok_or_else(unreadable)?,
            })
        })
        .collect::<Result<Vec<_>, SqlFailure>>()?;
    let meta: Vec<(String, String)> = serde_json::from_str(&meta).map_err(|_| unreadable())?;
    Ok(OpenState {
        wal: mode.eq_ignore_ascii_case("wal"),
        applied,
        meta,
        rows,
    })
}

/// Bytes of an upper-case hex text (`hex()`), `None` if it is not one.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// The recorded migrations; none when the table does not exist (a new file).
pub(crate) async fn read_applied(
    conn: &mut SqliteConnection,
) -> Result<Vec<AppliedRow>, SqlFailure> {
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as::<_, AppliedRow>(
        "SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Compares recorded migrations with `migrator`.
pub(crate) fn assess(applied: &[AppliedRow], migrator: &Migrator) -> SchemaState {
    let embedded: BTreeMap<i64, &[u8]> = migrator
        .iter()
        .map(|m| (m.version, m.checksum.as_ref()))
        .collect();
    let supported = embedded.keys().next_back().copied().unwrap_or(0);
    if applied
        .iter()
        .any(|row| !embedded.contains_key(&row.version))
    {
        let found = applied
            .iter()
            .map(|row| row.version)
            .max()
            .unwrap_or(supported);
        return SchemaState::TooNew { found, supported };
    }
    for row in applied {
        if !row.success {
            return SchemaState::Damaged {
                version: row.version,
                message: format!("migration {} is recorded as failed", row.version),
            };
        }
        if embedded.get(&row.version) != Some(&row.checksum.as_slice()) {
            return SchemaState::Damaged {
                version: row.version,
                message: format!(
                    "migration {} was previously applied but has been modified",
                    row.version
                ),
            };
        }
    }
    if embedded.len() == applied.len() {
        SchemaState::UpToDate
    } else {
        SchemaState::Behind
    }
}

/// Applies the pending migrations of `migrator`; returns the versions applied now.
/// The caller holds the lifecycle lock.
pub(crate) async fn run(
    conn: &mut SqliteConnection,
    migrator: &Migrator,
) -> Result<Vec<i64>, OpenFailure> {
    let applied = read_applied(conn).await?;
    match assess(&applied, migrator) {
        SchemaState::UpToDate => return Ok(Vec::new()),
        SchemaState::TooNew { found, supported } => {
            return Err(OpenFailure::TooNew { found, supported })
        }
        SchemaState::Damaged { version, message } => {
            return Err(OpenFailure::Migration { version, message })
        }
        SchemaState::Behind => {}
    }
    let pending: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|version| !applied.iter().any(|row| row.version == *version))
        .collect();
    // `run_direct` instead of `run`: `run` goes through `Acquire`, whose future is not
    // `Send` for every lifetime, which the `async_trait` methods above require (sqlx
    // itself documents `run_direct` as the way around that).
    migrator
        .run_direct(&mut *conn)
        .await
        .map_err(|error| migrate_failure(error, migrator))?;
    Ok(pending)
}

/// Maps a sqlx migration error. Busy and corruption keep their class, so a busy
/// catalog is never "healed".
fn migrate_failure(error: MigrateError, migrator: &Migrator) -> OpenFailure {
    let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match error {
        MigrateError::ExecuteMigration(error, version) => match classify(&error) {
            SqlFailure::Busy => OpenFailure::Sql(SqlFailure::Busy),
            SqlFailure::Corrupt(message) => OpenFailure::Sql(SqlFailure::Corrupt(message)),
            other => OpenFailure::Migration {
                version,
                message: other.to_string(),
            },
        },
        MigrateError::Execute(error) => OpenFailure::Sql(classify(&error)),
        MigrateError::VersionMissing(found) => OpenFailure::TooNew { found, supported },
        MigrateError::VersionMismatch(version) | MigrateError::Dirty(version) => {
            OpenFailure::Migration {
                version,
                message: error.to_string(),
            }
        }
        other => OpenFailure::Sql(SqlFailure::Other(other.to_string())),
    }
}

/// The checks of [`verify_schema`] on an open connection.
pub(crate) async fn check_schema(conn: &mut SqliteConnection) -> Result<SchemaCheck, SqlFailure> {
    let mut problems = Vec::new();
    let applied = read_applied(conn).await?;
    match assess(&applied, &MIGRATOR) {
        SchemaState::UpToDate => {}
        SchemaState::Behind => {
            let missing: Vec<String> = MIGRATOR
                .iter()
                .filter(|m| !applied.iter().any(|row| row.version == m.version))
                .map(|m| m.version.to_string())
                .collect();
            problems.push(format!("migrations not applied: {}", missing.join(", ")));
        }
        SchemaState::TooNew { found, supported } => problems.push(format!(
            "schema version {found} is newer than this binary's {supported}"
        )),
        SchemaState::Damaged { message, .. } => problems.push(message),
    }
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('bundle_types') ORDER BY cid")
            .fetch_all(&mut *conn)
            .await?;
    let mut sorted_actual = columns.clone();
    sorted_actual.sort();
    let mut sorted_expected: Vec<String> = COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    sorted_expected.sort();
    if sorted_actual != sorted_expected {
        problems.push(format!(
            "bundle_types has columns [{}], expected [{}]",
            columns.join(", "),
            COLUMNS.join(", ")
        ));
    }
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bundle_types' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    for index in INDEXES {
        if !indexes.iter().any(|name| name == index) {
            problems.push(format!("index {index} is missing"));
        }
    }
    Ok(SchemaCheck { problems })
}

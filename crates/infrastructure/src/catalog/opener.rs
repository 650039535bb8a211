//! Opening the catalog (spec 10 §4.6–§4.7): the lock-free fast path, creation and
//! migration under the lifecycle lock, and self-healing of a damaged file.
//!
//! An existing, up-to-date catalog in WAL mode opens without the lock. A missing file,
//! a catalog that is behind, not in WAL or damaged is handled under the lifecycle lock
//! (acquired only when this process does not hold it already; the lock is not
//! re-entrant), after checking again, because another process may have done the work
//! while this one waited. Healing moves the damaged file aside instead of deleting it,
//! so it can still be inspected, and reports where it went.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fen_domain::ports::{LifecycleGuard, LifecycleLock, LifecycleLockError, RepoError};
use sqlx::sqlite::SqliteConnection;

use super::connection::{self, Access};
use super::error::{CatalogOpenError, OpenFailure, SqlFailure};
use super::migrate::{self, SchemaState, MIGRATOR};
use super::repository::SqliteExtensionRepository;
use super::{log_warning, CatalogContext};

/// The command recorded in the lock's owner record while the opener holds it.
const LOCK_COMMAND: &str = "fen: create or migrate the extension catalog";

/// Opens catalogs: read-write (creating, migrating and healing as needed) or
/// read-only.
#[derive(Debug)]
pub struct CatalogOpener;

/// A read-write repository and what opening it did.
#[derive(Debug)]
pub struct OpenedCatalog {
    /// The repository, with its connection open.
    pub repository: SqliteExtensionRepository,
    /// Created, migrated, healed.
    pub report: OpenReport,
}

/// What opening the catalog did besides opening it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The file did not exist and was created.
    pub created: bool,
    /// Migrations applied by this open, ascending.
    pub migrated: Vec<i64>,
    /// The file was damaged and was moved aside; a fresh catalog replaced it.
    pub healed: Option<HealedCatalog>,
}

/// A damaged catalog that was moved aside (spec 10 §4.7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealedCatalog {
    /// Where the damaged file went (`_extension_catalog.db.corrupt-<unix seconds>`).
    pub moved_to: PathBuf,
    /// Why it was considered damaged.
    pub cause: String,
}

impl CatalogOpener {
    /// Opens the catalog of `ctx` for reading and writing (spec 10 §4.7): creates or
    /// migrates it under the lifecycle lock when needed and heals a damaged file once.
    /// `CatalogTooNew` and `Busy` are returned as they are, never healed.
    pub async fn open(
        ctx: CatalogContext,
        lock: Arc<dyn LifecycleLock>,
    ) -> Result<OpenedCatalog, CatalogOpenError> {
        let repository = SqliteExtensionRepository::new(ctx, lock);
        let report = repository.open().await?;
        Ok(OpenedCatalog { repository, report })
    }

    /// Opens an existing catalog with SQLite `mode=ro`: never creates, migrates or heals
    /// it, and every write through the repository fails with `LockNotHeld`.
    pub async fn open_read_only(
        ctx: CatalogContext,
    ) -> Result<SqliteExtensionRepository, RepoError> {
        SqliteExtensionRepository::open_read_only(ctx).await
    }
}

/// An open, migrated connection.
pub(crate) struct Opened {
    pub(crate) conn: SqliteConnection,
    pub(crate) created: bool,
    pub(crate) migrated: Vec<i64>,
    /// What the lock-free open read beside the schema state.
    pub(crate) preread: Option<Preread>,
}

/// The guard keys and row count the lock-free open read with the schema state, for
/// the first `guards_and_outline` (valid only while no other statement ran).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Preread {
    pub(crate) meta: Vec<(String, String)>,
    pub(crate) rows: usize,
}

/// A connection, what opening did, and what it read.
pub(crate) type OpenParts = (SqliteConnection, OpenReport, Option<Preread>);

impl Opened {
    fn into_parts(self, healed: Option<HealedCatalog>) -> OpenParts {
        let report = OpenReport {
            created: self.created,
            migrated: self.migrated,
            healed,
        };
        (self.conn, report, self.preread)
    }
}

/// Spec 10 §4.7: open and migrate; on damage, heal once and try again.
pub(crate) async fn open_healing(
    db: &Path,
    lock: &dyn LifecycleLock,
) -> Result<OpenParts, CatalogOpenError> {
    match open_checked(db, lock).await {
        Ok(opened) => Ok(opened.into_parts(None)),
        Err(failure) if failure.is_healable() => heal(db, lock, Recheck::Reopen).await,
        Err(failure) => Err(failure.into()),
    }
}

/// Whether `heal` first checks that the file is still damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recheck {
    /// Open it again under the lock: another process may have healed it meanwhile.
    Reopen,
    /// A statement on an open connection already proved the damage (the open path
    /// would not notice damage in pages it does not read).
    Skip,
}

/// Moves a damaged catalog aside and opens a fresh one, under the lifecycle lock. The
/// caller has closed its own connection to the file.
pub(crate) async fn heal(
    db: &Path,
    lock: &dyn LifecycleLock,
    recheck: Recheck,
) -> Result<OpenParts, CatalogOpenError> {
    // Moving the file aside changes catalog state: only under the lifecycle lock.
    let _guard = acquire_unless_held(lock)
        .await
        .map_err(CatalogOpenError::Lock)?;
    let cause = match recheck {
        Recheck::Reopen => match open_under_lock(db).await {
            Ok(opened) => return Ok(opened.into_parts(None)),
            Err(failure) if failure.is_healable() => failure.to_string(),
            Err(failure) => return Err(failure.into()),
        },
        Recheck::Skip => "a statement found the catalog file damaged".to_owned(),
    };
    let moved_to = move_aside(db).map_err(OpenFailure::Io)?;
    let healed = moved_to.map(|moved_to| {
        log_warning(&format!(
            "the catalog {} was unusable ({cause}); moved it to {} and created a new one",
            db.display(),
            moved_to.display()
        ));
        HealedCatalog { moved_to, cause }
    });
    let opened = open_under_lock(db).await?;
    Ok(opened.into_parts(healed))
}

/// Takes the lifecycle lock unless this process already holds it.
pub(crate) async fn acquire_unless_held(
    lock: &dyn LifecycleLock,
) -> Result<Option<LifecycleGuard>, LifecycleLockError> {
    if lock.is_held() {
        Ok(None)
    } else {
        lock.acquire(LOCK_COMMAND).await.map(Some)
    }
}

/// Spec 10 §4.6: lock-free when the file is up to date, otherwise under the lock.
async fn open_checked(db: &Path, lock: &dyn LifecycleLock) -> Result<Opened, OpenFailure> {
    if db.exists() {
        if let Some((conn, preread)) = open_up_to_date(db).await? {
            return Ok(Opened {
                conn,
                created: false,
                migrated: Vec::new(),
                preread,
            });
        }
    }
    let _guard = acquire_unless_held(lock).await.map_err(OpenFailure::Lock)?;
    open_under_lock(db).await
}

/// The lock-free path: `Some` when the existing file is up to date and in WAL; `None`
/// when it needs the locked path (behind, not WAL, vanished, edited migrations).
async fn open_up_to_date(
    db: &Path,
) -> Result<Option<(SqliteConnection, Option<Preread>)>, OpenFailure> {
    let mut conn = match connection::connect(db, Access::Existing).await {
        Ok(conn) => conn,
        // For example the file vanished since the check: the locked path decides.
        Err(SqlFailure::Other(_)) => return Ok(None),
        Err(failure) => return Err(failure.into()),
    };
    match probe(&mut conn).await {
        Ok((true, SchemaState::UpToDate, preread)) => Ok(Some((conn, preread))),
        Ok((_, SchemaState::TooNew { found, supported }, _)) => {
            connection::close(conn).await;
            Err(OpenFailure::TooNew { found, supported })
        }
        Ok(_) => {
            connection::close(conn).await;
            Ok(None)
        }
        Err(failure) => {
            connection::close(conn).await;
            Err(failure.into())
        }
    }
}

/// Journal mode and schema state of an open catalog, and the [`Preread`]: one
/// statement when the tables exist (every catalog fen created), else the statements of
/// a new file.
async fn probe(
    conn: &mut SqliteConnection,
) -> Result<(bool, SchemaState, Option<Preread>), SqlFailure> {
    match migrate::read_open_state(conn).await {
        Ok(state) => {
            let preread = Preread {
                meta: state.meta,
                rows: usize::try_from(state.rows).unwrap_or(usize::MAX),
            };
            let schema = migrate::assess(&state.applied, &MIGRATOR);
            Ok((state.wal, schema, Some(preread)))
        }
        // A table is missing (or a record unreadable): the separate reads decide.
        Err(SqlFailure::Other(_)) => {
            let applied = migrate::read_applied(conn).await?;
            let wal = connection::is_wal(conn).await?;
            Ok((wal, migrate::assess(&applied, &MIGRATOR), None))
        }
        Err(failure) => Err(failure),
    }
}

/// Creates the file if needed, switches it to WAL and migrates it. The caller holds the
/// lifecycle lock, which is what makes creation and migration safe against other
/// processes (sqlx's migrator takes no cross-process lock of its own).
pub(crate) async fn open_under_lock(db: &Path) -> Result<Opened, OpenFailure> {
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            return Err(OpenFailure::Io(format!(
                "the catalog directory {} does not exist",
                parent.display()
            )));
        }
    }
    let existed = db.exists();
    let mut conn = connection::connect(db, Access::CreateUnderLock).await?;
    match prepare(&mut conn).await {
        Ok(migrated) => Ok(Opened {
            conn,
            created: !existed,
            migrated,
            preread: None,
        }),
        Err(failure) => {
            connection::close(conn).await;
            Err(failure)
        }
    }
}

async fn prepare(conn: &mut SqliteConnection) -> Result<Vec<i64>, OpenFailure> {
    // A catalog from a newer fen is refused before anything touches it.
    let applied = migrate::read_applied(conn).await?;
    if let SchemaState::TooNew { found, supported } = migrate::assess(&applied, &MIGRATOR) {
        return Err(OpenFailure::TooNew { found, supported });
    }
    if !connection::is_wal(conn).await? {
        connection::switch_to_wal(conn).await?;
    }
    migrate::run(conn, &MIGRATOR).await
}

/// Renames the catalog to `<name>.corrupt-<unix seconds>` and deletes its `-wal`,
/// `-shm` and `-journal` side files. `None` when there was no file to move.
fn move_aside(db: &Path) -> Result<Option<PathBuf>, String> {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "catalog".to_owned());
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut target = db.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut attempt = 1;
    while target.exists() {
        target = db.with_file_name(format!("{name}.corrupt-{stamp}-{attempt}"));
        attempt += 1;
    }
    let moved = match std::fs::rename(db, &target) {
        Ok(()) => Some(target),
        Err(error) if error.kind() == ErrorKind::NotFound => None,
        Err(error) => {
            return Err(format!(
                "cannot move the damaged catalog {} aside: {error}",
                db.display()
            ))
        }
    };
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut side = OsString::from(db.as_os_str());
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => {
                return Err(format!(
                    "cannot delete {}: {error}",
                    Path::new(&side).display()
                ))
            }
        }
    }
    Ok(moved)
}

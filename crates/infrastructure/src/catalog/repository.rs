//! `SqliteExtensionRepository`: the catalog adapter behind `ExtensionRepository` and
//! `TypeIndex` (spec 10 §5).
//!
//! One connection per process behind a `tokio::sync::Mutex` (several connections in one
//! process would only contend with each other). The connection opens lazily on first
//! use, or eagerly through [`SqliteExtensionRepository::open`], which reports creation,
//! migration and healing. Readers take no lock and run one statement or one read
//! transaction, i.e. one WAL snapshot (`bulk` says how rows are read). Every write checks first that this process holds the lifecycle lock, then
//! runs as one `BEGIN IMMEDIATE` transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::{
    ExtensionRepository, FileStatsUpdate, GuardInputs, GuardVerdict, InvalidateOutcome,
    LifecycleLock, Loaded, RepoError, SaveReport, TypeEntry,
};
use fen_domain::{CanonicalPath, Extension, ExtensionName};
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::connection::{self, Access};
use super::error::{repo_error, CatalogOpenError, SqlFailure};
use super::migrate::{self, SchemaState, MIGRATOR};
use super::opener::{self, OpenReport, Preread, Recheck};
use super::placement::Placement;
use super::rows::{CatalogRow, FILE_STATS, OUTLINE_COLUMNS, ROW_COLUMNS};
use super::type_index::{self, TypeRow, TYPE_COLUMNS, VISIBLE};
use super::{bulk, load, log_warning, meta, save, CatalogContext};

/// How many times `invalidate_all` retries a busy catalog (each attempt waits up to the
/// 5 s busy timeout).
const INVALIDATE_ATTEMPTS: usize = 3;

/// The SQLite catalog of one repo.
pub struct SqliteExtensionRepository {
    ctx: CatalogContext,
    placement: Placement,
    /// `None` for a read-only repository: every write fails with `LockNotHeld`.
    lock: Option<Arc<dyn LifecycleLock>>,
    conn: Mutex<Option<SqliteConnection>>,
    /// What the open read beside the schema state, kept for the first
    /// `guards_and_outline`; any other use of the connection drops it, so it is only
    /// ever used when no statement of this process ran after it.
    preread: std::sync::Mutex<Option<Preread>>,
}

impl std::fmt::Debug for SqliteExtensionRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteExtensionRepository")
            .field("db_path", &self.ctx.db_path)
            .field("read_only", &self.lock.is_none())
            .finish()
    }
}

/// Largest table that `guards_and_outline` reads in one statement: about 300 KB of
/// outline text, built by SQLite and copied once. A chunked read costs a transaction
/// and a round trip per chunk (each a hand-off to sqlx's worker thread).
const ONE_STATEMENT_ROWS: usize = 256;

impl SqliteExtensionRepository {
    /// A read-write repository that opens (creating, migrating or healing the file as
    /// spec 10 §4.6–§4.7 say) on first use. No I/O happens here.
    pub fn new(ctx: CatalogContext, lock: Arc<dyn LifecycleLock>) -> SqliteExtensionRepository {
        SqliteExtensionRepository {
            placement: Placement::new(&ctx),
            ctx,
            lock: Some(lock),
            conn: Mutex::new(None),
            preread: std::sync::Mutex::new(None),
        }
    }

    /// A repository over an existing catalog opened with SQLite `mode=ro`. It never
    /// creates, migrates or heals the file; a catalog that is behind is a `Storage`
    /// error, one that is too new `CatalogTooNew`.
    pub async fn open_read_only(
        ctx: CatalogContext,
    ) -> Result<SqliteExtensionRepository, RepoError> {
        if !ctx.db_path.exists() {
            return Err(RepoError::Storage(format!(
                "no catalog at {}",
                ctx.db_path.display()
            )));
        }
        let mut conn = connection::connect(&ctx.db_path, Access::ReadOnly).await?;
        let state = migrate::read_applied(&mut conn)
            .await
            .map(|applied| migrate::assess(&applied, &MIGRATOR));
        let refusal = match state {
            Ok(SchemaState::UpToDate) => None,
            Ok(SchemaState::TooNew { found, supported }) => {
                Some(RepoError::CatalogTooNew { found, supported })
            }
            Ok(SchemaState::Behind | SchemaState::Damaged { .. }) => {
                Some(RepoError::Storage(format!(
                    "the catalog {} is not at the current schema; open it read-write to migrate it",
                    ctx.db_path.display()
                )))
            }
            Err(failure) => Some(failure.into()),
        };
        if let Some(error) = refusal {
            connection::close(conn).await;
            return Err(error);
        }
        Ok(SqliteExtensionRepository {
            placement: Placement::new(&ctx),
            ctx,
            lock: None,
            conn: Mutex::new(Some(conn)),
            preread: std::sync::Mutex::new(None),
        })
    }

    /// Opens the connection now (no-op when open) and reports what opening did.
    pub async fn open(&self) -> Result<OpenReport, CatalogOpenError> {
        let mut slot = self.conn.lock().await;
        if slot.is_some() {
            return Ok(OpenReport::default());
        }
        let Some(lock) = &self.lock else {
            return Err(CatalogOpenError::Repo(RepoError::Storage(
                "the read-only catalog connection is closed".to_owned(),
            )));
        };
        let (conn, report, preread) =
            opener::open_healing(&self.ctx.db_path, lock.as_ref()).await?;
        *slot = Some(conn);
        self.set_preread(preread);
        Ok(report)
    }

    /// The context this repository was built from.
    pub fn context(&self) -> &CatalogContext {
        &self.ctx
    }

    /// Closes the connection; the next call opens it again.
    pub async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            connection::close(conn).await;
        }
    }

    /// SQLite's `total_changes()` of this connection: rows written since it opened.
    #[cfg(test)]
    pub(crate) async fn total_changes(&self) -> i64 {
        let mut conn = self.connection().await.expect("the test catalog opens");
        sqlx::query_scalar("SELECT total_changes()")
            .fetch_one(&mut *conn)
            .await
            .expect("total_changes() is always available")
    }

    /// P0 of every write (spec 10 §5.7): this process holds the lifecycle lock.
    fn check_lock(&self) -> Result<(), RepoError> {
        match &self.lock {
            Some(lock) if lock.is_held() => Ok(()),
            _ => Err(RepoError::LockNotHeld),
        }
    }

    /// The open connection, opening it first if needed.
    async fn connection(&self) -> Result<MappedMutexGuard<'_, SqliteConnection>, RepoError> {
        let mut slot = self.conn.lock().await;
        self.set_preread(None);
        if slot.is_none() {
            let Some(lock) = &self.lock else {
                return Err(RepoError::Storage(
                    "the read-only catalog connection is closed".to_owned(),
                ));
            };
            let (conn, report, _) = opener::open_healing(&self.ctx.db_path, lock.as_ref())
                .await
                .map_err(CatalogOpenError::into_repo_error)?;
            if let Some(healed) = report.healed {
                log_warning(&format!(
                    "the catalog was damaged and moved to {}",
                    healed.moved_to.display()
                ));
            }
            *slot = Some(conn);
        }
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| RepoError::Storage("the catalog connection is not open".to_owned()))
    }

    /// The aggregates of the rows matching `condition` (all rows for `None`), read in
    /// one read transaction (one snapshot).
    /// `columns` is [`ROW_COLUMNS`] or [`OUTLINE_COLUMNS`].
    async fn load(
        &self,
        columns: [&str; 16],
        condition: Option<&str>,
        binds: &[&str],
    ) -> Result<Loaded, RepoError> {
        self.load_in(columns, condition, binds, false).await
    }

    /// [`load`](Self::load), in one statement when `one_statement` (a table known to
    /// be small: one round trip to sqlx's worker thread instead of a transaction and
    /// its chunks; one statement is one snapshot too).
    async fn load_in(
        &self,
        columns: [&str; 16],
        condition: Option<&str>,
        binds: &[&str],
        one_statement: bool,
    ) -> Result<Loaded, RepoError> {
        let mut assembler = load::Assembler::new(&self.placement);
        let mut conn = self.connection().await?;
        let add = |_: i64, fields: [&str; 16]| assembler.add(CatalogRow::from_fields(fields));
        if one_statement {
            bulk::fetch_packed(&mut conn, columns, condition, binds, add).await?;
        } else {
            bulk::fetch_chunked(&mut conn, columns, condition, binds, add).await?;
        }
        drop(conn);
        Ok(assembler.finish())
    }

    fn set_preread(&self, preread: Option<Preread>) {
        if let Ok(mut slot) = self.preread.lock() {
            *slot = preread;
        }
    }

    /// What the open read, if no statement ran since (taken: used once).
    fn take_preread(&self) -> Option<Preread> {
        self.preread.lock().ok().and_then(|mut slot| slot.take())
    }

    /// The stored guard keys and the number of rows, in one statement; none when the
    /// open read them and nothing ran since.
    async fn meta_and_rows(&self) -> Result<(BTreeMap<String, String>, usize), RepoError> {
        if let Some(preread) = self.take_preread() {
            return Ok((preread.meta.into_iter().collect(), preread.rows));
        }
        let stored: Vec<(String, String)> = {
            let mut conn = self.connection().await?;
            sqlx::query_as(
                "SELECT key, value FROM bundle_meta \
                 UNION ALL SELECT '', CAST(count(*) AS TEXT) FROM bundle_types",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(repo_error)?
        };
        let mut meta: BTreeMap<String, String> = stored.into_iter().collect();
        let rows = meta
            .remove("")
            .and_then(|count| count.parse().ok())
            .unwrap_or(usize::MAX);
        Ok((meta, rows))
    }

    /// The warm outline (see `load_warm_outline`), in one statement when the table
    /// has at most [`ONE_STATEMENT_ROWS`] rows.
    async fn warm_outline(&self, rows: usize) -> Result<Loaded, RepoError> {
        // A pulled row's stat records are read as '': `?1` is the pulled tree's prefix.
        let mut columns = OUTLINE_COLUMNS;
        columns[FILE_STATS] =
            "CASE WHEN substr(source_path, 1, length(?1)) = ?1 THEN '' ELSE file_stats END";
        let prefix = format!("{}/", self.placement.pulled_dir().as_str());
        self.load_in(columns, None, &[&prefix], rows <= ONE_STATEMENT_ROWS)
            .await
    }

    /// Visible rows matching `condition`, ordered by path: in one statement when only
    /// `few` rows can match, else in chunks inside one read transaction.
    pub(super) async fn fetch_types(
        &self,
        condition: &str,
        binds: &[&str],
        few: bool,
    ) -> Result<Vec<TypeEntry>, RepoError> {
        let policy = self.ctx.policy;
        let rows = {
            let mut conn = self.connection().await?;
            let condition = format!("{VISIBLE} AND {condition}");
            let build = |_: i64, fields: [&str; 8]| TypeRow::read(fields, policy);
            if few {
                bulk::fetch_packed(&mut conn, TYPE_COLUMNS, Some(&condition), binds, build).await?
            } else {
                bulk::fetch_chunked(&mut conn, TYPE_COLUMNS, Some(&condition), binds, build).await?
            }
        };
        Ok(type_index::entries(rows))
    }

    /// `DELETE` of the guard keys in one write transaction; classified failures.
    async fn delete_guard_keys(&self) -> Result<(), SqlFailure> {
        let mut conn = self.connection().await.map_err(|error| match error {
            RepoError::Busy => SqlFailure::Busy,
            RepoError::Corrupt(message) => SqlFailure::Corrupt(message),
            other => SqlFailure::Other(other.to_string()),
        })?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let keys = serde_json::to_string(&meta::GUARD_KEYS)
            .map_err(|e| SqlFailure::Other(e.to_string()))?;
        sqlx::query("DELETE FROM bundle_meta WHERE key IN (SELECT value FROM json_each(?1))")
            .bind(keys)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes the connection to a damaged file, then heals it (spec 10 §4.7).
    async fn reset(&self) -> Result<(), CatalogOpenError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.take() {
            connection::close(conn).await;
        }
        let Some(lock) = &self.lock else {
            return Err(CatalogOpenError::Repo(RepoError::LockNotHeld));
        };
        let (conn, _, _) = opener::heal(&self.ctx.db_path, lock.as_ref(), Recheck::Skip).await?;
        self.set_preread(None);
        *slot = Some(conn);
        Ok(())
    }
}

#[async_trait]
impl ExtensionRepository for SqliteExtensionRepository {
    async fn load_all(&self) -> Result<Loaded, RepoError> {
        self.load(ROW_COLUMNS, None, &[]).await
    }

    async fn load_outline(&self) -> Result<Loaded, RepoError> {
        self.load(OUTLINE_COLUMNS, None, &[]).await
    }

    async fn load_warm_outline(&self) -> Result<Loaded, RepoError> {
        self.warm_outline(usize::MAX).await
    }

    async fn guards_and_outline(
        &self,
        expected: &GuardInputs,
    ) -> Result<(GuardVerdict, Option<Loaded>), RepoError> {
        // The row count rides along with the guard keys; it decides whether the
        // outline is one statement or a chunked read.
        let (stored, rows) = self.meta_and_rows().await?;
        match meta::verdict(&stored, expected) {
            GuardVerdict::Fresh => Ok((GuardVerdict::Fresh, Some(self.warm_outline(rows).await?))),
            verdict => Ok((verdict, None)),
        }
    }

    async fn load_by_name(&self, name: &ExtensionName) -> Result<Vec<Extension>, RepoError> {
        let loaded = self
            .load(ROW_COLUMNS, Some("extension_name = ?1"), &[name.as_str()])
            .await?;
        Ok(loaded.extensions)
    }

    async fn save_all(&self, exts: &[Extension]) -> Result<SaveReport, RepoError> {
        // P0, then P1–P5, before any SQL.
        self.check_lock()?;
        save::check_batch(exts, &self.placement)?;
        let mut conn = self.connection().await?;
        save::save_all(&mut conn, exts, &self.placement).await
    }

    async fn invalidation_guards(&self, expected: &GuardInputs) -> Result<GuardVerdict, RepoError> {
        let stored: Vec<(String, String)> = {
            let mut conn = self.connection().await?;
            sqlx::query_as("SELECT key, value FROM bundle_meta")
                .fetch_all(&mut *conn)
                .await
                .map_err(repo_error)?
        };
        Ok(meta::verdict(&stored.into_iter().collect(), expected))
    }

    async fn mark_populated(&self, inputs: &GuardInputs) -> Result<(), RepoError> {
        self.check_lock()?;
        let mut conn = self.connection().await?;
        // One BEGIN IMMEDIATE transaction under the lifecycle lock: the four keys change
        // together or not at all. Unchanged values are not rewritten.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(repo_error)?;
        for (key, value) in meta::populated_values(inputs) {
            sqlx::query(
                "INSERT INTO bundle_meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value \
                 WHERE value <> excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(repo_error)?;
        }
        tx.commit().await.map_err(repo_error)
    }

    async fn record_file_stats(&self, stats: &[FileStatsUpdate]) -> Result<usize, RepoError> {
        self.check_lock()?;
        if stats.is_empty() {
            return Ok(0);
        }
        let mut conn = self.connection().await?;
        // One BEGIN IMMEDIATE transaction under the lifecycle lock. The fingerprint in
        // the WHERE clause keeps a record only beside the fingerprint it was taken for.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(repo_error)?;
        let mut changed = 0;
        for update in stats {
            let result = sqlx::query(
                "UPDATE bundle_types SET file_stats = ?1 \
                 WHERE source_path = ?2 AND fingerprint = ?3 AND file_stats <> ?1",
            )
            .bind(update.stats.0.as_str())
            .bind(update.source.as_str())
            .bind(update.fingerprint.to_string())
            .execute(&mut *tx)
            .await
            .map_err(repo_error)?;
            changed += usize::try_from(result.rows_affected()).unwrap_or(usize::MAX);
        }
        tx.commit().await.map_err(repo_error)?;
        Ok(changed)
    }

    /// `PRAGMA wal_checkpoint(PASSIVE)`: copies the WAL's committed frames into the
    /// database file without waiting for readers. fen leaves a command by
    /// `process::exit`, so SQLite's checkpoint-on-close never runs, and below the
    /// 1 000-page auto-checkpoint a catalog would otherwise live in its WAL; every
    /// later reader would then look pages up in the WAL index (about a third of a warm
    /// search's time on 116 types). Once every frame is backfilled, readers skip the
    /// WAL entirely. Crash safety is SQLite's: a checkpoint interrupted at any point
    /// leaves the WAL authoritative.
    async fn checkpoint(&self) {
        if self.lock.is_none() {
            return;
        }
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *conn)
            .await
        {
            tracing::debug!(%error, "catalog checkpoint skipped");
        }
    }

    async fn prune_retired_rows(&self, paths: &[CanonicalPath]) -> Result<usize, RepoError> {
        self.check_lock()?;
        if paths.is_empty() {
            return Ok(0);
        }
        let mut conn = self.connection().await?;
        // One BEGIN IMMEDIATE transaction under the lifecycle lock. The state filter is
        // in the SQL, so a live row can never be deleted, whatever path is passed.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(repo_error)?;
        let mut deleted = 0;
        for path in paths {
            let result = sqlx::query(
                "DELETE FROM bundle_types WHERE source_path = ?1 \
                 AND state IN ('Tombstoned', 'OrphanedBundleOnly')",
            )
            .bind(path.as_str())
            .execute(&mut *tx)
            .await
            .map_err(repo_error)?;
            deleted += usize::try_from(result.rows_affected()).unwrap_or(usize::MAX);
        }
        tx.commit().await.map_err(repo_error)?;
        Ok(deleted)
    }

    async fn invalidate_all(&self) -> InvalidateOutcome {
        if !self.ctx.db_path.exists() {
            return InvalidateOutcome::NoCatalog;
        }
        let Some(lock) = &self.lock else {
            log_warning("invalidate_all on a read-only catalog does nothing");
            return InvalidateOutcome::Invalidated;
        };
        // Deleting the guard keys is a catalog write: under the lifecycle lock.
        let _guard = match opener::acquire_unless_held(lock.as_ref()).await {
            Ok(guard) => guard,
            Err(error) => {
                log_warning(&format!("cannot invalidate the catalog: {error}"));
                return InvalidateOutcome::Invalidated;
            }
        };
        // An unopened repository opens now; a file that is not a usable catalog is
        // healed by the opener and counts as a reset.
        let opened = self.open().await;
        match opened {
            Ok(report) if report.healed.is_some() => return InvalidateOutcome::Reset,
            Ok(_) => {}
            Err(error) => {
                log_warning(&format!("cannot invalidate the catalog: {error}"));
                return InvalidateOutcome::Invalidated;
            }
        }
        for _ in 0..INVALIDATE_ATTEMPTS {
            match self.delete_guard_keys().await {
                Ok(()) => return InvalidateOutcome::Invalidated,
                Err(SqlFailure::Busy) => continue,
                Err(failure) if failure.is_damage() => {
                    return match self.reset().await {
                        Ok(()) => InvalidateOutcome::Reset,
                        Err(error) => {
                            log_warning(&format!("cannot reset the catalog: {error}"));
                            InvalidateOutcome::Invalidated
                        }
                    };
                }
                Err(failure) => {
                    log_warning(&format!("cannot invalidate the catalog: {failure}"));
                    return InvalidateOutcome::Invalidated;
                }
            }
        }
        log_warning("cannot invalidate the catalog: it stayed busy");
        InvalidateOutcome::Invalidated
    }
}

//! Migrations, opening and self-healing: scenarios 20–22 of spec 10 §8, the too-new
//! refusal and the healing of a corrupt file.

use std::borrow::Cow;
use std::sync::Arc;

use fen_domain::ports::{ExtensionRepository, LifecycleGuard, LifecycleLock, RepoError};
use sqlx::migrate::Migrator;

use super::*;
use crate::catalog::error::CatalogOpenError;
use crate::catalog::migrate::{self, COLUMNS, INDEXES, MIGRATOR};
use crate::catalog::{migrate_with_guard, migration_status, verify_schema};

/// A migrator over the embedded migrations up to `version`.
fn migrator_up_to(version: i64) -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        ),
        ..Migrator::DEFAULT
    }
}

/// Creates a catalog at `version` (in WAL, as the opener would).
async fn catalog_at(db: &Path, version: i64) {
    let mut conn = connection::connect(db, Access::CreateUnderLock)
        .await
        .expect("create");
    connection::switch_to_wal(&mut conn).await.expect("wal");
    migrate::run(&mut conn, &migrator_up_to(version))
        .await
        .expect("partial migration");
    connection::close(conn).await;
}

async fn versions(db: &Path) -> Vec<(i64, bool)> {
    let mut conn = raw(db).await;
    let rows = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .expect("versions");
    connection::close(conn).await;
    rows
}

async fn columns(db: &Path) -> Vec<String> {
    let mut conn = raw(db).await;
    let mut names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('bundle_types')")
            .fetch_all(&mut conn)
            .await
            .expect("columns");
    connection::close(conn).await;
    names.sort();
    names
}

async fn indexes(db: &Path) -> Vec<String> {
    let mut conn = raw(db).await;
    let names = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'bundle_types' \
         AND name LIKE 'idx_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("indexes");
    connection::close(conn).await;
    names
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

fn corrupt_files(fx: &Fixture) -> Vec<PathBuf> {
    std::fs::read_dir(fx.dir.path().join(".fen"))
        .expect("read .fen")
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains(".corrupt-"))
        .collect()
}

#[tokio::test]
async fn scenario_20_a_fresh_open_builds_the_full_schema_in_wal() {
    let fx = Fixture::new();
    let lock: Arc<dyn LifecycleLock> = fx.lock.clone();
    let opened = CatalogOpener::open(fx.ctx(), lock.clone())
        .await
        .expect("open");
    assert!(opened.report.created);
    assert_eq!(opened.report.migrated, vec![1, 2, 3, 4]);
    assert_eq!(opened.report.healed, None);
    assert_eq!(
        fx.lock.acquisitions(),
        1,
        "creation runs under the lifecycle lock"
    );
    assert!(!fx.lock.is_held(), "the opener releases what it took");

    assert_eq!(
        versions(&fx.db()).await,
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
    let mut conn = raw(&fx.db()).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    connection::close(conn).await;
    assert_eq!(mode, "wal");
    let cols = columns(&fx.db()).await;
    assert_eq!(cols, sorted(&COLUMNS));
    assert!(!cols.iter().any(|c| c == "validation_failed"));
    assert_eq!(indexes(&fx.db()).await, sorted(&INDEXES));
    assert!(verify_schema(&fx.db())
        .await
        .expect("verify")
        .problems
        .is_empty());

    // An up-to-date catalog opens without the lock.
    drop(opened);
    let again = CatalogOpener::open(fx.ctx(), lock).await.expect("reopen");
    assert!(!again.report.created);
    assert!(again.report.migrated.is_empty());
    assert_eq!(fx.lock.acquisitions(), 1);
}

#[tokio::test]
async fn scenario_21_upgrade_from_0001_keeps_rows_and_empties_meta() {
    let fx = Fixture::new();
    let db = fx.db();
    catalog_at(&db, 1).await;
    exec(
        &db,
        "INSERT INTO bundle_types (source_path, kind, type_normalized, extends_type, bundle_path, \
           fingerprint, source_mtime, type_version, description, descriptor, validation_failed) \
         VALUES ('/r/extensions/models/bad.ts', 'model', 'a/bad', '', '/r/b/bad.json', 'fb', \
           'm1', '1', 'bad one', '{}', 1), \
                ('/r/extensions/models/good.ts', 'extension', 'a/base', 'a/base', '/r/b/good.json', \
           'fg', 'm2', '2', 'good one', '{\"x\":1}', 0); \
         INSERT INTO bundle_meta (key, value) VALUES ('populated:model', 'true');",
    )
    .await;
    assert_eq!(
        migration_status(&db).await.expect("status").pending,
        vec![2, 3, 4]
    );

    let repo = fx.open().await;
    assert_eq!(
        versions(&db).await,
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
    let mut conn = raw(&db).await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT json_array(source_path, kind, type_normalized, extends_type, bundle_path, \
         fingerprint, source_mtime, type_version, description, descriptor, state, \
         extension_name) FROM bundle_types ORDER BY source_path",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let meta: i64 = sqlx::query_scalar("SELECT count(*) FROM bundle_meta")
        .fetch_one(&mut conn)
        .await
        .expect("meta");
    connection::close(conn).await;
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| serde_json::from_str(row).expect("json"))
        .collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!([
                "/r/extensions/models/bad.ts",
                "model",
                "",
                "",
                "/r/b/bad.json",
                "fb",
                "m1",
                "1",
                "bad one",
                "{}",
                "ValidationFailed",
                ""
            ]),
            serde_json::json!([
                "/r/extensions/models/good.ts",
                "extension",
                "a/base",
                "a/base",
                "/r/b/good.json",
                "fg",
                "m2",
                "2",
                "good one",
                "{\"x\":1}",
                "Indexed",
                ""
            ]),
        ]
    );
    assert_eq!(meta, 0);
    assert_eq!(columns(&db).await, sorted(&COLUMNS));
    assert_eq!(indexes(&db).await, sorted(&INDEXES));
    // The legacy rows have no identity: loading skips them and writes nothing.
    let loaded = repo.load_all().await.expect("load");
    assert!(loaded.extensions.is_empty());
    assert_eq!(loaded.skipped.len(), 2);
}

#[tokio::test]
async fn scenario_22_a_failing_migration_rolls_back_and_keeps_version_2() {
    let fx = Fixture::new();
    let db = fx.db();
    catalog_at(&db, 2).await;
    exec(
        &db,
        "INSERT INTO bundle_types (source_path, kind, state) VALUES ('/r/extensions/models/a.ts', 'model', 'Indexed'); \
         CREATE TABLE bundle_types_next (x TEXT);",
    )
    .await;
    let before = legacy_rows(&db).await;
    let guard = LifecycleGuard::new(());
    let error = migrate_with_guard(&db, &guard)
        .await
        .expect_err("0003 fails");
    assert!(
        matches!(error, RepoError::Migration { version: 3, .. }),
        "{error:?}"
    );
    assert_eq!(versions(&db).await, vec![(1, true), (2, true)]);
    assert!(columns(&db).await.iter().any(|c| c == "validation_failed"));
    assert_eq!(legacy_rows(&db).await, before);
}

/// Rows of a catalog before migration 0003, with the boolean.
async fn legacy_rows(db: &Path) -> Vec<(String, String, String, i64)> {
    let mut conn = raw(db).await;
    let rows = sqlx::query_as(
        "SELECT source_path, kind, state, validation_failed FROM bundle_types ORDER BY source_path",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    connection::close(conn).await;
    rows
}

#[tokio::test]
async fn a_catalog_from_a_newer_fen_is_refused_and_left_untouched() {
    let fx = Fixture::new();
    fx.open().await.close().await;
    exec(
        &fx.db(),
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (5, 'future', 1, x'00', 0)",
    )
    .await;
    let bytes = std::fs::read(fx.db()).expect("bytes");
    let acquisitions = fx.lock.acquisitions();
    let lock: Arc<dyn LifecycleLock> = fx.lock.clone();
    let error = CatalogOpener::open(fx.ctx(), lock)
        .await
        .expect_err("too new");
    assert!(
        matches!(
            error,
            CatalogOpenError::Repo(RepoError::CatalogTooNew {
                found: 5,
                supported: 4
            })
        ),
        "{error:?}"
    );
    assert!(
        std::fs::read(fx.db()).expect("bytes") == bytes,
        "the file changed"
    );
    assert_eq!(
        fx.lock.acquisitions(),
        acquisitions,
        "refused without the lock"
    );
    assert!(corrupt_files(&fx).is_empty());
    assert!(matches!(
        migration_status(&fx.db()).await,
        Err(RepoError::CatalogTooNew { found: 5, .. })
    ));
}

#[tokio::test]
async fn a_corrupt_file_is_moved_aside_and_rebuilt() {
    let fx = Fixture::new();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(fx.db(), &garbage).expect("garbage");
    std::fs::write(
        fx.dir.path().join(".fen/_extension_catalog.db-wal"),
        b"junk",
    )
    .expect("wal");
    let lock: Arc<dyn LifecycleLock> = fx.lock.clone();
    let opened = CatalogOpener::open(fx.ctx(), lock).await.expect("healed");
    let healed = opened.report.healed.clone().expect("healed");
    assert!(
        std::fs::read(&healed.moved_to).expect("kept") == garbage,
        "moved intact"
    );
    assert!(healed
        .moved_to
        .file_name()
        .expect("name")
        .to_string_lossy()
        .starts_with("_extension_catalog.db.corrupt-"));
    assert_eq!(corrupt_files(&fx), vec![healed.moved_to.clone()]);
    assert_eq!(opened.report.migrated, vec![1, 2, 3, 4]);
    assert!(!fx.lock.is_held());
    let loaded = opened.repository.load_all().await.expect("load");
    assert!(loaded.extensions.is_empty());
    assert_eq!(
        versions(&fx.db()).await,
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
}

#[tokio::test]
async fn an_edited_migration_is_healed_by_the_opener() {
    let fx = Fixture::new();
    fx.open().await.close().await;
    exec(
        &fx.db(),
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
    )
    .await;
    let lock: Arc<dyn LifecycleLock> = fx.lock.clone();
    let opened = CatalogOpener::open(fx.ctx(), lock).await.expect("healed");
    let healed = opened.report.healed.expect("healed");
    assert!(healed.cause.contains("migration 2"), "{}", healed.cause);
    assert!(healed.moved_to.exists());
    assert_eq!(
        versions(&fx.db()).await,
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
}

#[tokio::test]
async fn the_opener_needs_the_fen_directory_and_never_creates_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = CanonicalPath::new(dir.path(), PathPolicy::Posix).expect("root");
    let ctx = CatalogContext {
        repo_root: root,
        mounts: Vec::new(),
        policy: PathPolicy::Posix,
        db_path: dir.path().join(".fen/_extension_catalog.db"),
    };
    let lock: Arc<dyn LifecycleLock> = TestLock::new();
    let error = CatalogOpener::open(ctx, lock).await.expect_err("no .fen");
    assert!(
        matches!(error, CatalogOpenError::Repo(RepoError::Storage(_))),
        "{error:?}"
    );
    assert!(!dir.path().join(".fen").exists());
}

#[tokio::test]
async fn migrate_with_guard_applies_pending_versions_once() {
    let fx = Fixture::new();
    let guard = LifecycleGuard::new(());
    assert_eq!(
        migrate_with_guard(&fx.db(), &guard).await.expect("migrate"),
        vec![1, 2, 3, 4]
    );
    assert!(migrate_with_guard(&fx.db(), &guard)
        .await
        .expect("again")
        .is_empty());
    let status = migration_status(&fx.db()).await.expect("status");
    assert_eq!(status.applied, vec![1, 2, 3, 4]);
    assert!(status.pending.is_empty());
}

#[tokio::test]
async fn upgrade_from_0003_moves_the_descriptor_last_and_keeps_rows_and_meta() {
    let fx = Fixture::new();
    let db = fx.db();
    catalog_at(&db, 3).await;
    exec(
        &db,
        "INSERT INTO bundle_types (source_path, kind, type_normalized, bundle_path, \
           fingerprint, type_version, description, descriptor, state, extension_name, \
           extension_version, file_stats) \
         VALUES ('/r/extensions/models/a.ts', 'model', 'a/t', '/r/b/a.json', 'fa', '1', \
           'one', '{\"type\":\"A/T\"}', 'Indexed', 'local', 'local', 'stats-a'), \
                ('/r/extensions/models/b.ts', 'model', '', '', 'fb', '', '', '', \
           'BundleBuildFailed', 'local', 'local', ''); \
         INSERT INTO bundle_meta (key, value) VALUES ('populated', 'true');",
    )
    .await;
    let before = dump(&db).await;
    assert_eq!(
        migration_status(&db).await.expect("status").pending,
        vec![4]
    );
    let _repo = fx.open().await;
    assert_eq!(
        versions(&db).await,
        vec![(1, true), (2, true), (3, true), (4, true)]
    );
    assert_eq!(dump(&db).await, before, "rows and meta are kept");
    let mut conn = raw(&db).await;
    let order: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info('bundle_types') ORDER BY cid")
            .fetch_all(&mut conn)
            .await
            .expect("columns");
    connection::close(conn).await;
    assert_eq!(order.last().map(String::as_str), Some("descriptor"));
    assert_eq!(indexes(&db).await, sorted(&INDEXES));
    assert!(verify_schema(&db)
        .await
        .expect("verify")
        .problems
        .is_empty());
}

/// The opener's one-statement probe reads what the separate statements read (and the
/// guard keys and row count), and fails on a file without the tables (where the
/// separate reads take over).
#[tokio::test]
async fn the_one_statement_probe_matches_the_separate_reads() {
    let fx = Fixture::new();
    let db = fx.db();
    for version in [1, MIGRATOR.iter().map(|m| m.version).max().unwrap_or(1)] {
        let _ = std::fs::remove_file(&db);
        catalog_at(&db, version).await;
        let mut conn = raw(&db).await;
        let state = migrate::read_open_state(&mut conn)
            .await
            .expect("one statement");
        assert!(state.wal);
        assert_eq!(
            state.applied,
            migrate::read_applied(&mut conn)
                .await
                .expect("read applied")
        );
        assert_eq!(state.applied.len(), usize::try_from(version).unwrap_or(0));
        assert_eq!((state.meta, state.rows), (Vec::new(), 0));
        connection::close(conn).await;
    }

    let fresh = fx.root.as_str().to_owned() + "/fresh.db";
    let mut conn = connection::connect(Path::new(&fresh), Access::CreateUnderLock)
        .await
        .expect("create");
    assert!(matches!(
        migrate::read_open_state(&mut conn).await,
        Err(crate::catalog::error::SqlFailure::Other(_))
    ));
    connection::close(conn).await;
}

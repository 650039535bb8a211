//! Catalog tests: spec 10 §8 scenarios 20–22, 24–30, 32, 41, 46 and the repository's
//! own edge cases. Every test opens a fresh SQLite file in its own temp dir and runs the
//! real migrations; the lifecycle lock is an in-process double.

mod bulk;
mod guards;
mod load;
mod migrations;
mod outline;
mod save;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::{LifecycleGuard, LifecycleLock, LifecycleLockError};
use fen_domain::{
    BundleLocation, CanonicalPath, Extension, ExtensionId, ExtensionName, ExtensionOrigin,
    ExtensionVersion, Kind, Observation, Origin, PathPolicy, SourceFingerprint, SourceLocation,
    TypeMeta, TypeName,
};
use sqlx::sqlite::SqliteConnection;
use tempfile::TempDir;

use super::connection::{self, Access};
use super::{CatalogContext, CatalogOpener, SqliteExtensionRepository};

/// A lifecycle lock double: an in-process flag that counts acquisitions.
pub(super) struct TestLock {
    held: Arc<AtomicBool>,
    acquisitions: AtomicUsize,
}

struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl TestLock {
    pub(super) fn new() -> Arc<TestLock> {
        Arc::new(TestLock {
            held: Arc::new(AtomicBool::new(false)),
            acquisitions: AtomicUsize::new(0),
        })
    }

    /// Takes the lock synchronously (the test is the holder).
    pub(super) fn hold(&self) -> LifecycleGuard {
        assert!(!self.held.swap(true, Ordering::SeqCst), "lock already held");
        LifecycleGuard::new(Release(Arc::clone(&self.held)))
    }

    /// How many times `acquire` succeeded.
    pub(super) fn acquisitions(&self) -> usize {
        self.acquisitions.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl LifecycleLock for TestLock {
    async fn acquire(&self, _command: &str) -> Result<LifecycleGuard, LifecycleLockError> {
        if self.held.swap(true, Ordering::SeqCst) {
            return Err(LifecycleLockError::AlreadyHeld);
        }
        self.acquisitions.fetch_add(1, Ordering::SeqCst);
        Ok(LifecycleGuard::new(Release(Arc::clone(&self.held))))
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

/// A temp repo with `.fen/` and no catalog yet.
pub(super) struct Fixture {
    pub(super) dir: TempDir,
    pub(super) root: CanonicalPath,
    pub(super) lock: Arc<TestLock>,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join(".fen")).expect(".fen");
        let root = CanonicalPath::new(dir.path(), PathPolicy::Posix).expect("absolute temp dir");
        Fixture {
            dir,
            root,
            lock: TestLock::new(),
        }
    }

    pub(super) fn db(&self) -> PathBuf {
        self.dir.path().join(".fen/_extension_catalog.db")
    }

    pub(super) fn ctx(&self) -> CatalogContext {
        self.ctx_with(self.root.clone(), Vec::new(), self.db())
    }

    pub(super) fn ctx_with(
        &self,
        repo_root: CanonicalPath,
        mounts: Vec<CanonicalPath>,
        db_path: PathBuf,
    ) -> CatalogContext {
        CatalogContext {
            repo_root,
            mounts,
            policy: PathPolicy::Posix,
            db_path,
        }
    }

    /// Opens (creating) the catalog of [`Fixture::ctx`].
    pub(super) async fn open(&self) -> SqliteExtensionRepository {
        self.open_ctx(self.ctx()).await
    }

    pub(super) async fn open_ctx(&self, ctx: CatalogContext) -> SqliteExtensionRepository {
        let lock: Arc<dyn LifecycleLock> = self.lock.clone();
        CatalogOpener::open(ctx, lock)
            .await
            .expect("the catalog opens")
            .repository
    }

    /// `<root>/<relative>`.
    pub(super) fn path(&self, relative: &str) -> CanonicalPath {
        self.root.join(relative)
    }

    /// Creates a file at `<root>/<relative>` (for ghost detection).
    pub(super) fn touch(&self, relative: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, "export const model = {};").expect("write");
    }
}

pub(super) fn cp(text: &str) -> CanonicalPath {
    CanonicalPath::from_text(text, PathPolicy::Posix).expect("absolute")
}

pub(super) fn fp(n: u8) -> SourceFingerprint {
    SourceFingerprint::Content([n; 32])
}

pub(super) fn ty(text: &str) -> TypeName {
    TypeName::parse(text).expect("type name")
}

pub(super) fn pulled(root: &CanonicalPath, name: &str, version: &str) -> Extension {
    let name = ExtensionName::parse(name).expect("name");
    let ext_root = root
        .join(".fen/pulled-extensions")
        .join(&name.directory_key());
    Extension::new(
        ExtensionId::new(name, ExtensionVersion::parse(version).expect("version")),
        ExtensionOrigin::Pulled,
        ext_root,
        Vec::new(),
    )
    .expect("empty pulled aggregate")
}

/// An observation of `path` for `ext` with fingerprint `fp(n)`.
pub(super) fn observe(ext: &Extension, path: &CanonicalPath, kind: Kind, n: u8) -> Observation {
    let origin = match ext.origin() {
        ExtensionOrigin::Pulled => Origin::Pulled,
        ExtensionOrigin::Local if path.starts_under(&ext.root().join("extensions")) => {
            Origin::Local
        }
        ExtensionOrigin::Local => Origin::SourceMounted,
    };
    Observation {
        location: SourceLocation::from_canonical(path.clone(), ext.root().clone()),
        kind,
        origin,
        fingerprint: fp(n),
        mtime: Some("2026-01-01T00:00:00.000Z".to_owned()),
    }
}

pub(super) fn bundle(path: &CanonicalPath, n: u8) -> BundleLocation {
    BundleLocation {
        path: cp(&format!("{path}.bundle.json")),
        fingerprint: fp(n),
    }
}

/// `ext` with `path` indexed as `(kind, type)` from content `n`.
pub(super) fn index(
    ext: &Extension,
    path: &CanonicalPath,
    kind: Kind,
    type_name: &str,
    n: u8,
) -> Extension {
    let obs = observe(ext, path, kind, n);
    let meta = TypeMeta {
        declared_version: "1".to_owned(),
        description: format!("type {type_name}"),
        descriptor: format!("{{\"type\":\"{type_name}\"}}"),
    };
    ext.observe_fresh_source(&obs, ty(type_name), bundle(path, n))
        .and_then(|e| e.record_indexed(path, meta))
        .expect("indexing transitions")
}

/// A raw connection to a catalog file, beside the repository's own.
pub(super) async fn raw(db: &Path) -> SqliteConnection {
    connection::connect(db, Access::Existing)
        .await
        .expect("raw connection")
}

/// Runs one statement on a fresh raw connection.
pub(super) async fn exec(db: &Path, sql: &str) {
    let mut conn = raw(db).await;
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    connection::close(conn).await;
}

/// The whole content of a catalog, one line per row, for equality checks.
pub(super) async fn dump(db: &Path) -> Vec<String> {
    let mut conn = raw(db).await;
    let mut lines: Vec<String> = sqlx::query_scalar(
        "SELECT json_array(source_path, kind, type_normalized, extends_type, bundle_path, \
         fingerprint, source_mtime, type_version, description, descriptor, state, state_detail, \
         extension_name, extension_version, superseded_by, file_stats) \
         FROM bundle_types ORDER BY source_path",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let meta: Vec<String> =
        sqlx::query_scalar("SELECT json_array('meta', key, value) FROM bundle_meta ORDER BY key")
            .fetch_all(&mut conn)
            .await
            .expect("meta");
    lines.extend(meta);
    connection::close(conn).await;
    lines
}

/// One column of one row.
pub(super) async fn column(db: &Path, path: &CanonicalPath, column: &str) -> Option<String> {
    let mut conn = raw(db).await;
    let value = sqlx::query_scalar(&format!(
        "SELECT {column} FROM bundle_types WHERE source_path = ?1"
    ))
    .bind(path.as_str())
    .fetch_optional(&mut conn)
    .await
    .expect("column");
    connection::close(conn).await;
    value
}

/// Inserts a row with the given columns (others default).
pub(super) async fn insert_row(db: &Path, columns: &[(&str, &str)]) {
    let mut conn = raw(db).await;
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let sql = format!(
        "INSERT INTO bundle_types ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for (_, value) in columns {
        query = query.bind(*value);
    }
    query.execute(&mut conn).await.expect("insert row");
    connection::close(conn).await;
}

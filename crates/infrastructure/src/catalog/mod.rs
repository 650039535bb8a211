//! The SQLite catalog (spec 10 §4–§5): connection, migrations, self-healing and
//! `SqliteExtensionRepository`, which implements `ExtensionRepository` and `TypeIndex`.
//!
//! One file per repo, `.fen/_extension_catalog.db`, a derived cache that can always be
//! rebuilt from the disk and the lockfile. Crash safety rests on three things, named at
//! every write below:
//!
//! - the **lifecycle lock** (spec 20 §8.1): every mutation, including creation,
//!   migration and self-healing, happens while this process holds it, so writers are
//!   serialised across processes; a write without it fails with `LockNotHeld`;
//! - **`BEGIN IMMEDIATE`** write transactions: each write call is one SQLite
//!   transaction, so a crash or an error leaves the catalog exactly as before;
//! - **WAL**: lock-free readers see one consistent snapshot of committed data.
//!
//! Public surface: [`CatalogContext`], [`CatalogOpener`] (read-write with creation,
//! migration and healing, or read-only), [`SqliteExtensionRepository`], the
//! migration helpers used by `cargo xtask migrate` ([`migration_status`],
//! [`migrate_with_guard`], [`verify_schema`]) and [`source_dirs_fingerprint`]. No sqlx
//! type appears in these signatures.

mod bulk;
mod connection;
mod error;
mod load;
mod meta;
mod migrate;
mod opener;
mod placement;
mod repository;
mod rows;
mod save;
mod type_index;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use fen_domain::layout::CATALOG_FILE;
use fen_domain::{CanonicalPath, PathPolicy, RepoRoot};

pub use error::CatalogOpenError;
pub use meta::source_dirs_fingerprint;
pub use migrate::{
    embedded_versions, migrate_with_guard, migration_status, verify_schema, MigrationStatus,
    SchemaCheck,
};
pub use opener::{CatalogOpener, HealedCatalog, OpenReport, OpenedCatalog};
pub use repository::SqliteExtensionRepository;

/// What the catalog adapter needs to know about the repo: where rows may live and where
/// the file is. Built once per process by the composition root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogContext {
    /// The canonical repo root; rows outside it and the mounts are unreachable.
    pub repo_root: CanonicalPath,
    /// The configured source mounts (canonical, spec 10 §1.12).
    pub mounts: Vec<CanonicalPath>,
    /// How paths are canonicalised on this host.
    pub policy: PathPolicy,
    /// The catalog file, normally `<repo>/.fen/_extension_catalog.db`.
    pub db_path: PathBuf,
}

impl CatalogContext {
    /// The context of a repo with its catalog at the standard place.
    pub fn for_repo(
        root: &RepoRoot,
        mounts: Vec<CanonicalPath>,
        policy: PathPolicy,
    ) -> CatalogContext {
        CatalogContext {
            repo_root: root.canonical.clone(),
            mounts,
            policy,
            db_path: root.native.join(CATALOG_FILE),
        }
    }
}

/// Writes one diagnostic line through `tracing` (shown with `FEN_LOG=warn` or lower,
/// spec 20 §15.2). Callers that must show a message (a healed catalog) also return it in
/// their result.
fn log_warning(message: &str) {
    tracing::warn!("{message}");
}

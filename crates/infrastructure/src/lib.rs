//! fen-infrastructure: the adapters behind the fen-domain ports.
//!
//! One module per adapter: `catalog` (sqlx SQLite, `SqliteExtensionRepository`,
//! migrations in the crate-level `migrations/`), `locking` (the lifecycle lock) and
//! `sources` (repo-root discovery, walking, fingerprints), `datastore` (the local data
//! store and datastore locks), `models` (model definitions, argument schemas), plus
//! `faults` (test-only fault points), `random` and `time` (timestamps). SQL, file locks and atomic renames live here
//! and nowhere else; errors are classified into domain variants at this boundary.

pub mod archive;
pub mod bundler;
pub mod catalog;
pub mod datastore;
pub mod faults;
pub mod indexer;
pub mod lockfile;
pub mod locking;
pub mod models;
pub mod random;
pub mod registry;
pub mod runtime;
pub mod sources;
pub mod time;
pub mod trees;

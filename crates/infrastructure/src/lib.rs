//! fen-infrastructure: the adapters behind the fen-domain ports.
//!
//! One module per adapter: `catalog` (sqlx SQLite, `SqliteExtensionRepository`,
//! migrations in the crate-level `migrations/`), `locking` (the lifecycle lock) and
//! `sources` (repo-root discovery, walking, fingerprints), `datastore` (the local data
//! store and datastore locks), `models` (model definitions, argument schemas), plus
//! `faults` (test-only fault points), `random` and `time` (timestamps). SQL, file locks and atomic renames live here
//! and nowhere else; errors are classified into domain variants at this boundary.
//!
//! `examples/catalog_roundtrip.rs` opens a real catalog in a temp directory, saves and
//! loads aggregates and lists types: `cargo run -p fen-infrastructure --example
//! catalog_roundtrip`. The smallest use is asking what the build embeds:
//!
//! ```
//! use fen_infrastructure::catalog::embedded_versions;
//!
//! // The catalog schema versions this build creates and migrates to, ascending; the
//! // last one is what `fen --version` reports as the catalog schema.
//! let versions = embedded_versions();
//! assert!(!versions.is_empty());
//! assert!(versions.windows(2).all(|pair| pair[0] < pair[1]));
//! ```

#![deny(missing_docs)]

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

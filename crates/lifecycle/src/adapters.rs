//! The ports a service needs, bundled once by the composition root.

use std::path::PathBuf;
use std::sync::Arc;

use fen_domain::ports::{
    BundleIndexer, BundleStore, Clock, ExtensionRepository, ExtensionTrees, FaultPoints,
    LifecycleLock, LockfileReader, LockfileStore, SourceScanner, TypeIndex,
};
use fen_domain::{CanonicalPath, ExtensionName};

use crate::stats::Stats;

/// Makes one `SourceScanner` per pass: a scanner owns its pass's freshness cache, so
/// the commit step's re-check must use a fresh one to see the disk as it is now.
pub trait ScannerFactory: Send + Sync {
    /// A scanner for a new pass.
    fn new_pass(&self) -> Arc<dyn SourceScanner>;
}

/// Where things are in the repo.
#[derive(Clone, Debug)]
pub struct RepoLayout {
    /// The repo root (native, lexical).
    pub root_native: PathBuf,
    /// The repo root (canonical).
    pub root: CanonicalPath,
    /// `.fen/bundles` (canonical).
    pub bundles_dir: CanonicalPath,
    /// `.fen/scratch` (native).
    pub scratch_dir: PathBuf,
}

impl RepoLayout {
    /// The extension root of a pulled name: `.fen/pulled-extensions/<key>`.
    pub fn pulled_root(&self, name: &ExtensionName) -> CanonicalPath {
        self.root
            .join(fen_domain::layout::PULLED_DIR)
            .join(&name.directory_key())
    }
}

/// Every adapter the services use.
#[derive(Clone)]
pub struct Adapters {
    /// The catalog's write side.
    pub repo: Arc<dyn ExtensionRepository>,
    /// The catalog's lock-free read side.
    pub types: Arc<dyn TypeIndex>,
    /// The process's one lifecycle lock.
    pub lock: Arc<dyn LifecycleLock>,
    /// Source walking and fingerprints, one scanner per pass.
    pub scanners: Arc<dyn ScannerFactory>,
    /// Builds and validates bundles.
    pub indexer: Arc<dyn BundleIndexer>,
    /// Files under `.fen/bundles/`.
    pub store: Arc<dyn BundleStore>,
    /// The lockfile (the loader's snapshot).
    pub lockfile: Arc<dyn LockfileReader>,
    /// The lockfile as a whole document, for lifecycle writers.
    pub lockfile_store: Arc<dyn LockfileStore>,
    /// Staging, transactions and owned roots on disk.
    pub trees: Arc<dyn ExtensionTrees>,
    /// `FEN_TEST_FAULT` points.
    pub faults: Arc<dyn FaultPoints>,
    /// Wall-clock readings.
    pub clock: Arc<dyn Clock>,
    /// Paths.
    pub layout: RepoLayout,
    /// Counters for `--stats`.
    pub stats: Arc<Stats>,
    /// The command line, for the lock's owner record.
    pub command: String,
}

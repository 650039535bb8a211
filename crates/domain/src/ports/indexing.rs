//! `SourceScanner`, `BundleIndexer` and `BundleStore`: walking and fingerprinting
//! sources, building and validating bundles, and the files under `.fen/bundles/`
//! (spec 10 §6.4).

use std::path::PathBuf;

use async_trait::async_trait;

use crate::fingerprint::SourceFingerprint;
use crate::kind::{Kind, LoaderKind};
use crate::location::{BundleLocation, SourceLocation};
use crate::path::CanonicalPath;
use crate::row_state::TypeMeta;
use crate::source::Origin;
use crate::type_name::TypeName;

/// One entry point to index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPoint {
    /// Its final location.
    pub location: SourceLocation,
    /// Its origin.
    pub origin: Origin,
    /// The loader kind of its kind directory.
    pub loader_kind: LoaderKind,
    /// Where to read it from (differs from the location only while installing).
    pub read_path: PathBuf,
    /// Where new bundles are written before they are published.
    pub scratch_dir: PathBuf,
}

/// A bundle written to scratch, waiting to be published to its final location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedBundle {
    /// The scratch file.
    pub scratch_file: PathBuf,
    /// Where it goes.
    pub target: BundleLocation,
}

/// Whether an existing usable bundle may be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Reuse a bundle that is usable for the current fingerprint.
    IfUsable,
    /// Always rebuild (`Rebuild::All`).
    Never,
}

/// A successful index of one entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexOutcome {
    /// Built (or reused) and validated.
    Indexed {
        /// The declared kind.
        kind: Kind,
        /// The declared type.
        type_name: TypeName,
        /// The final bundle location.
        bundle: BundleLocation,
        /// What listing needs.
        meta: TypeMeta,
        /// True when an existing bundle was reused.
        reused: bool,
        /// The new bundle to publish, if one was built.
        staged: Option<StagedBundle>,
    },
}

/// An entry point that did not index.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The file no longer exports a kind key.
    #[error("not an entry point")]
    NotAnEntryPoint,
    /// The entry cannot be read.
    #[error("entry point unreadable: {0}")]
    EntryUnreadable(String),
    /// The build failed.
    #[error("bundle build failed: {0}")]
    Build(String),
    /// The export was rejected.
    #[error("validation failed: {message}")]
    Validation {
        /// The bundle that was evaluated.
        bundle: BundleLocation,
        /// The new bundle to publish, if one was built.
        staged: Option<StagedBundle>,
        /// Why.
        message: String,
    },
}

/// A failure of the bundle store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bundle store: {0}")]
pub struct BundleStoreError(pub String);

/// Builds (or reuses) a bundle, evaluates it in the sandbox and validates the export.
/// Never writes the catalog.
#[async_trait]
pub trait BundleIndexer: Send + Sync {
    /// Indexes one entry point against the fingerprint the caller observed.
    async fn index_one(
        &self,
        entry: &EntryPoint,
        disk_fp: &SourceFingerprint,
        reuse: Reuse,
    ) -> Result<IndexOutcome, IndexError>;
}

/// Files under `.fen/bundles/`. Writes need the lifecycle lock.
#[async_trait]
pub trait BundleStore: Send + Sync {
    /// The file exists and was built for this fingerprint and layout.
    async fn is_usable(&self, bundle: &BundleLocation) -> bool;
    /// Moves a staged bundle into place with an atomic rename.
    async fn publish(&self, staged: &StagedBundle) -> Result<(), BundleStoreError>;
    /// Deletes a bundle; a missing file counts as done.
    async fn evict(&self, path: &CanonicalPath) -> Result<(), BundleStoreError>;
    /// Every `*.bundle.json`.
    async fn list(&self) -> Result<Vec<CanonicalPath>, BundleStoreError>;
    /// Deletes the whole tree (layout change).
    async fn clear(&self) -> Result<(), BundleStoreError>;
}

/// A discovered candidate entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedEntry {
    /// Where it is.
    pub location: SourceLocation,
    /// Its origin.
    pub origin: Origin,
    /// Its loader kind.
    pub loader_kind: LoaderKind,
    /// The native path to read.
    pub native_path: PathBuf,
    /// False for a dangling symlink or an unreadable file.
    pub readable: bool,
}

/// Walks scan roots, fingerprints entries and probes existence. One value lives for
/// one pass and owns that pass's freshness cache.
#[async_trait]
pub trait SourceScanner: Send + Sync {
    /// Entry points of the local and mounted scan roots of one loader kind.
    async fn scan_local(&self, loader_kind: LoaderKind) -> Vec<ScannedEntry>;
    /// Entry points of one pulled extension root.
    async fn scan_pulled(&self, root: &CanonicalPath, loader_kind: LoaderKind)
        -> Vec<ScannedEntry>;
    /// The fingerprint of an entry and its transitive local imports; never fails.
    async fn fingerprint(&self, entry: &ScannedEntry) -> SourceFingerprint;
    /// True if a file exists at the path.
    async fn exists(&self, path: &CanonicalPath) -> bool;
}

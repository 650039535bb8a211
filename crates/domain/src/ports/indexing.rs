//! `SourceScanner`, `BundleIndexer` and `BundleStore`: walking and fingerprinting
//! sources, building and validating bundles, and the files under `.fen/bundles/`
//! (spec 10 §6.4).

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;

use crate::fingerprint::SourceFingerprint;
use crate::kind::{Kind, LoaderKind};
use crate::location::{BundleLocation, SourceLocation};
use crate::name::ExtensionName;
use crate::path::CanonicalPath;
use crate::ports::repository::FileStats;
use crate::row_state::TypeMeta;
use crate::source::Origin;
use crate::type_name::TypeName;

/// One entry point to index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPoint {
    /// Its final location.
    pub location: SourceLocation,
    /// The scan root it belongs to (origin, loader kind, boundary, bundle prefix).
    pub root: ScanRoot,
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
    /// The bundle's text when the file exists and is usable for its fingerprint
    /// (spec 30 §3.5); `None` when missing or unusable (never evaluated then).
    async fn open(&self, bundle: &BundleLocation) -> Option<String>;
    /// Deletes the whole tree (layout change).
    async fn clear(&self) -> Result<(), BundleStoreError>;
}

/// One directory to walk for entry points (spec 10 §1.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRoot {
    /// The native directory walked, e.g. `<root>/extensions/models`.
    pub dir: PathBuf,
    /// The directory imports may not leave, e.g. `<root>/extensions` (spec 10 §1.9).
    pub boundary: PathBuf,
    /// The root of the owning aggregate: the repo root (local, mounted) or the
    /// pulled extension root.
    pub extension_root: CanonicalPath,
    /// Origin of every source found here.
    pub origin: Origin,
    /// The loader kind of the kind directory.
    pub loader_kind: LoaderKind,
    /// `local`, `mounted/<mount-id>` or `pulled/<key>`: the bundle subtree and module
    /// id origin (spec 30 §3.5).
    pub bundle_prefix: String,
}

/// A discovered candidate entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedEntry {
    /// Where it is.
    pub location: SourceLocation,
    /// The scan root it was found under.
    pub root: ScanRoot,
    /// The native path to read.
    pub native_path: PathBuf,
    /// `None` when readable; otherwise why not (dangling symlink, permission, a
    /// symlink leaving the boundary).
    pub unreadable: Option<String>,
}

/// A fingerprint together with what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprinted {
    /// The fingerprint.
    pub fingerprint: SourceFingerprint,
    /// True when at least one file of the graph had to be read and hashed.
    pub hashed: bool,
    /// Fresh stat records for every file of the graph, to store when files were
    /// hashed and storing gains something: some hashed file now has a non-racy record,
    /// or the fingerprint differs from the row's (the records then go with the index
    /// result; a racy one is refreshed by a later pass). `None` when the stored
    /// records are still exact, and always on hosts without inode and ctime.
    pub fresh_stats: Option<FileStats>,
}

/// Walks scan roots, fingerprints entries and probes existence. One value lives for
/// one pass and owns that pass's freshness cache (each file hashed at most once).
#[async_trait]
pub trait SourceScanner: Send + Sync {
    /// The local and mounted scan roots of a loader kind, then the pulled ones for
    /// `pulled` (name and its extension root), in the order of spec 30 §3.1.
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot>;
    /// Candidate entry points under one root, sorted by canonical path. `known` are
    /// the stat records held by catalog rows (of every kind), by row path: a candidate
    /// whose stat equals a non-racy record held for it by any row (as a file of that
    /// row's graph) is not read; the record's pre-check result decides, so it stays an
    /// entry point or a helper.
    async fn walk(
        &self,
        root: &ScanRoot,
        known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry>;
    /// The fingerprint of an entry and its transitive local imports; never fails.
    /// `known` is the row's fingerprint with its stat records: when every file's stat
    /// still matches a non-racy record, no file is read and that fingerprint is returned.
    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted;
    /// True if a file (or a symlink, dangling or not) exists at the path.
    async fn exists(&self, path: &CanonicalPath) -> bool;
    /// Number of files read and hashed by this scanner so far (`sourcesHashed`).
    fn files_hashed(&self) -> usize;
}

//! `ExtensionRepository` and `TypeIndex`: persistence of Extension aggregates and the
//! lazy loader's read side (spec 10 §5).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use crate::extension::Extension;
use crate::fingerprint::SourceFingerprint;
use crate::id::ExtensionId;
use crate::kind::Kind;
use crate::location::BundleLocation;
use crate::name::ExtensionName;
use crate::path::CanonicalPath;
use crate::row_state::TypeMeta;
use crate::type_name::TypeName;

/// What `load_all` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Aggregates, sorted by id.
    pub extensions: Vec<Extension>,
    /// Rows that could not be attributed; the next save prunes them.
    pub skipped: Vec<SkippedRow>,
    /// Stat records of the kept rows that have one.
    pub file_stats: BTreeMap<CanonicalPath, FileStats>,
}

/// A row `load_all` skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedRow {
    /// The stored path text.
    pub source_path: String,
    /// Why.
    pub reason: SkipReason,
}

/// Why a row was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Not under the repo root or a mount.
    Unreachable,
    /// No (parsable) stored identity.
    Unowned,
    /// The identity does not fit the path.
    Misfiled,
}

impl SkipReason {
    /// snake_case text.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Unreachable => "unreachable",
            SkipReason::Unowned => "unowned",
            SkipReason::Misfiled => "misfiled",
        }
    }
}

/// Opaque stat records of a source's files; only the source scanner reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStats(pub String);

/// A stat record to store beside the fingerprint it was taken for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStatsUpdate {
    /// The row.
    pub source: CanonicalPath,
    /// The fingerprint the records belong to.
    pub fingerprint: SourceFingerprint,
    /// The records.
    pub stats: FileStats,
}

/// Counts of one `save_all`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// Rows inserted.
    pub inserted: usize,
    /// Rows updated.
    pub updated: usize,
    /// Rows deleted.
    pub deleted: usize,
    /// Target rows equal to the stored ones (no statement issued).
    pub unchanged: usize,
    /// Rows outside the repo root and the mounts, pruned.
    pub pruned_unreachable: usize,
    /// Rows without a (fitting) identity, pruned.
    pub pruned_unowned: usize,
    /// `(row, new winner)` for every changed supersession marker.
    pub supersession_changes: Vec<(CanonicalPath, Option<CanonicalPath>)>,
}

/// One side of a duplicate type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occupant {
    /// The owning extension.
    pub extension: ExtensionId,
    /// The row's path.
    pub source_path: CanonicalPath,
}

/// Two rows claim one `(kind, type)` in a way I-Repo-1 forbids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateType {
    /// The kind.
    pub kind: Kind,
    /// The type.
    pub type_name: TypeName,
    /// The row this save did not write (or the smaller path).
    pub existing: Occupant,
    /// The row this save wrote.
    pub conflicting: Occupant,
    /// The existing row's source file no longer exists.
    pub existing_is_ghost: bool,
}

impl DuplicateType {
    /// What the user should do.
    pub fn hint(&self) -> String {
        if self.existing_is_ghost {
            "the existing catalog entry points at a file that no longer exists; run 'fen doctor extensions' to clear stale catalog entries, then retry".to_owned()
        } else {
            format!(
                "run 'fen extension rm {}' first if you meant to replace it",
                self.existing.extension.name
            )
        }
    }
}

impl fmt::Display for DuplicateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type \"{}\" (kind {}) is already provided by {} at {}; {} at {} claims it too, so the save was rolled back",
            self.type_name,
            self.kind,
            self.existing.extension,
            self.existing.source_path,
            self.conflicting.extension,
            self.conflicting.source_path,
        )?;
        if self.existing_is_ghost {
            f.write_str(" (the existing entry's source file no longer exists)")?;
        }
        Ok(())
    }
}

/// What the four guard keys are checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardInputs {
    /// `BUNDLE_LAYOUT_VERSION`.
    pub layout_version: String,
    /// Canonical absolute path of `.fen/bundles`.
    pub bundles_base_path: String,
    /// The scan roots of all five loader kinds.
    pub source_dirs: Vec<CanonicalPath>,
}

/// Result of `invalidation_guards`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardVerdict {
    /// The catalog may be used incrementally.
    Fresh,
    /// A cold start is needed.
    Invalidate(GuardReason),
}

/// The first guard that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardReason {
    /// No `populated` key.
    NotPopulated,
    /// The bundle layout changed.
    LayoutVersionChanged {
        /// Stored value.
        stored: Option<String>,
        /// Expected value.
        expected: String,
    },
    /// The repo moved.
    BundlesBasePathChanged {
        /// Stored value.
        stored: Option<String>,
        /// Expected value.
        expected: String,
    },
    /// Mounts or pulled roots changed.
    SourceDirsChanged {
        /// Stored value.
        stored: Option<String>,
        /// Expected value.
        expected: String,
    },
}

/// Result of `invalidate_all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidateOutcome {
    /// The guard keys were deleted.
    Invalidated,
    /// There was no catalog file; none was created.
    NoCatalog,
    /// The file was unusable and was moved aside and rebuilt.
    Reset,
}

/// One visible row, as the lazy loader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeEntry {
    /// The entry point.
    pub source_path: CanonicalPath,
    /// Its kind.
    pub kind: Kind,
    /// Its type (for `extension`: the base type).
    pub type_name: TypeName,
    /// Its bundle.
    pub bundle: BundleLocation,
    /// Version, description and descriptor.
    pub meta: TypeMeta,
}

/// Repository failures. The adapter classifies storage errors into these variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// I-Repo-1 would be violated; the save was rolled back.
    #[error("{0}")]
    DuplicateType(Box<DuplicateType>),
    /// The batch broke a precondition (a bug in the caller).
    #[error("invalid save batch: {0}")]
    InvalidBatch(String),
    /// A write without the lifecycle lock (a bug).
    #[error("catalog write attempted without holding the lifecycle lock")]
    LockNotHeld,
    /// SQLite stayed busy beyond its budget.
    #[error("the catalog stayed busy beyond its 5 s budget")]
    Busy,
    /// The catalog file is damaged.
    #[error("the catalog is corrupt: {0}")]
    Corrupt(String),
    /// The catalog was written by a newer fen.
    #[error("the catalog was written by a newer fen (schema version {found}, this fen supports up to {supported})")]
    CatalogTooNew {
        /// Highest version recorded.
        found: i64,
        /// Highest version embedded.
        supported: i64,
    },
    /// A migration failed and was rolled back.
    #[error("catalog migration {version} failed: {message}")]
    Migration {
        /// The failing version.
        version: i64,
        /// Why.
        message: String,
    },
    /// Any other storage or I/O failure.
    #[error("catalog storage error: {0}")]
    Storage(String),
}

/// Persistence of Extension aggregates: diff-based saves, I-Repo-1 on every commit,
/// lock-free reads.
#[async_trait]
pub trait ExtensionRepository: Send + Sync {
    /// Every aggregate, plus the rows that could not be attributed.
    async fn load_all(&self) -> Result<Loaded, RepoError>;
    /// Every aggregate, like [`load_all`](Self::load_all), but without the stored
    /// descriptors: `Indexed` rows carry `TypeMeta::descriptor == ""` (version and
    /// description are kept). Enough to decide freshness, list, search, report
    /// failures and save: `save_all` keeps the stored descriptor of every `Indexed`
    /// source whose descriptor is empty (an outline's), so a commit never reads the
    /// descriptors it does not change. The default reads everything.
    async fn load_outline(&self) -> Result<Loaded, RepoError> {
        self.load_all().await
    }
    /// The warm pass's outline: [`load_outline`](Self::load_outline) without the stat
    /// records of pulled rows (`Loaded::file_stats` holds local and mounted paths
    /// only). The warm pass never walks pulled trees (spec 10 §6.2), so it never looks
    /// those records up, and they are most of a pulled row's bytes. The default reads
    /// the whole outline.
    async fn load_warm_outline(&self) -> Result<Loaded, RepoError> {
        self.load_outline().await
    }
    /// The guard verdict and, when the guards are fresh, the warm outline
    /// ([`load_warm_outline`](Self::load_warm_outline)): the warm path's one read of
    /// the catalog (spec 30 §5.1). The default makes the two calls.
    async fn guards_and_outline(
        &self,
        expected: &GuardInputs,
    ) -> Result<(GuardVerdict, Option<Loaded>), RepoError> {
        match self.invalidation_guards(expected).await? {
            GuardVerdict::Fresh => Ok((GuardVerdict::Fresh, Some(self.load_warm_outline().await?))),
            verdict => Ok((verdict, None)),
        }
    }
    /// Every version of one name.
    async fn load_by_name(&self, name: &ExtensionName) -> Result<Vec<Extension>, RepoError>;
    /// `save_all` of one aggregate, with the same checks.
    async fn save(&self, ext: &Extension) -> Result<SaveReport, RepoError> {
        self.save_all(std::slice::from_ref(ext)).await
    }
    /// Saves the differences of a batch in one transaction (needs the lifecycle lock).
    /// An `Indexed` source with an empty descriptor (loaded by
    /// [`load_outline`](Self::load_outline)) keeps the descriptor stored for its row.
    async fn save_all(&self, exts: &[Extension]) -> Result<SaveReport, RepoError>;
    /// Checks the four guard keys.
    async fn invalidation_guards(&self, expected: &GuardInputs) -> Result<GuardVerdict, RepoError>;
    /// Writes the four guard keys (needs the lifecycle lock).
    async fn mark_populated(&self, inputs: &GuardInputs) -> Result<(), RepoError>;
    /// Stores stat records beside their fingerprints (needs the lifecycle lock).
    async fn record_file_stats(&self, stats: &[FileStatsUpdate]) -> Result<usize, RepoError>;
    /// Deletes `Tombstoned` / `OrphanedBundleOnly` rows at these paths, nothing else.
    async fn prune_retired_rows(&self, paths: &[CanonicalPath]) -> Result<usize, RepoError>;
    /// Forces the next command onto a cold start; best-effort, never fails.
    async fn invalidate_all(&self) -> InvalidateOutcome;
    /// After a write: moves committed changes from the store's write-ahead log into its
    /// main file, so that later readers need not consult the log. Best effort: it never
    /// waits for readers, never fails, and a store without a log does nothing (the
    /// default). Durability does not depend on it.
    async fn checkpoint(&self) {}
}

/// The lazy loader's lock-free read side. Every query sees visible rows only.
#[async_trait]
pub trait TypeIndex: Send + Sync {
    /// The one visible row of `(kind, type)`.
    async fn find_type(&self, kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError>;
    /// Every visible row of a kind, ordered by type.
    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, RepoError>;
    /// Visible `extension` rows targeting `base`, ordered by path.
    async fn extensions_for(&self, base: &TypeName) -> Result<Vec<TypeEntry>, RepoError>;
    /// The visible rows at `paths` (any order, unknown paths ignored), descriptors
    /// included, ordered by path: how a command that listed from an outline fetches the
    /// descriptors of the few rows it shows, in one statement. The default filters
    /// [`list_types`](Self::list_types) of every kind.
    async fn entries_at(&self, paths: &[CanonicalPath]) -> Result<Vec<TypeEntry>, RepoError> {
        let wanted: std::collections::BTreeSet<&CanonicalPath> = paths.iter().collect();
        let mut out = Vec::new();
        for kind in Kind::ALL {
            out.extend(
                self.list_types(kind)
                    .await?
                    .into_iter()
                    .filter(|e| wanted.contains(&e.source_path)),
            );
        }
        out.sort_by(|a, b| a.source_path.cmp(&b.source_path));
        Ok(out)
    }
}

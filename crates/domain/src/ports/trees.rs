//! `ExtensionTrees`: the file-system side of the lifecycle (spec 20 §6, §9.1 phases
//! 5–12, §10.1, §13): staging and scratch directories with their owner records, the
//! transaction directories with their journals, and the renames that move whole owned
//! roots (`.fen/pulled-extensions/<key>/`, `.fen/bundles/pulled/<key>/`) in and out.
//!
//! Every mutation of an owned root is a `rename` of a whole directory inside `.fen/`,
//! so a reader never sees a half-written root and a crash leaves either the old or the
//! new tree, with the journal telling which. Callers hold the lifecycle lock for every
//! method that touches owned roots or transactions.

use std::path::{Path, PathBuf};

use crate::journal::Journal;
use crate::ports::indexing::StagedBundle;

/// A private scratch directory `.fen/scratch/stage-<id>/` with `owner.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageDir {
    /// `.fen/scratch/stage-<id>`.
    pub path: PathBuf,
}

impl StageDir {
    /// The unpacked extension root, moved to `.fen/pulled-extensions/<key>`.
    pub fn ext_dir(&self) -> PathBuf {
        self.path.join("ext")
    }
    /// The staged bundle root, moved to `.fen/bundles/pulled/<key>`.
    pub fn bundles_dir(&self) -> PathBuf {
        self.path.join("bundles")
    }
    /// Where the indexer writes new bundles before they are placed.
    pub fn build_dir(&self) -> PathBuf {
        self.path.join("build")
    }
}

/// A transaction directory `.fen/scratch/txn-<id>/`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxnId(pub String);

/// A transaction directory with its journal, or why the journal cannot be read.
pub type PendingTxn = (TxnId, Result<Journal, String>);

/// Which owned roots of a key exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RootsPresent {
    /// `.fen/pulled-extensions/<key>`.
    pub ext: bool,
    /// `.fen/bundles/pulled/<key>`.
    pub bundles: bool,
}

impl RootsPresent {
    /// Either exists.
    pub fn any(self) -> bool {
        self.ext || self.bundles
    }
}

/// A file-system operation failed (`io`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TreeError(pub String);

/// What `gc_scratch` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collected {
    /// Names of removed `stage-*` / `build-*` directories and temp files.
    pub removed: Vec<String>,
}

/// The file-system operations of the lifecycle services.
pub trait ExtensionTrees: Send + Sync {
    /// Creates `.fen/scratch/stage-<id>/` with `owner.json` (`pid`, `host`, `startedAt`).
    fn new_stage(&self) -> Result<StageDir, TreeError>;
    /// Creates `.fen/scratch/build-<id>/` with `owner.json`, for a loader pass.
    fn new_build(&self) -> Result<PathBuf, TreeError>;
    /// Deletes a scratch directory (best effort; never fails).
    fn remove_scratch(&self, dir: &Path);
    /// Moves a bundle the indexer wrote into `stage/build` to its place under
    /// `stage/bundles`, mirroring its final path below the bundle root of `key`.
    fn place_bundle(
        &self,
        stage: &StageDir,
        key: &str,
        bundle: &StagedBundle,
    ) -> Result<(), TreeError>;
    /// SHA-256 of each file, `base`-relative paths (`/`-separated); a missing file is
    /// `None`.
    fn hash_files(&self, base: &Path, files: &[String])
        -> Result<Vec<Option<[u8; 32]>>, TreeError>;
    /// Regular files under the extension root of `key`, repo-relative, sorted; and
    /// whether anything else (a symlink, a special file) is there.
    fn list_root_files(&self, key: &str) -> Result<(Vec<String>, bool), TreeError>;
    /// Regular files under the bundle root of `key`, relative to that root, sorted.
    fn list_bundle_files(&self, key: &str) -> Result<Vec<String>, TreeError>;
    /// Which owned roots of `key` exist.
    fn roots(&self, key: &str) -> RootsPresent;
    /// The installed (read-only) manifest of `key`; `None` when it is missing or does
    /// not parse.
    fn installed_manifest(&self, key: &str) -> Option<crate::manifest::Manifest>;

    /// Creates `txn-<id>/` and writes `journal.json` (fsynced) before any mutation.
    fn begin_txn(&self, journal: &Journal) -> Result<TxnId, TreeError>;
    /// Every `txn-*` in id order, with its journal (or why it cannot be read).
    fn txns(&self) -> Result<Vec<PendingTxn>, TreeError>;
    /// Deletes a transaction directory with its backups.
    fn delete_txn(&self, txn: &TxnId) -> Result<(), TreeError>;
    /// Renames the live roots of `key` that exist to `txn/prior/<index>/{ext,bundles}`.
    fn move_aside(&self, txn: &TxnId, index: usize, key: &str) -> Result<(), TreeError>;
    /// Renames `stage/ext` and `stage/bundles` to the live roots of `key` (creating
    /// parents). The live roots must not exist.
    fn move_in(&self, stage: &StageDir, key: &str) -> Result<(), TreeError>;
    /// Rolls one install target back (spec 20 §13.3): for each root with a backup in
    /// `txn/prior/<index>`, the live root is deleted and the backup moved back; without
    /// a backup, the live root is deleted when `fresh_install` (the journal's prior
    /// entry was null) and left alone otherwise.
    fn roll_back(
        &self,
        txn: &TxnId,
        index: usize,
        key: &str,
        fresh_install: bool,
    ) -> Result<(), TreeError>;
    /// Renames the live roots of `key` into `txn/removed/<index>/`.
    fn move_out(&self, txn: &TxnId, index: usize, key: &str) -> Result<(), TreeError>;
    /// Deletes the live roots of `key` (recursive).
    fn delete_roots(&self, key: &str) -> Result<(), TreeError>;
    /// Removes empty parents of the owned roots of `key`, stopping before
    /// `.fen/pulled-extensions` and `.fen/bundles/pulled`; returns how many.
    fn prune_parents(&self, key: &str) -> usize;
    /// Deletes `stage-*` and `build-*` whose owner is dead on this host (or that are
    /// older than 24 h, or carry no readable owner record and are older than 60 s), and
    /// stray lockfile temp files whose pid is dead or that are older than 60 s.
    fn gc_scratch(&self) -> Collected;
}

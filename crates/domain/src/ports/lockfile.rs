//! `LockfileReader`: a snapshot of `extensions/upstream_extensions.json`, the system of
//! record of pulled extensions (spec 20 §7). Writing belongs to the lifecycle services
//! of a later milestone.

use async_trait::async_trait;

use crate::name::ExtensionName;
use crate::version::ExtensionVersion;

/// One pulled extension as the lockfile pins it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockedExtension {
    /// Its name.
    pub name: ExtensionName,
    /// The installed version.
    pub version: ExtensionVersion,
    /// Repo-relative files of its extension root, as listed.
    pub files: Vec<String>,
}

/// The lockfile cannot be used (`lockfile_invalid`, exit 3). Never treated as empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("extensions/upstream_extensions.json is not valid ({detail}); fix it or restore it from version control")]
pub struct LockfileError {
    /// Where and what (`line L, column C: DETAIL`).
    pub detail: String,
}

/// Reads the lockfile once per call; a missing or blank file is an empty snapshot.
#[async_trait]
pub trait LockfileReader: Send + Sync {
    /// Every pinned extension, sorted by name.
    async fn snapshot(&self) -> Result<Vec<LockedExtension>, LockfileError>;
}

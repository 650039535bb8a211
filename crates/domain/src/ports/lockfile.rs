//! The lockfile `extensions/upstream_extensions.json`, the system of record of pulled
//! extensions (spec 20 §7): `LockfileReader` (a snapshot for the loader) and
//! `LockfileStore` (the whole document, read and written by lifecycle services under
//! the lifecycle lock), with the `filesDigest` formula of §7.1.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;
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

/// One entry of the lockfile, as stored (spec 20 §7.1). Unknown fields are kept
/// verbatim in `extra` and written back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockEntry {
    /// The installed CalVer.
    pub version: ExtensionVersion,
    /// First install of this version (RFC 3339 UTC, milliseconds, `Z`).
    #[serde(default)]
    pub pulled_at: String,
    /// sha256 of the archive, 64 lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// Every regular file of the extension root, repo-relative, sorted, unique.
    #[serde(default)]
    pub files: Vec<String>,
    /// [`files_digest`] of `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_digest: Option<String>,
    /// The registry base URL the archive came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Fields this fen does not know, preserved.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The whole lockfile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LockDocument {
    /// Entries by name (serialized with sorted keys).
    pub extensions: BTreeMap<ExtensionName, LockEntry>,
    /// Unknown top-level fields, preserved.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl LockDocument {
    /// The loader's view: name, version and files of every entry, sorted by name.
    pub fn locked(&self) -> Vec<LockedExtension> {
        self.extensions
            .iter()
            .map(|(name, entry)| LockedExtension {
                name: name.clone(),
                version: entry.version,
                files: entry.files.clone(),
            })
            .collect()
    }
}

/// `filesDigest` (spec 20 §7.1): sha256 over `hex(sha256(content)) + "  " + path + "\n"`
/// for each file in the order given (the sorted `files` list).
///
/// ```
/// use fen_domain::ports::lockfile::files_digest;
/// let d = files_digest([("a.txt", [0u8; 32])].iter().map(|(p, h)| (*p, *h)));
/// assert_eq!(d.len(), 64);
/// ```
pub fn files_digest<'a>(files: impl Iterator<Item = (&'a str, [u8; 32])>) -> String {
    let mut outer = Sha256::new();
    for (path, digest) in files {
        outer.update(hex::encode(&digest).as_bytes());
        outer.update(b"  ");
        outer.update(path.as_bytes());
        outer.update(b"\n");
    }
    hex::encode(&outer.finalize())
}

/// sha256 of bytes as 64 lowercase hex digits (the archive checksum of spec 20 §2.6).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes))
}

/// What to do about an invalid lockfile (the `hint` of `lockfile_invalid`).
pub const LOCKFILE_INVALID_HINT: &str = "fix it or restore it from version control";

/// The lockfile cannot be used (`lockfile_invalid`, exit 3; hint
/// [`LOCKFILE_INVALID_HINT`]). Never treated as empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("extensions/upstream_extensions.json is not valid ({detail})")]
pub struct LockfileError {
    /// Where and what (`line L, column C: DETAIL`).
    pub detail: String,
}

/// Writing the lockfile failed (`io`); the old file is untouched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot write extensions/upstream_extensions.json: {0}")]
pub struct LockfileWriteError(pub String);

/// Reads the lockfile once per call; a missing or blank file is an empty snapshot.
#[async_trait]
pub trait LockfileReader: Send + Sync {
    /// Every pinned extension, sorted by name.
    async fn snapshot(&self) -> Result<Vec<LockedExtension>, LockfileError>;
}

/// The whole document, for lifecycle services. Writers hold the lifecycle lock and
/// re-read the file under it before writing (spec 20 §7.3).
#[async_trait]
pub trait LockfileStore: Send + Sync {
    /// The document as it is on disk now; missing or blank is empty.
    async fn read(&self) -> Result<LockDocument, LockfileError>;
    /// Replaces the file atomically: temp file (`O_EXCL`), write, fsync, rename, fsync
    /// of `extensions/`. On error the temp file is removed and the old file stays.
    async fn write(&self, document: &LockDocument) -> Result<(), LockfileWriteError>;
}

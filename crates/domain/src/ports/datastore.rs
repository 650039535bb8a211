//! Datastore ports: `DatastoreSyncService` with `SyncContext` / `SyncCapabilities`, and
//! `DistributedLock` (spec 30 §7.3–§7.7).

use std::fmt;

use async_trait::async_trait;

use crate::type_name::TypeName;

/// The name of a model definition (`models/<name>.yaml`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelName(pub String);

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One model an operation concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// Its name.
    pub name: ModelName,
    /// Its type.
    pub model_type: TypeName,
}

/// What a sync operation concerns, in domain terms: models, never paths or keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncContext {
    /// Non-empty, sorted by name, deduplicated.
    pub models: Vec<ModelRef>,
}

impl SyncContext {
    /// Sorts and deduplicates; `None` for an empty list (a full sync passes no context).
    pub fn new(mut models: Vec<ModelRef>) -> Option<SyncContext> {
        models.sort_by(|a, b| a.name.cmp(&b.name));
        models.dedup_by(|a, b| a.name == b.name);
        (!models.is_empty()).then_some(SyncContext { models })
    }
}

/// What a sync service advertises.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncCapabilities {
    /// Pull and push accept a `SyncContext`.
    pub scoped_sync: bool,
    /// Reserved: parsed and shown, no behaviour yet.
    pub lazy_hydration: bool,
}

/// Options given only to services that advertise `scoped_sync`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncOptions {
    /// The models concerned.
    pub context: SyncContext,
}

/// Result of one pull or push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Files copied, when known.
    pub files_transferred: Option<u64>,
}

/// A sync call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The remote cannot be used.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// The call exceeded its time budget.
    #[error("datastore sync timed out")]
    SyncTimeout,
    /// The two sides disagree on an immutable file.
    #[error("sync conflict at {path}")]
    SyncConflict {
        /// The conflicting path, relative to the datastore.
        path: String,
    },
    /// The datastore extension failed.
    #[error("datastore extension failed: {0}")]
    Extension(String),
}

/// Moves model data between the local datastore and a remote.
#[async_trait]
pub trait DatastoreSyncService: Send + Sync {
    /// Optional; the default advertises nothing.
    async fn capabilities(&self) -> Result<SyncCapabilities, SyncError> {
        Ok(SyncCapabilities::default())
    }
    /// Copies what the remote has and the local side lacks.
    async fn pull_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError>;
    /// Copies what the local side has and the remote lacks.
    async fn push_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError>;
}

/// Options of one lock acquisition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// `global` or `model/<name>`.
    pub key: String,
    /// Wait budget in milliseconds.
    pub max_wait_ms: u64,
    /// Time to live in milliseconds.
    pub ttl_ms: u64,
}

/// The record stored in a datastore lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    /// `user@host`.
    pub holder: String,
    /// Host name.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// RFC 3339 UTC.
    pub acquired_at: String,
    /// Time to live.
    pub ttl_ms: u64,
    /// Identity of this acquisition.
    pub nonce: String,
}

/// A held datastore lock; released on drop by the adapter.
#[derive(Debug)]
pub struct LockGuard {
    /// The record written.
    pub info: LockInfo,
}

/// A datastore lock operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The wait budget ran out.
    #[error("timed out waiting for datastore lock {key}")]
    Timeout {
        /// The key.
        key: String,
    },
    /// The lock was taken over while held.
    #[error("datastore lock {key} was lost")]
    Lost {
        /// The key.
        key: String,
    },
    /// Storage failure.
    #[error("datastore lock storage error: {0}")]
    Storage(String),
}

/// A lock on model data shared across processes and hosts.
#[async_trait]
pub trait DistributedLock: Send + Sync {
    /// Waits up to the budget.
    async fn acquire(&self, opts: &LockOptions) -> Result<LockGuard, LockError>;
    /// The current holder, if any.
    async fn inspect(&self) -> Result<Option<LockInfo>, LockError>;
    /// Deletes the lock if its nonce is still `expected_nonce`.
    async fn force_release(&self, expected_nonce: &str) -> Result<bool, LockError>;
}

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
    /// Wait budget in milliseconds (`FEN_DATASTORE_LOCK_TIMEOUT_MS`).
    pub max_wait_ms: u64,
    /// Time to live in milliseconds (`FEN_DATASTORE_LOCK_TTL_MS`).
    pub ttl_ms: u64,
}

/// The lock key of a model's data: `model/<name>`.
pub fn model_lock_key(model: &ModelName) -> String {
    format!("model/{model}")
}

/// The record stored in a datastore lock (spec 30 §7.7).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
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
    /// The fen that wrote it.
    #[serde(default)]
    pub fen_version: String,
}

/// One lock as `inspect`/`list` see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockState {
    /// `global` or `model/<name>`.
    pub key: String,
    /// The record.
    pub info: LockInfo,
    /// Milliseconds since `acquiredAt` (0 when it cannot be read).
    pub age_ms: u64,
    /// Older than its ttl, or its process is gone (same host).
    pub stale: bool,
}

/// The adapter's side of a held lock.
pub trait HeldLock: Send + Sync {
    /// Deletes the lock if it still carries our nonce; idempotent.
    fn release(&mut self) -> Result<(), LockError>;
    /// Set once a heartbeat found another nonce in the lock.
    fn loss(&self) -> LockLoss;
}

/// Whether a held lock was taken over; shared with whatever must stop using the lock
/// once it is (the `ctx` host of a run stops writing).
#[derive(Clone, Debug, Default)]
pub struct LockLoss(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl LockLoss {
    /// Records the loss.
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    /// True once the lock was taken over.
    pub fn is_lost(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A held datastore lock. Dropping it releases the lock (best effort).
pub struct LockGuard {
    /// The key.
    pub key: String,
    /// The record written.
    pub info: LockInfo,
    held: Box<dyn HeldLock>,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key)
            .field("info", &self.info)
            .finish()
    }
}

impl LockGuard {
    /// A guard over an adapter's held lock.
    pub fn new(key: String, info: LockInfo, held: Box<dyn HeldLock>) -> LockGuard {
        LockGuard { key, info, held }
    }
    /// True once the lock was taken over by someone else.
    pub fn is_lost(&self) -> bool {
        self.held.loss().is_lost()
    }
    /// The loss flag, to share with whatever works under the lock.
    pub fn loss(&self) -> LockLoss {
        self.held.loss()
    }
    /// Releases now, reporting a failure (drop would swallow it).
    pub fn release(mut self) -> Result<(), LockError> {
        self.held.release()
    }
}

/// A datastore lock operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The wait budget ran out while someone held the lock.
    #[error("timed out after {waited_ms} ms waiting for datastore lock {key}{}", holder_text(.holder))]
    Timeout {
        /// The key.
        key: String,
        /// How long it waited.
        waited_ms: u64,
        /// The holder seen last, with the lock's age.
        holder: Option<Box<LockState>>,
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
    /// The locks' storage cannot be reached (a shared directory is gone).
    #[error("{0}")]
    Unavailable(String),
}

fn holder_text(holder: &Option<Box<LockState>>) -> String {
    match holder {
        Some(state) => format!(
            ", held by {} (pid {} on {}) for {} ms",
            state.info.holder, state.info.pid, state.info.hostname, state.age_ms
        ),
        None => String::new(),
    }
}

/// Locks on model data shared across processes and hosts (spec 30 §7.7).
#[async_trait]
pub trait DistributedLock: Send + Sync {
    /// Acquires `opts.key`, waiting with backoff up to the budget; a stale holder is
    /// taken over.
    async fn acquire(&self, opts: &LockOptions) -> Result<LockGuard, LockError>;
    /// The current holder of `key`, if any.
    async fn inspect(&self, key: &str) -> Result<Option<LockState>, LockError>;
    /// Every lock held, sorted by key.
    async fn list(&self) -> Result<Vec<LockState>, LockError>;
    /// Deletes `key` if its nonce is still `expected_nonce`; false if the holder
    /// changed or it is gone.
    async fn force_release(&self, key: &str, expected_nonce: &str) -> Result<bool, LockError>;
    /// Waits (backoff) while `key` is held and not stale, up to `max_wait_ms` or twice
    /// the observed lock's ttl, whichever is shorter (then `Timeout`); a stale holder
    /// is force-released by its observed nonce. Takes nothing (spec 30 §7.8 step 1,
    /// the drain of structural work).
    async fn drain(&self, key: &str, max_wait_ms: u64) -> Result<(), LockError>;
    /// Waits (backoff) while any non-stale `model/...` lock is held, up to
    /// `max_wait_ms` (then `Timeout` naming one holder); stale ones are
    /// force-released by their observed nonce. Takes nothing (spec 30 §7.9, the
    /// symmetric drain of structural commands).
    async fn drain_models(&self, max_wait_ms: u64) -> Result<(), LockError>;
}

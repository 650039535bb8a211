//! The port traits: what the services of `fen-lifecycle` need from the outside world.
//!
//! Each trait is async through `async-trait` (a macro; this crate needs no runtime) and
//! dyn-compatible, so services hold `Arc<dyn Trait>` and tests pass in-memory doubles.
//! `fen-infrastructure` implements them; `fen-cli` wires them together.

pub mod datastore;
pub mod indexing;
pub mod lock;
pub mod lockfile;
pub mod models;
pub mod process;
pub mod registry;
pub mod repository;
pub mod runtime;
pub mod trees;

pub use datastore::{
    model_lock_key, DatastoreSyncService, DistributedLock, HeldLock, LockError, LockGuard,
    LockInfo, LockLoss, LockOptions, LockState, ModelName, ModelRef, SyncCapabilities, SyncContext,
    SyncError, SyncOptions, SyncOutcome,
};
pub use indexing::{
    BundleIndexer, BundleStore, BundleStoreError, EntryPoint, Fingerprinted, IndexError,
    IndexOutcome, Reuse, ScanRoot, ScannedEntry, SourceScanner, StagedBundle,
};
pub use lock::{LifecycleGuard, LifecycleLock, LifecycleLockError};
pub use lockfile::{
    LockDocument, LockEntry, LockedExtension, LockfileError, LockfileReader, LockfileStore,
    LockfileWriteError,
};
pub use models::{
    DataError, DefinitionError, ModelData, ModelDefinitions, RunHost, RunScope, SchemaValidator,
};
pub use process::{Clock, FaultPoints, NoFaults};
pub use registry::{
    ArchiveError, ArchiveErrorCode, Deprecation, DownloadProgress, ExtensionMeta, NoProgress,
    RegistryClient, RegistryError, RegistryErrorCode, RegistryUrl, UnpackedExtension, Unpacker,
};
pub use repository::{
    DuplicateType, ExtensionRepository, FileStats, FileStatsUpdate, GuardInputs, GuardReason,
    GuardVerdict, InvalidateOutcome, Loaded, Occupant, RepoError, SaveReport, SkipReason,
    SkippedRow, TypeEntry, TypeIndex,
};
pub use runtime::{BundleRuntime, SandboxLimits, TypeInstance};
pub use trees::{Collected, ExtensionTrees, RootsPresent, StageDir, TreeError, TxnId};

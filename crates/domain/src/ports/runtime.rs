//! `BundleRuntime`: the engine-neutral port of the JS sandbox (spec 30 §4.1). No engine
//! types appear here; QuickJS is the adapter in `fen-infrastructure`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// Memory and time limits of one sandbox instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock limit of one evaluation or call.
    pub time: Duration,
    /// Heap limit.
    pub memory_bytes: usize,
    /// Stack limit.
    pub stack_bytes: usize,
}

/// One built bundle, read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFile {
    /// The bundle's path, for messages.
    pub path: String,
    /// The bundle container's JSON text.
    pub contents: String,
}

/// What to evaluate: the primary bundle first, then the extension bundles of its type.
#[derive(Clone, Debug)]
pub struct InstantiateRequest {
    /// The bundles.
    pub bundles: Vec<Arc<BundleFile>>,
    /// The limits of top-level evaluation.
    pub limits: SandboxLimits,
}

/// The own-property JSON view of one bundle's export.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSnapshot {
    /// The export key (`model`, `extension`, ...).
    pub key: String,
    /// The JSON view (functions replaced by markers).
    pub value: serde_json::Value,
}

/// What a call targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallTarget {
    /// A model method.
    ModelMethod {
        /// The method name.
        name: String,
    },
    /// A datastore's `capabilities`.
    DatastoreCapabilities,
    /// A datastore's `pullChanged`.
    DatastorePull,
    /// A datastore's `pushChanged`.
    DatastorePush,
}

/// Input of a call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallInput {
    /// Arguments as JSON.
    pub args: serde_json::Value,
}

/// A host operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("host operation failed: {0}")]
pub struct HostError(pub String);

/// The closed set of host operations offered as `ctx` (spec 30 §2.7–§2.8).
pub trait HostApi: Send + Sync {
    /// Writes a data artifact for the model; returns its version.
    fn write_resource(
        &self,
        spec: &str,
        instance: &str,
        data: &serde_json::Value,
    ) -> Result<u64, HostError>;
    /// Reads the latest version of a data artifact.
    fn read_resource(
        &self,
        spec: &str,
        instance: &str,
    ) -> Result<Option<serde_json::Value>, HostError>;
    /// Emits a log line.
    fn log(&self, level: &str, message: &str);
}

/// A call into a type instance failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The extension threw.
    #[error("{name}: {message}")]
    Threw {
        /// Error name.
        name: String,
        /// Error message.
        message: String,
        /// An extension-defined code.
        code: Option<String>,
        /// The JS stack.
        stack: Option<String>,
    },
    /// The time limit was hit.
    #[error("time limit of {limit:?} exceeded")]
    TimeLimit {
        /// The limit.
        limit: Duration,
    },
    /// The memory limit was hit.
    #[error("memory limit of {limit_bytes} bytes exceeded")]
    MemoryLimit {
        /// The limit.
        limit_bytes: usize,
    },
    /// A returned promise never settled.
    #[error("the returned promise did not settle")]
    DidNotSettle,
    /// The return value was not acceptable.
    #[error("invalid return value: {reason}")]
    InvalidReturn {
        /// Why.
        reason: String,
    },
    /// A host operation failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The call was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// Instantiation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Top-level evaluation threw or hit a limit.
    #[error("evaluation of {bundle} failed: {message}")]
    Evaluation {
        /// The bundle.
        bundle: String,
        /// Why.
        message: String,
    },
    /// The bundle file is not a valid container.
    #[error("bundle {bundle} is malformed: {message}")]
    Malformed {
        /// The bundle.
        bundle: String,
        /// Why.
        message: String,
    },
    /// The engine's worker is gone.
    #[error("the sandbox runtime is unavailable")]
    Unavailable,
}

/// A live, isolated instance of one type (its primary bundle and extension bundles).
#[async_trait]
pub trait TypeInstance: Send + Sync {
    /// The export snapshots, primary first.
    fn exports(&self) -> &[ExportSnapshot];
    /// Calls a function of the export.
    async fn call(
        &self,
        target: &CallTarget,
        input: CallInput,
        host: Arc<dyn HostApi>,
        limits: SandboxLimits,
    ) -> Result<serde_json::Value, CallError>;
    /// Live heap bytes.
    fn heap_bytes(&self) -> usize;
}

/// Evaluates bundles in a fresh sandbox.
#[async_trait]
pub trait BundleRuntime: Send + Sync {
    /// Evaluates `bundles` in one fresh, isolated instance.
    async fn instantiate(
        &self,
        req: InstantiateRequest,
    ) -> Result<Arc<dyn TypeInstance>, RuntimeError>;
}

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

impl SandboxLimits {
    /// Default time limit of top-level evaluation (spec 30 §4.3).
    pub const EVALUATION_TIME: Duration = Duration::from_millis(2_000);
    /// Default time limit of a model method `run` (spec 30 §4.3).
    pub const METHOD_TIME: Duration = Duration::from_millis(30_000);
    /// Default heap limit per instance: 64 MiB.
    pub const MEMORY_BYTES: usize = 64 * 1024 * 1024;
    /// Stack limit: 1 MiB.
    pub const STACK_BYTES: usize = 1024 * 1024;

    /// The defaults for top-level evaluation: 2 000 ms, 64 MiB, 1 MiB of stack.
    ///
    /// ```
    /// use fen_domain::ports::SandboxLimits;
    /// let limits = SandboxLimits::evaluation();
    /// assert_eq!(limits.time.as_millis(), 2_000);
    /// assert_eq!(limits.memory_bytes, 64 << 20);
    /// ```
    pub fn evaluation() -> SandboxLimits {
        SandboxLimits {
            time: SandboxLimits::EVALUATION_TIME,
            memory_bytes: SandboxLimits::MEMORY_BYTES,
            stack_bytes: SandboxLimits::STACK_BYTES,
        }
    }

    /// The defaults for a model method run: 30 000 ms, 64 MiB, 1 MiB of stack.
    pub fn method_run() -> SandboxLimits {
        SandboxLimits {
            time: SandboxLimits::METHOD_TIME,
            ..SandboxLimits::evaluation()
        }
    }

    /// The same limits with another time limit.
    pub fn with_time(self, time: Duration) -> SandboxLimits {
        SandboxLimits { time, ..self }
    }

    /// The same limits with another heap limit.
    pub fn with_memory_bytes(self, memory_bytes: usize) -> SandboxLimits {
        SandboxLimits {
            memory_bytes,
            ..self
        }
    }
}

impl Default for SandboxLimits {
    /// The evaluation defaults, [`SandboxLimits::evaluation`].
    fn default() -> SandboxLimits {
        SandboxLimits::evaluation()
    }
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

/// The own-property JSON view of one kind export (`model`, `extension`, `vault`,
/// `driver`, `datastore`, `report`) of one bundle's entry module. Other named exports
/// are not snapshotted.
///
/// The view holds the own enumerable data properties of plain objects and arrays,
/// recursively; inherited properties are absent. A function becomes the marker
/// object [`FUNCTION_MARKER`] `{"$fn": true}`; an object of the export that has its
/// own `$fn` key is rejected when the snapshot is taken, so the marker cannot be
/// forged. `undefined` members are left out, like `JSON.stringify` does.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSnapshot {
    /// Index of the bundle in [`InstantiateRequest::bundles`].
    pub bundle: usize,
    /// The export key (`model`, `extension`, ...).
    pub key: String,
    /// The JSON view (functions replaced by markers).
    pub value: serde_json::Value,
}

/// The key of the marker object that stands for a function in an [`ExportSnapshot`].
pub const FUNCTION_MARKER: &str = "$fn";

impl ExportSnapshot {
    /// The snapshots of bundle `bundle` out of all snapshots of an instance (which
    /// are grouped by bundle, in bundle order).
    pub fn of_bundle(all: &[ExportSnapshot], bundle: usize) -> &[ExportSnapshot] {
        let start = all.partition_point(|s| s.bundle < bundle);
        let end = all.partition_point(|s| s.bundle <= bundle);
        &all[start..end]
    }

    /// True when `value` is the function marker `{"$fn": true}`.
    pub fn is_function_marker(value: &serde_json::Value) -> bool {
        value.as_object().is_some_and(|map| {
            map.len() == 1 && map.get(FUNCTION_MARKER) == Some(&serde_json::Value::Bool(true))
        })
    }
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallInput {
    /// Arguments as JSON: a method's `args`, a datastore call's `opts` (`null` passes
    /// `undefined`).
    pub args: serde_json::Value,
    /// Data members of `ctx`, deep-frozen before the call: `globalArgs`, `model`,
    /// `method`, `runId` for a model method (spec 30 §2.7), `config` for a datastore
    /// (§2.8). Host functions (`log`, `remainingMs`, ...) are added by the adapter.
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Set by the caller to stop the call (a signal): the adapter aborts the code at
    /// its next interrupt check, host operations refuse to start, and the call ends
    /// with [`CallError::Cancelled`].
    pub cancel: CancelFlag,
}

/// A shared "stop now" flag for one call (spec 30 §4.2, `Cancelled`).
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelFlag {
    /// Asks the call to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    /// True once [`CancelFlag::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Flags compare by state: a call input is its data plus whether it was cancelled.
impl PartialEq for CancelFlag {
    fn eq(&self, other: &CancelFlag) -> bool {
        self.is_cancelled() == other.is_cancelled()
    }
}

/// A host operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("host operation failed: {0}")]
pub struct HostError(pub String);

/// A host operation refused a request; the sandbox throws it to the extension as a
/// `FenError` with this `code` (spec 30 §2.7: `invalid_argument`,
/// `resource_schema_violation`, ...).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CtxError {
    /// The `FenError` code.
    pub code: String,
    /// One line.
    pub message: String,
}

impl CtxError {
    /// An error with a code.
    pub fn new(code: &str, message: impl Into<String>) -> CtxError {
        CtxError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The closed set of host operations offered as `ctx` (spec 30 §2.7–§2.8). Values
/// cross as JSON text, serialized in the sandbox with the pristine `JSON.stringify`.
/// The adapter checks argument types and the 8 MiB cap before calling; the host
/// checks names, specs and schemas before any I/O.
pub trait HostApi: Send + Sync {
    /// Writes a new version of a data artifact; returns its `DataHandle` as JSON.
    fn write_resource(
        &self,
        spec: &str,
        instance: &str,
        data_json: &str,
    ) -> Result<serde_json::Value, CtxError>;
    /// Reads one version (default: the latest) of a data artifact as JSON text.
    fn read_resource(
        &self,
        spec: &str,
        instance: &str,
        version: Option<u64>,
    ) -> Result<Option<String>, CtxError>;
    /// `[{ spec, instance, latest }]`, sorted, of one spec or all.
    fn list_resources(&self, spec: Option<&str>) -> Result<serde_json::Value, CtxError>;
    /// Emits a log line.
    fn log(&self, level: &str, message: &str);
    /// A file-root operation of a datastore call's `ctx` (spec 30 §2.8): `op` is
    /// `list`, `stat`, `readText`, `writeText`, `remove` or `copy`; `root` is `local`
    /// or `remote` (for `copy`, the root copied from); `data` is the text written (or
    /// empty). Answers JSON text. Hosts of model methods offer none.
    fn file_op(&self, op: &str, root: &str, path: &str, data: &str) -> Result<String, CtxError> {
        let _ = (root, path, data);
        Err(CtxError::new(
            "invalid_argument",
            format!("{op}: file roots are only offered to datastore calls"),
        ))
    }
    /// `ctx.<root>.readBytes(path)` of a datastore call: the bytes, or `None`.
    fn read_bytes(&self, root: &str, path: &str) -> Result<Option<Vec<u8>>, CtxError> {
        let _ = path;
        Err(CtxError::new(
            "invalid_argument",
            format!("{root}.readBytes: file roots are only offered to datastore calls"),
        ))
    }
    /// `ctx.<root>.writeBytes(path, u8)` of a datastore call.
    fn write_bytes(&self, root: &str, path: &str, bytes: &[u8]) -> Result<(), CtxError> {
        let _ = (path, bytes);
        Err(CtxError::new(
            "invalid_argument",
            format!("{root}.writeBytes: file roots are only offered to datastore calls"),
        ))
    }
}

/// A call into a type instance failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The extension threw. Displays like JS `String(value)`: `name: message` for an
    /// `Error`, just the text for any other thrown value. Each text is at most
    /// [`MAX_THROWN_BYTES`](crate::text::MAX_THROWN_BYTES), cut with a note
    /// ([`crate::text::cut_with_note`]) by the adapter that read the thrown value.
    #[error("{}", threw_text(.name, .message))]
    Threw {
        /// Error name (`TypeError`, `FenError`, ...); empty when a non-`Error` value
        /// was thrown.
        name: String,
        /// Error message; for a non-`Error` value, `String(value)`.
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
    /// The export has no function for the target (a method name the type does not
    /// have, or a missing datastore function).
    #[error("the export has no function {what}")]
    MissingFunction {
        /// The path of the function, e.g. `methods.record.run`.
        what: String,
    },
    /// The instance was discarded after an earlier limit or host panic, or its
    /// worker stopped; load the type again.
    #[error("the sandbox instance is no longer usable")]
    Unavailable,
}

/// `String(error)` of a JS error: `Error.prototype.toString` joins a non-empty name
/// and message with `": "`.
impl CallError {
    /// The same error with the texts of `Threw` cut to
    /// [`MAX_THROWN_BYTES`](crate::text::MAX_THROWN_BYTES): a no-op for an adapter
    /// that keeps the contract, a bound for one that does not.
    pub fn with_thrown_texts_cut(self) -> CallError {
        let cut = |text: String| crate::text::cut_text(text, crate::text::MAX_THROWN_BYTES);
        match self {
            CallError::Threw {
                name,
                message,
                code,
                stack,
            } => CallError::Threw {
                name: cut(name),
                message: cut(message),
                code: code.map(cut),
                stack: stack.map(cut),
            },
            other => other,
        }
    }
}

fn threw_text(name: &str, message: &str) -> String {
    match (name.is_empty(), message.is_empty()) {
        (true, _) => message.to_owned(),
        (false, true) => name.to_owned(),
        (false, false) => format!("{name}: {message}"),
    }
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
    /// The export cannot be snapshotted: an accessor property, a proxy, a cycle, a
    /// `BigInt`, ... (a validation failure, like a bad shape).
    #[error("export of {bundle} is invalid: {message}")]
    InvalidExport {
        /// The bundle.
        bundle: String,
        /// Why, naming the property path.
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

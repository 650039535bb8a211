//! Models (spec 30 §6, §7.8): `create`, `list` and `run_method`, over the
//! definitions, schema, data and lock ports. `arguments` holds the definition and
//! argument checks, `create_list` the two authoring commands, `run` the method run
//! and `lock_flow` the per-model lock (and sync) flow around it.
//!
//! A method run loads the type (which may commit a rebuilt bundle under the lifecycle
//! lock, spec 30 §5.3) and checks every argument *before* it asks for the model's
//! datastore lock, so the lifecycle lock is never held or awaited while a datastore
//! lock is held, and a run refused for bad input touches no datastore. The lock
//! `model/<name>` is then held around the call, the artifact writes (which allocate
//! versions under it) and the run record, and released on every path: explicitly
//! after the record, or by the guard's drop on an early return.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt, Shared};

use fen_domain::model::{ArgInput, RunRecord, Violation};
use fen_domain::ports::runtime::SandboxLimits;
use fen_domain::ports::{
    DatastoreSyncService, DefinitionError, DistributedLock, LockError, ModelData, ModelDefinitions,
    ModelName, SchemaValidator, SyncError,
};
use fen_domain::{Kind, TypeName};

use crate::loader::{LoadError, LoadedType, TypeLoader};
use crate::registry::suggestions;
use crate::stats::Stats;

mod arguments;
mod create_list;
mod lock_flow;
mod run;

/// Receives notices for the user: `(level, message)` with level `warning` or `info`.
pub type Notices = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// The ports the model commands use.
#[derive(Clone)]
pub struct ModelPorts {
    /// `models/*.yaml`.
    pub definitions: Arc<dyn ModelDefinitions>,
    /// Argument checks.
    pub schemas: Arc<dyn SchemaValidator>,
    /// `.fen/data/`.
    pub data: Arc<dyn ModelData>,
    /// The datastore's locks.
    pub locks: Arc<dyn DistributedLock>,
    /// The datastore's sync service (`None` for `local`).
    pub sync: Option<Arc<dyn DatastoreSyncService>>,
    /// The datastore as named in messages, e.g. `filesystem datastore at /mnt/fen`.
    pub datastore: String,
    /// `FEN_DATASTORE_LOCK_TIMEOUT_MS`.
    pub lock_wait_ms: u64,
    /// `FEN_DATASTORE_LOCK_TTL_MS`.
    pub lock_ttl_ms: u64,
    /// Counters and events.
    pub stats: Arc<Stats>,
    /// Warnings and info lines.
    pub notices: Notices,
    /// The repo root, to show source paths relative to it.
    pub root: String,
}

/// A model command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// `models/<name>.yaml` is invalid (`file:line:col: message`).
    #[error("{0}")]
    DefinitionInvalid(String),
    /// No such model.
    #[error("model \"{name}\" not found (no models/{name}.yaml)")]
    ModelNotFound {
        /// The name asked for.
        name: String,
        /// Up to three close names.
        suggestions: Vec<String>,
    },
    /// `create` found the model already defined.
    #[error("model \"{name}\" already exists ({path})")]
    ModelExists {
        /// The name.
        name: String,
        /// Its file.
        path: String,
    },
    /// A model name breaking the naming rule.
    #[error("{0}")]
    InvalidName(String),
    /// Argument input or values are invalid.
    #[error("{message}: {}", fen_domain::model::format_violations(.violations))]
    InvalidArguments {
        /// What was checked, e.g. `invalid global arguments for model "web" (type ...)`.
        message: String,
        /// The violations (one pseudo-violation for malformed input).
        violations: Vec<Violation>,
    },
    /// The type could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The merged type has no such method.
    #[error("model \"{model}\" (type {type_name}) has no method \"{method}\"")]
    UnknownMethod {
        /// The model.
        model: String,
        /// Its type.
        type_name: String,
        /// The method asked for.
        method: String,
        /// Every method with its origin.
        available: Vec<(String, String)>,
    },
    /// The model's datastore lock could not be taken or released.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The data store failed.
    #[error("{0}")]
    Data(String),
    /// The method ran and failed; the run was recorded.
    #[error("{message}")]
    MethodFailed {
        /// The CLI error code (`method_threw`, `sandbox_time_limit`, ...).
        code: String,
        /// One line.
        message: String,
        /// What to try.
        hint: Option<String>,
        /// A `FenError`'s own code.
        extension_code: Option<String>,
        /// The record written.
        record: Box<RunRecord>,
    },
    /// A signal arrived before the method started (while waiting for the lock, say);
    /// nothing ran and no lock is held.
    #[error("interrupted before method \"{method}\" of model \"{model}\" started; nothing ran")]
    Interrupted {
        /// The model.
        model: String,
        /// The method.
        method: String,
    },
    /// A pull before the run (nothing ran) or the push after it (the run is recorded,
    /// its data kept locally) failed.
    #[error("{message}")]
    Sync {
        /// Which call.
        stage: crate::datastore::Stage,
        /// The model.
        model: String,
        /// Why.
        cause: SyncError,
        /// One line naming the model and the datastore.
        message: String,
        /// The run record, for a failed push.
        record: Option<Box<RunRecord>>,
    },
    /// The lock was taken over during the run; data and record are kept locally.
    #[error("the lock on model \"{model}\" was taken over by another process during the run; data kept locally")]
    LockLost {
        /// The model.
        model: String,
        /// The record written.
        record: Box<RunRecord>,
    },
}

/// One row of `fen model list`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelListing {
    /// The model name (file stem).
    pub name: String,
    /// The type as written, when the file parsed.
    pub type_name: Option<String>,
    /// `ok`, `unknown_type` or `invalid_definition`.
    pub status: &'static str,
    /// The parse error of an invalid definition.
    pub detail: Option<String>,
    /// The newest run id.
    pub latest_run: Option<String>,
}

/// The model services.
pub struct Models {
    ports: ModelPorts,
    loader: Arc<TypeLoader>,
}

/// The argument input of a method run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The model.
    pub model: String,
    /// The method.
    pub method: String,
    /// `--arg`, `--args-json`, `--args-file`.
    pub args: ArgInput,
    /// Time and memory limits of the call.
    pub limits: SandboxLimits,
    /// Resolves on SIGINT/SIGTERM: a lock wait stops (`Interrupted`), a running call
    /// is cancelled and recorded as `cancelled`, and the lock is released after the
    /// record, never while the method's code can still write.
    pub interrupt: Option<Interrupt>,
}

/// A future every clone of which resolves when the command is interrupted.
#[derive(Clone)]
pub struct Interrupt(Shared<BoxFuture<'static, ()>>);

impl Interrupt {
    /// Resolves when `signal` does.
    pub fn new(signal: impl std::future::Future<Output = ()> + Send + 'static) -> Interrupt {
        Interrupt(signal.boxed().shared())
    }
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupt")
    }
}

/// Resolves when `interrupt` does; never without one.
pub(crate) async fn interrupted(interrupt: Option<Interrupt>) {
    match interrupt {
        Some(Interrupt(signal)) => signal.await,
        None => std::future::pending().await,
    }
}

impl Models {
    /// The services over `ports`, loading types with `loader`.
    pub fn new(ports: ModelPorts, loader: Arc<TypeLoader>) -> Models {
        Models { ports, loader }
    }

    fn parse_name(&self, raw: &str) -> Result<ModelName, ModelError> {
        ModelName::parse(raw).map_err(ModelError::InvalidName)
    }

    fn definition_error(error: DefinitionError) -> ModelError {
        match error {
            DefinitionError::Invalid { .. } => ModelError::DefinitionInvalid(error.to_string()),
            other => ModelError::Data(other.to_string()),
        }
    }

    fn not_found(&self, raw: &str) -> ModelError {
        let known = self.ports.definitions.names().unwrap_or_default();
        ModelError::ModelNotFound {
            name: raw.to_owned(),
            suggestions: suggestions(raw, known.iter().map(String::as_str)),
        }
    }

    /// Loads a model type: `unknown_type` for a name that does not parse.
    async fn load_type(&self, raw: &str) -> Result<Arc<LoadedType>, ModelError> {
        let ty = TypeName::parse(raw).map_err(|_| LoadError::UnknownType {
            name: raw.to_owned(),
            suggestions: Vec::new(),
        })?;
        Ok(self.loader.ensure_type_loaded(Kind::Model, &ty).await?)
    }
}

//! Ports of the model runtime (spec 30 §6, §2.10): model definitions under `models/`,
//! JSON Schema checks of arguments, and the local data store that holds artifacts and
//! run records and serves `ctx` to a run.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::model::{DataHandle, ModelDefinition, RunRecord, Violation};
use crate::ports::datastore::ModelName;
use crate::ports::runtime::HostApi;

/// A definitions operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The file does not parse or has the wrong shape; `location` is `file:line:col`.
    #[error("{location}: {message}")]
    Invalid {
        /// `file:line:col` (or just the file).
        location: String,
        /// What is wrong.
        message: String,
    },
    /// `create` found the file already there; it was not touched.
    #[error("{path} already exists")]
    Exists {
        /// The file.
        path: String,
    },
    /// A file system failure.
    #[error("{0}")]
    Io(String),
}

/// `models/<name>.yaml`.
pub trait ModelDefinitions: Send + Sync {
    /// The definition of `name`, or `None` when there is no such file.
    fn read(&self, name: &ModelName) -> Result<Option<ModelDefinition>, DefinitionError>;
    /// The names of every `models/*.yaml` (lexical, no subdirectories), sorted.
    fn names(&self) -> Result<Vec<String>, DefinitionError>;
    /// Writes a new definition; fails with `Exists` (file untouched) if it is there.
    fn create(&self, definition: &ModelDefinition) -> Result<String, DefinitionError>;
}

/// Checks values against JSON Schemas (formats asserted, no external `$ref`).
pub trait SchemaValidator: Send + Sync {
    /// Every violation of `value` against `schema`; `Err` when the schema itself does
    /// not compile.
    fn validate(&self, schema: &Value, value: &Value) -> Result<Vec<Violation>, String>;
}

/// What a run's `ctx` is about.
#[derive(Clone, Debug, PartialEq)]
pub struct RunScope {
    /// The model.
    pub model: ModelName,
    /// The type as declared.
    pub type_name: String,
    /// The loaded type's version.
    pub type_version: String,
    /// The method.
    pub method: String,
    /// The run id.
    pub run_id: String,
    /// The merged type's resource specs: name → schema.
    pub resources: BTreeMap<String, Value>,
}

/// A data store failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

/// The `HostApi` of one run, remembering the handles it wrote.
pub trait RunHost: HostApi {
    /// Every version written so far, in order.
    fn handles(&self) -> Vec<DataHandle>;
}

/// The local data store `.fen/data/` (spec 30 §2.10, §7.1). Writes are atomic;
/// version allocation relies on the caller holding the model's datastore lock.
pub trait ModelData: Send + Sync {
    /// The `ctx` host of one run.
    fn begin_run(&self, scope: RunScope) -> Arc<dyn RunHost>;
    /// Writes a run record (create-new, atomic); returns its path.
    fn write_run_record(&self, record: &RunRecord) -> Result<String, DataError>;
    /// The newest run id of a model (from record names only), if any.
    fn latest_run(&self, model: &ModelName) -> Result<Option<String>, DataError>;
    /// A fresh run id `<yyyymmddThhmmssZ>-<8 hex>` for a run starting at `started_at`.
    fn new_run_id(&self, started_at: &str) -> String;
    /// Now, RFC 3339 UTC.
    fn now(&self) -> String;
}

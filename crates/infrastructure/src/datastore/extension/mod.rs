//! Extension datastores (spec 30 §2.5, §2.8, §7.6): `JsDatastoreSyncService` calls
//! the loaded datastore type's `capabilities` / `pullChanged` / `pushChanged` in its
//! sandbox instance, with a `ctx` whose only file access is the two confined roots of
//! [`roots`]. Locks stay fen's own `FileDistributedLock` under `<remote>/.fen-locks/`,
//! a prefix both roots refuse.

pub mod roots;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use async_trait::async_trait;
use serde_json::{json, Value as Json};

use fen_domain::ports::datastore::{
    DatastoreSyncService, SyncCapabilities, SyncError, SyncOptions, SyncOutcome,
};
use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, CtxError, HostApi, SandboxLimits, TypeInstance,
};

use roots::FileRoot;

/// Time limit of the capability probe (spec 30 §4.3).
pub const CAPABILITIES_LIMIT: Duration = Duration::from_millis(1_000);

/// Receives `ctx.log` lines of a datastore call: `(level, message)`.
pub type DatastoreLogSink = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Loads a fresh instance of the datastore type (after a limit hit, the sandbox
/// discards the instance it ran in; spec 30 §4.2).
pub type ReloadInstance =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn TypeInstance>, String>> + Send + Sync>;

/// The sync service of an extension datastore.
pub struct JsDatastoreSyncService {
    type_name: String,
    instance: Mutex<Arc<dyn TypeInstance>>,
    /// Set when the last call ended in a way that discards the instance.
    discarded: AtomicBool,
    reload: Option<ReloadInstance>,
    config: Json,
    local: FileRoot,
    remote: FileRoot,
    limits: SandboxLimits,
    log: DatastoreLogSink,
}

impl JsDatastoreSyncService {
    /// A service over a loaded instance of datastore type `type_name`; `config` was
    /// validated against its `configSchema`; `limits.time` is the sync timeout.
    pub fn new(
        type_name: String,
        instance: Arc<dyn TypeInstance>,
        config: Json,
        local: std::path::PathBuf,
        remote: std::path::PathBuf,
        limits: SandboxLimits,
        log: DatastoreLogSink,
    ) -> JsDatastoreSyncService {
        JsDatastoreSyncService {
            type_name,
            instance: Mutex::new(instance),
            discarded: AtomicBool::new(false),
            reload: None,
            config,
            local: FileRoot::local(local),
            remote: FileRoot::remote(remote),
            limits,
            log,
        }
    }

    /// Uses `reload` for a fresh instance when a call left the current one discarded
    /// (a capability probe over its 1 000 ms must not break the pull that follows).
    pub fn with_reload(mut self, reload: ReloadInstance) -> JsDatastoreSyncService {
        self.reload = Some(reload);
        self
    }

    /// Calls `target` on a live instance, reloading a discarded one first.
    async fn call(
        &self,
        target: &CallTarget,
        args: Json,
        limits: SandboxLimits,
    ) -> Result<Json, CallError> {
        if self.discarded.load(Ordering::SeqCst) {
            if let Some(reload) = &self.reload {
                let fresh = reload().await.map_err(|message| CallError::Threw {
                    name: String::new(),
                    message: format!("reloading the type failed: {message}"),
                    code: None,
                    stack: None,
                })?;
                *self.instance.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                self.discarded.store(false, Ordering::SeqCst);
            }
        }
        let instance = Arc::clone(&self.instance.lock().unwrap_or_else(|e| e.into_inner()));
        let result = instance
            .call(target, self.input(args), self.host(), limits)
            .await;
        if let Err(
            CallError::TimeLimit { .. }
            | CallError::MemoryLimit { .. }
            | CallError::Cancelled
            | CallError::Host(_)
            | CallError::Unavailable,
        ) = &result
        {
            self.discarded.store(true, Ordering::SeqCst);
        }
        result
    }

    fn host(&self) -> Arc<dyn HostApi> {
        Arc::new(DatastoreHost {
            local: self.local.clone(),
            remote: self.remote.clone(),
            log: Arc::clone(&self.log),
        })
    }

    fn input(&self, args: Json) -> CallInput {
        let mut context = serde_json::Map::new();
        context.insert("config".to_owned(), self.config.clone());
        CallInput {
            args,
            context,
            cancel: Default::default(),
        }
    }

    fn failed(&self, function: &str, error: CallError) -> SyncError {
        SyncError::Extension(format!(
            "{function}() of datastore type \"{}\" failed: {error}",
            self.type_name
        ))
    }

    async fn transfer(
        &self,
        target: CallTarget,
        function: &str,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, SyncError> {
        let args = match options {
            None => Json::Null,
            Some(options) => json!({
                "context": {
                    "models": options.context.models.iter().map(|m| json!({
                        "name": m.name.0,
                        "type": m.model_type.as_str(),
                    })).collect::<Vec<_>>()
                }
            }),
        };
        let value = self
            .call(&target, args, self.limits)
            .await
            .map_err(|e| self.failed(function, e))?;
        files_transferred(&value)
            .map_err(|reason| self.failed(function, CallError::InvalidReturn { reason }))
    }
}

/// The outcome of a pull/push return value: a non-negative integer, or `undefined`.
fn files_transferred(value: &Json) -> Result<SyncOutcome, String> {
    match value {
        Json::Null => Ok(SyncOutcome {
            files_transferred: None,
        }),
        Json::Number(n) => match n.as_u64() {
            Some(n) => Ok(SyncOutcome {
                files_transferred: Some(n),
            }),
            None => Err(format!(
                "{n} is not a non-negative integer (return a file count or undefined)"
            )),
        },
        other => Err(format!(
            "{} is not a file count (return a non-negative integer or undefined)",
            shown(other)
        )),
    }
}

/// Capabilities from a probe's answer: an object whose fields count only when
/// exactly `true` (spec 30 §7.4); anything else is an error (the caller warns once
/// and uses the default).
fn capabilities_of(value: &Json) -> Result<SyncCapabilities, String> {
    match value {
        // `undefined` (or an absent `capabilities`): the default, no warning.
        Json::Null => Ok(SyncCapabilities::default()),
        Json::Object(map) => Ok(SyncCapabilities {
            scoped_sync: map.get("scopedSync") == Some(&Json::Bool(true)),
            lazy_hydration: map.get("lazyHydration") == Some(&Json::Bool(true)),
        }),
        other => Err(format!(
            "capabilities() returned {}, not an object",
            shown(other)
        )),
    }
}

fn shown(value: &Json) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        format!("{}...", fen_domain::text::cut_text(text, 80))
    } else {
        text
    }
}

#[async_trait]
impl DatastoreSyncService for JsDatastoreSyncService {
    async fn capabilities(&self) -> Result<SyncCapabilities, SyncError> {
        let limits = SandboxLimits {
            time: CAPABILITIES_LIMIT,
            ..self.limits
        };
        let value = self
            .call(&CallTarget::DatastoreCapabilities, Json::Null, limits)
            .await
            .map_err(|e| self.failed("capabilities", e))?;
        capabilities_of(&value).map_err(|reason| {
            SyncError::Extension(format!("datastore type \"{}\": {reason}", self.type_name))
        })
    }

    async fn pull_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.transfer(CallTarget::DatastorePull, "pullChanged", options)
            .await
    }

    async fn push_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.transfer(CallTarget::DatastorePush, "pushChanged", options)
            .await
    }
}

/// The host of one datastore call: the two roots and the log.
struct DatastoreHost {
    local: FileRoot,
    remote: FileRoot,
    log: DatastoreLogSink,
}

impl DatastoreHost {
    fn root(&self, name: &str) -> Result<&FileRoot, CtxError> {
        match name {
            "local" => Ok(&self.local),
            "remote" => Ok(&self.remote),
            other => Err(CtxError::new(
                "invalid_argument",
                format!("unknown file root {other:?}"),
            )),
        }
    }
}

fn no_resources() -> CtxError {
    CtxError::new(
        "invalid_argument",
        "resource operations are only offered to model methods",
    )
}

impl HostApi for DatastoreHost {
    fn write_resource(&self, _: &str, _: &str, _: &str) -> Result<Json, CtxError> {
        Err(no_resources())
    }

    fn read_resource(&self, _: &str, _: &str, _: Option<u64>) -> Result<Option<String>, CtxError> {
        Err(no_resources())
    }

    fn list_resources(&self, _: Option<&str>) -> Result<Json, CtxError> {
        Err(no_resources())
    }

    fn log(&self, level: &str, message: &str) {
        (self.log)(level, message);
    }

    fn read_bytes(&self, root: &str, path: &str) -> Result<Option<Vec<u8>>, CtxError> {
        self.root(root)?.read_bytes("readBytes", path)
    }

    fn write_bytes(&self, root: &str, path: &str, bytes: &[u8]) -> Result<(), CtxError> {
        self.root(root)?.write_bytes(path, bytes)
    }

    fn file_op(&self, op: &str, root: &str, path: &str, data: &str) -> Result<String, CtxError> {
        let from = self.root(root)?;
        let value = match op {
            "list" => from.list(path)?,
            "stat" => from.stat(path)?,
            "readText" => from.read_text(path)?,
            "writeText" => {
                from.write_text(path, data)?;
                Json::Null
            }
            "remove" => from.remove(path)?,
            "copy" => {
                let to = if from.name() == "local" {
                    &self.remote
                } else {
                    &self.local
                };
                roots::copy(from, to, path)?;
                Json::Null
            }
            other => {
                return Err(CtxError::new(
                    "invalid_argument",
                    format!("unknown file operation {other:?}"),
                ))
            }
        };
        Ok(value.to_string())
    }
}

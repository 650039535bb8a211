//! The method run (spec 30 §6.5): checks, then the call and its run record under the
//! model's lock, between one pull and one push when the datastore syncs (§7.8; the
//! helpers are in `lock_flow`).
//!
//! A method run loads the type (which may commit a rebuilt bundle under the lifecycle
//! lock, spec 30 §5.3) and checks every argument *before* it asks for the model's
//! datastore lock, so the lifecycle lock is never held or awaited while a datastore
//! lock is held, and a run refused for bad input touches no datastore. The lock
//! `model/<name>` is then held around the call, the artifact writes (which allocate
//! versions under it) and the run record, and released on every path: explicitly
//! after the record, or by the guard's drop on an early return.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::future::{self, Either, FutureExt};
use serde_json::{json, Map, Value};

use fen_domain::model::{with_defaults, RunError, RunRecord, RunStatus};
use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, CancelFlag, CtxError, HostApi, SandboxLimits,
};
use fen_domain::ports::{model_lock_key, LockGuard, LockLoss, ModelName, RunHost, RunScope};

use super::{interrupted, Interrupt, ModelError, Models, RunRequest};
use crate::datastore::locking::Acquired;
use crate::datastore::Stage;
use crate::loader::LoadedType;
use crate::registry::{declared_type, merge_members, MethodInfo};

/// A checked run, ready to go under the lock.
struct Planned<'a> {
    name: &'a ModelName,
    declared: &'a str,
    type_version: &'a str,
    method: &'a MethodInfo,
    loaded: &'a LoadedType,
    args: Map<String, Value>,
    global_args: Map<String, Value>,
    resources: &'a BTreeMap<String, Value>,
    limits: SandboxLimits,
    interrupt: Option<Interrupt>,
    loss: LockLoss,
}

/// The `ctx` host of a run under the model's lock: once the lock is lost (taken over
/// by another process), writes are refused with `lock_lost`, so this run stops
/// allocating versions beside the new holder (spec 30 §7.7: the holder stops using
/// a lost lock). Reads, listings and logs go through.
struct LockedHost {
    inner: Arc<dyn RunHost>,
    loss: LockLoss,
    model: String,
}

impl HostApi for LockedHost {
    fn write_resource(
        &self,
        spec: &str,
        instance: &str,
        data_json: &str,
    ) -> Result<Value, CtxError> {
        if self.loss.is_lost() {
            return Err(CtxError::new(
                "lock_lost",
                format!(
                    "the lock on model \"{}\" was taken over by another process; nothing more is written",
                    self.model
                ),
            ));
        }
        self.inner.write_resource(spec, instance, data_json)
    }
    fn read_resource(
        &self,
        spec: &str,
        instance: &str,
        version: Option<u64>,
    ) -> Result<Option<String>, CtxError> {
        self.inner.read_resource(spec, instance, version)
    }
    fn list_resources(&self, spec: Option<&str>) -> Result<Value, CtxError> {
        self.inner.list_resources(spec)
    }
    fn log(&self, level: &str, message: &str) {
        self.inner.log(level, message);
    }
}

impl Models {
    /// `fen model method run` on the `local` datastore (spec 30 §6.5, §7.8 with
    /// steps 4, 5 and 7 skipped). Returns the run record of a successful run.
    pub async fn run_method(&self, req: &RunRequest) -> Result<RunRecord, ModelError> {
        // 1. The definition.
        let name = ModelName::parse(&req.model).map_err(|_| self.not_found(&req.model))?;
        let definition = self
            .ports
            .definitions
            .read(&name)
            .map_err(Self::definition_error)?
            .ok_or_else(|| self.not_found(&req.model))?;
        // 2. The type with its extensions (may commit a rebuilt bundle, spec 30 §5.3).
        let loaded = self.load_type(&definition.type_name).await?;
        let declared = declared_type(&loaded.entry);
        let type_version = loaded.entry.meta.declared_version.clone();
        if let Some(written) = &definition.type_version {
            if *written != type_version {
                (self.ports.notices)(
                    "info",
                    &format!(
                        "model \"{name}\" was created with {declared} {written}; running it with version {type_version}"
                    ),
                );
            }
        }
        let merged = merge_members(&loaded.entry, &loaded.extensions);
        for warning in &merged.warnings {
            (self.ports.notices)("warning", warning);
        }
        // 3. Global arguments against the current schema.
        let descriptor: Value =
            serde_json::from_str(&loaded.entry.meta.descriptor).unwrap_or(Value::Null);
        let global_schema = descriptor
            .get("globalArguments")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "additionalProperties": false}));
        let global_args = with_defaults(&global_schema, &definition.global_arguments);
        self.validate(
            &global_schema,
            &global_args,
            format!("invalid global arguments for model \"{name}\" (type {declared})"),
        )?;
        // 4. The method on the merged type.
        let Some(method) = merged.methods.iter().find(|m| m.name == req.method) else {
            return Err(ModelError::UnknownMethod {
                model: name.to_string(),
                type_name: declared,
                method: req.method.clone(),
                available: merged
                    .methods
                    .iter()
                    .map(|m| (m.name.clone(), self.show_origin(&loaded, m)))
                    .collect(),
            });
        };
        // 5. Method arguments.
        let message = format!(
            "invalid arguments for method \"{}\" of model \"{name}\"",
            method.name
        );
        let args = self
            .checked_args(&req.args, &method.arguments, message)?
            .with_defaults;

        // 6. Lock (§7.8 steps 1-3), run, record, release.
        let key = model_lock_key(&name);
        let guard = match self
            .acquire_model_lock(&name, req.interrupt.clone())
            .await?
        {
            Acquired::Held(mut guards) => guards.remove(0),
            Acquired::Interrupted => {
                return Err(ModelError::Interrupted {
                    model: name.to_string(),
                    method: method.name.clone(),
                })
            }
        };
        let stats = &self.ports.stats;
        stats.event(
            "lock_acquired",
            json!({ "lock": key, "model": name.as_str() }),
        );
        let release = |guard: LockGuard| {
            let released = guard.release();
            stats.event(
                "lock_released",
                json!({ "lock": key, "model": name.as_str() }),
            );
            released
        };
        // 4-5. Probe once, pull once; a failed pull skips the run and the push.
        let sync = self.run_sync(&name, &declared).await;
        if let Some(sync) = &sync {
            if let Err(cause) = self.sync_step(sync, Stage::Pull, &name).await {
                let error = self.sync_failed(Stage::Pull, &name, cause, None);
                release(guard)?;
                return Err(error);
            }
            // A signal during the pull: nothing has run yet, so nothing runs.
            if req
                .interrupt
                .as_ref()
                .is_some_and(|Interrupt(signal)| signal.clone().now_or_never().is_some())
            {
                release(guard)?;
                return Err(ModelError::Interrupted {
                    model: name.to_string(),
                    method: method.name.clone(),
                });
            }
        }
        // 6. Run.
        let outcome = self
            .run_locked(Planned {
                name: &name,
                declared: &declared,
                type_version: &type_version,
                method,
                loaded: &loaded,
                args,
                global_args,
                resources: &merged.resources,
                limits: req.limits,
                interrupt: req.interrupt.clone(),
                loss: guard.loss(),
            })
            .await;
        let lost = guard.is_lost();
        // 7. Push once, whether the method succeeded or not, unless the lock was lost
        // or a signal cancelled the run.
        let cancelled =
            matches!(&outcome, Ok((record, _)) if record.status == RunStatus::Cancelled);
        let pushed = match &sync {
            Some(sync) if !lost && !cancelled => {
                Some(self.sync_step(sync, Stage::Push, &name).await)
            }
            _ => None,
        };
        // 8. Release.
        let released = release(guard);
        let (record, extension_code) = outcome?;
        if lost {
            return Err(ModelError::LockLost {
                model: name.to_string(),
                record: Box::new(record),
            });
        }
        released?;
        match (&record.error, pushed) {
            (None, Some(Err(cause))) => {
                Err(self.sync_failed(Stage::Push, &name, cause, Some(record)))
            }
            (None, _) => Ok(record),
            (Some(_), Some(Err(cause))) => {
                // The method's code wins; the push failure is reported beside it.
                let push = self.sync_failed(Stage::Push, &name, cause, None);
                (self.ports.notices)("warning", &push.to_string());
                Err(failure(record, extension_code))
            }
            (Some(_), _) => Err(failure(record, extension_code)),
        }
    }

    /// The run itself, under the model's lock: call, then write the run record.
    async fn run_locked(
        &self,
        planned: Planned<'_>,
    ) -> Result<(RunRecord, Option<String>), ModelError> {
        let Planned {
            name,
            declared,
            type_version,
            method,
            loaded,
            args,
            global_args,
            resources,
            limits,
            interrupt,
            loss,
        } = planned;
        let data = &self.ports.data;
        let started_at = data.now();
        let run_id = data.new_run_id(&started_at);
        let host = data.begin_run(RunScope {
            model: name.clone(),
            type_name: declared.to_owned(),
            type_version: type_version.to_owned(),
            method: method.name.clone(),
            run_id: run_id.clone(),
            resources: resources.clone(),
        });
        let mut context = Map::new();
        context.insert("globalArgs".to_owned(), Value::Object(global_args));
        context.insert(
            "model".to_owned(),
            json!({ "name": name.as_str(), "type": declared, "typeVersion": type_version }),
        );
        context.insert("method".to_owned(), json!(method.name));
        context.insert("runId".to_owned(), json!(run_id));
        let stats = &self.ports.stats;
        stats.event(
            "method_start",
            json!({ "model": name.as_str(), "method": method.name, "runId": run_id }),
        );
        let clock = Instant::now();
        let host_api: Arc<dyn HostApi> = Arc::new(LockedHost {
            inner: host.clone(),
            loss,
            model: name.to_string(),
        });
        let cancel = CancelFlag::default();
        let target = CallTarget::ModelMethod {
            name: method.name.clone(),
        };
        let call = loaded.instance.call(
            &target,
            CallInput {
                args: Value::Object(args.clone()),
                context,
                cancel: cancel.clone(),
            },
            host_api,
            limits,
        );
        let interrupt = interrupted(interrupt);
        futures::pin_mut!(call, interrupt);
        // On a signal the call is cancelled and awaited: it ends at the sandbox's next
        // interrupt check, and host operations refuse to start once it is cancelled, so
        // nothing is written after the record below and the lock release after it.
        let result = match future::select(call, interrupt).await {
            Either::Left((result, _)) => result,
            Either::Right(((), call)) => {
                cancel.cancel();
                call.await
            }
        };
        let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Thrown texts go into the record and the CLI's error: bounded whatever the
        // runtime adapter did.
        let result = result.map_err(CallError::with_thrown_texts_cut);
        let extension_code = match &result {
            Err(CallError::Threw { name, code, .. }) if name == "FenError" => code.clone(),
            _ => None,
        };
        let (status, error, result, stack) = match result {
            Ok(value) => (RunStatus::Succeeded, None, value, None),
            Err(error) => {
                let (status, code, message, stack) = self.classify(name, method, loaded, &error);
                (status, Some(RunError { code, message }), Value::Null, stack)
            }
        };
        stats.event(
            "method_end",
            json!({ "model": name.as_str(), "method": method.name, "runId": run_id, "status": status.as_str() }),
        );
        let record = RunRecord {
            run_id,
            model: name.to_string(),
            type_name: declared.to_owned(),
            type_version: type_version.to_owned(),
            method: method.name.clone(),
            args: Value::Object(args),
            status,
            error,
            started_at,
            finished_at: data.now(),
            duration_ms,
            handles: host.handles(),
            result,
            stack,
        };
        data.write_run_record(&record)
            .map_err(|e| ModelError::Data(e.to_string()))?;
        Ok((record, extension_code))
    }

    /// Where a method comes from, for messages: the base source or the extension
    /// source, relative to the repo.
    fn show_origin(&self, loaded: &LoadedType, method: &MethodInfo) -> String {
        let path = if method.origin == "base" {
            loaded.entry.source_path.as_str()
        } else {
            method.origin.as_str()
        };
        path.strip_prefix(&self.ports.root)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(path)
            .to_owned()
    }

    /// Status, CLI code, message and stack of a failed call (spec 30 §2.9, §6.6).
    fn classify(
        &self,
        name: &ModelName,
        method: &MethodInfo,
        loaded: &LoadedType,
        error: &CallError,
    ) -> (RunStatus, String, String, Option<String>) {
        let m = &method.name;
        let subject = || {
            format!(
                "method \"{m}\" of model \"{name}\" (type {}, source {})",
                declared_type(&loaded.entry),
                self.show_origin(loaded, method)
            )
        };
        match error {
            CallError::Threw {
                name: error_name,
                message,
                stack,
                ..
            } if error_name == "FenError" => (
                RunStatus::Failed,
                "method_threw".to_owned(),
                message.clone(),
                stack.clone(),
            ),
            CallError::Threw { stack, .. } => (
                RunStatus::Failed,
                "method_threw".to_owned(),
                format!("method \"{m}\" of model \"{name}\" threw: {error}"),
                stack.clone(),
            ),
            CallError::TimeLimit { limit } => (
                RunStatus::LimitExceeded,
                "sandbox_time_limit".to_owned(),
                format!(
                    "{} exceeded the execution time limit of {} ms; the run was recorded as limit_exceeded",
                    subject(),
                    limit.as_millis()
                ),
                None,
            ),
            CallError::MemoryLimit { limit_bytes } => (
                RunStatus::LimitExceeded,
                "sandbox_memory_limit".to_owned(),
                format!(
                    "{} exceeded the memory limit of {}; the run was recorded as limit_exceeded",
                    subject(),
                    mebibytes(*limit_bytes)
                ),
                None,
            ),
            CallError::DidNotSettle => (
                RunStatus::Failed,
                "did_not_settle".to_owned(),
                format!("{} returned a promise that can never settle", subject()),
                None,
            ),
            CallError::InvalidReturn { reason } => (
                RunStatus::Failed,
                "invalid_return".to_owned(),
                format!("{} returned an invalid value: {reason}", subject()),
                None,
            ),
            CallError::Cancelled => (
                RunStatus::Cancelled,
                "interrupted".to_owned(),
                format!(
                    "{} was interrupted; the run was recorded as cancelled",
                    subject()
                ),
                None,
            ),
            other => (
                RunStatus::Failed,
                "type_unavailable".to_owned(),
                format!("{} could not run: {other}", subject()),
                None,
            ),
        }
    }
}

/// The error of a recorded failed run, with its hint.
fn failure(record: RunRecord, extension_code: Option<String>) -> ModelError {
    let error = record.error.clone().unwrap_or(RunError {
        code: "internal_error".to_owned(),
        message: "the run failed".to_owned(),
    });
    let hint = match error.code.as_str() {
        "sandbox_time_limit" => Some(
            "raise it with --timeout-ms <ms> or FEN_SANDBOX_TIMEOUT_MS (max 600000), or fix the extension",
        ),
        "sandbox_memory_limit" => Some(
            "raise it with --memory-mb <MiB> or FEN_SANDBOX_MEMORY_MB (max 1024), or fix the extension",
        ),
        "did_not_settle" => {
            Some("the sandbox has no timers; settle the promise from the method's own work")
        }
        "invalid_return" => Some("return undefined or a JSON-serializable value of at most 1 MiB"),
        "interrupted" => {
            Some("artifacts written before the signal are kept; run the method again")
        }
        _ => None,
    };
    ModelError::MethodFailed {
        code: error.code,
        message: error.message,
        hint: hint.map(str::to_owned),
        extension_code,
        record: Box::new(record),
    }
}

/// `64 MiB` for whole mebibytes, else bytes.
fn mebibytes(bytes: usize) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use fen_domain::model::DataHandle;

    #[derive(Default)]
    struct Host {
        writes: Mutex<usize>,
    }

    impl HostApi for Host {
        fn write_resource(&self, _: &str, _: &str, _: &str) -> Result<Value, CtxError> {
            *self.writes.lock().unwrap() += 1;
            Ok(Value::Null)
        }
        fn read_resource(
            &self,
            _: &str,
            _: &str,
            _: Option<u64>,
        ) -> Result<Option<String>, CtxError> {
            Ok(Some("1".to_owned()))
        }
        fn list_resources(&self, _: Option<&str>) -> Result<Value, CtxError> {
            Ok(json!([]))
        }
        fn log(&self, _: &str, _: &str) {}
    }

    impl RunHost for Host {
        fn handles(&self) -> Vec<DataHandle> {
            Vec::new()
        }
    }

    #[test]
    fn writes_stop_once_the_lock_is_lost() {
        let inner = Arc::new(Host::default());
        let loss = LockLoss::default();
        let host = LockedHost {
            inner: inner.clone(),
            loss: loss.clone(),
            model: "web".to_owned(),
        };
        host.write_resource("v", "i", "{}").expect("written");
        loss.mark();
        let error = host.write_resource("v", "i", "{}").expect_err("refused");
        assert_eq!(error.code, "lock_lost");
        assert_eq!(*inner.writes.lock().unwrap(), 1);
        assert_eq!(host.read_resource("v", "i", None), Ok(Some("1".to_owned())));
    }
}

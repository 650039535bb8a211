//! Calls into a live sandbox (spec 30 §4.2): finding the target function through own
//! data properties, building `ctx`, waiting for a returned promise, and converting
//! the result and thrown values.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use rquickjs::function::{Opt, This};
use rquickjs::{Ctx, Function, Object, Type, TypedArray, Value};
use serde_json::Value as Json;

use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, CtxError, HostApi, SandboxLimits,
};

use super::super::js_text;
use super::super::snapshot::own_data;
use super::super::thrown::{caught, caught_text, thrown, Thrown};
use super::{one_line, restore, settle, Clock, LogBudget, Sandbox, Settled};

/// Largest serialized return value of a call (spec 30 §2.3).
const MAX_RETURN_BYTES: usize = 1024 * 1024;

impl Sandbox {
    /// Runs one call. After `TimeLimit` or `MemoryLimit` the caller discards the
    /// sandbox.
    pub(crate) fn call(
        &mut self,
        target: &CallTarget,
        input: CallInput,
        host: Arc<dyn HostApi>,
        limits: SandboxLimits,
    ) -> Result<Json, CallError> {
        if input.cancel.is_cancelled() {
            return Err(CallError::Cancelled);
        }
        self.arm(limits);
        self.clock.watch(input.cancel.clone());
        let revoked = Rc::new(Cell::new(false));
        let outcome = self.context.with(|ctx| {
            let result = self.call_in(&ctx, target, input, host, revoked.clone());
            revoked.set(true);
            result
        });
        self.clock.disarm();
        if self.heap.limit_hit() {
            return Err(CallError::MemoryLimit {
                limit_bytes: limits.memory_bytes,
            });
        }
        if self.clock.cancelled.get() {
            return Err(CallError::Cancelled);
        }
        if self.clock.interrupted.get() {
            return Err(CallError::TimeLimit { limit: limits.time });
        }
        outcome
    }

    /// The body of [`Sandbox::call`], inside the context.
    fn call_in<'js>(
        &self,
        ctx: &Ctx<'js>,
        target: &CallTarget,
        input: CallInput,
        host: Arc<dyn HostApi>,
        revoked: Rc<Cell<bool>>,
    ) -> Result<Json, CallError> {
        let internal = |message: String| CallError::Threw {
            name: "InternalError".to_owned(),
            message,
            code: None,
            stack: None,
        };
        let helpers = restore(ctx, &self.handles.helpers).map_err(internal)?;
        let fen_error_prototype =
            restore(ctx, &self.handles.fen_error_prototype).map_err(internal)?;
        let describe: Function = helpers
            .get("describe")
            .map_err(|e| internal(caught_text(ctx, e)))?;
        let namespaces = self
            .handles
            .namespaces
            .iter()
            .map(|namespace| restore(ctx, namespace))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;

        let Some((function, this)) =
            find_target(ctx, &describe, &namespaces, target).map_err(internal)?
        else {
            return match target {
                // An absent `capabilities` means "no capabilities" (spec 30 §7.4).
                CallTarget::DatastoreCapabilities => Ok(Json::Null),
                CallTarget::ModelMethod { name } => Err(CallError::MissingFunction {
                    what: format!("methods.{name}.run"),
                }),
                CallTarget::DatastorePull => Err(CallError::MissingFunction {
                    what: "pullChanged".to_owned(),
                }),
                CallTarget::DatastorePush => Err(CallError::MissingFunction {
                    what: "pushChanged".to_owned(),
                }),
            };
        };

        let members = match target {
            CallTarget::ModelMethod { .. } => Members::Resources,
            CallTarget::DatastoreCapabilities => Members::ConfigAndLog,
            CallTarget::DatastorePull | CallTarget::DatastorePush => Members::Files,
        };
        let call_ctx = self
            .make_ctx(ctx, &helpers, &input.context, host, revoked, members)
            .map_err(internal)?;
        let result: rquickjs::Result<Value> = match target {
            CallTarget::ModelMethod { .. } => {
                let args = ctx
                    .json_parse(input.args.to_string())
                    .map_err(|e| internal(caught_text(ctx, e)))?;
                function.call((This(this), args, call_ctx))
            }
            CallTarget::DatastoreCapabilities => function.call((This(this), call_ctx)),
            CallTarget::DatastorePull | CallTarget::DatastorePush => {
                let opts = if input.args.is_null() {
                    Value::new_undefined(ctx.clone())
                } else {
                    ctx.json_parse(input.args.to_string())
                        .map_err(|e| internal(caught_text(ctx, e)))?
                };
                function.call((This(this), opts, call_ctx))
            }
        };
        let value = match result {
            Ok(value) => value,
            Err(error) => return Err(threw(caught(ctx, error, Some(&fen_error_prototype)))),
        };
        let value = match value.clone().into_promise() {
            None => value,
            Some(promise) => match settle(ctx, &self.clock, &self.heap, &promise) {
                Settled::Fulfilled(value) => value,
                Settled::Rejected(reason) => {
                    return Err(threw(thrown(ctx, reason, Some(&fen_error_prototype))))
                }
                Settled::Pending => return Err(CallError::DidNotSettle),
                // The caller reports the limit.
                Settled::Interrupted => return Ok(Json::Null),
            },
        };
        return_value(ctx, value)
    }

    /// Builds the `ctx` argument of one call.
    fn make_ctx<'js>(
        &self,
        ctx: &Ctx<'js>,
        helpers: &Object<'js>,
        data: &serde_json::Map<String, Json>,
        host: Arc<dyn HostApi>,
        revoked: Rc<Cell<bool>>,
        members: Members,
    ) -> Result<Value<'js>, String> {
        let fail = |e| caught_text(ctx, e);
        let file_host = if members == Members::Files {
            let host = Arc::clone(&host);
            let revoked = revoked.clone();
            let clock = self.clock.clone();
            Function::new(
                ctx.clone(),
                move |op: String,
                      root: String,
                      path: String,
                      data: rquickjs::String<'js>|
                      -> String {
                    if let Some(refused) = gate(&revoked, &clock) {
                        return refused;
                    }
                    match host_text(&data, MAX_FILE_TEXT_BYTES) {
                        Ok(data) => envelope(host.file_op(&op, &root, &path, &data)),
                        Err(error) => envelope(Err(error)),
                    }
                },
            )
            .map_err(fail)?
            .into_value()
        } else {
            Value::new_null(ctx.clone())
        };
        let bytes_host = if members == Members::Files {
            let host = Arc::clone(&host);
            let revoked = revoked.clone();
            let clock = self.clock.clone();
            Function::new(
                ctx.clone(),
                move |ctx: Ctx<'js>,
                      op: String,
                      root: String,
                      path: String,
                      data: Opt<TypedArray<'js, u8>>|
                      -> rquickjs::Result<Value<'js>> {
                    let answer = |text: String| {
                        rquickjs::String::from_str(ctx.clone(), &text).map(|s| s.into_value())
                    };
                    if revoked.get() {
                        return answer(r#"{"expired":true}"#.to_owned());
                    }
                    if clock.cancelled() || clock.expired() {
                        return answer(
                            r#"{"error":{"code":"time_limit","message":"the call's time limit has passed or it was cancelled"}}"#
                                .to_owned(),
                        );
                    }
                    match op.as_str() {
                        "readBytes" => match host.read_bytes(&root, &path) {
                            Ok(Some(bytes)) => TypedArray::<u8>::new(ctx.clone(), bytes)
                                .map(|array| array.into_value()),
                            Ok(None) => Ok(Value::new_null(ctx.clone())),
                            Err(error) => answer(envelope(Err(error))),
                        },
                        _ => {
                            let Some(array) = data.0 else {
                                return answer(envelope(Err(CtxError::new(
                                    "invalid_argument",
                                    "writeBytes: data must be a Uint8Array",
                                ))));
                            };
                            if array.len() > MAX_FILE_TEXT_BYTES {
                                return answer(envelope(Err(CtxError::new(
                                    "invalid_argument",
                                    format!(
                                        "writeBytes: {} bytes (at most {MAX_FILE_TEXT_BYTES})",
                                        array.len()
                                    ),
                                ))));
                            }
                            let bytes = copied_bytes(&array);
                            let Some(bytes) = bytes else {
                                return answer(envelope(Err(CtxError::new(
                                    "invalid_argument",
                                    "writeBytes: the Uint8Array's buffer is detached",
                                ))));
                            };
                            match host.write_bytes(&root, &path, &bytes) {
                                Ok(()) => Ok(Value::new_undefined(ctx.clone())),
                                Err(error) => answer(envelope(Err(error))),
                            }
                        }
                    }
                },
            )
            .map_err(fail)?
            .into_value()
        } else {
            Value::new_null(ctx.clone())
        };
        let resource_host = if members == Members::Resources {
            let host = Arc::clone(&host);
            let revoked = revoked.clone();
            let clock = self.clock.clone();
            Function::new(
                ctx.clone(),
                move |op: String, a: String, b: String, c: rquickjs::String<'js>| -> String {
                    if let Some(refused) = gate(&revoked, &clock) {
                        return refused;
                    }
                    // `c` is the serialized data of a write (a version or empty for the
                    // other operations): its size is checked before it is copied.
                    match host_text(&c, MAX_RESOURCE_BYTES) {
                        Ok(c) => resource_op(host.as_ref(), &op, &a, &b, &c),
                        Err(error) => envelope(Err(error)),
                    }
                },
            )
            .map_err(fail)?
            .into_value()
        } else {
            Value::new_null(ctx.clone())
        };
        let make_ctx: Function = helpers.get("makeCtx").map_err(fail)?;
        let data = ctx
            .json_parse(Json::Object(data.clone()).to_string())
            .map_err(fail)?;
        let log_budget = Rc::new(LogBudget::default());
        let log_revoked = revoked.clone();
        let host_log = Function::new(ctx.clone(), move |level: String, line: String| -> bool {
            if log_revoked.get() {
                return false;
            }
            if let Some(line) = log_budget.take(&line) {
                host.log(&level, &line);
            }
            true
        })
        .map_err(fail)?;
        let clock = self.clock.clone();
        let remaining = if members == Members::ConfigAndLog {
            // `capabilities(ctx)` gets only `ctx.config` and `ctx.log` (spec 30 §2.8).
            Value::new_null(ctx.clone())
        } else {
            Function::new(ctx.clone(), move || -> f64 {
                if revoked.get() {
                    return -1.0;
                }
                clock.remaining().as_secs_f64() * 1000.0
            })
            .map_err(fail)?
            .into_value()
        };
        make_ctx
            .call((
                data,
                host_log,
                remaining,
                resource_host,
                file_host,
                bytes_host,
            ))
            .map_err(fail)
    }
}

/// Which host members a call's `ctx` has beyond its data and `log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Members {
    /// A model method: `remainingMs` and the resource operations (spec 30 §2.7).
    Resources,
    /// A datastore's `capabilities`: nothing else (spec 30 §2.8).
    ConfigAndLog,
    /// A datastore's pull or push: `remainingMs`, `local`, `remote`, `copy` (§2.8).
    Files,
}

/// Largest text of one `writeText` (spec 30 §2.8: 32 MiB).
const MAX_FILE_TEXT_BYTES: usize = 32 * 1024 * 1024;

/// Largest `data` of one `ctx.writeResource`, serialized (spec 30 §2.7).
const MAX_RESOURCE_BYTES: usize = 8 * 1024 * 1024;

/// One resource operation of `ctx` (`write spec instance json`, `read spec instance
/// version`, `list spec`), answered as the JSON envelope the prelude reads.
fn resource_op(host: &dyn HostApi, op: &str, a: &str, b: &str, c: &str) -> String {
    let outcome: Result<String, CtxError> = match op {
        "write" if c.len() > MAX_RESOURCE_BYTES => Err(CtxError::new(
            "invalid_argument",
            format!(
                "writeResource: data is {} bytes serialized (at most {MAX_RESOURCE_BYTES})",
                c.len()
            ),
        )),
        "write" => host
            .write_resource(a, b, c)
            .map(|handle| handle.to_string()),
        "read" => {
            let version = match c {
                "" => Ok(None),
                text => text.parse::<u64>().map(Some).map_err(|_| {
                    CtxError::new(
                        "invalid_argument",
                        "readResource: version must be a positive integer",
                    )
                }),
            };
            version
                .and_then(|version| host.read_resource(a, b, version))
                .map(|text| text.unwrap_or_else(|| "null".to_owned()))
        }
        "list" => host
            .list_resources((!a.is_empty()).then_some(a))
            .map(|list| list.to_string()),
        other => Err(CtxError::new(
            "invalid_argument",
            format!("unknown host operation {other:?}"),
        )),
    };
    envelope(outcome)
}

/// The answer to the prelude: `{"value": ...}` or `{"error": {"code", "message"}}`.
fn envelope(outcome: Result<String, CtxError>) -> String {
    match outcome {
        // The value is JSON text already; splice it instead of parsing it again.
        Ok(value) => format!("{{\"value\":{value}}}"),
        Err(error) => serde_json::json!({
            "error": { "code": error.code, "message": error.message }
        })
        .to_string(),
    }
}

/// A string argument of a host operation, refused without a copy when it has more
/// UTF-16 units than `max_bytes` (each unit is at least one byte of UTF-8); the
/// operation checks the exact size.
fn host_text(text: &rquickjs::String<'_>, max_bytes: usize) -> Result<String, CtxError> {
    let n_units = js_text::units(text.ctx(), text.as_value()).unwrap_or(0);
    if n_units > max_bytes {
        return Err(CtxError::new(
            "invalid_argument",
            format!(
                "writeResource: data is at least {n_units} bytes serialized (at most {max_bytes})"
            ),
        ));
    }
    text.to_string().map_err(|e| {
        CtxError::new(
            "invalid_argument",
            format!("writeResource: data cannot be read: {e}"),
        )
    })
}

/// Finds the function a target names and its `this`, reading own data properties
/// only. Model methods are looked up in the primary bundle's `model`, then in the
/// extension bundles in order (spec 30 §2.4).
fn find_target<'js>(
    ctx: &Ctx<'js>,
    describe: &Function<'js>,
    namespaces: &[Object<'js>],
    target: &CallTarget,
) -> Result<Option<(Function<'js>, Object<'js>)>, String> {
    let object = |parent: &Object<'js>, key: &str| -> Result<Option<Object<'js>>, String> {
        Ok(own_data(ctx, describe, parent, key)?.and_then(|v| v.into_object()))
    };
    let function = |parent: &Object<'js>, key: &str| -> Result<Option<Function<'js>>, String> {
        Ok(own_data(ctx, describe, parent, key)?.and_then(|v| v.into_function()))
    };
    let datastore_function = match target {
        CallTarget::ModelMethod { name } => {
            for namespace in namespaces {
                for key in ["model", "extension"] {
                    let Some(export) = object(namespace, key)? else {
                        continue;
                    };
                    let Some(methods) = object(&export, "methods")? else {
                        continue;
                    };
                    let Some(method) = object(&methods, name)? else {
                        continue;
                    };
                    if let Some(run) = function(&method, "run")? {
                        return Ok(Some((run, method)));
                    }
                }
            }
            return Ok(None);
        }
        CallTarget::DatastoreCapabilities => "capabilities",
        CallTarget::DatastorePull => "pullChanged",
        CallTarget::DatastorePush => "pushChanged",
    };
    let Some(namespace) = namespaces.first() else {
        return Ok(None);
    };
    let Some(export) = object(namespace, "datastore")? else {
        return Ok(None);
    };
    Ok(function(&export, datastore_function)?.map(|f| (f, export)))
}

/// Converts a call's result to JSON with the engine's own `JSON.stringify` (it runs
/// the extension's `toJSON` methods, under the call's deadline).
fn return_value<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Result<Json, CallError> {
    let invalid = |reason: String| CallError::InvalidReturn { reason };
    match value.type_of() {
        Type::Uninitialized | Type::Undefined => return Ok(Json::Null),
        Type::Function | Type::Constructor => {
            return Err(invalid("a function cannot be returned".to_owned()))
        }
        Type::Symbol => return Err(invalid("a symbol cannot be returned".to_owned())),
        Type::BigInt => return Err(invalid("a BigInt cannot be serialized to JSON".to_owned())),
        Type::Null
        | Type::Bool
        | Type::Int
        | Type::Float
        | Type::String
        | Type::Array
        | Type::Promise
        | Type::Exception
        | Type::Proxy
        | Type::Object
        | Type::Module
        | Type::Unknown => {}
    }
    let text = match ctx.json_stringify(value) {
        Ok(Some(text)) => {
            // Refused before the copy when its length alone is over the limit.
            let n_units = js_text::units(ctx, text.as_value()).unwrap_or(0);
            if n_units > MAX_RETURN_BYTES {
                return Err(invalid(format!(
                    "the serialized result is at least {n_units} bytes (at most {MAX_RETURN_BYTES})"
                )));
            }
            text.to_string()
                .map_err(|e| invalid(format!("the result cannot be read: {e}")))?
        }
        Ok(None) => return Ok(Json::Null),
        Err(error) => {
            let reason = caught_text(ctx, error);
            return Err(invalid(format!(
                "the result cannot be serialized to JSON: {}",
                one_line(&reason)
            )));
        }
    };
    if text.len() > MAX_RETURN_BYTES {
        return Err(invalid(format!(
            "the serialized result is {} bytes (at most {MAX_RETURN_BYTES})",
            text.len()
        )));
    }
    serde_json::from_str(&text).map_err(|e| invalid(format!("the result is not JSON: {e}")))
}

fn threw(thrown: Thrown) -> CallError {
    CallError::Threw {
        name: thrown.name,
        message: thrown.message,
        code: thrown.code,
        stack: thrown.stack,
    }
}

/// A copy of the bytes of a `Uint8Array`, or `None` when its buffer is detached.
/// What a host operation answers instead of running: the context was revoked (the
/// call settled), the call was cancelled, or its time limit has passed. Spec 30 §4.2: a
/// host operation checks the deadline before it starts; `expired` marks the call
/// interrupted, so it ends as `TimeLimit` even if the code catches this error.
fn gate(revoked: &Cell<bool>, clock: &Clock) -> Option<String> {
    if revoked.get() {
        return Some(r#"{"expired":true}"#.to_owned());
    }
    if clock.cancelled() {
        return Some(
            r#"{"error":{"code":"cancelled","message":"the call was cancelled"}}"#.to_owned(),
        );
    }
    if clock.expired() {
        return Some(
            r#"{"error":{"code":"time_limit","message":"the call's time limit has passed"}}"#
                .to_owned(),
        );
    }
    None
}

#[allow(unsafe_code)]
fn copied_bytes(array: &TypedArray<'_, u8>) -> Option<Vec<u8>> {
    // SAFETY: the slice is copied before any JavaScript runs again, so the engine
    // cannot write into, detach or resize the buffer while it is borrowed.
    unsafe { array.as_bytes() }.map(<[u8]>::to_vec)
}

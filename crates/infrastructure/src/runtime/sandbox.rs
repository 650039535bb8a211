//! One type instance: a QuickJS runtime and context that evaluate the instance's
//! bundles and then serve its calls (spec 30 §4.2). Lives on the worker thread only.
//!
//! Setup order matters: the host module and the prelude run before any extension
//! code, so the helpers they return capture pristine intrinsics. Each evaluation or
//! call arms the deadline (checked by the interrupt handler and between jobs) and the
//! allocator's limit; afterwards the allocator flag, then the deadline flag decide
//! whether the outcome is a limit error, whatever the JS code did with the exception.
//!
//! Top-level evaluation gets the limits of the `InstantiateRequest`, with a fresh
//! deadline for each bundle; each call gets the limits passed with it (the memory
//! limit applies to the instance's whole heap, which the bundles already hold).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::module::WriteOptions;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Function, Module, Object, Persistent, Promise, Runtime, Value};

use fen_domain::ports::runtime::{
    BundleFile, CancelFlag, ExportSnapshot, RuntimeError, SandboxLimits,
};

use super::bundle_file::{parse_bundle, ParsedBundle};
use super::heap::{AccountingAllocator, HeapState};
use super::loader::{LoaderState, SandboxLoader, SandboxResolver, SharedLoaderState};
use super::prelude::{PRELUDE_SOURCE, SDK_MODULE_ID, SDK_SOURCE};
use super::snapshot::snapshot_exports;
use super::thrown::{caught_text, thrown};
use super::{ConsoleLevel, ConsoleSink};

mod call;

/// The ECMAScript intrinsics of a sandbox context: everything `Context::full` adds
/// except `performance` (a timer) and `DOMException` (a web API).
type Intrinsics = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::Proxy,
    intrinsic::MapSet,
    intrinsic::TypedArrays,
    intrinsic::Promise,
    intrinsic::WeakRef,
);

/// Longest console or `ctx.log` line, in bytes (spec 30 §2.7).
const MAX_LOG_LINE_BYTES: usize = 8 * 1024;
/// Lines per evaluation or call (spec 30 §2.7).
const MAX_LOG_LINES: usize = 10_000;

/// A live instance.
pub(crate) struct Sandbox {
    // Field order is drop order: the JS values must be freed while their context and
    // runtime are alive.
    handles: Handles,
    context: Context,
    runtime: Runtime,
    clock: Rc<Clock>,
    heap: Arc<HeapState>,
    console_budget: Rc<LogBudget>,
}

/// JS values the adapter keeps between requests.
struct Handles {
    /// The prelude's `{ describe, makeCtx }`.
    helpers: Persistent<Object<'static>>,
    /// `FenError.prototype` of this instance's `fen:sdk`.
    fen_error_prototype: Persistent<Object<'static>>,
    /// The entry module namespace of each bundle, in bundle order.
    namespaces: Vec<Persistent<Object<'static>>>,
}

/// The deadline of the running evaluation or call, and its cancel flag.
#[derive(Debug, Default)]
struct Clock {
    deadline: Cell<Option<Instant>>,
    interrupted: Cell<bool>,
    cancel: std::cell::RefCell<Option<CancelFlag>>,
    cancelled: Cell<bool>,
}

/// Lines left for one evaluation or call.
#[derive(Debug, Default)]
struct LogBudget {
    lines: Cell<usize>,
}

/// How waiting for a promise ended.
enum Settled<'js> {
    Fulfilled(Value<'js>),
    Rejected(Value<'js>),
    Pending,
    Interrupted,
}

/// Why evaluating one bundle failed, before limit flags are looked at.
enum EvaluationFailure {
    Link(String),
    Threw(String),
    DidNotSettle,
    Interrupted,
    Export(String),
}

impl Sandbox {
    /// Evaluates `bundles` in a fresh runtime and snapshots their exports.
    pub(crate) fn create(
        bundles: &[Arc<BundleFile>],
        limits: SandboxLimits,
        console: &ConsoleSink,
    ) -> Result<(Sandbox, Vec<ExportSnapshot>), RuntimeError> {
        let Some(primary) = bundles.first() else {
            return Err(RuntimeError::Malformed {
                bundle: String::new(),
                message: "no bundle to evaluate".to_owned(),
            });
        };
        let parsed = bundles
            .iter()
            .map(|bundle| {
                parse_bundle(&bundle.contents).map_err(|message| RuntimeError::Malformed {
                    bundle: bundle.path.clone(),
                    message,
                })
            })
            .collect::<Result<Vec<ParsedBundle>, RuntimeError>>()?;

        let heap = HeapState::with_limit(limits.memory_bytes);
        let clock = Rc::new(Clock::default());
        let console_budget = Rc::new(LogBudget::default());
        let loader_state: SharedLoaderState = Rc::new(RefCell::new(LoaderState::default()));
        let setup_failed = |detail: String| RuntimeError::Evaluation {
            bundle: primary.path.clone(),
            message: if heap.limit_hit() {
                memory_message(limits)
            } else {
                format!("the sandbox could not be set up: {detail}")
            },
        };

        clock.arm(limits.time);
        let runtime = Runtime::new_with_alloc(AccountingAllocator::new(heap.clone()))
            .map_err(|e| setup_failed(e.to_string()))?;
        runtime.set_max_stack_size(limits.stack_bytes);
        {
            let clock = clock.clone();
            let heap = heap.clone();
            runtime.set_interrupt_handler(Some(Box::new(move || clock.stop() || heap.limit_hit())));
        }
        runtime.set_loader(
            SandboxResolver(loader_state.clone()),
            SandboxLoader(loader_state.clone()),
        );
        let context =
            Context::custom::<Intrinsics>(&runtime).map_err(|e| setup_failed(e.to_string()))?;
        let (helpers, fen_error_prototype) = context
            .with(|ctx| install_prelude(&ctx, console.clone(), console_budget.clone()))
            .map_err(setup_failed)?;
        let mut sandbox = Sandbox {
            handles: Handles {
                helpers,
                fen_error_prototype,
                namespaces: Vec::with_capacity(bundles.len()),
            },
            context,
            runtime,
            clock,
            heap,
            console_budget,
        };

        let mut exports = Vec::new();
        for (index, (bundle, parsed)) in bundles.iter().zip(parsed).enumerate() {
            let snapshots = sandbox
                .evaluate(index, parsed, &loader_state, limits)
                .map_err(|failure| sandbox.evaluation_error(&bundle.path, failure, limits))?;
            exports.extend(snapshots);
        }
        sandbox.clock.disarm();
        Ok((sandbox, exports))
    }

    /// The allocator counters.
    pub(crate) fn heap(&self) -> Arc<HeapState> {
        self.heap.clone()
    }

    fn arm(&self, limits: SandboxLimits) {
        self.heap.arm(limits.memory_bytes);
        self.runtime.set_max_stack_size(limits.stack_bytes);
        self.console_budget.reset();
        self.clock.arm(limits.time);
    }

    /// Declares, evaluates and snapshots one bundle.
    fn evaluate(
        &mut self,
        index: usize,
        bundle: ParsedBundle,
        loader_state: &SharedLoaderState,
        limits: SandboxLimits,
    ) -> Result<Vec<ExportSnapshot>, EvaluationFailure> {
        self.arm(limits);
        let entry_code = bundle
            .modules
            .get(&bundle.entry)
            .cloned()
            .unwrap_or_default();
        loader_state.borrow_mut().open(bundle.modules);
        let clock = self.clock.clone();
        let heap = self.heap.clone();
        let handles = &mut self.handles;
        let result = self.context.with(|ctx| {
            let declared = Module::declare(ctx.clone(), bundle.entry.as_str(), entry_code);
            loader_state.borrow_mut().close();
            let module = declared.map_err(|e| EvaluationFailure::Link(caught_text(&ctx, e)))?;
            module
                .meta()
                .and_then(|meta| meta.set("url", bundle.entry.as_str()))
                .map_err(|e| EvaluationFailure::Link(caught_text(&ctx, e)))?;
            let (module, promise) = module
                .eval()
                .map_err(|e| EvaluationFailure::Threw(caught_text(&ctx, e)))?;
            match settle(&ctx, &clock, &heap, &promise) {
                Settled::Fulfilled(_) => {}
                Settled::Rejected(reason) => {
                    return Err(EvaluationFailure::Threw(thrown(&ctx, reason, None).text()))
                }
                Settled::Pending => return Err(EvaluationFailure::DidNotSettle),
                Settled::Interrupted => return Err(EvaluationFailure::Interrupted),
            }
            let namespace = module
                .namespace()
                .map_err(|e| EvaluationFailure::Threw(caught_text(&ctx, e)))?;
            let snapshots =
                snapshot_exports(&ctx, &namespace, index).map_err(EvaluationFailure::Export)?;
            handles.namespaces.push(Persistent::save(&ctx, namespace));
            Ok(snapshots)
        });
        loader_state.borrow_mut().close();
        // A limit hit counts even when the module caught the exception and finished.
        if self.heap.limit_hit() || self.clock.interrupted.get() {
            return Err(EvaluationFailure::Interrupted);
        }
        result
    }

    fn evaluation_error(
        &self,
        bundle: &str,
        failure: EvaluationFailure,
        limits: SandboxLimits,
    ) -> RuntimeError {
        let evaluation = |message: String| RuntimeError::Evaluation {
            bundle: bundle.to_owned(),
            message,
        };
        if self.heap.limit_hit() {
            return evaluation(memory_message(limits));
        }
        if self.clock.interrupted.get() {
            return evaluation(format!(
                "module evaluation exceeded the time limit ({} ms)",
                limits.time.as_millis()
            ));
        }
        match failure {
            EvaluationFailure::Link(message) => {
                evaluation(format!("module failed to load: {}", one_line(&message)))
            }
            EvaluationFailure::Threw(message) => {
                evaluation(format!("module threw: {}", one_line(&message)))
            }
            EvaluationFailure::DidNotSettle => {
                evaluation("top-level await did not settle".to_owned())
            }
            EvaluationFailure::Interrupted => evaluation(format!(
                "module evaluation exceeded the time limit ({} ms)",
                limits.time.as_millis()
            )),
            EvaluationFailure::Export(message) => RuntimeError::InvalidExport {
                bundle: bundle.to_owned(),
                message: one_line(&message),
            },
        }
    }
}

impl Clock {
    fn arm(&self, limit: Duration) {
        self.deadline.set(Instant::now().checked_add(limit));
        self.interrupted.set(false);
    }

    fn disarm(&self) {
        self.deadline.set(None);
        self.cancel.replace(None);
    }

    /// Watches `flag` until the next `disarm`.
    fn watch(&self, flag: CancelFlag) {
        self.cancelled.set(false);
        self.cancel.replace(Some(flag));
    }

    /// True once the watched flag was set; remembers it.
    fn cancelled(&self) -> bool {
        if self.cancelled.get() {
            return true;
        }
        let cancelled = self
            .cancel
            .borrow()
            .as_ref()
            .is_some_and(CancelFlag::is_cancelled);
        if cancelled {
            self.cancelled.set(true);
        }
        cancelled
    }

    /// The code must stop: cancelled, or past the deadline.
    fn stop(&self) -> bool {
        self.cancelled() || self.expired()
    }

    /// True once the deadline passed; remembers it.
    fn expired(&self) -> bool {
        if self.interrupted.get() {
            return true;
        }
        let expired = self
            .deadline
            .get()
            .is_some_and(|deadline| Instant::now() >= deadline);
        if expired {
            self.interrupted.set(true);
        }
        expired
    }

    fn remaining(&self) -> Duration {
        self.deadline.get().map_or(Duration::ZERO, |deadline| {
            deadline.saturating_duration_since(Instant::now())
        })
    }
}

impl LogBudget {
    fn reset(&self) {
        self.lines.set(0);
    }

    /// The line to emit, cut to 8 KiB, or `None` once the budget is spent (the first
    /// line over budget becomes "log output truncated").
    fn take(&self, line: &str) -> Option<String> {
        let used = self.lines.get();
        self.lines.set(used.saturating_add(1));
        match used.cmp(&MAX_LOG_LINES) {
            std::cmp::Ordering::Less => Some(cut(line, MAX_LOG_LINE_BYTES)),
            std::cmp::Ordering::Equal => Some("log output truncated".to_owned()),
            std::cmp::Ordering::Greater => None,
        }
    }
}

/// `fen:sdk` and the prelude compiled to QuickJS bytecode once per process: parsing
/// them took about a seventh of the instructions of indexing one small bundle. Every
/// instance still evaluates them in its own context (they only define functions and
/// `console`), so nothing is shared between instances but these bytes.
struct PreludeBytecode {
    sdk: Vec<u8>,
    prelude: Vec<u8>,
}

/// The prelude as a module: its default export is the prelude function. The name
/// cannot be imported: the resolver allows only `fen:sdk` and the bundle's ids, and
/// bundle ids never use the `fen:` scheme.
const PRELUDE_MODULE_ID: &str = "fen:prelude";

fn prelude_bytecode() -> Result<&'static PreludeBytecode, String> {
    static BYTECODE: OnceLock<Result<PreludeBytecode, String>> = OnceLock::new();
    BYTECODE
        .get_or_init(compile_prelude)
        .as_ref()
        .map_err(Clone::clone)
}

fn compile_prelude() -> Result<PreludeBytecode, String> {
    let runtime = Runtime::new().map_err(|e| e.to_string())?;
    let context = Context::custom::<Intrinsics>(&runtime).map_err(|e| e.to_string())?;
    context.with(|ctx| {
        let fail = |e| caught_text(&ctx, e);
        let write = |id: &str, source: String| {
            Module::declare(ctx.clone(), id, source)
                .and_then(|module| module.write(WriteOptions::default()))
                .map_err(fail)
        };
        Ok(PreludeBytecode {
            sdk: write(SDK_MODULE_ID, SDK_SOURCE.to_owned())?,
            prelude: write(
                PRELUDE_MODULE_ID,
                format!("export default {PRELUDE_SOURCE};\n"),
            )?,
        })
    })
}

/// Declares a module from bytecode [`compile_prelude`] wrote.
#[allow(unsafe_code)]
fn load_compiled<'js>(ctx: &Ctx<'js>, bytes: &[u8]) -> rquickjs::Result<Module<'js>> {
    // SAFETY: `bytes` is bytecode this process wrote with `Module::write` from a
    // module it declared (`compile_prelude`), for the same QuickJS build; QuickJS
    // copies it on reading (`JS_READ_OBJ_ROM_DATA` is a no-op in quickjs-ng).
    unsafe { Module::load(ctx.clone(), bytes) }
}

/// Evaluates `fen:sdk` and the prelude, before any extension code.
fn install_prelude(
    ctx: &Ctx<'_>,
    console: ConsoleSink,
    budget: Rc<LogBudget>,
) -> Result<(Persistent<Object<'static>>, Persistent<Object<'static>>), String> {
    let fail = |e| caught_text(ctx, e);
    let bytecode = prelude_bytecode()?;
    let sdk = load_compiled(ctx, &bytecode.sdk).map_err(fail)?;
    let (sdk, promise) = sdk.eval().map_err(fail)?;
    if promise.state() != PromiseState::Resolved {
        return Err("fen:sdk did not evaluate".to_owned());
    }
    let fen_error: Function = sdk
        .namespace()
        .and_then(|ns| ns.get("FenError"))
        .map_err(fail)?;
    let fen_error_prototype: Object = fen_error.get("prototype").map_err(fail)?;
    let sink = Function::new(ctx.clone(), move |level: String, line: String| {
        if let Some(line) = budget.take(&line) {
            console(ConsoleLevel::from_name(&level), &line);
        }
    })
    .map_err(fail)?;
    let prelude = load_compiled(ctx, &bytecode.prelude).map_err(fail)?;
    let (prelude, promise) = prelude.eval().map_err(fail)?;
    if promise.state() != PromiseState::Resolved {
        return Err("the prelude did not evaluate".to_owned());
    }
    let prelude: Function = prelude
        .namespace()
        .and_then(|ns| ns.get("default"))
        .map_err(fail)?;
    let helpers: Object = prelude.call((sink, fen_error)).map_err(fail)?;
    Ok((
        Persistent::save(ctx, helpers),
        Persistent::save(ctx, fen_error_prototype),
    ))
}

/// Runs jobs until `promise` settles, the queue empties, the deadline passes or the
/// memory limit was hit.
fn settle<'js>(
    ctx: &Ctx<'js>,
    clock: &Clock,
    heap: &HeapState,
    promise: &Promise<'js>,
) -> Settled<'js> {
    loop {
        match promise.state() {
            PromiseState::Resolved => {
                return match promise.result::<Value>() {
                    Some(Ok(value)) => Settled::Fulfilled(value),
                    Some(Err(_)) | None => Settled::Fulfilled(Value::new_undefined(ctx.clone())),
                }
            }
            PromiseState::Rejected => {
                // `result` rethrows the reason; take it back as a value.
                let _ = promise.result::<Value>();
                return Settled::Rejected(ctx.catch());
            }
            PromiseState::Pending => {}
        }
        if clock.stop() || heap.limit_hit() {
            return Settled::Interrupted;
        }
        if !ctx.execute_pending_job() {
            return Settled::Pending;
        }
    }
}

fn restore<'js>(
    ctx: &Ctx<'js>,
    handle: &Persistent<Object<'static>>,
) -> Result<Object<'js>, String> {
    handle.clone().restore(ctx).map_err(|e| e.to_string())
}

fn memory_message(limits: SandboxLimits) -> String {
    format!(
        "module evaluation exceeded the memory limit ({})",
        format_bytes(limits.memory_bytes)
    )
}

/// `64 MiB` for whole mebibytes, `1234 bytes` otherwise.
pub(crate) fn format_bytes(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The first line of `text`.
fn one_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

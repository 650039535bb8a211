//! `QuickJsBundleRuntime`: the QuickJS adapter of the `BundleRuntime` port, and the
//! validation of what a bundle exports (spec 30 §2, §4).
//!
//! Each runtime object owns one worker thread (`worker`) that holds every QuickJS
//! runtime it created; `instantiate` and `call` send requests over a channel and
//! await the reply. Each type instance is one `rquickjs::Runtime` + `Context`
//! (`sandbox`) with:
//!
//! - only the ECMAScript intrinsics, plus `console.{debug,log,info,warn,error}`
//!   routed to a [`ConsoleSink`]; no timers, `fetch`, `process`, `require`, `Deno`,
//!   `WebAssembly` or quickjs-libc modules;
//! - a module loader that resolves only the module ids of the bundle being declared
//!   and `fen:sdk`; a dynamic `import()` always fails (`loader`);
//! - an accounting allocator that enforces the memory limit and records hitting it
//!   (`heap`), a 1 MiB stack limit, and an interrupt handler enforcing the deadline;
//! - an export snapshot that never calls getters (`snapshot`);
//! - caps on what extension code hands the host, checked by a string's length before
//!   it is copied (`js_text`): an export over [`MAX_DESCRIPTOR_BYTES`] is refused,
//!   thrown names, messages, codes and stacks are cut to
//!   [`MAX_THROWN_BYTES`](fen_domain::text::MAX_THROWN_BYTES) with a note, results
//!   over 1 MiB and resource data over 8 MiB are refused.
//!
//! [`validate::validate_export`] turns snapshots into the catalog's `TypeMeta`.

mod bundle_file;
mod heap;
mod js_text;
mod loader;
mod prelude;
mod sandbox;
mod snapshot;
mod thrown;
pub mod validate;
mod worker;

#[cfg(test)]
mod tests;

use std::io;
use std::sync::mpsc;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio::sync::oneshot;

use fen_domain::ports::runtime::{
    BundleRuntime, CallError, CallInput, CallTarget, ExportSnapshot, HostApi, InstantiateRequest,
    RuntimeError, SandboxLimits, TypeInstance,
};

use heap::HeapState;
use worker::{spawn_worker, InstanceId, Request};

pub(crate) use validate::RefuseExternal;
pub use validate::{validate_export, ExportValidationError, ValidatedExport, MAX_DESCRIPTOR_BYTES};

/// The level of a `console` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsoleLevel {
    /// `console.debug`.
    Debug,
    /// `console.log`.
    Log,
    /// `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`.
    Error,
}

/// Receives every `console` line of every instance of a runtime (at most 10 000
/// lines of at most 8 KiB per evaluation or call). Called on the worker thread while
/// JS waits, so it should be quick.
pub type ConsoleSink = Arc<dyn Fn(ConsoleLevel, &str) + Send + Sync>;

/// The QuickJS sandbox behind `BundleRuntime`.
pub struct QuickJsBundleRuntime {
    requests: mpsc::Sender<Request>,
}

/// A live instance: a handle to a sandbox on the worker, freed there when dropped.
struct QuickJsTypeInstance {
    id: InstanceId,
    exports: Vec<ExportSnapshot>,
    heap: Arc<HeapState>,
    requests: mpsc::Sender<Request>,
}

impl ConsoleLevel {
    /// The method name: `debug`, `log`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleLevel::Debug => "debug",
            ConsoleLevel::Log => "log",
            ConsoleLevel::Info => "info",
            ConsoleLevel::Warn => "warn",
            ConsoleLevel::Error => "error",
        }
    }

    fn from_name(name: &str) -> ConsoleLevel {
        match name {
            "debug" => ConsoleLevel::Debug,
            "info" => ConsoleLevel::Info,
            "warn" => ConsoleLevel::Warn,
            "error" => ConsoleLevel::Error,
            _ => ConsoleLevel::Log,
        }
    }
}

/// A sink that drops console output.
pub fn discard_console() -> ConsoleSink {
    Arc::new(|_, _| {})
}

/// A sink that prints `console.<level>: <text>` lines on stderr.
pub fn stderr_console() -> ConsoleSink {
    Arc::new(|level, text| eprintln!("console.{}: {text}", level.as_str()))
}

impl QuickJsBundleRuntime {
    /// A runtime whose console output is dropped. Starts the worker thread.
    pub fn new() -> io::Result<QuickJsBundleRuntime> {
        QuickJsBundleRuntime::with_console(discard_console())
    }

    /// A runtime that sends console output to `console`. Starts the worker thread.
    pub fn with_console(console: ConsoleSink) -> io::Result<QuickJsBundleRuntime> {
        Ok(QuickJsBundleRuntime {
            requests: spawn_worker(console)?,
        })
    }
}

#[async_trait]
impl BundleRuntime for QuickJsBundleRuntime {
    async fn instantiate(
        &self,
        req: InstantiateRequest,
    ) -> Result<Arc<dyn TypeInstance>, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Instantiate {
                request: req,
                reply,
            })
            .map_err(|_| RuntimeError::Unavailable)?;
        let instantiated = answer.await.map_err(|_| RuntimeError::Unavailable)??;
        Ok(Arc::new(QuickJsTypeInstance {
            id: instantiated.id,
            exports: instantiated.exports,
            heap: instantiated.heap,
            requests: self.requests.clone(),
        }))
    }
}

#[async_trait]
impl TypeInstance for QuickJsTypeInstance {
    fn exports(&self) -> &[ExportSnapshot] {
        &self.exports
    }

    async fn call(
        &self,
        target: &CallTarget,
        input: CallInput,
        host: Arc<dyn HostApi>,
        limits: SandboxLimits,
    ) -> Result<Json, CallError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Call {
                id: self.id,
                target: target.clone(),
                input,
                host,
                limits,
                reply,
            })
            .map_err(|_| CallError::Unavailable)?;
        answer.await.map_err(|_| CallError::Unavailable)?
    }

    fn heap_bytes(&self) -> usize {
        self.heap.live_bytes()
    }
}

impl Drop for QuickJsTypeInstance {
    fn drop(&mut self) {
        // The worker may be gone already; then there is nothing left to free.
        let _ = self.requests.send(Request::Discard { id: self.id });
    }
}

//! The worker thread of one `QuickJsBundleRuntime`: it owns every QuickJS runtime of
//! its instances and serves requests one at a time (spec 30 §4.1), so rquickjs
//! needs no `parallel` feature and no JS value ever crosses threads.

use std::any::Any;
use std::collections::HashMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use serde_json::Value as Json;
use tokio::sync::oneshot;

use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, ExportSnapshot, HostApi, HostError, InstantiateRequest,
    RuntimeError, SandboxLimits,
};

use super::heap::HeapState;
use super::sandbox::Sandbox;
use super::ConsoleSink;

/// Stack of the worker thread. QuickJS measures its stack limit (1 MiB by default)
/// on this thread, so it needs room above that for host frames; the 2 MiB default
/// of a spawned thread is too close (spec 30 §4.2).
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Identifies an instance on its worker.
pub(crate) type InstanceId = u64;

/// What an instantiation hands back to the async side.
pub(crate) struct Instantiated {
    pub(crate) id: InstanceId,
    pub(crate) exports: Vec<ExportSnapshot>,
    pub(crate) heap: Arc<HeapState>,
}

/// A request to the worker.
pub(crate) enum Request {
    Instantiate {
        request: InstantiateRequest,
        reply: oneshot::Sender<Result<Instantiated, RuntimeError>>,
    },
    Call {
        id: InstanceId,
        target: CallTarget,
        input: CallInput,
        host: Arc<dyn HostApi>,
        limits: SandboxLimits,
        reply: oneshot::Sender<Result<Json, CallError>>,
    },
    /// The last handle of an instance went away.
    Discard { id: InstanceId },
}

/// Starts a worker; it stops when every sender is gone.
pub(crate) fn spawn_worker(console: ConsoleSink) -> io::Result<mpsc::Sender<Request>> {
    let (sender, receiver) = mpsc::channel();
    thread::Builder::new()
        .name("fen-quickjs".to_owned())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || serve(&receiver, &console))?;
    Ok(sender)
}

fn serve(receiver: &mpsc::Receiver<Request>, console: &ConsoleSink) {
    let mut instances: HashMap<InstanceId, Sandbox> = HashMap::new();
    let mut next_id: InstanceId = 0;
    while let Ok(request) = receiver.recv() {
        match request {
            Request::Instantiate { request, reply } => {
                let created = catch_unwind(AssertUnwindSafe(|| {
                    Sandbox::create(&request.bundles, request.limits, console)
                }));
                let answer = match created {
                    Ok(Ok((sandbox, exports))) => {
                        next_id += 1;
                        let heap = sandbox.heap();
                        instances.insert(next_id, sandbox);
                        Ok(Instantiated {
                            id: next_id,
                            exports,
                            heap,
                        })
                    }
                    Ok(Err(error)) => Err(error),
                    Err(panic) => Err(RuntimeError::Evaluation {
                        bundle: request
                            .bundles
                            .first()
                            .map(|b| b.path.clone())
                            .unwrap_or_default(),
                        message: format!("the sandbox panicked: {}", panic_text(&*panic)),
                    }),
                };
                if let Err(Ok(orphan)) = reply.send(answer) {
                    // Nobody waits for it any more (the future was dropped).
                    instances.remove(&orphan.id);
                }
            }
            Request::Call {
                id,
                target,
                input,
                host,
                limits,
                reply,
            } => {
                let answer = match instances.get_mut(&id) {
                    None => Err(CallError::Unavailable),
                    Some(sandbox) => {
                        let outcome = catch_unwind(AssertUnwindSafe(|| {
                            sandbox.call(&target, input, host, limits)
                        }));
                        match outcome {
                            Ok(result) => {
                                if discards(&result) {
                                    instances.remove(&id);
                                }
                                result
                            }
                            Err(panic) => {
                                instances.remove(&id);
                                Err(CallError::Host(HostError(format!(
                                    "a host function panicked: {}",
                                    panic_text(&*panic)
                                ))))
                            }
                        }
                    }
                };
                let _ = reply.send(answer);
            }
            Request::Discard { id } => {
                instances.remove(&id);
            }
        }
    }
}

/// After a limit the instance is never reused (spec 30 §4.2).
fn discards(result: &Result<Json, CallError>) -> bool {
    matches!(
        result,
        Err(CallError::TimeLimit { .. } | CallError::MemoryLimit { .. } | CallError::Cancelled)
    )
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

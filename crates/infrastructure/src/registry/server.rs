//! The static registry of `fen registry serve` (spec 20 §3): hyper 1 over tokio, one
//! handler that routes on the raw path (`routes`), the directory read afresh on every
//! request (`layout`), test-only fault rules (`faults`) and a body type that can break
//! off mid-way (`body`).
//!
//! Shutdown is graceful: the listener closes, every open connection finishes the
//! response it is writing and closes, and connections still busy after
//! [`SHUTDOWN_GRACE`] are dropped, so a stop completes within the 2 s of §3.3.

mod body;
mod faults;
mod layout;
mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use self::body::ReplyBody;
use self::faults::FaultCounters;
use self::routes::Reply;

/// How long open connections may take to finish once a stop was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// What to serve, where.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The registry directory (spec 20 §3.1); it must exist.
    pub dir: PathBuf,
    /// The address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
    /// No request log on stderr.
    pub quiet: bool,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding the address failed (in use, not local, no permission).
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// A bound registry server; [`RegistryServer::serve`] runs it.
#[derive(Debug)]
pub struct RegistryServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    dir: PathBuf,
    quiet: bool,
    faults: FaultCounters,
    /// `<method> <raw path> <status>` of every request, for tests to count them.
    #[cfg(test)]
    journal: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RegistryServer {
    /// Binds the address. The server accepts nothing until `serve` runs, but the port
    /// is taken, so a caller may announce [`RegistryServer::local_addr`] first.
    pub async fn bind(config: ServeConfig) -> Result<RegistryServer, ServeError> {
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|error| ServeError::Bind {
                addr: config.addr,
                error,
            })?;
        let local_addr = listener.local_addr().map_err(|error| ServeError::Bind {
            addr: config.addr,
            error,
        })?;
        Ok(RegistryServer {
            listener,
            local_addr,
            state: Arc::new(State {
                dir: config.dir,
                quiet: config.quiet,
                faults: FaultCounters::default(),
                #[cfg(test)]
                journal: Arc::default(),
            }),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The requests seen so far, as `<method> <raw path> <status>`.
    #[cfg(test)]
    pub(crate) fn journal(&self) -> Arc<std::sync::Mutex<Vec<String>>> {
        self.state.journal.clone()
    }

    /// Serves until `shutdown` completes, then stops gracefully (at most
    /// [`SHUTDOWN_GRACE`] for open connections).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (stop_sender, stop) = tokio::sync::watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        connections.spawn(connection(stream, self.state.clone(), stop.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors, typically: wait instead of spinning.
                        eprintln!("warning: registry server cannot accept a connection: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        let _ = stop_sender.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
    }
}

/// One connection, until it closes or a stop is asked for.
async fn connection(
    stream: tokio::net::TcpStream,
    state: Arc<State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, request).await) }
    });
    let serving =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(serving);
    tokio::select! {
        _ = serving.as_mut() => {}
        _ = stop.changed() => {
            serving.as_mut().graceful_shutdown();
            let _ = serving.await;
        }
    }
}

/// One request: fault rules, the route, HEAD, the log line.
async fn handle(state: &State, request: Request<Incoming>) -> Response<ReplyBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let raw_path = request.uri().path().to_owned();
    let fault = match state.faults.select(&state.dir, &raw_path) {
        Ok(fault) => fault,
        Err(malformed) => {
            eprintln!(
                "warning: ignoring {} of the registry directory: {}",
                faults::FAULTS_FILE,
                malformed.0
            );
            faults::Fault::default()
        }
    };
    if let Some(delay) = fault.delay_ms {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let reply = if let Some(status) = fault.status {
        Reply::error(status, "injected fault")
    } else if method != Method::GET && method != Method::HEAD {
        Reply::error(405, "method not allowed")
    } else {
        let dir = state.dir.clone();
        let path = raw_path.clone();
        // Reading archives and hashing them blocks; keep it off the runtime's thread.
        tokio::task::spawn_blocking(move || routes::respond(&dir, &path))
            .await
            .unwrap_or_else(|_| Reply::error(500, "the request handler failed"))
    };
    let (response, sent) = response(reply, method == Method::HEAD, fault.truncate_after_bytes);
    #[cfg(test)]
    if let Ok(mut journal) = state.journal.lock() {
        journal.push(format!(
            "{method} {raw_path} {}",
            response.status().as_u16()
        ));
    }
    if !state.quiet {
        eprintln!(
            "{method} {raw_path} {} {sent} {}ms",
            response.status().as_u16(),
            started.elapsed().as_millis()
        );
    }
    response
}

/// The HTTP response of a reply and the number of body bytes it sends.
fn response(reply: Reply, head: bool, truncate: Option<u64>) -> (Response<ReplyBody>, u64) {
    let length = reply.body.len() as u64;
    let (body, sent) = match truncate {
        _ if head => (ReplyBody::empty(), 0),
        Some(keep) if keep < length => {
            // `keep < length`, so it fits in usize.
            let keep_bytes = usize::try_from(keep).unwrap_or(usize::MAX);
            (ReplyBody::truncated(reply.body, keep_bytes), keep)
        }
        _ => (ReplyBody::full(reply.body), length),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(location) = reply
        .location
        .and_then(|location| HeaderValue::from_str(&location).ok())
    {
        headers.insert(LOCATION, location);
    }
    if reply.status == 405 {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    (response, sent)
}

#[cfg(test)]
mod tests;

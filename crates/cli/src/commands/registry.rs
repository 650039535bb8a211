//! `fen registry serve` (spec 20 §3): a static registry over a directory.
//!
//! Stdout carries exactly one line, `fen registry listening on http://<ip>:<port>`,
//! flushed as soon as the port is bound, so callers can parse the URL from it; the
//! request log goes to stderr. SIGINT and SIGTERM stop the server gracefully and the
//! process exits 0 without printing anything else.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use fen_infrastructure::registry::{RegistryServer, ServeConfig};

use crate::commands::Outcome;
use crate::error::{CliError, ErrorCode};

/// Serves `dir` until SIGINT/SIGTERM, then exits 0.
pub async fn serve(
    dir: &Path,
    addr: &str,
    quiet: bool,
    allow_non_loopback: bool,
) -> Result<Outcome, CliError> {
    let addr = listen_address(addr, allow_non_loopback)?;
    check_dir(dir)?;
    // Before binding: a signal that arrives right after the announcement must find
    // the handlers in place, or it would kill the process instead of stopping it.
    let stop = StopSignals::install()?;
    let server = RegistryServer::bind(ServeConfig {
        dir: dir.to_path_buf(),
        addr,
        quiet,
    })
    .await
    .map_err(|error| CliError::new(ErrorCode::Io, error.to_string()))?;
    {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout is no reason to stop serving.
        let _ = writeln!(
            stdout,
            "fen registry listening on http://{}",
            server.local_addr()
        );
        let _ = stdout.flush();
    }
    server.serve(stop.received()).await;
    // The result printer would add a line to stdout; the only line is the one above.
    std::process::exit(0)
}

/// `IP:PORT`, loopback unless allowed otherwise (checked before anything binds).
fn listen_address(text: &str, allow_non_loopback: bool) -> Result<SocketAddr, CliError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        CliError::new(
            ErrorCode::InvalidInput,
            format!("invalid --addr {text:?}: expected IP:PORT, e.g. 127.0.0.1:0"),
        )
    })?;
    if !addr.ip().is_loopback() && !allow_non_loopback {
        return Err(CliError::new(
            ErrorCode::InvalidInput,
            format!("refusing to listen on {addr}: not a loopback address"),
        )
        .with_hint("pass --allow-non-loopback to serve other hosts"));
    }
    Ok(addr)
}

fn check_dir(dir: &Path) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(CliError::new(
            ErrorCode::Io,
            format!("registry directory {} is not a directory", dir.display()),
        )),
        Err(error) => Err(CliError::new(
            ErrorCode::Io,
            format!(
                "registry directory {} cannot be read: {error}",
                dir.display()
            ),
        )),
    }
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), listened for from `install` on.
struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let failed = |error: std::io::Error| {
                CliError::new(
                    ErrorCode::InternalError,
                    format!("cannot listen for signals: {error}"),
                )
            };
            Ok(StopSignals {
                interrupt: signal(SignalKind::interrupt()).map_err(failed)?,
                terminate: signal(SignalKind::terminate()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    async fn received(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_binding() {
        let refused = listen_address("0.0.0.0:0", false).unwrap_err();
        assert_eq!(refused.code.as_str(), "invalid_input");
        assert!(listen_address("0.0.0.0:0", true).is_ok());
        assert!(listen_address("127.0.0.1:0", false).is_ok());
        assert!(listen_address("[::1]:0", false).is_ok());
        let bad = listen_address("localhost:80", false).unwrap_err();
        assert_eq!(bad.code.as_str(), "invalid_input");
        let missing = check_dir(Path::new("/nonexistent/registry/dir")).unwrap_err();
        assert_eq!(missing.code.as_str(), "io");
    }
}

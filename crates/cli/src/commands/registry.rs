//! `fen registry serve` (spec 20 §3): a static registry over a directory.

use std::path::Path;

use crate::commands::Outcome;
use crate::error::{CliError, ErrorCode};

/// Serves `dir` until SIGINT/SIGTERM.
pub async fn serve(
    _dir: &Path,
    _addr: &str,
    _quiet: bool,
    _allow_non_loopback: bool,
) -> Result<Outcome, CliError> {
    Err(CliError::new(
        ErrorCode::InternalError,
        "fen registry serve is not built yet",
    ))
}

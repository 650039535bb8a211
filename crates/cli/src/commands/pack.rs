//! `fen extension pack` (spec 20 §4): a deterministic archive of an extension directory.

use std::path::Path;

use crate::commands::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

/// Packs `dir`.
pub fn run(
    _ctx: &Context,
    _dir: &Path,
    _out: Option<&Path>,
    _registry_dir: Option<&Path>,
) -> Result<Outcome, CliError> {
    Err(CliError::new(
        ErrorCode::InternalError,
        "fen extension pack is not built yet",
    ))
}

//! `fen extension pull | rm | update | install | status` (spec 20 §9–§12, §15).

use crate::commands::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

fn not_yet() -> CliError {
    CliError::new(ErrorCode::InternalError, "not built yet")
}

/// `fen extension pull`.
pub async fn pull(
    _ctx: &Context,
    _registry: Option<&str>,
    _reference: &str,
    _force: bool,
    _allow_unverified: bool,
) -> Result<Outcome, CliError> {
    Err(not_yet())
}

/// `fen extension rm`.
pub async fn rm(_ctx: &Context, _name: &str, _yes: bool) -> Result<Outcome, CliError> {
    Err(not_yet())
}

/// `fen extension update`.
pub async fn update(
    _ctx: &Context,
    _registry: Option<&str>,
    _name: Option<&str>,
    _check: bool,
) -> Result<Outcome, CliError> {
    Err(not_yet())
}

/// `fen extension install`.
pub async fn install(
    _ctx: &Context,
    _registry: Option<&str>,
    _refresh: bool,
) -> Result<Outcome, CliError> {
    Err(not_yet())
}

/// `fen extension status`.
pub async fn status(_ctx: &Context) -> Result<Outcome, CliError> {
    Err(not_yet())
}

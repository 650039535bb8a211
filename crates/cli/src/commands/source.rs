//! `fen extension source add|rm|list`: the source mounts of `.fen/mounts.json`
//! (spec 10 §1.12). Writes hold the lifecycle lock; the file is replaced by an atomic
//! rename of a fsynced temp file. A change alters the scan roots, so the next command
//! that reads types makes one cold start.

use std::path::Path;

use fen_domain::PathPolicy;
use fen_infrastructure::sources::{
    add_mount, read_mounts, remove_mount, MountsError, SourceMounts,
};
use serde_json::json;

use super::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

/// Which change.
pub enum Change<'a> {
    /// Add a mount.
    Add(&'a Path),
    /// Remove a mount.
    Rm(&'a Path),
}

/// `fen extension source list`.
pub fn list(ctx: &Context) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let mounts = read_mounts(&root, PathPolicy::host()).map_err(mounts_error)?;
    Ok(render(&mounts, None))
}

/// `fen extension source add|rm DIR`.
pub async fn change(ctx: &Context, change: Change<'_>) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let lock = ctx.lifecycle_lock(&root.native);
    let _guard = lock.acquire(&ctx.command).await?;
    ctx.stats.lock_acquired();
    let (result, verb) = match change {
        Change::Add(dir) => {
            let dir = fen_infrastructure::sources::absolute_lexical(dir)
                .map_err(|e| CliError::new(ErrorCode::Io, e.to_string()))?;
            if !dir.join(fen_domain::layout::LOCAL_DIR).is_dir() {
                return Err(CliError::new(
                    ErrorCode::InvalidInput,
                    format!("{} has no extensions/ directory", dir.display()),
                )
                .with_hint("a mount is a directory holding extensions/<kind-dir>/ trees"));
            }
            (add_mount(&root, &dir, PathPolicy::host()), "added")
        }
        Change::Rm(dir) => (remove_mount(&root, dir, PathPolicy::host()), "removed"),
    };
    let change = result.map_err(mounts_error)?;
    let note = if change.changed { verb } else { "unchanged" };
    Ok(render(&change.mounts, Some(note)))
}

fn render(mounts: &SourceMounts, note: Option<&str>) -> Outcome {
    let rows: Vec<_> = mounts
        .iter()
        .map(|m| json!({"path": m.canonical.as_str(), "mountId": m.id}))
        .collect();
    let mut human: Vec<String> = mounts
        .iter()
        .map(|m| format!("{}  ({})", m.canonical, m.id))
        .collect();
    if human.is_empty() {
        human.push("no source mounts".to_owned());
    }
    if let Some(note) = note {
        human.insert(0, format!("mounts {note}"));
    }
    let mut json = json!({ "mounts": rows });
    if let Some(note) = note {
        json["change"] = json!(note);
    }
    Outcome {
        human: human.join("\n"),
        json,
        exit_code: 0,
    }
}

fn mounts_error(error: MountsError) -> CliError {
    let code = if error.is_config_invalid() {
        ErrorCode::ConfigInvalid
    } else {
        ErrorCode::Io
    };
    CliError::new(code, error.to_string()).with_hint(
        "mounts must be absolute directories outside the repository and outside each other",
    )
}

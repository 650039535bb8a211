//! `fen init [DIR]` (spec 10 §1.13): creates `DIR/.fen/`, the catalog at the latest
//! migration (under the lifecycle lock) and the `extensions/<kind-dir>/` folders.
//!
//! Crash safety: every step is idempotent (`create_dir_all`, catalog creation under the
//! lifecycle lock with sqlx's per-migration transactions), so an interrupted init is
//! finished by running it again.

use std::path::{Path, PathBuf};

use fen_domain::{layout, LoaderKind};
use fen_infrastructure::sources::{absolute_lexical, find_repo_root};
use serde_json::json;

use super::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

/// Runs `fen init`.
pub async fn run(ctx: &Context, dir: Option<&Path>, nested: bool) -> Result<Outcome, CliError> {
    let requested: PathBuf = match dir.or(ctx.repo_dir.as_deref()) {
        Some(dir) => dir.to_path_buf(),
        None => PathBuf::from("."),
    };
    let root = absolute_lexical(&requested).map_err(|e| {
        CliError::new(
            ErrorCode::Io,
            format!("cannot resolve {}: {e}", requested.display()),
        )
    })?;
    if root.exists() && !root.is_dir() {
        return Err(CliError::new(
            ErrorCode::Io,
            format!("{} exists and is not a directory", root.display()),
        )
        .with_hint("pass a directory path to 'fen init'"));
    }
    let marker = root.join(layout::MARKER_DIR);
    let created = !marker.is_dir();
    if created && !nested {
        if let Some(parent) = root.parent() {
            if let Ok(outer) = find_repo_root(parent) {
                return Err(CliError::new(
                    ErrorCode::InvalidInput,
                    format!(
                        "{} is inside the fen repository {}",
                        root.display(),
                        outer.native.display()
                    ),
                )
                .with_hint("run fen from that repository, or pass --nested to create a nested repository whose marker wins below it"));
            }
        }
    }
    std::fs::create_dir_all(&marker).map_err(|e| {
        CliError::new(
            ErrorCode::Io,
            format!("cannot create {}: {e}", marker.display()),
        )
    })?;
    for kind in LoaderKind::ALL {
        let kind_dir = root.join(layout::LOCAL_DIR).join(kind.kind_dir());
        std::fs::create_dir_all(&kind_dir).map_err(|e| {
            CliError::new(
                ErrorCode::Io,
                format!("cannot create {}: {e}", kind_dir.display()),
            )
        })?;
    }
    ctx.open_catalog_at(&root).await?;
    let shown = root.display().to_string();
    let human = if created {
        format!("Initialized fen repository in {shown}")
    } else {
        format!("already a fen repository: {shown}")
    };
    Ok(Outcome {
        human,
        json: json!({ "root": shown, "created": created }),
        exit_code: 0,
    })
}

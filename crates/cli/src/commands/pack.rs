//! `fen extension pack DIR [--out FILE | --registry-dir REGDIR]` (spec 20 §4): a
//! deterministic archive of an extension directory. Needs no repository.
//!
//! Crash safety: nothing is written until the directory has packed without a
//! refusal; the archive (and the registry sidecar) are then each written to a temp
//! file and renamed into place (`fen_infrastructure::archive::write_packed`).
//!
//! `--json` prints `{"name", "version", "archive", "sha256", "bytes", "files"}` with
//! `archive` the canonical absolute path and `files` the number of files packed.

use std::path::Path;

use fen_domain::ports::{ArchiveError, ArchiveErrorCode};
use fen_infrastructure::archive::{pack, write_packed, PackDestination};
use serde_json::json;

use crate::commands::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

/// Packs `dir` and writes the archive to `out`, into `registry_dir`, or to
/// `./<scope>-<name>-<version>.tar.gz`.
pub fn run(
    ctx: &Context,
    dir: &Path,
    out: Option<&Path>,
    registry_dir: Option<&Path>,
) -> Result<Outcome, CliError> {
    let packed = pack(dir).map_err(archive_error)?;
    for warning in &packed.warnings {
        ctx.warn(warning);
    }
    let destination = match (out, registry_dir) {
        (Some(file), _) => PackDestination::File(file.to_path_buf()),
        (None, Some(root)) => PackDestination::RegistryDir(root.to_path_buf()),
        (None, None) => PackDestination::default_for(&packed.name, &packed.version),
    };
    let written = write_packed(&packed, &destination).map_err(archive_error)?;
    let absolute = std::fs::canonicalize(&written.archive).map_err(|e| {
        CliError::new(
            ErrorCode::Io,
            format!("cannot resolve {}: {e}", written.archive.display()),
        )
    })?;
    let human = format!(
        "Packed {}@{} -> {} ({} files, {} bytes, sha256 {})",
        packed.name,
        packed.version,
        written.archive.display(),
        packed.files.len(),
        packed.bytes.len(),
        packed.sha256
    );
    let json = json!({
        "name": packed.name.as_str(),
        "version": packed.version.to_string(),
        "archive": absolute.display().to_string(),
        "sha256": packed.sha256,
        "bytes": packed.bytes.len(),
        "files": packed.files.len(),
    });
    Ok(Outcome {
        human,
        json,
        exit_code: 0,
    })
}

/// The archive codes are CLI codes of the same name (all exit 3 for `pack`).
fn archive_error(error: ArchiveError) -> CliError {
    let code = ErrorCode::from_code(error.code.as_str()).unwrap_or(ErrorCode::InternalError);
    let cli = CliError::new(code, error.message);
    match error.code {
        ArchiveErrorCode::Unsafe => {
            cli.with_hint("remove that entry from the directory, or exclude it in .fenignore")
        }
        _ => cli,
    }
}

//! Building the `fen` binary under test: `cargo build --release -p fen-cli`, then the
//! binary's path from `cargo metadata` (which honours `CARGO_TARGET_DIR` and
//! `build.target-dir`, so a fresh clone works). Used by `bench` and `stress`.
//!
//! Each command is echoed on stderr before it runs (STYLE §7), so that `--json`
//! output on stdout stays one document.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The workspace root (the parent of the xtask crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds `fen` with `--release` and returns its path.
pub fn release(workspace: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_note = std::env::var("CARGO_TARGET_DIR")
        .map(|dir| format!("CARGO_TARGET_DIR={dir} "))
        .unwrap_or_default();
    let build = ["build", "--release", "-p", "fen-cli"];
    eprintln!("$ {target_note}cargo {}", build.join(" "));
    let status = Command::new(&cargo)
        .args(build)
        .current_dir(workspace)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release -p fen-cli failed ({status})"
        ));
    }
    let metadata = ["metadata", "--format-version", "1", "--no-deps"];
    eprintln!("$ {target_note}cargo {}", metadata.join(" "));
    let output = Command::new(&cargo)
        .args(metadata)
        .current_dir(workspace)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed ({})", output.status));
    }
    let value: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed invalid JSON: {e}"))?;
    let target = value
        .get("target_directory")
        .and_then(Value::as_str)
        .ok_or("cargo metadata has no target_directory")?;
    let bin = Path::new(target)
        .join("release")
        .join(format!("fen{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        return Err(format!("{} was not built", bin.display()));
    }
    eprintln!("binary: {}", bin.display());
    Ok(bin)
}

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
    let status = without_package_env(Command::new(&cargo))
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
    let output = without_package_env(Command::new(&cargo))
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

/// Removes what `cargo run` set for the xtask process itself (`CARGO_PKG_*`,
/// `CARGO_MANIFEST_DIR`, ...). Build scripts declare `rerun-if-env-changed` on some of
/// them (ring's does on `CARGO_PKG_NAME` and `CARGO_MANIFEST_DIR`), so a nested build
/// that inherits xtask's values reruns them and recompiles everything above ring (about
/// three minutes on 2 cores), and the next build from a shell does it again.
fn without_package_env(mut command: Command) -> Command {
    const SET_BY_CARGO_RUN: [&str; 8] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_PKG_") || SET_BY_CARGO_RUN.contains(&key_text.as_ref()) {
            command.env_remove(&key);
        }
    }
    command
}

/// `fen` in `cwd` with stdin closed, stdout and stderr piped, and no inherited `FEN_*`
/// variable, so that nothing in the caller's environment changes a measured or
/// stressed run.
pub fn clean_command(bin: &Path, cwd: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(bin);
    command
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FEN_") {
            command.env_remove(key);
        }
    }
    command
}

//! Test helpers: a temp repo and a `Command` for the built `fen` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `fen` binary built by this `cargo test` run (`target/<profile>/fen`), or
/// `FEN_BIN` when set.
pub fn fen_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FEN_BIN") {
            return PathBuf::from(bin);
        }
        // Test executables live in target/<profile>/deps/.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = profile_dir.join(format!("fen{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.exists(),
            "{} is missing: run the tests with `cargo test --workspace`, which builds it",
            bin.display()
        );
        bin
    })
}

/// A scratch directory that is deleted when dropped.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(tempfile::tempdir().expect("temp dir"))
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A `fen` command with a clean environment (no inherited `FEN_*`, and no colour
/// forced on by the caller's `CLICOLOR_FORCE`).
pub fn fen(cwd: &Path) -> Command {
    let mut cmd = Command::new(fen_bin());
    cmd.current_dir(cwd);
    cmd.env_remove("CLICOLOR_FORCE");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FEN_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Result of a finished command, with text accessors.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `fen args...` in `cwd`.
pub fn run(cwd: &Path, args: &[&str]) -> Run {
    fen(cwd).args(args).output().expect("run fen").into()
}

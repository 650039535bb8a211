//! `cargo xtask`: the project's maintenance tasks (STYLE §7): `tidy`, `migrate`,
//! `bench`, `stress`.

mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "fen maintenance tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check the layer rules: domain and lifecycle dependencies, module docs.
    Tidy,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.task {
        Task::Tidy => run_tidy(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_tidy() -> Result<(), String> {
    let problems = tidy::check(&workspace_root())?;
    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    Err(format!("tidy found {} problem(s)", problems.len()))
}

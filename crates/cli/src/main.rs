//! The `fen` binary: parses the command line, wires the adapters, runs one command and
//! maps its outcome to output and an exit code (spec 00 §5–§6).

mod args;
mod commands;
mod context;
mod env;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Args, Command};
use crate::context::Context;
use crate::env::Settings;
use crate::error::{CliError, ErrorCode};
use crate::output::Mode;

fn main() -> ExitCode {
    // The mode must be known before clap runs, so that a usage error in JSON mode is
    // still one JSON document.
    let mode = if std::env::args_os().any(|a| a == "--json") {
        Mode::Json
    } else {
        Mode::Human
    };
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| run(mode));
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(
                CliError::new(ErrorCode::InternalError, format!("fen crashed: {detail}"))
                    .with_hint("this is a bug in fen; please report it with the command you ran"),
            )
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(mode, &error);
            ExitCode::from(error.code.exit_code())
        }
    }
}

fn run(mode: Mode) -> Result<(), CliError> {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) {
                print!("{error}");
                return Ok(());
            }
            let rendered = error.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ")
                .to_owned();
            return Err(
                CliError::new(ErrorCode::Usage, first).with_hint("run 'fen --help' for usage")
            );
        }
    };
    let settings = Settings::from_env()?;
    let ctx = Context {
        repo_dir: args.repo_dir.clone(),
        mode,
        settings,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            CliError::new(
                ErrorCode::InternalError,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    let outcome = runtime.block_on(async {
        match &args.command {
            Command::Init { dir, nested } => {
                commands::init::run(&ctx, dir.as_deref(), *nested).await
            }
        }
    })?;
    output::print_result(ctx.mode, &outcome.human, &outcome.json);
    Ok(())
}

//! The `fen` binary: parses the command line, wires the adapters, runs one command and
//! maps its outcome to output and an exit code (spec 00 §5–§6).

mod args;
mod colour;
mod commands;
mod context;
mod env;
mod error;
mod log;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{
    Args, Command, DatastoreCommand, DoctorCommand, ExtensionCommand, LockCommand, MethodCommand,
    ModelCommand, ModelTypeCommand, RegistryCommand, SourceCommand,
};
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
    colour::init(
        mode == Mode::Json,
        std::env::args_os().any(|a| a == "--no-color"),
    );
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
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            output::print_error(mode, &error);
            ExitCode::from(error.code.exit_code())
        }
    }
}

fn run(mode: Mode) -> Result<u8, CliError> {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            use clap::error::ErrorKind;
            if error.kind() == ErrorKind::DisplayVersion {
                commands::version::print(mode);
                return Ok(0);
            }
            if error.kind() == ErrorKind::DisplayHelp {
                print!("{error}");
                return Ok(0);
            }
            let rendered = error.render().to_string();
            let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
            let mut first = lines
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ")
                .to_owned();
            // "the following required arguments were not provided:" names them on the
            // next line; keep the message one line but complete.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {}", next.trim());
                }
            }
            return Err(
                CliError::new(ErrorCode::Usage, first).with_hint("run 'fen --help' for usage")
            );
        }
    };
    let settings = Settings::from_env()?;
    if let Some(targets) = log::filter_from_env()? {
        log::install(targets);
    }
    let command_line: Vec<String> = std::env::args().collect();
    let ctx = Context {
        repo_dir: args.repo_dir.clone(),
        mode,
        settings,
        stats: std::sync::Arc::new(events_stats()),
        started: std::time::Instant::now(),
        command: command_line.join(" "),
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
    let result = runtime.block_on(dispatch(&ctx, args.registry.as_deref(), &args.command));
    if args.stats {
        print_stats(&ctx);
    }
    let outcome = result?;
    output::print_result(ctx.mode, &outcome.human, &outcome.json);
    // Every lock guard and transaction is closed by now and stdout is flushed; exiting
    // here skips tearing down the runtime and the catalog connection (milliseconds per
    // command). SQLite in WAL mode needs no clean close.
    std::process::exit(i32::from(outcome.exit_code))
}

async fn dispatch(
    ctx: &Context,
    registry: Option<&str>,
    command: &Command,
) -> Result<commands::Outcome, CliError> {
    match command {
        Command::Init { dir, nested } => commands::init::run(ctx, dir.as_deref(), *nested).await,
        Command::Extension { command } => match command {
            ExtensionCommand::List { kind } => {
                commands::extension_list::run(ctx, kind.map(|k| k.kind())).await
            }
            ExtensionCommand::Describe { type_name, kind } => {
                commands::types::describe(ctx, type_name, kind.map(|k| k.kind())).await
            }
            ExtensionCommand::Why { type_name, kind } => {
                commands::why::run(ctx, type_name, kind.map(|k| k.kind())).await
            }
            ExtensionCommand::Source { command } => match command {
                SourceCommand::Add { dir } => {
                    commands::source::change(ctx, commands::source::Change::Add(dir)).await
                }
                SourceCommand::Rm { dir } => {
                    commands::source::change(ctx, commands::source::Change::Rm(dir)).await
                }
                SourceCommand::List => commands::source::list(ctx),
            },
            ExtensionCommand::Pull {
                reference,
                force,
                allow_unverified,
            } => {
                commands::lifecycle::pull(ctx, registry, reference, *force, *allow_unverified).await
            }
            ExtensionCommand::Rm { name, yes } => commands::lifecycle::rm(ctx, name, *yes).await,
            ExtensionCommand::Update { name, check } => {
                commands::lifecycle::update(ctx, registry, name.as_deref(), *check).await
            }
            ExtensionCommand::Install { refresh } => {
                commands::lifecycle::install(ctx, registry, *refresh).await
            }
            ExtensionCommand::Status => commands::lifecycle::status(ctx).await,
            ExtensionCommand::Pack {
                dir,
                out,
                registry_dir,
            } => commands::pack::run(ctx, dir, out.as_deref(), registry_dir.as_deref()),
        },
        Command::Model { command } => match command {
            ModelCommand::Type { command } => match command {
                ModelTypeCommand::Search { query, kind } => {
                    let kind = kind.map(|k| k.kind()).unwrap_or(fen_domain::Kind::Model);
                    commands::types::search(ctx, query, kind).await
                }
                ModelTypeCommand::Describe { type_name } => {
                    commands::types::describe(ctx, type_name, Some(fen_domain::Kind::Model)).await
                }
            },
            ModelCommand::Create {
                type_name,
                name,
                args,
            } => commands::models::create(ctx, type_name, name, args).await,
            ModelCommand::List => commands::models::list(ctx).await,
            ModelCommand::Method { command } => match command {
                MethodCommand::Run {
                    name,
                    method,
                    args,
                    timeout_ms,
                    memory_mb,
                } => commands::models::run(ctx, name, method, args, *timeout_ms, *memory_mb).await,
            },
        },
        Command::Datastore { command } => match command {
            DatastoreCommand::Setup { command } => commands::datastore::setup(ctx, command).await,
            DatastoreCommand::Status => commands::datastore::datastore_status(ctx).await,
            DatastoreCommand::Sync {
                pull,
                push,
                models,
                timeout_ms,
            } => {
                let direction = match (pull, push) {
                    (true, _) => fen_lifecycle::datastore::Direction::Pull,
                    (_, true) => fen_lifecycle::datastore::Direction::Push,
                    _ => fen_lifecycle::datastore::Direction::Both,
                };
                commands::datastore::sync(ctx, direction, models, *timeout_ms).await
            }
            DatastoreCommand::Lock { command } => match command {
                LockCommand::Status => commands::datastore::status(ctx).await,
                LockCommand::Release { force: _, model } => {
                    commands::datastore::release(ctx, model.as_deref()).await
                }
            },
        },
        Command::Doctor { command } => match command {
            DoctorCommand::Extensions(doctor_args) => commands::doctor::run(ctx, doctor_args).await,
        },
        Command::Completions { shell } => Ok(commands::completions::run(ctx.mode, *shell)),
        Command::Registry { command } => match command {
            RegistryCommand::Serve {
                dir,
                addr,
                quiet,
                allow_non_loopback,
            } => commands::registry::serve(dir, addr, *quiet, *allow_non_loopback).await,
        },
    }
}

/// Counters, reporting events as JSON lines to `FEN_EVENTS_FILE` when it is set.
fn events_stats() -> fen_lifecycle::stats::Stats {
    use std::io::Write;
    let Some(path) = std::env::var_os("FEN_EVENTS_FILE").filter(|p| !p.is_empty()) else {
        return fen_lifecycle::stats::Stats::default();
    };
    let started = std::time::Instant::now();
    let file = std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path),
    );
    fen_lifecycle::stats::Stats::with_events(std::sync::Arc::new(
        move |name: &str, fields: serde_json::Value| {
            let mut record = serde_json::json!({
                "event": name,
                "tsUs": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "pid": std::process::id(),
            });
            if let (Some(record), serde_json::Value::Object(fields)) =
                (record.as_object_mut(), fields)
            {
                record.extend(fields);
            }
            if let Ok(mut guard) = file.lock() {
                if let Ok(file) = guard.as_mut() {
                    // One write per line, so lines of concurrent processes never interleave.
                    let _ = file.write_all(format!("{record}\n").as_bytes());
                }
            }
        },
    ))
}

/// Each evaluated bundle once, with the npm packages it contains (issue 17).
fn evaluated_bundles(evaluated: &[String]) -> Vec<serde_json::Value> {
    let mut seen = std::collections::BTreeSet::new();
    evaluated
        .iter()
        .filter(|path| seen.insert(path.as_str()))
        .map(|path| {
            serde_json::json!({
                "bundle": path,
                "packages": commands::types::bundle_packages(path),
            })
        })
        .collect()
}

/// The one-line `--stats` record on stderr (spec 30 §5.6).
fn print_stats(ctx: &Context) {
    let stats = ctx.stats.snapshot();
    let record = serde_json::json!({"fenStats": {
        "bundlesBuilt": stats.bundles_built,
        "bundlesEvaluated": stats.bundles_evaluated,
        "evaluated": stats.evaluated,
        "bundles": evaluated_bundles(&stats.evaluated),
        "sourcesHashed": stats.sources_hashed,
        "catalogStatements": stats.catalog_statements,
        "lifecycleLockAcquired": stats.lifecycle_lock_acquired,
        "bundleCache": {
            "hits": stats.bundle_cache.hits,
            "misses": stats.bundle_cache.misses,
            "evictions": stats.bundle_cache.evictions,
            "bytes": stats.bundle_cache.bytes,
            "entries": stats.bundle_cache.entries,
        },
        "elapsedUs": u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
    }});
    eprintln!("{record}");
}

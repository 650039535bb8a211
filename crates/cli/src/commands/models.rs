//! `fen model create | list | method run` (spec 30 §6): argument input from the
//! command line, the model services of fen-lifecycle, and their errors as the user
//! sees them.

use std::time::Duration;

use fen_domain::model::{ArgInput, RunRecord};
use fen_domain::ports::{LockError, SandboxLimits};
use fen_lifecycle::loader::LoadError;
use fen_lifecycle::models::{Interrupt, ModelError, RunRequest};
use fen_lifecycle::registry::LoadedTypeIndex;
use serde_json::{json, Value};

use super::Outcome;
use crate::args::ArgFlags;
use crate::context::Context;
use crate::error::{printable, CliError, ErrorCode};

/// Largest `result` printed in human mode.
const MAX_HUMAN_RESULT_BYTES: usize = 4 * 1024;

/// `--arg`, `--args-json`, `--args-file` read and parsed (not yet merged).
fn arg_input(flags: &ArgFlags) -> Result<ArgInput, CliError> {
    let invalid = |message: String| {
        CliError::new(ErrorCode::InvalidArguments, message)
            .with_hint("--args-json and --args-file take one JSON object")
    };
    let json = match &flags.args_json {
        Some(text) => Some(
            serde_json::from_str(text)
                .map_err(|e| invalid(format!("--args-json is not valid JSON: {e}")))?,
        ),
        None => None,
    };
    let file = match &flags.args_file {
        Some(path) => Some((
            path.display().to_string(),
            fen_infrastructure::models::read_args_file(path).map_err(invalid)?,
        )),
        None => None,
    };
    Ok(ArgInput {
        pairs: flags.pairs.clone(),
        json,
        file,
    })
}

/// `fen model create TYPE NAME [args]`.
pub async fn create(
    ctx: &Context,
    type_name: &str,
    name: &str,
    flags: &ArgFlags,
) -> Result<Outcome, CliError> {
    let input = arg_input(flags)?;
    let repo = ctx.open_repo().await?;
    ctx.index(&repo).await?;
    let models = ctx.models(&repo).await?;
    let path = models
        .create(type_name, name, &input)
        .await
        .map_err(model_error)?;
    Ok(Outcome {
        human: format!("created model \"{name}\" ({path})"),
        json: json!({ "model": name, "path": path }),
        exit_code: 0,
    })
}

/// `fen model list`.
pub async fn list(ctx: &Context) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let summary = ctx.index(&repo).await?;
    let models = ctx.models(&repo).await?;
    let index = LoadedTypeIndex::new(&summary.loaded, repo.adapters.types.clone());
    let rows = models.list(&index).await.map_err(model_error)?;
    let mut human = String::new();
    let mut json_rows = Vec::new();
    for row in &rows {
        let status = match row.status {
            "ok" => "ok".to_owned(),
            "unknown_type" => "unknown type".to_owned(),
            other => format!(
                "invalid definition: {}",
                row.detail.as_deref().unwrap_or(other)
            ),
        };
        let latest_at = row.latest_run.as_deref().map(run_time);
        // The type and the parse error quote definition files: one line, no escapes.
        human.push_str(&format!(
            "{}  {}  {}  {}\n",
            printable(row.name.clone()),
            printable(row.type_name.clone().unwrap_or_else(|| "-".to_owned())),
            printable(status),
            latest_at.as_deref().unwrap_or("never run"),
        ));
        json_rows.push(json!({
            "name": row.name,
            "type": row.type_name,
            "status": row.status,
            "error": row.detail,
            "latestRun": row.latest_run,
            "latestRunAt": latest_at,
        }));
    }
    if rows.is_empty() {
        human = "no models (create one with 'fen model create <type> <name>')".to_owned();
    }
    Ok(Outcome {
        human: human.trim_end().to_owned(),
        json: json!({ "models": json_rows }),
        exit_code: 0,
    })
}

/// The start time a run id names: `20260301T120005Z-…` → `2026-03-01T12:00:05Z`.
fn run_time(run_id: &str) -> String {
    let b = run_id.as_bytes();
    if run_id.len() < 16 || !fen_domain::model::is_run_id(run_id) {
        return run_id.to_owned();
    }
    let s = |r: std::ops::Range<usize>| String::from_utf8_lossy(&b[r]).into_owned();
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        s(0..4),
        s(4..6),
        s(6..8),
        s(9..11),
        s(11..13),
        s(13..15)
    )
}

/// `fen model method run NAME METHOD [args] [--timeout-ms N] [--memory-mb N]`.
pub async fn run(
    ctx: &Context,
    name: &str,
    method: &str,
    flags: &ArgFlags,
    timeout_ms: Option<u64>,
    memory_mb: Option<u64>,
) -> Result<Outcome, CliError> {
    let input = arg_input(flags)?;
    let repo = ctx.open_repo().await?;
    ctx.index(&repo).await?;
    let models = ctx.models(&repo).await?;
    let limits = SandboxLimits::method_run()
        .with_time(
            timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(ctx.settings.method_timeout),
        )
        .with_memory_bytes(
            memory_mb
                .and_then(|mb| usize::try_from(mb).ok())
                .map(|mb| mb << 20)
                .unwrap_or(ctx.settings.memory_bytes),
        );
    let (fire, fired) = tokio::sync::oneshot::channel::<()>();
    let request = RunRequest {
        model: name.to_owned(),
        method: method.to_owned(),
        args: input,
        limits,
        interrupt: Some(Interrupt::new(async move {
            if fired.await.is_err() {
                // The run ended without a signal.
                std::future::pending::<()>().await;
            }
        })),
    };
    // On SIGINT/SIGTERM the run is told, not dropped: a lock wait stops, a running
    // call is cancelled, recorded as `cancelled`, and only then is the model's lock
    // released (spec 30 §7.8 step 8), so the method's code never writes unlocked.
    let run = models.run_method(&request);
    tokio::pin!(run);
    let (outcome, signal) = tokio::select! {
        outcome = &mut run => (outcome, None),
        signal = interrupted() => {
            let _ = fire.send(());
            // A second signal stops waiting for the cancelled call (a host operation
            // stuck on a slow file system, say): the run is dropped, which releases
            // the lock at once.
            tokio::select! {
                outcome = &mut run => (outcome, Some(signal)),
                again = interrupted() => {
                    return Err(CliError::new(
                        ErrorCode::Interrupted,
                        format!("interrupted by a second {again} while method \"{method}\" of model \"{name}\" was being cancelled; its lock was released without waiting for it"),
                    )
                    .with_hint("artifacts written before the signal are kept; run the method again"));
                }
            }
        }
    };
    let record = match (outcome, signal) {
        (Ok(record), _) => record,
        (Err(error), Some(signal)) if is_interruption(&error) => {
            let run_id = match &error {
                ModelError::MethodFailed { record, .. } => Some(record.run_id.clone()),
                _ => None,
            };
            let mut cli = CliError::new(
                ErrorCode::Interrupted,
                format!(
                    "interrupted by {signal} while running method \"{method}\" of model \"{name}\"; {}",
                    if run_id.is_some() {
                        "the run was recorded as cancelled and its lock was released"
                    } else {
                        "nothing ran"
                    }
                ),
            )
            .with_hint("artifacts written before the signal are kept; run the method again");
            if let Some(run_id) = run_id {
                cli = cli.with_detail("runId", json!(run_id));
            }
            return Err(cli);
        }
        (Err(error), _) => return Err(model_error(error)),
    };
    Ok(Outcome {
        human: human_record(&record),
        json: serde_json::to_value(&record).unwrap_or(Value::Null),
        exit_code: 0,
    })
}

/// True for a run that stopped because of a signal.
fn is_interruption(error: &ModelError) -> bool {
    match error {
        ModelError::Interrupted { .. } => true,
        ModelError::MethodFailed { code, .. } => code == "interrupted",
        _ => false,
    }
}

/// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere) with the signal's name;
/// never, if no handler can be installed.
pub(crate) async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(_) => std::future::pending().await,
        }
    }
}

/// Step 7 of spec 30 §6.5: status, one line per handle, the result (cut to 4 KiB).
fn human_record(record: &RunRecord) -> String {
    let mut out = format!(
        "{}: {}.{} (run {})\n",
        record.status.as_str(),
        record.model,
        record.method,
        record.run_id
    );
    for handle in &record.handles {
        out.push_str(&format!(
            "wrote {}/{} v{} ({} B)\n",
            handle.spec, handle.instance, handle.version, handle.size
        ));
    }
    if !record.result.is_null() {
        let text = serde_json::to_string_pretty(&record.result).unwrap_or_default();
        if text.len() > MAX_HUMAN_RESULT_BYTES {
            let mut end = MAX_HUMAN_RESULT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            out.push_str(&text[..end]);
            out.push_str("\n... (truncated; --json prints the whole result)\n");
        } else {
            out.push_str(&text);
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

/// A model error as the user sees it.
pub fn model_error(error: ModelError) -> CliError {
    match error {
        ModelError::DefinitionInvalid(message) => CliError::new(
            ErrorCode::DefinitionInvalid,
            message,
        )
        .with_hint(
            "fix the file; allowed keys are name, type, typeVersion, description, globalArguments",
        ),
        ModelError::ModelNotFound {
            ref name,
            ref suggestions,
        } => {
            let hint = if suggestions.is_empty() {
                "run 'fen model list' to see the models".to_owned()
            } else {
                format!("did you mean {}?", suggestions.join(", "))
            };
            let details = json!(suggestions);
            let _ = name;
            CliError::new(ErrorCode::ModelNotFound, error.to_string())
                .with_hint(hint)
                .with_detail("suggestions", details)
        }
        ModelError::ModelExists { .. } => CliError::new(ErrorCode::ModelExists, error.to_string())
            .with_hint("pick another name, or edit or delete the existing file"),
        ModelError::InvalidName(message) => CliError::new(ErrorCode::InvalidInput, message)
            .with_hint("a model name is a file name and a path segment, e.g. web-health"),
        ModelError::InvalidArguments { ref violations, .. } => {
            let listed = json!(violations);
            CliError::new(ErrorCode::InvalidArguments, error.to_string())
                .with_hint("run 'fen model type describe <type>' to see the argument schemas")
                .with_detail("violations", listed)
        }
        ModelError::Load(load) => load_error(load),
        ModelError::UnknownMethod { ref available, .. } => {
            let list: Vec<String> = available
                .iter()
                .map(|(name, origin)| format!("{name} ({origin})"))
                .collect();
            let details: Vec<Value> = available
                .iter()
                .map(|(name, origin)| json!({"name": name, "origin": origin}))
                .collect();
            let hint = if list.is_empty() {
                "the type has no methods".to_owned()
            } else {
                format!("available methods: {}", list.join(", "))
            };
            CliError::new(ErrorCode::UnknownMethod, error.to_string())
                .with_hint(hint)
                .with_detail("availableMethods", Value::Array(details))
        }
        ModelError::Lock(lock) => lock_error(lock),
        ModelError::Data(message) => CliError::new(ErrorCode::Io, message),
        ModelError::MethodFailed {
            code,
            message,
            hint,
            extension_code,
            record,
        } => {
            let mut cli = CliError::new(ErrorCode::from_run_code(&code), message)
                .with_detail("runId", json!(record.run_id))
                .with_detail("status", json!(record.status.as_str()))
                .with_detail("run", serde_json::to_value(&*record).unwrap_or(Value::Null));
            if let Some(hint) = hint {
                cli = cli.with_hint(hint);
            }
            if let Some(extension_code) = extension_code {
                cli = cli.with_detail("extensionCode", json!(extension_code));
            }
            if let Some(stack) = &record.stack {
                cli = cli.with_detail("stack", json!(stack));
                if std::env::var("FEN_LOG").is_ok_and(|v| v == "debug") {
                    eprintln!("{stack}");
                }
            }
            cli
        }
        ModelError::Interrupted { .. } => CliError::new(ErrorCode::Interrupted, error.to_string())
            .with_hint("run the method again"),
        ModelError::Sync {
            stage,
            ref model,
            ref cause,
            ref message,
            ref record,
        } => {
            let mut cli = super::datastore::sync_error(stage, cause, message.clone())
                .with_detail("model", json!(model));
            if let Some(record) = record {
                cli = cli.with_detail("runId", json!(record.run_id));
            }
            cli
        }
        ModelError::LockLost { ref record, .. } => {
            let run_id = record.run_id.clone();
            CliError::new(ErrorCode::LockLost, error.to_string())
                .with_hint("check that no other process runs this model, then run it again")
                .with_detail("runId", json!(run_id))
        }
        other => CliError::new(ErrorCode::InternalError, other.to_string()),
    }
}

/// A load failure of a model type.
pub(crate) fn load_error(error: LoadError) -> CliError {
    match error {
        LoadError::UnknownType {
            ref name,
            ref suggestions,
        } => CliError::unknown_type(name, suggestions),
        LoadError::BundleTampered { .. } => {
            CliError::new(ErrorCode::BundleTampered, error.to_string())
                .with_hint("run 'fen doctor extensions --rescan' to rebuild every bundle")
        }
        LoadError::Catalog(message) => CliError::new(ErrorCode::CatalogError, message)
            .with_hint("run 'fen doctor extensions' to check the catalog"),
        other => CliError::new(ErrorCode::TypeUnavailable, other.to_string())
            .with_hint("run 'fen extension list' to see the state of its sources"),
    }
}

/// A datastore lock failure.
pub fn lock_error(error: LockError) -> CliError {
    match &error {
        LockError::Timeout { key, holder, .. } => {
            let mut cli = CliError::new(ErrorCode::DatastoreLockTimeout, error.to_string())
                .with_hint(format!(
                    "wait for that run to finish and retry, raise FEN_DATASTORE_LOCK_TIMEOUT_MS, or if its process is gone run 'fen datastore lock release --force{}'",
                    key.strip_prefix("model/")
                        .map(|m| format!(" --model {m}"))
                        .unwrap_or_default()
                ))
                .with_detail("lock", json!(key));
            if let Some(holder) = holder {
                cli = cli
                    .with_detail("holderPid", json!(holder.info.pid))
                    .with_detail("holder", json!(holder.info.holder))
                    .with_detail("hostname", json!(holder.info.hostname))
                    .with_detail("ageMs", json!(holder.age_ms));
            }
            cli
        }
        LockError::Unavailable(_) => {
            CliError::new(ErrorCode::DatastoreUnavailable, error.to_string()).with_hint(
                "check the datastore's directory ('fen datastore status'); local data is unchanged",
            )
        }
        _ => CliError::new(ErrorCode::Io, error.to_string()),
    }
}

//! `fen extension pull | rm | update | install | status` (spec 20 §9–§12, §15).
//!
//! Each builds a `Session` over the repo's adapters plus the registry client and the
//! archive extractor, runs one service, and prints its report. In JSON mode every
//! document, success or failure, carries `warnings`, `recovered` and `timings` at the
//! top level (spec 20 §9.6); in human mode warnings go to stderr.

use std::io::IsTerminal;
use std::sync::Arc;

use fen_domain::ports::RegistryUrl;
use fen_domain::{ExtensionName, ExtensionRef};
use fen_infrastructure::archive::TarGzUnpacker;
use fen_infrastructure::registry::client::{ClientConfig, HttpRegistryClient};
use fen_lifecycle::extensions::install::{InstallMode, InstallOutcome, InstallRequest};
use fen_lifecycle::extensions::restore::Refresh;
use fen_lifecycle::extensions::upgrade::{BulkItem, UpdateMode};
use fen_lifecycle::extensions::{Extras, Session};
use fen_lifecycle::LifecycleError;
use serde_json::{json, Map, Value};

use crate::commands::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};
use crate::output::Mode;
use crate::progress::DownloadBar;

fn invalid_name(error: impl std::fmt::Display) -> CliError {
    CliError::new(ErrorCode::InvalidName, error.to_string())
}

/// `--registry` / `FEN_REGISTRY_URL` (clap reads both; the flag wins).
fn configured_registry(registry: Option<&str>) -> Result<Option<RegistryUrl>, CliError> {
    match registry.filter(|r| !r.is_empty()) {
        None => Ok(None),
        Some(text) => RegistryUrl::parse(text).map(Some).map_err(|e| {
            CliError::new(ErrorCode::InvalidInput, e.message)
                .with_hint("pass --registry http://HOST:PORT or set FEN_REGISTRY_URL")
        }),
    }
}

fn not_configured() -> CliError {
    CliError::new(
        ErrorCode::RegistryNotConfigured,
        "no registry configured; set FEN_REGISTRY_URL or pass --registry <URL>",
    )
}

async fn session(ctx: &Context) -> Result<Session, CliError> {
    let repo = ctx.open_repo().await?;
    let config = ClientConfig {
        request_timeout: ctx.settings.http_timeout,
        download_timeout: ctx.settings.download_timeout,
        attempts: ctx.settings.http_attempts,
        token: std::env::var("FEN_REGISTRY_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        ..ClientConfig::default()
    };
    let client = HttpRegistryClient::new(config).map_err(|e| {
        CliError::new(
            ErrorCode::from_code(e.code.as_str()).unwrap_or(ErrorCode::Io),
            e.message,
        )
    })?;
    Ok(Session::new(
        repo.adapters,
        Arc::new(client),
        Arc::new(TarGzUnpacker),
        Arc::new(DownloadBar::new(ctx.mode == Mode::Human)),
    ))
}

fn extras_json(extras: &Extras) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("warnings".into(), json!(extras.warnings));
    map.insert(
        "recovered".into(),
        Value::Array(extras.recovered.iter().map(|r| r.to_json()).collect()),
    );
    map.insert(
        "timings".into(),
        json!({
            "totalMs": 0,
            "lockWaitMs": extras.timings.lock_wait_ms,
            "lockHeldMs": extras.timings.lock_held_ms,
            "lockSpans": extras.timings.lock_spans,
        }),
    );
    map
}

/// Runs `work` with SIGINT/SIGTERM noted in the session (spec 20 §8.5): the first
/// signal stops the work at its next safe point outside a locked section (exit 130,
/// staging deleted); a second one ends the process at once, which recovery treats like
/// any crash. The signals are watched on a thread of their own, so the flag is set even
/// while the command's (current-thread) runtime is busy.
async fn with_signals<T>(session: &Session, work: impl std::future::Future<Output = T>) -> T {
    let flag = Arc::clone(&session.interrupted);
    let (registered, ready) = std::sync::mpsc::channel::<()>();
    let watcher = std::thread::Builder::new()
        .name("fen-signals".to_owned())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                #[cfg(unix)]
                {
                    use tokio::signal::unix::{signal, SignalKind};
                    // `signal` installs the handler when called, before any await.
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        return;
                    };
                    let _ = registered.send(());
                    for _ in 0..2 {
                        tokio::select! {
                            _ = int.recv() => {}
                            _ = term.recv() => {}
                        }
                        if flag.is_raised() {
                            std::process::exit(130);
                        }
                        flag.raise();
                    }
                }
                #[cfg(not(unix))]
                {
                    let _ = registered.send(());
                    let _ = tokio::signal::ctrl_c().await;
                    flag.raise();
                    let _ = tokio::signal::ctrl_c().await;
                    std::process::exit(130);
                }
            });
        });
    if watcher.is_ok() {
        // The handlers are installed once the watcher's first poll ran; waiting for
        // that keeps a signal sent right after start-up from killing the process.
        let _ = ready.recv_timeout(std::time::Duration::from_millis(200));
    }
    work.await
}

/// Finishes a command: warnings on stderr (human), extras beside the result (JSON).
fn finish(
    ctx: &Context,
    session: &Session,
    result: Result<(String, Map<String, Value>, u8), LifecycleError>,
) -> Result<Outcome, CliError> {
    let extras = session.extras();
    let mut beside = extras_json(&extras);
    if let Some(timings) = beside.get_mut("timings") {
        timings["totalMs"] = json!(u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(0));
    }
    if ctx.mode == Mode::Human {
        for warning in &extras.warnings {
            ctx.warn(warning);
        }
    }
    match result {
        Ok((human, fields, exit_code)) => {
            let mut document = fields;
            document.extend(beside);
            Ok(Outcome {
                human,
                json: Value::Object(document),
                exit_code,
            })
        }
        Err(error) => {
            let mut error = CliError::from(error);
            error.beside = beside;
            Err(error)
        }
    }
}

/// `fen extension pull`.
pub async fn pull(
    ctx: &Context,
    registry: Option<&str>,
    reference: &str,
    force: bool,
    allow_unverified: bool,
) -> Result<Outcome, CliError> {
    let reference = ExtensionRef::parse(reference).map_err(invalid_name)?;
    let registry = configured_registry(registry)?.ok_or_else(not_configured)?;
    let session = session(ctx).await?;
    let request = InstallRequest {
        reference,
        registry,
        allow_unverified,
        mode: InstallMode::Pull { force },
    };
    let _bar = crate::progress::IndexProgressBar::after_delay(
        ctx.mode == Mode::Human,
        Arc::clone(&ctx.stats),
    );
    let result =
        with_signals(&session, session.install(request))
            .await
            .map(|outcome| match outcome {
                InstallOutcome::Done(report) => {
                    let line = |r: &fen_lifecycle::extensions::install::InstallReport| {
                        let replaced = match (r.outcome, r.previous_version) {
                            ("upgraded" | "downgraded", Some(v)) => format!(" — replaced {v}"),
                            _ => String::new(),
                        };
                        format!(
                            "Installed {}@{} ({} files, {} types, sha256 {}){replaced}",
                            r.name,
                            r.version,
                            r.files.len(),
                            r.types.len(),
                            &r.checksum[..12.min(r.checksum.len())]
                        )
                    };
                    let mut human = line(&report);
                    for dep in &report.dependencies {
                        human.push_str(&format!("\n  + {}", line(dep)));
                    }
                    let mut fields = Map::new();
                    fields.insert("installed".into(), report.to_json());
                    (human, fields, 0)
                }
                InstallOutcome::UpToDate | InstallOutcome::Skipped(_) => {
                    (String::new(), Map::new(), 0)
                }
            });
    finish(ctx, &session, result)
}

/// `fen extension rm`.
pub async fn rm(ctx: &Context, name: &str, yes: bool) -> Result<Outcome, CliError> {
    let name = ExtensionRef::parse_bare(name).map_err(invalid_name)?;
    let session = session(ctx).await?;
    if !yes
        && ctx.mode == Mode::Human
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
        && !confirm(&session, &name).await
    {
        return Ok(Outcome {
            human: "Removal cancelled.".to_owned(),
            json: json!({}),
            exit_code: 0,
        });
    }
    let result = with_signals(&session, session.remove(&name))
        .await
        .map(|report| {
            let human = format!(
                "Removed {}{} ({} files deleted, {} already missing, {} empty directories pruned)",
                report.name,
                report.version.map(|v| format!("@{v}")).unwrap_or_default(),
                report.files_deleted,
                report.files_missing,
                report.dirs_pruned
            );
            let mut fields = Map::new();
            fields.insert("removed".into(), report.to_json());
            (human, fields, 0)
        });
    finish(ctx, &session, result)
}

/// The prompt of spec 20 §10.4, from an unlocked read; anything but y/yes is no.
async fn confirm(session: &Session, name: &ExtensionName) -> bool {
    use std::io::Write;
    let document = session.ad.lockfile_store.read().await.unwrap_or_default();
    let (version, files) = document
        .extensions
        .get(name)
        .map(|e| (format!("@{}", e.version), e.files.len()))
        .unwrap_or_default();
    eprint!("Remove {name}{version} and {files} files? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The report of `update` and `install` (spec 20 §11): one line per extension and a
/// summary; exit code of the first `failed` or `not_found` item.
fn bulk_result(
    items: Vec<BulkItem>,
    done_status: &'static str,
) -> (String, Map<String, Value>, u8) {
    if items.is_empty() {
        let mut fields = Map::new();
        fields.insert("extensions".into(), json!([]));
        return ("No pulled extensions installed.".to_owned(), fields, 0);
    }
    let mut lines = Vec::new();
    let mut exit = 0u8;
    let mut counts = [0usize; 6]; // done, up_to_date, reconciled, skipped, not_found, failed
    let mut json_items = Vec::new();
    for item in &items {
        let v = |v: Option<fen_domain::ExtensionVersion>| v.map(|v| v.to_string());
        let mut entry = json!({
            "name": item.name.as_str(),
            "status": item.status,
            "from": v(item.from),
            "to": v(item.to),
        });
        if let Some(reason) = item.reason {
            entry["reason"] = json!(reason);
        }
        let line = match item.status {
            "updated" | "restored" => {
                counts[0] += 1;
                format!(
                    "{}: {} {} -> {}",
                    item.name,
                    item.status,
                    v(item.from).unwrap_or_default(),
                    v(item.to).unwrap_or_default()
                )
            }
            "up_to_date" => {
                counts[1] += 1;
                format!(
                    "{}: up to date ({})",
                    item.name,
                    v(item.from).unwrap_or_default()
                )
            }
            "update_available" => format!(
                "{}: update available {} -> {}",
                item.name,
                v(item.from).unwrap_or_default(),
                v(item.to).unwrap_or_default()
            ),
            "reconciled" => {
                counts[2] += 1;
                format!("{}: reconciled", item.name)
            }
            "skipped" => {
                counts[3] += 1;
                format!(
                    "{}: skipped ({})",
                    item.name,
                    item.reason.unwrap_or("changed concurrently")
                )
            }
            "not_found" => {
                counts[4] += 1;
                if exit == 0 {
                    exit = 3;
                }
                format!("{}: not found in the registry", item.name)
            }
            _ => {
                counts[5] += 1;
                String::new()
            }
        };
        let line = if item.status == "failed" || item.status == "not_found" {
            if let Some(error) = item.error.as_ref() {
                let cli = CliError::from(clone_error(error));
                if item.status == "failed" && exit == 0 {
                    exit = cli.code.exit_code();
                }
                entry["error"] = cli.to_json()["error"].clone();
                if item.status == "failed" {
                    format!("{}: failed: {}", item.name, cli.message)
                } else {
                    line
                }
            } else {
                line
            }
        } else {
            line
        };
        lines.push(line);
        json_items.push(entry);
    }
    let done_key = if done_status == "restored" {
        "restored"
    } else {
        "updated"
    };
    lines.push(format!(
        "{} {done_key}, {} up to date, {} reconciled, {} skipped, {} failed",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[5] + counts[4]
    ));
    let mut summary = Map::new();
    summary.insert("total".into(), json!(items.len()));
    summary.insert(done_key.into(), json!(counts[0]));
    summary.insert("upToDate".into(), json!(counts[1]));
    summary.insert("reconciled".into(), json!(counts[2]));
    summary.insert("skipped".into(), json!(counts[3]));
    summary.insert("notFound".into(), json!(counts[4]));
    summary.insert("failed".into(), json!(counts[5]));
    let mut fields = Map::new();
    fields.insert("extensions".into(), Value::Array(json_items));
    fields.insert("summary".into(), Value::Object(summary));
    (lines.join("\n"), fields, exit)
}

/// A bulk item's error, re-created for printing (errors are not `Clone`).
fn clone_error(error: &LifecycleError) -> LifecycleError {
    match error {
        LifecycleError::Failed(failure) => LifecycleError::Failed(failure.clone()),
        other => {
            let failure = fen_lifecycle::extensions::Failure::new(other.code(), other.to_string());
            failure.into()
        }
    }
}

/// `fen extension update`.
pub async fn update(
    ctx: &Context,
    registry: Option<&str>,
    name: Option<&str>,
    check: bool,
) -> Result<Outcome, CliError> {
    let name = name
        .map(ExtensionRef::parse_bare)
        .transpose()
        .map_err(invalid_name)?;
    let registry = configured_registry(registry)?;
    let session = session(ctx).await?;
    let mode = if check {
        UpdateMode::Check
    } else {
        UpdateMode::Apply
    };
    let result = with_signals(
        &session,
        session.update(name.as_ref(), mode, registry.as_ref()),
    )
    .await
    .map(|items| bulk_result(items, "updated"));
    finish(ctx, &session, result)
}

/// `fen extension install`.
pub async fn install(
    ctx: &Context,
    registry: Option<&str>,
    refresh: bool,
) -> Result<Outcome, CliError> {
    let registry = configured_registry(registry)?;
    let session = session(ctx).await?;
    let refresh = if refresh {
        Refresh::All
    } else {
        Refresh::Changed
    };
    let result = with_signals(&session, session.restore(refresh, registry.as_ref()))
        .await
        .map(|items| bulk_result(items, "restored"));
    finish(ctx, &session, result)
}

/// `fen extension status`.
pub async fn status(ctx: &Context) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let report = fen_lifecycle::extensions::status::status(&repo.adapters).await?;
    let mut lines = Vec::new();
    if let Some(lockfile) = report.json["lockfile"].as_object() {
        for (name, entry) in lockfile {
            lines.push(format!(
                "{name}@{}",
                entry["version"].as_str().unwrap_or_default()
            ));
        }
    }
    if lines.is_empty() {
        lines.push("No pulled extensions installed.".to_owned());
    }
    for drift in &report.drift {
        lines.push(format!(
            "drift: {}: {} ({})",
            drift.name, drift.problem, drift.detail
        ));
    }
    for txn in &report.pending {
        lines.push(format!("pending transaction: {txn}"));
    }
    Ok(Outcome {
        human: lines.join("\n"),
        json: report.json,
        exit_code: 0,
    })
}

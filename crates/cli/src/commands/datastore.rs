//! `fen datastore setup | status | sync | lock status | lock release --force` (spec
//! 30 §7.10) over the repo's datastore (`local` or `filesystem`). None of them indexes
//! extensions or evaluates anything.

use std::sync::Arc;
use std::time::Instant;

use fen_domain::ports::{
    LockState, ModelDefinitions, ModelName, ModelRef, SyncCapabilities, SyncError,
};
use fen_domain::{layout, TypeName};
use fen_infrastructure::datastore::s3::S3Location;
use fen_infrastructure::datastore::{verify_remote, DatastoreConfig};
use fen_infrastructure::models::YamlModelDefinitions;
use fen_infrastructure::sources::absolute_lexical;
use fen_lifecycle::datastore::locking::LockBudget;
use fen_lifecycle::datastore::{DatastoreError, DatastorePorts, Datastores, Direction, Stage};
use serde_json::{json, Value};

use super::models::lock_error;
use super::Outcome;
use crate::args::SetupCommand;
use crate::context::{Context, Datastore};
use crate::error::{printable, CliError, ErrorCode};

fn lock_json(state: &LockState) -> Value {
    json!({
        "key": state.key,
        "holder": state.info.holder,
        "pid": state.info.pid,
        "hostname": state.info.hostname,
        "acquiredAt": state.info.acquired_at,
        "ageMs": state.age_ms,
        "ttlMs": state.info.ttl_ms,
        "stale": state.stale,
        "nonce": state.info.nonce,
    })
}

/// `fen datastore lock status`.
pub async fn status(ctx: &Context) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let config = crate::context::read_datastore_config(&root.native)?;
    let locks = ctx.datastore_locks(&root.native).await?;
    let held = locks.list().await.map_err(lock_error)?;
    let mut human = String::new();
    for state in &held {
        // Holder and host name come from lock files anyone with access could write.
        human.push_str(&format!(
            "{}  held by {} (pid {} on {})  age {} ms  ttl {} ms{}\n",
            state.key,
            printable(state.info.holder.clone()),
            state.info.pid,
            printable(state.info.hostname.clone()),
            state.age_ms,
            state.info.ttl_ms,
            if state.stale { "  stale" } else { "" }
        ));
    }
    if held.is_empty() {
        human = "no datastore lock is held".to_owned();
    }
    Ok(Outcome {
        human: human.trim_end().to_owned(),
        json: json!({ "datastore": config.type_name(), "locks": held.iter().map(lock_json).collect::<Vec<_>>() }),
        exit_code: 0,
    })
}

/// `fen datastore lock release --force [--model NAME]`: deletes the lock whoever
/// holds it, comparing the nonce it read so a lock re-taken meanwhile is kept.
pub async fn release(ctx: &Context, model: Option<&str>) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let locks = ctx.datastore_locks(&root.native).await?;
    let key = match model {
        Some(raw) => {
            let name = ModelName::parse(raw)
                .map_err(|message| CliError::new(ErrorCode::InvalidInput, message))?;
            format!("model/{name}")
        }
        None => "global".to_owned(),
    };
    let Some(state) = locks.inspect(&key).await.map_err(lock_error)? else {
        return Ok(Outcome {
            human: format!("no lock held ({key})"),
            json: json!({ "key": key, "released": false, "formerHolder": null }),
            exit_code: 0,
        });
    };
    let released = locks
        .force_release(&key, &state.info.nonce)
        .await
        .map_err(lock_error)?;
    if !released {
        return Err(CliError::new(
            ErrorCode::Conflict,
            format!(
                "the lock {key} changed holder while it was being released; nothing was deleted"
            ),
        )
        .with_hint("run 'fen datastore lock status' and try again"));
    }
    Ok(Outcome {
        human: format!(
            "released {key}, held by {} (pid {} on {}) for {} ms",
            printable(state.info.holder.clone()),
            state.info.pid,
            printable(state.info.hostname.clone()),
            state.age_ms
        ),
        json: json!({ "key": key, "released": true, "formerHolder": lock_json(&state) }),
        exit_code: 0,
    })
}

/// A failed pull or push as the user sees it (spec 30 §6.7, §7.4): a conflict is
/// `sync_conflict` (4); an extension's failure `datastore_extension_failed` (7); a
/// failed push after a run `datastore_push_failed` (6); anything else
/// `datastore_unavailable` (3).
pub fn sync_error(stage: Stage, cause: &SyncError, message: String) -> CliError {
    let code = match (stage, cause) {
        (_, SyncError::SyncConflict { .. }) => ErrorCode::SyncConflict,
        (_, SyncError::Extension(_)) if stage == Stage::Pull => ErrorCode::DatastoreExtensionFailed,
        (Stage::Push, _) => ErrorCode::DatastorePushFailed,
        _ => ErrorCode::DatastoreUnavailable,
    };
    let hint = match (cause, stage) {
        (SyncError::SyncConflict { .. }, _) => {
            "both copies were kept; compare them, move the one you do not want aside on one side, then run 'fen datastore sync'".to_owned()
        }
        (SyncError::SyncTimeout, _) => {
            "raise FEN_DATASTORE_SYNC_TIMEOUT_MS or 'fen datastore sync --timeout-ms <ms>'; if a lock is stuck, 'fen datastore lock release --force'".to_owned()
        }
        (SyncError::Extension(_), Stage::Pull) => "the datastore extension failed; fix its source (see 'fen extension list') and retry; local data is unchanged".to_owned(),
        (_, Stage::Push) => "the data is kept locally; run 'fen datastore sync --push' once the datastore is reachable".to_owned(),
        (_, Stage::Pull) => "check that the datastore's directory is mounted and readable (see 'fen datastore status'); local data is unchanged".to_owned(),
    };
    let mut cli = CliError::new(code, message).with_hint(hint);
    if let SyncError::SyncConflict { path } = cause {
        cli = cli.with_detail("conflictingPaths", json!([path]));
    }
    cli
}

fn datastore_error(error: DatastoreError, extra: &str) -> CliError {
    match error {
        DatastoreError::Lock(lock) => lock_error(lock),
        DatastoreError::Sync {
            stage,
            ref label,
            ref cause,
        } => {
            let message = format!("{} with the {label} failed: {cause}{extra}", stage.as_str());
            sync_error(stage, cause, message)
        }
        DatastoreError::Interrupted => CliError::new(ErrorCode::Interrupted, error.to_string()),
        other => CliError::new(ErrorCode::InternalError, other.to_string()),
    }
}

fn services(ctx: &Context, wired: &Datastore) -> Datastores {
    Datastores::new(DatastorePorts {
        locks: wired.locks.clone(),
        sync: wired.sync.clone(),
        label: wired.label.clone(),
        budget: LockBudget {
            wait_ms: ctx.settings.datastore_lock_wait_ms,
            ttl_ms: ctx.settings.datastore_lock_ttl_ms,
        },
        stats: Arc::clone(&ctx.stats),
        notices: Arc::new(|level: &str, message: &str| eprintln!("{level}: {message}")),
    })
}

fn interrupted_sync(signal: &str) -> CliError {
    CliError::new(
        ErrorCode::Interrupted,
        format!(
            "interrupted by {signal}; the datastore locks were released, files copied so far are kept and .fen/datastore.yaml was not changed"
        ),
    )
    .with_hint("run the command again; it copies only what is still missing")
}

fn capabilities_json(capabilities: &SyncCapabilities) -> Value {
    json!({ "scopedSync": capabilities.scoped_sync, "lazyHydration": capabilities.lazy_hydration })
}

/// `fen datastore setup local|filesystem|extension` (spec 30 §7.10): verify the new
/// backend, push and pull under its `global` lock, then write `.fen/datastore.yaml`
/// atomically (temp + rename) as the last step, so any failure leaves the file as it
/// was.
pub async fn setup(ctx: &Context, command: &SetupCommand) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let config_path = root.native.join(layout::DATASTORE_CONFIG);
    let safe = "; .fen/datastore.yaml was not changed and re-running the command is safe";
    let (config, skip_push) = match command {
        SetupCommand::Local => (DatastoreConfig::Local, true),
        SetupCommand::Filesystem { path, skip_push } => {
            let path = absolute_lexical(path).map_err(|e| {
                CliError::new(ErrorCode::InvalidInput, format!("{}: {e}", path.display()))
            })?;
            verify_remote(&path).map_err(|message| {
                CliError::new(
                    ErrorCode::DatastoreUnavailable,
                    format!(
                        "cannot use {} as a filesystem datastore: {message}{safe}",
                        path.display()
                    ),
                )
                .with_hint("pick a directory fen can create and write, or fix its permissions")
            })?;
            (DatastoreConfig::Filesystem { path }, *skip_push)
        }
        SetupCommand::S3 {
            bucket,
            prefix,
            endpoint,
            region,
            skip_push,
        } => {
            let location = S3Location::new(
                bucket,
                prefix.as_deref(),
                endpoint.as_deref(),
                region.as_deref(),
            )
            .map_err(|message| CliError::new(ErrorCode::InvalidInput, message))?;
            let client = crate::context::s3_bucket(&location, ctx.settings.http_timeout)?;
            client.verify().await.map_err(|message| {
                CliError::new(
                    ErrorCode::DatastoreUnavailable,
                    format!("cannot use {} as an s3 datastore: {message}{safe}", location.url()),
                )
                .with_hint("check the bucket exists, the endpoint and region are right and the credentials may write to it")
            })?;
            (DatastoreConfig::S3 { location }, *skip_push)
        }
        SetupCommand::Extension {
            type_name,
            remote,
            config,
            skip_push,
        } => {
            let remote = absolute_lexical(remote).map_err(|e| {
                CliError::new(
                    ErrorCode::InvalidInput,
                    format!("{}: {e}", remote.display()),
                )
            })?;
            let config = match config.as_deref() {
                None => json!({}),
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => value,
                    Ok(_) => {
                        return Err(CliError::new(
                            ErrorCode::InvalidInput,
                            format!("--config must be a JSON object{safe}"),
                        ))
                    }
                    Err(e) => {
                        return Err(CliError::new(
                            ErrorCode::InvalidInput,
                            format!("--config is not JSON: {e}{safe}"),
                        )
                        .with_hint("pass an object, e.g. --config '{\"compress\": true}'"))
                    }
                },
            };
            // The type is loaded and `config` validated by `datastore_for` below, before
            // the remote is probed (and created).
            (
                DatastoreConfig::Extension {
                    type_name: type_name.clone(),
                    remote,
                    config,
                },
                *skip_push,
            )
        }
    };
    let wired = ctx
        .datastore_for(
            &root.native,
            config.clone(),
            ctx.settings.datastore_sync_timeout_ms,
            None,
        )
        .await
        .map_err(|e| CliError {
            message: format!("{}{safe}", e.message),
            ..e
        })?;
    if let DatastoreConfig::Extension {
        type_name, remote, ..
    } = &config
    {
        verify_remote(remote).map_err(|message| {
            CliError::new(
                ErrorCode::DatastoreUnavailable,
                format!(
                    "cannot use {} as the remote of datastore type \"{type_name}\": {message}{safe}",
                    remote.display()
                ),
            )
            .with_hint("pick a directory fen can create and write, or fix its permissions")
        })?;
    }
    let services = services(ctx, &wired);
    let transfer = services.setup_transfer(skip_push);
    let report = tokio::select! {
        biased;
        signal = super::models::interrupted() => return Err(interrupted_sync(signal)),
        report = transfer => report.map_err(|e| datastore_error(e, safe))?,
    };
    config
        .write(&config_path)
        .map_err(|message| CliError::new(ErrorCode::Io, format!("{message}{safe}")))?;
    let location = config.shown_location();
    Ok(Outcome {
        human: format!(
            "datastore: {}{}{}{}",
            config.type_name(),
            location
                .as_deref()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default(),
            report
                .pushed
                .map(|n| format!("; pushed {n} files"))
                .unwrap_or_default(),
            report
                .pulled
                .map(|n| format!("; pulled {n} files"))
                .unwrap_or_default(),
        ),
        json: json!({
            "type": config.type_name(),
            "location": location,
            "pushed": report.pushed,
            "pulled": report.pulled,
        }),
        exit_code: 0,
    })
}

/// `fen datastore status`: type, location, health with probe latency, capabilities
/// and the locks held.
pub async fn datastore_status(ctx: &Context) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let wired = ctx.datastore(&root.native).await?;
    let location = wired.config.shown_location();
    // Health: the locks' storage answers (the directory exists, or the bucket lists).
    let started = Instant::now();
    let listed = wired.locks.list().await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let capabilities = services(ctx, &wired).negotiate().await;
    let (health, held) = match listed {
        Ok(held) => ("ok".to_owned(), held),
        Err(e) => (format!("unreachable: {e}"), Vec::new()),
    };
    let mut human = format!(
        "type: {}\nlocation: {}\nhealth: {health} ({latency_ms:.1} ms)\ncapabilities: scopedSync={} lazyHydration={}\n",
        wired.config.type_name(),
        location.as_deref().unwrap_or(".fen/data"),
        capabilities.scoped_sync,
        capabilities.lazy_hydration,
    );
    if held.is_empty() {
        human.push_str("locks: none held");
    }
    for state in &held {
        human.push_str(&format!(
            "lock {}  held by {} (pid {})  age {} ms{}\n",
            state.key,
            printable(state.info.holder.clone()),
            state.info.pid,
            state.age_ms,
            if state.stale { "  stale" } else { "" }
        ));
    }
    Ok(Outcome {
        human: human.trim_end().to_owned(),
        json: json!({
            "type": wired.config.type_name(),
            "location": location,
            "health": health,
            "probeLatencyMs": latency_ms,
            "capabilities": capabilities_json(&capabilities),
            "locks": held.iter().map(lock_json).collect::<Vec<_>>(),
        }),
        exit_code: 0,
    })
}

/// `fen datastore sync [--pull|--push] [--model NAME]... [--timeout-ms N]`.
pub async fn sync(
    ctx: &Context,
    direction: Direction,
    models: &[String],
    timeout_ms: Option<u64>,
) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let config = DatastoreConfig::read(&root.native.join(layout::DATASTORE_CONFIG))
        .map_err(|message| CliError::new(ErrorCode::ConfigInvalid, message))?;
    let wired = ctx
        .datastore_for(
            &root.native,
            config,
            timeout_ms.unwrap_or(ctx.settings.datastore_sync_timeout_ms),
            None,
        )
        .await?;
    if wired.sync.is_none() {
        return Ok(Outcome {
            human: "the local datastore has nothing to sync".to_owned(),
            json: json!({ "type": "local", "pulled": null, "pushed": null }),
            exit_code: 0,
        });
    }
    let services = services(ctx, &wired);
    let progress = crate::progress::SyncSpinner::after_delay(
        ctx.mode == crate::output::Mode::Human,
        format!("syncing with the {}", wired.label),
    );
    let mut refs = Vec::new();
    if !models.is_empty() {
        let definitions = YamlModelDefinitions::new(root.native.join(layout::MODELS_DIR));
        for raw in models {
            let name = ModelName::parse(raw)
                .map_err(|message| CliError::new(ErrorCode::InvalidInput, message))?;
            let definition = definitions
                .read(&name)
                .map_err(|e| CliError::new(ErrorCode::DefinitionInvalid, e.to_string()))?
                .ok_or_else(|| {
                    CliError::new(
                        ErrorCode::ModelNotFound,
                        format!("model \"{name}\" not found (no models/{name}.yaml)"),
                    )
                    .with_hint("run 'fen model list' to see the models")
                })?;
            let model_type = TypeName::parse(&definition.type_name).map_err(|e| {
                CliError::new(
                    ErrorCode::DefinitionInvalid,
                    format!("models/{name}.yaml: {e}"),
                )
            })?;
            refs.push(ModelRef { name, model_type });
        }
    }
    let work = async {
        if refs.is_empty() {
            services.sync_all(direction).await
        } else {
            services.sync_models(refs, direction, None).await
        }
    };
    // On SIGINT/SIGTERM the sync future is dropped: its lock guards release on drop,
    // and every file already copied was renamed or linked into place whole.
    let report = tokio::select! {
        // The handlers are installed before the sync starts.
        biased;
        signal = super::models::interrupted() => {
            drop(progress);
            return Err(interrupted_sync(signal));
        }
        report = work => report,
    };
    drop(progress);
    let report = report.map_err(|e| datastore_error(e, "; local data was kept"))?;
    Ok(Outcome {
        human: format!(
            "synced with the {}: {}",
            wired.label,
            [("pulled", report.pulled), ("pushed", report.pushed)]
                .iter()
                .filter_map(|(what, n)| n.map(|n| format!("{what} {n} files")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        json: json!({
            "type": wired.config.type_name(),
            "pulled": report.pulled,
            "pushed": report.pushed,
            "scoped": !models.is_empty() && report.capabilities.scoped_sync,
            "capabilities": capabilities_json(&report.capabilities),
        }),
        exit_code: 0,
    })
}

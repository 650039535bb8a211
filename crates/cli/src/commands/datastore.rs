//! `fen datastore lock status | release --force` (spec 30 §7.10) for the `local`
//! datastore's lock files. Neither indexes extensions nor evaluates anything.

use fen_domain::ports::{LockState, ModelName};
use serde_json::{json, Value};

use super::models::lock_error;
use super::Outcome;
use crate::context::Context;
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
    let locks = ctx.datastore_locks(&root.native)?;
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
        json: json!({ "datastore": "local", "locks": held.iter().map(lock_json).collect::<Vec<_>>() }),
        exit_code: 0,
    })
}

/// `fen datastore lock release --force [--model NAME]`: deletes the lock whoever
/// holds it, comparing the nonce it read so a lock re-taken meanwhile is kept.
pub async fn release(ctx: &Context, model: Option<&str>) -> Result<Outcome, CliError> {
    let root = ctx.repo_root()?;
    let locks = ctx.datastore_locks(&root.native)?;
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

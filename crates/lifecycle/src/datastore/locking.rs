//! The two lock protocols of model data (spec 30 §7.8, §7.9).
//!
//! Per-model work (a method run, `fen datastore sync --model`) drains `global`, takes
//! `model/<m>` for each model in sorted order, then re-checks `global`; if a
//! structural command took it meanwhile it releases everything and starts over.
//! Structural work (`fen datastore sync` without `--model`, `setup`) drains
//! symmetrically: it waits until no live per-model lock exists, takes `global`, and
//! waits again, so it never works beside a per-model holder. Every wait is bounded
//! by `FEN_DATASTORE_LOCK_TIMEOUT_MS`; the locks live in whatever root the
//! `DistributedLock` adapter serves (`.fen/locks/`, `<path>/.fen-locks/`).

use std::time::Instant;

use futures::future::{self, Either};
use serde_json::json;

use fen_domain::ports::{
    model_lock_key, DistributedLock, LockError, LockGuard, LockOptions, ModelName,
};

use crate::models::Interrupt;
use crate::stats::Stats;

/// Budget and ttl of the datastore locks.
#[derive(Clone, Copy, Debug)]
pub struct LockBudget {
    /// `FEN_DATASTORE_LOCK_TIMEOUT_MS`.
    pub wait_ms: u64,
    /// `FEN_DATASTORE_LOCK_TTL_MS`.
    pub ttl_ms: u64,
}

/// The locks are held, or a signal ended the wait (nothing is held then).
pub enum Acquired {
    /// One guard per model, in sorted order.
    Held(Vec<LockGuard>),
    /// A signal arrived first.
    Interrupted,
}

/// Takes `model/<m>` for every model of `names` (sorted, deduplicated here) after
/// draining `global` (§7.8 steps 1-3). A signal while waiting drops the wait: an
/// `acquire` creates its lock file and guard within one poll, and dropped guards
/// release, so no lock is left behind.
pub async fn acquire_models(
    locks: &dyn DistributedLock,
    names: &[ModelName],
    budget: LockBudget,
    stats: &Stats,
    interrupt: Option<Interrupt>,
) -> Result<Acquired, LockError> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    let acquired = async {
        'restart: loop {
            // Bounded by twice the ttl of the `global` lock it observes (the adapter
            // clamps this budget to it).
            locks.drain("global", budget.wait_ms).await?;
            let mut guards = Vec::with_capacity(names.len());
            for name in &names {
                let key = model_lock_key(name);
                if let Some(holder) = locks.inspect(&key).await? {
                    stats.event(
                        "lock_wait",
                        json!({ "lock": key, "model": name.as_str(), "holderPid": holder.info.pid }),
                    );
                }
                guards.push(
                    locks
                        .acquire(&LockOptions {
                            key,
                            max_wait_ms: budget.wait_ms,
                            ttl_ms: budget.ttl_ms,
                        })
                        .await?,
                );
            }
            if let Some(global) = locks.inspect("global").await? {
                if !global.stale {
                    for guard in guards.into_iter().rev() {
                        guard.release()?;
                    }
                    continue 'restart;
                }
            }
            break Ok::<_, LockError>(guards);
        }
    };
    let interrupt = crate::models::interrupted(interrupt);
    futures::pin_mut!(acquired, interrupt);
    match future::select(acquired, interrupt).await {
        Either::Left((guards, _)) => Ok(Acquired::Held(guards?)),
        Either::Right(((), _)) => Ok(Acquired::Interrupted),
    }
}

/// Takes `global` with the symmetric drain of §7.9: waits until no live per-model
/// lock exists (stale ones are taken over by their observed nonce), acquires
/// `global`, then waits again for per-model holders that slipped in before it.
pub async fn acquire_global(
    locks: &dyn DistributedLock,
    budget: LockBudget,
    stats: &Stats,
) -> Result<LockGuard, LockError> {
    let started = Instant::now();
    if let Some(holder) = locks
        .list()
        .await?
        .into_iter()
        .find(|s| s.key.starts_with("model/") && !s.stale)
    {
        stats.event(
            "lock_wait",
            json!({ "lock": "global", "waitingFor": holder.key, "holderPid": holder.info.pid }),
        );
    }
    drain_models(locks, budget, started).await?;
    let guard = locks
        .acquire(&LockOptions {
            key: "global".to_owned(),
            max_wait_ms: budget.wait_ms.saturating_sub(elapsed_ms(started)),
            ttl_ms: budget.ttl_ms,
        })
        .await?;
    // On an error the guard drops and releases.
    drain_models(locks, budget, started).await?;
    Ok(guard)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Waits until no non-stale `model/...` lock is held, within what is left of the
/// budget.
async fn drain_models(
    locks: &dyn DistributedLock,
    budget: LockBudget,
    started: Instant,
) -> Result<(), LockError> {
    locks
        .drain_models(budget.wait_ms.saturating_sub(elapsed_ms(started)))
        .await
}

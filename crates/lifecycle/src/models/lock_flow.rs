//! The per-model lock flow around a method run (spec 30 §7.8 steps 1-3): drain
//! structural work holding `global`, take the model's lock, re-check `global`.

use futures::future::{self, Either};
use serde_json::json;

use fen_domain::ports::{model_lock_key, LockGuard, LockOptions, ModelName};

use super::{interrupted, Interrupt, ModelError, Models};

/// The lock is held, or a signal ended the wait.
pub(super) enum Acquired {
    /// The model's lock.
    Held(LockGuard),
    /// A signal arrived first; nothing is held.
    Interrupted,
}

impl Models {
    /// Takes `model/<name>` after draining `global`. A signal while waiting drops the
    /// wait: `acquire` creates the lock file and its guard within one poll, so no lock
    /// can be left behind.
    pub(super) async fn acquire_model_lock(
        &self,
        name: &ModelName,
        interrupt: Option<Interrupt>,
    ) -> Result<Acquired, ModelError> {
        let key = model_lock_key(name);
        let locks = &self.ports.locks;
        let acquired = async {
            loop {
                // Bounded by twice the ttl of the `global` lock it observes (the
                // adapter clamps this budget to it).
                locks.drain("global", self.ports.lock_wait_ms).await?;
                if let Some(holder) = locks.inspect(&key).await? {
                    self.ports.stats.event(
                        "lock_wait",
                        json!({ "lock": key, "model": name.as_str(), "holderPid": holder.info.pid }),
                    );
                }
                let guard = locks
                    .acquire(&LockOptions {
                        key: key.clone(),
                        max_wait_ms: self.ports.lock_wait_ms,
                        ttl_ms: self.ports.lock_ttl_ms,
                    })
                    .await?;
                match locks.inspect("global").await? {
                    Some(global) if !global.stale => guard.release()?,
                    _ => break Ok::<_, ModelError>(guard),
                }
            }
        };
        let interrupt = interrupted(interrupt);
        futures::pin_mut!(acquired, interrupt);
        match future::select(acquired, interrupt).await {
            Either::Left((guard, _)) => Ok(Acquired::Held(guard?)),
            Either::Right(((), _)) => Ok(Acquired::Interrupted),
        }
    }
}

//! Datastore sync orchestration (spec 30 §7.4, §7.8–§7.10): capability negotiation,
//! `fen datastore sync` (structural without `--model`, per-model with it) and the
//! push/pull steps of `fen datastore setup`. The lock protocols live in `locking`.
//!
//! Crash safety is the adapters': each sync service copies with temp + rename (or
//! `hard_link`) and never overwrites an immutable file; the locks are lock files
//! created by `hard_link`. This module decides which lock is held around which call.

pub mod locking;

use std::sync::Arc;

use serde_json::json;

use fen_domain::ports::{
    DatastoreSyncService, DistributedLock, LockError, ModelRef, SyncCapabilities, SyncContext,
    SyncError, SyncOptions, SyncOutcome,
};

use crate::models::{Interrupt, Notices};
use crate::stats::Stats;
use locking::{acquire_global, acquire_models, Acquired, LockBudget};

/// What a datastore command needs.
#[derive(Clone)]
pub struct DatastorePorts {
    /// The datastore's locks.
    pub locks: Arc<dyn DistributedLock>,
    /// Its sync service (`None` for `local`).
    pub sync: Option<Arc<dyn DatastoreSyncService>>,
    /// How it is named in messages, e.g. `filesystem datastore at /mnt/shared/fen`.
    pub label: String,
    /// Lock wait budget and ttl.
    pub budget: LockBudget,
    /// Counters and events.
    pub stats: Arc<Stats>,
    /// Warnings.
    pub notices: Notices,
}

/// Which way `fen datastore sync` moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Pull, then push (the default).
    Both,
    /// `--pull`.
    Pull,
    /// `--push`.
    Push,
}

/// Which sync call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Remote → local.
    Pull,
    /// Local → remote.
    Push,
}

impl Stage {
    /// `pull` / `push`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Pull => "pull",
            Stage::Push => "push",
        }
    }
}

/// What a sync command did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Files the pull copied (`None`: not run or not reported).
    pub pulled: Option<u64>,
    /// Files the push copied.
    pub pushed: Option<u64>,
    /// The capabilities used.
    pub capabilities: SyncCapabilities,
}

/// A datastore command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// A lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A pull or push failed.
    #[error("{stage} with the {label} failed: {cause}", stage = .stage.as_str())]
    Sync {
        /// Which call.
        stage: Stage,
        /// The datastore.
        label: String,
        /// Why.
        cause: SyncError,
    },
    /// A signal ended a lock wait; nothing ran.
    #[error("interrupted while waiting for the datastore locks; nothing was synced")]
    Interrupted,
}

/// The datastore services.
pub struct Datastores {
    ports: DatastorePorts,
}

impl Datastores {
    /// The services over `ports`.
    pub fn new(ports: DatastorePorts) -> Datastores {
        Datastores { ports }
    }

    /// Asks the service once for its capabilities (§7.4); a failed probe is the
    /// default with one warning.
    pub async fn negotiate(&self) -> SyncCapabilities {
        let Some(sync) = &self.ports.sync else {
            return SyncCapabilities::default();
        };
        negotiate(sync.as_ref(), &self.ports.label, &self.ports.notices).await
    }

    /// `fen datastore sync` without `--model`: structural, under `global` (symmetric
    /// drain), options `None`.
    pub async fn sync_all(&self, direction: Direction) -> Result<SyncReport, DatastoreError> {
        let Some(sync) = self.ports.sync.clone() else {
            return Ok(SyncReport::default());
        };
        let guard = acquire_global(
            self.ports.locks.as_ref(),
            self.ports.budget,
            &self.ports.stats,
        )
        .await?;
        let capabilities = self.negotiate().await;
        let result = self.transfer(sync.as_ref(), direction, None).await;
        guard.release()?;
        let (pulled, pushed) = result?;
        Ok(SyncReport {
            pulled,
            pushed,
            capabilities,
        })
    }

    /// `fen datastore sync --model NAME...`: per-model locks (§7.8 steps 1-3), options
    /// by §7.4.
    pub async fn sync_models(
        &self,
        models: Vec<ModelRef>,
        direction: Direction,
        interrupt: Option<Interrupt>,
    ) -> Result<SyncReport, DatastoreError> {
        let Some(sync) = self.ports.sync.clone() else {
            return Ok(SyncReport::default());
        };
        let names: Vec<_> = models.iter().map(|m| m.name.clone()).collect();
        let guards = match acquire_models(
            self.ports.locks.as_ref(),
            &names,
            self.ports.budget,
            &self.ports.stats,
            interrupt,
        )
        .await?
        {
            Acquired::Held(guards) => guards,
            Acquired::Interrupted => return Err(DatastoreError::Interrupted),
        };
        let capabilities = self.negotiate().await;
        let options = options_for(&capabilities, models);
        let result = self.transfer(sync.as_ref(), direction, options).await;
        for guard in guards.into_iter().rev() {
            guard.release()?;
        }
        let (pulled, pushed) = result?;
        Ok(SyncReport {
            pulled,
            pushed,
            capabilities,
        })
    }

    /// The push then pull of `fen datastore setup` (§7.10 steps 2-5): under the new
    /// backend's `global` lock, options `None`.
    pub async fn setup_transfer(&self, skip_push: bool) -> Result<SyncReport, DatastoreError> {
        let Some(sync) = self.ports.sync.clone() else {
            return Ok(SyncReport::default());
        };
        let guard = acquire_global(
            self.ports.locks.as_ref(),
            self.ports.budget,
            &self.ports.stats,
        )
        .await?;
        let capabilities = self.negotiate().await;
        let result = async {
            let pushed = if skip_push {
                None
            } else {
                self.call(sync.as_ref(), Stage::Push, None)
                    .await?
                    .files_transferred
            };
            let pulled = self
                .call(sync.as_ref(), Stage::Pull, None)
                .await?
                .files_transferred;
            Ok::<_, DatastoreError>((pulled, pushed))
        }
        .await;
        guard.release()?;
        let (pulled, pushed) = result?;
        Ok(SyncReport {
            pulled,
            pushed,
            capabilities,
        })
    }

    async fn transfer(
        &self,
        sync: &dyn DatastoreSyncService,
        direction: Direction,
        options: Option<SyncOptions>,
    ) -> Result<(Option<u64>, Option<u64>), DatastoreError> {
        let pulled = if direction == Direction::Push {
            None
        } else {
            self.call(sync, Stage::Pull, options.clone())
                .await?
                .files_transferred
        };
        let pushed = if direction == Direction::Pull {
            None
        } else {
            self.call(sync, Stage::Push, options)
                .await?
                .files_transferred
        };
        Ok((pulled, pushed))
    }

    async fn call(
        &self,
        sync: &dyn DatastoreSyncService,
        stage: Stage,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, DatastoreError> {
        let result = call_with_events(sync, stage, options, &self.ports.stats, None).await;
        result.map_err(|cause| DatastoreError::Sync {
            stage,
            label: self.ports.label.clone(),
            cause,
        })
    }
}

/// The capability probe of §7.4: asked once; a failure is the default plus one
/// warning.
pub async fn negotiate(
    sync: &dyn DatastoreSyncService,
    label: &str,
    notices: &Notices,
) -> SyncCapabilities {
    match sync.capabilities().await {
        Ok(capabilities) => capabilities,
        Err(error) => {
            notices(
                "warning",
                &format!(
                    "the capabilities probe of the {label} failed ({error}); syncing without scoped sync"
                ),
            );
            SyncCapabilities::default()
        }
    }
}

/// `Some(context)` when the service does scoped sync, else `None` (§7.4 step 4).
pub fn options_for(capabilities: &SyncCapabilities, models: Vec<ModelRef>) -> Option<SyncOptions> {
    if !capabilities.scoped_sync {
        return None;
    }
    SyncContext::new(models).map(|context| SyncOptions { context })
}

/// One pull or push with its `sync_<stage>_start` / `_end` events (`model` names the
/// model of a method run).
pub async fn call_with_events(
    sync: &dyn DatastoreSyncService,
    stage: Stage,
    options: Option<SyncOptions>,
    stats: &Stats,
    model: Option<&str>,
) -> Result<SyncOutcome, SyncError> {
    let name = stage.as_str();
    stats.event(
        &format!("sync_{name}_start"),
        json!({ "model": model, "scoped": options.is_some() }),
    );
    let result = match stage {
        Stage::Pull => sync.pull_changed(options).await,
        Stage::Push => sync.push_changed(options).await,
    };
    stats.event(
        &format!("sync_{name}_end"),
        json!({
            "model": model,
            "ok": result.is_ok(),
            "filesTransferred": result.as_ref().ok().and_then(|o| o.files_transferred),
        }),
    );
    result
}

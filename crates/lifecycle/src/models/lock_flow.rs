//! The lock-and-sync flow around a method run (spec 30 §7.8): take the model's lock
//! (steps 1-3, `datastore::locking`), probe the capabilities once and pull once
//! (steps 4-5), and, after the run, push once (step 7) with the same options. For the
//! `local` datastore (no sync service) only the lock steps run.

use std::sync::Arc;

use fen_domain::model::RunRecord;
use fen_domain::ports::{
    DatastoreSyncService, LockError, ModelName, ModelRef, SyncError, SyncOptions,
};
use fen_domain::TypeName;

use super::{Interrupt, ModelError, Models};
use crate::datastore::locking::{acquire_models, Acquired, LockBudget};
use crate::datastore::{call_with_events, negotiate, options_for, Stage};

/// The sync service of a run with the options every call of the run gets.
pub(super) struct RunSync {
    service: Arc<dyn DatastoreSyncService>,
    options: Option<SyncOptions>,
}

impl Models {
    /// Takes `model/<name>` after draining `global`; `Interrupted` when a signal
    /// ended the wait (nothing held).
    pub(super) async fn acquire_model_lock(
        &self,
        name: &ModelName,
        interrupt: Option<Interrupt>,
    ) -> Result<Acquired, ModelError> {
        let budget = LockBudget {
            wait_ms: self.ports.lock_wait_ms,
            ttl_ms: self.ports.lock_ttl_ms,
        };
        match acquire_models(
            self.ports.locks.as_ref(),
            std::slice::from_ref(name),
            budget,
            &self.ports.stats,
            interrupt,
        )
        .await
        {
            Ok(acquired) => Ok(acquired),
            // The shared directory holding the locks is gone: report it like a pull
            // that could not reach the datastore, naming the model.
            Err(LockError::Unavailable(message)) => {
                Err(self.sync_failed(Stage::Pull, name, SyncError::Unavailable(message), None))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Step 4: the capabilities, asked once per command; `None` for `local`.
    pub(super) async fn run_sync(&self, name: &ModelName, declared: &str) -> Option<RunSync> {
        let service = self.ports.sync.clone()?;
        let capabilities =
            negotiate(service.as_ref(), &self.ports.datastore, &self.ports.notices).await;
        let models = TypeName::parse(declared)
            .map(|model_type| {
                vec![ModelRef {
                    name: name.clone(),
                    model_type,
                }]
            })
            .unwrap_or_default();
        Some(RunSync {
            service,
            options: options_for(&capabilities, models),
        })
    }

    /// Step 5 or 7: one pull or push of the run's model.
    pub(super) async fn sync_step(
        &self,
        sync: &RunSync,
        stage: Stage,
        name: &ModelName,
    ) -> Result<(), SyncError> {
        call_with_events(
            sync.service.as_ref(),
            stage,
            sync.options.clone(),
            &self.ports.stats,
            Some(name.as_str()),
        )
        .await
        .map(|_| ())
    }

    /// The error of a failed pull (nothing ran) or push (the run is recorded and its
    /// data kept locally).
    pub(super) fn sync_failed(
        &self,
        stage: Stage,
        name: &ModelName,
        cause: SyncError,
        record: Option<RunRecord>,
    ) -> ModelError {
        let datastore = &self.ports.datastore;
        let message = match stage {
            Stage::Pull => format!(
                "could not pull data for model \"{name}\" from the {datastore}: {cause}; the method did not run"
            ),
            Stage::Push => format!(
                "could not push data of model \"{name}\" to the {datastore}: {cause}; the run's data is kept locally"
            ),
        };
        ModelError::Sync {
            stage,
            model: name.to_string(),
            cause,
            message,
            record: record.map(Box::new),
        }
    }
}

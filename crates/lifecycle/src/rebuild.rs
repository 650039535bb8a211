//! Rebuilding one missing or unusable bundle for the loader (spec 30 §5.3 step 4a),
//! with the warm pass's own prepare/commit engine rather than a second commit path.
//!
//! Crash safety: an unusable file that still exists is evicted under the lifecycle lock
//! (after re-checking it is still unusable, so a bundle another process just
//! published is never deleted); the warm pass then sees an `Indexed` row without its
//! bundle, rebuilds it into scratch without the lock, and commits under the lock:
//! re-load, re-check the fingerprint, publish by atomic rename, save. A crash at any
//! point leaves a row whose bundle is missing, which the next pass rebuilds.

use async_trait::async_trait;

use fen_domain::ports::TypeEntry;
use fen_domain::RowState;

use crate::adapters::Adapters;
use crate::engine::{self, RunOptions, Scope};
use crate::loader::{BundleRebuilder, LoadError, Rebuilt};
use crate::reconcile::{Guardrail, Rebuild, ReconcileMode};

/// The loader's rebuilder over the service adapters.
pub struct WarmRebuilder {
    adapters: Adapters,
}

impl WarmRebuilder {
    /// A rebuilder committing through `adapters`.
    pub fn new(adapters: Adapters) -> WarmRebuilder {
        WarmRebuilder { adapters }
    }
}

#[async_trait]
impl BundleRebuilder for WarmRebuilder {
    async fn rebuild(&self, entry: &TypeEntry) -> Result<Rebuilt, LoadError> {
        let ad = &self.adapters;
        let fail = |e: &dyn std::fmt::Display| LoadError::Catalog(e.to_string());
        if ad.scanners.new_pass().exists(&entry.bundle.path).await {
            let _guard = ad.lock.acquire(&ad.command).await.map_err(|e| fail(&e))?;
            ad.stats.lock_acquired();
            if ad.store.open(&entry.bundle).await.is_none() {
                ad.store
                    .evict(&entry.bundle.path)
                    .await
                    .map_err(|e| fail(&e))?;
            }
        }
        engine::run(
            ad,
            RunOptions {
                scope: Scope::Warm,
                mode: ReconcileMode::Apply,
                guardrail: Guardrail::Override,
                rebuild: Rebuild::Stale,
                mark_populated: false,
            },
        )
        .await
        .map_err(|e| fail(&e))?;
        let loaded = ad.repo.load_all().await.map_err(|e| fail(&e))?;
        let row = loaded
            .extensions
            .iter()
            .find_map(|ext| ext.source(&entry.source_path));
        Ok(match row.map(|source| (source, source.state())) {
            Some((
                source,
                RowState::Indexed {
                    type_name,
                    bundle,
                    meta,
                },
            )) => Rebuilt::Indexed(TypeEntry {
                source_path: source.path().clone(),
                kind: source.kind(),
                type_name: type_name.clone(),
                bundle: bundle.clone(),
                meta: meta.clone(),
            }),
            Some((_, state)) => Rebuilt::Failed {
                state: state.tag().as_str().to_owned(),
                last_error: state.last_error().unwrap_or("").to_owned(),
            },
            None => Rebuilt::Failed {
                state: "deleted".to_owned(),
                last_error: "the source is gone".to_owned(),
            },
        })
    }
}

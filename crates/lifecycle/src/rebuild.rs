//! Rebuilding one missing or unusable bundle for the loader (spec 30 §5.3 step 4a),
//! with the warm pass's own prepare/commit engine rather than a second commit path.
//!
//! Crash safety: an unusable file that still exists is evicted under the lifecycle lock
//! (after re-checking it is still unusable, so a bundle another process just
//! published is never deleted); the warm pass then sees an `Indexed` row without its
//! bundle, rebuilds it into scratch without the lock, and commits under the lock:
//! re-load, re-check the fingerprint, publish by atomic rename, save. A crash at any
//! point leaves a row whose bundle is missing, which the next pass rebuilds.
//!
//! A bundle whose evaluated export declares another type than its row (step 4c) is
//! recorded under the lifecycle lock, after re-checking that the row is still the one
//! that was loaded: first its bundle file is evicted, then the row is saved as
//! `BundleBuildFailed` in one catalog transaction. A crash between the two leaves an
//! `Indexed` row without its bundle, which the next pass rebuilds as well; evicting
//! first keeps the next pass from reusing the contradicting file (a pass reuses a
//! bundle whose fingerprint still matches).

use async_trait::async_trait;

use fen_domain::ports::TypeEntry;
use fen_domain::{Observation, RowState};

use crate::adapters::Adapters;
use crate::engine::{self, RunOptions};
use crate::loader::{BundleRebuilder, LoadError, Rebuilt};

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
            crate::extensions::recovery::recover(ad)
                .await
                .map_err(|e| fail(&e))?;
            if ad.store.open(&entry.bundle).await.is_none() {
                ad.store
                    .evict(&entry.bundle.path)
                    .await
                    .map_err(|e| fail(&e))?;
            }
        }
        engine::run(ad, RunOptions::WARM)
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

    async fn record_mismatch(&self, entry: &TypeEntry, last_error: &str) -> Result<(), LoadError> {
        let ad = &self.adapters;
        let fail = |e: &dyn std::fmt::Display| LoadError::Catalog(e.to_string());
        let _guard = ad.lock.acquire(&ad.command).await.map_err(|e| fail(&e))?;
        ad.stats.lock_acquired();
        crate::extensions::recovery::recover(ad)
            .await
            .map_err(|e| fail(&e))?;
        // Re-load and re-check under the lock: only the row that was evaluated.
        let loaded = ad.repo.load_all().await.map_err(|e| fail(&e))?;
        let Some((ext, source)) = loaded
            .extensions
            .iter()
            .find_map(|ext| ext.source(&entry.source_path).map(|s| (ext, s)))
        else {
            return Ok(());
        };
        let unchanged = matches!(
            source.state(),
            RowState::Indexed { type_name, bundle, .. }
                if *type_name == entry.type_name && *bundle == entry.bundle
        );
        if !unchanged {
            return Ok(());
        }
        ad.store
            .evict(&entry.bundle.path)
            .await
            .map_err(|e| fail(&e))?;
        let observation = Observation {
            location: source.location().clone(),
            kind: source.kind(),
            origin: source.origin(),
            fingerprint: source
                .fingerprint()
                .copied()
                .unwrap_or(entry.bundle.fingerprint),
            mtime: source.mtime().map(str::to_owned),
        };
        let next = ext
            .record_bundle_build_failed(&observation, last_error)
            .map_err(|e| fail(&e))?;
        ad.repo.save(&next).await.map_err(|e| fail(&e))?;
        Ok(())
    }
}

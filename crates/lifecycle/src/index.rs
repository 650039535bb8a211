//! `build_index` (spec 30 §5.1): brings the catalog up to date before a command reads
//! types. Guards fresh → the warm pass over local and mounted sources; a guard failed
//! → the cold start (reconcile over everything, then `mark_populated`).

use fen_domain::ports::{GuardReason, GuardVerdict, Loaded};

use crate::adapters::Adapters;
use crate::engine::{self, guard_inputs, LifecycleError, RunOptions, Scope};
use crate::reconcile::{Guardrail, Rebuild, ReconcileMode, ReconcileReport};

/// Which path `build_index` took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexPath {
    /// Incremental pass.
    Warm,
    /// Full reconcile because a guard failed.
    Cold(GuardReason),
}

/// What `build_index` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSummary {
    /// Warm or cold.
    pub path: IndexPath,
    /// The pass's report.
    pub report: ReconcileReport,
    /// An outline of the catalog after the pass (no descriptors, see
    /// `ExtensionRepository::load_outline`): the rows the pass read when it wrote
    /// nothing (an unchanged tree costs one catalog read: guards and rows), else a
    /// fresh read.
    pub loaded: Loaded,
}

/// Runs the warm pass or the cold start.
pub async fn build_index(ad: &Adapters) -> Result<IndexSummary, LifecycleError> {
    let lockfile = ad.lockfile.snapshot().await?;
    let scanner = ad.scanners.new_pass();
    let inputs = guard_inputs(ad, &lockfile, scanner.as_ref());
    let (verdict, outline) = ad.repo.guards_and_outline(&inputs).await?;
    match verdict {
        GuardVerdict::Fresh => {
            let mut report = engine::run_from(ad, RunOptions::WARM, outline).await?;
            let loaded = catalog_after(ad, &mut report).await?;
            Ok(IndexSummary {
                path: IndexPath::Warm,
                report,
                loaded,
            })
        }
        GuardVerdict::Invalidate(reason) => {
            let rebuild = match reason {
                GuardReason::LayoutVersionChanged { .. } => Rebuild::All,
                GuardReason::NotPopulated
                | GuardReason::BundlesBasePathChanged { .. }
                | GuardReason::SourceDirsChanged { .. } => Rebuild::Stale,
            };
            let mut report = engine::run(
                ad,
                RunOptions {
                    scope: Scope::Reconcile,
                    mode: ReconcileMode::Apply,
                    guardrail: Guardrail::Enforce,
                    rebuild,
                    mark_populated: true,
                },
            )
            .await?;
            let loaded = catalog_after(ad, &mut report).await?;
            Ok(IndexSummary {
                path: IndexPath::Cold(reason),
                report,
                loaded,
            })
        }
    }
}

async fn catalog_after(
    ad: &Adapters,
    report: &mut ReconcileReport,
) -> Result<Loaded, LifecycleError> {
    match report.catalog.take() {
        Some(loaded) => Ok(loaded),
        None => Ok(ad.repo.load_outline().await?),
    }
}

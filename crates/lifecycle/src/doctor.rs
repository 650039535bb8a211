//! Doctor (spec 10 §7): reconcile, then a report of every aggregate, orphans and
//! skipped rows, and an optional repair plan.
//!
//! Doctor writes only in its reconcile step and with `--repair --apply`, each under the
//! lifecycle lock. The apply step deletes rows before files
//! (`prune_retired_rows` in one transaction, then bundle evictions), so a crash in
//! between leaves only unreferenced files, which the next doctor removes.

use std::collections::{BTreeMap, BTreeSet};

use fen_domain::ports::{DuplicateType, Loaded, RepoError, SkippedRow};
use fen_domain::{
    CanonicalPath, Extension, ExtensionId, ExtensionOrigin, RowState, RowStateTag, Source,
    TombstoneReason,
};

use crate::adapters::Adapters;
use crate::engine::LifecycleError;
use crate::reconcile::{
    self, Guardrail, GuardrailTrip, Rebuild, ReconcileMode, ReconcileOptions, Transition,
};

/// Doctor's flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoctorOptions {
    /// `--rescan`: rebuild every bundle and re-validate every export.
    pub rebuild: Rebuild,
    /// `--force-reconcile`.
    pub guardrail: Guardrail,
    /// `--repair` (dry run) or `--repair --apply`.
    pub repair: Option<ReconcileMode>,
}

/// Overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverallStatus {
    /// Nothing to report.
    Pass,
    /// Orphans, skipped rows, supersessions or a guardrail abort.
    Warn,
    /// Failed sources or a duplicate type.
    Fail,
}

impl OverallStatus {
    /// snake_case text.
    pub fn as_str(self) -> &'static str {
        match self {
            OverallStatus::Pass => "pass",
            OverallStatus::Warn => "warn",
            OverallStatus::Fail => "fail",
        }
    }
}

/// One operation of the repair plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairOperation {
    /// `prune_row`, `evict_bundle` or `suggest_repull`.
    pub kind: &'static str,
    /// The row, bundle or extension.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The repair plan and what applying it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// Dry run or applied.
    pub mode: ReconcileMode,
    /// The operations.
    pub operations: Vec<RepairOperation>,
    /// Rows actually deleted.
    pub pruned_row_count: usize,
    /// Files actually deleted.
    pub evicted_file_count: usize,
}

/// What doctor found.
#[derive(Clone, Debug)]
pub struct DoctorReport {
    /// Pass, warn or fail.
    pub overall_status: OverallStatus,
    /// Every aggregate, by id.
    pub extensions: Vec<Extension>,
    /// Rows not tombstoned or orphaned whose source file is gone.
    pub catalog_orphans: Vec<CanonicalPath>,
    /// Rows `load_all` skipped.
    pub skipped_rows: Vec<SkippedRow>,
    /// Bundle files no row references.
    pub bundle_orphans: Vec<CanonicalPath>,
    /// Transitions of this run's reconcile.
    pub recent_transitions: Vec<Transition>,
    /// Set when the guardrail aborted reconcile.
    pub guardrail: Option<GuardrailTrip>,
    /// Set when reconcile's save hit a duplicate type.
    pub reconcile_error: Option<Box<DuplicateType>>,
    /// The repair plan, when asked for.
    pub repair: Option<RepairReport>,
    /// Reconcile warnings.
    pub warnings: Vec<String>,
}

/// Runs doctor.
pub async fn doctor(ad: &Adapters, opts: DoctorOptions) -> Result<DoctorReport, LifecycleError> {
    let mut reconcile_error = None;
    let mut recent_transitions = Vec::new();
    let mut guardrail = None;
    let mut warnings = Vec::new();
    let reconciled = reconcile::reconcile(
        ad,
        ReconcileOptions {
            mode: ReconcileMode::Apply,
            guardrail: opts.guardrail,
            rebuild: opts.rebuild,
        },
    )
    .await;
    match reconciled {
        Ok(report) => {
            recent_transitions = report.transitions;
            guardrail = report.aborted;
            warnings = report.warnings;
        }
        Err(LifecycleError::Repo(RepoError::DuplicateType(dup))) => reconcile_error = Some(dup),
        Err(other) => return Err(other),
    }

    let loaded = ad.repo.load_all().await?;
    let (catalog_orphans, bundle_orphans) = orphans(ad, &loaded).await?;
    let mut repair = None;
    if let Some(mode) = opts.repair {
        let mut report = RepairReport {
            mode,
            operations: plan_repair(ad, &loaded, &bundle_orphans).await,
            pruned_row_count: 0,
            evicted_file_count: 0,
        };
        if mode == ReconcileMode::Apply && !report.operations.is_empty() {
            let _guard = ad.lock.acquire(&ad.command).await?;
            ad.stats.lock_acquired();
            crate::extensions::recovery::recover(ad).await?;
            // Re-load and re-plan under the lock: only what is still true is applied.
            let loaded = ad.repo.load_all().await?;
            let (_, bundle_orphans) = orphans(ad, &loaded).await?;
            report.operations = plan_repair(ad, &loaded, &bundle_orphans).await;
            let prune: Vec<CanonicalPath> = report
                .operations
                .iter()
                .filter(|op| op.kind == "prune_row")
                .filter_map(|op| CanonicalPath::try_from(op.path.clone()).ok())
                .collect();
            report.pruned_row_count = ad.repo.prune_retired_rows(&prune).await?;
            let still_referenced = referenced_bundles(&ad.repo.load_all().await?);
            for op in report
                .operations
                .iter()
                .filter(|op| op.kind == "evict_bundle")
            {
                let Ok(path) = CanonicalPath::try_from(op.path.clone()) else {
                    continue;
                };
                if still_referenced.contains(&path) {
                    continue;
                }
                match ad.store.evict(&path).await {
                    Ok(()) => report.evicted_file_count += 1,
                    Err(error) => warnings.push(format!("could not evict {path}: {error}")),
                }
            }
        }
        repair = Some(report);
    }
    let loaded = ad.repo.load_all().await?;
    let failing = loaded
        .extensions
        .iter()
        .flat_map(|e| e.sources())
        .any(|s| s.state().tag().is_failure());
    let superseded = loaded
        .extensions
        .iter()
        .flat_map(|e| e.sources())
        .any(|s| s.superseded_by().is_some());
    let overall_status = if failing || reconcile_error.is_some() {
        OverallStatus::Fail
    } else if !catalog_orphans.is_empty()
        || !bundle_orphans.is_empty()
        || !loaded.skipped.is_empty()
        || guardrail.is_some()
        || superseded
    {
        OverallStatus::Warn
    } else {
        OverallStatus::Pass
    };
    let (catalog_orphans, bundle_orphans) = orphans(ad, &loaded).await?;
    Ok(DoctorReport {
        overall_status,
        extensions: loaded.extensions,
        catalog_orphans,
        skipped_rows: loaded.skipped,
        bundle_orphans,
        recent_transitions,
        guardrail,
        reconcile_error,
        repair,
        warnings,
    })
}

/// The seven tags of an aggregate, zero-filled.
pub fn state_distribution(ext: &Extension) -> BTreeMap<RowStateTag, usize> {
    let mut out: BTreeMap<RowStateTag, usize> =
        RowStateTag::ALL.into_iter().map(|t| (t, 0)).collect();
    for source in ext.sources() {
        *out.entry(source.state().tag()).or_default() += 1;
    }
    out
}

async fn orphans(
    ad: &Adapters,
    loaded: &Loaded,
) -> Result<(Vec<CanonicalPath>, Vec<CanonicalPath>), LifecycleError> {
    let scanner = ad.scanners.new_pass();
    let mut catalog_orphans = Vec::new();
    for source in loaded.extensions.iter().flat_map(|e| e.sources()) {
        let retired = matches!(
            source.state(),
            RowState::Tombstoned { .. } | RowState::OrphanedBundleOnly { .. }
        );
        if !retired && !scanner.exists(source.path()).await {
            catalog_orphans.push(source.path().clone());
        }
    }
    let referenced = referenced_bundles(loaded);
    let bundle_orphans = ad
        .store
        .list()
        .await?
        .into_iter()
        .filter(|p| !referenced.contains(p))
        .collect();
    Ok((catalog_orphans, bundle_orphans))
}

fn referenced_bundles(loaded: &Loaded) -> BTreeSet<CanonicalPath> {
    loaded
        .extensions
        .iter()
        .flat_map(|e| e.sources())
        .filter_map(|s| s.state().bundle().map(|b| b.path.clone()))
        .collect()
}

async fn plan_repair(
    ad: &Adapters,
    loaded: &Loaded,
    bundle_orphans: &[CanonicalPath],
) -> Vec<RepairOperation> {
    let scanner = ad.scanners.new_pass();
    let mut ops = Vec::new();
    let mut repull: BTreeSet<ExtensionId> = BTreeSet::new();
    for ext in &loaded.extensions {
        for source in ext.sources() {
            match source.state() {
                RowState::Tombstoned { reason } => {
                    let live_rename = matches!(reason, TombstoneReason::Renamed { .. })
                        && scanner.exists(source.path()).await;
                    if !live_rename {
                        ops.push(prune(source, "retired row"));
                    }
                }
                RowState::OrphanedBundleOnly { bundle } => {
                    ops.push(prune(source, "source file is gone"));
                    ops.push(RepairOperation {
                        kind: "evict_bundle",
                        path: bundle.path.to_string(),
                        reason: format!("bundle of pruned row {}", source.path()),
                    });
                }
                RowState::BundleBuildFailed { .. } | RowState::ValidationFailed { .. }
                    if ext.origin() == ExtensionOrigin::Pulled =>
                {
                    repull.insert(ext.id().clone());
                }
                _ => {}
            }
        }
    }
    for path in bundle_orphans {
        if !ops
            .iter()
            .any(|op| op.kind == "evict_bundle" && op.path == path.as_str())
        {
            ops.push(RepairOperation {
                kind: "evict_bundle",
                path: path.to_string(),
                reason: "no catalog row references this bundle".to_owned(),
            });
        }
    }
    for id in repull {
        ops.push(RepairOperation {
            kind: "suggest_repull",
            path: id.to_string(),
            reason: format!("fen extension pull {id} --force"),
        });
    }
    ops
}

fn prune(source: &Source, reason: &str) -> RepairOperation {
    RepairOperation {
        kind: "prune_row",
        path: source.path().to_string(),
        reason: format!("{reason} ({})", source.state().tag()),
    }
}

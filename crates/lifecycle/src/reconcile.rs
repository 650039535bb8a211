//! ReconcileFromDisk (spec 10 §6.5): repairs catalog state from what is on disk, for
//! every origin and kind, with a guardrail against mass retirement.

use fen_domain::ports::{Loaded, SaveReport};
use fen_domain::{CanonicalPath, ExtensionId, RowStateTag};

use crate::adapters::Adapters;
use crate::engine::{self, LifecycleError, RunOptions, Scope};

/// How reconcile runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconcileOptions {
    /// Dry run or apply.
    pub mode: ReconcileMode,
    /// Whether the guardrail may abort.
    pub guardrail: Guardrail,
    /// Which entries are rebuilt.
    pub rebuild: Rebuild,
}

/// Dry run or apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileMode {
    /// Report what would change; take no lock, write nothing.
    DryRun,
    /// Apply under the lifecycle lock.
    Apply,
}

/// The guardrail against mass retirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guardrail {
    /// Abort when more than half of ≥ 10 sources would change.
    Enforce,
    /// `--force-reconcile`.
    Override,
}

/// Which on-disk entries are indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebuild {
    /// Only stale ones.
    Stale,
    /// Every one, without reusing bundles (layout change, `--rescan`).
    All,
}

/// One state change of one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The source.
    pub source: CanonicalPath,
    /// Its aggregate.
    pub extension: ExtensionId,
    /// Its tag before (`None`: new).
    pub from: Option<RowStateTag>,
    /// Its tag after.
    pub to: RowStateTag,
    /// Why, in the fixed texts of spec 10 §6.5.
    pub reason: String,
}

/// The guardrail tripped: `changed` of `total` sources would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardrailTrip {
    /// Transitions of existing sources.
    pub changed: usize,
    /// Non-tombstoned sources.
    pub total: usize,
}

/// What a reconcile (or warm pass) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Every state change.
    pub transitions: Vec<Transition>,
    /// True when a save happened.
    pub applied: bool,
    /// Set when the guardrail aborted the run.
    pub aborted: Option<GuardrailTrip>,
    /// The save's counts.
    pub saved: Option<SaveReport>,
    /// Sources that changed during prepare; the next pass takes them.
    pub deferred: Vec<CanonicalPath>,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
    /// The catalog as this run read it, when the run wrote nothing (so readers can
    /// reuse it instead of querying again); `None` after a commit.
    pub catalog: Option<Loaded>,
}

/// Runs ReconcileFromDisk. An applied run also writes the guard keys, so the next
/// command takes the warm path.
pub async fn reconcile(
    ad: &Adapters,
    opts: ReconcileOptions,
) -> Result<ReconcileReport, LifecycleError> {
    engine::run(
        ad,
        RunOptions {
            scope: Scope::Reconcile,
            mode: opts.mode,
            guardrail: opts.guardrail,
            rebuild: opts.rebuild,
            mark_populated: opts.mode == ReconcileMode::Apply,
        },
    )
    .await
}

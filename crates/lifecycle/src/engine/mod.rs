//! The prepare/commit engine shared by the warm pass (spec 10 §6.2) and
//! ReconcileFromDisk (spec 10 §6.5).
//!
//! Both follow one pattern (spec 10 §5.7). *Prepare*, without the lifecycle lock: load
//! the catalog, walk and fingerprint, decide what is stale, and index the stale entry
//! points into a private scratch directory. *Commit*, under the lock: re-load, walk and
//! fingerprint again with a fresh scanner (a warm commit whose catalog is still the one
//! prepare read fingerprints again only what prepare found stale, checks that what it
//! found missing is still missing, and replays the rest: `Replay`), apply only
//! the prepared results whose
//! fingerprint still matches the disk (the rest are deferred to the next pass), publish
//! their bundles by atomic rename, `save_all` the changed aggregates in one SQLite
//! transaction, evict bundles no row references any more, and store stat records.
//! A pass that finds nothing to do takes no lock and writes nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use fen_domain::fingerprint::FingerprintLine;
use fen_domain::ports::{
    EntryPoint, FileStats, FileStatsUpdate, Fingerprinted, GuardInputs, IndexError, IndexOutcome,
    Loaded, LockedExtension, RepoError, Reuse, SaveReport, ScanRoot, ScannedEntry, SourceScanner,
    StagedBundle,
};
use fen_domain::{
    CanonicalPath, Change, DomainError, Extension, ExtensionId, ExtensionName, ExtensionOrigin,
    ExtensionVersion, LoaderKind, Observation, Origin, PathPolicy, RetireReason, RowState,
    RowStateTag, Source, SourceFingerprint, TombstoneReason,
};

use crate::adapters::Adapters;
use crate::reconcile::{
    Guardrail, GuardrailTrip, Rebuild, ReconcileMode, ReconcileReport, Transition,
};

mod apply;
mod error;
mod guardrail;
mod indexing;
mod plan;
mod scanners;
mod scratch;

pub use error::LifecycleError;

use apply::*;
use guardrail::*;
use indexing::*;
use plan::*;
use scanners::*;
use scratch::*;

/// Which rows a pass owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The warm pass: local and mounted sources of the local aggregate only; pulled
    /// trees are neither walked nor changed.
    Warm,
    /// Reconcile: every origin, the lockfile matrix included.
    Reconcile,
}

/// How one run is configured.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunOptions {
    pub scope: Scope,
    pub mode: ReconcileMode,
    pub guardrail: Guardrail,
    pub rebuild: Rebuild,
    /// Write the four guard keys after the commit (cold start, reconcile).
    pub mark_populated: bool,
}

impl RunOptions {
    /// The warm pass of spec 10 §6.2: local and mounted trees, stale sources only,
    /// applied without the guardrail, guard keys untouched.
    pub const WARM: RunOptions = RunOptions {
        scope: Scope::Warm,
        mode: ReconcileMode::Apply,
        guardrail: Guardrail::Override,
        rebuild: Rebuild::Stale,
        mark_populated: false,
    };
}

/// One stale entry point of a plan.
#[derive(Clone, Debug)]
struct StaleItem {
    ext: ExtensionId,
    entry: ScannedEntry,
    fingerprint: SourceFingerprint,
}

/// What a pass decided before any indexing result is applied. `originals` borrow the
/// loaded aggregates; a working aggregate is a copy only once something changed it.
struct Plan<'a> {
    originals: BTreeMap<ExtensionId, &'a Extension>,
    working: BTreeMap<ExtensionId, Cow<'a, Extension>>,
    stale: Vec<StaleItem>,
    stats: Vec<FileStatsUpdate>,
    reasons: BTreeMap<CanonicalPath, String>,
    migrations: BTreeSet<CanonicalPath>,
    skipped_rows: usize,
    /// A stale source whose row is currently `Indexed` (a rebuild of a visible type).
    rebuilt_indexed: bool,
    /// Every entry the walk found, with what fingerprinting it gave: what the commit
    /// replays instead of observing the unchanged part of the tree again.
    observed: BTreeMap<CanonicalPath, (ScannedEntry, Fingerprinted)>,
    /// Rows in scope whose file the walk did not find.
    vanished: Vec<CanonicalPath>,
}

type Prepared = BTreeMap<(CanonicalPath, SourceFingerprint), Result<IndexOutcome, IndexError>>;

/// Runs one pass (warm or reconcile) end to end.
pub(crate) async fn run(
    ad: &Adapters,
    opts: RunOptions,
) -> Result<ReconcileReport, LifecycleError> {
    run_from(ad, opts, None).await
}

/// [`run`], starting from an outline of the catalog already read (`build_index` reads
/// it with the guards); `None` reads one.
///
/// Prepare decides from an outline (no descriptors): its aggregates only tell what is
/// stale and are never saved. The commit re-loads an outline under the lock and saves
/// it (a save keeps the stored descriptor of an outline's `Indexed` source).
pub(crate) async fn run_from(
    ad: &Adapters,
    opts: RunOptions,
    outline: Option<Loaded>,
) -> Result<ReconcileReport, LifecycleError> {
    // ---- prepare, without the lock ----
    let lockfile = match opts.scope {
        Scope::Reconcile => ad.lockfile.snapshot().await?,
        Scope::Warm => Vec::new(),
    };
    let loaded = match outline {
        Some(outline) => outline,
        None => ad.repo.load_outline().await?,
    };
    let scanner = ad.scanners.new_pass();
    let mut plan = make_plan(ad, opts, &loaded, &lockfile, scanner.as_ref()).await?;
    ad.stats.hashed(scanner.files_hashed());

    let guards_fresh = match opts.scope {
        Scope::Warm => true,
        Scope::Reconcile => {
            let inputs = guard_inputs(ad, &lockfile, scanner.as_ref());
            matches!(
                ad.repo.invalidation_guards(&inputs).await?,
                fen_domain::ports::GuardVerdict::Fresh
            )
        }
    };
    let scratch = ScratchDir::new(ad, !plan.stale.is_empty())?;
    let prepared = index_stale(ad, &plan, opts.rebuild, &scratch.path).await;
    let mut deferred = Vec::new();
    apply_results(&mut plan, &prepared, &mut deferred)?;
    let transitions = transitions_of(&plan);
    let nothing_to_do = transitions.is_empty()
        && plan.skipped_rows == 0
        && !plan.rebuilt_indexed
        && plan.stats.is_empty()
        && guards_fresh
        && changed(&plan).is_empty();
    if nothing_to_do || opts.mode == ReconcileMode::DryRun {
        let aborted = guardrail_trip(&plan, &transitions, opts.guardrail);
        drop(plan);
        return Ok(ReconcileReport {
            transitions,
            applied: false,
            aborted,
            saved: None,
            deferred: Vec::new(),
            warnings: Vec::new(),
            catalog: nothing_to_do.then_some(loaded),
        });
    }

    // ---- commit, under the lifecycle lock ----
    let _guard = ad.lock.acquire(&ad.command).await?;
    ad.stats.lock_acquired();
    // Every locked section a service opens starts with recovery (spec 20 §13.3).
    let recovered = crate::extensions::recovery::recover(ad).await?;
    let lockfile = match opts.scope {
        Scope::Reconcile => ad.lockfile.snapshot().await?,
        Scope::Warm => Vec::new(),
    };
    // An outline is enough to save: its `Indexed` rows keep their stored descriptors,
    // and every index result applied below carries its own.
    let full = match opts.scope {
        Scope::Warm => ad.repo.load_warm_outline().await?,
        Scope::Reconcile => ad.repo.load_outline().await?,
    };
    let scanner = ad.scanners.new_pass();
    // The warm commit re-observes only what prepare found stale or missing when the
    // catalog is still the one prepare read (no other writer committed in between):
    // the rest of the tree is replayed from prepare. A change there since prepare is
    // stale for the next pass, exactly like a change after this commit.
    let replay = (opts.scope == Scope::Warm && same_outline(&loaded, &full)).then(|| Replay {
        fresh: Arc::clone(&scanner),
        stale: plan
            .stale
            .iter()
            .map(|item| item.entry.location.canonical().clone())
            .collect(),
        observed: std::mem::take(&mut plan.observed),
    });
    let hinted = Hinted::new(Arc::clone(&scanner), &plan.observed, &full.file_stats);
    drop(plan);
    drop(loaded);
    let loaded = &full;
    let mut plan = match replay {
        Some(replay) => {
            let plan = make_plan(ad, opts, loaded, &lockfile, &replay).await?;
            let mut back = false;
            for path in &plan.vanished {
                back |= scanner.exists(path).await;
            }
            if back {
                // A source prepare saw missing is back: observe the whole tree again.
                make_plan(ad, opts, loaded, &lockfile, scanner.as_ref()).await?
            } else {
                plan
            }
        }
        None => make_plan(ad, opts, loaded, &lockfile, &hinted).await?,
    };
    drop(hinted);
    ad.stats.hashed(scanner.files_hashed());
    let mut deferred = Vec::new();
    let staged = apply_results(&mut plan, &prepared, &mut deferred)?;
    let transitions = transitions_of(&plan);
    let inputs = guard_inputs(ad, &lockfile, scanner.as_ref());

    if let Some(trip) = guardrail_trip(&plan, &transitions, opts.guardrail) {
        if opts.mark_populated {
            ad.repo.mark_populated(&inputs).await?;
        }
        ad.repo.record_file_stats(&plan.stats).await?;
        return Ok(ReconcileReport {
            transitions,
            applied: false,
            aborted: Some(trip),
            saved: None,
            deferred,
            warnings: Vec::new(),
            catalog: None,
        });
    }

    let changed = changed(&plan);
    let mut warnings = recovered.warnings;
    let mut saved: Option<SaveReport> = None;
    let write_rows = !changed.is_empty() || plan.skipped_rows > 0;
    // A rebuild can leave every row as it was (same fingerprint, same tag): an `Indexed`
    // source whose bundle file was deleted, or every source after a layout change or
    // `--rescan`. Its new bundle must still be published, or the row keeps pointing at
    // a missing (or old-layout) file and every later pass rebuilds it again.
    let republish = opts.rebuild == Rebuild::All || plan.rebuilt_indexed;
    let referenced = bundle_paths(plan.working.values().map(|e| &**e));
    if write_rows || republish {
        if opts.rebuild == Rebuild::All {
            // Every bundle of the old layout is unusable; the prepared ones replace them.
            ad.store.clear().await?;
        }
        for bundle in staged
            .iter()
            .filter(|s| referenced.contains(&s.target.path))
        {
            // Atomic rename into .fen/bundles/, under the lifecycle lock.
            ad.store.publish(bundle).await?;
        }
    }
    if write_rows {
        // One BEGIN IMMEDIATE transaction, under the lifecycle lock.
        match ad.repo.save_all(&changed).await {
            Ok(report) => saved = Some(report),
            Err(RepoError::DuplicateType(dup)) if opts.scope == Scope::Warm => {
                warnings.push(format!("{dup}; the catalog was left as it was"));
            }
            Err(error) => return Err(error.into()),
        }
        if saved.is_some() {
            let before = bundle_paths(plan.originals.values().copied());
            for stale_bundle in before.difference(&referenced) {
                if let Err(error) = ad.store.evict(stale_bundle).await {
                    warnings.push(format!("could not evict bundle {stale_bundle}: {error}"));
                }
            }
        }
    }
    if opts.mark_populated {
        ad.repo.mark_populated(&inputs).await?;
    }
    if !plan.stats.is_empty() {
        ad.repo.record_file_stats(&plan.stats).await?;
    }
    Ok(ReconcileReport {
        transitions,
        applied: saved.is_some(),
        aborted: None,
        saved,
        deferred,
        warnings,
        catalog: None,
    })
}

/// The expected values of the four guard keys (spec 10 §5.8).
pub(crate) fn guard_inputs(
    ad: &Adapters,
    lockfile: &[LockedExtension],
    scanner: &dyn SourceScanner,
) -> GuardInputs {
    let pulled: Vec<(ExtensionName, CanonicalPath)> = lockfile
        .iter()
        .map(|l| (l.name.clone(), ad.layout.pulled_root(&l.name)))
        .collect();
    let mut source_dirs: Vec<CanonicalPath> = LoaderKind::ALL
        .into_iter()
        .flat_map(|lk| scanner.scan_roots(lk, &pulled))
        .filter_map(|root| CanonicalPath::new(&root.dir, PathPolicy::host()).ok())
        .collect();
    source_dirs.sort();
    source_dirs.dedup();
    GuardInputs {
        layout_version: fen_domain::layout::BUNDLE_LAYOUT_VERSION.to_owned(),
        bundles_base_path: ad.layout.bundles_dir.as_str().to_owned(),
        source_dirs,
    }
}

pub(crate) fn count(ad: &Adapters, result: &Result<IndexOutcome, IndexError>) {
    match result {
        Ok(IndexOutcome::Indexed { bundle, reused, .. }) => {
            if !reused {
                ad.stats.built_at(bundle.path.as_str());
            }
            ad.stats.evaluated(bundle.path.as_str());
        }
        Err(IndexError::Validation { bundle, staged, .. }) => {
            if staged.is_some() {
                ad.stats.built_at(bundle.path.as_str());
            }
            ad.stats.evaluated(bundle.path.as_str());
        }
        Err(IndexError::Build(_)) => ad.stats.built(),
        Err(_) => {}
    }
}

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
    BundleStoreError, EntryPoint, FileStats, FileStatsUpdate, Fingerprinted, GuardInputs,
    IndexError, IndexOutcome, LifecycleLockError, Loaded, LockedExtension, LockfileError,
    RepoError, Reuse, SaveReport, ScanRoot, ScannedEntry, SourceScanner, StagedBundle,
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

/// A failure of a lifecycle service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The catalog failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The lifecycle lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LifecycleLockError),
    /// The lockfile is invalid.
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    /// A domain rule was broken (a bug in a service).
    #[error("internal error: {0}")]
    Domain(#[from] DomainError),
    /// The bundle store failed.
    #[error(transparent)]
    Store(#[from] BundleStoreError),
    /// A file system operation failed.
    #[error("{0}")]
    Io(String),
    /// A lifecycle command failed with a coded error (spec 20 §15.3–§15.4).
    #[error("{0}")]
    Failed(Box<crate::extensions::Failure>),
}

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

/// The commit's view of the disk when the catalog did not change since prepare: the
/// entries prepare walked and the fingerprints it measured, except for the entries it
/// found stale, which are fingerprinted again (their results apply only if the disk
/// still matches). Existence probes and hashing counters are the fresh scanner's.
struct Replay {
    fresh: Arc<dyn SourceScanner>,
    stale: BTreeSet<CanonicalPath>,
    observed: BTreeMap<CanonicalPath, (ScannedEntry, Fingerprinted)>,
}

#[async_trait::async_trait]
impl SourceScanner for Replay {
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        self.fresh.scan_roots(loader_kind, pulled)
    }

    async fn walk(
        &self,
        root: &ScanRoot,
        _known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        self.observed
            .values()
            .filter(|(entry, _)| entry.root == *root)
            .map(|(entry, _)| entry.clone())
            .collect()
    }

    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        let path = entry.location.canonical();
        match self.observed.get(path) {
            Some((_, measured)) if !self.stale.contains(path) => measured.clone(),
            _ => self.fresh.fingerprint(entry, known).await,
        }
    }

    async fn exists(&self, path: &CanonicalPath) -> bool {
        self.fresh.exists(path).await
    }

    fn files_hashed(&self) -> usize {
        self.fresh.files_hashed()
    }
}

/// The commit's view of the disk when it observes the whole tree again (a cold start,
/// or another writer committed since prepare): a fresh walk and fresh fingerprints,
/// with the stat records prepare took standing in for sources the catalog has none
/// for. A file whose stat still equals such a non-racy record is not read a second
/// time (the stat fast path of spec 10 §6.2, with prepare's records).
struct Hinted {
    fresh: Arc<dyn SourceScanner>,
    /// The catalog's records, plus prepare's for the sources it has none for.
    known: BTreeMap<CanonicalPath, FileStats>,
    /// Prepare's fingerprint and records, for the sources the catalog has none for.
    taken: BTreeMap<CanonicalPath, (SourceFingerprint, FileStats)>,
}

impl Hinted {
    fn new(
        fresh: Arc<dyn SourceScanner>,
        observed: &BTreeMap<CanonicalPath, (ScannedEntry, Fingerprinted)>,
        stored: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Hinted {
        let taken: BTreeMap<_, _> = observed
            .iter()
            .filter(|(path, _)| !stored.contains_key(*path))
            .filter_map(|(path, (_, measured))| {
                let stats = measured.fresh_stats.clone()?;
                Some((path.clone(), (measured.fingerprint, stats)))
            })
            .collect();
        let mut known = stored.clone();
        if !taken.is_empty() {
            known.extend(
                taken
                    .iter()
                    .map(|(p, (_, stats))| (p.clone(), stats.clone())),
            );
        }
        Hinted {
            fresh,
            known,
            taken,
        }
    }
}

#[async_trait::async_trait]
impl SourceScanner for Hinted {
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        self.fresh.scan_roots(loader_kind, pulled)
    }

    async fn walk(
        &self,
        root: &ScanRoot,
        _known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        self.fresh.walk(root, &self.known).await
    }

    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        let hint = match known {
            None => self.taken.get(entry.location.canonical()),
            Some(_) => None,
        };
        let Some((fingerprint, stats)) = hint else {
            return self.fresh.fingerprint(entry, known).await;
        };
        let again = self
            .fresh
            .fingerprint(entry, Some((fingerprint, stats)))
            .await;
        if again.fresh_stats.is_some() || again.fingerprint != *fingerprint {
            return again;
        }
        if !again.hashed {
            // Every file unchanged since prepare: its records are the ones to store.
            return Fingerprinted {
                fresh_stats: Some(stats.clone()),
                ..again
            };
        }
        // A racy record made it read a file again: fingerprint it as a source without
        // records (from the pass's cache), so the records stored are taken now.
        self.fresh.fingerprint(entry, known).await
    }

    async fn exists(&self, path: &CanonicalPath) -> bool {
        self.fresh.exists(path).await
    }

    fn files_hashed(&self) -> usize {
        self.fresh.files_hashed()
    }
}

/// Two reads of the catalog hold the same rows, descriptors aside (an outline has none).
fn same_outline(a: &Loaded, b: &Loaded) -> bool {
    a.skipped == b.skipped
        && a.file_stats == b.file_stats
        && a.extensions.len() == b.extensions.len()
        && a.extensions.iter().zip(&b.extensions).all(|(x, y)| {
            x.id() == y.id()
                && x.origin() == y.origin()
                && x.root() == y.root()
                && x.sources().len() == y.sources().len()
                && x.sources().zip(y.sources()).all(|(s, t)| same_source(s, t))
        })
}

fn same_source(s: &Source, t: &Source) -> bool {
    let same_state = match (s.state(), t.state()) {
        (
            RowState::Indexed {
                type_name: a,
                bundle: b,
                meta: m,
            },
            RowState::Indexed {
                type_name: c,
                bundle: d,
                meta: n,
            },
        ) => {
            a == c
                && b == d
                && m.declared_version == n.declared_version
                && m.description == n.description
        }
        (x, y) => x == y,
    };
    same_state
        && s.location() == t.location()
        && s.kind() == t.kind()
        && s.origin() == t.origin()
        && s.fingerprint() == t.fingerprint()
        && s.mtime() == t.mtime()
        && s.superseded_by() == t.superseded_by()
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

/// A target aggregate with the scan roots it owns.
struct Target<'a> {
    ext: Cow<'a, Extension>,
    roots: Vec<ScanRoot>,
    pulled: bool,
}

async fn make_plan<'a>(
    ad: &Adapters,
    opts: RunOptions,
    loaded: &'a Loaded,
    lockfile: &[LockedExtension],
    scanner: &dyn SourceScanner,
) -> Result<Plan<'a>, LifecycleError> {
    let mut plan = Plan {
        originals: BTreeMap::new(),
        working: BTreeMap::new(),
        stale: Vec::new(),
        stats: Vec::new(),
        reasons: BTreeMap::new(),
        migrations: BTreeSet::new(),
        skipped_rows: loaded.skipped.len(),
        rebuilt_indexed: false,
        observed: BTreeMap::new(),
        vanished: Vec::new(),
    };
    let local_id = ExtensionId::new(
        ExtensionName::local(&ad.layout.root),
        ExtensionVersion::Local,
    );
    let mut targets: Vec<Target> = Vec::new();
    let local_roots: Vec<ScanRoot> = LoaderKind::ALL
        .into_iter()
        .flat_map(|lk| scanner.scan_roots(lk, &[]))
        .filter(|r| r.origin != Origin::Pulled)
        .collect();
    let mut local_ext = Cow::Owned(Extension::local(&ad.layout.root));
    for ext in &loaded.extensions {
        match ext.origin() {
            ExtensionOrigin::Local if ext.id() == &local_id => {
                plan.originals.insert(ext.id().clone(), ext);
                local_ext = Cow::Borrowed(ext);
            }
            ExtensionOrigin::Local => {
                if opts.scope == Scope::Reconcile {
                    // Identity migration: the slug changed (the repo was renamed).
                    let reason = format!("identity migration: {} -> {}", ext.id(), local_id);
                    retire(&mut plan, ext, &reason, true);
                }
            }
            ExtensionOrigin::Pulled => {
                if opts.scope == Scope::Reconcile {
                    match lockfile.iter().find(|l| l.name == ext.id().name) {
                        Some(locked) if locked.version == ext.id().version => {}
                        Some(locked) => {
                            let reason =
                                format!("superseded by lockfile version {}", locked.version);
                            retire(&mut plan, ext, &reason, false);
                        }
                        None => retire(&mut plan, ext, "orphan: no lockfile entry", false),
                    }
                }
            }
        }
    }
    targets.push(Target {
        ext: local_ext,
        roots: local_roots,
        pulled: false,
    });
    if opts.scope == Scope::Reconcile {
        for locked in lockfile {
            let id = ExtensionId::new(locked.name.clone(), locked.version);
            let root = ad.layout.pulled_root(&locked.name);
            let ext = match loaded.extensions.iter().find(|e| e.id() == &id) {
                Some(ext) => {
                    plan.originals.insert(id.clone(), ext);
                    Cow::Borrowed(ext)
                }
                None => Cow::Owned(Extension::new(
                    id,
                    ExtensionOrigin::Pulled,
                    root.clone(),
                    Vec::new(),
                )?),
            };
            let pair = [(locked.name.clone(), root)];
            let roots = LoaderKind::ALL
                .into_iter()
                .flat_map(|lk| scanner.scan_roots(lk, &pair))
                .filter(|r| r.origin == Origin::Pulled)
                .collect();
            targets.push(Target {
                ext,
                roots,
                pulled: true,
            });
        }
    }

    for target in targets {
        let ext = survey_target(opts, loaded, scanner, target, &mut plan).await?;
        plan.working.insert(ext.id().clone(), ext);
    }
    Ok(plan)
}

fn retire<'a>(plan: &mut Plan<'a>, ext: &'a Extension, reason: &str, migration: bool) {
    for source in ext.sources() {
        plan.reasons
            .insert(source.path().clone(), reason.to_owned());
        if migration {
            plan.migrations.insert(source.path().clone());
        }
    }
    plan.originals.insert(ext.id().clone(), ext);
    plan.working
        .insert(ext.id().clone(), Cow::Owned(ext.tombstone_all()));
}

/// Applies the not-on-disk rows of the matrix to one target, then decides which of
/// its on-disk entries are stale.
async fn survey_target<'a>(
    opts: RunOptions,
    loaded: &Loaded,
    scanner: &dyn SourceScanner,
    target: Target<'a>,
    plan: &mut Plan<'a>,
) -> Result<Cow<'a, Extension>, LifecycleError> {
    let mut entries: BTreeMap<CanonicalPath, ScannedEntry> = BTreeMap::new();
    let mut root_dirs = Vec::new();
    for root in &target.roots {
        if let Ok(dir) = CanonicalPath::new(&root.dir, PathPolicy::host()) {
            root_dirs.push(dir);
        }
        for entry in scanner.walk(root, &loaded.file_stats).await {
            entries.insert(entry.location.canonical().clone(), entry);
        }
    }
    let mut ext = target.ext;
    let in_scope = |path: &CanonicalPath| match opts.scope {
        Scope::Reconcile => true,
        Scope::Warm => root_dirs.iter().any(|dir| path.starts_under(dir)),
    };

    // Vanished rows first, so a Renamed tombstone whose winner just left is revived in
    // this same pass.
    let vanished: Vec<Source> = ext
        .sources()
        .filter(|s| in_scope(s.path()) && !entries.contains_key(s.path()))
        .cloned()
        .collect();
    plan.vanished
        .extend(vanished.iter().map(|s| s.path().clone()));
    let mut vanished_changes = Vec::new();
    for source in vanished {
        let path = source.path().clone();
        match source.state() {
            RowState::OrphanedBundleOnly { .. } => {}
            RowState::Tombstoned {
                reason: TombstoneReason::SourceDeleted | TombstoneReason::ExtensionRemoved,
            } => {}
            RowState::EntryPointUnreadable { .. } if target.pulled => {}
            _ if target.pulled => {
                let relative = path
                    .relative_to(ext.root())
                    .unwrap_or(path.as_str())
                    .to_owned();
                let fingerprint = SourceFingerprint::from_lines(
                    vec![FingerprintLine {
                        relative,
                        digest: None,
                    }],
                    false,
                );
                let obs = Observation {
                    location: source.location().clone(),
                    kind: source.kind(),
                    origin: Origin::Pulled,
                    fingerprint,
                    mtime: None,
                };
                vanished_changes.push(Change::EntryUnreadable {
                    obs,
                    error: "source file missing from disk".to_owned(),
                });
                plan.reasons.insert(
                    path,
                    "pulled source missing from disk (lockfile entry present)".to_owned(),
                );
            }
            _ => {
                let mut bundle_on_disk = None;
                if let Some(bundle) = source.state().bundle() {
                    if scanner.exists(&bundle.path).await {
                        bundle_on_disk = Some(bundle.clone());
                    }
                }
                vanished_changes.push(Change::SourceMissing {
                    path: path.clone(),
                    bundle_on_disk,
                });
                plan.reasons
                    .insert(path, "source file deleted from disk".to_owned());
            }
        }
    }

    if !vanished_changes.is_empty() {
        ext = Cow::Owned(ext.apply(vanished_changes)?);
    }

    for (path, entry) in entries {
        let row = ext.source(&path);
        let known: Option<(SourceFingerprint, FileStats)> = match (
            row.and_then(|r| r.fingerprint()),
            loaded.file_stats.get(&path),
        ) {
            (Some(fp), Some(stats)) if opts.rebuild == Rebuild::Stale => Some((*fp, stats.clone())),
            _ => None,
        };
        let measured = scanner
            .fingerprint(&entry, known.as_ref().map(|(fp, st)| (fp, st)))
            .await;
        let fingerprint = measured.fingerprint;
        let stale = match opts.rebuild {
            Rebuild::All => true,
            Rebuild::Stale => is_stale(&ext, row, &fingerprint, scanner).await,
        };
        if let Some(stats) = &measured.fresh_stats {
            plan.stats.push(FileStatsUpdate {
                source: path.clone(),
                fingerprint,
                stats: stats.clone(),
            });
        }
        if stale {
            if row.is_some_and(|r| matches!(r.state(), RowState::Indexed { .. })) {
                plan.rebuilt_indexed = true;
            }
            plan.stale.push(StaleItem {
                ext: ext.id().clone(),
                entry: entry.clone(),
                fingerprint,
            });
        }
        plan.observed.insert(path, (entry, measured));
    }
    Ok(ext)
}

/// The verdict table of spec 10 §6.2.
async fn is_stale(
    ext: &Extension,
    row: Option<&Source>,
    disk: &SourceFingerprint,
    scanner: &dyn SourceScanner,
) -> bool {
    let Some(row) = row else {
        return true;
    };
    if let RowState::Tombstoned { reason } = row.state() {
        return match reason {
            TombstoneReason::Renamed {
                winner: Some(winner),
            } => {
                let winner_indexed = ext
                    .source(winner)
                    .is_some_and(|w| matches!(w.state(), RowState::Indexed { .. }));
                !(winner_indexed && row.fingerprint() == Some(disk))
            }
            TombstoneReason::Renamed { winner: None } => true,
            TombstoneReason::SourceDeleted | TombstoneReason::ExtensionRemoved => true,
        };
    }
    if let RowState::OrphanedBundleOnly { .. } = row.state() {
        return true;
    }
    if row.fingerprint() != Some(disk) {
        return true;
    }
    match row.state() {
        RowState::BundleBuildFailed { .. } | RowState::Bundled { .. } => true,
        RowState::ValidationFailed { .. } | RowState::EntryPointUnreadable { .. } => false,
        RowState::Indexed { bundle, .. } => !scanner.exists(&bundle.path).await,
        RowState::OrphanedBundleOnly { .. } | RowState::Tombstoned { .. } => true,
    }
}

/// Indexes every stale entry of a plan into `scratch` (no lock held).
async fn index_stale(
    ad: &Adapters,
    plan: &Plan<'_>,
    rebuild: Rebuild,
    scratch: &std::path::Path,
) -> Prepared {
    use futures::stream::{self, StreamExt};

    let reuse = match rebuild {
        Rebuild::All => Reuse::Never,
        Rebuild::Stale => Reuse::IfUsable,
    };
    let mut seen = BTreeSet::new();
    // Owned items: a stream of references makes the future's `Send` proof fail
    // (higher-ranked closure lifetimes), and the loader boxes this future as `Send`.
    let items: Vec<StaleItem> = plan
        .stale
        .iter()
        .filter(|item| seen.insert((item.entry.location.canonical().clone(), item.fingerprint)))
        .cloned()
        .collect();
    ad.stats.plan_indexing(items.len());
    // A few entries in flight at once, so bundling (blocking pool) overlaps with
    // evaluation (the sandbox's worker threads). Unordered: results are keyed, and a
    // slow entry must not hold back the start of the next ones.
    stream::iter(items)
        .map(|item| index_item(ad, item, scratch, reuse))
        .buffer_unordered(4)
        .collect()
        .await
}

/// Indexes one stale entry.
async fn index_item(
    ad: &Adapters,
    item: StaleItem,
    scratch: &std::path::Path,
    reuse: Reuse,
) -> (
    (CanonicalPath, SourceFingerprint),
    Result<IndexOutcome, IndexError>,
) {
    let key = (item.entry.location.canonical().clone(), item.fingerprint);
    let result = match &item.entry.unreadable {
        Some(reason) => Err(IndexError::EntryUnreadable(reason.clone())),
        None => {
            let entry = EntryPoint {
                location: item.entry.location.clone(),
                root: item.entry.root.clone(),
                read_path: item.entry.native_path.clone(),
                scratch_dir: scratch.to_path_buf(),
            };
            let result = ad.indexer.index_one(&entry, &item.fingerprint, reuse).await;
            count(ad, &result);
            result
        }
    };
    ad.stats.indexed_one();
    (key, result)
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

/// Applies prepared results whose (path, fingerprint) still match; returns the staged
/// bundles of the applied results.
fn apply_results(
    plan: &mut Plan,
    prepared: &Prepared,
    deferred: &mut Vec<CanonicalPath>,
) -> Result<Vec<StagedBundle>, DomainError> {
    let mut staged = Vec::new();
    // One batch per aggregate: one copy and one I2 pass, whatever the number of sources.
    let mut batches: BTreeMap<ExtensionId, Vec<Change>> = BTreeMap::new();
    for item in &plan.stale {
        let path = item.entry.location.canonical().clone();
        let Some(result) = prepared.get(&(path.clone(), item.fingerprint)) else {
            deferred.push(path);
            continue;
        };
        let Some(ext) = plan.working.get(&item.ext) else {
            continue;
        };
        let existing = ext.source(&path);
        let kind = existing
            .map(|s| s.kind())
            .unwrap_or(item.entry.root.loader_kind.kinds()[0]);
        let mut obs = Observation {
            location: item.entry.location.clone(),
            kind,
            origin: item.entry.root.origin,
            fingerprint: item.fingerprint,
            mtime: None,
        };
        let change = match result {
            Ok(IndexOutcome::Indexed {
                kind,
                type_name,
                bundle,
                meta,
                staged: stage,
                ..
            }) => {
                obs.kind = *kind;
                if let Some(stage) = stage {
                    staged.push(stage.clone());
                }
                Change::Indexed {
                    obs,
                    type_name: type_name.clone(),
                    bundle: bundle.clone(),
                    meta: meta.clone(),
                }
            }
            Err(IndexError::Validation {
                bundle,
                staged: stage,
                message,
            }) => {
                if let Some(stage) = stage {
                    staged.push(stage.clone());
                }
                plan.reasons
                    .insert(path.clone(), format!("validation failed: {message}"));
                Change::ValidationFailed {
                    obs,
                    bundle: bundle.clone(),
                    error: message.clone(),
                }
            }
            Err(IndexError::Build(message)) => {
                plan.reasons
                    .insert(path.clone(), format!("bundle build failed: {message}"));
                Change::BuildFailed {
                    obs,
                    error: message.clone(),
                }
            }
            Err(IndexError::EntryUnreadable(message)) => Change::EntryUnreadable {
                obs,
                error: message.clone(),
            },
            Err(IndexError::NotAnEntryPoint) => {
                if existing.is_none() {
                    continue;
                }
                plan.reasons
                    .insert(path.clone(), "source file deleted from disk".to_owned());
                Change::Retire {
                    path: path.clone(),
                    reason: RetireReason::SourceDeleted,
                }
            }
            Err(other) => {
                plan.reasons
                    .insert(path.clone(), format!("bundle build failed: {other}"));
                Change::BuildFailed {
                    obs,
                    error: other.to_string(),
                }
            }
        };
        batches.entry(item.ext.clone()).or_default().push(change);
    }
    for (id, changes) in batches {
        if let Some(ext) = plan.working.get(&id) {
            let next = ext.apply(changes)?;
            plan.working.insert(id, Cow::Owned(next));
        }
    }
    Ok(staged)
}

/// Aggregates that differ from their loaded form (new ones count when non-empty).
fn changed(plan: &Plan<'_>) -> Vec<Extension> {
    plan.working
        .iter()
        .filter(|(id, ext)| match plan.originals.get(*id) {
            Some(original) => !unchanged(original, ext),
            None => ext.sources().len() > 0,
        })
        .map(|(_, ext)| Extension::clone(ext))
        .collect()
}

/// A working aggregate still equal to its loaded form (the same value when nothing
/// copied it).
fn unchanged(original: &Extension, working: &Extension) -> bool {
    std::ptr::eq(original, working) || original == working
}

fn bundle_paths<'a>(exts: impl Iterator<Item = &'a Extension>) -> BTreeSet<CanonicalPath> {
    exts.flat_map(|e| e.sources())
        .filter_map(|s| s.state().bundle().map(|b| b.path.clone()))
        .collect()
}

fn transitions_of(plan: &Plan<'_>) -> Vec<Transition> {
    let mut out = Vec::new();
    let ids: BTreeSet<&ExtensionId> = plan.originals.keys().chain(plan.working.keys()).collect();
    for id in ids {
        let original = plan.originals.get(id).copied();
        let Some(after_ext) = plan.working.get(id) else {
            continue;
        };
        if original.is_some_and(|o| std::ptr::eq(o, &**after_ext)) {
            continue; // the loaded value itself: no transition
        }
        let before = original.map(Extension::tags).unwrap_or_default();
        let after = after_ext.tags();
        for (path, to) in &after {
            let from = before.get(path).copied();
            if from == Some(*to) {
                continue;
            }
            if from.is_none() && *to == RowStateTag::Tombstoned && !is_renamed(after_ext, path) {
                continue;
            }
            let reason = plan
                .reasons
                .get(path)
                .cloned()
                .unwrap_or_else(|| match (from, to) {
                    (_, RowStateTag::Tombstoned) if is_renamed(after_ext, path) => {
                        let winner = renamed_winner(after_ext, path)
                            .map(|w| w.to_string())
                            .unwrap_or_else(|| "none".into());
                        format!("duplicate type within extension; winner {winner}")
                    }
                    (None, _) => "new source discovered on disk".to_owned(),
                    (Some(from), _) => format!("re-indexed from {from}"),
                });
            out.push(Transition {
                source: path.clone(),
                extension: id.clone(),
                from,
                to: *to,
                reason,
            });
        }
    }
    out
}

fn is_renamed(ext: &Extension, path: &CanonicalPath) -> bool {
    matches!(
        ext.source(path).map(Source::state),
        Some(RowState::Tombstoned {
            reason: TombstoneReason::Renamed { .. }
        })
    )
}

fn renamed_winner<'a>(ext: &'a Extension, path: &CanonicalPath) -> Option<&'a CanonicalPath> {
    match ext.source(path).map(Source::state) {
        Some(RowState::Tombstoned {
            reason: TombstoneReason::Renamed { winner },
        }) => winner.as_ref(),
        _ => None,
    }
}

/// The guardrail of spec 10 §6.5 step 5.
fn guardrail_trip(
    plan: &Plan<'_>,
    transitions: &[Transition],
    guardrail: Guardrail,
) -> Option<GuardrailTrip> {
    if guardrail == Guardrail::Override {
        return None;
    }
    let total: usize = plan
        .originals
        .values()
        .flat_map(|e| e.sources())
        .filter(|s| !s.state().is_tombstoned())
        .count();
    let changed = transitions
        .iter()
        .filter(|t| t.from.is_some_and(|f| f != RowStateTag::Tombstoned))
        .filter(|t| !plan.migrations.contains(&t.source))
        .count();
    (total >= 10 && 2 * changed > total).then_some(GuardrailTrip { changed, total })
}

/// `.fen/scratch/build-<id>/` with its owner record, created only when a pass has
/// something to build and removed when dropped; a crash leaves it for the next locked
/// section's recovery, which deletes it once its owner is dead (spec 20 §9.5).
struct ScratchDir {
    path: PathBuf,
    created: bool,
}

impl ScratchDir {
    fn new(ad: &Adapters, needed: bool) -> Result<ScratchDir, LifecycleError> {
        if !needed {
            return Ok(ScratchDir {
                path: ad.layout.scratch_dir.join("build-unused"),
                created: false,
            });
        }
        let path = ad
            .trees
            .new_build()
            .map_err(|e| LifecycleError::Io(e.to_string()))?;
        Ok(ScratchDir {
            path,
            created: true,
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
        // Remove .fen/scratch itself when this was the last user; ignore "not empty".
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

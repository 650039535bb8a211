//! Planning a pass: the targets, the survey of each one's scan roots against its
//! catalog rows, and the staleness decision.

use super::*;

/// A target aggregate with the scan roots it owns.
pub(super) struct Target<'a> {
    pub(super) ext: Cow<'a, Extension>,
    pub(super) roots: Vec<ScanRoot>,
    pub(super) pulled: bool,
}

pub(super) async fn make_plan<'a>(
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

pub(super) fn retire<'a>(plan: &mut Plan<'a>, ext: &'a Extension, reason: &str, migration: bool) {
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
pub(super) async fn survey_target<'a>(
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
pub(super) async fn is_stale(
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

//! Aggregate tests: scenarios 12–19 of spec 10 §8 and the proptest properties.

use super::*;
use crate::fingerprint::SourceFingerprint;
use crate::location::SourceLocation;
use crate::path::PathPolicy;
use proptest::prelude::*;

const ROOT: &str = "/r";
const PULLED_ROOT: &str = "/r/.fen/pulled-extensions/@s/n";

fn cp(text: &str) -> CanonicalPath {
    CanonicalPath::from_text(text, PathPolicy::Posix).unwrap()
}

fn fp(n: u8) -> SourceFingerprint {
    SourceFingerprint::Content([n; 32])
}

fn obs(path: &str, root: &str, kind: Kind, origin: Origin, n: u8) -> Observation {
    Observation {
        location: SourceLocation::from_canonical(cp(path), cp(root)),
        kind,
        origin,
        fingerprint: fp(n),
        mtime: None,
    }
}

fn bundle_for(path: &str, n: u8) -> BundleLocation {
    BundleLocation {
        path: cp(&format!("/r/.fen/bundles/local{path}.bundle.json")),
        fingerprint: fp(n),
    }
}

fn ty(text: &str) -> TypeName {
    TypeName::parse(text).unwrap()
}

fn local() -> Extension {
    Extension::local(&cp(ROOT))
}

fn pulled() -> Extension {
    Extension::new(
        ExtensionId::new(
            ExtensionName::parse("@s/n").unwrap(),
            ExtensionVersion::parse("2026.01.01.0").unwrap(),
        ),
        ExtensionOrigin::Pulled,
        cp(PULLED_ROOT),
        vec![],
    )
    .unwrap()
}

/// Indexes one source through the two-step transition.
fn index(ext: &Extension, o: &Observation, type_name: &str) -> Extension {
    let path = o.location.canonical().clone();
    let bundled = ext
        .observe_fresh_source(
            o,
            ty(type_name),
            bundle_for(path.as_str(), o.fingerprint.digest()[0]),
        )
        .unwrap();
    bundled.record_indexed(&path, TypeMeta::default()).unwrap()
}

fn tag(ext: &Extension, path: &str) -> RowStateTag {
    ext.source(&cp(path)).unwrap().state().tag()
}

fn state(ext: &Extension, path: &str) -> RowState {
    ext.source(&cp(path)).unwrap().state().clone()
}

#[test]
fn scenario_12_only_indexed_is_visible() {
    let b = bundle_for("/x", 1);
    let fixtures = RowStateTag::ALL.map(|t| {
        let state = match t {
            RowStateTag::Indexed => RowState::Indexed {
                type_name: ty("x"),
                bundle: b.clone(),
                meta: TypeMeta::default(),
            },
            RowStateTag::Bundled => RowState::Bundled {
                type_name: ty("x"),
                bundle: b.clone(),
            },
            RowStateTag::BundleBuildFailed => RowState::BundleBuildFailed {
                last_error: "e".into(),
            },
            RowStateTag::ValidationFailed => RowState::ValidationFailed {
                bundle: b.clone(),
                last_error: "e".into(),
            },
            RowStateTag::EntryPointUnreadable => RowState::EntryPointUnreadable {
                last_error: "e".into(),
            },
            RowStateTag::OrphanedBundleOnly => RowState::OrphanedBundleOnly { bundle: b.clone() },
            RowStateTag::Tombstoned => RowState::Tombstoned {
                reason: TombstoneReason::SourceDeleted,
            },
        };
        let loc = SourceLocation::from_canonical(cp("/r/extensions/models/x.ts"), cp(ROOT));
        (
            t,
            Source::restore(
                loc,
                Kind::Model,
                Origin::Local,
                Some(fp(1)),
                state,
                None,
                None,
            ),
        )
    });
    let visible: Vec<RowStateTag> = fixtures
        .iter()
        .filter(|(_, s)| s.is_visible())
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(visible, [RowStateTag::Indexed]);
    assert_eq!(fixtures.len(), 7);
}

#[test]
fn scenario_13_source_under_another_root() {
    let stray = SourceLocation::from_canonical(cp("/elsewhere/models/x.ts"), cp("/elsewhere"));
    let source = Source::restore(
        stray,
        Kind::Model,
        Origin::Pulled,
        Some(fp(1)),
        RowState::BundleBuildFailed {
            last_error: "e".into(),
        },
        None,
        None,
    );
    let result = Extension::new(
        pulled().id().clone(),
        ExtensionOrigin::Pulled,
        cp(PULLED_ROOT),
        vec![source],
    );
    assert!(matches!(
        result,
        Err(DomainError::SourceRootMismatch { .. })
    ));

    let local_obs = obs(
        "/r/extensions/models/a.ts",
        ROOT,
        Kind::Model,
        Origin::Local,
        1,
    );
    assert!(matches!(
        pulled().record_bundle_build_failed(&local_obs, "x"),
        Err(DomainError::SourceRootMismatch { .. })
    ));
    let wrong_origin = obs(
        &format!("{PULLED_ROOT}/models/a.ts"),
        PULLED_ROOT,
        Kind::Model,
        Origin::Local,
        1,
    );
    assert!(matches!(
        pulled().record_bundle_build_failed(&wrong_origin, "x"),
        Err(DomainError::OriginMismatch { .. })
    ));
}

#[test]
fn scenario_14_intra_extension_duplicates() {
    let a = format!("{PULLED_ROOT}/models/a.ts");
    let b = format!("{PULLED_ROOT}/models/b.ts");
    let c = format!("{PULLED_ROOT}/models/c.ts");
    let mut ext = pulled();
    // Index b first: the winner does not depend on order.
    ext = index(
        &ext,
        &obs(&b, PULLED_ROOT, Kind::Model, Origin::Pulled, 2),
        "@s/n/x",
    );
    ext = index(
        &ext,
        &obs(&a, PULLED_ROOT, Kind::Model, Origin::Pulled, 1),
        "@s/n/x",
    );
    assert_eq!(tag(&ext, &a), RowStateTag::Indexed);
    assert_eq!(
        state(&ext, &b),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed {
                winner: Some(cp(&a))
            }
        }
    );
    ext = index(
        &ext,
        &obs(&c, PULLED_ROOT, Kind::Model, Origin::Pulled, 3),
        "@s/n/x",
    );
    assert_eq!(tag(&ext, &c), RowStateTag::Tombstoned);
    assert_eq!(ext.claims().len(), 1);

    // The same type under two kinds: both stay.
    let v = format!("{PULLED_ROOT}/vaults/x.ts");
    ext = index(
        &ext,
        &obs(&v, PULLED_ROOT, Kind::Vault, Origin::Pulled, 4),
        "@s/n/x",
    );
    assert_eq!(tag(&ext, &v), RowStateTag::Indexed);

    // Two extensions of one base type: both stay.
    let e1 = format!("{PULLED_ROOT}/models/e1.ts");
    let e2 = format!("{PULLED_ROOT}/models/e2.ts");
    ext = index(
        &ext,
        &obs(&e1, PULLED_ROOT, Kind::Extension, Origin::Pulled, 5),
        "aws/ec2",
    );
    ext = index(
        &ext,
        &obs(&e2, PULLED_ROOT, Kind::Extension, Origin::Pulled, 6),
        "aws/ec2",
    );
    assert_eq!(tag(&ext, &e1), RowStateTag::Indexed);
    assert_eq!(tag(&ext, &e2), RowStateTag::Indexed);
    ext.check_invariants().unwrap();
}

#[test]
fn scenario_15_local_beats_mounted() {
    let zz = "/r/extensions/models/zz.ts";
    let aa = "/m/extensions/models/aa.ts";
    let mut ext = local();
    ext = index(
        &ext,
        &obs(aa, ROOT, Kind::Model, Origin::SourceMounted, 1),
        "t",
    );
    ext = index(&ext, &obs(zz, ROOT, Kind::Model, Origin::Local, 2), "t");
    assert_eq!(tag(&ext, zz), RowStateTag::Indexed);
    assert_eq!(
        state(&ext, aa),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed {
                winner: Some(cp(zz))
            }
        }
    );
}

#[test]
fn winner_leaving_the_slot_clears_the_pointer() {
    let a = "/r/extensions/models/a.ts";
    let b = "/r/extensions/models/b.ts";
    let mut ext = local();
    ext = index(&ext, &obs(a, ROOT, Kind::Model, Origin::Local, 1), "t");
    ext = index(&ext, &obs(b, ROOT, Kind::Model, Origin::Local, 2), "t");
    assert_eq!(
        state(&ext, b),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed {
                winner: Some(cp(a))
            }
        }
    );
    let gone = ext.mark_source_missing(&cp(a), None).unwrap();
    assert_eq!(
        state(&gone, b),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed { winner: None }
        }
    );
    // The winner re-indexed under another type also clears it.
    let moved = index(&ext, &obs(a, ROOT, Kind::Model, Origin::Local, 3), "other");
    assert_eq!(
        state(&moved, b),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed { winner: None }
        }
    );
}

#[test]
fn scenario_16_tombstone_all_leaves_the_receiver() {
    let mut v1 = pulled();
    let a = format!("{PULLED_ROOT}/models/a.ts");
    v1 = index(
        &v1,
        &obs(&a, PULLED_ROOT, Kind::Model, Origin::Pulled, 1),
        "x",
    );
    v1 = v1
        .record_bundle_build_failed(
            &obs(
                &format!("{PULLED_ROOT}/models/b.ts"),
                PULLED_ROOT,
                Kind::Model,
                Origin::Pulled,
                2,
            ),
            "boom",
        )
        .unwrap();
    let before = v1.clone();
    let retired = v1.tombstone_all();
    assert_eq!(v1, before);
    assert!(retired.sources().all(|s| s.state()
        == &RowState::Tombstoned {
            reason: TombstoneReason::ExtensionRemoved
        }));
    assert_eq!(retired.sources().len(), 2);
    assert!(retired.claims().is_empty());
    assert_eq!(retired.id(), v1.id());
}

#[test]
fn scenario_17_validation_failed_keeps_evidence() {
    let a = "/r/extensions/models/a.ts";
    let first = obs(a, ROOT, Kind::Model, Origin::Local, 1);
    let ext = local()
        .record_validation_failed(&first, bundle_for(a, 1), "bad export")
        .unwrap();
    let source = ext.source(&cp(a)).unwrap();
    assert_eq!(source.fingerprint(), Some(&fp(1)));
    assert_eq!(source.state().bundle(), Some(&bundle_for(a, 1)));
    let second = obs(a, ROOT, Kind::Model, Origin::Local, 2);
    let ext = ext
        .record_validation_failed(&second, bundle_for(a, 2), "still bad")
        .unwrap();
    let source = ext.source(&cp(a)).unwrap();
    assert_eq!(source.fingerprint(), Some(&fp(2)));
    assert_eq!(source.state().bundle(), Some(&bundle_for(a, 2)));
    assert!(matches!(
        ext.record_validation_failed(&second, bundle_for(a, 9), "x"),
        Err(DomainError::FingerprintMismatch { .. })
    ));
    assert!(matches!(
        ext.observe_fresh_source(&second, ty("x"), bundle_for(a, 9)),
        Err(DomainError::FingerprintMismatch { .. })
    ));
}

#[test]
fn scenario_18_missing_sources_and_not_bundled() {
    let a = "/r/extensions/models/a.ts";
    let ext = index(&local(), &obs(a, ROOT, Kind::Model, Origin::Local, 1), "t");
    let orphan = ext
        .mark_source_missing(&cp(a), Some(bundle_for(a, 1)))
        .unwrap();
    assert_eq!(
        state(&orphan, a),
        RowState::OrphanedBundleOnly {
            bundle: bundle_for(a, 1)
        }
    );
    let gone = ext.mark_source_missing(&cp(a), None).unwrap();
    assert_eq!(
        state(&gone, a),
        RowState::Tombstoned {
            reason: TombstoneReason::SourceDeleted
        }
    );
    assert!(matches!(
        ext.record_indexed(&cp(a), TypeMeta::default()),
        Err(DomainError::NotBundled {
            state: RowStateTag::Indexed,
            ..
        })
    ));
    assert!(matches!(
        ext.record_indexed(&cp("/r/extensions/models/none.ts"), TypeMeta::default()),
        Err(DomainError::UnknownSource { .. })
    ));
    let retired = ext
        .record_source_missing(&cp(a), RetireReason::ExtensionRemoved)
        .unwrap();
    assert_eq!(
        state(&retired, a),
        RowState::Tombstoned {
            reason: TombstoneReason::ExtensionRemoved
        }
    );
}

#[test]
fn scenario_19_local_aggregate() {
    let root = cp("/home/u/My Project.v2");
    let ext = Extension::local(&root);
    assert_eq!(ext.id().to_string(), "@local/my-project-v2@0.0.0");
    assert_eq!(ext.origin(), ExtensionOrigin::Local);
    assert_eq!(ext.root(), &root);
    assert_eq!(ext.sources().len(), 0);
}

#[test]
fn new_rejects_duplicate_locations() {
    let loc = SourceLocation::from_canonical(cp("/r/extensions/models/a.ts"), cp(ROOT));
    let s = Source::restore(
        loc,
        Kind::Model,
        Origin::Local,
        Some(fp(1)),
        RowState::BundleBuildFailed {
            last_error: "e".into(),
        },
        None,
        None,
    );
    let result = Extension::new(
        local().id().clone(),
        ExtensionOrigin::Local,
        cp(ROOT),
        vec![s.clone(), s],
    );
    assert!(matches!(result, Err(DomainError::DuplicateLocation { .. })));
}

// ---- properties ----

#[derive(Clone, Debug)]
enum Step {
    Index {
        file: u8,
        ty: u8,
        kind: Kind,
        mounted: bool,
        fp: u8,
    },
    ValidationFailed {
        file: u8,
        fp: u8,
    },
    BuildFailed {
        file: u8,
        fp: u8,
    },
    Unreadable {
        file: u8,
    },
    Missing {
        file: u8,
        with_bundle: bool,
    },
    Retire {
        file: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let kind = prop_oneof![Just(Kind::Model), Just(Kind::Extension), Just(Kind::Vault)];
    prop_oneof![
        4 => (0u8..6, 0u8..3, kind, any::<bool>(), 0u8..4).prop_map(|(file, ty, kind, mounted, fp)| Step::Index { file, ty, kind, mounted, fp }),
        1 => (0u8..6, 0u8..4).prop_map(|(file, fp)| Step::ValidationFailed { file, fp }),
        1 => (0u8..6, 0u8..4).prop_map(|(file, fp)| Step::BuildFailed { file, fp }),
        1 => (0u8..6).prop_map(|file| Step::Unreadable { file }),
        1 => (0u8..6, any::<bool>()).prop_map(|(file, with_bundle)| Step::Missing { file, with_bundle }),
        1 => (0u8..6).prop_map(|file| Step::Retire { file }),
    ]
}

fn file_path(file: u8, mounted: bool) -> (String, Origin) {
    if mounted {
        (
            format!("/m/extensions/models/f{file}.ts"),
            Origin::SourceMounted,
        )
    } else {
        (format!("/r/extensions/models/f{file}.ts"), Origin::Local)
    }
}

fn apply(ext: &Extension, step: &Step) -> Extension {
    match step {
        Step::Index {
            file,
            ty: t,
            kind,
            mounted,
            fp: n,
        } => {
            let (path, origin) = file_path(*file, *mounted);
            index(ext, &obs(&path, ROOT, *kind, origin, *n), &format!("t{t}"))
        }
        Step::ValidationFailed { file, fp: n } => {
            let (path, origin) = file_path(*file, false);
            ext.record_validation_failed(
                &obs(&path, ROOT, Kind::Model, origin, *n),
                bundle_for(&path, *n),
                "bad",
            )
            .unwrap()
        }
        Step::BuildFailed { file, fp: n } => {
            let (path, origin) = file_path(*file, false);
            ext.record_bundle_build_failed(&obs(&path, ROOT, Kind::Model, origin, *n), "boom")
                .unwrap()
        }
        Step::Unreadable { file } => {
            let (path, origin) = file_path(*file, false);
            let mut o = obs(&path, ROOT, Kind::Model, origin, 0);
            o.fingerprint = SourceFingerprint::EntryUnreadable([0; 32]);
            ext.record_entry_point_unreadable(&o, "unreadable").unwrap()
        }
        Step::Missing { file, with_bundle } => {
            let (path, _) = file_path(*file, false);
            match ext.source(&cp(&path)) {
                Some(s) => {
                    let bundle = if *with_bundle {
                        s.state().bundle().cloned()
                    } else {
                        None
                    };
                    ext.mark_source_missing(&cp(&path), bundle).unwrap()
                }
                None => ext.clone(),
            }
        }
        Step::Retire { file } => {
            let (path, _) = file_path(*file, false);
            match ext.source(&cp(&path)) {
                Some(_) => ext
                    .record_source_missing(&cp(&path), RetireReason::SourceDeleted)
                    .unwrap(),
                None => ext.clone(),
            }
        }
    }
}

proptest! {
    #[test]
    fn transitions_keep_invariants(steps in proptest::collection::vec(step(), 0..40)) {
        let mut ext = local();
        for step in &steps {
            let before = ext.clone();
            ext = apply(&ext, step);
            prop_assert_eq!(ext.check_invariants(), Ok(()));
            // The receiver never changes.
            prop_assert_eq!(&before, &before.clone());
            // Every Renamed winner pointer names a current claimant.
            for s in ext.sources() {
                if let RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(w) } } = s.state() {
                    prop_assert!(ext.source(w).is_some_and(|w| w.claim().is_some()));
                }
            }
        }
    }

    #[test]
    fn i2_winner_is_independent_of_insertion_order(
        claimants in proptest::collection::btree_set((0u8..8, any::<bool>()), 1..6),
        seed in any::<u64>(),
    ) {
        let sources: Vec<Source> = claimants.iter().map(|(file, mounted)| {
            let (path, origin) = file_path(*file, *mounted);
            let state = RowState::Indexed { type_name: ty("t"), bundle: bundle_for(&path, 1), meta: TypeMeta::default() };
            Source::restore(SourceLocation::from_canonical(cp(&path), cp(ROOT)), Kind::Model, origin, Some(fp(1)), state, None, None)
        }).collect();
        let mut shuffled = sources.clone();
        // Deterministic shuffle from the seed.
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let id = local().id().clone();
        let a = Extension::new(id.clone(), ExtensionOrigin::Local, cp(ROOT), sources).unwrap();
        let b = Extension::new(id, ExtensionOrigin::Local, cp(ROOT), shuffled).unwrap();
        prop_assert_eq!(a.tags(), b.tags());
        prop_assert_eq!(a.claims().len(), 1);
        // Incremental indexing in either order agrees with construction.
        let mut inc = local();
        for (file, mounted) in claimants.iter().rev() {
            let (path, origin) = file_path(*file, *mounted);
            inc = index(&inc, &obs(&path, ROOT, Kind::Model, origin, 1), "t");
        }
        let winner_a = a.claims()[0].2.clone();
        prop_assert_eq!(inc.claims()[0].2, &winner_a);
    }

    #[test]
    fn tombstone_all_never_changes_its_receiver(steps in proptest::collection::vec(step(), 0..25)) {
        let mut ext = local();
        for step in &steps {
            ext = apply(&ext, step);
        }
        let snapshot = ext.clone();
        let retired = ext.tombstone_all();
        prop_assert_eq!(&ext, &snapshot);
        prop_assert!(retired.claims().is_empty());
        prop_assert_eq!(retired.visible_sources().count(), 0);
        prop_assert_eq!(retired.sources().len(), ext.sources().len());
        prop_assert_eq!(retired.check_invariants(), Ok(()));
    }
}

fn as_change(ext: &Extension, step: &Step) -> Option<Change> {
    match step {
        Step::Index {
            file,
            ty: t,
            kind,
            mounted,
            fp: n,
        } => {
            let (path, origin) = file_path(*file, *mounted);
            let o = obs(&path, ROOT, *kind, origin, *n);
            Some(Change::Indexed {
                bundle: bundle_for(&path, *n),
                obs: o,
                type_name: ty(&format!("t{t}")),
                meta: TypeMeta::default(),
            })
        }
        Step::ValidationFailed { file, fp: n } => {
            let (path, origin) = file_path(*file, false);
            Some(Change::ValidationFailed {
                obs: obs(&path, ROOT, Kind::Model, origin, *n),
                bundle: bundle_for(&path, *n),
                error: "bad".into(),
            })
        }
        Step::BuildFailed { file, fp: n } => {
            let (path, origin) = file_path(*file, false);
            Some(Change::BuildFailed {
                obs: obs(&path, ROOT, Kind::Model, origin, *n),
                error: "boom".into(),
            })
        }
        Step::Unreadable { file } => {
            let (path, origin) = file_path(*file, false);
            let mut o = obs(&path, ROOT, Kind::Model, origin, 0);
            o.fingerprint = SourceFingerprint::EntryUnreadable([0; 32]);
            Some(Change::EntryUnreadable {
                obs: o,
                error: "unreadable".into(),
            })
        }
        Step::Missing { file, with_bundle } => {
            let (path, _) = file_path(*file, false);
            let s = ext.source(&cp(&path))?;
            let bundle_on_disk = if *with_bundle {
                s.state().bundle().cloned()
            } else {
                None
            };
            Some(Change::SourceMissing {
                path: cp(&path),
                bundle_on_disk,
            })
        }
        Step::Retire { file } => {
            let (path, _) = file_path(*file, false);
            ext.source(&cp(&path))?;
            Some(Change::Retire {
                path: cp(&path),
                reason: RetireReason::SourceDeleted,
            })
        }
    }
}

proptest! {
    /// A batch sets each touched path to the state its change gives, except where the
    /// I2 transform makes a claimant lose to a winner with a smaller key; the rest of
    /// the aggregate keeps its state unless it loses a slot the same way.
    #[test]
    fn a_batch_gives_each_path_its_change(
        prefix in proptest::collection::vec(step(), 0..15),
        batch in proptest::collection::vec(step(), 0..15),
    ) {
        let mut start = local();
        for step in &prefix {
            start = apply(&start, step);
        }
        let mut changes = Vec::new();
        let mut direct: BTreeMap<CanonicalPath, RowStateTag> = start.tags();
        let mut touched = std::collections::BTreeSet::new();
        for step in &batch {
            let file = match step {
                Step::Index { file, mounted, .. } => file_path(*file, *mounted).0,
                Step::ValidationFailed { file, .. } | Step::BuildFailed { file, .. } | Step::Unreadable { file }
                | Step::Missing { file, .. } | Step::Retire { file } => file_path(*file, false).0,
            };
            if !touched.insert(file.clone()) {
                continue;
            }
            if let Some(change) = as_change(&start, step) {
                changes.push(change);
                let alone = match step {
                    // Alone, without I2 against other sources: the change's own state.
                    Step::Index { .. } => RowStateTag::Indexed,
                    _ => apply(&start, step).source(&cp(&file)).unwrap().state().tag(),
                };
                direct.insert(cp(&file), alone);
            }
        }
        let batched = start.apply(changes).unwrap();
        prop_assert_eq!(batched.check_invariants(), Ok(()));
        for (path, tag) in batched.tags() {
            if direct.get(&path) == Some(&tag) {
                continue;
            }
            let lost = matches!(
                batched.source(&path).unwrap().state(),
                RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(w) } }
                    if batched.source(w).is_some_and(|w| w.claim().is_some())
            );
            prop_assert!(lost, "{path}: {tag:?}, expected {:?}", direct.get(&path));
        }
    }
}

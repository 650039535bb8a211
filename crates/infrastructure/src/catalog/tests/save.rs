//! `save_all`: scenarios 24–30 of spec 10 §8, rollback, and the preconditions.

use fen_domain::ports::{ExtensionRepository, RepoError, SkipReason, TypeIndex};
use fen_domain::{Extension, ExtensionOrigin, Kind, RowState, RowStateTag, TombstoneReason};

use super::*;

const MODELS: &str = "extensions/models";

fn local_path(fx: &Fixture, file: &str) -> CanonicalPath {
    fx.path(&format!("{MODELS}/{file}"))
}

#[tokio::test]
async fn scenario_24_saves_write_only_differences() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let a = local_path(&fx, "a.ts");
    let b = local_path(&fx, "b.ts");
    let v0 = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);

    let report = repo.save(&v0).await.expect("insert a");
    assert_eq!((report.inserted, report.updated, report.deleted), (1, 0, 0));

    let v1 = index(&v0, &b, Kind::Model, "@t/b", 2);
    let report = repo.save(&v1).await.expect("insert b");
    assert_eq!((report.inserted, report.unchanged), (1, 1));

    // An unchanged aggregate issues no write at all.
    let changes = repo.total_changes().await;
    let report = repo.save(&v1).await.expect("no-op");
    assert_eq!(
        (
            report.inserted,
            report.updated,
            report.deleted,
            report.unchanged
        ),
        (0, 0, 0, 2)
    );
    assert_eq!(repo.total_changes().await, changes);

    // One state change: one UPDATE, the other row is untouched.
    let row_b = dump(&fx.db()).await[1].clone();
    let v2 = v1
        .record_bundle_build_failed(&observe(&v1, &a, Kind::Model, 3), "boom")
        .expect("build failed");
    let report = repo.save(&v2).await.expect("update a");
    assert_eq!(
        (
            report.inserted,
            report.updated,
            report.deleted,
            report.unchanged
        ),
        (0, 1, 0, 1)
    );
    assert_eq!(repo.total_changes().await, changes + 1);
    assert_eq!(dump(&fx.db()).await[1], row_b);
    assert_eq!(
        column(&fx.db(), &a, "state").await.as_deref(),
        Some("BundleBuildFailed")
    );
    assert_eq!(
        column(&fx.db(), &a, "type_normalized").await.as_deref(),
        Some("")
    );

    // A source dropped without a tombstone is deleted (rm must prune rows).
    let only_b = Extension::new(
        v2.id().clone(),
        ExtensionOrigin::Local,
        fx.root.clone(),
        vec![v2.source(&b).expect("b").clone()],
    )
    .expect("aggregate");
    let report = repo.save(&only_b).await.expect("delete a");
    assert_eq!((report.deleted, report.unchanged), (1, 1));
    assert_eq!(column(&fx.db(), &a, "state").await, None);
}

#[tokio::test]
async fn updates_touch_only_changed_columns_and_reset_stale_stat_records() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let a = local_path(&fx, "a.ts");
    let v1 = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    repo.save(&v1).await.expect("save");
    exec(
        &fx.db(),
        &format!("UPDATE bundle_types SET file_stats = 'stats-1' WHERE source_path = '{a}'"),
    )
    .await;
    // Same fingerprint, other description: the stat records stay.
    let obs = observe(&v1, &a, Kind::Model, 1);
    let v2 = v1
        .observe_fresh_source(&obs, ty("@t/a"), bundle(&a, 1))
        .and_then(|e| {
            e.record_indexed(
                &a,
                TypeMeta {
                    declared_version: "1".to_owned(),
                    description: "new words".to_owned(),
                    descriptor: "{\"type\":\"@t/a\"}".to_owned(),
                },
            )
        })
        .expect("reindex");
    assert_eq!(repo.save(&v2).await.expect("save").updated, 1);
    assert_eq!(
        column(&fx.db(), &a, "description").await.as_deref(),
        Some("new words")
    );
    assert_eq!(
        column(&fx.db(), &a, "file_stats").await.as_deref(),
        Some("stats-1")
    );
    // A new fingerprint invalidates them.
    let v3 = index(&v2, &a, Kind::Model, "@t/a", 9);
    assert_eq!(repo.save(&v3).await.expect("save").updated, 1);
    assert_eq!(
        column(&fx.db(), &a, "file_stats").await.as_deref(),
        Some("")
    );
}

/// v1 ships `t.ts` (claims T) and `old.ts`; v2 ships `t.ts` again and `u.ts`.
fn upgrade_pair(fx: &Fixture) -> (Extension, Extension) {
    let root = pulled(&fx.root, "@s/n", "2026.01.01.1");
    let t = root.root().join("models/t.ts");
    let v1 = index(&root, &t, Kind::Model, "@s/t", 1);
    let v1 = index(
        &v1,
        &root.root().join("models/old.ts"),
        Kind::Model,
        "@s/old",
        2,
    );
    let v2 = pulled(&fx.root, "@s/n", "2026.01.02.1");
    let v2 = index(&v2, &t, Kind::Model, "@s/t", 3);
    let v2 = index(&v2, &v2.root().join("models/u.ts"), Kind::Model, "@s/u", 4);
    (v1, v2)
}

#[tokio::test]
async fn scenario_25_upgrade_canary_is_order_independent() {
    let fx = Fixture::new();
    let (v1, v2) = upgrade_pair(&fx);
    let mut dumps = Vec::new();
    for (db, reversed) in [("a.db", false), ("b.db", true)] {
        let db = fx.dir.path().join(".fen").join(db);
        let repo = fx
            .open_ctx(fx.ctx_with(fx.root.clone(), Vec::new(), db.clone()))
            .await;
        let _held = fx.lock.hold();
        repo.save(&v1).await.expect("save v1");
        let batch = if reversed {
            vec![v2.clone(), v1.tombstone_all()]
        } else {
            vec![v1.tombstone_all(), v2.clone()]
        };
        let report = repo.save_all(&batch).await.expect("upgrade");
        assert_eq!((report.inserted, report.updated, report.deleted), (1, 1, 1));
        let loaded = repo.load_all().await.expect("load");
        assert_eq!(loaded.extensions, vec![v2.clone()]);
        dumps.push(dump(&db).await);
    }
    assert_eq!(dumps[0], dumps[1]);
}

/// Two pulled extensions claiming `(model, @dup/x)`; `a` saved first.
async fn duplicate_setup(fx: &Fixture) -> (SqliteExtensionRepository, Extension, Extension) {
    let repo = fx.open().await;
    let a = pulled(&fx.root, "@t/a", "2026.01.01.1");
    let a = index(&a, &a.root().join("models/x.ts"), Kind::Model, "@dup/x", 1);
    let b = pulled(&fx.root, "@t/b", "2026.01.02.1");
    let b = index(&b, &b.root().join("models/x.ts"), Kind::Model, "@dup/x", 2);
    fx.touch(".fen/pulled-extensions/@t/a/models/x.ts");
    {
        let _held = fx.lock.hold();
        repo.save(&a).await.expect("save a");
    }
    (repo, a, b)
}

#[tokio::test]
async fn scenario_26_a_duplicate_type_rolls_back_the_whole_save() {
    let fx = Fixture::new();
    let (repo, a, b) = duplicate_setup(&fx).await;
    let _held = fx.lock.hold();
    let before = dump(&fx.db()).await;
    let changes = repo.total_changes().await;
    let error = repo.save(&b).await.expect_err("duplicate");
    let RepoError::DuplicateType(duplicate) = &error else {
        panic!("expected DuplicateType, got {error:?}");
    };
    let a_path = a.root().join("models/x.ts");
    let b_path = b.root().join("models/x.ts");
    assert_eq!(duplicate.existing.source_path, a_path);
    assert_eq!(&duplicate.existing.extension, a.id());
    assert_eq!(duplicate.conflicting.source_path, b_path);
    assert_eq!(&duplicate.conflicting.extension, b.id());
    assert!(!duplicate.existing_is_ghost);
    let message = error.to_string();
    for needle in [
        a_path.as_str(),
        b_path.as_str(),
        "@t/a@2026.01.01.1",
        "@t/b@2026.01.02.1",
    ] {
        assert!(message.contains(needle), "{message} lacks {needle}");
    }
    assert!(duplicate.hint().contains("fen extension rm @t/a"));
    assert_eq!(dump(&fx.db()).await, before);
    // The rolled-back insert still counts in total_changes(); the content does not.
    assert!(repo.total_changes().await >= changes);
}

#[tokio::test]
async fn scenario_27_a_duplicate_against_a_deleted_file_is_a_ghost() {
    let fx = Fixture::new();
    let (repo, _a, b) = duplicate_setup(&fx).await;
    std::fs::remove_file(
        fx.dir
            .path()
            .join(".fen/pulled-extensions/@t/a/models/x.ts"),
    )
    .expect("rm");
    let _held = fx.lock.hold();
    let before = dump(&fx.db()).await;
    let error = repo.save(&b).await.expect_err("duplicate");
    let RepoError::DuplicateType(duplicate) = error else {
        panic!("expected DuplicateType");
    };
    assert!(duplicate.existing_is_ghost);
    assert!(duplicate.hint().contains("fen doctor extensions"));
    assert_eq!(dump(&fx.db()).await, before);
}

#[tokio::test]
async fn two_extensions_in_one_batch_claiming_one_slot_roll_back_byte_for_byte() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let keep = index(
        &Extension::local(&fx.root),
        &local_path(&fx, "k.ts"),
        Kind::Vault,
        "@k/v",
        7,
    );
    repo.save(&keep).await.expect("seed");
    let before = dump(&fx.db()).await;
    let a = pulled(&fx.root, "@t/a", "2026.01.01.1");
    let a = index(
        &a,
        &a.root().join("drivers/z.ts"),
        Kind::Driver,
        "@dup/d",
        1,
    );
    let b = pulled(&fx.root, "@t/b", "2026.01.01.1");
    let b = index(
        &b,
        &b.root().join("drivers/z.ts"),
        Kind::Driver,
        "@dup/d",
        2,
    );
    let error = repo
        .save_all(&[b.clone(), a.clone()])
        .await
        .expect_err("dup");
    let RepoError::DuplicateType(duplicate) = error else {
        panic!("expected DuplicateType");
    };
    // Both were written here: the smaller path is `existing`.
    assert_eq!(&duplicate.existing.extension, a.id());
    assert_eq!(duplicate.kind, Kind::Driver);
    assert_eq!(dump(&fx.db()).await, before);
    // Extension kind is exempt: two files extending one base type both save.
    let a = pulled(&fx.root, "@t/a", "2026.01.01.1");
    let a = index(
        &a,
        &a.root().join("models/e.ts"),
        Kind::Extension,
        "aws/ec2",
        1,
    );
    let b = pulled(&fx.root, "@t/b", "2026.01.01.1");
    let b = index(
        &b,
        &b.root().join("models/e.ts"),
        Kind::Extension,
        "aws/ec2",
        2,
    );
    repo.save_all(&[a, b]).await.expect("extensions coexist");
    assert_eq!(
        repo.extensions_for(&ty("aws/ec2"))
            .await
            .expect("ext")
            .len(),
        2
    );
}

#[tokio::test]
async fn scenario_28_a_local_claim_supersedes_a_pulled_one_reversibly() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let p = pulled(&fx.root, "@s/n", "2026.01.01.1");
    let p_path = p.root().join("models/t.ts");
    let p = index(&p, &p_path, Kind::Model, "@x/t", 1);
    repo.save(&p).await.expect("pulled");
    let l_path = local_path(&fx, "t.ts");
    let local = index(&Extension::local(&fx.root), &l_path, Kind::Model, "@x/t", 2);
    let report = repo.save(&local).await.expect("local overrides");
    assert_eq!(
        report.supersession_changes,
        vec![(p_path.clone(), Some(l_path.clone()))]
    );
    assert_eq!(
        column(&fx.db(), &p_path, "superseded_by").await,
        Some(l_path.to_string())
    );
    assert_eq!(
        column(&fx.db(), &p_path, "state").await.as_deref(),
        Some("Indexed")
    );
    let found = repo
        .find_type(Kind::Model, &ty("@x/t"))
        .await
        .expect("find")
        .expect("some");
    assert_eq!(found.source_path, l_path);
    assert_eq!(repo.list_types(Kind::Model).await.expect("list").len(), 1);
    let loaded = repo.load_all().await.expect("load");
    let pulled_ext = loaded
        .extensions
        .iter()
        .find(|ext| ext.id() == p.id())
        .expect("pulled aggregate");
    let pulled_source = pulled_ext.source(&p_path).expect("pulled row");
    assert_eq!(pulled_source.superseded_by(), Some(&l_path));
    assert!(!pulled_source.is_visible());

    // A second pulled claim is an error even while the local one hides both.
    let q = pulled(&fx.root, "@s/q", "2026.01.01.1");
    let q = index(&q, &q.root().join("models/t.ts"), Kind::Model, "@x/t", 3);
    assert!(matches!(
        repo.save(&q).await,
        Err(RepoError::DuplicateType(_))
    ));

    // The local file goes away: the marker is cleared and the pulled type is back.
    let gone = local.mark_source_missing(&l_path, None).expect("missing");
    let report = repo.save(&gone).await.expect("local gone");
    assert_eq!(report.deleted, 1);
    assert_eq!(report.supersession_changes, vec![(p_path.clone(), None)]);
    let found = repo
        .find_type(Kind::Model, &ty("@x/t"))
        .await
        .expect("find")
        .expect("some");
    assert_eq!(found.source_path, p_path);
}

#[tokio::test]
async fn scenario_29_unreachable_rows_are_skipped_then_pruned_and_mounts_stay() {
    let fx = Fixture::new();
    let repo_root = cp("/home/u/repo");
    let mount = cp("/m");
    let ctx = fx.ctx_with(repo_root.clone(), vec![mount.clone()], fx.db());
    let repo = fx.open_ctx(ctx).await;
    let name = "@local/repo";
    for path in [
        "/srv/repo/extensions/models/x.ts",
        "/m/extensions/models/y.ts",
    ] {
        insert_row(
            &fx.db(),
            &[
                ("source_path", path),
                ("kind", "model"),
                ("state", "BundleBuildFailed"),
                ("extension_name", name),
                ("extension_version", "0.0.0"),
            ],
        )
        .await;
    }
    let loaded = repo.load_all().await.expect("load");
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(
        loaded.skipped[0].source_path,
        "/srv/repo/extensions/models/x.ts"
    );
    assert_eq!(loaded.skipped[0].reason, SkipReason::Unreachable);
    let local = &loaded.extensions[0];
    let mounted = local
        .source(&cp("/m/extensions/models/y.ts"))
        .expect("mounted");
    assert_eq!(mounted.origin(), Origin::SourceMounted);

    let _held = fx.lock.hold();
    let other = pulled(&repo_root, "@s/n", "2026.01.01.1");
    let other = index(
        &other,
        &other.root().join("models/a.ts"),
        Kind::Model,
        "@s/a",
        1,
    );
    let report = repo.save(&other).await.expect("save");
    assert_eq!((report.pruned_unreachable, report.pruned_unowned), (1, 0));
    let paths: Vec<String> = dump(&fx.db()).await;
    assert_eq!(paths.len(), 2);
    assert!(paths
        .iter()
        .any(|row| row.contains("/m/extensions/models/y.ts")));
}

#[tokio::test]
async fn scenario_30_unowned_rows_are_never_written_by_loading_and_pruned_by_saving() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let legacy = local_path(&fx, "legacy.ts");
    insert_row(
        &fx.db(),
        &[
            ("source_path", legacy.as_str()),
            ("kind", "model"),
            ("type_normalized", "@l/x"),
        ],
    )
    .await;
    let before = dump(&fx.db()).await;
    let loaded = repo.load_all().await.expect("load");
    assert!(loaded.extensions.is_empty());
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].reason, SkipReason::Unowned);
    assert_eq!(dump(&fx.db()).await, before, "loading never writes");

    let _held = fx.lock.hold();
    let report = repo.save_all(&[]).await.expect("empty batch prunes");
    assert_eq!((report.pruned_unowned, report.pruned_unreachable), (1, 0));
    assert!(dump(&fx.db()).await.is_empty());
}

#[tokio::test]
async fn a_skipped_row_at_a_live_path_is_taken_over_not_pruned() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let a = local_path(&fx, "a.ts");
    insert_row(&fx.db(), &[("source_path", a.as_str()), ("kind", "model")]).await;
    let _held = fx.lock.hold();
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    let report = repo.save(&local).await.expect("save");
    assert_eq!(
        (report.pruned_unowned, report.updated, report.inserted),
        (0, 1, 0)
    );
    assert_eq!(repo.load_all().await.expect("load").extensions, vec![local]);
}

#[tokio::test]
async fn renamed_tombstones_are_persisted_with_their_winner() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let p = pulled(&fx.root, "@s/n", "2026.01.01.1");
    let (x, y) = (p.root().join("models/x.ts"), p.root().join("models/y.ts"));
    let p = index(&p, &x, Kind::Model, "@s/same", 1);
    let p = index(&p, &y, Kind::Model, "@s/same", 2);
    assert!(matches!(
        p.source(&y).expect("y").state(),
        RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(w) } } if w == &x
    ));
    repo.save(&p).await.expect("save");
    assert_eq!(
        column(&fx.db(), &y, "state_detail").await.as_deref(),
        Some("renamed")
    );
    assert_eq!(
        column(&fx.db(), &y, "superseded_by").await,
        Some(x.to_string())
    );
    let loaded = repo.load_all().await.expect("load");
    assert_eq!(loaded.extensions, vec![p.clone()]);
    // The winner leaves: the tombstone's pointer is cleared on the next save.
    let p2 = p.mark_source_missing(&x, None).expect("x gone");
    repo.save(&p2).await.expect("save");
    assert_eq!(
        column(&fx.db(), &y, "superseded_by").await.as_deref(),
        Some("")
    );
    assert_eq!(
        repo.load_all().await.expect("load").extensions[0]
            .tags()
            .get(&y),
        Some(&RowStateTag::Tombstoned)
    );
}

#[tokio::test]
async fn invalid_batches_are_refused_before_any_sql() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let a = local_path(&fx, "a.ts");
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    let changes = repo.total_changes().await;
    let invalid = |result: Result<_, RepoError>| matches!(result, Err(RepoError::InvalidBatch(_)));

    // P1: a Bundled source.
    let bundled = local
        .observe_fresh_source(
            &observe(&local, &a, Kind::Model, 2),
            ty("@t/a"),
            bundle(&a, 2),
        )
        .expect("bundled");
    assert!(invalid(repo.save(&bundled).await));
    // P3: one id twice.
    assert!(invalid(
        repo.save_all(&[local.clone(), local.clone()]).await
    ));
    // P4: one live path in two aggregates.
    let other_root = Extension::new(
        fen_domain::ExtensionId::new(
            ExtensionName::parse("@local/other").expect("name"),
            ExtensionVersion::Local,
        ),
        ExtensionOrigin::Local,
        fx.root.clone(),
        Vec::new(),
    )
    .expect("aggregate");
    let other = index(&other_root, &a, Kind::Model, "@t/other", 3);
    assert!(invalid(repo.save_all(&[local.clone(), other]).await));
    // P5: a row that would not load back (a pulled aggregate at the wrong root).
    let misplaced = Extension::new(
        pulled(&fx.root, "@s/n", "2026.01.01.1").id().clone(),
        ExtensionOrigin::Pulled,
        fx.path(".fen/pulled-extensions/@s/other"),
        Vec::new(),
    )
    .expect("aggregate");
    let misplaced = index(
        &misplaced,
        &fx.path(".fen/pulled-extensions/@s/other/models/m.ts"),
        Kind::Model,
        "@s/m",
        4,
    );
    assert!(invalid(repo.save(&misplaced).await));
    assert_eq!(repo.total_changes().await, changes);
    assert!(dump(&fx.db()).await.is_empty());
}

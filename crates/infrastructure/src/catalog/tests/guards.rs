//! Guards, stat records, pruning, the lock rule and invalidation: scenarios 32, 41 and
//! 46 of spec 10 §8.

use std::sync::Arc;

use fen_domain::ports::{
    ExtensionRepository, FileStats, FileStatsUpdate, GuardInputs, GuardReason, GuardVerdict,
    InvalidateOutcome, LifecycleLock, RepoError, TypeIndex,
};
use fen_domain::{Extension, Kind};
use sqlx::Connection;

use super::*;
use crate::catalog::source_dirs_fingerprint;

fn inputs(fx: &Fixture) -> GuardInputs {
    GuardInputs {
        layout_version: "fen-bundle-1".to_owned(),
        bundles_base_path: fx.path(".fen/bundles").to_string(),
        source_dirs: vec![
            fx.path("extensions/vaults"),
            fx.path("extensions/models"),
            fx.path(".fen/pulled-extensions/@s/n/models"),
        ],
    }
}

#[tokio::test]
async fn scenario_32_each_guard_reports_its_trigger() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let expected = inputs(&fx);
    assert_eq!(
        repo.invalidation_guards(&expected).await.expect("guards"),
        GuardVerdict::Invalidate(GuardReason::NotPopulated)
    );
    {
        let _held = fx.lock.hold();
        repo.mark_populated(&expected).await.expect("mark");
    }
    assert_eq!(
        repo.invalidation_guards(&expected).await.expect("guards"),
        GuardVerdict::Fresh
    );
    let mut reordered = expected.clone();
    reordered.source_dirs.reverse();
    assert_eq!(
        repo.invalidation_guards(&reordered).await.expect("guards"),
        GuardVerdict::Fresh
    );

    let mut layout = expected.clone();
    layout.layout_version = "fen-bundle-2".to_owned();
    assert_eq!(
        repo.invalidation_guards(&layout).await.expect("guards"),
        GuardVerdict::Invalidate(GuardReason::LayoutVersionChanged {
            stored: Some("fen-bundle-1".to_owned()),
            expected: "fen-bundle-2".to_owned(),
        })
    );
    let mut moved = expected.clone();
    moved.bundles_base_path = "/elsewhere/.fen/bundles".to_owned();
    assert!(matches!(
        repo.invalidation_guards(&moved).await.expect("guards"),
        GuardVerdict::Invalidate(GuardReason::BundlesBasePathChanged {
            stored: Some(_),
            ..
        })
    ));
    // A new mount or a new lockfile entry adds scan roots.
    for extra in [
        "/mnt/extensions/models",
        "/r/.fen/pulled-extensions/@s/m/models",
    ] {
        let mut dirs = expected.clone();
        dirs.source_dirs.push(cp(extra));
        assert_eq!(
            repo.invalidation_guards(&dirs).await.expect("guards"),
            GuardVerdict::Invalidate(GuardReason::SourceDirsChanged {
                stored: Some(source_dirs_fingerprint(&expected.source_dirs)),
                expected: source_dirs_fingerprint(&dirs.source_dirs),
            })
        );
    }
    exec(&fx.db(), "DELETE FROM bundle_meta WHERE key = 'populated'").await;
    assert_eq!(
        repo.invalidation_guards(&expected).await.expect("guards"),
        GuardVerdict::Invalidate(GuardReason::NotPopulated)
    );
}

#[tokio::test]
async fn scenario_41_writes_need_the_lock_and_readers_see_a_snapshot() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let a = fx.path("extensions/models/a.ts");
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    {
        let _held = fx.lock.hold();
        repo.save(&local).await.expect("seed");
    }
    let before = dump(&fx.db()).await;
    let retired = local.tombstone_all();
    assert!(matches!(
        repo.save(&retired).await,
        Err(RepoError::LockNotHeld)
    ));
    assert!(matches!(
        repo.prune_retired_rows(std::slice::from_ref(&a)).await,
        Err(RepoError::LockNotHeld)
    ));
    assert!(matches!(
        repo.mark_populated(&inputs(&fx)).await,
        Err(RepoError::LockNotHeld)
    ));
    let stats = [FileStatsUpdate {
        source: a.clone(),
        fingerprint: fp(1),
        stats: FileStats("s".to_owned()),
    }];
    assert!(matches!(
        repo.record_file_stats(&stats).await,
        Err(RepoError::LockNotHeld)
    ));
    assert_eq!(dump(&fx.db()).await, before);

    // Another writer sits inside an open write transaction.
    let mut writer = raw(&fx.db()).await;
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    sqlx::query("UPDATE bundle_types SET state = 'BundleBuildFailed', type_normalized = ''")
        .execute(&mut *tx)
        .await
        .expect("update");
    let loaded = repo.load_all().await.expect("load without the lock");
    assert_eq!(loaded.extensions, vec![local.clone()]);
    let found = repo
        .find_type(Kind::Model, &ty("@t/a"))
        .await
        .expect("find");
    assert_eq!(found.map(|entry| entry.source_path), Some(a.clone()));
    tx.commit().await.expect("commit");
    connection::close(writer).await;
    assert_eq!(
        repo.find_type(Kind::Model, &ty("@t/a"))
            .await
            .expect("find"),
        None
    );
}

#[tokio::test]
async fn stat_records_are_kept_only_beside_their_fingerprint() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let a = fx.path("extensions/models/a.ts");
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    repo.save(&local).await.expect("seed");
    let update = |n: u8, text: &str| FileStatsUpdate {
        source: a.clone(),
        fingerprint: fp(n),
        stats: FileStats(text.to_owned()),
    };
    assert_eq!(
        repo.record_file_stats(&[update(2, "stale")])
            .await
            .expect("stats"),
        0
    );
    assert_eq!(
        repo.record_file_stats(&[update(1, "fresh")])
            .await
            .expect("stats"),
        1
    );
    assert_eq!(
        repo.record_file_stats(&[update(1, "fresh")])
            .await
            .expect("stats"),
        0
    );
    assert_eq!(repo.record_file_stats(&[]).await.expect("stats"), 0);
    let loaded = repo.load_all().await.expect("load");
    assert_eq!(
        loaded.file_stats.get(&a),
        Some(&FileStats("fresh".to_owned()))
    );
}

#[tokio::test]
async fn prune_retired_rows_deletes_only_retired_states() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    let a = fx.path("extensions/models/a.ts");
    let b = fx.path("extensions/models/b.ts");
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    let local = index(&local, &b, Kind::Model, "@t/b", 2);
    let local = local
        .mark_source_missing(&b, Some(bundle(&b, 2)))
        .expect("orphan");
    repo.save(&local).await.expect("seed");
    assert_eq!(
        column(&fx.db(), &b, "state").await.as_deref(),
        Some("OrphanedBundleOnly")
    );
    assert_eq!(
        repo.prune_retired_rows(std::slice::from_ref(&a))
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        repo.prune_retired_rows(&[a.clone(), b.clone()])
            .await
            .expect("prune"),
        1
    );
    assert_eq!(column(&fx.db(), &b, "state").await, None);
    assert!(column(&fx.db(), &a, "state").await.is_some());
}

#[tokio::test]
async fn scenario_46_invalidate_all_is_best_effort() {
    // No catalog file: nothing is created.
    let fx = Fixture::new();
    let lock: Arc<dyn LifecycleLock> = fx.lock.clone();
    let lazy = SqliteExtensionRepository::new(fx.ctx(), lock.clone());
    assert_eq!(lazy.invalidate_all().await, InvalidateOutcome::NoCatalog);
    assert!(!fx.db().exists());

    // Random bytes: moved aside, rebuilt, usable.
    std::fs::write(fx.db(), vec![0xA5_u8; 5000]).expect("garbage");
    assert_eq!(lazy.invalidate_all().await, InvalidateOutcome::Reset);
    assert!(!fx.lock.is_held());
    assert!(lazy.load_all().await.expect("usable").extensions.is_empty());
    let fresh = SqliteExtensionRepository::new(fx.ctx(), lock.clone());
    assert!(fresh
        .load_all()
        .await
        .expect("next command")
        .skipped
        .is_empty());

    // A healthy, populated catalog: the guard keys go, the rows stay.
    let expected = inputs(&fx);
    let a = fx.path("extensions/models/a.ts");
    {
        let _held = fx.lock.hold();
        fresh.mark_populated(&expected).await.expect("mark");
        let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
        fresh.save(&local).await.expect("save");
    }
    assert_eq!(
        fresh.invalidation_guards(&expected).await.expect("guards"),
        GuardVerdict::Fresh
    );
    assert_eq!(fresh.invalidate_all().await, InvalidateOutcome::Invalidated);
    assert_eq!(
        fresh.invalidation_guards(&expected).await.expect("guards"),
        GuardVerdict::Invalidate(GuardReason::NotPopulated)
    );
    assert!(column(&fx.db(), &a, "state").await.is_some());
    assert!(!fx.lock.is_held());
}

//! The warm path's light reads: `load_outline`, `guards_and_outline` and `entries_at`
//! (spec 30 §5.1, §5.7).

use fen_domain::ports::{ExtensionRepository, GuardInputs, GuardVerdict, TypeIndex};
use fen_domain::{Extension, Kind, RowState};

use super::*;

/// A local aggregate with two models, one extension and one build failure.
async fn seeded(fx: &Fixture) -> SqliteExtensionRepository {
    let repo = fx.open().await;
    let a = fx.path("extensions/models/a.ts");
    let b = fx.path("extensions/models/b.ts");
    let e = fx.path("extensions/models/e.ts");
    let broken = fx.path("extensions/models/broken.ts");
    let ext = Extension::local(&fx.root);
    let ext = index(&ext, &a, Kind::Model, "acme/a", 1);
    let ext = index(&ext, &b, Kind::Model, "acme/b", 2);
    let ext = index(&ext, &e, Kind::Extension, "acme/a", 3);
    let ext = ext
        .record_bundle_build_failed(&observe(&ext, &broken, Kind::Model, 4), "boom")
        .expect("build failure");
    let _guard = fx.lock.hold();
    repo.save_all(&[ext]).await.expect("save");
    repo
}

#[tokio::test]
async fn the_outline_is_load_all_without_descriptors() {
    let fx = Fixture::new();
    let repo = seeded(&fx).await;
    let full = repo.load_all().await.expect("load_all");
    let outline = repo.load_outline().await.expect("load_outline");
    assert_eq!(outline.skipped, full.skipped);
    assert_eq!(outline.file_stats, full.file_stats);
    assert_eq!(outline.extensions.len(), full.extensions.len());
    let mut indexed = 0;
    for (light, heavy) in outline.extensions.iter().zip(&full.extensions) {
        assert_eq!(light.id(), heavy.id());
        assert_eq!(light.tags(), heavy.tags());
        for (l, h) in light.sources().zip(heavy.sources()) {
            assert_eq!(l.path(), h.path());
            assert_eq!(l.fingerprint(), h.fingerprint());
            match (l.state(), h.state()) {
                (
                    RowState::Indexed {
                        type_name: lt,
                        bundle: lb,
                        meta: lm,
                    },
                    RowState::Indexed {
                        type_name: ht,
                        bundle: hb,
                        meta: hm,
                    },
                ) => {
                    indexed += 1;
                    assert_eq!((lt, lb), (ht, hb));
                    assert_eq!(lm.declared_version, hm.declared_version);
                    assert_eq!(lm.description, hm.description);
                    assert_eq!(lm.descriptor, "");
                    assert!(!hm.descriptor.is_empty());
                }
                (l, h) => assert_eq!(l, h),
            }
        }
    }
    assert_eq!(indexed, 3);
}

#[tokio::test]
async fn guards_and_outline_read_the_outline_only_when_fresh() {
    let fx = Fixture::new();
    let repo = seeded(&fx).await;
    let inputs = GuardInputs {
        layout_version: "1".to_owned(),
        bundles_base_path: fx.path(".fen/bundles").to_string(),
        source_dirs: vec![fx.path("extensions/models")],
    };
    let (verdict, outline) = repo.guards_and_outline(&inputs).await.expect("read");
    assert!(
        matches!(verdict, GuardVerdict::Invalidate(_)),
        "{verdict:?}"
    );
    assert!(outline.is_none());
    {
        let _guard = fx.lock.hold();
        repo.mark_populated(&inputs).await.expect("populate");
    }
    let (verdict, outline) = repo.guards_and_outline(&inputs).await.expect("read");
    assert_eq!(verdict, GuardVerdict::Fresh);
    assert_eq!(
        outline.expect("an outline when fresh"),
        repo.load_outline().await.expect("outline")
    );
}

#[tokio::test]
async fn entries_at_reads_the_visible_rows_at_the_paths_with_descriptors() {
    let fx = Fixture::new();
    let repo = seeded(&fx).await;
    let a = fx.path("extensions/models/a.ts");
    let e = fx.path("extensions/models/e.ts");
    let broken = fx.path("extensions/models/broken.ts");
    let unknown = fx.path("extensions/models/nowhere.ts");
    let got = repo
        .entries_at(&[e.clone(), broken, unknown, a.clone()])
        .await
        .expect("entries_at");
    let paths: Vec<&CanonicalPath> = got.iter().map(|entry| &entry.source_path).collect();
    assert_eq!(paths, [&a, &e], "visible rows only, by path");
    assert_eq!(got[0].meta.descriptor, "{\"type\":\"acme/a\"}");
    assert_eq!(got[1].kind, Kind::Extension);
    // The same entries as the per-type queries.
    let found = repo
        .find_type(Kind::Model, &ty("acme/a"))
        .await
        .expect("find_type");
    assert_eq!(found.as_ref(), Some(&got[0]));
    assert!(repo.entries_at(&[]).await.expect("empty").is_empty());
}

/// A commit saves the outline it loaded under the lock: unchanged `Indexed` rows keep
/// their stored descriptors (nothing is written for them), a re-indexed row writes its
/// new descriptor, and a row that failed loses its descriptor.
#[tokio::test]
async fn saving_an_outline_keeps_the_stored_descriptors() {
    let fx = Fixture::new();
    let repo = seeded(&fx).await;
    let before = column(&fx.db(), &fx.path("extensions/models/a.ts"), "descriptor").await;
    assert_eq!(before.as_deref(), Some("{\"type\":\"acme/a\"}"));

    let outline = repo.load_outline().await.expect("load_outline");
    let _guard = fx.lock.hold();
    let report = repo
        .save_all(&outline.extensions)
        .await
        .expect("save outline");
    assert_eq!((report.updated, report.inserted, report.deleted), (0, 0, 0));
    assert_eq!(report.unchanged, 4);
    for (path, ty) in [("a.ts", "acme/a"), ("b.ts", "acme/b"), ("e.ts", "acme/a")] {
        let stored = column(
            &fx.db(),
            &fx.path(&format!("extensions/models/{path}")),
            "descriptor",
        )
        .await;
        assert_eq!(stored, Some(format!("{{\"type\":\"{ty}\"}}")), "{path}");
    }

    // b is re-indexed (new content, new descriptor), a fails to build.
    let ext = &outline.extensions[0];
    let b = fx.path("extensions/models/b.ts");
    let a = fx.path("extensions/models/a.ts");
    let ext = index(ext, &b, Kind::Model, "acme/b2", 9);
    let ext = ext
        .record_bundle_build_failed(&observe(&ext, &a, Kind::Model, 8), "boom")
        .expect("build failure");
    let report = repo.save_all(&[ext]).await.expect("save changes");
    assert_eq!(report.updated, 2);
    assert_eq!(
        column(&fx.db(), &b, "descriptor").await.as_deref(),
        Some("{\"type\":\"acme/b2\"}")
    );
    assert_eq!(
        column(&fx.db(), &a, "descriptor").await.as_deref(),
        Some("")
    );
    assert_eq!(
        column(&fx.db(), &fx.path("extensions/models/e.ts"), "descriptor")
            .await
            .as_deref(),
        Some("{\"type\":\"acme/a\"}")
    );
}

/// The warm outline is the outline without the stat records of pulled rows: the warm
/// pass never walks pulled trees, so it never looks them up.
#[tokio::test]
async fn the_warm_outline_has_no_pulled_stat_records() {
    let fx = Fixture::new();
    let repo = seeded(&fx).await;
    let ext = pulled(&fx.root, "@s/n", "2026.01.01.1");
    let p = ext.root().join("models/p.ts");
    let ext = index(&ext, &p, Kind::Model, "s/p", 5);
    {
        let _guard = fx.lock.hold();
        repo.save_all(&[ext]).await.expect("save pulled");
    }
    exec(&fx.db(), "UPDATE bundle_types SET file_stats = 'records'").await;
    let a = fx.path("extensions/models/a.ts");

    let outline = repo.load_outline().await.expect("load_outline");
    assert_eq!(outline.file_stats.len(), 5);
    assert!(outline.file_stats.contains_key(&p));

    let warm = repo.load_warm_outline().await.expect("load_warm_outline");
    assert_eq!(warm.file_stats.len(), 4);
    assert!(!warm.file_stats.contains_key(&p));
    assert_eq!(warm.file_stats.get(&a), outline.file_stats.get(&a));
    assert_eq!(warm.extensions, outline.extensions);
    assert_eq!(warm.skipped, outline.skipped);
}

/// `guards_and_outline` reads a small table in one statement and a larger one in
/// chunks; both give the warm outline.
#[tokio::test]
async fn guards_and_outline_read_small_and_large_tables_alike() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let inputs = GuardInputs {
        layout_version: "1".to_owned(),
        bundles_base_path: fx.path(".fen/bundles").to_string(),
        source_dirs: vec![fx.path("extensions/models")],
    };
    let _guard = fx.lock.hold();
    repo.mark_populated(&inputs).await.expect("populate");
    let mut ext = Extension::local(&fx.root);
    for (n, rows) in [(0_usize, 200_usize), (200, 300)] {
        for i in n..rows {
            let path = fx.path(&format!("extensions/models/t{i:03}.ts"));
            let fp = u8::try_from(i % 200).unwrap_or(0);
            ext = index(&ext, &path, Kind::Model, &format!("acme/t{i:03}"), fp);
        }
        repo.save_all(std::slice::from_ref(&ext))
            .await
            .expect("save");
        let (verdict, outline) = repo.guards_and_outline(&inputs).await.expect("read");
        assert_eq!(verdict, GuardVerdict::Fresh);
        let outline = outline.expect("an outline when fresh");
        assert_eq!(outline.extensions[0].sources().count(), rows);
        assert_eq!(
            outline,
            repo.load_warm_outline().await.expect("warm outline")
        );
    }
}

/// The guard keys the open read serve the first `guards_and_outline` only while no
/// statement ran since; after a write, the guards are read again.
#[tokio::test]
async fn the_guards_read_at_open_are_used_only_before_any_other_statement() {
    let fx = Fixture::new();
    let inputs = GuardInputs {
        layout_version: "1".to_owned(),
        bundles_base_path: fx.path(".fen/bundles").to_string(),
        source_dirs: vec![fx.path("extensions/models")],
    };
    {
        let repo = seeded(&fx).await;
        let _guard = fx.lock.hold();
        repo.mark_populated(&inputs).await.expect("populate");
        repo.close().await;
    }
    let repo = fx.open().await;
    repo.open().await.expect("open");
    let (verdict, outline) = repo.guards_and_outline(&inputs).await.expect("read");
    assert_eq!(verdict, GuardVerdict::Fresh);
    assert_eq!(outline.expect("outline").extensions[0].sources().count(), 4);

    repo.close().await;
    repo.open().await.expect("open again");
    // A write after the open: the guard keys it read are stale now.
    {
        let _guard = fx.lock.hold();
        assert!(matches!(
            repo.invalidate_all().await,
            fen_domain::ports::InvalidateOutcome::Invalidated
        ));
    }
    let (verdict, outline) = repo.guards_and_outline(&inputs).await.expect("read");
    assert!(
        matches!(verdict, GuardVerdict::Invalidate(_)),
        "{verdict:?}"
    );
    assert!(outline.is_none());
}

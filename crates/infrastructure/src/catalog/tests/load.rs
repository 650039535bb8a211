//! Loading rows back (spec 10 §4.3, §5.3) and the read-only opener.

use fen_domain::ports::{ExtensionRepository, RepoError, SkipReason, TypeIndex};
use fen_domain::{Extension, Kind, RowState, TombstoneReason};

use super::*;

#[tokio::test]
async fn stored_states_load_back_as_spec_10_4_3_says() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let root = fx.path(".fen/pulled-extensions/@s/n");
    let row = |file: &str| root.join(&format!("models/{file}"));
    let (w, t1, t2, bundled, stray) = (
        row("w.ts"),
        row("t1.ts"),
        row("t2.ts"),
        row("b.ts"),
        row("s.ts"),
    );
    let fingerprint = fp(1).to_string();
    let base = |path: &CanonicalPath| {
        vec![
            ("source_path", path.to_string()),
            ("kind", "model".to_owned()),
            ("fingerprint", fingerprint.clone()),
            ("extension_name", "@s/n".to_owned()),
            ("extension_version", "2026.01.01.1".to_owned()),
        ]
    };
    let mut rows = Vec::new();
    let mut winner = base(&w);
    winner.extend([
        ("state", "Indexed".to_owned()),
        ("type_normalized", "@s/w".to_owned()),
        ("bundle_path", format!("{w}.bundle.json")),
    ]);
    rows.push(winner);
    for (path, pointer) in [(&t1, w.to_string()), (&t2, row("gone.ts").to_string())] {
        let mut tomb = base(path);
        tomb.extend([
            ("state", "Tombstoned".to_owned()),
            ("state_detail", "renamed".to_owned()),
            ("superseded_by", pointer),
        ]);
        rows.push(tomb);
    }
    let mut interrupted = base(&bundled);
    interrupted.extend([
        ("state", "Bundled".to_owned()),
        ("type_normalized", "@s/b".to_owned()),
    ]);
    rows.push(interrupted);
    let mut misfiled = base(&stray);
    misfiled[3].1 = "@s/other".to_owned();
    rows.push(misfiled);
    for columns in &rows {
        let pairs: Vec<(&str, &str)> = columns.iter().map(|(k, v)| (*k, v.as_str())).collect();
        insert_row(&fx.db(), &pairs).await;
    }

    let loaded = repo.load_all().await.expect("load");
    assert_eq!(loaded.skipped.len(), 1);
    assert_eq!(loaded.skipped[0].reason, SkipReason::Misfiled);
    let ext = &loaded.extensions[0];
    assert_eq!(ext.id().to_string(), "@s/n@2026.01.01.1");
    assert_eq!(ext.root(), &root);
    assert!(matches!(
        ext.source(&t1).expect("t1").state(),
        RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(p) } } if p == &w
    ));
    assert!(matches!(
        ext.source(&t2).expect("t2").state(),
        RowState::Tombstoned {
            reason: TombstoneReason::Renamed { winner: None }
        }
    ));
    assert!(matches!(
        ext.source(&bundled).expect("b").state(),
        RowState::BundleBuildFailed { last_error } if last_error == "interrupted build"
    ));
    assert_eq!(
        repo.load_by_name(&ExtensionName::parse("@s/n").expect("name"))
            .await
            .expect("by name")
            .len(),
        1
    );
    assert!(repo
        .load_by_name(&ExtensionName::parse("@s/zz").expect("name"))
        .await
        .expect("by name")
        .is_empty());
}

#[tokio::test]
async fn two_rows_of_one_pulled_aggregate_claiming_one_slot_load_with_i2() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let root = fx.path(".fen/pulled-extensions/@s/n");
    let (a, b) = (root.join("models/a.ts"), root.join("models/b.ts"));
    for (path, n) in [(&a, 1u8), (&b, 2u8)] {
        let fingerprint = fp(n).to_string();
        let bundle_path = format!("{path}.bundle.json");
        insert_row(
            &fx.db(),
            &[
                ("source_path", path.as_str()),
                ("kind", "model"),
                ("state", "Indexed"),
                ("type_normalized", "@s/x"),
                ("bundle_path", &bundle_path),
                ("fingerprint", &fingerprint),
                ("extension_name", "@s/n"),
                ("extension_version", "2026.01.01.1"),
            ],
        )
        .await;
    }
    let loaded = repo.load_all().await.expect("load does not fail");
    let ext = &loaded.extensions[0];
    assert!(ext.source(&a).expect("a").is_visible());
    assert!(matches!(
        ext.source(&b).expect("b").state(),
        RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(w) } } if w == &a
    ));
}

#[tokio::test]
async fn the_read_only_opener_reads_and_never_writes() {
    let fx = Fixture::new();
    assert!(matches!(
        SqliteExtensionRepository::open_read_only(fx.ctx()).await,
        Err(RepoError::Storage(_))
    ));
    assert!(!fx.db().exists(), "never creates");
    let a = fx.path("extensions/models/a.ts");
    let local = index(&Extension::local(&fx.root), &a, Kind::Model, "@t/a", 1);
    {
        let writer = fx.open().await;
        let _held = fx.lock.hold();
        writer.save(&local).await.expect("seed");
        writer.close().await;
    }
    let before = dump(&fx.db()).await;
    let reader = CatalogOpener::open_read_only(fx.ctx())
        .await
        .expect("read-only");
    assert_eq!(
        reader.load_all().await.expect("load").extensions,
        vec![local.clone()]
    );
    assert!(reader
        .find_type(Kind::Model, &ty("@t/a"))
        .await
        .expect("find")
        .is_some());
    // Even while this process holds the lifecycle lock, a read-only repository refuses.
    let _held = fx.lock.hold();
    assert!(matches!(
        reader.save(&local.tombstone_all()).await,
        Err(RepoError::LockNotHeld)
    ));
    assert!(matches!(
        reader.prune_retired_rows(&[a]).await,
        Err(RepoError::LockNotHeld)
    ));
    assert_eq!(dump(&fx.db()).await, before);
}

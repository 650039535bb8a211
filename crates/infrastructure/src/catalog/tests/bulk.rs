//! Catalogs larger than one read chunk: every bulk read (`load_all`, `load_by_name`,
//! `list_types`, the comparison step of `save_all`) returns exactly what was written,
//! whatever the row sizes, and a save of an unchanged large aggregate writes nothing.

use fen_domain::ports::{ExtensionRepository, FileStats, FileStatsUpdate, TypeIndex};
use fen_domain::{Extension, Kind, RowState, Source};

use super::*;

/// Sources in the big aggregate: several chunks whatever their size.
const SOURCES: usize = 300;

/// The descriptor of source `n`: mostly short, every 37th about 40 KB (so chunk sizes
/// adapt both ways), with text that looks like the packing format.
fn descriptor(n: usize, version: u8) -> String {
    let pad = if n.is_multiple_of(37) { 40_000 } else { n % 5 };
    format!(
        "{{\"type\":\"@t/m{n}\",\"v\":{version},\"note\":\"é]|[1,2]{}\"}}",
        "x".repeat(pad)
    )
}

fn source(fx: &Fixture, n: usize, version: u8) -> Source {
    let local = Extension::local(&fx.root);
    let path = fx.path(&format!("extensions/models/m{n:03}.ts"));
    let obs = observe(&local, &path, Kind::Model, version);
    let state = RowState::Indexed {
        type_name: ty(&format!("@t/m{n:03}")),
        bundle: bundle(&path, version),
        meta: TypeMeta {
            declared_version: format!("{n}"),
            description: format!("model {n} ]["),
            descriptor: descriptor(n, version),
        },
    };
    Source::restore(
        obs.location,
        obs.kind,
        obs.origin,
        Some(obs.fingerprint),
        state,
        obs.mtime,
        None,
    )
}

/// The local aggregate with `SOURCES` indexed models; sources in `changed` are built
/// from content 2 instead of 1.
fn aggregate(fx: &Fixture, changed: &[usize]) -> Extension {
    let local = Extension::local(&fx.root);
    let sources = (0..SOURCES)
        .map(|n| source(fx, n, if changed.contains(&n) { 2 } else { 1 }))
        .collect();
    Extension::new(local.id().clone(), local.origin(), fx.root.clone(), sources).expect("aggregate")
}

#[tokio::test]
async fn reads_larger_than_a_chunk_return_every_row_exactly() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let held = fx.lock.hold();
    let ext = aggregate(&fx, &[]);
    let report = repo.save(&ext).await.expect("save");
    assert_eq!(report.inserted, SOURCES);
    let stats: Vec<FileStatsUpdate> = ext
        .sources()
        .filter(|s| s.path().as_str().ends_with("7.ts"))
        .map(|s| FileStatsUpdate {
            source: s.path().clone(),
            fingerprint: *s.fingerprint().expect("fingerprint"),
            stats: FileStats(format!("stats of {} é]", s.path())),
        })
        .collect();
    assert_eq!(repo.record_file_stats(&stats).await.expect("stats"), 30);
    drop(held);

    let loaded = repo.load_all().await.expect("load");
    assert_eq!(loaded.extensions, vec![ext.clone()]);
    assert!(loaded.skipped.is_empty());
    let expected_stats: Vec<(CanonicalPath, FileStats)> = stats
        .iter()
        .map(|u| (u.source.clone(), u.stats.clone()))
        .collect();
    assert_eq!(
        loaded.file_stats.into_iter().collect::<Vec<_>>(),
        expected_stats
    );

    let by_name = repo.load_by_name(&ext.id().name).await.expect("by name");
    assert_eq!(by_name, vec![ext.clone()]);

    let types = repo.list_types(Kind::Model).await.expect("list");
    assert_eq!(types.len(), SOURCES);
    for (n, entry) in types.iter().enumerate() {
        assert_eq!(entry.type_name.as_str(), format!("@t/m{n:03}"));
        assert_eq!(entry.meta.descriptor, descriptor(n, 1));
        assert_eq!(entry.meta.description, format!("model {n} ]["));
    }
}

#[tokio::test]
async fn saves_larger_than_a_chunk_compare_every_row() {
    let fx = Fixture::new();
    let repo = fx.open().await;
    let _held = fx.lock.hold();
    repo.save(&aggregate(&fx, &[])).await.expect("save");

    let changes = repo.total_changes().await;
    let report = repo.save(&aggregate(&fx, &[])).await.expect("no-op");
    assert_eq!((report.unchanged, report.updated), (SOURCES, 0));
    assert_eq!(repo.total_changes().await, changes);

    // Changed descriptors, one long and one short, far apart in the table.
    let changed = aggregate(&fx, &[74, 298]);
    let report = repo.save(&changed).await.expect("update");
    assert_eq!((report.unchanged, report.updated), (SOURCES - 2, 2));
    assert_eq!(repo.total_changes().await, changes + 2);
    let loaded = repo.load_all().await.expect("load");
    assert_eq!(loaded.extensions, vec![changed]);
}

//! The catalog section of `cargo xtask bench`: medians of the SQLite catalog's hot
//! operations on a 2 000-row catalog in a temp repo (a local aggregate of 1 000
//! sources and 50 pulled aggregates of 20), printed beside their goals.
//!
//! | measure | goal |
//! |---|---|
//! | `save_all` of one pulled aggregate (20 sources), 1 source changed | 2 ms |
//! | `save_all` of the local aggregate (1 000 sources), 1 source changed | 10 ms |
//! | `load_all`, 2 000 rows | 10 ms |
//! | `list_types`, 2 000 visible rows | 3 ms |
//! | opening an up-to-date catalog | 1 ms |
//!
//! Goals are for a release build; a debug build prints its numbers but they say little.
//!
//! The table is measured twice: with the short descriptors above (about 200 bytes, the
//! gated measures), and with rows of the size real catalogs have (a 5 KB descriptor and
//! 0.75 KB of stat records per row, printed for information). Rows that large spill
//! into SQLite overflow pages, which the short rows never exercise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fen_domain::ports::{
    ExtensionRepository, FileStats, FileStatsUpdate, LifecycleLock, TypeIndex,
};
use fen_domain::{
    BundleLocation, CanonicalPath, Extension, ExtensionId, ExtensionName, ExtensionOrigin,
    ExtensionVersion, Kind, Observation, Origin, PathPolicy, RowState, Source, SourceFingerprint,
    SourceLocation, TypeMeta, TypeName,
};
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener, SqliteExtensionRepository};
use fen_infrastructure::locking::FileLifecycleLock;

/// Rows in the benchmark catalog: `LOCAL` local sources plus `PULLED` pulled
/// aggregates of `PULLED_SIZE` sources.
const ROWS: usize = 2000;
const LOCAL: usize = 1000;
const PULLED: usize = 50;
const PULLED_SIZE: usize = 20;
/// Timed runs per measure.
const SAMPLES: usize = 31;

/// One measured operation.
#[derive(Clone, Debug)]
pub struct Measure {
    /// What was measured.
    pub name: &'static str,
    /// Median of the samples.
    pub median: Duration,
    /// The target.
    pub goal: Duration,
}

/// Row sizes of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// About 200-byte descriptors, no stat records: the gated measures.
    Short,
    /// 5 KB descriptors and 0.75 KB stat records, as in real catalogs.
    Real,
}

/// Descriptor padding and stat record size of [`Payload::Real`].
const REAL_DESCRIPTOR: usize = 5000;
const REAL_STATS: usize = 750;

/// Runs the catalog benchmarks and prints the tables. With `check`, a median of the
/// short-row table above its goal is an error.
pub fn run(check: bool) -> Result<(), String> {
    let measures = measure(Payload::Short)?;
    print_table("catalog (2 000 rows)", &measures);
    let real = measure(Payload::Real)?;
    print_table("catalog (2 000 rows of real size, not gated)", &real);
    let slow: Vec<&str> = measures
        .iter()
        .filter(|m| m.median > m.goal)
        .map(|m| m.name)
        .collect();
    if check && !slow.is_empty() {
        return Err(format!(
            "catalog benchmarks above their goal: {}",
            slow.join(", ")
        ));
    }
    Ok(())
}

fn print_table(title: &str, measures: &[Measure]) {
    println!("{title:<52} {:>10} {:>8}", "median", "goal");
    for m in measures {
        let verdict = if m.median <= m.goal { "ok" } else { "SLOW" };
        println!(
            "{:<52} {:>8.3}ms {:>6}ms  {verdict}",
            m.name,
            m.median.as_secs_f64() * 1e3,
            m.goal.as_millis()
        );
    }
}

/// Builds the 2 000-row catalog and measures each operation.
pub fn measure(payload: Payload) -> Result<Vec<Measure>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(measure_async(payload))
}

async fn measure_async(payload: Payload) -> Result<Vec<Measure>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    std::fs::create_dir(dir.path().join(".fen")).map_err(|e| format!(".fen: {e}"))?;
    let root = CanonicalPath::new(dir.path(), PathPolicy::Posix).map_err(|e| e.to_string())?;
    let ctx = CatalogContext {
        repo_root: root.clone(),
        mounts: Vec::new(),
        policy: PathPolicy::Posix,
        db_path: dir.path().join(".fen/_extension_catalog.db"),
    };
    let lock: Arc<dyn LifecycleLock> = Arc::new(FileLifecycleLock::for_repo(
        dir.path(),
        Duration::from_secs(30),
    ));
    let repo = CatalogOpener::open(ctx.clone(), Arc::clone(&lock))
        .await
        .map_err(|e| e.to_string())?
        .repository;
    let guard = lock
        .acquire("cargo xtask bench")
        .await
        .map_err(|e| e.to_string())?;

    let local = local_aggregate(&root, payload)?;
    repo.save(&local).await.map_err(|e| e.to_string())?;
    let mut pulled = Vec::with_capacity(PULLED);
    for k in 0..PULLED {
        let ext = pulled_aggregate(&root, k, payload)?;
        repo.save(&ext).await.map_err(|e| e.to_string())?;
        pulled.push(ext);
    }
    if payload == Payload::Real {
        let stats: Vec<FileStatsUpdate> = std::iter::once(&local)
            .chain(&pulled)
            .flat_map(|ext| ext.sources())
            .filter_map(|source| {
                Some(FileStatsUpdate {
                    source: source.path().clone(),
                    fingerprint: *source.fingerprint()?,
                    stats: FileStats("s".repeat(REAL_STATS)),
                })
            })
            .collect();
        repo.record_file_stats(&stats)
            .await
            .map_err(|e| e.to_string())?;
    }
    let first = LOCAL + (PULLED - 1) * PULLED_SIZE;
    let last_pulled = &pulled[PULLED - 1];
    let save_small = time_saves(
        &repo,
        last_pulled,
        &index(
            last_pulled,
            &pulled_path(&root, PULLED - 1, first),
            first,
            2,
            payload,
        )?,
    )
    .await?;
    let save_large = time_saves(
        &repo,
        &local,
        &index(&local, &local_path(&root, 0), 0, 2, payload)?,
    )
    .await?;
    drop(guard);

    let mut load = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let loaded = repo.load_all().await.map_err(|e| e.to_string())?;
        load.push(started.elapsed());
        let rows: usize = loaded.extensions.iter().map(|e| e.sources().len()).sum();
        if rows != ROWS {
            return Err(format!("load_all returned {rows} rows"));
        }
    }

    let mut list = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let types = repo
            .list_types(Kind::Model)
            .await
            .map_err(|e| e.to_string())?;
        list.push(started.elapsed());
        if types.len() != ROWS {
            return Err(format!("list_types returned {} rows", types.len()));
        }
    }
    repo.close().await;

    let mut open = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let opened = CatalogOpener::open(ctx.clone(), Arc::clone(&lock))
            .await
            .map_err(|e| e.to_string())?;
        open.push(started.elapsed());
        opened.repository.close().await;
    }

    Ok(vec![
        Measure {
            name: "save_all, pulled aggregate of 20, 1 source changed",
            median: save_small,
            goal: Duration::from_millis(2),
        },
        Measure {
            name: "save_all, local aggregate of 1 000, 1 source changed",
            median: save_large,
            goal: Duration::from_millis(10),
        },
        Measure {
            name: "load_all, 2 000 rows",
            median: median(load),
            goal: Duration::from_millis(10),
        },
        Measure {
            name: "list_types(model), 2 000 rows",
            median: median(list),
            goal: Duration::from_millis(3),
        },
        Measure {
            name: "open an up-to-date catalog",
            median: median(open),
            goal: Duration::from_millis(1),
        },
    ])
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Median time of saves that alternate between `a` and `b` (one source differs).
async fn time_saves(
    repo: &SqliteExtensionRepository,
    a: &Extension,
    b: &Extension,
) -> Result<Duration, String> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for sample in 0..SAMPLES {
        let next = if sample % 2 == 0 { b } else { a };
        let started = Instant::now();
        let report = repo.save(next).await.map_err(|e| e.to_string())?;
        samples.push(started.elapsed());
        if report.updated != 1 {
            return Err(format!("expected one update per save, got {report:?}"));
        }
    }
    Ok(median(samples))
}

fn local_path(root: &CanonicalPath, n: usize) -> CanonicalPath {
    root.join(&format!(
        "extensions/models/group{:02}/type{n:04}.ts",
        n % 40
    ))
}

fn pulled_root(root: &CanonicalPath, k: usize) -> CanonicalPath {
    root.join(&format!(".fen/pulled-extensions/@bench/p{k:02}"))
}

fn pulled_path(root: &CanonicalPath, k: usize, n: usize) -> CanonicalPath {
    pulled_root(root, k).join(&format!("models/type{n:04}.ts"))
}

/// The local aggregate with `LOCAL` indexed model sources.
fn local_aggregate(root: &CanonicalPath, payload: Payload) -> Result<Extension, String> {
    let local = Extension::local(root);
    let sources = (0..LOCAL)
        .map(|n| indexed_source(root, &local_path(root, n), n, Origin::Local, payload))
        .collect::<Result<Vec<Source>, String>>()?;
    Extension::new(local.id().clone(), local.origin(), root.clone(), sources)
        .map_err(|e| e.to_string())
}

/// Pulled aggregate `@bench/p<k>` with `PULLED_SIZE` indexed model sources.
fn pulled_aggregate(root: &CanonicalPath, k: usize, payload: Payload) -> Result<Extension, String> {
    let ext_root = pulled_root(root, k);
    let first = LOCAL + k * PULLED_SIZE;
    let sources = (first..first + PULLED_SIZE)
        .map(|n| {
            indexed_source(
                &ext_root,
                &pulled_path(root, k, n),
                n,
                Origin::Pulled,
                payload,
            )
        })
        .collect::<Result<Vec<Source>, String>>()?;
    let name = ExtensionName::parse(&format!("@bench/p{k:02}")).map_err(|e| e.to_string())?;
    let version = ExtensionVersion::parse("2026.01.01.1").map_err(|e| e.to_string())?;
    Extension::new(
        ExtensionId::new(name, version),
        ExtensionOrigin::Pulled,
        ext_root,
        sources,
    )
    .map_err(|e| e.to_string())
}

fn indexed_source(
    ext_root: &CanonicalPath,
    path: &CanonicalPath,
    n: usize,
    origin: Origin,
    payload: Payload,
) -> Result<Source, String> {
    let (obs, type_name, bundle, meta) = parts(ext_root, path, n, 1, origin, payload)?;
    let state = RowState::Indexed {
        type_name,
        bundle,
        meta,
    };
    Ok(Source::restore(
        obs.location,
        obs.kind,
        obs.origin,
        Some(obs.fingerprint),
        state,
        obs.mtime,
        None,
    ))
}

/// `ext` with `path` rebuilt from content `version` (one source changed).
fn index(
    ext: &Extension,
    path: &CanonicalPath,
    n: usize,
    version: u8,
    payload: Payload,
) -> Result<Extension, String> {
    let origin = match ext.origin() {
        ExtensionOrigin::Local => Origin::Local,
        ExtensionOrigin::Pulled => Origin::Pulled,
    };
    let (obs, type_name, bundle, meta) = parts(ext.root(), path, n, version, origin, payload)?;
    ext.observe_fresh_source(&obs, type_name, bundle)
        .and_then(|e| e.record_indexed(path, meta))
        .map_err(|e| e.to_string())
}

fn parts(
    root: &CanonicalPath,
    path: &CanonicalPath,
    n: usize,
    version: u8,
    origin: Origin,
    payload: Payload,
) -> Result<(Observation, TypeName, BundleLocation, TypeMeta), String> {
    let mut digest = [version; 32];
    digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let fingerprint = SourceFingerprint::Content(digest);
    let obs = Observation {
        location: SourceLocation::from_canonical(path.clone(), root.clone()),
        kind: Kind::Model,
        origin,
        fingerprint,
        mtime: Some("2026-01-01T00:00:00.000Z".to_owned()),
    };
    let type_name =
        TypeName::parse(&format!("@bench/aws/type{n:04}")).map_err(|e| e.to_string())?;
    let bundle = BundleLocation {
        path: CanonicalPath::from_text(&format!("{path}.bundle.json"), PathPolicy::Posix)
            .map_err(|e| e.to_string())?,
        fingerprint,
    };
    let meta = TypeMeta {
        declared_version: "2026.01.01".to_owned(),
        description: format!("benchmark type {n} with a description of ordinary length"),
        descriptor: format!(
            "{{\"type\":\"@bench/aws/type{n:04}\",\"version\":\"2026.01.01\",\"methods\":[\"create\",\"delete\",\"get\",\"list\"],\"globalArguments\":{{\"type\":\"object\",\"properties\":{{\"region\":{{\"type\":\"string\"}}}}}}{}}}",
            match payload {
                Payload::Short => String::new(),
                // JSON-like text, quotes included, as real descriptors have.
                Payload::Real => ",\"padding\":\"p\"".repeat(REAL_DESCRIPTOR / 14),
            }
        ),
    };
    Ok((obs, type_name, bundle, meta))
}

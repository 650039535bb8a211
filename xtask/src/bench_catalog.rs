//! The catalog section of `cargo xtask bench`: medians of the SQLite catalog's hot
//! operations on a 2 000-row catalog in a temp repo, printed beside their goals.
//!
//! | measure | goal |
//! |---|---|
//! | `save_all` of one aggregate (2 000 sources), 1 source changed | 2 ms |
//! | `load_all`, 2 000 rows | 10 ms |
//! | `list_types`, 2 000 visible rows | 3 ms |
//! | opening an up-to-date catalog | 1 ms |
//!
//! Goals are for a release build; a debug build prints its numbers but they say little.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fen_domain::ports::{ExtensionRepository, LifecycleLock, TypeIndex};
use fen_domain::{
    BundleLocation, CanonicalPath, Extension, Kind, Observation, Origin, PathPolicy, RowState,
    Source, SourceFingerprint, SourceLocation, TypeMeta, TypeName,
};
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener};
use fen_infrastructure::locking::FileLifecycleLock;

/// Rows in the benchmark catalog.
const ROWS: usize = 2000;
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

/// Runs the catalog benchmarks and prints the table. With `check`, a median above its
/// goal is an error.
pub fn run(check: bool) -> Result<(), String> {
    let measures = measure()?;
    println!("{:<52} {:>10} {:>8}", "catalog (2 000 rows)", "median", "goal");
    for m in &measures {
        let verdict = if m.median <= m.goal { "ok" } else { "SLOW" };
        println!(
            "{:<52} {:>8.3}ms {:>6}ms  {verdict}",
            m.name,
            m.median.as_secs_f64() * 1e3,
            m.goal.as_millis()
        );
    }
    let slow: Vec<&str> = measures
        .iter()
        .filter(|m| m.median > m.goal)
        .map(|m| m.name)
        .collect();
    if check && !slow.is_empty() {
        return Err(format!("catalog benchmarks above their goal: {}", slow.join(", ")));
    }
    Ok(())
}

/// Builds the 2 000-row catalog and measures each operation.
pub fn measure() -> Result<Vec<Measure>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(measure_async())
}

async fn measure_async() -> Result<Vec<Measure>, String> {
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
    let guard = lock.acquire("cargo xtask bench").await.map_err(|e| e.to_string())?;

    let base = local_aggregate(&root, 1)?;
    let edited = index(&base, &source_path(&root, 0), 0, 2)?;
    repo.save(&base).await.map_err(|e| e.to_string())?;

    let mut save = Vec::with_capacity(SAMPLES);
    for sample in 0..SAMPLES {
        let next = if sample % 2 == 0 { &edited } else { &base };
        let started = Instant::now();
        let report = repo.save(next).await.map_err(|e| e.to_string())?;
        save.push(started.elapsed());
        if report.updated != 1 {
            return Err(format!("expected one update per save, got {report:?}"));
        }
    }
    drop(guard);

    let mut load = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let loaded = repo.load_all().await.map_err(|e| e.to_string())?;
        load.push(started.elapsed());
        if loaded.extensions[0].sources().len() != ROWS {
            return Err("load_all lost rows".to_owned());
        }
    }

    let mut list = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let types = repo.list_types(Kind::Model).await.map_err(|e| e.to_string())?;
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
            name: "save_all, one aggregate, 1 of 2 000 sources changed",
            median: median(save),
            goal: Duration::from_millis(2),
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

fn source_path(root: &CanonicalPath, n: usize) -> CanonicalPath {
    root.join(&format!("extensions/models/group{:02}/type{n:04}.ts", n % 40))
}

/// The local aggregate with `ROWS` indexed model sources, content version `version`.
fn local_aggregate(root: &CanonicalPath, version: u8) -> Result<Extension, String> {
    let sources = (0..ROWS)
        .map(|n| {
            let path = source_path(root, n);
            let (obs, type_name, bundle, meta) = parts(root, &path, n, version)?;
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
        })
        .collect::<Result<Vec<Source>, String>>()?;
    let local = Extension::local(root);
    Extension::new(local.id().clone(), local.origin(), root.clone(), sources)
        .map_err(|e| e.to_string())
}

/// `ext` with `path` rebuilt from content `version` (one source changed).
fn index(ext: &Extension, path: &CanonicalPath, n: usize, version: u8) -> Result<Extension, String> {
    let (obs, type_name, bundle, meta) = parts(ext.root(), path, n, version)?;
    ext.observe_fresh_source(&obs, type_name, bundle)
        .and_then(|e| e.record_indexed(path, meta))
        .map_err(|e| e.to_string())
}

fn parts(
    root: &CanonicalPath,
    path: &CanonicalPath,
    n: usize,
    version: u8,
) -> Result<(Observation, TypeName, BundleLocation, TypeMeta), String> {
    let mut digest = [version; 32];
    digest[..8].copy_from_slice(&(n as u64).to_le_bytes());
    let fingerprint = SourceFingerprint::Content(digest);
    let obs = Observation {
        location: SourceLocation::from_canonical(path.clone(), root.clone()),
        kind: Kind::Model,
        origin: Origin::Local,
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
            "{{\"type\":\"@bench/aws/type{n:04}\",\"version\":\"2026.01.01\",\"methods\":[\"create\",\"delete\",\"get\",\"list\"],\"globalArguments\":{{\"type\":\"object\",\"properties\":{{\"region\":{{\"type\":\"string\"}}}}}}}}"
        ),
    };
    Ok((obs, type_name, bundle, meta))
}

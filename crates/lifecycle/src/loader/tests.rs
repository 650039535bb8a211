//! Scenarios 17–20 of spec 30 §9 against in-memory doubles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::indexing::BundleStoreError;
use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, ExportSnapshot, HostApi, RuntimeError,
};
use fen_domain::ports::{RepoError, StagedBundle};
use fen_domain::{BundleLocation, CanonicalPath, PathPolicy, SourceFingerprint, TypeMeta};
use tokio::sync::Notify;

use super::*;

fn entry(n: usize) -> TypeEntry {
    let path = |s: String| CanonicalPath::from_text(&s, PathPolicy::Posix).unwrap();
    TypeEntry {
        source_path: path(format!("/r/extensions/models/t{n}.ts")),
        kind: Kind::Model,
        type_name: TypeName::parse(&format!("@fx/t/{n}")).unwrap(),
        bundle: BundleLocation {
            path: path(format!("/r/.fen/bundles/local/models/t{n}.ts.bundle.json")),
            fingerprint: SourceFingerprint::Content([1; 32]),
        },
        meta: TypeMeta::default(),
    }
}

struct Index(usize);

#[async_trait]
impl TypeIndex for Index {
    async fn find_type(&self, _kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        Ok((0..self.0).map(entry).find(|e| &e.type_name == ty))
    }
    async fn list_types(&self, _kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        Ok((0..self.0).map(entry).collect())
    }
    async fn extensions_for(&self, _base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        Ok(Vec::new())
    }
}

struct Instance {
    exports: Vec<ExportSnapshot>,
    bytes: usize,
}

#[async_trait]
impl TypeInstance for Instance {
    fn exports(&self) -> &[ExportSnapshot] {
        &self.exports
    }
    async fn call(
        &self,
        _t: &CallTarget,
        _i: CallInput,
        _h: Arc<dyn HostApi>,
        _l: SandboxLimits,
    ) -> Result<serde_json::Value, CallError> {
        Ok(serde_json::Value::Null)
    }
    fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

/// Counts instantiations; can fail the first call, or wait for a gate.
#[derive(Default)]
struct Runtime {
    calls: AtomicUsize,
    fail_first: bool,
    gate: Option<Arc<Notify>>,
    bytes: usize,
    method: std::sync::Mutex<String>,
}

#[async_trait]
impl BundleRuntime for Runtime {
    async fn instantiate(
        &self,
        req: InstantiateRequest,
    ) -> Result<Arc<dyn TypeInstance>, RuntimeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.notified().await;
        }
        if self.fail_first && n == 0 {
            return Err(RuntimeError::Unavailable);
        }
        // The bundle "contents" is its path: derive the type from the file name.
        let file = &req.bundles[0].contents;
        let n: String = file
            .rsplit('/')
            .next()
            .unwrap()
            .chars()
            .skip(1)
            .take_while(char::is_ascii_digit)
            .collect();
        let method = self.method.lock().unwrap().clone();
        Ok(Arc::new(Instance {
            exports: vec![ExportSnapshot {
                bundle: 0,
                key: "model".into(),
                value: serde_json::json!({"type": format!("@fx/t/{n}"), "methods": {method: {}}}),
            }],
            bytes: self.bytes,
        }))
    }
}

fn loader(n_types: usize, runtime: Arc<Runtime>, budget: CacheBudget) -> Arc<TypeLoader> {
    TypeLoader::new(
        Arc::new(Index(n_types)),
        Arc::new(Store::default()),
        runtime,
        SandboxLimits::evaluation(),
        budget,
        Arc::new(Stats::default()),
    )
}

fn ty(n: usize) -> TypeName {
    TypeName::parse(&format!("@fx/t/{n}")).unwrap()
}

#[tokio::test]
async fn scenario_17_concurrent_callers_share_one_load() {
    let gate = Arc::new(Notify::new());
    let runtime = Arc::new(Runtime {
        gate: Some(Arc::clone(&gate)),
        ..Runtime::default()
    });
    let loader = loader(3, Arc::clone(&runtime), CacheBudget::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let loader = Arc::clone(&loader);
        tasks.push(tokio::spawn(async move {
            loader.ensure_type_loaded(Kind::Model, &ty(1)).await
        }));
    }
    // Let every task reach the shared load, then open the gate.
    while runtime.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    gate.notify_one();
    let mut loaded = Vec::new();
    for task in tasks {
        loaded.push(task.await.unwrap().unwrap());
    }
    assert_eq!(runtime.calls.load(Ordering::SeqCst), 1);
    assert!(loaded.iter().all(|l| Arc::ptr_eq(l, &loaded[0])));
}

#[tokio::test]
async fn scenario_18_failures_are_not_cached() {
    let runtime = Arc::new(Runtime {
        fail_first: true,
        ..Runtime::default()
    });
    let loader = loader(2, Arc::clone(&runtime), CacheBudget::default());
    let first = loader.ensure_type_loaded(Kind::Model, &ty(0)).await;
    assert!(matches!(first, Err(LoadError::Evaluation(_))));
    let second = loader.ensure_type_loaded(Kind::Model, &ty(0)).await;
    assert!(second.is_ok());
    assert_eq!(runtime.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn scenario_19_a_caller_during_a_reload_sees_the_reloaded_type() {
    let gate = Arc::new(Notify::new());
    let runtime = Arc::new(Runtime {
        gate: Some(Arc::clone(&gate)),
        ..Runtime::default()
    });
    *runtime.method.lock().unwrap() = "old".into();
    let loader = loader(1, Arc::clone(&runtime), CacheBudget::default());
    gate.notify_one();
    let first = loader
        .ensure_type_loaded(Kind::Model, &ty(0))
        .await
        .unwrap();
    assert!(first.instance.exports()[0].value["methods"]
        .get("old")
        .is_some());

    // A new extension method appears: invalidate and start a reload that waits.
    *runtime.method.lock().unwrap() = "new".into();
    loader.invalidate_type(Kind::Model, &ty(0));
    let reloading = {
        let loader = Arc::clone(&loader);
        tokio::spawn(async move { loader.ensure_type_loaded(Kind::Model, &ty(0)).await })
    };
    while runtime.calls.load(Ordering::SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    let during = {
        let loader = Arc::clone(&loader);
        tokio::spawn(async move { loader.ensure_type_loaded(Kind::Model, &ty(0)).await })
    };
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    assert!(
        !during.is_finished(),
        "the caller must wait for the pending reload"
    );
    gate.notify_one();
    let during = during.await.unwrap().unwrap();
    let reloaded = reloading.await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&during, &reloaded));
    assert!(during.instance.exports()[0].value["methods"]
        .get("new")
        .is_some());
}

#[tokio::test]
async fn scenario_20_the_byte_budget_holds_after_every_load() {
    let runtime = Arc::new(Runtime {
        bytes: 1 << 20,
        ..Runtime::default()
    });
    let budget = CacheBudget {
        bytes: 16 << 20,
        entries: 1000,
    };
    let loader = loader(116, Arc::clone(&runtime), budget);
    for n in 0..116 {
        loader
            .ensure_type_loaded(Kind::Model, &ty(n))
            .await
            .unwrap();
        assert!(loader.cache_stats().bytes <= 16 << 20);
    }
    let stats = loader.cache_stats();
    assert!(stats.evictions > 0);
    assert_eq!(stats.hits + stats.misses, 116);
    loader
        .ensure_type_loaded(Kind::Model, &ty(0))
        .await
        .unwrap();
    assert_eq!(
        loader.cache_stats().misses,
        117,
        "the first type was evicted"
    );
    loader
        .ensure_type_loaded(Kind::Model, &ty(0))
        .await
        .unwrap();
    assert_eq!(loader.cache_stats().hits, 1);
}

#[tokio::test]
async fn unknown_types_get_suggestions() {
    let loader = loader(3, Arc::new(Runtime::default()), CacheBudget::default());
    let error = loader
        .ensure_type_loaded(Kind::Model, &TypeName::parse("@fx/t/11").unwrap())
        .await;
    match error {
        Err(LoadError::UnknownType { suggestions, .. }) => {
            assert!(suggestions.contains(&"@fx/t/1".to_owned()))
        }
        Err(other) => panic!("unexpected {other:?}"),
        Ok(_) => panic!("unexpected success"),
    }
}

/// A store whose bundle "contents" is its path. A flaky one (`published: Some`) has
/// only the files a rebuild "published".
#[derive(Default)]
struct Store {
    published: Option<std::sync::Mutex<Vec<String>>>,
}

impl Store {
    fn flaky() -> Store {
        Store {
            published: Some(std::sync::Mutex::default()),
        }
    }

    /// Makes the file at `path` present (a flaky store only).
    fn publish_path(&self, path: String) {
        if let Some(published) = &self.published {
            published.lock().unwrap().push(path);
        }
    }
}

#[async_trait]
impl BundleStore for Store {
    async fn is_usable(&self, _bundle: &BundleLocation) -> bool {
        true
    }
    async fn publish(&self, _staged: &StagedBundle) -> Result<(), BundleStoreError> {
        Ok(())
    }
    async fn evict(&self, _path: &CanonicalPath) -> Result<(), BundleStoreError> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<CanonicalPath>, BundleStoreError> {
        Ok(Vec::new())
    }
    async fn open(&self, bundle: &BundleLocation) -> Option<String> {
        let path = bundle.path.to_string();
        match &self.published {
            None => Some(path),
            Some(published) => published.lock().unwrap().contains(&path).then_some(path),
        }
    }
    async fn clear(&self) -> Result<(), BundleStoreError> {
        Ok(())
    }
}

/// Records rebuilds; "publishes" the row's bundle unless told to fail or to leave it
/// unusable.
struct Rebuilder {
    store: Arc<Store>,
    calls: AtomicUsize,
    outcome: &'static str,
    mismatches: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait]
impl BundleRebuilder for Rebuilder {
    async fn rebuild(&self, entry: &TypeEntry) -> Result<Rebuilt, LoadError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.outcome {
            "publish" => {
                self.store.publish_path(entry.bundle.path.to_string());
                Ok(Rebuilt::Indexed(entry.clone()))
            }
            "unusable" => Ok(Rebuilt::Indexed(entry.clone())),
            _ => Ok(Rebuilt::Failed {
                state: "ValidationFailed".to_owned(),
                last_error: "top level threw".to_owned(),
            }),
        }
    }
    async fn record_mismatch(&self, entry: &TypeEntry, last_error: &str) -> Result<(), LoadError> {
        self.mismatches
            .lock()
            .unwrap()
            .push((entry.type_name.to_string(), last_error.to_owned()));
        Ok(())
    }
}

fn flaky_loader(outcome: &'static str) -> (Arc<TypeLoader>, Arc<Rebuilder>) {
    let store = Arc::new(Store::flaky());
    let loader = TypeLoader::new(
        Arc::new(Index(1)),
        store.clone(),
        Arc::new(Runtime::default()),
        SandboxLimits::evaluation(),
        CacheBudget::default(),
        Arc::new(Stats::default()),
    );
    let rebuilder = Arc::new(Rebuilder {
        store,
        calls: AtomicUsize::new(0),
        outcome,
        mismatches: std::sync::Mutex::default(),
    });
    loader.set_rebuilder(rebuilder.clone());
    (loader, rebuilder)
}

#[tokio::test]
async fn a_missing_bundle_is_rebuilt_then_loaded() {
    let (loader, rebuilder) = flaky_loader("publish");
    loader
        .ensure_type_loaded(Kind::Model, &ty(0))
        .await
        .expect("loads after the rebuild");
    assert_eq!(rebuilder.calls.load(Ordering::SeqCst), 1);
    // Cached now: no second rebuild.
    loader
        .ensure_type_loaded(Kind::Model, &ty(0))
        .await
        .unwrap();
    assert_eq!(rebuilder.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_bundle_still_unusable_after_its_rebuild_is_tampered() {
    let (loader, _) = flaky_loader("unusable");
    let error = loader.ensure_type_loaded(Kind::Model, &ty(0)).await;
    assert!(
        matches!(error, Err(LoadError::BundleTampered { .. })),
        "{:?}",
        error.err()
    );
}

#[tokio::test]
async fn a_rebuild_that_fails_makes_the_type_unavailable() {
    let (loader, _) = flaky_loader("fail");
    match loader.ensure_type_loaded(Kind::Model, &ty(0)).await {
        Err(LoadError::Unavailable {
            state, last_error, ..
        }) => {
            assert_eq!(state, "ValidationFailed");
            assert_eq!(last_error, "top level threw");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("loaded"),
    }
}

#[tokio::test]
async fn without_a_rebuilder_a_missing_bundle_is_unusable() {
    let loader = TypeLoader::new(
        Arc::new(Index(1)),
        Arc::new(Store::flaky()),
        Arc::new(Runtime::default()),
        SandboxLimits::evaluation(),
        CacheBudget::default(),
        Arc::new(Stats::default()),
    );
    let error = loader.ensure_type_loaded(Kind::Model, &ty(0)).await;
    assert!(
        matches!(error, Err(LoadError::BundleUnusable { .. })),
        "{:?}",
        error.err()
    );
}

#[tokio::test]
async fn scenario_21_workload_w_hit_rate() {
    let runtime = Arc::new(Runtime::default());
    let budget = CacheBudget {
        bytes: usize::MAX,
        entries: 32,
    };
    let loader = loader(Workload::W.types, Arc::clone(&runtime), budget);
    for n in Workload::W.sequence() {
        loader
            .ensure_type_loaded(Kind::Model, &ty(n))
            .await
            .unwrap();
    }
    let stats = loader.cache_stats();
    assert_eq!(stats.hits + stats.misses, Workload::W.calls);
    assert_eq!(
        runtime.calls.load(Ordering::SeqCst),
        stats.misses,
        "one evaluation per miss"
    );
    assert!(stats.entries <= 32);
    let rate = stats.hits as f64 / Workload::W.calls as f64;
    assert!(rate >= 0.90, "hit rate {rate} below 0.90 ({stats:?})");
}

/// An index whose one row claims a type its bundle does not declare.
struct LyingIndex;

#[async_trait]
impl TypeIndex for LyingIndex {
    async fn find_type(&self, _kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        // The row says `@fx/t/9`; its bundle (`t0`) declares `@fx/t/0`.
        Ok(
            (ty == &TypeName::parse("@fx/t/9").unwrap()).then(|| TypeEntry {
                type_name: ty.clone(),
                ..entry(0)
            }),
        )
    }
    async fn list_types(&self, _kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        Ok(Vec::new())
    }
    async fn extensions_for(&self, _base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_bundle_declaring_another_type_is_recorded_for_a_rebuild() {
    let store = Arc::new(Store::flaky());
    store.publish_path(entry(0).bundle.path.to_string());
    let loader = TypeLoader::new(
        Arc::new(LyingIndex),
        store.clone(),
        Arc::new(Runtime::default()),
        SandboxLimits::evaluation(),
        CacheBudget::default(),
        Arc::new(Stats::default()),
    );
    let rebuilder = Arc::new(Rebuilder {
        store,
        calls: AtomicUsize::new(0),
        outcome: "publish",
        mismatches: std::sync::Mutex::default(),
    });
    loader.set_rebuilder(rebuilder.clone());
    let ty9 = TypeName::parse("@fx/t/9").unwrap();
    match loader.ensure_type_loaded(Kind::Model, &ty9).await {
        Err(LoadError::CatalogMismatch { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), ("@fx/t/9", "@fx/t/0"));
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("loaded"),
    }
    assert_eq!(
        rebuilder.mismatches.lock().unwrap().as_slice(),
        [(
            "@fx/t/9".to_owned(),
            "the bundle of @fx/t/9 now declares @fx/t/0".to_owned()
        )]
    );
    // Not memoized: the next call evaluates (and records) again.
    assert!(loader.ensure_type_loaded(Kind::Model, &ty9).await.is_err());
    assert_eq!(rebuilder.mismatches.lock().unwrap().len(), 2);
}

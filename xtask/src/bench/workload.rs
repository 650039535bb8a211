//! The LRU hit rate on workload W (spec 30 §8.3): the real `TypeLoader` and its cache,
//! driven by the seeded sequence of `fen_lifecycle::loader::Workload::W`, over an
//! in-memory catalog of 116 types and a runtime that counts instantiations.
//!
//! The hit rate depends only on the cache policy and the access sequence, not on what
//! an evaluation costs, so the sandbox is replaced by a counter; the measure is exact and
//! the same on every machine. The cache has 32 entries and a byte budget that does not
//! bind, as the spec fixes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::indexing::BundleStoreError;
use fen_domain::ports::runtime::{
    CallError, CallInput, CallTarget, ExportSnapshot, HostApi, InstantiateRequest, RuntimeError,
};
use fen_domain::ports::{
    BundleRuntime, BundleStore, RepoError, SandboxLimits, StagedBundle, TypeEntry, TypeIndex,
    TypeInstance,
};
use fen_domain::{
    BundleLocation, CanonicalPath, Kind, PathPolicy, SourceFingerprint, TypeMeta, TypeName,
};
use fen_lifecycle::loader::{CacheBudget, TypeLoader, Workload};
use fen_lifecycle::stats::Stats;

/// What the workload measured.
#[derive(Debug)]
pub struct Outcome {
    /// `hits / calls`.
    pub hit_rate: f64,
    /// Cache hits.
    pub hits: usize,
    /// Cache misses (each one an evaluation).
    pub misses: usize,
    /// Evictions.
    pub evictions: usize,
}

/// Runs workload W through the loader.
pub fn run() -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let w = Workload::W;
        let runtime = Arc::new(CountingRuntime::default());
        let loader = TypeLoader::new(
            Arc::new(Catalog(w.types)),
            Arc::new(PathStore),
            Arc::clone(&runtime) as Arc<dyn BundleRuntime>,
            SandboxLimits::evaluation(),
            CacheBudget {
                bytes: usize::MAX,
                entries: 32,
            },
            Arc::new(Stats::default()),
        );
        for n in w.sequence() {
            loader
                .ensure_type_loaded(Kind::Model, &type_name(n))
                .await
                .map_err(|e| format!("workload W: {e}"))?;
        }
        let stats = loader.cache_stats();
        let evaluations = runtime.0.load(Ordering::SeqCst);
        if stats.hits + stats.misses != w.calls || evaluations != stats.misses {
            return Err(format!(
                "workload W: inconsistent counters: {stats:?}, {evaluations} evaluations for {} calls",
                w.calls
            ));
        }
        Ok(Outcome {
            hit_rate: stats.hits as f64 / w.calls as f64,
            hits: stats.hits,
            misses: stats.misses,
            evictions: stats.evictions,
        })
    })
}

fn type_name(n: usize) -> TypeName {
    TypeName::parse(&format!("@w/t/{n}")).expect("a valid type name")
}

fn entry(n: usize) -> TypeEntry {
    let path =
        |s: String| CanonicalPath::from_text(&s, PathPolicy::Posix).expect("a canonical path");
    TypeEntry {
        source_path: path(format!("/w/extensions/models/t{n}.ts")),
        kind: Kind::Model,
        type_name: type_name(n),
        bundle: BundleLocation {
            path: path(format!("/w/.fen/bundles/t{n}")),
            fingerprint: SourceFingerprint::Content([0; 32]),
        },
        meta: TypeMeta::default(),
    }
}

/// `n` model types `@w/t/0..n`.
struct Catalog(usize);

#[async_trait]
impl TypeIndex for Catalog {
    async fn find_type(&self, _kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        let n = ty.as_str().rsplit('/').next().and_then(|n| n.parse().ok());
        Ok(n.filter(|&n| n < self.0).map(entry))
    }
    async fn list_types(&self, _kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        Ok((0..self.0).map(entry).collect())
    }
    async fn extensions_for(&self, _base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        Ok(Vec::new())
    }
}

/// A store whose bundle "contents" is the bundle's number.
struct PathStore;

#[async_trait]
impl BundleStore for PathStore {
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
        bundle.path.as_str().rsplit("/t").next().map(str::to_owned)
    }
    async fn clear(&self) -> Result<(), BundleStoreError> {
        Ok(())
    }
}

/// Counts instantiations; each instance declares the type its bundle names.
#[derive(Default)]
struct CountingRuntime(AtomicUsize);

#[async_trait]
impl BundleRuntime for CountingRuntime {
    async fn instantiate(
        &self,
        req: InstantiateRequest,
    ) -> Result<Arc<dyn TypeInstance>, RuntimeError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        let n = &req.bundles[0].contents;
        Ok(Arc::new(Instance(vec![ExportSnapshot {
            bundle: 0,
            key: "model".to_owned(),
            value: serde_json::json!({ "type": format!("@w/t/{n}") }),
        }])))
    }
}

struct Instance(Vec<ExportSnapshot>);

#[async_trait]
impl TypeInstance for Instance {
    fn exports(&self) -> &[ExportSnapshot] {
        &self.0
    }
    async fn call(
        &self,
        _target: &CallTarget,
        _input: CallInput,
        _host: Arc<dyn HostApi>,
        _limits: SandboxLimits,
    ) -> Result<serde_json::Value, CallError> {
        Ok(serde_json::Value::Null)
    }
    fn heap_bytes(&self) -> usize {
        1024
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn workload_w_meets_the_hit_rate_goal() {
        let outcome = super::run().expect("the workload runs");
        eprintln!("{outcome:?}");
        assert!(outcome.hit_rate >= 0.90, "{outcome:?}");
        assert_eq!(outcome.hits + outcome.misses, 10_000);
    }
}

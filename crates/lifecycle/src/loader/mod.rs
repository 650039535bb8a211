//! `ensure_type_loaded` and the evaluated-bundle LRU (spec 30 §5.3–§5.4): loads one
//! type's primary bundle plus the extension bundles targeting it into one sandboxed
//! instance, on demand.
//!
//! Concurrent callers for one type share one load (a `futures::future::Shared` in the
//! pending map); the pending check comes before the cache check, so a caller during a
//! reload gets the reloaded type. Failures are never cached: the pending slot is
//! removed and the next call retries. The cache holds instances in LRU order within a
//! byte budget (their live heap) and an entry budget; a caller keeps its instance
//! alive through its `Arc` even after eviction.
//!
//! A bundle that is missing or unusable when a load opens it is rebuilt through the
//! [`BundleRebuilder`] the composition root installs (spec 30 §5.3 step 4a: a warm
//! pass that commits under the lifecycle lock); the published file is then opened
//! again, and a second failure is `BundleTampered`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use fen_domain::ports::runtime::{BundleFile, InstantiateRequest};
use fen_domain::ports::{
    BundleRuntime, BundleStore, SandboxLimits, TypeEntry, TypeIndex, TypeInstance,
};
use fen_domain::{Kind, TypeName};
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::registry::suggestions;
use crate::stats::Stats;

mod workload;
pub use workload::Workload;

/// A loaded type: its row, the rows of the extensions attached, and the instance.
pub struct LoadedType {
    /// The primary row.
    pub entry: TypeEntry,
    /// Extension rows, ascending source path.
    pub extensions: Vec<TypeEntry>,
    /// The sandbox instance holding all their bundles.
    pub instance: Arc<dyn TypeInstance>,
}

/// A load failed. Cloneable, because every waiter of a shared load receives it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// No visible type of that name.
    #[error("unknown type \"{name}\"")]
    UnknownType {
        /// The name.
        name: String,
        /// Up to three close names.
        suggestions: Vec<String>,
    },
    /// A bundle file is missing or unusable and no rebuilder is installed.
    #[error("bundle {path} is missing or unusable")]
    BundleUnusable {
        /// The bundle.
        path: String,
    },
    /// A bundle was rebuilt and published, and still cannot be opened.
    #[error("bundle {path} was rebuilt but still fails its integrity check")]
    BundleTampered {
        /// The bundle.
        path: String,
    },
    /// The type's row is in a failure state (after a rebuild, for instance).
    #[error("type \"{name}\" is unavailable: its source {source_path} is {state} ({last_error})")]
    Unavailable {
        /// The type.
        name: String,
        /// The source.
        source_path: String,
        /// The row state.
        state: String,
        /// The row's error.
        last_error: String,
    },
    /// Evaluation in the sandbox failed.
    #[error("{0}")]
    Evaluation(String),
    /// The evaluated export declares another type than its catalog row.
    #[error("the bundle of {expected} now declares {found}")]
    CatalogMismatch {
        /// The row's type.
        expected: String,
        /// The export's type.
        found: String,
    },
    /// The catalog failed.
    #[error("{0}")]
    Catalog(String),
}

/// Cache counters (spec 30 §5.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads answered from the cache.
    pub hits: usize,
    /// Loads that evaluated.
    pub misses: usize,
    /// Instances dropped to respect the budgets.
    pub evictions: usize,
    /// Heap bytes held by cached instances.
    pub bytes: usize,
    /// Cached instances.
    pub entries: usize,
}

/// The budgets of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheBudget {
    /// `FEN_BUNDLE_CACHE_BYTES` (default 64 MiB).
    pub bytes: usize,
    /// `FEN_BUNDLE_CACHE_ENTRIES` (default 32).
    pub entries: usize,
}

impl Default for CacheBudget {
    fn default() -> CacheBudget {
        CacheBudget {
            bytes: 64 << 20,
            entries: 32,
        }
    }
}

/// What a rebuild of one source left in the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebuilt {
    /// The row is `Indexed`, with its (possibly new) bundle.
    Indexed(TypeEntry),
    /// The row ended in another state.
    Failed {
        /// The state.
        state: String,
        /// Its error.
        last_error: String,
    },
}

/// Rebuilds the bundle of one row and commits it (spec 30 §5.3 step 4a), and records
/// a row whose evaluated bundle contradicts it (step 4c).
#[async_trait]
pub trait BundleRebuilder: Send + Sync {
    /// Rebuilds `entry`'s source and returns its row as committed.
    async fn rebuild(&self, entry: &TypeEntry) -> Result<Rebuilt, LoadError>;
    /// Records `entry`'s row as `BundleBuildFailed` with `last_error` in a commit under
    /// the lifecycle lock, so the next pass rebuilds it from source; a row that changed
    /// since it was read is left alone.
    async fn record_mismatch(&self, entry: &TypeEntry, last_error: &str) -> Result<(), LoadError>;
}

type Key = (Kind, TypeName);
type Pending = Shared<BoxFuture<'static, Result<Arc<LoadedType>, LoadError>>>;

#[derive(Default)]
struct State {
    /// Least recently used first.
    cache: Vec<(Key, Arc<LoadedType>)>,
    pending: HashMap<Key, Pending>,
    counters: CacheStats,
}

/// Loads types on demand.
pub struct TypeLoader {
    types: Arc<dyn TypeIndex>,
    store: Arc<dyn BundleStore>,
    runtime: Arc<dyn BundleRuntime>,
    limits: SandboxLimits,
    budget: CacheBudget,
    stats: Arc<Stats>,
    state: Mutex<State>,
    rebuilder: OnceLock<Arc<dyn BundleRebuilder>>,
}

impl TypeLoader {
    /// A loader over the catalog's read side, the bundle files and a runtime.
    pub fn new(
        types: Arc<dyn TypeIndex>,
        store: Arc<dyn BundleStore>,
        runtime: Arc<dyn BundleRuntime>,
        limits: SandboxLimits,
        budget: CacheBudget,
        stats: Arc<Stats>,
    ) -> Arc<TypeLoader> {
        Arc::new(TypeLoader {
            types,
            store,
            runtime,
            limits,
            budget,
            stats,
            state: Mutex::new(State::default()),
            rebuilder: OnceLock::new(),
        })
    }

    /// Installs the rebuilder used when a bundle cannot be opened (once).
    pub fn set_rebuilder(&self, rebuilder: Arc<dyn BundleRebuilder>) {
        let _ = self.rebuilder.set(rebuilder);
    }

    /// The loaded type, evaluating its bundles once if it is not cached. The cache
    /// counters are reported to `--stats` after every call.
    pub async fn ensure_type_loaded(
        self: &Arc<Self>,
        kind: Kind,
        ty: &TypeName,
    ) -> Result<Arc<LoadedType>, LoadError> {
        let outcome = self.ensure_loaded(kind, ty).await;
        let c = self.cache_stats();
        self.stats.record_cache(crate::stats::BundleCacheCounters {
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
            bytes: c.bytes,
            entries: c.entries,
        });
        outcome
    }

    async fn ensure_loaded(
        self: &Arc<Self>,
        kind: Kind,
        ty: &TypeName,
    ) -> Result<Arc<LoadedType>, LoadError> {
        let key = (kind, ty.clone());
        // 1. A pending load (first load or reload) wins over the cache.
        if let Some(pending) = self.with_state(|s| s.pending.get(&key).cloned()) {
            return pending.await;
        }
        // 2. Cached.
        if let Some(hit) = self.with_state(|s| {
            let index = s.cache.iter().position(|(k, _)| *k == key)?;
            let item = s.cache.remove(index);
            let loaded = Arc::clone(&item.1);
            s.cache.push(item);
            s.counters.hits += 1;
            Some(loaded)
        }) {
            return Ok(hit);
        }
        // 3. Unknown types fail before anything is started.
        let entry = self
            .types
            .find_type(kind, ty)
            .await
            .map_err(|e| LoadError::Catalog(e.to_string()))?;
        let Some(entry) = entry else {
            let known = self
                .types
                .list_types(kind)
                .await
                .map_err(|e| LoadError::Catalog(e.to_string()))?;
            return Err(LoadError::UnknownType {
                name: ty.to_string(),
                suggestions: suggestions(ty.as_str(), known.iter().map(|e| e.type_name.as_str())),
            });
        };
        // 4. Start one shared load, unless another caller started one meanwhile.
        let pending = self.with_state(|s| {
            if let Some(existing) = s.pending.get(&key) {
                return existing.clone();
            }
            s.counters.misses += 1;
            let this = Arc::clone(self);
            let key_for_load = key.clone();
            let future = async move {
                let result = this.load(entry).await.map(Arc::new);
                this.with_state(|s| {
                    s.pending.remove(&key_for_load);
                    if let Ok(loaded) = &result {
                        s.cache.retain(|(k, _)| *k != key_for_load);
                        s.cache.push((key_for_load.clone(), Arc::clone(loaded)));
                        this.evict(s);
                    }
                });
                result
            }
            .boxed()
            .shared();
            s.pending.insert(key.clone(), future.clone());
            future
        });
        pending.await
    }

    /// Drops the cached instance and any pending load of a type.
    pub fn invalidate_type(&self, kind: Kind, ty: &TypeName) {
        let key = (kind, ty.clone());
        self.with_state(|s| {
            s.cache.retain(|(k, _)| *k != key);
            s.pending.remove(&key);
        });
    }

    /// The cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.with_state(|s| {
            let mut counters = s.counters;
            counters.entries = s.cache.len();
            counters.bytes = s.cache.iter().map(|(_, l)| l.instance.heap_bytes()).sum();
            counters
        })
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Evicts least recently used instances until both budgets hold.
    fn evict(&self, s: &mut State) {
        loop {
            let bytes: usize = s.cache.iter().map(|(_, l)| l.instance.heap_bytes()).sum();
            if (bytes <= self.budget.bytes && s.cache.len() <= self.budget.entries)
                || s.cache.is_empty()
            {
                break;
            }
            s.cache.remove(0);
            s.counters.evictions += 1;
        }
    }

    /// Opens a row's bundle; a missing or unusable file is rebuilt and committed first
    /// (step 4a), and `row` is updated to the committed row.
    async fn open_or_rebuild(&self, row: &mut TypeEntry) -> Result<String, LoadError> {
        if let Some(contents) = self.store.open(&row.bundle).await {
            return Ok(contents);
        }
        let Some(rebuilder) = self.rebuilder.get() else {
            return Err(LoadError::BundleUnusable {
                path: row.bundle.path.to_string(),
            });
        };
        match rebuilder.rebuild(row).await? {
            Rebuilt::Indexed(committed) => *row = committed,
            Rebuilt::Failed { state, last_error } => {
                return Err(LoadError::Unavailable {
                    name: row.type_name.to_string(),
                    source_path: row.source_path.to_string(),
                    state,
                    last_error,
                })
            }
        }
        self.store
            .open(&row.bundle)
            .await
            .ok_or_else(|| LoadError::BundleTampered {
                path: row.bundle.path.to_string(),
            })
    }

    /// The `CatalogMismatch` of `row`, after recording the row as `BundleBuildFailed`
    /// in a commit under the lifecycle lock, so the next pass rebuilds it from source.
    async fn mismatch(&self, row: &TypeEntry, mut found: String) -> LoadError {
        let expected = row.type_name.to_string();
        if let Some(rebuilder) = self.rebuilder.get() {
            let last_error = LoadError::CatalogMismatch {
                expected: expected.clone(),
                found: found.clone(),
            }
            .to_string();
            if let Err(error) = rebuilder.record_mismatch(row, &last_error).await {
                found = format!("{found} (the row could not be marked for a rebuild: {error})");
            }
        }
        LoadError::CatalogMismatch { expected, found }
    }

    async fn load(&self, entry: TypeEntry) -> Result<LoadedType, LoadError> {
        let extensions = match entry.kind {
            Kind::Model => self
                .types
                .extensions_for(&entry.type_name)
                .await
                .map_err(|e| LoadError::Catalog(e.to_string()))?,
            _ => Vec::new(),
        };
        let mut entry = entry;
        let mut extensions = extensions;
        let mut bundles = Vec::new();
        for index in 0..=extensions.len() {
            let row = if index == 0 {
                &mut entry
            } else {
                &mut extensions[index - 1]
            };
            let contents = self.open_or_rebuild(row).await?;
            bundles.push(Arc::new(BundleFile {
                path: row.bundle.path.to_string(),
                contents,
            }));
        }
        for bundle in &bundles {
            self.stats.evaluated(&bundle.path);
        }
        let instance = self
            .runtime
            .instantiate(InstantiateRequest {
                bundles,
                limits: self.limits,
            })
            .await
            .map_err(|e| LoadError::Evaluation(e.to_string()))?;
        // Step 4c: each bundle's evaluated export must declare its row's type (for an
        // extension, the base it extends).
        for (index, row) in std::iter::once(&entry).chain(extensions.iter()).enumerate() {
            let declared = instance
                .exports()
                .iter()
                .find(|export| export.bundle == index)
                .and_then(|export| {
                    export
                        .value
                        .get("type")
                        .or_else(|| export.value.get("name"))
                })
                .and_then(|v| v.as_str())
                .and_then(|text| TypeName::parse(text).ok());
            if declared.as_ref() != Some(&row.type_name) {
                let found = declared
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "nothing".to_owned());
                return Err(self.mismatch(row, found).await);
            }
        }
        Ok(LoadedType {
            entry,
            extensions,
            instance,
        })
    }
}

#[cfg(test)]
mod tests;

//! Counters behind `--stats` (spec 30 §5.6).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// Receives one event (`bundle_built`, `bundle_evaluated`, `lock_acquired`, ...) with
/// its fields; the CLI writes them to `FEN_EVENTS_FILE` as JSON lines.
pub type EventSink = Arc<dyn Fn(&str, Value) + Send + Sync>;

/// Process-wide counters; cheap to update from any service.
#[derive(Default)]
pub struct Stats {
    bundles_built: AtomicUsize,
    bundles_evaluated: AtomicUsize,
    evaluated: Mutex<Vec<String>>,
    lock_acquired: AtomicUsize,
    sources_hashed: AtomicUsize,
    catalog_statements: AtomicUsize,
    bundle_cache: Mutex<BundleCacheCounters>,
    index_planned: AtomicUsize,
    index_done: AtomicUsize,
    events: Option<EventSink>,
}

/// How far the indexing passes of this process have got (for a progress bar).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexProgress {
    /// Entry points planned for indexing, over all passes so far.
    pub planned: usize,
    /// Of those, entry points finished (indexed or failed).
    pub done: usize,
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

/// The evaluated-bundle cache's counters (spec 30 §5.4), as last reported by the loader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BundleCacheCounters {
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

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Bundles written by a build.
    pub bundles_built: usize,
    /// Bundles evaluated in a sandbox.
    pub bundles_evaluated: usize,
    /// Their paths.
    pub evaluated: Vec<String>,
    /// Times the lifecycle lock was acquired.
    pub lifecycle_lock_acquired: usize,
    /// Source files read and hashed.
    pub sources_hashed: usize,
    /// Catalog round trips (see `Counted`).
    pub catalog_statements: usize,
    /// The bundle cache.
    pub bundle_cache: BundleCacheCounters,
}

impl Stats {
    /// Counters that also report events to `sink`.
    pub fn with_events(sink: EventSink) -> Stats {
        Stats {
            events: Some(sink),
            ..Stats::default()
        }
    }
    /// Reports one event to the sink, if any.
    pub fn event(&self, name: &str, fields: Value) {
        if let Some(sink) = &self.events {
            sink(name, fields);
        }
    }
    /// One bundle built.
    pub fn built(&self) {
        self.bundles_built.fetch_add(1, Ordering::Relaxed);
    }
    /// One bundle built, at `path`.
    pub fn built_at(&self, path: &str) {
        self.built();
        self.event("bundle_built", json!({ "bundle": path }));
    }
    /// One bundle evaluated.
    pub fn evaluated(&self, path: &str) {
        self.bundles_evaluated.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut list) = self.evaluated.lock() {
            list.push(path.to_owned());
        }
        self.event("bundle_evaluated", json!({ "bundle": path }));
    }
    /// The lifecycle lock was taken.
    pub fn lock_acquired(&self) {
        self.lock_acquired.fetch_add(1, Ordering::Relaxed);
        self.event("lock_acquired", json!({ "lock": "lifecycle" }));
    }
    /// Times the lifecycle lock was taken so far (cheap: no snapshot).
    pub fn lifecycle_locks(&self) -> usize {
        self.lock_acquired.load(Ordering::Relaxed)
    }
    /// One catalog round trip.
    pub fn catalog_statement(&self) {
        self.catalog_statements.fetch_add(1, Ordering::Relaxed);
    }
    /// Files hashed by a finished scanner.
    pub fn hashed(&self, n: usize) {
        self.sources_hashed.fetch_add(n, Ordering::Relaxed);
    }
    /// A pass is about to index `n` entry points.
    pub fn plan_indexing(&self, n: usize) {
        self.index_planned.fetch_add(n, Ordering::Relaxed);
    }
    /// One planned entry point is finished.
    pub fn indexed_one(&self) {
        self.index_done.fetch_add(1, Ordering::Relaxed);
    }
    /// Indexing progress, cheap to poll.
    pub fn index_progress(&self) -> IndexProgress {
        IndexProgress {
            planned: self.index_planned.load(Ordering::Relaxed),
            done: self.index_done.load(Ordering::Relaxed),
        }
    }
    /// The loader's cache counters after a load.
    pub fn record_cache(&self, counters: BundleCacheCounters) {
        if let Ok(mut cache) = self.bundle_cache.lock() {
            *cache = counters;
        }
    }
    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            bundles_built: self.bundles_built.load(Ordering::Relaxed),
            bundles_evaluated: self.bundles_evaluated.load(Ordering::Relaxed),
            evaluated: self.evaluated.lock().map(|l| l.clone()).unwrap_or_default(),
            lifecycle_lock_acquired: self.lock_acquired.load(Ordering::Relaxed),
            sources_hashed: self.sources_hashed.load(Ordering::Relaxed),
            catalog_statements: self.catalog_statements.load(Ordering::Relaxed),
            bundle_cache: self.bundle_cache.lock().map(|c| *c).unwrap_or_default(),
        }
    }
}

//! The extension lifecycle (spec 20 §9–§15): `pull` (install), `rm` (remove),
//! `update` (upgrade), `install` (restore), crash recovery and the read-only status.
//!
//! Every service follows the same shape: the slow part (registry, unpacking,
//! indexing) runs in a private staging directory without any lock; the locked part
//! re-reads the lockfile and re-loads the aggregates it will save, journals, renames
//! whole roots, writes the lockfile once and the catalog once. [`Session`] is one
//! command's run: its adapters, its warnings, the transactions its recovery finished
//! and the lifecycle-lock timings of spec 20 §9.6.

pub mod install;
pub mod recovery;
pub mod remove;
pub mod restore;
pub mod status;
pub mod upgrade;

use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::{self, Either};
use futures::task::AtomicWaker;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use fen_domain::journal::JournalOp;
use fen_domain::layout::{entry_point_kind, PULLED_DIR};
use fen_domain::ports::{
    ArchiveError, DownloadProgress, DuplicateType, LifecycleGuard, LockEntry, LockfileWriteError,
    RegistryClient, RegistryError, RepoError, TreeError, Unpacker,
};
use fen_domain::{CanonicalPath, Extension, ExtensionName, RowState};
use serde_json::{json, Map, Value};

use crate::adapters::Adapters;
use crate::engine::LifecycleError;

/// A coded failure of a lifecycle command: the CLI prints `message` and `hint` and
/// exits with the code's exit code (spec 00 §6).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// Stable snake_case code (`conflict`, `checksum_mismatch`, ...).
    pub code: &'static str,
    /// One line.
    pub message: String,
    /// What to try.
    pub hint: Option<String>,
    /// JSON detail fields (`cause`, `conflictingPaths`, ...).
    pub details: Map<String, Value>,
    /// The collision, for `duplicate_type`.
    pub duplicate: Option<DuplicateType>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Failure {
    /// A failure without hint or details.
    pub fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: None,
            details: Map::new(),
            duplicate: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a detail field.
    pub fn detail(mut self, key: &str, value: Value) -> Failure {
        self.details.insert(key.to_owned(), value);
        self
    }
}

impl From<Failure> for LifecycleError {
    fn from(failure: Failure) -> LifecycleError {
        LifecycleError::Failed(Box::new(failure))
    }
}

impl From<RegistryError> for LifecycleError {
    fn from(error: RegistryError) -> LifecycleError {
        let mut failure = Failure::new(error.code.as_str(), error.message);
        failure.hint = error.hint;
        failure.into()
    }
}

impl From<ArchiveError> for LifecycleError {
    fn from(error: ArchiveError) -> LifecycleError {
        Failure::new(error.code.as_str(), error.message).into()
    }
}

impl From<TreeError> for LifecycleError {
    fn from(error: TreeError) -> LifecycleError {
        LifecycleError::Io(error.0)
    }
}

impl From<LockfileWriteError> for LifecycleError {
    fn from(error: LockfileWriteError) -> LifecycleError {
        LifecycleError::Io(error.to_string())
    }
}

impl LifecycleError {
    /// The snake_case code this error reports (for bulk items).
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::Failed(f) => f.code,
            LifecycleError::Repo(RepoError::DuplicateType(_)) => "duplicate_type",
            LifecycleError::Repo(RepoError::Busy) => "catalog_busy",
            LifecycleError::Repo(_) => "catalog_error",
            LifecycleError::Lock(fen_domain::ports::LifecycleLockError::Timeout { .. }) => {
                "lock_timeout"
            }
            LifecycleError::Lockfile(_) => "lockfile_invalid",
            LifecycleError::Domain(_) => "internal_error",
            _ => "io",
        }
    }
}

/// A signal flag set from outside the command's runtime, with a waker so that a
/// pending lock wait notices it at once.
#[derive(Debug, Default)]
pub struct Interrupt {
    raised: AtomicBool,
    waker: AtomicWaker,
}

impl Interrupt {
    /// Records the signal and wakes a waiting lock acquisition.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.waker.wake();
    }

    /// Whether a signal arrived; `raise` returns the previous value through this.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Resolves once raised.
    fn wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        future::poll_fn(move |cx| {
            self.waker.register(cx.waker());
            if self.is_raised() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

fn interrupted() -> LifecycleError {
    Failure::new("interrupted", "interrupted; nothing was changed").into()
}

/// How a journaled transaction was finished by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// `install` or `rm`.
    pub op: JournalOp,
    /// The extension.
    pub name: ExtensionName,
    /// `rolled_forward` or `rolled_back`.
    pub action: &'static str,
    /// `txn-<id>`.
    pub txn: String,
}

impl Recovered {
    /// The JSON form of spec 20 §13.3.
    pub fn to_json(&self) -> Value {
        json!({
            "op": match self.op { JournalOp::Install => "install", JournalOp::Rm => "rm" },
            "name": self.name.as_str(),
            "action": self.action,
            "txn": self.txn,
        })
    }
}

/// Lifecycle-lock waits and holds of one command (spec 20 §9.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// Time spent waiting for the lock.
    pub lock_wait_ms: u64,
    /// Time the lock was held.
    pub lock_held_ms: u64,
    /// `[acquired, released]` in Unix microseconds, one per hold.
    pub lock_spans: Vec<[u64; 2]>,
}

#[derive(Default)]
struct SessionState {
    warnings: Vec<String>,
    recovered: Vec<Recovered>,
    timings: Timings,
}

/// One lifecycle command's run.
pub struct Session {
    /// The catalog, lock, trees, lockfile, indexer adapters.
    pub ad: Adapters,
    /// The registry client.
    pub registry: Arc<dyn RegistryClient>,
    /// The archive extractor.
    pub unpacker: Arc<dyn Unpacker>,
    /// Download progress (a bar on a terminal).
    pub progress: Arc<dyn DownloadProgress>,
    /// Raised by the composition root on SIGINT/SIGTERM (spec 20 §8.5): work outside a
    /// locked section stops at the next safe point, a lock wait stops at once, a locked
    /// section finishes first.
    pub interrupted: Arc<Interrupt>,
    state: Mutex<SessionState>,
}

/// The lifecycle lock, held, with when it was taken.
pub(crate) struct Held {
    _guard: LifecycleGuard,
    since: Instant,
    since_us: u64,
}

/// What every lifecycle command reports beside its result.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// Warnings, in order.
    pub warnings: Vec<String>,
    /// Transactions recovery finished.
    pub recovered: Vec<Recovered>,
    /// Lock timings.
    pub timings: Timings,
}

impl Session {
    /// A session over the given adapters.
    pub fn new(
        ad: Adapters,
        registry: Arc<dyn RegistryClient>,
        unpacker: Arc<dyn Unpacker>,
        progress: Arc<dyn DownloadProgress>,
    ) -> Session {
        Session {
            ad,
            registry,
            unpacker,
            progress,
            interrupted: Arc::new(Interrupt::default()),
            state: Mutex::new(SessionState::default()),
        }
    }

    /// `interrupted` (exit 130) when a signal arrived; called at safe points outside
    /// locked sections, where stopping changes nothing (staging is deleted on the way
    /// out).
    pub fn check_interrupted(&self) -> Result<(), LifecycleError> {
        if self.interrupted.is_raised() {
            return Err(interrupted());
        }
        Ok(())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a warning.
    pub fn warn(&self, warning: impl Into<String>) {
        self.state().warnings.push(warning.into());
    }

    /// Warnings, recovered transactions and timings so far.
    pub fn extras(&self) -> Extras {
        let state = self.state();
        Extras {
            warnings: state.warnings.clone(),
            recovered: state.recovered.clone(),
            timings: state.timings.clone(),
        }
    }

    /// Takes the lifecycle lock, fires `after_point` (if any), then runs recovery.
    pub(crate) async fn lock(&self, after_point: Option<&str>) -> Result<Held, LifecycleError> {
        let waiting = Instant::now();
        self.check_interrupted()?;
        // A signal during the wait stops it at once: nothing was done yet.
        let acquire = self.ad.lock.acquire(&self.ad.command);
        let guard = match future::select(Box::pin(acquire), Box::pin(self.interrupted.wait())).await
        {
            Either::Left((acquired, _)) => acquired?,
            Either::Right(((), _)) => return Err(interrupted()),
        };
        let since_us = self.ad.clock.unix_micros();
        self.ad.stats.lock_acquired();
        let held = Held {
            _guard: guard,
            since: Instant::now(),
            since_us,
        };
        self.state().timings.lock_wait_ms += ms(waiting.elapsed());
        if let Some(point) = after_point {
            self.fault(point)?;
        }
        let outcome = recovery::recover(&self.ad).await?;
        let mut state = self.state();
        state.warnings.extend(outcome.warnings);
        state.recovered.extend(outcome.recovered);
        Ok(held)
    }

    /// Releases the lock and records the span.
    pub(crate) fn unlock(&self, held: Held) {
        let released_us = self.ad.clock.unix_micros();
        let held_ms = ms(held.since.elapsed());
        let since_us = held.since_us;
        drop(held);
        let mut state = self.state();
        state.timings.lock_held_ms += held_ms;
        state.timings.lock_spans.push([since_us, released_us]);
    }

    /// Fires a fault point; the `error` action becomes an `io` failure.
    pub(crate) fn fault(&self, point: &str) -> Result<(), LifecycleError> {
        self.ad.faults.hit(point).map_err(LifecycleError::Io)
    }
}

fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `.fen/pulled-extensions/<key>/` as a repo-relative prefix with trailing `/`.
pub(crate) fn root_prefix(name: &ExtensionName) -> String {
    format!("{PULLED_DIR}/{}/", name.directory_key())
}

/// The entry points an entry's `files[]` lists, as canonical paths: the kind lists of
/// the installed manifest (which equal the archive's entry points, spec 20 §5.3) that
/// `files[]` holds; without a readable manifest, every listed file that is an entry
/// point by the naming rules (spec 20 §5.1).
pub(crate) fn listed_entry_points(
    ad: &Adapters,
    name: &ExtensionName,
    entry: &LockEntry,
) -> Vec<CanonicalPath> {
    let prefix = root_prefix(name);
    let root = ad.layout.pulled_root(name);
    let declared: Option<Vec<String>> = ad
        .trees
        .installed_manifest(&name.directory_key())
        .filter(|m| m.name == *name && m.version == entry.version)
        .map(|m| m.entry_point_paths());
    let mut out: Vec<CanonicalPath> = entry
        .files
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix))
        .filter(|rel| match &declared {
            Some(paths) => paths.iter().any(|p| p == rel),
            None => entry_point_kind(rel).is_some(),
        })
        .map(|rel| root.join(rel))
        .collect();
    out.sort();
    out
}

/// How an entry's files compare with its `files[]` and `filesDigest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FilesState {
    /// Listed files that are not regular files on disk.
    pub missing: usize,
    /// All present, but their digest differs from `filesDigest`.
    pub modified: bool,
}

impl FilesState {
    /// Every file present and the digest matching (or not pinned).
    pub fn intact(self) -> bool {
        self.missing == 0 && !self.modified
    }
}

/// Hashes an entry's files and compares them with its pins.
pub(crate) fn files_state(ad: &Adapters, entry: &LockEntry) -> Result<FilesState, LifecycleError> {
    let hashes = ad.trees.hash_files(&ad.layout.root_native, &entry.files)?;
    let missing = hashes.iter().filter(|h| h.is_none()).count();
    let modified = missing == 0
        && entry.files_digest.as_ref().is_some_and(|expected| {
            let lines = entry
                .files
                .iter()
                .zip(&hashes)
                .filter_map(|(p, h)| h.map(|h| (p.as_str(), h)));
            &fen_domain::ports::lockfile::files_digest(lines) != expected
        });
    Ok(FilesState { missing, modified })
}

impl Session {
    /// Whether the catalog's guard keys match the scan roots of `document` (spec 10
    /// §5.8); read before a change so that only a populated catalog is marked again.
    pub(crate) async fn guards_fresh(
        &self,
        document: &fen_domain::ports::LockDocument,
    ) -> Result<bool, LifecycleError> {
        let scanner = self.ad.scanners.new_pass();
        let inputs = crate::engine::guard_inputs(&self.ad, &document.locked(), scanner.as_ref());
        Ok(matches!(
            self.ad.repo.invalidation_guards(&inputs).await?,
            fen_domain::ports::GuardVerdict::Fresh
        ))
    }

    /// Writes the guard keys for the scan roots of `document` (after a change).
    pub(crate) async fn mark_populated(
        &self,
        document: &fen_domain::ports::LockDocument,
    ) -> Result<(), LifecycleError> {
        let scanner = self.ad.scanners.new_pass();
        let inputs = crate::engine::guard_inputs(&self.ad, &document.locked(), scanner.as_ref());
        Ok(self.ad.repo.mark_populated(&inputs).await?)
    }
}

/// Aggregates with at least one source that is not `Tombstoned`.
pub(crate) fn live(aggregates: Vec<Extension>) -> Vec<Extension> {
    aggregates
        .into_iter()
        .filter(|e| {
            e.sources()
                .any(|s| !matches!(s.state(), RowState::Tombstoned { .. }))
        })
        .collect()
}

/// *C agrees with P* (spec 20 §9.2): one aggregate, P's version, source paths exactly
/// the entry points P lists.
pub(crate) fn agrees(ad: &Adapters, name: &ExtensionName, c: &[Extension], p: &LockEntry) -> bool {
    let [only] = c else {
        return false;
    };
    if only.id().version != p.version {
        return false;
    }
    let mut paths: Vec<CanonicalPath> = only
        .sources()
        .filter(|s| !matches!(s.state(), RowState::Tombstoned { .. }))
        .map(|s| s.path().clone())
        .collect();
    paths.sort();
    paths == listed_entry_points(ad, name, p)
}

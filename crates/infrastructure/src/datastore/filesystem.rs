//! `FilesystemSyncService`: the built-in sync of the `filesystem` datastore (spec 30
//! §7.5) between `.fen/data/` and `<path>/data/`.
//!
//! Version directories and run records are immutable (§2.10), so a sync is "copy what
//! is missing, merge `latest` by maximum". A call first plans (walking only
//! `data/<m>/` for each model `m` of a scoped call, so its cost does not depend on the
//! other models in the store), then copies with at most 8 file operations at once,
//! then merges the `latest` markers.
//!
//! Crash safety, per step: a missing version directory is copied into a `.fen-tmp-*`
//! directory beside its final place, `data.json` is checked against the `sha256` of
//! the copied `meta.json`, both files and the directory are fsynced, and the directory
//! is renamed into place, so the other side never sees a partial version; a missing
//! run record (or a file missing from a version both sides have) is written to a temp
//! file, fsynced and `hard_link`ed to its name, which never replaces an existing file;
//! a `latest` is raised with temp file + rename, only after every version directory of
//! the call is in place, so it never names a version that is not there. A crash leaves
//! at worst temp entries that every walker skips. Conflicts (an immutable file whose two
//! copies differ in size, or two `meta.json` disagreeing on `sha256`) are never
//! overwritten: both sides are kept and the call fails with `SyncConflict`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use fen_domain::ports::{
    DatastoreSyncService, ModelName, SyncCapabilities, SyncError, SyncOptions, SyncOutcome,
};

use crate::random;

/// File operations in flight at once (spec 30 §7.5).
const MAX_CONCURRENT_OPS: usize = 8;

/// Prefix of every temp entry fen writes; walkers skip it.
const TEMP_PREFIX: &str = ".fen-tmp-";

/// Sync between `.fen/data/` and a directory.
#[derive(Clone, Debug)]
pub struct FilesystemSyncService {
    local: PathBuf,
    remote_root: PathBuf,
    timeout: Duration,
}

impl FilesystemSyncService {
    /// Sync of `local_data` (`.fen/data`) with `<remote_root>/data`, each call bounded
    /// by `timeout` (`FEN_DATASTORE_SYNC_TIMEOUT_MS`).
    pub fn new(local_data: PathBuf, remote_root: PathBuf, timeout: Duration) -> Self {
        FilesystemSyncService {
            local: local_data,
            remote_root,
            timeout,
        }
    }

    async fn sync(
        &self,
        direction: Direction,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, SyncError> {
        let work = self.sync_untimed(direction, options);
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(SyncError::SyncTimeout),
        }
    }

    async fn sync_untimed(
        &self,
        direction: Direction,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, SyncError> {
        let remote_root = self.remote_root.clone();
        let remote = remote_root.join("data");
        let local = self.local.clone();
        let (from, to) = match direction {
            Direction::Pull => (remote, local),
            Direction::Push => (local, remote),
        };
        let scoped: Option<Vec<String>> = options.map(|o| {
            o.context
                .models
                .iter()
                .map(|m| m.name.to_string())
                .collect()
        });
        let plan = tokio::task::spawn_blocking(move || {
            reachable(&remote_root)?;
            let models = match scoped {
                Some(models) => models,
                None => model_dirs(&from)?,
            };
            let mut plan = Plan::default();
            for model in models {
                plan_model(&from.join(&model), &to.join(&model), &mut plan)?;
            }
            Ok::<_, SyncError>(plan)
        })
        .await
        .map_err(|e| SyncError::Unavailable(format!("sync task failed: {e}")))??;
        crate::faults::hit("sync:after-plan").map_err(|e| SyncError::Unavailable(e.to_string()))?;

        let copies = Arc::new(plan.copies);
        let n_files = run_bounded(copies.len(), {
            let copies = Arc::clone(&copies);
            move |i| copies[i].run()
        })
        .await?;
        let latests = Arc::new(plan.latests);
        let n_latest = run_bounded(latests.len(), {
            let latests = Arc::clone(&latests);
            move |i| latests[i].run()
        })
        .await?;
        if let Some(first) = plan.conflicts.first() {
            let more = plan.conflicts.len() - 1;
            let path = if more == 0 {
                first.clone()
            } else {
                format!("{first} (and {more} more)")
            };
            return Err(SyncError::SyncConflict { path });
        }
        Ok(SyncOutcome {
            files_transferred: Some(n_files + n_latest),
        })
    }
}

#[async_trait]
impl DatastoreSyncService for FilesystemSyncService {
    async fn capabilities(&self) -> Result<SyncCapabilities, SyncError> {
        Ok(SyncCapabilities {
            scoped_sync: true,
            lazy_hydration: false,
        })
    }

    async fn pull_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.sync(Direction::Pull, options).await
    }

    async fn push_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.sync(Direction::Push, options).await
    }
}

/// Checks a directory can serve as a `filesystem` remote: creates it (and
/// `.fen-locks/`, `data/`) if absent, then probes write, rename and delete (spec 30
/// §7.10 step 1). Nothing else is touched.
pub fn verify_remote(root: &Path) -> Result<(), String> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        format!("cannot {what} {}: {e}", path.display())
    };
    std::fs::create_dir_all(root).map_err(|e| fail("create", root, e))?;
    for sub in [".fen-locks", "data"] {
        let dir = root.join(sub);
        std::fs::create_dir_all(&dir).map_err(|e| fail("create", &dir, e))?;
    }
    let probe = root.join(format!(
        "{TEMP_PREFIX}probe-{}",
        random::hex(&random::bytes::<8>())
    ));
    let renamed = root.join(format!(
        "{TEMP_PREFIX}probe-{}",
        random::hex(&random::bytes::<8>())
    ));
    std::fs::write(&probe, b"probe").map_err(|e| fail("write", &probe, e))?;
    let result = std::fs::rename(&probe, &renamed)
        .map_err(|e| fail("rename", &probe, e))
        .and_then(|()| std::fs::remove_file(&renamed).map_err(|e| fail("delete", &renamed, e)));
    let _ = std::fs::remove_file(&probe);
    let _ = std::fs::remove_file(&renamed);
    result
}

#[derive(Clone, Copy, Debug)]
enum Direction {
    Pull,
    Push,
}

/// What one call will do.
#[derive(Default)]
struct Plan {
    copies: Vec<Copy>,
    latests: Vec<Latest>,
    conflicts: Vec<String>,
}

/// One copy of something absent on the destination.
enum Copy {
    /// A whole version directory.
    VersionDir { from: PathBuf, to: PathBuf },
    /// One immutable file (a run record, or a file of a version both sides have).
    File { from: PathBuf, to: PathBuf },
}

/// Raise `to`'s `latest` to `from`'s when higher.
struct Latest {
    from: PathBuf,
    to: PathBuf,
}

impl Copy {
    /// Files copied.
    fn run(&self) -> Result<u64, SyncError> {
        match self {
            Copy::VersionDir { from, to } => copy_version_dir(from, to),
            Copy::File { from, to } => copy_file_new(from, to).map(u64::from),
        }
    }
}

impl Latest {
    fn run(&self) -> Result<u64, SyncError> {
        let Some(source) = read_latest(&self.from)? else {
            return Ok(0);
        };
        let current = read_latest(&self.to)?;
        if current.is_some_and(|c| c >= source) {
            return Ok(0);
        }
        let dir = parent(&self.to);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let temp = temp_beside(&self.to);
        let written = write_synced(&temp, format!("{source}\n").as_bytes())
            .and_then(|()| std::fs::rename(&temp, &self.to));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(io(&self.to, e));
        }
        Ok(1)
    }
}

/// Runs `op(0..n)` with at most `MAX_CONCURRENT_OPS` blocking tasks at once; sums the
/// results, failing with the first error after every started task ended.
async fn run_bounded<F>(n: usize, op: F) -> Result<u64, SyncError>
where
    F: Fn(usize) -> Result<u64, SyncError> + Send + Sync + Clone + 'static,
{
    let results: Vec<Result<u64, SyncError>> = stream::iter(0..n)
        .map(|i| {
            let op = op.clone();
            async move {
                tokio::task::spawn_blocking(move || op(i))
                    .await
                    .map_err(|e| SyncError::Unavailable(format!("sync task failed: {e}")))?
            }
        })
        .buffer_unordered(MAX_CONCURRENT_OPS)
        .collect()
        .await;
    let mut total = 0;
    for result in results {
        total += result?;
    }
    Ok(total)
}

fn io(path: &Path, error: std::io::Error) -> SyncError {
    SyncError::Unavailable(format!("{}: {error}", path.display()))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn temp_beside(path: &Path) -> PathBuf {
    parent(path).join(format!(
        "{TEMP_PREFIX}sync-{}",
        random::hex(&random::bytes::<8>())
    ))
}

/// The remote root must be an existing directory (an unmounted share or a deleted
/// directory is `Unavailable`, never silently recreated).
fn reachable(root: &Path) -> Result<(), SyncError> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SyncError::Unavailable(format!(
            "remote {} is not a directory",
            root.display()
        ))),
        Err(e) => Err(SyncError::Unavailable(format!(
            "remote {} is not reachable: {e}",
            root.display()
        ))),
    }
}

/// Entries of a directory that are real directories or files (never symlinks, never
/// temp entries), sorted; a missing directory has none.
fn entries(dir: &Path) -> Result<Vec<(String, std::fs::FileType)>, SyncError> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let kind = entry.file_type().map_err(|e| io(&entry.path(), e))?;
        if kind.is_symlink() {
            continue;
        }
        out.push((name, kind));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Model directories under a data root (names that are valid model names).
fn model_dirs(data: &Path) -> Result<Vec<String>, SyncError> {
    Ok(entries(data)?
        .into_iter()
        .filter(|(name, kind)| kind.is_dir() && ModelName::parse(name).is_ok())
        .map(|(name, _)| name)
        .collect())
}

/// Plans one model: `resources/<spec>/<instance>/{<version>/, latest}` and `runs/`.
fn plan_model(from: &Path, to: &Path, plan: &mut Plan) -> Result<(), SyncError> {
    for (spec, kind) in entries(&from.join("resources"))? {
        if !kind.is_dir() {
            continue;
        }
        let spec_from = from.join("resources").join(&spec);
        let spec_to = to.join("resources").join(&spec);
        for (instance, kind) in entries(&spec_from)? {
            if !kind.is_dir() {
                continue;
            }
            let inst_from = spec_from.join(&instance);
            let inst_to = spec_to.join(&instance);
            for (name, kind) in entries(&inst_from)? {
                if name == "latest" && kind.is_file() {
                    plan.latests.push(Latest {
                        from: inst_from.join("latest"),
                        to: inst_to.join("latest"),
                    });
                } else if kind.is_dir() && name.parse::<u64>().is_ok() {
                    plan_version(&inst_from.join(&name), &inst_to.join(&name), plan)?;
                }
            }
        }
    }
    let runs_from = from.join("runs");
    let runs_to = to.join("runs");
    for (name, kind) in entries(&runs_from)? {
        if kind.is_file() {
            plan_file(&runs_from.join(&name), &runs_to.join(&name), plan)?;
        }
    }
    Ok(())
}

fn plan_version(from: &Path, to: &Path, plan: &mut Plan) -> Result<(), SyncError> {
    match std::fs::symlink_metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            plan.copies.push(Copy::VersionDir {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            });
            return Ok(());
        }
        Err(e) => return Err(io(to, e)),
        Ok(meta) if !meta.is_dir() => {
            plan.conflicts.push(to.display().to_string());
            return Ok(());
        }
        Ok(_) => {}
    }
    let meta_from = meta_sha256(&from.join("meta.json"))?;
    let meta_to = meta_sha256(&to.join("meta.json"))?;
    if let (Some(a), Some(b)) = (&meta_from, &meta_to) {
        if a != b {
            plan.conflicts
                .push(to.join("meta.json").display().to_string());
            return Ok(());
        }
    }
    for (name, kind) in entries(from)? {
        if kind.is_file() {
            plan_file(&from.join(&name), &to.join(&name), plan)?;
        }
    }
    Ok(())
}

/// An immutable file: copy when absent, conflict when present with another size.
fn plan_file(from: &Path, to: &Path, plan: &mut Plan) -> Result<(), SyncError> {
    match std::fs::symlink_metadata(to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            plan.copies.push(Copy::File {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
            });
            Ok(())
        }
        Err(e) => Err(io(to, e)),
        Ok(meta_to) => {
            let meta_from = std::fs::symlink_metadata(from).map_err(|e| io(from, e))?;
            if !meta_to.is_file() || meta_to.len() != meta_from.len() {
                plan.conflicts.push(to.display().to_string());
            }
            Ok(())
        }
    }
}

/// The `sha256` field of a `meta.json`; `None` when the file is absent.
fn meta_sha256(path: &Path) -> Result<Option<String>, SyncError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        SyncError::Unavailable(format!("{} is not valid JSON: {e}", path.display()))
    })?;
    Ok(value["sha256"].as_str().map(str::to_owned))
}

/// The version in a `latest` file, `None` when absent.
fn read_latest(path: &Path) -> Result<Option<u64>, SyncError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Copies `from` to `to` through a fsynced temp file and `hard_link`; false when `to`
/// appeared meanwhile (an existing file is never replaced).
fn copy_file_new(from: &Path, to: &Path) -> Result<bool, SyncError> {
    let dir = parent(to);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let temp = temp_beside(to);
    let copied = std::fs::copy(from, &temp)
        .and_then(|_| std::fs::File::open(&temp)?.sync_all())
        .map_err(|e| io(from, e));
    let linked = copied.and_then(|()| match std::fs::hard_link(&temp, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(to, e)),
    });
    let _ = std::fs::remove_file(&temp);
    linked
}

/// Copies a version directory into a temp directory, checks `data.json` against
/// `meta.json`, fsyncs and renames it into place.
fn copy_version_dir(from: &Path, to: &Path) -> Result<u64, SyncError> {
    let dir = parent(to);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let temp = temp_beside(to);
    let result = (|| {
        std::fs::create_dir(&temp).map_err(|e| io(&temp, e))?;
        let mut n_files = 0;
        for (name, kind) in entries(from)? {
            if !kind.is_file() {
                continue;
            }
            std::fs::copy(from.join(&name), temp.join(&name))
                .and_then(|_| std::fs::File::open(temp.join(&name))?.sync_all())
                .map_err(|e| io(&from.join(&name), e))?;
            n_files += 1;
        }
        if let Some(expected) = meta_sha256(&temp.join("meta.json"))? {
            let bytes = std::fs::read(temp.join("data.json"))
                .map_err(|e| io(&from.join("data.json"), e))?;
            let actual = crate::random::hex(&Sha256::digest(&bytes));
            if actual != expected {
                return Err(SyncError::Unavailable(format!(
                    "{}: sha256 {actual} does not match meta.json ({expected}); nothing was copied",
                    from.join("data.json").display()
                )));
            }
        }
        sync_dir(&temp).map_err(|e| io(&temp, e))?;
        match std::fs::rename(&temp, to) {
            Ok(()) => {}
            // Another writer put the same immutable version in place first.
            Err(_) if to.is_dir() => return Ok(0),
            Err(e) => return Err(io(to, e)),
        }
        sync_dir(dir).map_err(|e| io(dir, e))?;
        Ok(n_files)
    })();
    if temp.exists() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    result
}

#[cfg(test)]
mod tests;

//! `FileDistributedLock`: datastore locks as files (spec 30 §7.7) under any locks
//! root: `.fen/locks/` for the `local` datastore, `<path>/.fen-locks/` for
//! `filesystem` and extension datastores (`global.lock`, `models/<name>.lock`).
//!
//! Crash safety: a lock file is created by writing the `LockInfo` JSON to a
//! `.fen-tmp-*` file in the same directory, fsyncing it and `hard_link`ing it to the lock
//! path, which fails if the lock exists (atomic on local filesystems and NFS); the temp
//! file is then removed. A lock file is therefore never seen empty or half-written. A
//! holder that dies leaves its file behind; it is *stale* once older than its ttl or,
//! on the same host, once its pid is gone, and the next acquirer takes it over by
//! deleting it only if its nonce is still the one it read (`force_release`), then
//! retrying the create. The residual window between that compare and the delete is
//! documented, not hidden: a holder that rewrote its heartbeat in between loses it.
//!
//! While held, a heartbeat thread rewrites `acquiredAt` every ttl/3 (temp + rename,
//! nonce kept); if it finds another nonce the lock is *lost* and the guard reports it.
//! Release stops the heartbeat, then deletes the file if it still carries our nonce;
//! it runs on drop too, so every exit path of a command releases.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use fen_domain::ports::{
    DistributedLock, HeldLock, LockError, LockGuard, LockInfo, LockLoss, LockOptions, LockState,
    ModelName,
};

use crate::random;
use crate::time::{parse_rfc3339, rfc3339};

/// Who takes locks: written into every `LockInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockIdentity {
    /// `user@host`.
    pub holder: String,
    /// Host name.
    pub hostname: String,
    /// This process.
    pub pid: u32,
    /// This fen.
    pub fen_version: String,
}

impl LockIdentity {
    /// The current process: `$USER` (or `unknown`), the kernel's host name.
    pub fn current(fen_version: &str) -> LockIdentity {
        let hostname = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        LockIdentity {
            holder: format!("{user}@{hostname}"),
            hostname,
            pid: std::process::id(),
            fen_version: fen_version.to_owned(),
        }
    }
}

/// Datastore locks as files under one directory.
#[derive(Clone, Debug)]
pub struct FileDistributedLock {
    root: PathBuf,
    identity: LockIdentity,
    root_policy: RootPolicy,
}

/// Whether acquiring may create the locks root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RootPolicy {
    /// `.fen/locks`: created on first use.
    Create,
    /// `<path>/.fen-locks` of a shared directory: created by `setup`; if it is gone
    /// the share is unmounted or deleted, and recreating it would hide that.
    MustExist,
}

impl FileDistributedLock {
    /// Locks under `root` (`.fen/locks` for the `local` datastore), created on use.
    pub fn new(root: PathBuf, identity: LockIdentity) -> FileDistributedLock {
        FileDistributedLock {
            root,
            identity,
            root_policy: RootPolicy::Create,
        }
    }

    /// Locks under the `.fen-locks` directory of a shared datastore, which must
    /// exist: a missing one is `Unavailable`, never recreated.
    pub fn shared(root: PathBuf, identity: LockIdentity) -> FileDistributedLock {
        FileDistributedLock {
            root,
            identity,
            root_policy: RootPolicy::MustExist,
        }
    }

    fn check_root(&self) -> Result<(), LockError> {
        if self.root_policy == RootPolicy::MustExist && !self.root.is_dir() {
            return Err(LockError::Unavailable(format!(
                "the datastore's lock directory {} does not exist (is the datastore's directory mounted?)",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// `global` → `<root>/global.lock`, `model/<name>` → `<root>/models/<name>.lock`.
    fn path_of(&self, key: &str) -> Result<PathBuf, LockError> {
        if key == "global" {
            return Ok(self.root.join("global.lock"));
        }
        let name = key
            .strip_prefix("model/")
            .ok_or_else(|| LockError::Storage(format!("unknown lock key {key:?}")))?;
        let name = ModelName::parse(name).map_err(LockError::Storage)?;
        Ok(self.root.join("models").join(format!("{name}.lock")))
    }

    fn state_of(&self, key: &str, info: LockInfo) -> LockState {
        self.identity.state_of(key, info)
    }

    fn new_info(&self, ttl_ms: u64) -> LockInfo {
        self.identity.new_info(ttl_ms)
    }
}

impl LockIdentity {
    /// A fresh record of this holder for a lock with `ttl_ms` (new nonce, now).
    pub(crate) fn new_info(&self, ttl_ms: u64) -> LockInfo {
        LockInfo {
            holder: self.holder.clone(),
            hostname: self.hostname.clone(),
            pid: self.pid,
            acquired_at: rfc3339(SystemTime::now()),
            ttl_ms,
            nonce: random::uuid_v4(),
            fen_version: self.fen_version.clone(),
        }
    }

    /// A record as seen from this host: its age, and stale once older than its ttl or,
    /// on this host, once its process is gone (spec 30 §7.7).
    pub(crate) fn state_of(&self, key: &str, info: LockInfo) -> LockState {
        let age_ms = parse_rfc3339(&info.acquired_at)
            .and_then(|at| SystemTime::now().duration_since(at).ok())
            .map_or(0, |age| u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        let expired = age_ms > info.ttl_ms;
        let dead = info.hostname == self.hostname && !pid_alive(info.pid);
        LockState {
            key: key.to_owned(),
            info,
            age_ms,
            stale: expired || dead,
        }
    }
}

#[async_trait]
impl DistributedLock for FileDistributedLock {
    async fn acquire(&self, opts: &LockOptions) -> Result<LockGuard, LockError> {
        self.check_root()?;
        let path = self.path_of(&opts.key)?;
        let started = Instant::now();
        let budget = Duration::from_millis(opts.max_wait_ms);
        let mut delay = Duration::from_millis(50);
        loop {
            let info = self.new_info(opts.ttl_ms);
            if create_new(&path, &info)? {
                let held = FileHeld::start(path, info.clone(), opts.ttl_ms);
                return Ok(LockGuard::new(opts.key.clone(), info, Box::new(held)));
            }
            let Some(observed) = read_lock(&path)? else {
                continue; // released between our create and our read
            };
            let state = self.state_of(&opts.key, observed);
            if state.stale {
                // Take over: delete only the lock we read, then retry the create.
                remove_if_nonce(&path, &state.info.nonce)?;
                continue;
            }
            let waited = started.elapsed();
            if waited >= budget {
                return Err(LockError::Timeout {
                    key: opts.key.clone(),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    holder: Some(Box::new(state)),
                });
            }
            let pause = jitter(delay).min(budget - waited);
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockState>, LockError> {
        let path = self.path_of(key)?;
        Ok(read_lock(&path)?.map(|info| self.state_of(key, info)))
    }

    async fn list(&self) -> Result<Vec<LockState>, LockError> {
        self.check_root()?;
        let mut out = Vec::new();
        if let Some(info) = read_lock(&self.root.join("global.lock"))? {
            out.push(self.state_of("global", info));
        }
        let models = self.root.join("models");
        let entries = match std::fs::read_dir(&models) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(storage(&models, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".lock").map(str::to_owned))
            .filter(|n| ModelName::parse(n).is_ok())
            .collect();
        names.sort();
        for name in names {
            let key = format!("model/{name}");
            if let Some(info) = read_lock(&models.join(format!("{name}.lock")))? {
                out.push(self.state_of(&key, info));
            }
        }
        Ok(out)
    }

    async fn force_release(&self, key: &str, expected_nonce: &str) -> Result<bool, LockError> {
        remove_if_nonce(&self.path_of(key)?, expected_nonce)
    }

    async fn drain(&self, key: &str, max_wait_ms: u64) -> Result<(), LockError> {
        self.check_root()?;
        drain_key(self, key, max_wait_ms).await
    }

    async fn drain_models(&self, max_wait_ms: u64) -> Result<(), LockError> {
        drain_models(self, max_wait_ms).await
    }
}

/// Waits (backoff) while `key` is held and not stale, up to `max_wait_ms` or twice the
/// observed lock's ttl, whichever is shorter; a stale holder is force-released by its
/// observed nonce (spec 30 §7.8 step 1). Over the port alone, so the file and the S3
/// locks drain alike.
pub(crate) async fn drain_key(
    lock: &dyn DistributedLock,
    key: &str,
    max_wait_ms: u64,
) -> Result<(), LockError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let Some(state) = lock.inspect(key).await? else {
            return Ok(());
        };
        if state.stale {
            lock.force_release(key, &state.info.nonce).await?;
            continue;
        }
        let budget = Duration::from_millis(max_wait_ms.min(state.info.ttl_ms.saturating_mul(2)));
        let waited = started.elapsed();
        if waited >= budget {
            return Err(timeout(state, waited));
        }
        tokio::time::sleep(jitter(delay).min(budget - waited)).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Waits (backoff) while any non-stale `model/...` lock is held, up to `max_wait_ms`;
/// stale ones are force-released by their observed nonce (spec 30 §7.9, the symmetric
/// drain of structural commands).
pub(crate) async fn drain_models(
    lock: &dyn DistributedLock,
    max_wait_ms: u64,
) -> Result<(), LockError> {
    let started = Instant::now();
    let budget = Duration::from_millis(max_wait_ms);
    let mut delay = Duration::from_millis(50);
    loop {
        let mut holder = None;
        for state in lock.list().await? {
            if !state.key.starts_with("model/") {
                continue;
            }
            if state.stale {
                lock.force_release(&state.key, &state.info.nonce).await?;
            } else if holder.is_none() {
                holder = Some(state);
            }
        }
        let Some(holder) = holder else {
            return Ok(());
        };
        let waited = started.elapsed();
        if waited >= budget {
            return Err(timeout(holder, waited));
        }
        tokio::time::sleep(jitter(delay).min(budget - waited)).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

fn timeout(holder: LockState, waited: Duration) -> LockError {
    LockError::Timeout {
        key: holder.key.clone(),
        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        holder: Some(Box::new(holder)),
    }
}

/// `delay` ± 25%.
pub(crate) fn jitter(delay: Duration) -> Duration {
    let [r] = random::bytes::<1>();
    // 0..=255 → 0.75..=1.25
    let factor = 0.75 + f64::from(r) / 255.0 * 0.5;
    delay.mul_f64(factor)
}

/// True when a process with this pid exists (Linux: `/proc/<pid>`; elsewhere assumed).
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn storage(path: &Path, error: std::io::Error) -> LockError {
    LockError::Storage(format!("{}: {error}", path.display()))
}

/// The record in a lock file; `None` when there is none.
fn read_lock(path: &Path) -> Result<Option<LockInfo>, LockError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            LockError::Storage(format!(
                "lock file {} is not a valid lock record ({e}); remove it with 'fen datastore lock release --force'",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(path, e)),
    }
}

/// Writes `info` to a temp file beside `path` and fsyncs it.
fn write_temp(path: &Path, info: &LockInfo) -> Result<PathBuf, LockError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
    let temp = dir.join(format!(
        ".fen-tmp-lock-{}",
        random::hex(&random::bytes::<8>())
    ));
    let text = serde_json::to_string(info).map_err(|e| LockError::Storage(e.to_string()))?;
    let written = std::fs::File::create(&temp).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(storage(&temp, e));
    }
    Ok(temp)
}

/// Creates the lock file atomically; false if it exists.
fn create_new(path: &Path, info: &LockInfo) -> Result<bool, LockError> {
    let temp = write_temp(path, info)?;
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(storage(path, e)),
    }
}

/// Deletes the lock if it still carries `nonce`; false otherwise.
fn remove_if_nonce(path: &Path, nonce: &str) -> Result<bool, LockError> {
    match read_lock(path)? {
        Some(info) if info.nonce == nonce => match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage(path, e)),
        },
        _ => Ok(false),
    }
}

/// A held lock file with its heartbeat thread.
struct FileHeld {
    path: PathBuf,
    nonce: String,
    lost: LockLoss,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    released: bool,
}

impl FileHeld {
    fn start(path: PathBuf, info: LockInfo, ttl_ms: u64) -> FileHeld {
        let nonce = info.nonce.clone();
        let lost = LockLoss::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let period = Duration::from_millis((ttl_ms / 3).max(10));
        let beat_path = path.clone();
        let beat_lost = lost.clone();
        let heartbeat = std::thread::Builder::new()
            .name("fen-lock-heartbeat".to_owned())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    match read_lock(&beat_path) {
                        Ok(Some(current)) if current.nonce == info.nonce => {
                            let renewed = LockInfo {
                                acquired_at: rfc3339(SystemTime::now()),
                                ..current
                            };
                            if let Ok(temp) = write_temp(&beat_path, &renewed) {
                                if std::fs::rename(&temp, &beat_path).is_err() {
                                    let _ = std::fs::remove_file(&temp);
                                }
                            }
                        }
                        Ok(_) => {
                            beat_lost.mark();
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
            .ok();
        FileHeld {
            path,
            nonce,
            lost,
            stop: Some(stop),
            heartbeat,
            released: false,
        }
    }
}

impl HeldLock for FileHeld {
    fn release(&mut self) -> Result<(), LockError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        drop(self.stop.take());
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        remove_if_nonce(&self.path, &self.nonce).map(|_| ())
    }

    fn loss(&self) -> LockLoss {
        self.lost.clone()
    }
}

impl Drop for FileHeld {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests;

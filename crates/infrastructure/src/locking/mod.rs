//! The lifecycle lock adapter (spec 20 §8.1): an OS advisory lock on
//! `.fen/lifecycle.lock`, released by the kernel when its holder dies.
//!
//! Acquisition polls a non-blocking `try_lock` every 10–30 ms (jittered) within the
//! budget, because a thread parked in a blocking `flock` cannot be cancelled when the
//! budget runs out. The lock belongs to the open file description, so it is not
//! re-entrant: a second `acquire` while held fails at once with `AlreadyHeld`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fen_domain::ports::lock::LockHolder;
use fen_domain::ports::{LifecycleGuard, LifecycleLock, LifecycleLockError};

use crate::faults;
use crate::time::rfc3339_now;

/// Default wait budget (`FEN_LOCK_TIMEOUT_MS`).
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(30_000);
/// How long to wait before telling the user who holds the lock.
pub const NOTICE_AFTER: Duration = Duration::from_secs(1);

/// The file-lock implementation of [`LifecycleLock`].
pub struct FileLifecycleLock {
    path: PathBuf,
    display_path: String,
    budget: Duration,
    held: Arc<AtomicBool>,
}

impl FileLifecycleLock {
    /// A lock on `path`, shown to users as `display_path` (e.g. `.fen/lifecycle.lock`).
    pub fn new(
        path: PathBuf,
        display_path: impl Into<String>,
        budget: Duration,
    ) -> FileLifecycleLock {
        FileLifecycleLock {
            path,
            display_path: display_path.into(),
            budget,
            held: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The lock of a repo: `<root>/.fen/lifecycle.lock`.
    pub fn for_repo(root: &Path, budget: Duration) -> FileLifecycleLock {
        FileLifecycleLock::new(
            root.join(fen_domain::layout::LIFECYCLE_LOCK),
            fen_domain::layout::LIFECYCLE_LOCK,
            budget,
        )
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&self, error: std::io::Error) -> LifecycleLockError {
        LifecycleLockError::Io {
            lock_path: self.display_path.clone(),
            message: error.to_string(),
        }
    }
}

/// Reads the owner record of a lock file; an unreadable or partial record gives an
/// empty holder ("another fen process").
pub fn read_holder(path: &Path) -> LockHolder {
    let Ok(text) = std::fs::read_to_string(path) else {
        return LockHolder::default();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return LockHolder::default();
    };
    LockHolder {
        pid: value
            .get("pid")
            .and_then(|v| v.as_u64())
            .and_then(|p| u32::try_from(p).ok()),
        command: value
            .get("command")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        acquired_at: value
            .get("acquiredAt")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    }
}

struct HeldLock {
    _file: File,
    held: Arc<AtomicBool>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Closing the file (dropping `_file` right after this) releases the OS lock.
        self.held.store(false, Ordering::SeqCst);
    }
}

#[async_trait]
impl LifecycleLock for FileLifecycleLock {
    async fn acquire(&self, command: &str) -> Result<LifecycleGuard, LifecycleLockError> {
        if self.held.load(Ordering::SeqCst) {
            return Err(LifecycleLockError::AlreadyHeld);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| self.io_error(e))?;
        let started = Instant::now();
        let mut noticed = false;
        let mut jitter = Jitter::new();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => return Err(self.io_error(error)),
            }
            let waited = started.elapsed();
            if waited >= self.budget {
                return Err(LifecycleLockError::Timeout {
                    budget: self.budget,
                    lock_path: self.display_path.clone(),
                    holder: read_holder(&self.path),
                });
            }
            if !noticed && waited >= NOTICE_AFTER {
                noticed = true;
                let holder = read_holder(&self.path);
                let since = holder
                    .acquired_at
                    .as_deref()
                    .map(|t| format!(", since {t}"))
                    .unwrap_or_default();
                eprintln!(
                    "waiting for the lifecycle lock {} (held by {holder}{since})",
                    self.display_path
                );
            }
            let pause = jitter.next_pause().min(self.budget.saturating_sub(waited));
            tokio::time::sleep(pause.max(Duration::from_millis(1))).await;
        }
        self.held.store(true, Ordering::SeqCst);
        tracing::debug!(
            lock = %self.display_path,
            waited_ms = started.elapsed().as_millis() as u64,
            "lifecycle lock acquired"
        );
        let guard = HeldLock {
            _file: file.try_clone().map_err(|e| self.io_error(e))?,
            held: Arc::clone(&self.held),
        };
        // The owner record is diagnostics only; a failure to write it is not fatal.
        let record = serde_json::json!({
            "pid": std::process::id(),
            "host": hostname(),
            "command": command,
            "acquiredAt": rfc3339_now(),
        });
        let _ = write_record(&mut file, &record.to_string());
        faults::hit("lock:acquired").map_err(|e| self.io_error(e))?;
        Ok(LifecycleGuard::new(guard))
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

fn write_record(file: &mut File, record: &str) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(record.as_bytes())?;
    file.flush()
}

/// The host name, for owner records.
pub fn hostname() -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open("/proc/sys/kernel/hostname") {
        let _ = file.read_to_string(&mut text);
    }
    let text = text.trim();
    if !text.is_empty() {
        return text.to_owned();
    }
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// 10–30 ms pauses from a small xorshift generator seeded by pid and time, so that
/// waiting processes do not poll in lock step.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Jitter(u64::from(nanos) ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next_pause(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(10 + self.0 % 21)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acquire_release_and_not_reentrant() {
        let dir = tempfile::tempdir().unwrap();
        let lock = FileLifecycleLock::new(
            dir.path().join("l.lock"),
            "l.lock",
            Duration::from_millis(200),
        );
        assert!(!lock.is_held());
        let guard = lock.acquire("test one").await.unwrap();
        assert!(lock.is_held());
        assert!(matches!(
            lock.acquire("again").await,
            Err(LifecycleLockError::AlreadyHeld)
        ));
        let holder = read_holder(lock.path());
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.command.as_deref(), Some("test one"));
        drop(guard);
        assert!(!lock.is_held());
        let _again = lock.acquire("test two").await.unwrap();
    }

    #[tokio::test]
    async fn a_second_handle_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let first = FileLifecycleLock::new(path.clone(), "l.lock", Duration::from_millis(100));
        let second = FileLifecycleLock::new(path, "l.lock", Duration::from_millis(100));
        let _guard = first.acquire("fen holder").await.unwrap();
        let started = Instant::now();
        let error = second.acquire("fen waiter").await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        let message = error.to_string();
        assert!(matches!(error, LifecycleLockError::Timeout { .. }));
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("fen holder"), "{message}");
        assert!(message.contains("100 ms"), "{message}");
    }

    #[test]
    fn partial_records_read_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        std::fs::write(&path, "{\"pid\": 12").unwrap();
        assert_eq!(read_holder(&path).to_string(), "another fen process");
    }
}

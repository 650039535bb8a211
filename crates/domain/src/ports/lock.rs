//! `LifecycleLock`: the one repo-wide advisory lock around every mutation of the
//! catalog, the lockfile, `.fen/pulled-extensions/` and `.fen/bundles/`
//! (spec 20 §8.1, spec 10 §5.7).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// Proof that this process holds the lifecycle lock. Dropping it releases the lock.
pub struct LifecycleGuard {
    _release: Box<dyn Send + Sync>,
}

impl LifecycleGuard {
    /// Wraps whatever releases the lock when dropped (adapters pass their file handle).
    pub fn new(release: impl Send + Sync + 'static) -> LifecycleGuard {
        LifecycleGuard {
            _release: Box::new(release),
        }
    }
}

impl fmt::Debug for LifecycleGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LifecycleGuard")
    }
}

/// Who holds the lock, as written in the lock file (diagnostics only).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LockHolder {
    /// Process id.
    pub pid: Option<u32>,
    /// The command line it runs.
    pub command: Option<String>,
    /// When it acquired the lock (RFC 3339).
    pub acquired_at: Option<String>,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.command) {
            (Some(pid), Some(command)) => write!(f, "pid {pid}: {command}"),
            (Some(pid), None) => write!(f, "pid {pid}"),
            _ => f.write_str("another fen process"),
        }
    }
}

/// Acquiring the lifecycle lock failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleLockError {
    /// The wait budget ran out (`lock_timeout`, exit 75).
    #[error("gave up after {} waiting for the lifecycle lock {lock_path} (held by {holder})", format_budget(*budget))]
    Timeout {
        /// The budget that ran out.
        budget: Duration,
        /// The lock file, as displayed.
        lock_path: String,
        /// Who held it last.
        holder: LockHolder,
    },
    /// This process already holds the lock: a second acquire is a bug.
    #[error("the lifecycle lock is already held by this process (not re-entrant)")]
    AlreadyHeld,
    /// The lock file could not be opened or locked (`io`, exit 3).
    #[error("cannot use the lifecycle lock {lock_path}: {message}")]
    Io {
        /// The lock file.
        lock_path: String,
        /// The OS error.
        message: String,
    },
}

/// `30 s`, `1.5 s`, `250 ms`.
pub fn format_budget(budget: Duration) -> String {
    let ms = budget.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", (ms as f64) / 1000.0)
    }
}

/// The lifecycle lock. A process has exactly one value, shared by every service and
/// by the catalog adapter. Not re-entrant.
#[async_trait]
pub trait LifecycleLock: Send + Sync {
    /// Waits within the budget; `command` goes into the owner record.
    async fn acquire(&self, command: &str) -> Result<LifecycleGuard, LifecycleLockError>;
    /// True while this process holds the lock.
    fn is_held(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_naturally() {
        assert_eq!(format_budget(Duration::from_secs(30)), "30 s");
        assert_eq!(format_budget(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(format_budget(Duration::from_millis(200)), "200 ms");
    }
}

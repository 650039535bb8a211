//! The composition root's per-process context: global flags, settings, and the
//! concrete adapters wired behind the fen-domain ports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fen_domain::ports::LifecycleLock;
use fen_infrastructure::locking::FileLifecycleLock;

use crate::env::Settings;
use crate::error::CliError;
use crate::output::Mode;

/// Everything a command needs from the process.
pub struct Context {
    /// `--repo-dir` / `FEN_REPO_DIR`.
    pub repo_dir: Option<PathBuf>,
    /// Output mode.
    pub mode: Mode,
    /// Validated environment.
    pub settings: Settings,
}

impl Context {
    /// The process's one lifecycle lock for a repo root.
    pub fn lifecycle_lock(&self, root: &Path) -> Arc<dyn LifecycleLock> {
        Arc::new(FileLifecycleLock::for_repo(
            root,
            self.settings.lock_timeout,
        ))
    }

    /// Opens (creating or migrating under the lifecycle lock when needed) the catalog
    /// of the repo at `root`.
    pub async fn open_catalog_at(&self, root: &Path) -> Result<(), CliError> {
        let lock = self.lifecycle_lock(root);
        // Until the catalog adapter is wired in, take the lock so init serialises with
        // other writers and exercises the lock's fault point.
        let _guard = lock.acquire("fen init").await?;
        Ok(())
    }
}

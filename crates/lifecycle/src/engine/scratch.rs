//! `.fen/scratch/build-<id>/`, the private directory a pass indexes into.

use super::*;

/// `.fen/scratch/build-<id>/` with its owner record, created only when a pass has
/// something to build and removed when dropped; a crash leaves it for the next locked
/// section's recovery, which deletes it once its owner is dead (spec 20 §9.5).
pub(super) struct ScratchDir {
    pub(super) path: PathBuf,
    pub(super) created: bool,
}

impl ScratchDir {
    pub(super) fn new(ad: &Adapters, needed: bool) -> Result<ScratchDir, LifecycleError> {
        if !needed {
            return Ok(ScratchDir {
                path: ad.layout.scratch_dir.join("build-unused"),
                created: false,
            });
        }
        let path = ad
            .trees
            .new_build()
            .map_err(|e| LifecycleError::Io(e.to_string()))?;
        Ok(ScratchDir {
            path,
            created: true,
        })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
        // Remove .fen/scratch itself when this was the last user; ignore "not empty".
        if let Some(parent) = self.path.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

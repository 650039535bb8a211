//! `FsExtensionTrees`: the file-system side of the lifecycle services (spec 20 §6,
//! §9.1, §10.1, §13) — staging and transaction directories under `.fen/scratch/` and
//! the whole-directory renames that move owned roots in and out.
//!
//! Crash safety comes from three rules: a journal is written and fsynced before the
//! first rename of a transaction; every change to an owned root is one `rename(2)` of
//! a whole directory within `.fen/` (never a copy, never a file-by-file edit); and a
//! deletion first renames the root into the transaction directory, so no half-deleted
//! root is ever visible.

mod scratch;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use fen_domain::journal::Journal;
use fen_domain::layout::{BUNDLES_DIR, PULLED_DIR, SCRATCH_DIR};
use fen_domain::ports::{
    Collected, ExtensionTrees, RootsPresent, StageDir, StagedBundle, TreeError, TxnId,
};
use sha2::{Digest, Sha256};

pub use scratch::{new_id, new_owned_dir, write_owner_record};

/// The adapter for one repository.
pub struct FsExtensionTrees {
    root: PathBuf,
}

impl FsExtensionTrees {
    /// The trees of the repo at `root` (native path).
    pub fn new(root: PathBuf) -> FsExtensionTrees {
        FsExtensionTrees { root }
    }

    fn scratch(&self) -> PathBuf {
        self.root.join(SCRATCH_DIR)
    }

    fn ext_root(&self, key: &str) -> PathBuf {
        self.root.join(PULLED_DIR).join(key)
    }

    fn bundle_root(&self, key: &str) -> PathBuf {
        self.root.join(BUNDLES_DIR).join("pulled").join(key)
    }

    fn txn_dir(&self, txn: &TxnId) -> PathBuf {
        self.scratch().join(&txn.0)
    }
}

fn io(what: impl std::fmt::Display, error: std::io::Error) -> TreeError {
    TreeError(format!("{what}: {error}"))
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Renames `from` to `to`, creating `to`'s parent. A cross-device rename fails (`io`):
/// fen never falls back to copying.
fn rename(from: &Path, to: &Path) -> Result<(), TreeError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| io(parent.display(), e))?;
    }
    fs::rename(from, to)
        .map_err(|e| io(format!("rename {} -> {}", from.display(), to.display()), e))
}

fn remove_tree(path: &Path) -> Result<(), TreeError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path.display(), e)),
        Ok(meta) if meta.is_dir() => {
            make_writable(path);
            fs::remove_dir_all(path).map_err(|e| io(path.display(), e))
        }
        Ok(_) => fs::remove_file(path).map_err(|e| io(path.display(), e)),
    }
}

/// Read-only files (the 0444 manifest) can be removed on Unix as long as their
/// directory is writable; directories fen created are 0755. Nothing to do there, but
/// a tree unpacked elsewhere may carry read-only directories.
fn make_writable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if let Ok(meta) = fs::symlink_metadata(&dir) {
                if meta.is_dir() {
                    if meta.permissions().mode() & 0o200 == 0 {
                        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
                    }
                    if let Ok(entries) = fs::read_dir(&dir) {
                        stack.extend(entries.flatten().map(|e| e.path()));
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn sync_dir(path: &Path) {
    if let Ok(dir) = fs::File::open(path) {
        let _ = dir.sync_all();
    }
}

/// Regular files below `dir`, relative to it, `/`-separated, sorted by bytes; the
/// flag tells whether anything that is neither a file nor a directory was seen.
fn walk_files(dir: &Path) -> Result<(Vec<String>, bool), TreeError> {
    let mut out = Vec::new();
    let mut odd = false;
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(path.display(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(path.display(), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| io(entry.path().display(), e))?;
            if kind.is_dir() {
                stack.push((entry.path(), rel));
            } else if kind.is_file() {
                out.push(rel);
            } else {
                odd = true;
            }
        }
    }
    out.sort();
    Ok((out, odd))
}

impl ExtensionTrees for FsExtensionTrees {
    fn new_stage(&self) -> Result<StageDir, TreeError> {
        let path = new_owned_dir(&self.scratch(), "stage").map_err(|e| io("stage", e))?;
        Ok(StageDir { path })
    }

    fn new_build(&self) -> Result<PathBuf, TreeError> {
        new_owned_dir(&self.scratch(), "build").map_err(|e| io("build", e))
    }

    fn remove_scratch(&self, dir: &Path) {
        let _ = remove_tree(dir);
    }

    fn place_bundle(
        &self,
        stage: &StageDir,
        key: &str,
        bundle: &StagedBundle,
    ) -> Result<(), TreeError> {
        let final_root = self.bundle_root(key);
        let target = Path::new(bundle.target.path.as_str());
        let relative = target.strip_prefix(&final_root).map_err(|_| {
            TreeError(format!(
                "bundle {} is not under {}",
                target.display(),
                final_root.display()
            ))
        })?;
        rename(&bundle.scratch_file, &stage.bundles_dir().join(relative))
    }

    fn hash_files(
        &self,
        base: &Path,
        files: &[String],
    ) -> Result<Vec<Option<[u8; 32]>>, TreeError> {
        files
            .iter()
            .map(|rel| {
                let path = base.join(rel);
                match fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => {}
                    Ok(_) => return Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io(path.display(), e)),
                }
                let bytes = fs::read(&path).map_err(|e| io(path.display(), e))?;
                Ok(Some(Sha256::digest(&bytes).into()))
            })
            .collect()
    }

    fn list_root_files(&self, key: &str) -> Result<(Vec<String>, bool), TreeError> {
        let prefix = format!("{PULLED_DIR}/{key}");
        let (files, odd) = walk_files(&self.ext_root(key))?;
        Ok((
            files.into_iter().map(|f| format!("{prefix}/{f}")).collect(),
            odd,
        ))
    }

    fn list_bundle_files(&self, key: &str) -> Result<Vec<String>, TreeError> {
        Ok(walk_files(&self.bundle_root(key))?.0)
    }

    fn roots(&self, key: &str) -> RootsPresent {
        RootsPresent {
            ext: exists(&self.ext_root(key)),
            bundles: exists(&self.bundle_root(key)),
        }
    }

    fn installed_manifest(&self, key: &str) -> Option<fen_domain::Manifest> {
        let text = fs::read_to_string(self.ext_root(key).join("manifest.yaml")).ok()?;
        crate::archive::parse_manifest(&text)
            .ok()
            .map(|(manifest, _)| manifest)
    }

    fn begin_txn(&self, journal: &Journal) -> Result<TxnId, TreeError> {
        let txn = TxnId(format!("txn-{}", new_id()));
        let dir = self.txn_dir(&txn);
        fs::create_dir_all(&dir).map_err(|e| io(dir.display(), e))?;
        let bytes =
            serde_json::to_vec_pretty(journal).map_err(|e| TreeError(format!("journal: {e}")))?;
        let path = dir.join("journal.json");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io(path.display(), e))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| io(path.display(), e))?;
        sync_dir(&dir);
        sync_dir(&self.scratch());
        Ok(txn)
    }

    fn txns(&self) -> Result<Vec<fen_domain::ports::trees::PendingTxn>, TreeError> {
        let entries = match fs::read_dir(self.scratch()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(SCRATCH_DIR, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("txn-") {
                continue;
            }
            let journal = fs::read(entry.path().join("journal.json"))
                .map_err(|e| e.to_string())
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
            out.push((TxnId(name), journal));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn delete_txn(&self, txn: &TxnId) -> Result<(), TreeError> {
        remove_tree(&self.txn_dir(txn))
    }

    fn move_aside(&self, txn: &TxnId, index: usize, key: &str) -> Result<(), TreeError> {
        let prior = self.txn_dir(txn).join("prior").join(index.to_string());
        for (live, name) in [
            (self.ext_root(key), "ext"),
            (self.bundle_root(key), "bundles"),
        ] {
            if exists(&live) {
                rename(&live, &prior.join(name))?;
            }
        }
        Ok(())
    }

    fn move_in(&self, stage: &StageDir, key: &str) -> Result<(), TreeError> {
        rename(&stage.ext_dir(), &self.ext_root(key))?;
        if exists(&stage.bundles_dir()) {
            rename(&stage.bundles_dir(), &self.bundle_root(key))?;
        }
        Ok(())
    }

    fn roll_back(
        &self,
        txn: &TxnId,
        index: usize,
        key: &str,
        fresh_install: bool,
    ) -> Result<(), TreeError> {
        let prior = self.txn_dir(txn).join("prior").join(index.to_string());
        for (live, name) in [
            (self.ext_root(key), "ext"),
            (self.bundle_root(key), "bundles"),
        ] {
            let backup = prior.join(name);
            if exists(&backup) {
                remove_tree(&live)?;
                rename(&backup, &live)?;
            } else if fresh_install {
                remove_tree(&live)?;
            }
        }
        Ok(())
    }

    fn move_out(&self, txn: &TxnId, index: usize, key: &str) -> Result<(), TreeError> {
        let removed = self.txn_dir(txn).join("removed").join(index.to_string());
        for (live, name) in [
            (self.ext_root(key), "ext"),
            (self.bundle_root(key), "bundles"),
        ] {
            if exists(&live) {
                rename(&live, &removed.join(name))?;
            }
        }
        Ok(())
    }

    fn delete_roots(&self, key: &str) -> Result<(), TreeError> {
        remove_tree(&self.ext_root(key))?;
        remove_tree(&self.bundle_root(key))
    }

    fn prune_parents(&self, key: &str) -> usize {
        let mut pruned = 0;
        for (stop, live) in [
            (self.root.join(PULLED_DIR), self.ext_root(key)),
            (
                self.root.join(BUNDLES_DIR).join("pulled"),
                self.bundle_root(key),
            ),
        ] {
            let mut dir = live;
            // The root itself, when left empty, then its parents up to (not including) stop.
            while dir != stop && dir.starts_with(&stop) {
                if fs::remove_dir(&dir).is_ok() {
                    pruned += 1;
                } else if exists(&dir) {
                    break;
                }
                if !dir.pop() {
                    break;
                }
            }
        }
        pruned
    }

    fn gc_scratch(&self) -> Collected {
        scratch::collect(
            &self.scratch(),
            &self.root.join(fen_domain::layout::LOCAL_DIR),
        )
    }
}

#[cfg(test)]
mod tests;

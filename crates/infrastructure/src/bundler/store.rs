//! `FsBundleStore`: the `BundleStore` port over `.fen/bundles/`, plus staging of new
//! bundles in a scratch directory (spec 30 §3.5–§3.7, spec 10 §6.4).
//!
//! Crash safety: a staged bundle is written to a `.fen-tmp-` file and renamed to its
//! scratch name; `publish` renames that file over the final path, so a reader sees the
//! old bundle, the new one or none, never a torn file. `clear` renames the whole tree
//! away before deleting it. Writes need the lifecycle lock (spec 10 §5.7); reads do not.
//!
//! Bundle files are not fsynced. They are a derived cache that is verified on every
//! read (`contentSha256` and the fingerprint, spec 30 §3.5): a file left torn or empty
//! by a power loss is unusable and is rebuilt from source, silently. A killed process
//! cannot tear one (the rename is atomic and the page cache survives). Syncing cost
//! three disk flushes per bundle, which made a first run over 116 sources 4× slower.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use fen_domain::layout::{BUNDLES_DIR, SCRATCH_DIR, TEMP_PREFIX};
use fen_domain::ports::indexing::{BundleStore, BundleStoreError, StagedBundle};
use fen_domain::{BundleLocation, CanonicalPath, PathError, PathPolicy};

use super::container::{is_usable, BundleContainer};

/// File name suffix of every bundle.
pub const BUNDLE_SUFFIX: &str = ".bundle.json";

/// The native path of a bundle: `<bundles_dir>/<prefix>/<kind-dir>/<rel>.bundle.json`
/// (spec 30 §3.5). `bundle_prefix` is `local`, `mounted/<mount-id>` or
/// `pulled/<key>`; `path_within_kind_dir` is `/`-separated and keeps the source's
/// extension, so `a.ts` and `a.js` cannot collide.
///
/// ```
/// use std::path::Path;
/// use fen_infrastructure::bundler::bundle_path;
/// let path = bundle_path(Path::new("/r/.fen/bundles"), "local", "models", "net/endpoint.ts");
/// assert_eq!(path, Path::new("/r/.fen/bundles/local/models/net/endpoint.ts.bundle.json"));
/// ```
pub fn bundle_path(
    bundles_dir: &Path,
    bundle_prefix: &str,
    kind_dir: &str,
    path_within_kind_dir: &str,
) -> PathBuf {
    let mut path = bundles_dir.to_path_buf();
    path.extend(
        bundle_prefix
            .split('/')
            .filter(|segment| !segment.is_empty()),
    );
    path.push(kind_dir);
    path.push(format!("{path_within_kind_dir}{BUNDLE_SUFFIX}"));
    path
}

/// The final location of a bundle file built for `fingerprint`.
pub fn bundle_location(
    path: &Path,
    fingerprint: fen_domain::SourceFingerprint,
) -> Result<BundleLocation, PathError> {
    Ok(BundleLocation {
        path: CanonicalPath::new(path, PathPolicy::host())?,
        fingerprint,
    })
}

/// Writes `container` into `scratch_dir` for later publication to `target`.
///
/// The scratch name is derived from the target path, so many bundles can share one
/// scratch directory. Crash-safe by the rename of a complete `.fen-tmp-` file onto
/// that name: the scratch file is complete or absent.
pub fn write_staged(
    container: &BundleContainer,
    scratch_dir: &Path,
    target: BundleLocation,
) -> io::Result<StagedBundle> {
    write_staged_bytes(container, &container.to_json_bytes(), scratch_dir, target)
}

/// [`write_staged`] with the container's bytes already serialized
/// ([`BundleContainer::to_json_bytes`] of `container`), for a caller that keeps them.
pub fn write_staged_bytes(
    container: &BundleContainer,
    bytes: &[u8],
    scratch_dir: &Path,
    target: BundleLocation,
) -> io::Result<StagedBundle> {
    if *container.fingerprint() != target.fingerprint {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bundle fingerprint differs from its target's",
        ));
    }
    fs::create_dir_all(scratch_dir)?;
    let digest = Sha256::digest(target.path.as_str().as_bytes());
    let name: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let scratch_file = scratch_dir.join(format!("{name}{BUNDLE_SUFFIX}"));
    write_atomically(&scratch_file, bytes)?;
    Ok(StagedBundle {
        scratch_file,
        target,
    })
}

/// The bundle files under one `.fen/bundles/` directory.
#[derive(Clone, Debug)]
pub struct FsBundleStore {
    bundles_dir: PathBuf,
    scratch_dir: PathBuf,
}

impl FsBundleStore {
    /// A store over `bundles_dir`; `clear` moves the old tree into `scratch_dir`
    /// (same filesystem) before deleting it.
    pub fn new(bundles_dir: PathBuf, scratch_dir: PathBuf) -> FsBundleStore {
        FsBundleStore {
            bundles_dir,
            scratch_dir,
        }
    }

    /// The store of a repo: `<root>/.fen/bundles`, scratch `<root>/.fen/scratch`.
    pub fn for_repo(repo_root: &Path) -> FsBundleStore {
        FsBundleStore::new(repo_root.join(BUNDLES_DIR), repo_root.join(SCRATCH_DIR))
    }

    /// The bundles directory.
    pub fn bundles_dir(&self) -> &Path {
        &self.bundles_dir
    }

    /// Reads and verifies a bundle against the location's fingerprint.
    pub fn is_usable_blocking(&self, bundle: &BundleLocation) -> bool {
        fs::read(bundle.path.as_str()).is_ok_and(|bytes| is_usable(&bytes, &bundle.fingerprint))
    }

    /// Moves a staged bundle into place.
    pub fn publish_blocking(&self, staged: &StagedBundle) -> io::Result<()> {
        let target = PathBuf::from(staged.target.path.as_str());
        let parent = target.parent().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "bundle path has no parent")
        })?;
        fs::create_dir_all(parent)?;
        // Crash-safe by this rename: the target is the old file or the new one.
        match fs::rename(&staged.scratch_file, &target) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::CrossesDevices => {
                // Scratch on another filesystem: copy beside the target, then rename.
                let bytes = fs::read(&staged.scratch_file)?;
                write_atomically(&target, &bytes)?;
                remove_if_present(&staged.scratch_file)
            }
            Err(error) => Err(error),
        }
    }

    /// Deletes one bundle; a missing file is done. Empty parent directories up to
    /// the bundles directory are pruned, best-effort.
    pub fn evict_blocking(&self, path: &CanonicalPath) -> io::Result<()> {
        let path = PathBuf::from(path.as_str());
        remove_if_present(&path)?;
        let mut dir = path.parent();
        while let Some(current) = dir {
            if current == self.bundles_dir || !current.starts_with(&self.bundles_dir) {
                break;
            }
            if fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
        Ok(())
    }

    /// Every `*.bundle.json` under the bundles directory, as canonical paths in
    /// byte order. Temp files and non-UTF-8 names are skipped; symlinks not followed.
    pub fn list_blocking(&self) -> io::Result<Vec<CanonicalPath>> {
        let mut found = Vec::new();
        let mut pending = vec![self.bundles_dir.clone()];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            for entry in entries {
                let entry = entry?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let file_type = entry.file_type()?;
                if file_type.is_dir() {
                    pending.push(entry.path());
                } else if file_type.is_file() && name.ends_with(BUNDLE_SUFFIX) {
                    if let Ok(path) = CanonicalPath::new(entry.path(), PathPolicy::host()) {
                        found.push(path);
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Deletes the whole bundles tree (layout change).
    pub fn clear_blocking(&self) -> io::Result<()> {
        if fs::symlink_metadata(&self.bundles_dir).is_err() {
            return Ok(());
        }
        // Crash-safe by this rename: the tree is whole at its place or gone from it;
        // a crash during the delete leaves only a temp directory in scratch.
        fs::create_dir_all(&self.scratch_dir)?;
        let doomed = self.scratch_dir.join(unique_temp_name("bundles"));
        match fs::rename(&self.bundles_dir, &doomed) {
            Ok(()) => fs::remove_dir_all(&doomed),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(_) => match fs::remove_dir_all(&self.bundles_dir) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
    }
}

#[async_trait]
impl BundleStore for FsBundleStore {
    async fn is_usable(&self, bundle: &BundleLocation) -> bool {
        let store = self.clone();
        let bundle = bundle.clone();
        tokio::task::spawn_blocking(move || store.is_usable_blocking(&bundle))
            .await
            .unwrap_or(false)
    }

    async fn publish(&self, staged: &StagedBundle) -> Result<(), BundleStoreError> {
        let store = self.clone();
        let staged = staged.clone();
        let target = staged.target.path.clone();
        blocking(
            move || store.publish_blocking(&staged),
            || format!("publish {target}"),
        )
        .await
    }

    async fn evict(&self, path: &CanonicalPath) -> Result<(), BundleStoreError> {
        let store = self.clone();
        let owned = path.clone();
        let what = format!("evict {path}");
        blocking(move || store.evict_blocking(&owned), || what).await
    }

    async fn list(&self) -> Result<Vec<CanonicalPath>, BundleStoreError> {
        let store = self.clone();
        let what = format!("list {}", self.bundles_dir.display());
        blocking(move || store.list_blocking(), || what).await
    }

    async fn open(&self, bundle: &BundleLocation) -> Option<String> {
        let path = PathBuf::from(bundle.path.as_str());
        let fingerprint = bundle.fingerprint;
        tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&path).ok()?;
            if !crate::bundler::is_usable(&bytes, &fingerprint) {
                return None;
            }
            String::from_utf8(bytes).ok()
        })
        .await
        .ok()
        .flatten()
    }

    async fn clear(&self) -> Result<(), BundleStoreError> {
        let store = self.clone();
        let what = format!("clear {}", self.bundles_dir.display());
        blocking(move || store.clear_blocking(), || what).await
    }
}

/// Runs blocking file work off the async runtime and classifies its failure.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
    what: impl FnOnce() -> String,
) -> Result<T, BundleStoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(BundleStoreError(format!("{}: {error}", what()))),
        Err(join) => Err(BundleStoreError(format!("{}: {join}", what()))),
    }
}

/// Writes `bytes` to `path` through a `.fen-tmp-` sibling and a rename (not synced:
/// see the module doc).
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let temp = parent.join(unique_temp_name("bundle"));
    let result = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        drop(file);
        // Crash-safe by this rename: `path` is absent, old or complete.
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `.fen-tmp-<what>-<pid>-<nanos>-<counter>`: unique within and across processes.
fn unique_temp_name(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEMP_PREFIX}{what}-{}-{nanos}-{count}", std::process::id())
}

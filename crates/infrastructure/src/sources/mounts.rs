//! Source mounts: `.fen/mounts.json`, `{"mounts": ["/abs/dir", ...]}` (spec 10 §1.12).
//!
//! A mount is an absolute directory outside the repo whose `extensions/<kind-dir>/`
//! trees hold `SourceMounted` sources of the local aggregate. A missing file means no
//! mounts. Entries are canonicalised (spec 10 §1.6, lexical), deduplicated and sorted.
//! A relative entry, a mount inside the repo root and a mount inside another mount
//! are configuration errors (`config_invalid`, exit 3).
//!
//! `add_mount` and `remove_mount` rewrite the file with a temp file (`.fen-tmp-*` in
//! `.fen/`) and an atomic rename, so a reader sees the old list or the new one. They do
//! not lock: a caller that edits the list concurrently with other writers holds the
//! lifecycle lock around the call.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fen_domain::layout::{MARKER_DIR, MOUNTS_FILE, TEMP_PREFIX};
use fen_domain::repo_root::normalize_lexically;
use fen_domain::{CanonicalPath, PathPolicy, RepoRoot};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::stats::encode_hex;

/// One configured source mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMount {
    /// The directory as configured, normalised lexically (symlinks kept).
    pub native: PathBuf,
    /// Its canonical form, the identity.
    pub canonical: CanonicalPath,
    /// `mount_id(canonical)`: the bundle subtree `mounted/<id>/`.
    pub id: String,
}

/// The validated mount list: canonical, deduplicated, sorted by canonical path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMounts {
    mounts: Vec<SourceMount>,
}

/// The outcome of `add_mount` / `remove_mount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountChange {
    /// The list after the call.
    pub mounts: SourceMounts,
    /// False when the list already had (or lacked) the mount; the file is then not
    /// rewritten.
    pub changed: bool,
}

/// Why the mount list cannot be read, validated or written. `Read` and `Write` are
/// I/O failures (`io`); every other variant is `config_invalid` (see
/// [`MountsError::is_config_invalid`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountsError {
    /// The file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The mounts file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file cannot be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file is not `{"mounts": [<string>, ...]}`.
    #[error("{}: expected {{\"mounts\": [\"/abs/dir\", ...]}}: {message}", path.display())]
    Malformed {
        /// The mounts file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// An entry is relative (or not valid UTF-8).
    #[error("source mount {entry:?} is not an absolute path")]
    NotAbsolute {
        /// The entry as written.
        entry: String,
    },
    /// An entry lies inside the repo root (or is the root).
    #[error("source mount {mount} lies inside the repository {repo}")]
    InsideRepo {
        /// The mount.
        mount: CanonicalPath,
        /// The repo root.
        repo: CanonicalPath,
    },
    /// An entry lies inside another entry.
    #[error("source mount {inner} lies inside source mount {outer}")]
    Nested {
        /// The inner mount.
        inner: CanonicalPath,
        /// The mount containing it.
        outer: CanonicalPath,
    },
}

impl MountsError {
    /// True for the variants the CLI reports as `config_invalid` (exit 3); the others
    /// are `io`.
    pub fn is_config_invalid(&self) -> bool {
        match self {
            MountsError::Read { .. } | MountsError::Write { .. } => false,
            MountsError::Malformed { .. }
            | MountsError::NotAbsolute { .. }
            | MountsError::InsideRepo { .. }
            | MountsError::Nested { .. } => true,
        }
    }
}

/// The first 12 hex digits of SHA-256 of the mount's canonical path text.
///
/// ```
/// use fen_domain::{CanonicalPath, PathPolicy};
/// let mount = CanonicalPath::from_text("/srv/shared", PathPolicy::Posix).unwrap();
/// assert_eq!(fen_infrastructure::sources::mount_id(&mount).len(), 12);
/// ```
pub fn mount_id(path: &CanonicalPath) -> String {
    let digest: [u8; 32] = Sha256::digest(path.as_str().as_bytes()).into();
    let mut hex = encode_hex(&digest);
    hex.truncate(12);
    hex
}

/// Reads and validates `.fen/mounts.json`; a missing file is an empty list.
pub fn read_mounts(repo: &RepoRoot, policy: PathPolicy) -> Result<SourceMounts, MountsError> {
    let entries = read_entries(&mounts_file(repo))?;
    SourceMounts::from_entries(&entries, &repo.canonical, policy)
}

/// Adds a mount (an absolute directory) and rewrites the file atomically. The new list
/// is validated before anything is written.
pub fn add_mount(
    repo: &RepoRoot,
    mount: &Path,
    policy: PathPolicy,
) -> Result<MountChange, MountsError> {
    let file = mounts_file(repo);
    let mut entries = read_entries(&file)?;
    let before = SourceMounts::from_entries(&entries, &repo.canonical, policy)?;
    let text = path_text(mount)?;
    let new = SourceMount::parse(&text, policy)?;
    if before.contains(&new.canonical) {
        return Ok(MountChange {
            mounts: before,
            changed: false,
        });
    }
    entries.push(text);
    let after = SourceMounts::from_entries(&entries, &repo.canonical, policy)?;
    write_mounts(repo, &after)?;
    Ok(MountChange {
        mounts: after,
        changed: true,
    })
}

/// Removes a mount and rewrites the file atomically. Entries are compared by canonical
/// path; an invalid entry can be removed too, which is how a broken list is repaired.
pub fn remove_mount(
    repo: &RepoRoot,
    mount: &Path,
    policy: PathPolicy,
) -> Result<MountChange, MountsError> {
    let file = mounts_file(repo);
    let entries = read_entries(&file)?;
    let text = path_text(mount)?;
    let target = CanonicalPath::from_text(&text, policy).ok();
    let same = |entry: &String| match (&target, CanonicalPath::from_text(entry, policy)) {
        (Some(target), Ok(canonical)) => *target == canonical,
        _ => *entry == text,
    };
    let kept: Vec<String> = entries.iter().filter(|e| !same(e)).cloned().collect();
    let after = SourceMounts::from_entries(&kept, &repo.canonical, policy)?;
    let changed = kept.len() != entries.len();
    if changed {
        write_mounts(repo, &after)?;
    }
    Ok(MountChange {
        mounts: after,
        changed,
    })
}

impl SourceMounts {
    /// Validates raw entries against the repo root: each must be absolute, outside the
    /// repo and outside every other entry. Duplicates (by canonical path) collapse.
    pub fn from_entries(
        entries: &[String],
        repo_root: &CanonicalPath,
        policy: PathPolicy,
    ) -> Result<SourceMounts, MountsError> {
        let mut mounts = entries
            .iter()
            .map(|entry| SourceMount::parse(entry, policy))
            .collect::<Result<Vec<_>, _>>()?;
        mounts.sort_by(|a, b| a.canonical.cmp(&b.canonical));
        mounts.dedup_by(|a, b| a.canonical == b.canonical);
        for mount in &mounts {
            if mount.canonical.starts_under(repo_root) {
                return Err(MountsError::InsideRepo {
                    mount: mount.canonical.clone(),
                    repo: repo_root.clone(),
                });
            }
        }
        // Sorted by canonical text, a mount's ancestors that are mounts sort before it.
        for (index, inner) in mounts.iter().enumerate() {
            if let Some(outer) = mounts[..index]
                .iter()
                .find(|outer| inner.canonical.starts_under(&outer.canonical))
            {
                return Err(MountsError::Nested {
                    inner: inner.canonical.clone(),
                    outer: outer.canonical.clone(),
                });
            }
        }
        Ok(SourceMounts { mounts })
    }

    /// No mounts.
    pub fn empty() -> SourceMounts {
        SourceMounts::default()
    }

    /// The mounts, sorted by canonical path.
    pub fn iter(&self) -> impl Iterator<Item = &SourceMount> {
        self.mounts.iter()
    }

    /// The mounts as a slice.
    pub fn as_slice(&self) -> &[SourceMount] {
        &self.mounts
    }

    /// True when there are no mounts.
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// True when `canonical` is a configured mount.
    pub fn contains(&self, canonical: &CanonicalPath) -> bool {
        self.mounts.iter().any(|m| m.canonical == *canonical)
    }

    /// The canonical paths (what `load_all` needs for reachability).
    pub fn canonical_paths(&self) -> Vec<CanonicalPath> {
        self.mounts.iter().map(|m| m.canonical.clone()).collect()
    }
}

impl SourceMount {
    /// One entry: absolute for `policy`, canonicalised.
    pub fn parse(entry: &str, policy: PathPolicy) -> Result<SourceMount, MountsError> {
        // Text cannot be non-UTF-8, so the only failure is a relative entry.
        let canonical =
            CanonicalPath::from_text(entry, policy).map_err(|_| MountsError::NotAbsolute {
                entry: entry.to_owned(),
            })?;
        Ok(SourceMount {
            native: normalize_lexically(Path::new(entry)),
            id: mount_id(&canonical),
            canonical,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountsDoc {
    mounts: Vec<String>,
}

fn mounts_file(repo: &RepoRoot) -> PathBuf {
    repo.native.join(MOUNTS_FILE)
}

fn path_text(path: &Path) -> Result<String, MountsError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| MountsError::NotAbsolute {
            entry: path.to_string_lossy().into_owned(),
        })
}

fn read_entries(file: &Path) -> Result<Vec<String>, MountsError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            return Err(MountsError::Malformed {
                path: file.to_path_buf(),
                message: "not UTF-8".to_owned(),
            })
        }
        Err(source) => {
            return Err(MountsError::Read {
                path: file.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str::<MountsDoc>(&text)
        .map(|doc| doc.mounts)
        .map_err(|error| MountsError::Malformed {
            path: file.to_path_buf(),
            message: error.to_string(),
        })
}

/// Writes the canonical list: temp file in `.fen/`, fsync, rename over the target
/// (atomic on one filesystem), then fsync the directory so the rename is durable.
fn write_mounts(repo: &RepoRoot, mounts: &SourceMounts) -> Result<(), MountsError> {
    let file = mounts_file(repo);
    let doc = MountsDoc {
        mounts: mounts
            .iter()
            .map(|m| m.canonical.as_str().to_owned())
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    let dir = repo.native.join(MARKER_DIR);
    let temp = dir.join(format!(
        "{TEMP_PREFIX}mounts-{}-{}.json",
        std::process::id(),
        super::stats::now_ns()
    ));
    let write_error = |source| MountsError::Write {
        path: file.clone(),
        source,
    };
    let result = (|| {
        let mut handle = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        handle.write_all(text.as_bytes())?;
        handle.sync_all()?;
        std::fs::rename(&temp, &file)
    })();
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(write_error(error));
    }
    sync_dir(&dir);
    Ok(())
}

/// Best-effort fsync of a directory (not possible on every platform).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, RepoRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(root.join(".fen")).unwrap();
        let repo = RepoRoot::new(root, PathPolicy::Posix).unwrap();
        (dir, repo)
    }

    fn write(repo: &RepoRoot, text: &str) {
        std::fs::write(repo.native.join(MOUNTS_FILE), text).unwrap();
    }

    fn canonical(text: &str) -> CanonicalPath {
        CanonicalPath::from_text(text, PathPolicy::Posix).unwrap()
    }

    #[test]
    fn missing_file_is_no_mounts() {
        let (_dir, repo) = repo();
        assert!(read_mounts(&repo, PathPolicy::Posix).unwrap().is_empty());
    }

    #[test]
    fn entries_are_canonical_deduplicated_and_sorted() {
        let (_dir, repo) = repo();
        write(
            &repo,
            r#"{"mounts": ["/srv/b", "/srv/a/./x/..", "/srv/b/", "/srv/a"]}"#,
        );
        let mounts = read_mounts(&repo, PathPolicy::Posix).unwrap();
        assert_eq!(
            mounts.canonical_paths(),
            vec![canonical("/srv/a"), canonical("/srv/b")]
        );
        let first = &mounts.as_slice()[0];
        assert_eq!(first.native, PathBuf::from("/srv/a"));
        assert_eq!(first.id, mount_id(&canonical("/srv/a")));
    }

    #[test]
    fn mount_id_is_twelve_hex_of_sha256() {
        let id = mount_id(&canonical("/srv/shared"));
        let full = encode_hex(&Sha256::digest(b"/srv/shared").into());
        assert_eq!(id, full[..12]);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn invalid_lists_are_config_errors() {
        let (_dir, repo) = repo();
        let root = repo.canonical.as_str().to_owned();
        type Expect = fn(&MountsError) -> bool;
        let cases: Vec<(String, Expect)> = vec![
            (r#"{"mounts": ["rel/dir"]}"#.to_owned(), |e| {
                matches!(e, MountsError::NotAbsolute { .. })
            }),
            (format!(r#"{{"mounts": ["{root}/sub"]}}"#), |e| {
                matches!(e, MountsError::InsideRepo { .. })
            }),
            (format!(r#"{{"mounts": ["{root}"]}}"#), |e| {
                matches!(e, MountsError::InsideRepo { .. })
            }),
            (
                r#"{"mounts": ["/srv/a/inner", "/srv/a"]}"#.to_owned(),
                |e| {
                    matches!(e, MountsError::Nested { inner, outer }
                    if inner.as_str() == "/srv/a/inner" && outer.as_str() == "/srv/a")
                },
            ),
            (r#"{"mounts": "/srv/a"}"#.to_owned(), |e| {
                matches!(e, MountsError::Malformed { .. })
            }),
            (r#"{"mounts": [], "extra": 1}"#.to_owned(), |e| {
                matches!(e, MountsError::Malformed { .. })
            }),
            ("not json".to_owned(), |e| {
                matches!(e, MountsError::Malformed { .. })
            }),
        ];
        for (text, expected) in cases {
            write(&repo, &text);
            let error = read_mounts(&repo, PathPolicy::Posix).unwrap_err();
            assert!(expected(&error), "{text}: {error:?}");
            assert!(error.is_config_invalid(), "{text}");
        }
        // A sibling whose name extends the root's is not inside it.
        write(
            &repo,
            &format!(r#"{{"mounts": ["{root}-old", "/srv/ab", "/srv/a"]}}"#),
        );
        assert_eq!(
            read_mounts(&repo, PathPolicy::Posix)
                .unwrap()
                .as_slice()
                .len(),
            3
        );
    }

    #[test]
    fn add_and_remove_rewrite_the_file_atomically() {
        let (_dir, repo) = repo();
        let change = add_mount(&repo, Path::new("/srv/b"), PathPolicy::Posix).unwrap();
        assert!(change.changed);
        let change = add_mount(&repo, Path::new("/srv/a/"), PathPolicy::Posix).unwrap();
        assert_eq!(
            change.mounts.canonical_paths(),
            vec![canonical("/srv/a"), canonical("/srv/b")]
        );
        let again = add_mount(&repo, Path::new("/srv/a"), PathPolicy::Posix).unwrap();
        assert!(!again.changed);
        let text = std::fs::read_to_string(repo.native.join(MOUNTS_FILE)).unwrap();
        let doc: MountsDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(doc.mounts, ["/srv/a", "/srv/b"]);

        // Invalid additions write nothing.
        for bad in ["relative", "/srv/a/x"] {
            assert!(add_mount(&repo, Path::new(bad), PathPolicy::Posix).is_err());
        }
        let inside = repo.native.join("m");
        assert!(matches!(
            add_mount(&repo, &inside, PathPolicy::Posix),
            Err(MountsError::InsideRepo { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(repo.native.join(MOUNTS_FILE)).unwrap(),
            text
        );

        let removed = remove_mount(&repo, Path::new("/srv/b/."), PathPolicy::Posix).unwrap();
        assert!(removed.changed);
        assert_eq!(removed.mounts.canonical_paths(), vec![canonical("/srv/a")]);
        let absent = remove_mount(&repo, Path::new("/srv/zz"), PathPolicy::Posix).unwrap();
        assert!(!absent.changed);
        assert_eq!(
            read_mounts(&repo, PathPolicy::Posix).unwrap(),
            removed.mounts
        );
        // No temp file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(repo.native.join(MARKER_DIR))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn remove_repairs_a_broken_list() {
        let (_dir, repo) = repo();
        write(&repo, r#"{"mounts": ["/srv/a", "/srv/a/inner"]}"#);
        assert!(read_mounts(&repo, PathPolicy::Posix).is_err());
        let change = remove_mount(&repo, Path::new("/srv/a/inner"), PathPolicy::Posix).unwrap();
        assert!(change.changed);
        assert_eq!(
            read_mounts(&repo, PathPolicy::Posix)
                .unwrap()
                .canonical_paths(),
            vec![canonical("/srv/a")]
        );
    }
}

//! Repo-root discovery, the pure part (spec 10 §1.10). The probing function lives in
//! `fen_infrastructure::sources`, because the domain does no I/O.

use std::path::{Component, Path, PathBuf};

use crate::path::{CanonicalPath, PathError, PathPolicy};

/// A repository root: the native path as discovered (lexical, symlinks kept) and its
/// canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRoot {
    /// The native path.
    pub native: PathBuf,
    /// Its canonical form, the identity used by the catalog.
    pub canonical: CanonicalPath,
}

impl RepoRoot {
    /// Builds a root from an absolute native path.
    pub fn new(native: PathBuf, policy: PathPolicy) -> Result<RepoRoot, PathError> {
        let canonical = CanonicalPath::new(&native, policy)?;
        Ok(RepoRoot { native, canonical })
    }
}

/// No directory from the start upwards has a `.fen/` directory.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a fen repository (or any parent up to the filesystem root): {}", start.display())]
pub struct RepoRootNotFound {
    /// Where the search started.
    pub start: PathBuf,
}

/// Normalises `.` and `..` lexically, like a shell's logical `pwd`. Never climbs above
/// the root.
pub fn normalize_lexically(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Walks `start` and its ancestors; the first directory `d` for which
/// `is_marker_dir(d/.fen)` is true is the root. `start` must be absolute; it is
/// normalised lexically first and never resolved through symlinks.
pub fn find_repo_root_with(
    start: &Path,
    is_marker_dir: impl Fn(&Path) -> bool,
) -> Result<PathBuf, RepoRootNotFound> {
    let start = normalize_lexically(start);
    let mut candidate: &Path = &start;
    loop {
        if is_marker_dir(&candidate.join(crate::layout::MARKER_DIR)) {
            return Ok(candidate.to_path_buf());
        }
        match candidate.parent() {
            Some(parent) if parent != candidate => candidate = parent,
            _ => return Err(RepoRootNotFound { start }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_marker_wins() {
        let markers = ["/w/outer/.fen", "/w/outer/inner/.fen"];
        let probe = |p: &Path| markers.iter().any(|m| Path::new(m) == p);
        assert_eq!(
            find_repo_root_with(Path::new("/w/outer/inner/src"), probe).unwrap(),
            PathBuf::from("/w/outer/inner")
        );
        assert_eq!(
            find_repo_root_with(Path::new("/w/outer/x/../y"), probe).unwrap(),
            PathBuf::from("/w/outer")
        );
        assert!(find_repo_root_with(Path::new("/elsewhere"), probe).is_err());
    }

    #[test]
    fn lexical_normalisation() {
        assert_eq!(
            normalize_lexically(Path::new("/a/./b/../c")),
            PathBuf::from("/a/c")
        );
        assert_eq!(normalize_lexically(Path::new("/../a")), PathBuf::from("/a"));
    }
}

//! Repo-root discovery with real filesystem probes (spec 10 §1.10).

use std::path::{Path, PathBuf};

use fen_domain::repo_root::{find_repo_root_with, normalize_lexically, RepoRoot, RepoRootNotFound};
use fen_domain::PathPolicy;

/// Makes `path` absolute against the current directory and normalises it lexically.
/// Never resolves symlinks.
pub fn absolute_lexical(path: &Path) -> std::io::Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    Ok(normalize_lexically(&joined))
}

/// The innermost ancestor of `start` (itself included) that has a `.fen/` directory.
/// A symlinked `.fen` counts when it points at a directory; a file named `.fen` does
/// not; a stat error counts as "no marker".
pub fn find_repo_root(start: &Path) -> Result<RepoRoot, RepoRootNotFound> {
    let start = absolute_lexical(start).map_err(|_| RepoRootNotFound {
        start: start.to_path_buf(),
    })?;
    let native = find_repo_root_with(&start, |marker| {
        std::fs::metadata(marker)
            .map(|m| m.is_dir())
            .unwrap_or(false)
    })?;
    RepoRoot::new(native, PathPolicy::host()).map_err(|_| RepoRootNotFound { start })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    #[test]
    fn scenario_11_discovery() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let outer = base.join("outer");
        let inner = outer.join("inner");
        std::fs::create_dir_all(inner.join("src")).unwrap();
        std::fs::create_dir(outer.join(".fen")).unwrap();
        std::fs::create_dir(inner.join(".fen")).unwrap();
        assert_eq!(find_repo_root(&inner.join("src")).unwrap().native, inner);

        // A symlinked directory keeps its lexical path.
        let real = base.join("real");
        std::fs::create_dir_all(real.join(".fen")).unwrap();
        std::fs::create_dir_all(real.join("sub")).unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(find_repo_root(&link.join("sub")).unwrap().native, link);

        // No marker.
        let bare = base.join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        let error = find_repo_root(&bare).unwrap_err();
        assert_eq!(error.start, bare);

        // A file named .fen is not a marker.
        let filey = base.join("filey");
        std::fs::create_dir_all(&filey).unwrap();
        std::fs::write(filey.join(".fen"), "").unwrap();
        assert!(find_repo_root(&filey).is_err());

        // A symlinked .fen pointing at a directory is a marker.
        let linked = base.join("linked");
        std::fs::create_dir_all(&linked).unwrap();
        std::os::unix::fs::symlink(real.join(".fen"), linked.join(".fen")).unwrap();
        assert_eq!(find_repo_root(&linked).unwrap().native, linked);
    }
}

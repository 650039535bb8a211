//! Where a row may live: reachability, origin and ownership of stored rows
//! (spec 10 §5.2–§5.3).
//!
//! `load_all` skips the rows this module rejects, `save_all` prunes them (step 1) and
//! refuses to write new ones (precondition P5), so the two always agree on which rows
//! can be loaded back.

use fen_domain::layout::{LOCAL_DIR, PULLED_DIR};
use fen_domain::ports::SkipReason;
use fen_domain::{
    CanonicalPath, ExtensionId, ExtensionName, ExtensionOrigin, ExtensionVersion, Origin,
    PathPolicy,
};

use super::CatalogContext;

/// The repo-derived roots rows are checked against.
#[derive(Clone, Debug)]
pub(crate) struct Placement {
    policy: PathPolicy,
    repo_root: CanonicalPath,
    local_dir: CanonicalPath,
    pulled_dir: CanonicalPath,
    mounts: Vec<CanonicalPath>,
}

/// A row that fits its place: who owns it and where its aggregate is rooted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placed {
    pub(crate) path: CanonicalPath,
    pub(crate) id: ExtensionId,
    pub(crate) origin: Origin,
    pub(crate) extension_origin: ExtensionOrigin,
    pub(crate) root: CanonicalPath,
}

impl Placement {
    pub(crate) fn new(ctx: &CatalogContext) -> Placement {
        Placement {
            policy: ctx.policy,
            repo_root: ctx.repo_root.clone(),
            local_dir: ctx.repo_root.join(LOCAL_DIR),
            pulled_dir: ctx.repo_root.join(PULLED_DIR),
            mounts: ctx.mounts.clone(),
        }
    }

    /// How stored paths are canonicalised.
    pub(crate) fn policy(&self) -> PathPolicy {
        self.policy
    }

    /// The root of a pulled aggregate: `<repo>/.fen/pulled-extensions/<key>`.
    pub(crate) fn pulled_root(&self, name: &ExtensionName) -> CanonicalPath {
        self.pulled_dir.join(&name.directory_key())
    }

    /// True iff the path lies in the pulled tree: its row is of the pulled class for
    /// supersession and I-Repo-1 (spec 10 §5.5).
    pub(crate) fn is_pulled_path(&self, path: &str) -> bool {
        CanonicalPath::from_text(path, self.policy)
            .map(|p| p.starts_under(&self.pulled_dir))
            .unwrap_or(false)
    }

    /// Spec 10 §5.3 steps 1–3 for one stored row.
    pub(crate) fn place(
        &self,
        path_text: &str,
        name_text: &str,
        version_text: &str,
    ) -> Result<Placed, SkipReason> {
        // 1. Reachable: canonical, and under the repo root or a mount.
        let path = CanonicalPath::from_text(path_text, self.policy)
            .map_err(|_| SkipReason::Unreachable)?;
        let reachable =
            path.starts_under(&self.repo_root) || self.mounts.iter().any(|m| path.starts_under(m));
        if !reachable {
            return Err(SkipReason::Unreachable);
        }
        // 2. A stored identity that parses.
        let name = ExtensionName::parse(name_text).map_err(|_| SkipReason::Unowned)?;
        let version = ExtensionVersion::parse(version_text).map_err(|_| SkipReason::Unowned)?;
        // 3. The identity fits the path. A stored path that is not in canonical form
        //    could never be matched by a source, so it counts as misfiled too.
        if path.as_str() != path_text {
            return Err(SkipReason::Misfiled);
        }
        let (origin, extension_origin, root) = if path.starts_under(&self.pulled_dir) {
            let key = path
                .relative_to(&self.pulled_dir)
                .and_then(directory_key_of)
                .ok_or(SkipReason::Misfiled)?;
            if name.is_local() || name.directory_key() != key {
                return Err(SkipReason::Misfiled);
            }
            (
                Origin::Pulled,
                ExtensionOrigin::Pulled,
                self.pulled_root(&name),
            )
        } else if path.starts_under(&self.local_dir) && path != self.local_dir {
            if !name.is_local() {
                return Err(SkipReason::Misfiled);
            }
            (
                Origin::Local,
                ExtensionOrigin::Local,
                self.repo_root.clone(),
            )
        } else if self
            .mounts
            .iter()
            .any(|m| path.starts_under(m) && &path != m)
        {
            if !name.is_local() {
                return Err(SkipReason::Misfiled);
            }
            (
                Origin::SourceMounted,
                ExtensionOrigin::Local,
                self.repo_root.clone(),
            )
        } else {
            return Err(SkipReason::Misfiled);
        };
        Ok(Placed {
            path,
            id: ExtensionId::new(name, version),
            origin,
            extension_origin,
            root,
        })
    }
}

/// `@scope/seg+seg` from `@scope/seg+seg/<kind-dir>/...`: the first two components of
/// a path relative to the pulled tree, when at least one more component follows.
fn directory_key_of(relative: &str) -> Option<String> {
    let mut parts = relative.splitn(3, '/');
    let scope = parts.next()?;
    let name = parts.next()?;
    let rest = parts.next()?;
    if scope.is_empty() || name.is_empty() || rest.is_empty() {
        return None;
    }
    Some(format!("{scope}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn placement(mounts: &[&str]) -> Placement {
        let cp = |t: &str| CanonicalPath::from_text(t, PathPolicy::Posix).unwrap();
        Placement::new(&CatalogContext {
            repo_root: cp("/home/u/repo"),
            mounts: mounts.iter().map(|m| cp(m)).collect(),
            policy: PathPolicy::Posix,
            db_path: PathBuf::from("/home/u/repo/.fen/_extension_catalog.db"),
        })
    }

    fn check(path: &str, name: &str, version: &str, expected: Result<Origin, SkipReason>) {
        let got = placement(&["/m"])
            .place(path, name, version)
            .map(|placed| placed.origin);
        assert_eq!(got, expected, "{path} {name}@{version}");
    }

    #[test]
    fn rows_are_placed_as_spec_10_5_3_says() {
        let pulled = "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec2/models/vpc.ts";
        check(pulled, "@acme/aws/ec2", "2026.01.02.3", Ok(Origin::Pulled));
        check(
            pulled,
            "@acme/aws",
            "2026.01.02.3",
            Err(SkipReason::Misfiled),
        );
        check(pulled, "@local/repo", "0.0.0", Err(SkipReason::Misfiled));
        check(pulled, "", "", Err(SkipReason::Unowned));
        check(pulled, "@acme/aws/ec2", "", Err(SkipReason::Unowned));
        let local = "/home/u/repo/extensions/models/x.ts";
        check(local, "@local/repo", "0.0.0", Ok(Origin::Local));
        check(local, "@acme/x", "2026.01.02.3", Err(SkipReason::Misfiled));
        check(
            "/m/extensions/models/y.ts",
            "@local/repo",
            "0.0.0",
            Ok(Origin::SourceMounted),
        );
        check(
            "/srv/repo/extensions/models/x.ts",
            "@local/repo",
            "0.0.0",
            Err(SkipReason::Unreachable),
        );
        check(
            "/home/u/repo-old/extensions/models/x.ts",
            "@local/repo",
            "0.0.0",
            Err(SkipReason::Unreachable),
        );
        check(
            "/home/u/repo/models/x.ts",
            "@local/repo",
            "0.0.0",
            Err(SkipReason::Misfiled),
        );
        check(
            "/home/u/repo/extensions//models/x.ts",
            "@local/repo",
            "0.0.0",
            Err(SkipReason::Misfiled),
        );
        check(
            "/home/u/repo/.fen/pulled-extensions/@acme/x",
            "@acme/x",
            "2026.01.02.3",
            Err(SkipReason::Misfiled),
        );
    }

    #[test]
    fn pulled_roots_use_the_directory_key() {
        let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
        assert_eq!(
            placement(&[]).pulled_root(&name).as_str(),
            "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec2"
        );
    }
}

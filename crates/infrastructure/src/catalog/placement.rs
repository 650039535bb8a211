//! Where a row may live: reachability, origin and ownership of stored rows
//! (spec 10 §5.2–§5.3).
//!
//! `load_all` skips the rows this module rejects, `save_all` prunes them (step 1) and
//! refuses to write new ones (precondition P5), so the two always agree on which rows
//! can be loaded back.

use std::cell::OnceCell;

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
#[cfg(test)]
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

    /// `<repo>/.fen/pulled-extensions`, the pulled tree.
    pub(crate) fn pulled_dir(&self) -> &CanonicalPath {
        &self.pulled_dir
    }

    /// True iff the path lies in the pulled tree: its row is of the pulled class for
    /// supersession and I-Repo-1 (spec 10 §5.5).
    pub(crate) fn is_pulled_path(&self, path: &str) -> bool {
        CanonicalPath::from_text(path, self.policy)
            .map(|p| p.starts_under(&self.pulled_dir))
            .unwrap_or(false)
    }

    /// Step 2 of spec 10 §5.3 for a stored identity: parsed once for every row that
    /// carries it.
    pub(crate) fn identity(&self, name_text: &str, version_text: &str) -> Identity {
        let parsed = match (
            ExtensionName::parse(name_text),
            ExtensionVersion::parse(version_text),
        ) {
            (Ok(name), Ok(version)) => Ok(Owner {
                key: (!name.is_local()).then(|| name.directory_key()),
                id: ExtensionId::new(name, version),
                root: OnceCell::new(),
            }),
            _ => Err(SkipReason::Unowned),
        };
        Identity { parsed }
    }

    /// Spec 10 §5.3 steps 1–3 for one stored row.
    #[cfg(test)]
    pub(crate) fn place(
        &self,
        path_text: &str,
        name_text: &str,
        version_text: &str,
    ) -> Result<Placed, SkipReason> {
        let identity = self.identity(name_text, version_text);
        let (path, origin, extension_origin, owner) = self.locate(path_text, &identity)?;
        Ok(Placed {
            path,
            id: owner.id.clone(),
            origin,
            extension_origin,
            root: self.root_of(owner).clone(),
        })
    }

    /// [`Placement::place`] with the identity already parsed: the row's canonical path,
    /// its origin and the root of its aggregate.
    pub(crate) fn locate_as<'a>(
        &self,
        path_text: &str,
        identity: &'a Identity,
    ) -> Result<(CanonicalPath, Origin, &'a CanonicalPath), SkipReason> {
        let (path, origin, _, owner) = self.locate(path_text, identity)?;
        Ok((path, origin, self.root_of(owner)))
    }

    /// The aggregate a parsed identity implies: its id, origin and root.
    pub(crate) fn owner<'a>(
        &self,
        identity: &'a Identity,
    ) -> Option<(&'a ExtensionId, ExtensionOrigin, &'a CanonicalPath)> {
        let owner = identity.parsed.as_ref().ok()?;
        let origin = match owner.key {
            Some(_) => ExtensionOrigin::Pulled,
            None => ExtensionOrigin::Local,
        };
        Some((&owner.id, origin, self.root_of(owner)))
    }

    /// Whether [`Placement::place`] accepts the row, without building its [`Placed`].
    pub(crate) fn check(&self, path_text: &str, identity: &Identity) -> Result<(), SkipReason> {
        self.fit(path_text, identity).map(|_| ())
    }

    /// What [`Placement::place`] decides for the row, without building its path or id:
    /// its origins and the root of its aggregate. A stored path that is already
    /// canonical (nearly every row) is classified as it is, without allocating its
    /// [`CanonicalPath`].
    pub(crate) fn fit<'a>(
        &self,
        path_text: &str,
        identity: &'a Identity,
    ) -> Result<(Origin, ExtensionOrigin, &'a CanonicalPath), SkipReason> {
        let (origin, extension_origin, owner) = if is_canonical(path_text, self.policy) {
            // `CanonicalPath::from_text(path_text)` would give `path_text` back.
            self.classify(path_text, true, identity)?
        } else {
            let (_, origin, extension_origin, owner) = self.locate(path_text, identity)?;
            (origin, extension_origin, owner)
        };
        Ok((origin, extension_origin, self.root_of(owner)))
    }

    /// The root of the aggregate an owner implies, computed once.
    fn root_of<'a>(&self, owner: &'a Owner) -> &'a CanonicalPath {
        owner.root.get_or_init(|| match &owner.key {
            Some(_) => self.pulled_root(&owner.id.name),
            None => self.repo_root.clone(),
        })
    }

    fn locate<'a>(
        &self,
        path_text: &str,
        identity: &'a Identity,
    ) -> Result<(CanonicalPath, Origin, ExtensionOrigin, &'a Owner), SkipReason> {
        // 1. Reachable: canonical, and under the repo root or a mount.
        let path = CanonicalPath::from_text(path_text, self.policy)
            .map_err(|_| SkipReason::Unreachable)?;
        let (origin, extension_origin, owner) =
            self.classify(path.as_str(), path.as_str() == path_text, identity)?;
        Ok((path, origin, extension_origin, owner))
    }

    /// Steps 1–3 for the canonical text `path` of a row; `as_stored` tells whether the
    /// stored text was already canonical.
    fn classify<'a>(
        &self,
        path: &str,
        as_stored: bool,
        identity: &'a Identity,
    ) -> Result<(Origin, ExtensionOrigin, &'a Owner), SkipReason> {
        // 1. Under the repo root or a mount.
        let reachable = under(path, &self.repo_root) || self.mounts.iter().any(|m| under(path, m));
        if !reachable {
            return Err(SkipReason::Unreachable);
        }
        // 2. A stored identity that parses.
        let owner = identity.parsed.as_ref().map_err(|reason| *reason)?;
        // 3. The identity fits the path. A stored path that is not in canonical form
        //    could never be matched by a source, so it counts as misfiled too.
        if !as_stored {
            return Err(SkipReason::Misfiled);
        }
        let (origin, extension_origin) = if under(path, &self.pulled_dir) {
            let fits = relative(path, &self.pulled_dir)
                .zip(owner.key.as_deref())
                .is_some_and(|(relative, key)| has_directory_key(relative, key));
            if !fits {
                return Err(SkipReason::Misfiled);
            }
            (Origin::Pulled, ExtensionOrigin::Pulled)
        } else if under(path, &self.local_dir) && path != self.local_dir.as_str() {
            if owner.key.is_some() {
                return Err(SkipReason::Misfiled);
            }
            (Origin::Local, ExtensionOrigin::Local)
        } else if self
            .mounts
            .iter()
            .any(|m| under(path, m) && path != m.as_str())
        {
            if owner.key.is_some() {
                return Err(SkipReason::Misfiled);
            }
            (Origin::SourceMounted, ExtensionOrigin::Local)
        } else {
            return Err(SkipReason::Misfiled);
        };
        Ok((origin, extension_origin, owner))
    }
}

/// `CanonicalPath::starts_under` on canonical text: `path` is `base` or lies below it
/// (segment-aware).
fn under(path: &str, base: &CanonicalPath) -> bool {
    let base = base.as_str();
    if path == base {
        return true;
    }
    if base.ends_with('/') {
        return path.starts_with(base);
    }
    path.len() > base.len() && path.starts_with(base) && path.as_bytes()[base.len()] == b'/'
}

/// `CanonicalPath::relative_to` on canonical text.
fn relative<'a>(path: &'a str, base: &CanonicalPath) -> Option<&'a str> {
    if path == base.as_str() {
        return Some("");
    }
    if !under(path, base) {
        return None;
    }
    let rest = &path[base.as_str().len()..];
    Some(rest.strip_prefix('/').unwrap_or(rest))
}

/// True when `CanonicalPath::from_text(text, policy)` certainly returns `text`
/// unchanged: an absolute POSIX path without empty, `.` or `..` segments (and, on
/// macOS, ASCII, which NFC leaves alone). Conservative: `false` only means "ask
/// `from_text`".
fn is_canonical(text: &str, policy: PathPolicy) -> bool {
    let posix = |text: &str| {
        let Some(rest) = text.strip_prefix('/') else {
            return false;
        };
        // Every segment of `rest` is non-empty and neither `.` nor `..` (an empty
        // `rest` is the root itself).
        rest.is_empty()
            || rest
                .as_bytes()
                .split(|byte| *byte == b'/')
                .all(|segment| !matches!(segment, b"" | b"." | b".."))
    };
    match policy {
        PathPolicy::Posix => posix(text),
        PathPolicy::MacOs => text.is_ascii() && posix(text),
        PathPolicy::Windows => false,
    }
}

/// A stored identity, parsed: the owner of its rows, or why they are `Unowned`.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    parsed: Result<Owner, SkipReason>,
}

/// A stored identity that parses.
#[derive(Clone, Debug)]
struct Owner {
    id: ExtensionId,
    /// The directory key of a pulled name; `None` for a local name.
    key: Option<String>,
    /// The root of the aggregate the identity implies, computed when first placed.
    root: OnceCell<CanonicalPath>,
}

/// True iff `relative` (a path relative to the pulled tree) is `<key>/<more>`: its first
/// two components, both non-empty, are `key` and at least one non-empty component
/// follows.
fn has_directory_key(relative: &str, key: &str) -> bool {
    let mut parts = relative.splitn(3, '/');
    let (Some(scope), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !scope.is_empty()
        && !name.is_empty()
        && !rest.is_empty()
        && key.len() == scope.len() + 1 + name.len()
        && key.starts_with(scope)
        && key[scope.len()..].starts_with('/')
        && key.ends_with(name)
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

    proptest::proptest! {
        #[test]
        fn the_fast_path_agrees_with_canonicalisation(
            segments in proptest::collection::vec(
                proptest::sample::select(vec!["", ".", "..", "a", "B", "é", "e\u{301}", "x.ts"]),
                0..6,
            ),
            absolute in proptest::bool::ANY,
        ) {
            let text = format!("{}{}", if absolute { "/" } else { "" }, segments.join("/"));
            for policy in [PathPolicy::Posix, PathPolicy::MacOs, PathPolicy::Windows] {
                if is_canonical(&text, policy) {
                    let canonical = CanonicalPath::from_text(&text, policy).map(|p| p.as_str().to_owned());
                    proptest::prop_assert_eq!(canonical, Ok(text.clone()));
                }
            }
        }

        #[test]
        fn text_helpers_match_canonical_path(
            path in proptest::sample::select(vec!["/", "/a", "/a/b", "/ab", "/a/b/c", "/b"]),
            base in proptest::sample::select(vec!["/", "/a", "/a/b", "/ab"]),
        ) {
            let (p, b) = (CanonicalPath::from_text(path, PathPolicy::Posix).unwrap(), CanonicalPath::from_text(base, PathPolicy::Posix).unwrap());
            proptest::prop_assert_eq!(under(path, &b), p.starts_under(&b));
            proptest::prop_assert_eq!(relative(path, &b), p.relative_to(&b));
        }
    }

    #[test]
    fn check_agrees_with_place() {
        let placement = placement(&["/m"]);
        let rows = [
            "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec2/models/vpc.ts",
            "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec2",
            "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec2/",
            "/home/u/repo/.fen/pulled-extensions/@acme/aws+ec3/models/vpc.ts",
            "/home/u/repo/.fen/pulled-extensions//@acme/aws+ec2/models/vpc.ts",
            "/home/u/repo/extensions/models/x.ts",
            "/home/u/repo/extensions/./models/x.ts",
            "/home/u/repo/extensions",
            "/home/u/repo/models/x.ts",
            "/m/extensions/models/y.ts",
            "/m",
            "/srv/repo/extensions/models/x.ts",
            "/home/u/repo/../repo/extensions/models/x.ts",
            "relative/x.ts",
        ];
        let owners = [
            ("@acme/aws/ec2", "2026.01.02.3"),
            ("@local/repo", "0.0.0"),
            ("@acme/aws", "2026.01.02.3"),
            ("", ""),
            ("@local/repo", ""),
        ];
        for path in rows {
            for (name, version) in owners {
                let identity = placement.identity(name, version);
                assert_eq!(
                    placement.check(path, &identity),
                    placement.place(path, name, version).map(|_| ()),
                    "{path} {name}@{version}"
                );
            }
        }
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

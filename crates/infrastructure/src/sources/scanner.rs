//! `FsSourceScanner`: the filesystem adapter of the `SourceScanner` port (spec 10
//! §6.4): scan roots, the walk, fingerprints and existence probes for one pass.
//!
//! One scanner value lives for one pass and owns that pass's `FreshnessCache`; build a
//! new one (or call [`FsSourceScanner::for_next_pass`]) for the next pass. The port is
//! async, but every call here is short local filesystem work done inline on the
//! calling task; the `*_blocking` methods expose the same work to synchronous callers.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use fen_domain::layout::{LOCAL_DIR, PULLED_DIR};
use fen_domain::ports::indexing::{Fingerprinted, ScanRoot, ScannedEntry};
use fen_domain::ports::{FileStats, SourceScanner};
use fen_domain::{
    CanonicalPath, ExtensionName, LoaderKind, Origin, PathPolicy, RepoRoot, SourceFingerprint,
};

use super::cache::{FastMap, FastSet, FreshnessCache};
use super::fingerprint::fingerprint;
use super::mounts::SourceMounts;
use super::walk::walk_scan_root;

/// Walks and fingerprints sources on the local filesystem.
#[derive(Debug)]
pub struct FsSourceScanner {
    repo_root: RepoRoot,
    mounts: SourceMounts,
    policy: PathPolicy,
    cache: Mutex<FreshnessCache>,
    /// Directory listings taken by `exists`, one per directory and pass: the warm pass
    /// asks about the bundle of every `Indexed` row, mostly a few dozen directories of
    /// many bundles each, and one `read_dir` answers a whole directory for the price
    /// of a few `stat`s. `None`: the directory could not be listed (ask `stat`).
    listings: Mutex<FastMap<String, Option<FastSet<OsString>>>>,
}

impl FsSourceScanner {
    /// A scanner for one pass over a repo with its validated mounts.
    pub fn new(repo_root: RepoRoot, mounts: SourceMounts, policy: PathPolicy) -> FsSourceScanner {
        FsSourceScanner {
            repo_root,
            mounts,
            policy,
            cache: Mutex::new(FreshnessCache::new()),
            listings: Mutex::new(FastMap::default()),
        }
    }

    /// A scanner with the same configuration and an empty cache, for the next pass.
    pub fn for_next_pass(&self) -> FsSourceScanner {
        FsSourceScanner::new(self.repo_root.clone(), self.mounts.clone(), self.policy)
    }

    /// The repo root.
    pub fn repo_root(&self) -> &RepoRoot {
        &self.repo_root
    }

    /// The mounts.
    pub fn mounts(&self) -> &SourceMounts {
        &self.mounts
    }

    /// The scan roots of a loader kind: local, then each mount, then each pulled
    /// extension in the given order (spec 10 §1.11, spec 30 §3.1).
    pub fn roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        let kind_dir = loader_kind.kind_dir();
        let local_boundary = self.repo_root.native.join(LOCAL_DIR);
        let mut roots = vec![ScanRoot {
            dir: local_boundary.join(kind_dir),
            boundary: local_boundary,
            extension_root: self.repo_root.canonical.clone(),
            origin: Origin::Local,
            loader_kind,
            bundle_prefix: "local".to_owned(),
        }];
        for mount in self.mounts.iter() {
            let boundary = mount.native.join(LOCAL_DIR);
            roots.push(ScanRoot {
                dir: boundary.join(kind_dir),
                boundary,
                extension_root: self.repo_root.canonical.clone(),
                origin: Origin::SourceMounted,
                loader_kind,
                bundle_prefix: format!("mounted/{}", mount.id),
            });
        }
        for (name, extension_root) in pulled {
            let key = name.directory_key();
            let boundary = pulled_root(&self.repo_root.native, &key);
            roots.push(ScanRoot {
                dir: boundary.join(kind_dir),
                boundary,
                extension_root: extension_root.clone(),
                origin: Origin::Pulled,
                loader_kind,
                bundle_prefix: format!("pulled/{key}"),
            });
        }
        roots
    }

    /// The walk of one root, synchronously (see [`walk_scan_root`]).
    pub fn walk_blocking(
        &self,
        root: &ScanRoot,
        known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        walk_scan_root(root, known, self.policy, &mut self.cache())
    }

    /// The fingerprint of one entry, synchronously (see [`fingerprint`]).
    pub fn fingerprint_blocking(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        fingerprint(
            &entry.native_path,
            &entry.root.boundary,
            known,
            &mut self.cache(),
        )
    }

    fn cache(&self) -> MutexGuard<'_, FreshnessCache> {
        // A panic while holding the cache leaves at worst a missing entry: still valid.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SourceScanner for FsSourceScanner {
    fn scan_roots(
        &self,
        loader_kind: LoaderKind,
        pulled: &[(ExtensionName, CanonicalPath)],
    ) -> Vec<ScanRoot> {
        self.roots(loader_kind, pulled)
    }

    async fn walk(
        &self,
        root: &ScanRoot,
        known: &BTreeMap<CanonicalPath, FileStats>,
    ) -> Vec<ScannedEntry> {
        self.walk_blocking(root, known)
    }

    async fn fingerprint(
        &self,
        entry: &ScannedEntry,
        known: Option<(&SourceFingerprint, &FileStats)>,
    ) -> Fingerprinted {
        self.fingerprint_blocking(entry, known)
    }

    async fn exists(&self, path: &CanonicalPath) -> bool {
        // The directory as text (a canonical path is `/`-separated): no `Path`
        // component parsing and a cheap hash per lookup, one per row of the catalog.
        let text = path.as_str();
        let Some((dir, name)) = text
            .rsplit_once('/')
            .filter(|(dir, name)| !dir.is_empty() && !matches!(*name, "" | "." | ".."))
        else {
            return std::fs::symlink_metadata(text).is_ok();
        };
        let name = OsStr::new(name);
        let mut listings = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(listing) = listings.get(dir) {
            return match listing {
                Some(names) => names.contains(name),
                None => std::fs::symlink_metadata(text).is_ok(),
            };
        }
        let listing = listings.entry(dir.to_owned()).or_insert_with(|| {
            // Every directory entry, dangling symlinks included, as `symlink_metadata`
            // would find them. A directory that does not exist holds nothing.
            match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .map(|entry| entry.map(|e| e.file_name()))
                    .collect::<Result<FastSet<OsString>, _>>()
                    .ok(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    Some(FastSet::default())
                }
                Err(_) => None,
            }
        });
        match listing {
            Some(names) => names.contains(name),
            None => std::fs::symlink_metadata(text).is_ok(),
        }
    }

    fn files_hashed(&self) -> usize {
        self.cache().files_hashed()
    }
}

/// Every scan root of all five loader kinds (local, mounted, pulled), sorted and
/// deduplicated: the source-dirs input of the catalog's invalidation guard.
pub fn all_scan_root_dirs(
    repo_root: &CanonicalPath,
    mounts: &SourceMounts,
    pulled: &[ExtensionName],
) -> Vec<CanonicalPath> {
    let mut boundaries = vec![repo_root.join(LOCAL_DIR)];
    boundaries.extend(mounts.iter().map(|m| m.canonical.join(LOCAL_DIR)));
    boundaries.extend(
        pulled
            .iter()
            .map(|name| repo_root.join(PULLED_DIR).join(&name.directory_key())),
    );
    let mut dirs: Vec<CanonicalPath> = boundaries
        .iter()
        .flat_map(|boundary| {
            LoaderKind::ALL
                .into_iter()
                .map(move |kind| boundary.join(kind.kind_dir()))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// `<root>/.fen/pulled-extensions/<key>` as a native path.
fn pulled_root(repo_root: &Path, key: &str) -> PathBuf {
    let mut path = repo_root.to_path_buf();
    path.extend(PULLED_DIR.split('/'));
    path.extend(key.split('/'));
    path
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::sources::mounts::SourceMount;

    fn canonical(text: &str) -> CanonicalPath {
        CanonicalPath::from_text(text, PathPolicy::Posix).unwrap()
    }

    fn scanner() -> FsSourceScanner {
        let repo = RepoRoot::new(PathBuf::from("/w/repo"), PathPolicy::Posix).unwrap();
        let mounts = SourceMounts::from_entries(
            &["/m/two".to_owned(), "/m/one".to_owned()],
            &repo.canonical,
            PathPolicy::Posix,
        )
        .unwrap();
        FsSourceScanner::new(repo, mounts, PathPolicy::Posix)
    }

    #[test]
    fn scan_roots_in_spec_order() {
        let scanner = scanner();
        let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
        let pulled_root = canonical("/w/repo/.fen/pulled-extensions/@acme/aws+ec2");
        let roots = scanner.scan_roots(LoaderKind::Vault, &[(name, pulled_root.clone())]);
        let summary: Vec<(&Path, &Path, Origin, &str, &str)> = roots
            .iter()
            .map(|r| {
                (
                    r.dir.as_path(),
                    r.boundary.as_path(),
                    r.origin,
                    r.bundle_prefix.as_str(),
                    r.extension_root.as_str(),
                )
            })
            .collect();
        let one = SourceMount::parse("/m/one", PathPolicy::Posix).unwrap().id;
        let two = SourceMount::parse("/m/two", PathPolicy::Posix).unwrap().id;
        let mounted_one = format!("mounted/{one}");
        let mounted_two = format!("mounted/{two}");
        let expected: Vec<(&Path, &Path, Origin, &str, &str)> = vec![
            (
                Path::new("/w/repo/extensions/vaults"),
                Path::new("/w/repo/extensions"),
                Origin::Local,
                "local",
                "/w/repo",
            ),
            (
                Path::new("/m/one/extensions/vaults"),
                Path::new("/m/one/extensions"),
                Origin::SourceMounted,
                &mounted_one,
                "/w/repo",
            ),
            (
                Path::new("/m/two/extensions/vaults"),
                Path::new("/m/two/extensions"),
                Origin::SourceMounted,
                &mounted_two,
                "/w/repo",
            ),
            (
                Path::new("/w/repo/.fen/pulled-extensions/@acme/aws+ec2/vaults"),
                Path::new("/w/repo/.fen/pulled-extensions/@acme/aws+ec2"),
                Origin::Pulled,
                "pulled/@acme/aws+ec2",
                pulled_root.as_str(),
            ),
        ];
        assert_eq!(summary, expected);
        assert!(roots.iter().all(|r| r.loader_kind == LoaderKind::Vault));
    }

    #[test]
    fn all_scan_root_dirs_covers_every_kind_and_origin() {
        let scanner = scanner();
        let name = ExtensionName::parse("@acme/x").unwrap();
        let dirs = all_scan_root_dirs(
            &scanner.repo_root().canonical,
            scanner.mounts(),
            std::slice::from_ref(&name),
        );
        assert_eq!(dirs.len(), 4 * 5);
        assert!(dirs.windows(2).all(|w| w[0] < w[1]));
        for kind in LoaderKind::ALL {
            let pulled = [(
                name.clone(),
                canonical("/w/repo/.fen/pulled-extensions/@acme/x"),
            )];
            for root in scanner.scan_roots(kind, &pulled) {
                assert!(dirs.contains(&CanonicalPath::new(&root.dir, PathPolicy::Posix).unwrap()));
            }
        }
        // A new mount changes the list (the source-dirs guard).
        let fewer = all_scan_root_dirs(&scanner.repo_root().canonical, &SourceMounts::empty(), &[]);
        assert_eq!(fewer.len(), 5);
        assert_ne!(fewer, dirs);
    }

    #[tokio::test]
    async fn exists_sees_dangling_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.ts");
        std::fs::write(&file, "x").unwrap();
        let link = dir.path().join("dangling.ts");
        std::os::unix::fs::symlink(dir.path().join("gone.ts"), &link).unwrap();
        let scanner = scanner();
        let probe = |p: &Path| CanonicalPath::new(p, PathPolicy::Posix).unwrap();
        assert!(scanner.exists(&probe(&file)).await);
        assert!(scanner.exists(&probe(&link)).await);
        assert!(!scanner.exists(&probe(&dir.path().join("none.ts"))).await);
        assert!(
            !scanner
                .exists(&probe(&dir.path().join("no/such/dir.ts")))
                .await
        );
        // A pass answers from one listing per directory; the next pass lists again.
        std::fs::write(dir.path().join("later.ts"), "x").unwrap();
        assert!(!scanner.exists(&probe(&dir.path().join("later.ts"))).await);
        let next = scanner.for_next_pass();
        assert!(next.exists(&probe(&dir.path().join("later.ts"))).await);
    }

    /// Scenario 31 at the port: a second pass over an unchanged tree reads nothing.
    #[tokio::test]
    async fn unchanged_tree_through_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let mount_dir = dir.path().join("shared");
        let files = [
            root.join("extensions/models/a.ts"),
            root.join("extensions/lib/h.ts"),
            mount_dir.join("extensions/models/m.ts"),
        ];
        let texts = [
            "import '../lib/h.ts'; export const model = 1;",
            "export const h = 1;",
            "export const model = 2;",
        ];
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for (file, text) in files.iter().zip(texts) {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
            let handle = std::fs::File::options().write(true).open(file).unwrap();
            handle.set_modified(hour_ago).unwrap();
        }
        let repo = RepoRoot::new(root, PathPolicy::Posix).unwrap();
        let mounts = SourceMounts::from_entries(
            &[mount_dir.to_str().unwrap().to_owned()],
            &repo.canonical,
            PathPolicy::Posix,
        )
        .unwrap();
        let first = FsSourceScanner::new(repo, mounts, PathPolicy::Posix);
        let port: &dyn SourceScanner = &first;
        let roots = port.scan_roots(LoaderKind::Model, &[]);
        assert_eq!(roots.len(), 2);

        let mut known = BTreeMap::new();
        let mut fingerprints = BTreeMap::new();
        for root in &roots {
            for entry in port.walk(root, &BTreeMap::new()).await {
                let measured = port.fingerprint(&entry, None).await;
                let path = entry.location.canonical().clone();
                known.insert(path.clone(), measured.fresh_stats.unwrap());
                fingerprints.insert(path, measured.fingerprint);
            }
        }
        assert_eq!(port.files_hashed(), 3);
        let mounted = CanonicalPath::new(&files[2], PathPolicy::Posix).unwrap();
        assert!(fingerprints.contains_key(&mounted));

        let second = first.for_next_pass();
        let port: &dyn SourceScanner = &second;
        for root in &roots {
            let entries = port.walk(root, &known).await;
            assert_eq!(entries.len(), 1);
            for entry in entries {
                assert_eq!(entry.root.origin, root.origin);
                assert_eq!(
                    entry.location.extension_root(),
                    &first.repo_root().canonical
                );
                let path = entry.location.canonical();
                let row = (&fingerprints[path], &known[path]);
                let measured = port.fingerprint(&entry, Some(row)).await;
                assert_eq!(&measured.fingerprint, row.0);
                assert!(!measured.hashed);
                assert_eq!(measured.fresh_stats, None);
            }
        }
        assert_eq!(port.files_hashed(), 0);
    }
}

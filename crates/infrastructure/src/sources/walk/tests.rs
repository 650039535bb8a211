//! Tests of the walk: the rules of spec 10 §1.11, the export pre-check of spec 30
//! §3.1 and classification from stat records (spec 10 §6.2).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fen_domain::ports::indexing::{ScanRoot, ScannedEntry};
use fen_domain::ports::FileStats;
use fen_domain::{CanonicalPath, LoaderKind, Origin, PathPolicy};

use super::{is_candidate_name, walk_scan_root};
use crate::sources::cache::FreshnessCache;
use crate::sources::fingerprint::fingerprint;

struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/extensions")).unwrap();
        Repo { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn boundary(&self) -> PathBuf {
        self.root().join("extensions")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.boundary().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> &Repo {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn symlink(&self, rel: &str, target: &Path) -> &Repo {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
        self
    }

    fn set_mtime(&self, rel: &str, mtime: SystemTime) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.path(rel))
            .unwrap();
        file.set_modified(mtime).unwrap();
    }

    fn scan_root(&self, loader_kind: LoaderKind) -> ScanRoot {
        ScanRoot {
            dir: self.boundary().join(loader_kind.kind_dir()),
            boundary: self.boundary(),
            extension_root: self.canonical(&self.root()),
            origin: Origin::Local,
            loader_kind,
            bundle_prefix: "local".to_owned(),
        }
    }

    fn canonical(&self, path: &Path) -> CanonicalPath {
        CanonicalPath::new(path, PathPolicy::Posix).unwrap()
    }

    fn walk(
        &self,
        loader_kind: LoaderKind,
        known: &BTreeMap<CanonicalPath, FileStats>,
        cache: &mut FreshnessCache,
    ) -> Vec<ScannedEntry> {
        walk_scan_root(
            &self.scan_root(loader_kind),
            known,
            PathPolicy::Posix,
            cache,
        )
    }

    /// `(path relative to the boundary, unreadable reason)` of every entry.
    fn summary(&self, entries: &[ScannedEntry]) -> Vec<(String, Option<String>)> {
        entries
            .iter()
            .map(|e| {
                let rel = e.native_path.strip_prefix(self.boundary()).unwrap();
                (rel.to_string_lossy().into_owned(), e.unreadable.clone())
            })
            .collect()
    }
}

const MODEL: &str = "export const model = {};";

fn entry(rel: &str) -> (String, Option<String>) {
    (rel.to_owned(), None)
}

fn unreadable(rel: &str, reason: &str) -> (String, Option<String>) {
    (rel.to_owned(), Some(reason.to_owned()))
}

#[test]
fn candidate_names() {
    let cases = [
        ("a.ts", true),
        ("a.mts", true),
        ("a.js", true),
        ("a.mjs", true),
        ("_private.ts", true),
        ("a.d.ts", false),
        ("a_test.ts", false),
        ("a.test.mjs", false),
        ("a.spec.js", false),
        (".hidden.ts", false),
        (".fen-tmp-123.ts", false),
        ("a.tsx", false),
        ("a.cjs", false),
        ("a.cts", false),
        ("a.json", false),
        ("ts", false),
        ("test.ts", true),
        ("x_test.ts", false),
        ("x_tests.ts", true),
        ("a.tests.ts", true),
        ("a.specs.ts", true),
        ("my.spec.x.mjs", false),
        ("a_test.d.ts", false),
        ("é_test.ts", false),
        ("é.ts", true),
    ];
    for (name, expected) in cases {
        assert_eq!(is_candidate_name(name), expected, "{name}");
        let by_substrings = !name.starts_with('.')
            && [".ts", ".mts", ".js", ".mjs"]
                .iter()
                .any(|s| name.ends_with(s))
            && !name.ends_with(".d.ts")
            && !["_test.", ".test.", ".spec."]
                .iter()
                .any(|m| name.contains(m));
        assert_eq!(is_candidate_name(name), by_substrings, "{name}");
    }
}

#[test]
fn walk_rules() {
    let repo = Repo::new();
    let outside = repo.dir.path().join("outside.ts");
    std::fs::write(&outside, MODEL).unwrap();
    let elsewhere = repo.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("n.ts"), MODEL).unwrap();
    repo.write("models/a.ts", MODEL)
        .write("models/b.mts", "const x = {};\nexport { x as model };")
        .write("models/c.js", "export let extension = {};")
        .write("models/d.mjs", "export { model } from './a.ts';")
        .write("models/sub/deep/e.ts", MODEL)
        .write("models/_file.ts", MODEL)
        .write("models/helper.ts", "export const util = 1;")
        .write("models/vault-like.ts", "export const vault = {};")
        .write("models/types.d.ts", MODEL)
        .write("models/a_test.ts", MODEL)
        .write("models/a.test.ts", MODEL)
        .write("models/a.spec.ts", MODEL)
        .write("models/.hidden.ts", MODEL)
        .write("models/.fen-tmp-1.ts", MODEL)
        .write("models/.cache/x.ts", MODEL)
        .write("models/_lib/x.ts", MODEL)
        .write("models/node_modules/pkg/x.ts", MODEL)
        .write("models/readme.md", MODEL)
        .write("models/view.tsx", MODEL)
        .write("models/.gitignore", "a.ts\nsub/\n")
        .write("lib/real.ts", MODEL)
        .symlink("models/linked-dir", &elsewhere)
        .symlink("models/dangling.ts", &repo.path("models/gone.ts"))
        .symlink("models/escape.ts", &outside)
        .symlink("models/inside.ts", &repo.path("lib/real.ts"))
        .symlink("models/dir-link.ts", &elsewhere);
    let entries = repo.walk(
        LoaderKind::Model,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    assert_eq!(
        repo.summary(&entries),
        vec![
            entry("models/_file.ts"),
            entry("models/a.ts"),
            entry("models/b.mts"),
            entry("models/c.js"),
            entry("models/d.mjs"),
            unreadable("models/dangling.ts", "dangling symlink"),
            unreadable("models/dir-link.ts", "symlink target leaves the boundary"),
            unreadable("models/escape.ts", "symlink target leaves the boundary"),
            entry("models/inside.ts"),
            entry("models/sub/deep/e.ts"),
        ]
    );
    let first = &entries[0];
    assert_eq!(
        first.location.extension_root(),
        &repo.canonical(&repo.root())
    );
    assert_eq!(first.location.relative(), "extensions/models/_file.ts");
    assert_eq!(first.root, repo.scan_root(LoaderKind::Model));
}

#[test]
fn pre_check_uses_the_kind_key() {
    let repo = Repo::new();
    repo.write("vaults/v.ts", "export const vault = {};")
        .write("vaults/m.ts", MODEL)
        .write("vaults/alias.ts", "const v = 1; export { v as vault };")
        .write("vaults/not.ts", "export { vault as other };");
    let entries = repo.walk(
        LoaderKind::Vault,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    assert_eq!(
        repo.summary(&entries),
        vec![entry("vaults/alias.ts"), entry("vaults/v.ts")]
    );
    // A directory symlink inside the boundary, named like a source, cannot be read.
    std::fs::create_dir_all(repo.path("lib/dir.ts")).unwrap();
    repo.symlink("vaults/dir.ts", &repo.path("lib/dir.ts"));
    let entries = repo.walk(
        LoaderKind::Vault,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    assert!(repo
        .summary(&entries)
        .contains(&unreadable("vaults/dir.ts", "is a directory")));
}

#[test]
fn permission_errors_are_kept_as_unreadable() {
    use std::os::unix::fs::PermissionsExt;
    let repo = Repo::new();
    repo.write("drivers/locked.ts", "export const driver = {};");
    let path = repo.path("drivers/locked.ts");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    let entries = repo.walk(
        LoaderKind::Driver,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    // Root ignores file modes; then the file is simply readable.
    let expected = match std::fs::read(&path) {
        Ok(_) => entry("drivers/locked.ts"),
        Err(_) => unreadable("drivers/locked.ts", "permission denied"),
    };
    assert_eq!(repo.summary(&entries), vec![expected]);
}

#[test]
fn a_missing_scan_root_yields_nothing() {
    let repo = Repo::new();
    let entries = repo.walk(
        LoaderKind::Report,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    assert!(entries.is_empty());
}

/// Records as the catalog would hold them after a pass: one per entry point row.
fn records_of(repo: &Repo, entries: &[ScannedEntry]) -> BTreeMap<CanonicalPath, FileStats> {
    let mut cache = FreshnessCache::new();
    entries
        .iter()
        .map(|e| {
            let measured = fingerprint(&e.native_path, &repo.boundary(), None, &mut cache);
            (
                e.location.canonical().clone(),
                measured
                    .fresh_stats
                    .expect("aged files give non-racy records"),
            )
        })
        .collect()
}

#[test]
fn unchanged_tree_is_walked_without_reads() {
    let repo = Repo::new();
    repo.write("models/a.ts", "import './util.ts'; export const model = 1;")
        .write("models/util.ts", "export const util = 1;")
        .write("models/b.ts", "import './a.ts'; export const model = 2;");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for rel in ["models/a.ts", "models/util.ts", "models/b.ts"] {
        repo.set_mtime(rel, hour_ago);
    }
    let mut cache = FreshnessCache::new();
    let entries = repo.walk(LoaderKind::Model, &BTreeMap::new(), &mut cache);
    assert_eq!(cache.files_hashed(), 3);
    assert_eq!(
        repo.summary(&entries),
        vec![entry("models/a.ts"), entry("models/b.ts")]
    );
    let known = records_of(&repo, &entries);

    // Entry points with rows stay entry points, the helper stays a helper: no reads.
    let mut cache = FreshnessCache::new();
    let again = repo.walk(LoaderKind::Model, &known, &mut cache);
    assert_eq!(cache.files_hashed(), 0);
    assert_eq!(again, entries);

    // Only b's row is left: a is unchanged and, as a file of b's graph, recorded as
    // an entry point; util is recorded as a helper. Still no reads.
    let only_b: BTreeMap<_, _> = known
        .iter()
        .filter(|(path, _)| path.as_str().ends_with("/b.ts"))
        .map(|(p, s)| (p.clone(), s.clone()))
        .collect();
    let mut cache = FreshnessCache::new();
    assert_eq!(repo.walk(LoaderKind::Model, &only_b, &mut cache), entries);
    assert_eq!(cache.files_hashed(), 0);

    // A touched helper is read once and stays a helper.
    repo.set_mtime("models/util.ts", hour_ago - Duration::from_secs(3600));
    let mut cache = FreshnessCache::new();
    assert_eq!(repo.walk(LoaderKind::Model, &known, &mut cache), entries);
    assert_eq!(cache.files_hashed(), 1);

    // A helper that gains an export is read and becomes an entry point.
    repo.write("models/util.ts", "export const model = 3;");
    let mut cache = FreshnessCache::new();
    let grown = repo.walk(LoaderKind::Model, &known, &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_eq!(
        repo.summary(&grown),
        vec![
            entry("models/a.ts"),
            entry("models/b.ts"),
            entry("models/util.ts")
        ]
    );
}

#[test]
fn records_of_other_boundaries_are_not_used() {
    let repo = Repo::new();
    repo.write("models/a.ts", MODEL);
    repo.set_mtime("models/a.ts", SystemTime::now() - Duration::from_secs(3600));
    let entries = repo.walk(
        LoaderKind::Model,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    let known = records_of(&repo, &entries);
    // The same records filed under a row of another boundary say nothing here.
    let elsewhere: BTreeMap<_, _> = known
        .values()
        .map(|stats| {
            (
                repo.canonical(&repo.root().join("extensions-old/models/a.ts")),
                stats.clone(),
            )
        })
        .collect();
    let mut cache = FreshnessCache::new();
    assert_eq!(
        repo.walk(LoaderKind::Model, &elsewhere, &mut cache),
        entries
    );
    assert_eq!(cache.files_hashed(), 1);
}

#[test]
fn records_of_an_older_format_are_not_used() {
    let repo = Repo::new();
    repo.write("models/a.ts", MODEL);
    repo.set_mtime("models/a.ts", SystemTime::now() - Duration::from_secs(3600));
    let entries = repo.walk(
        LoaderKind::Model,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    let known = records_of(&repo, &entries);
    let v1: BTreeMap<_, _> = known
        .iter()
        .map(|(path, stats)| {
            let start = stats.0.find("\"fp\":").unwrap();
            let end = stats.0.find("\"takenAtNs\"").unwrap();
            let text = format!("{{\"v\":1,{}", &stats.0[end..]);
            assert!(start < end);
            (path.clone(), FileStats(text))
        })
        .collect();
    let mut cache = FreshnessCache::new();
    assert_eq!(repo.walk(LoaderKind::Model, &v1, &mut cache), entries);
    assert_eq!(cache.files_hashed(), 1);
    let mut cache = FreshnessCache::new();
    assert_eq!(repo.walk(LoaderKind::Model, &known, &mut cache), entries);
    assert_eq!(cache.files_hashed(), 0);
}

#[test]
fn an_entry_whose_own_record_is_stale_is_read() {
    let repo = Repo::new();
    repo.write("models/a.ts", MODEL)
        .write("models/b.ts", "import './a.ts'; export const model = 2;");
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for rel in ["models/a.ts", "models/b.ts"] {
        repo.set_mtime(rel, hour_ago);
    }
    let entries = repo.walk(
        LoaderKind::Model,
        &BTreeMap::new(),
        &mut FreshnessCache::new(),
    );
    let known = records_of(&repo, &entries);
    // `a` loses its export: its own row and `b`'s row both hold a stale record.
    repo.write("models/a.ts", "export const helper = 1;");
    repo.set_mtime("models/a.ts", hour_ago);
    let mut cache = FreshnessCache::new();
    let walked = repo.walk(LoaderKind::Model, &known, &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_eq!(repo.summary(&walked), vec![entry("models/b.ts")]);
}

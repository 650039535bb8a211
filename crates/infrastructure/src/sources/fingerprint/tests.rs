//! Tests of the fingerprint: spec 10 §8 scenarios 8–10, the closure rules of §1.9 and
//! the stat fast path of §6.2 (scenario 31 at the scanner level).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fen_domain::ports::indexing::Fingerprinted;
use fen_domain::ports::FileStats;
use fen_domain::{FingerprintLine, SourceFingerprint};
use sha2::{Digest, Sha256};

use super::fingerprint;
use crate::sources::cache::FreshnessCache;

/// A temp boundary (`<tmp>/extensions`) with helpers to write files and set mtimes.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("extensions")).unwrap();
        Tree { dir }
    }

    fn boundary(&self) -> PathBuf {
        self.dir.path().join("extensions")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.boundary().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> &Tree {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn symlink(&self, rel: &str, target: &Path) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    fn set_mtime(&self, rel: &str, mtime: SystemTime) {
        let file = std::fs::File::options()
            .write(true)
            .open(self.path(rel))
            .unwrap();
        file.set_modified(mtime).unwrap();
    }

    fn mtime(&self, rel: &str) -> SystemTime {
        std::fs::metadata(self.path(rel))
            .unwrap()
            .modified()
            .unwrap()
    }

    /// Moves every file's mtime an hour back, so that new records are not racy.
    fn age(&self, rels: &[&str]) {
        for rel in rels {
            self.set_mtime(rel, hours_ago(1));
        }
    }

    fn fp(&self, entry: &str) -> SourceFingerprint {
        self.measure(entry, None, &mut FreshnessCache::new())
            .fingerprint
    }

    fn measure(
        &self,
        entry: &str,
        known: Option<&Fingerprinted>,
        cache: &mut FreshnessCache,
    ) -> Fingerprinted {
        let known = known.map(|k| (&k.fingerprint, k.fresh_stats.as_ref().unwrap()));
        fingerprint(&self.path(entry), &self.boundary(), known, cache)
    }
}

fn hours_ago(hours: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600 * hours)
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The fingerprint computed by hand from `(rel, content or MISSING)` pairs.
fn expected(lines: &[(&str, Option<&str>)], entry_readable: bool) -> SourceFingerprint {
    let mut texts: Vec<String> = lines
        .iter()
        .map(|(rel, content)| match content {
            Some(text) => format!("{rel}:{}", hex(&sha(text.as_bytes()))),
            None => format!("{rel}:MISSING"),
        })
        .collect();
    texts.sort();
    let digest = sha(texts.join("\n").as_bytes());
    if entry_readable {
        SourceFingerprint::Content(digest)
    } else {
        SourceFingerprint::EntryUnreadable(digest)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn scenario_8_transitive_change_is_seen_even_with_mtime_restored() {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import { h } from \"../lib/h.ts\";\nexport const model = h;",
    )
    .write("lib/h.ts", "export { g as h } from './deep/g.ts';")
    .write("lib/deep/g.ts", "export const g = 1;");
    let first = tree.fp("models/a.ts");
    assert_eq!(first.to_string().len(), 64);
    assert!(first.to_string().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(tree.fp("models/a.ts"), first);

    let mtime = tree.mtime("lib/deep/g.ts");
    tree.write("lib/deep/g.ts", "export const g = 2;");
    tree.set_mtime("lib/deep/g.ts", mtime); // touch -r
    let changed = tree.fp("models/a.ts");
    assert_ne!(changed, first);
    assert_eq!(
        changed,
        expected(
            &[
                (
                    "models/a.ts",
                    Some("import { h } from \"../lib/h.ts\";\nexport const model = h;")
                ),
                ("lib/h.ts", Some("export { g as h } from './deep/g.ts';")),
                ("lib/deep/g.ts", Some("export const g = 2;")),
            ],
            true
        )
    );
}

#[test]
fn scenario_9_dangling_import_is_stable_and_repair_changes_it() {
    let tree = Tree::new();
    let entry = "import \"./dep.ts\";\nexport const model = {};";
    tree.write("models/a.ts", entry);
    tree.symlink("models/dep.ts", &tree.path("models/gone.ts"));
    let broken = tree.fp("models/a.ts");
    assert_eq!(tree.fp("models/a.ts"), broken);
    assert_eq!(
        broken,
        expected(
            &[("models/a.ts", Some(entry)), ("models/dep.ts", None)],
            true
        )
    );

    std::fs::remove_file(tree.path("models/dep.ts")).unwrap();
    tree.write("models/dep.ts", "export {};");
    let repaired = tree.fp("models/a.ts");
    assert_ne!(repaired, broken);
    assert_eq!(
        repaired,
        expected(
            &[
                ("models/a.ts", Some(entry)),
                ("models/dep.ts", Some("export {};"))
            ],
            true
        )
    );
}

#[test]
fn scenario_10_non_local_imports_do_not_count() {
    let tree = Tree::new();
    let entry = "import { z } from \"npm:zod@4\";\nimport y from 'https://example.org/y.ts';\nexport const model = z;";
    tree.write("models/x.ts", entry);
    let line = format!("models/x.ts:{}", hex(&sha(entry.as_bytes())));
    assert_eq!(
        tree.fp("models/x.ts"),
        SourceFingerprint::Content(sha(line.as_bytes()))
    );
}

#[test]
fn package_imports_count_package_json_and_resolved_files() {
    let tree = Tree::new();
    let entry = "import { z } from \"zod\";\nexport const model = z;";
    let manifest = r#"{"name": "zod", "version": "4.6.7", "type": "module", "exports": {".": {"import": "./index.js"}}}"#;
    let index = "import { a } from \"./lib/a.js\";\nexport const z = a;\n";
    let lib = "export const a = 1;\n";
    tree.write("models/x.ts", entry)
        .write("node_modules/zod/package.json", manifest)
        .write("node_modules/zod/index.js", index)
        .write("node_modules/zod/lib/a.js", lib)
        .write("node_modules/zod/unused.js", "export const u = 1;\n");
    let fp = tree.fp("models/x.ts");
    assert_eq!(
        fp,
        expected(
            &[
                ("models/x.ts", Some(entry)),
                ("node_modules/zod/package.json", Some(manifest)),
                ("node_modules/zod/index.js", Some(index)),
                ("node_modules/zod/lib/a.js", Some(lib)),
            ],
            true
        )
    );
    // A file the graph does not reach changes nothing; a new version does.
    tree.write("node_modules/zod/unused.js", "export const u = 2;\n");
    assert_eq!(tree.fp("models/x.ts"), fp);
    tree.write(
        "node_modules/zod/package.json",
        &manifest.replace("4.6.7", "4.6.8"),
    );
    assert_ne!(tree.fp("models/x.ts"), fp);
}

#[test]
fn closure_rules() {
    let tree = Tree::new();
    let outside = tree.dir.path().join("outside.ts");
    std::fs::write(&outside, "export const secret = 1;").unwrap();
    let entry = [
        "import './side.ts';",
        "import type { T } from \"./types.ts\";",
        "export * from \"./star.ts\";",
        "import {",
        "  a,",
        "  b,",
        "} from '../lib/multi.ts';",
        "import './cycle.ts';",
        "import './named-missing.ts';",
        "import './noext';",
        "import '../../outside.ts';",
        "import './escape.ts';",
        "import './dir.ts';",
        "export const model = {};",
    ]
    .join("\n");
    tree.write("models/a.ts", &entry)
        .write("models/side.ts", "")
        .write("models/types.ts", "export type T = 1;")
        .write("models/star.ts", "export const s = 1;")
        .write("lib/multi.ts", "export const a = 1, b = 2;")
        .write("models/cycle.ts", "import './a.ts';")
        .write("models/noext.ts", "never named exactly");
    tree.symlink("models/escape.ts", &outside);
    std::fs::create_dir_all(tree.path("models/dir.ts")).unwrap();
    assert_eq!(
        tree.fp("models/a.ts"),
        expected(
            &[
                ("models/a.ts", Some(&entry)),
                ("models/side.ts", Some("")),
                ("models/types.ts", Some("export type T = 1;")),
                ("models/star.ts", Some("export const s = 1;")),
                ("lib/multi.ts", Some("export const a = 1, b = 2;")),
                ("models/cycle.ts", Some("import './a.ts';")),
                ("models/named-missing.ts", None),
                ("models/noext", None),
                ("models/escape.ts", None),
                ("models/dir.ts", None),
            ],
            true
        )
    );
}

#[test]
fn unreadable_entry_gives_the_missing_form() {
    let tree = Tree::new();
    tree.symlink("models/a.ts", &tree.path("models/nowhere.ts"));
    let fp = tree.fp("models/a.ts");
    assert!(fp.is_entry_unreadable());
    assert_eq!(fp, expected(&[("models/a.ts", None)], false));
}

#[test]
fn a_shared_helper_is_read_once_per_pass() {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import '../lib/h.ts'; export const model = 1;",
    )
    .write(
        "models/b.ts",
        "import '../lib/h.ts'; export const model = 2;",
    )
    .write("lib/h.ts", "export {};");
    let mut cache = FreshnessCache::new();
    tree.measure("models/a.ts", None, &mut cache);
    tree.measure("models/b.ts", None, &mut cache);
    tree.measure("models/a.ts", None, &mut cache);
    assert_eq!(cache.files_hashed(), 3);
}

/// The tree of the stat fast-path tests: two entries sharing one helper, all aged.
fn fast_path_tree() -> (Tree, Fingerprinted, Fingerprinted) {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import '../lib/h.ts'; export const model = 1;",
    )
    .write(
        "models/b.ts",
        "import '../lib/h.ts'; export const model = 2;",
    )
    .write("lib/h.ts", "export const h = 'helper';");
    tree.age(&["models/a.ts", "models/b.ts", "lib/h.ts"]);
    let mut cache = FreshnessCache::new();
    let a = tree.measure("models/a.ts", None, &mut cache);
    let b = tree.measure("models/b.ts", None, &mut cache);
    assert!(a.hashed && b.hashed);
    assert!(a.fresh_stats.is_some() && b.fresh_stats.is_some());
    assert_eq!(cache.files_hashed(), 3);
    (tree, a, b)
}

#[test]
fn unchanged_tree_reads_nothing() {
    let (tree, a, b) = fast_path_tree();
    let mut cache = FreshnessCache::new();
    let again_a = tree.measure("models/a.ts", Some(&a), &mut cache);
    let again_b = tree.measure("models/b.ts", Some(&b), &mut cache);
    assert_eq!(cache.files_hashed(), 0);
    assert_eq!(again_a.fingerprint, a.fingerprint);
    assert_eq!(again_b.fingerprint, b.fingerprint);
    assert!(!again_a.hashed && again_a.fresh_stats.is_none());
}

#[test]
fn touched_helper_is_hashed_once_and_records_refresh() {
    let (tree, a, b) = fast_path_tree();
    tree.set_mtime("lib/h.ts", hours_ago(2)); // touch -d, no content change
    let mut cache = FreshnessCache::new();
    let touched_a = tree.measure("models/a.ts", Some(&a), &mut cache);
    let touched_b = tree.measure("models/b.ts", Some(&b), &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_eq!(touched_a.fingerprint, a.fingerprint);
    assert_eq!(touched_b.fingerprint, b.fingerprint);
    assert!(touched_a.hashed && touched_b.hashed);
    assert!(touched_a.fresh_stats.is_some() && touched_b.fresh_stats.is_some());
    assert_ne!(touched_a.fresh_stats, a.fresh_stats);

    // The pass after that reads nothing.
    let mut cache = FreshnessCache::new();
    let settled = tree.measure("models/a.ts", Some(&touched_a), &mut cache);
    assert_eq!(cache.files_hashed(), 0);
    assert_eq!(settled.fingerprint, a.fingerprint);
    assert!(settled.fresh_stats.is_none());
}

#[test]
fn same_size_edit_with_restored_mtime_is_seen_through_ctime() {
    let (tree, a, _) = fast_path_tree();
    let mtime = tree.mtime("lib/h.ts");
    tree.write("lib/h.ts", "export const h = 'HELPER';");
    tree.set_mtime("lib/h.ts", mtime); // touch -r
    let mut cache = FreshnessCache::new();
    let edited = tree.measure("models/a.ts", Some(&a), &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_ne!(edited.fingerprint, a.fingerprint);
    assert!(edited.fresh_stats.is_some());
}

#[test]
fn racy_records_are_rehashed_and_not_stored_again() {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import '../lib/h.ts'; export const model = 1;",
    )
    .write("lib/h.ts", "export {};");
    // Just written: the mtimes are within the racy window of the records.
    let first = tree.measure("models/a.ts", None, &mut FreshnessCache::new());
    assert!(
        first.fresh_stats.is_some(),
        "a new source's records go with its index result"
    );
    let mut cache = FreshnessCache::new();
    let second = tree.measure("models/a.ts", Some(&first), &mut cache);
    assert_eq!(cache.files_hashed(), 2);
    assert_eq!(second.fingerprint, first.fingerprint);
    assert!(second.fresh_stats.is_none(), "racy records gain nothing");
}

#[test]
fn records_of_another_fingerprint_are_ignored() {
    let (tree, a, b) = fast_path_tree();
    let mut cache = FreshnessCache::new();
    let stats: &FileStats = a.fresh_stats.as_ref().unwrap();
    let measured = fingerprint(
        &tree.path("models/a.ts"),
        &tree.boundary(),
        Some((&b.fingerprint, stats)),
        &mut cache,
    );
    assert_eq!(cache.files_hashed(), 2);
    assert_eq!(measured.fingerprint, a.fingerprint);
    assert!(measured.fresh_stats.is_some());
}

#[test]
fn a_named_missing_file_that_appears_is_the_only_read() {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import './later.ts'; export const model = 1;",
    );
    tree.age(&["models/a.ts"]);
    let first = tree.measure("models/a.ts", None, &mut FreshnessCache::new());
    let mut cache = FreshnessCache::new();
    let unchanged = tree.measure("models/a.ts", Some(&first), &mut cache);
    assert_eq!(cache.files_hashed(), 0);
    assert_eq!(unchanged.fingerprint, first.fingerprint);

    tree.write("models/later.ts", "export {};");
    let mut cache = FreshnessCache::new();
    let appeared = tree.measure("models/a.ts", Some(&first), &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_ne!(appeared.fingerprint, first.fingerprint);
}

#[test]
fn a_dropped_import_leaves_the_closure() {
    let (tree, a, _) = fast_path_tree();
    tree.write("models/a.ts", "export const model = 1;");
    let mut cache = FreshnessCache::new();
    let edited = tree.measure("models/a.ts", Some(&a), &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_eq!(
        edited.fingerprint,
        expected(&[("models/a.ts", Some("export const model = 1;"))], true)
    );
    let lines = vec![FingerprintLine {
        relative: "models/a.ts".into(),
        digest: Some(sha(b"export const model = 1;")),
    }];
    assert_eq!(
        edited.fingerprint,
        SourceFingerprint::from_lines(lines, true)
    );
}

#[test]
fn records_of_an_older_format_are_hashed_once_and_refreshed() {
    let (tree, a, _) = fast_path_tree();
    // The same records as format 1 wrote them: no `fp`.
    let v2 = &a.fresh_stats.as_ref().unwrap().0;
    let fp_field = format!("\"fp\":\"{}\",", a.fingerprint);
    let v1 = FileStats(
        v2.replacen("\"v\":2,", "\"v\":1,", 1)
            .replacen(&fp_field, "", 1),
    );
    assert!(v1.0.starts_with("{\"v\":1,\"takenAtNs\":"), "{}", v1.0);
    let mut cache = FreshnessCache::new();
    let upgraded = fingerprint(
        &tree.path("models/a.ts"),
        &tree.boundary(),
        Some((&a.fingerprint, &v1)),
        &mut cache,
    );
    assert_eq!(cache.files_hashed(), 2);
    assert_eq!(upgraded.fingerprint, a.fingerprint);
    assert!(upgraded.fresh_stats.is_some(), "the records are refreshed");

    let mut cache = FreshnessCache::new();
    let settled = tree.measure("models/a.ts", Some(&upgraded), &mut cache);
    assert_eq!(cache.files_hashed(), 0);
    assert_eq!(settled.fingerprint, a.fingerprint);
}

#[test]
fn an_atomic_rename_save_with_restored_mtime_is_seen() {
    let (tree, a, _) = fast_path_tree();
    let mtime = tree.mtime("lib/h.ts");
    tree.write("lib/h.tmp", "export const h = 'HELPER';");
    tree.set_mtime("lib/h.tmp", mtime);
    std::fs::rename(tree.path("lib/h.tmp"), tree.path("lib/h.ts")).unwrap();
    let mut cache = FreshnessCache::new();
    let edited = tree.measure("models/a.ts", Some(&a), &mut cache);
    assert_eq!(cache.files_hashed(), 1);
    assert_ne!(edited.fingerprint, a.fingerprint);
}

#[test]
fn a_retargeted_symlink_is_seen() {
    let tree = Tree::new();
    tree.write(
        "models/a.ts",
        "import '../lib/link.ts'; export const model = 1;",
    )
    .write("lib/one.ts", "export const v = 1;")
    .write("lib/two.ts", "export const v = 2;");
    tree.symlink("lib/link.ts", &tree.path("lib/one.ts"));
    tree.age(&["models/a.ts", "lib/one.ts", "lib/two.ts"]);
    let first = tree.measure("models/a.ts", None, &mut FreshnessCache::new());
    // The link itself was just made: its record is racy until it is an hour old too.
    std::fs::remove_file(tree.path("lib/link.ts")).unwrap();
    tree.symlink("lib/link.ts", &tree.path("lib/two.ts"));
    let mut cache = FreshnessCache::new();
    let moved = tree.measure("models/a.ts", Some(&first), &mut cache);
    assert_ne!(moved.fingerprint, first.fingerprint);
    assert!(cache.files_hashed() >= 1);
}

mod paths {
    use std::path::{Component, Path, PathBuf};

    use fen_domain::repo_root::normalize_lexically;
    use proptest::prelude::*;

    use crate::sources::cache::path_key;
    use crate::sources::fingerprint::{join_rel, lexical, rel_text};

    /// `rel_text` as it was: component-wise, lossy per component.
    fn rel_text_by_components(path: &Path, boundary: &Path) -> String {
        match path.strip_prefix(boundary) {
            Ok(rel) => rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => path.to_string_lossy().into_owned(),
        }
    }

    fn path_strategy() -> impl Strategy<Value = PathBuf> {
        let segment = prop::sample::select(vec!["a", "b.ts", ".", "..", "", ".fen", "_x", "a..b"]);
        (any::<bool>(), prop::collection::vec(segment, 0..6)).prop_map(|(absolute, segments)| {
            let text = segments.join("/");
            PathBuf::from(if absolute { format!("/{text}") } else { text })
        })
    }

    proptest! {
        #[test]
        fn lexical_is_normalize_lexically(path in path_strategy()) {
            let (fast, slow) = (lexical(&path), normalize_lexically(&path));
            prop_assert_eq!(fast.as_os_str(), slow.as_os_str());
        }

        #[test]
        fn rel_text_is_the_component_spelling(path in path_strategy(), boundary in path_strategy()) {
            let (path, boundary) = (normalize_lexically(&path), normalize_lexically(&boundary));
            prop_assume!(!boundary.as_os_str().is_empty());
            prop_assert_eq!(rel_text(&path, &boundary), rel_text_by_components(&path, &boundary));
        }

        #[test]
        fn join_rel_is_pushing_segments(boundary in path_strategy(), rel in path_strategy()) {
            let rel = rel.to_string_lossy().trim_start_matches('/').to_owned();
            let mut pushed = boundary.clone();
            for segment in rel.split('/') {
                pushed.push(segment);
            }
            prop_assert_eq!(join_rel(&boundary, &rel), pushed);
        }

        #[test]
        fn path_keys_are_path_equality(a in path_strategy(), b in path_strategy()) {
            prop_assert_eq!(path_key(&a) == path_key(&b), a == b);
            let rebuilt: PathBuf = a.components().collect();
            prop_assert_eq!(&*path_key(&a), rebuilt.as_os_str());
            prop_assert!(a.components().all(|c| c != Component::CurDir) || a.starts_with("."));
        }
    }
}

//! Tests of the module graph walk, determinism and the bundle store, on temp trees.

use std::fs;
use std::path::{Path, PathBuf};

use fen_domain::ports::indexing::{BundleStore, IndexError};
use fen_domain::{CanonicalPath, Kind, LoaderKind, PathPolicy, SourceFingerprint};

use super::*;

/// A temp boundary (`<tmp>/extensions`) with files written from `(path, text)` pairs.
struct Tree {
    _dir: tempfile::TempDir,
    boundary: PathBuf,
}

impl Tree {
    fn new(files: &[(&str, &str)]) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let boundary = dir.path().join("extensions");
        for (path, text) in files {
            let path = boundary.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        Tree {
            _dir: dir,
            boundary,
        }
    }

    fn request(&self, entry: &str) -> BuildRequest {
        request_in(&self.boundary, entry, LoaderKind::Model)
    }

    fn build(&self, entry: &str) -> Result<BundleContainer, BuildError> {
        build_bundle(&self.request(entry))
    }

    fn error(&self, entry: &str) -> String {
        self.build(entry).unwrap_err().to_string()
    }
}

fn fingerprint() -> SourceFingerprint {
    format!("3f9a1c2077b4{}", "5".repeat(52)).parse().unwrap()
}

fn request_in(boundary: &Path, entry: &str, loader_kind: LoaderKind) -> BuildRequest {
    BuildRequest {
        entry_read_path: boundary.join(entry),
        read_boundary: boundary.to_path_buf(),
        bundle_prefix: "local".into(),
        loader_kind,
        fingerprint: fingerprint(),
    }
}

fn ids(container: &BundleContainer) -> Vec<&str> {
    container
        .modules()
        .iter()
        .map(|module| module.id.as_str())
        .collect()
}

fn code<'c>(container: &'c BundleContainer, id: &str) -> &'c str {
    &container.module(id).unwrap().code
}

const SDK_MODEL: &str = "import { defineModel } from \"fen:sdk\";\n\
                         export const model = defineModel({ type: \"@acme/thing\" });\n";

#[test]
fn typescript_is_stripped_and_enums_are_emitted() {
    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import type { ZodType } from \"zod\";\n\
         import { type Shape } from \"./shape.ts\";\n\
         interface Internal { n: number }\n\
         export enum Level { Low = 1, High }\n\
         export const model: Internal & Shape = { n: Level.High } as Internal & Shape;\n\
         export type Out = ZodType;\n",
        ),
        ("models/shape.ts", "export interface Shape { x?: string }\n"),
    ]);
    let container = tree.build("models/a.ts").unwrap();
    assert_eq!(ids(&container), ["local:/models/a.ts#3f9a1c2077b4"]);
    let code = code(&container, "local:/models/a.ts#3f9a1c2077b4");
    assert!(!code.contains("interface"), "{code}");
    assert!(!code.contains("zod"), "{code}");
    assert!(!code.contains("Out"), "{code}");
    assert!(!code.contains("shape"), "{code}");
    assert!(
        code.contains("Level[\"Low\"]") || code.contains("Level[Level[\"Low\"] = 1]"),
        "{code}"
    );
    assert_eq!(container.kind(), Kind::Model);
    assert!(container.host_modules().is_empty());
}

#[test]
fn imports_used_only_as_types_are_erased_before_the_check() {
    let tree = Tree::new(&[(
        "models/a.ts",
        "import { type ZodType } from \"zod\";\n\
         import { Schema } from \"valibot\";\n\
         export type { Infer } from \"npm:zod\";\n\
         export const model: ZodType | Schema | null = null;\n",
    )]);
    let container = tree.build("models/a.ts").unwrap();
    let code = code(&container, container.entry());
    assert_eq!(code, "export const model = null;\n");
}

#[test]
fn commonjs_forms_of_typescript_are_rejected() {
    let tree = Tree::new(&[(
        "models/a.ts",
        "import fs = require(\"fs\");\nexport const model = fs;\n",
    )]);
    let error = tree.build("models/a.ts").unwrap_err();
    assert!(
        matches!(&error, BuildError::Transform { file, line: 1, column: 1, .. } if file == "models/a.ts"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("cannot transpile `models/a.ts:1:1`: Import assignment cannot be used"),
        "{error}"
    );
}

#[test]
fn relative_graph_with_shared_helper_and_cycle() {
    let tree = Tree::new(&[
        (
            "models/net/endpoint.ts",
            "import { classify } from \"../../_lib/classify.ts\";\n\
             import { peer } from \"./peer.ts\";\n\
             export const model = { classify, peer };\n",
        ),
        (
            "models/net/peer.ts",
            "import { classify } from \"../../_lib/classify.ts\";\n\
             import { model } from \"./endpoint.ts\";\n\
             export const peer = () => [classify, model];\n",
        ),
        (
            "_lib/classify.ts",
            "export function classify(x: string): string { return x; }\n",
        ),
    ]);
    let container = tree.build("models/net/endpoint.ts").unwrap();
    let entry = "local:/models/net/endpoint.ts#3f9a1c2077b4";
    let peer = "local:/models/net/peer.ts#3f9a1c2077b4";
    let helper = "local:/_lib/classify.ts#3f9a1c2077b4";
    assert_eq!(ids(&container), [helper, entry, peer]);
    assert_eq!(container.entry(), entry);
    assert!(code(&container, entry).contains(&format!("from \"{helper}\"")));
    assert!(code(&container, entry).contains(&format!("from \"{peer}\"")));
    assert!(code(&container, peer).contains(&format!("from \"{entry}\"")));
    assert!(code(&container, helper).contains("function classify(x)"));
    for module in container.modules() {
        assert!(!module.code.contains("./"), "{}", module.code);
        let map = module.map.as_deref().unwrap();
        assert!(
            map.contains(&format!("\"sources\":[\"{}\"]", module.id)),
            "{map}"
        );
        assert!(!map.contains(tree.boundary.to_str().unwrap()));
    }
}

#[test]
fn host_module_fen_sdk_is_external() {
    let tree = Tree::new(&[("models/a.ts", SDK_MODEL)]);
    let container = tree.build("models/a.ts").unwrap();
    assert_eq!(container.host_modules(), ["fen:sdk"]);
    assert!(code(&container, container.entry()).contains("from \"fen:sdk\""));
}

#[test]
fn rejected_specifiers_name_file_line_and_column() {
    let cases = [
        (
            "import \"zod\";\nexport const model = 1;\n",
            "import `zod` in `models/a.ts:1:8`: package `zod` is not installed: no node_modules/zod between the importing file and {B}; hint: run 'npm install zod' in {B}",
        ),
        (
            "export const model = 1;\nimport { z } from \"npm:zod\";\nexport const y = z;\n",
            "import `npm:zod` in `models/a.ts:2:19`: package `zod` is not installed: no node_modules/zod between the importing file and {B}; hint: run 'npm install zod' in {B}",
        ),
        (
            "import x from \"https://example.test/x.js\";\nexport const model = x;\n",
            "import `https://example.test/x.js` in `models/a.ts:1:15`: URL imports are not supported, fen never fetches code; hint: npm install the package next to the extension and import it by name",
        ),
        (
            "import { readFileSync } from \"node:fs\";\nexport const model = readFileSync;\n",
            "import `node:fs` in `models/a.ts:1:30` names a Node.js built-in module: the fen sandbox has no Node.js APIs; hint: use ctx (spec 30 §2.7) or a package that does not need Node.js",
        ),
        (
            "export * from \"jsr:@std/path\";\nexport const model = 1;\n",
            "import `jsr:@std/path` in `models/a.ts:1:15`: jsr: imports are not supported; hint: install the package's npm build into node_modules and import it by name",
        ),
        (
            "import { x } from \"/abs/x.ts\";\nexport const model = x;\n",
            "unsupported import `/abs/x.ts` in `models/a.ts:1:19`: fen bundles relative imports, fen:* host modules and packages from node_modules",
        ),
        (
            "import { nope } from \"fen:nope\";\nexport const model = nope;\n",
            "unknown host module `fen:nope` in `models/a.ts:1:22` (available: fen:sdk)",
        ),
        (
            "export const model = 1;\nexport async function f() {\n  return await import(\"./b.ts\");\n}\n",
            "dynamic import() in `models/a.ts:3:16` is not supported: use a static import",
        ),
    ];
    for (source, expected) in cases {
        let tree = Tree::new(&[("models/a.ts", source), ("models/b.ts", "export {};\n")]);
        let expected = expected.replace("{B}", &tree.boundary.display().to_string());
        let expected = expected.as_str();
        let error = tree.build("models/a.ts").unwrap_err();
        assert!(
            !matches!(error, BuildError::EntryUnreadable { .. }),
            "{error:?}"
        );
        assert_eq!(error.to_string(), expected);
        assert!(
            matches!(error.into_index_error(), IndexError::Build(message) if message == expected)
        );
    }
}

#[test]
fn rejection_in_a_dependency_names_the_dependency() {
    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import { h } from \"../_lib/h.ts\";\nexport const model = h;\n",
        ),
        (
            "_lib/h.ts",
            "\n\nimport \"left-pad\";\nexport const h = 1;\n",
        ),
    ]);
    let error = tree.error("models/a.ts");
    assert!(
        error.starts_with(
            "import `left-pad` in `_lib/h.ts:3:8`: package `left-pad` is not installed"
        ),
        "{error}"
    );
}

#[test]
fn syntax_errors_have_line_and_column() {
    let tree = Tree::new(&[("models/a.ts", "export const model = {\n  a: 1,,\n};\n")]);
    let error = tree.build("models/a.ts").unwrap_err();
    assert!(
        matches!(&error, BuildError::Syntax { file, line: 2, .. } if file == "models/a.ts"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("syntax error in `models/a.ts:2:"),
        "{error}"
    );

    let tree = Tree::new(&[("models/a.js", "export const model = 1;\nlet x = ;\n")]);
    let error = tree.error("models/a.js");
    assert!(
        error.starts_with("syntax error in `models/a.js:2:9`"),
        "{error}"
    );
}

#[test]
fn boundary_escape_is_rejected() {
    let tree = Tree::new(&[(
        "models/a.ts",
        "import { o } from \"../../outside.ts\";\nexport const model = o;\n",
    )]);
    fs::write(
        tree.boundary.parent().unwrap().join("outside.ts"),
        "export const o = 1;\n",
    )
    .unwrap();
    assert_eq!(
        tree.error("models/a.ts"),
        "import `../../outside.ts` escapes extension root in `models/a.ts:1:19`"
    );
}

#[cfg(unix)]
#[test]
fn symlink_leaving_the_boundary_is_rejected() {
    let tree = Tree::new(&[(
        "models/a.ts",
        "import { o } from \"./link.ts\";\nexport const model = o;\n",
    )]);
    let outside = tree.boundary.parent().unwrap().join("outside.ts");
    fs::write(&outside, "export const o = 1;\n").unwrap();
    std::os::unix::fs::symlink(&outside, tree.boundary.join("models/link.ts")).unwrap();
    assert_eq!(
        tree.error("models/a.ts"),
        "import `./link.ts` escapes extension root in `models/a.ts:1:19`"
    );

    // A symlink to a file inside the boundary is fine, and named as spelled.
    fs::remove_file(tree.boundary.join("models/link.ts")).unwrap();
    fs::write(
        tree.boundary.join("_lib/real.ts").tap_dir(),
        "export const o = 2;\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        tree.boundary.join("_lib/real.ts"),
        tree.boundary.join("models/link.ts"),
    )
    .unwrap();
    let container = tree.build("models/a.ts").unwrap();
    assert!(container
        .module("local:/models/link.ts#3f9a1c2077b4")
        .is_some());

    // An entry that is a symlink leaving the boundary is unreadable, not a build failure.
    std::os::unix::fs::symlink(&outside, tree.boundary.join("models/entry.ts")).unwrap();
    let error = tree.build("models/entry.ts").unwrap_err();
    assert!(
        matches!(error, BuildError::EntryUnreadable { .. }),
        "{error:?}"
    );
    assert!(matches!(
        error.into_index_error(),
        IndexError::EntryUnreadable(_)
    ));
}

/// Creates the parent directory of a path, for fluent test setup.
trait TapDir {
    fn tap_dir(self) -> Self;
}

impl TapDir for PathBuf {
    fn tap_dir(self) -> PathBuf {
        fs::create_dir_all(self.parent().unwrap()).unwrap();
        self
    }
}

#[test]
fn missing_import_suggests_the_sibling_extension() {
    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import { x } from \"./x.js\";\nexport const model = x;\n",
        ),
        ("models/x.ts", "export const x = 1;\n"),
    ]);
    assert_eq!(
        tree.error("models/a.ts"),
        "import `./x.js` in `models/a.ts:1:19` not found: no file `models/x.js`; did you mean `./x.ts`?"
    );

    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import { x } from \"./x\";\nexport const model = x;\n",
        ),
        ("models/x.ts", "export const x = 1;\n"),
    ]);
    assert!(tree
        .error("models/a.ts")
        .ends_with("did you mean `./x.ts`?"));

    let tree = Tree::new(&[(
        "models/a.ts",
        "import \"./gone.ts\";\nexport const model = 1;\n",
    )]);
    assert_eq!(
        tree.error("models/a.ts"),
        "import `./gone.ts` in `models/a.ts:1:8` not found: no file `models/gone.ts`"
    );
}

#[test]
fn unreadable_entries_and_dependencies() {
    let tree = Tree::new(&[("models/a.ts", "export const model = 1;\n")]);
    let error = tree.build("models/missing.ts").unwrap_err();
    assert!(
        matches!(error, BuildError::EntryUnreadable { ref file, .. } if file == "models/missing.ts"),
        "{error:?}"
    );

    let tree = Tree::new(&[(
        "models/a.ts",
        "import \"./dir/\";\nexport const model = 1;\n",
    )]);
    fs::create_dir_all(tree.boundary.join("models/dir")).unwrap();
    let error = tree.build("models/a.ts").unwrap_err();
    assert!(matches!(error, BuildError::Unreadable { .. }), "{error:?}");

    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import \"./data.json\";\nexport const model = 1;\n",
        ),
        ("models/data.json", "{}"),
    ]);
    let error = tree.build("models/a.ts").unwrap_err();
    assert!(
        matches!(error, BuildError::UnsupportedFileType { .. }),
        "{error:?}"
    );
}

#[test]
fn non_utf8_is_a_build_failure() {
    let tree = Tree::new(&[(
        "models/a.ts",
        "import \"./b.ts\";\nexport const model = 1;\n",
    )]);
    fs::write(tree.boundary.join("models/b.ts"), [0x66, 0xff, 0xfe]).unwrap();
    let error = tree.build("models/a.ts").unwrap_err();
    assert_eq!(
        error,
        BuildError::NotUtf8 {
            file: "models/b.ts".into()
        }
    );
}

#[test]
fn kind_follows_the_exports_in_models() {
    let cases: [(&str, LoaderKind, Kind); 5] = [
        ("export const model = 1;\n", LoaderKind::Model, Kind::Model),
        (
            "export const extension = 1;\n",
            LoaderKind::Model,
            Kind::Extension,
        ),
        (
            "const e = 1;\nexport { e as extension };\n",
            LoaderKind::Model,
            Kind::Extension,
        ),
        (
            "export const model = 1;\nexport const extension = 2;\n",
            LoaderKind::Model,
            Kind::Model,
        ),
        ("export const vault = 1;\n", LoaderKind::Vault, Kind::Vault),
    ];
    for (source, loader_kind, expected) in cases {
        let tree = Tree::new(&[("x/a.ts", source)]);
        let container = build_bundle(&request_in(&tree.boundary, "x/a.ts", loader_kind)).unwrap();
        assert_eq!(container.kind(), expected, "{source}");
    }
}

#[test]
fn graph_cap_counts_modules() {
    // A chain one longer than the cap fails; files are tiny, so this stays fast.
    let mut files: Vec<(String, String)> = Vec::new();
    for index in 0..=MAX_MODULES {
        files.push((
            format!("_lib/m{index}.js"),
            format!("import \"./m{}.js\";\n", index + 1),
        ));
    }
    files.push((format!("_lib/m{}.js", MAX_MODULES + 1), String::new()));
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let tree = Tree::new(&borrowed);
    let error = tree.build("_lib/m0.js").unwrap_err();
    assert_eq!(error, BuildError::TooManyModules);
}

#[test]
fn code_cap_counts_emitted_bytes() {
    let big = format!("export const model = \"{}\";\n", "a".repeat(MAX_CODE_BYTES));
    let tree = Tree::new(&[("models/a.js", big.as_str())]);
    assert_eq!(
        tree.build("models/a.js").unwrap_err(),
        BuildError::CodeTooLarge
    );
}

const LAYOUT: [(&str, &str); 3] = [
    (
        "models/net/endpoint.ts",
        "import { defineModel } from \"fen:sdk\";\n\
         import { classify } from \"../../_lib/classify.ts\";\n\
         enum Mode { A, B }\n\
         export const model = defineModel({ type: \"@acme/net\", mode: Mode.B, classify });\n",
    ),
    (
        "_lib/classify.ts",
        "import { model } from \"../models/net/endpoint.ts\";\n\
         export const classify = (x: unknown): string => typeof x + String(!!model);\n",
    ),
    ("models/other.ts", "export const model = 2;\n"),
];

#[test]
fn builds_are_deterministic_across_runs_and_checkouts() {
    let first = Tree::new(&LAYOUT);
    let second = Tree::new(&LAYOUT);
    assert_ne!(first.boundary, second.boundary);
    let a = first
        .build("models/net/endpoint.ts")
        .unwrap()
        .to_json_bytes();
    let b = first
        .build("models/net/endpoint.ts")
        .unwrap()
        .to_json_bytes();
    let c = second
        .build("models/net/endpoint.ts")
        .unwrap()
        .to_json_bytes();
    assert_eq!(a, b);
    assert_eq!(a, c);
    let text = String::from_utf8(a.clone()).unwrap();
    assert!(!text.contains(first.boundary.to_str().unwrap()));
    assert!(is_usable(&a, &fingerprint()));
}

#[test]
fn the_transpile_cache_gives_byte_identical_bundles() {
    // Two entries importing one helper (which imports another), built for different
    // fingerprints: the second build reuses the helpers' text with its own id suffix.
    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import { shared } from \"./_lib/shared.ts\";\n\
             import { defineModel } from \"fen:sdk\";\n\
             export const model = defineModel({ type: \"@acme/a\", shared });\n",
        ),
        (
            "models/b.ts",
            "import { shared } from \"./_lib/shared.ts\";\n\
             export const model = { type: \"@acme/b\", shared };\n",
        ),
        (
            "models/_lib/shared.ts",
            "import { leaf } from \"./leaf.ts\";\n\
             export { leaf } from \"./leaf.ts\";\n\
             // the id suffix of another bundle: #3f9a1c2077b4\n\
             export const shared = (x: number): string => `${leaf(x)} #3f9a1c2077b4`;\n",
        ),
        (
            "models/_lib/leaf.ts",
            "export function leaf(x: number): string { return String(x); }\n",
        ),
    ]);
    let other: SourceFingerprint = format!("0123456789ab{}", "7".repeat(52)).parse().unwrap();
    let requests = [
        tree.request("models/a.ts"),
        tree.request("models/b.ts"),
        BuildRequest {
            fingerprint: other,
            ..tree.request("models/b.ts")
        },
        BuildRequest {
            fingerprint: other,
            ..tree.request("models/a.ts")
        },
    ];
    let cache = TranspileCache::new();
    for round in 0..2 {
        for request in &requests {
            let plain = build_bundle(request).unwrap().to_json_bytes();
            let cached = build_bundle_cached(request, &cache)
                .unwrap()
                .to_json_bytes();
            assert_eq!(
                String::from_utf8(plain).unwrap(),
                String::from_utf8(cached).unwrap(),
                "round {round}, {}",
                request.entry_read_path.display()
            );
        }
    }
    // shared.ts holds the first fingerprint's suffix literally: a build for that
    // fingerprint cannot tell it from its own rewrites and does not cache it, a build
    // for the other one does (and the literal survives the substitution above).
    assert_eq!(cache.len(), 4, "a.ts, b.ts, leaf.ts, shared.ts");

    // An error in a cached module's import is still reported by the cached path.
    fs::remove_file(tree.boundary.join("models/_lib/leaf.ts")).unwrap();
    let error = build_bundle_cached(&requests[1], &cache).unwrap_err();
    assert_eq!(error, build_bundle(&requests[1]).unwrap_err(), "{error}");
}

#[test]
fn for_entry_derives_the_staged_read_boundary() {
    use fen_domain::ports::indexing::{EntryPoint, ScanRoot};
    use fen_domain::{Origin, SourceLocation};

    let staged = Tree::new(&LAYOUT);
    let final_root = PathBuf::from("/repo/.fen/pulled-extensions/@acme/net");
    let entry = EntryPoint {
        location: SourceLocation::new(
            final_root.join("models/net/endpoint.ts"),
            &final_root,
            PathPolicy::host(),
        )
        .unwrap(),
        root: ScanRoot {
            dir: final_root.join("models"),
            boundary: final_root.clone(),
            extension_root: CanonicalPath::new(&final_root, PathPolicy::host()).unwrap(),
            origin: Origin::Pulled,
            loader_kind: LoaderKind::Model,
            bundle_prefix: "pulled/@acme/net".into(),
        },
        read_path: staged.boundary.join("models/net/endpoint.ts"),
        scratch_dir: staged.boundary.join("scratch"),
    };
    let request = BuildRequest::for_entry(&entry, fingerprint()).unwrap();
    assert_eq!(request.read_boundary, staged.boundary);
    let container = build_bundle(&request).unwrap();
    assert_eq!(
        container.entry(),
        "pulled/@acme/net:/models/net/endpoint.ts#3f9a1c2077b4"
    );
}

#[tokio::test]
async fn store_publish_is_usable_list_evict_clear() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tree = Tree::new(&LAYOUT);
    let store = FsBundleStore::for_repo(root);
    let scratch = root.join(".fen/scratch/build-1");

    let mut staged_all = Vec::new();
    for entry in ["models/net/endpoint.ts", "models/other.ts"] {
        let container = tree.build(entry).unwrap();
        let within = entry.strip_prefix("models/").unwrap();
        let path = bundle_path(store.bundles_dir(), "local", "models", within);
        let target = bundle_location(&path, fingerprint()).unwrap();
        let staged = write_staged(&container, &scratch, target.clone()).unwrap();
        assert!(staged.scratch_file.starts_with(&scratch));
        assert!(!store.is_usable(&target).await, "not published yet");
        staged_all.push(staged);
    }
    assert!(fs::read_dir(&scratch).unwrap().all(|entry| !entry
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".fen-tmp-")));

    for staged in &staged_all {
        store.publish(staged).await.unwrap();
        assert!(!staged.scratch_file.exists());
        assert!(store.is_usable(&staged.target).await);
    }
    let endpoint = &staged_all[0].target;
    assert!(endpoint
        .path
        .as_str()
        .ends_with("/.fen/bundles/local/models/net/endpoint.ts.bundle.json"));

    // A wrong fingerprint or a tampered file is not usable.
    let other_fp: SourceFingerprint = "1".repeat(64).parse().unwrap();
    let wrong = fen_domain::BundleLocation {
        path: endpoint.path.clone(),
        fingerprint: other_fp,
    };
    assert!(!store.is_usable(&wrong).await);

    // Temp files and foreign files are not listed.
    let models_dir = store.bundles_dir().join("local/models");
    fs::write(models_dir.join(".fen-tmp-x.bundle.json"), "").unwrap();
    fs::write(models_dir.join("notes.txt"), "").unwrap();
    let listed = store.list().await.unwrap();
    let expected: Vec<CanonicalPath> = {
        let mut paths: Vec<CanonicalPath> =
            staged_all.iter().map(|s| s.target.path.clone()).collect();
        paths.sort();
        paths
    };
    assert_eq!(listed, expected);

    store.evict(&endpoint.path).await.unwrap();
    store.evict(&endpoint.path).await.unwrap();
    assert!(!store.is_usable(endpoint).await);
    assert!(
        !models_dir.join("net").exists(),
        "empty directories are pruned"
    );
    assert_eq!(store.list().await.unwrap(), expected[1..].to_vec());

    let tampered_path = PathBuf::from(staged_all[1].target.path.as_str());
    let text = fs::read_to_string(&tampered_path).unwrap();
    fs::write(&tampered_path, text.replace("model = 2", "model = 3")).unwrap();
    assert!(!store.is_usable(&staged_all[1].target).await);

    store.clear().await.unwrap();
    assert!(!store.bundles_dir().exists());
    assert!(store.list().await.unwrap().is_empty());
    store.clear().await.unwrap();
    let leftovers: Vec<_> = fs::read_dir(root.join(".fen/scratch"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".fen-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn staging_refuses_a_mismatched_target() {
    let tree = Tree::new(&LAYOUT);
    let container = tree.build("models/other.ts").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = bundle_location(
        &dir.path().join("x.bundle.json"),
        "0".repeat(64).parse().unwrap(),
    )
    .unwrap();
    let error = write_staged(&container, dir.path(), target).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn bundle_paths() {
    let bundles = Path::new("/r/.fen/bundles");
    let cases = [
        (
            "local",
            "models",
            "net/endpoint.ts",
            "/r/.fen/bundles/local/models/net/endpoint.ts.bundle.json",
        ),
        (
            "mounted/m1",
            "vaults",
            "v.js",
            "/r/.fen/bundles/mounted/m1/vaults/v.js.bundle.json",
        ),
        (
            "pulled/@acme/aws+ec2",
            "models",
            "ec2.ts",
            "/r/.fen/bundles/pulled/@acme/aws+ec2/models/ec2.ts.bundle.json",
        ),
    ];
    for (prefix, kind_dir, within, expected) in cases {
        assert_eq!(
            bundle_path(bundles, prefix, kind_dir, within),
            Path::new(expected)
        );
    }
}

#[test]
fn package_imports_get_host_path_free_npm_ids() {
    let manifest = r#"{"name": "@s/p", "version": "1.2.3", "type": "module", "exports": {".": {"require": "./i.cjs", "import": "./i.js"}, "./sub/*": "./lib/*.js"}}"#;
    let tree = Tree::new(&[
        (
            "models/a.ts",
            "import { i } from \"@s/p\";\nimport { l } from \"@s/p/sub/l\";\nimport { i as j } from \"npm:@s/p@1.2.3\";\nexport const model = i + l + j;\n",
        ),
        ("node_modules/@s/p/package.json", manifest),
        ("node_modules/@s/p/i.js", "import { l } from \"./lib/l.js\";\nexport const i = l;\n"),
        ("node_modules/@s/p/lib/l.js", "export const l = 1;\n"),
    ]);
    let container = tree.build("models/a.ts").unwrap();
    assert_eq!(
        ids(&container),
        [
            "local:/models/a.ts#3f9a1c2077b4",
            "npm:@s/p@1.2.3/i.js#3f9a1c2077b4",
            "npm:@s/p@1.2.3/lib/l.js#3f9a1c2077b4",
        ]
    );
    let entry = code(&container, container.entry());
    assert!(
        entry.contains("from \"npm:@s/p@1.2.3/i.js#3f9a1c2077b4\""),
        "{entry}"
    );
    assert!(
        entry.contains("from \"npm:@s/p@1.2.3/lib/l.js#3f9a1c2077b4\""),
        "{entry}"
    );
    let bytes = String::from_utf8(container.to_json_bytes()).unwrap();
    assert!(!bytes.contains(tree.boundary.to_str().unwrap()));
    assert_eq!(
        fen_domain::packages::bundled_packages(&bytes),
        [fen_domain::packages::BundledPackage {
            name: "@s/p".into(),
            version: "1.2.3".into()
        }]
    );
}

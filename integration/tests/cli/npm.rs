//! Extensions that import npm packages from their own `node_modules` (issue 17): bare,
//! scoped, subpath and `npm:pkg@version` imports, host-path-free module ids, the
//! fingerprint covering package files, `describe`/`--stats` listing the packages, the
//! packer shipping exactly the reachable package files, and every bad input of the
//! issue. Hermetic: every package is a few generated ES modules, nothing is downloaded.

use serde_json::{json, Value};

use crate::fixture::{local_bundle, model_source, warnings, Repo};
use crate::lifecycle::{Ext, World, V1};

/// Writes `<dir>/node_modules/<name>/package.json` (name, version and `extra` JSON
/// members) and the package's files.
fn package(repo: &Repo, dir: &str, name: &str, version: &str, extra: &str, files: &[(&str, &str)]) {
    let root = format!("{dir}/node_modules/{name}");
    let sep = if extra.is_empty() { "" } else { ", " };
    repo.write(
        &format!("{root}/package.json"),
        &format!("{{\"name\": \"{name}\", \"version\": \"{version}\"{sep}{extra}}}\n"),
    );
    for (rel, text) in files {
        repo.write(&format!("{root}/{rel}"), text);
    }
}

/// A small ESM package `tiny-schema`: `.` via the `import` condition, `./sub/*` as a
/// pattern, a relative import inside the package, and an unreferenced file.
fn tiny_schema(repo: &Repo, dir: &str, version: &str) {
    package(
        repo,
        dir,
        "tiny-schema",
        version,
        r#""type": "module", "exports": {".": {"types": "./index.d.ts", "import": "./index.js", "require": "./index.cjs"}, "./sub/*": "./lib/*.js"}"#,
        &[
            (
                "index.js",
                "import { shout } from \"./lib/util.js\";\nexport function describe(name) { return shout(name) + \" v\" + VERSION; }\nexport const VERSION = \"VERSION_TEXT\";\n",
            ),
            ("lib/util.js", "export function shout(text) { return text.toUpperCase(); }\n"),
            ("lib/extra.js", "export const EXTRA = 7;\n"),
            ("unused.js", "export const UNUSED = 1;\n"),
            ("LICENSE", "MIT, generated for a test\n"),
            ("README.md", "not packed\n"),
        ],
    );
    let index = format!("{dir}/node_modules/tiny-schema/index.js");
    let text = repo.read(&index).replace("VERSION_TEXT", version);
    repo.write(&index, &text);
}

/// A model importing `tiny-schema` by name, by subpath and (exactly) by `npm:`.
fn importer(ty: &str, version: &str) -> String {
    format!(
        r#"import {{ describe }} from "tiny-schema";
import {{ EXTRA }} from "tiny-schema/sub/extra";
import {{ VERSION }} from "npm:tiny-schema@{version}";
export const model = {{
  type: "{ty}",
  version: "2026.01.01.0",
  description: describe("uses") + " " + EXTRA + " " + VERSION,
  methods: {{
    go: {{ description: "g", arguments: {{ type: "object" }}, run() {{ return describe("ran"); }} }},
  }},
}};
"#
    )
}

fn npm_repo() -> Repo {
    let repo = Repo::new();
    tiny_schema(&repo, "extensions", "1.2.3");
    repo.write(
        "extensions/models/uses.ts",
        &importer("@fx/npm/uses", "1.2.3"),
    );
    repo.model("extensions/models/plain.ts", "@fx/npm/plain", "no packages");
    repo.age_all();
    repo
}

#[test]
fn a_bare_import_resolves_from_node_modules_and_describe_lists_the_package() {
    let repo = npm_repo();
    let first = repo.ok(&["--stats", "model", "type", "search"]);
    assert!(first.stdout.contains("@fx/npm/uses"), "{}", first.stderr);
    let described = repo
        .ok(&["--json", "model", "type", "describe", "@fx/npm/uses"])
        .json();
    assert_eq!(described["description"], "USES v1.2.3 7 1.2.3");
    assert_eq!(
        described["packages"],
        json!([{"name": "tiny-schema", "version": "1.2.3"}])
    );
    let human = repo.ok(&["model", "type", "describe", "@fx/npm/uses"]);
    assert!(
        human.stdout.contains("packages: tiny-schema@1.2.3"),
        "{}",
        human.stdout
    );
    let plain = repo
        .ok(&["--json", "model", "type", "describe", "@fx/npm/plain"])
        .json();
    assert_eq!(plain["packages"], json!([]));

    // The bundle names package modules by package and version, never by host path.
    let bundle = repo.read(&local_bundle("uses"));
    assert!(
        bundle.contains("\"id\":\"npm:tiny-schema@1.2.3/index.js#"),
        "{bundle}"
    );
    assert!(bundle.contains("\"id\":\"npm:tiny-schema@1.2.3/lib/util.js#"));
    assert!(bundle.contains("\"id\":\"npm:tiny-schema@1.2.3/lib/extra.js#"));
    assert!(!bundle.contains("unused.js"));
    let root = repo.canonical_root();
    assert!(
        !bundle.contains(root.to_str().unwrap()),
        "host path in the bundle"
    );

    // --stats lists the packages of each evaluated bundle.
    let stats = crate::fixture::stats(&first);
    let bundles = stats["bundles"].as_array().unwrap();
    let uses = bundles
        .iter()
        .find(|b| {
            b["bundle"]
                .as_str()
                .unwrap()
                .ends_with("uses.ts.bundle.json")
        })
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(
        uses["packages"],
        json!([{"name": "tiny-schema", "version": "1.2.3"}])
    );

    // The method runs package code.
    repo.ok(&["model", "create", "@fx/npm/uses", "u"]);
    let run = repo.ok(&["--stats", "--json", "model", "method", "run", "u", "go"]);
    assert_eq!(run.json()["result"], "RAN v1.2.3", "{}", run.stdout);
    let stats = crate::fixture::stats(&run);
    assert_eq!(
        stats["bundles"][0]["packages"],
        json!([{"name": "tiny-schema", "version": "1.2.3"}])
    );
}

#[test]
fn bundles_with_packages_are_byte_identical_across_checkouts() {
    let a = npm_repo();
    let b = npm_repo();
    a.ok(&["model", "type", "search"]);
    b.ok(&["model", "type", "search"]);
    assert_eq!(a.read(&local_bundle("uses")), b.read(&local_bundle("uses")));
}

#[test]
fn a_new_package_version_rebuilds_exactly_the_importing_bundles() {
    let repo = npm_repo();
    repo.ok(&["model", "type", "search"]);
    let warm = repo.search_stats();
    assert_eq!((warm.built, warm.hashed), (0, 0), "{warm:?}");

    // Files no bundle imports change: nothing is rebuilt.
    repo.write(
        "extensions/node_modules/tiny-schema/unused.js",
        "export const UNUSED = 2;\n",
    );
    repo.write(
        "extensions/node_modules/other/package.json",
        "{\"version\": \"1.0.0\"}\n",
    );
    let untouched = repo.search_stats();
    assert_eq!(untouched.built, 0, "{untouched:?}");

    // "npm install" of a new version: package.json and the package's files change.
    tiny_schema(&repo, "extensions", "1.3.0");
    repo.write(
        "extensions/models/uses.ts",
        &importer("@fx/npm/uses", "1.3.0"),
    );
    let rebuilt = repo.search_stats();
    assert_eq!(rebuilt.built, 1, "{rebuilt:?}");
    let described = repo
        .ok(&["--json", "model", "type", "describe", "@fx/npm/uses"])
        .json();
    assert_eq!(
        described["packages"],
        json!([{"name": "tiny-schema", "version": "1.3.0"}])
    );

    // Only the package changes (the importer is untouched): still rebuilt.
    let index = "extensions/node_modules/tiny-schema/lib/util.js";
    repo.write(
        index,
        "export function shout(text) { return text.toLowerCase(); }\n",
    );
    let again = repo.search_stats();
    assert_eq!(again.built, 1, "{again:?}");
    let described = repo
        .ok(&["--json", "model", "type", "describe", "@fx/npm/uses"])
        .json();
    assert_eq!(described["description"], "uses v1.3.0 7 1.3.0");
}

#[test]
fn a_package_installed_next_to_the_importer_wins_and_the_boundary_is_not_left() {
    let repo = Repo::new();
    // Above the boundary (`extensions/`): never used.
    tiny_schema(&repo, ".", "9.9.9");
    tiny_schema(&repo, "extensions/models", "1.2.3");
    repo.write(
        "extensions/models/uses.ts",
        &importer("@fx/npm/uses", "1.2.3"),
    );
    repo.ok(&["model", "type", "search"]);
    let described = repo
        .ok(&["--json", "model", "type", "describe", "@fx/npm/uses"])
        .json();
    assert_eq!(
        described["packages"],
        json!([{"name": "tiny-schema", "version": "1.2.3"}])
    );

    let above = Repo::new();
    tiny_schema(&above, ".", "1.2.3");
    above.write(
        "extensions/models/uses.ts",
        &importer("@fx/npm/uses", "1.2.3"),
    );
    let row = failed(&above, "extensions/models/uses.ts", "BundleBuildFailed");
    assert!(row.contains("not installed"), "{row}");
}

/// Indexes the repo and returns the `lastError` of `rel`, asserting its state and that
/// the search warned about it once.
fn failed(repo: &Repo, rel: &str, state: &str) -> String {
    let search = repo.fen(&["model", "type", "search"]);
    assert_eq!(search.code, 0, "{}", search.stderr);
    let named: Vec<&str> = warnings(&search)
        .into_iter()
        .filter(|l| l.contains(rel))
        .collect();
    assert_eq!(named.len(), 1, "{}", search.stderr);
    let list = repo.ok(&["--json", "extension", "list"]).json();
    let rows = repo.rows_by_path(&list["sources"]);
    let row: &Value = &rows[rel];
    assert_eq!(row["state"], state, "{row}");
    let error = row["lastError"].as_str().unwrap().to_owned();
    assert!(!error.contains('\n'), "{error}");
    error
}

/// A repo with one model `extensions/models/m.ts` whose first line is `import_line`.
fn bad(import_line: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "extensions/models/m.ts",
        &format!("{import_line}\n{}", model_source("@fx/npm/bad", "d")),
    );
    repo
}

fn assert_has(error: &str, needles: &[&str]) {
    for needle in needles {
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
}

#[test]
fn a_bare_import_without_node_modules_says_where_to_npm_install() {
    let repo = bad("import { z } from \"zod\";\nconst used = z;");
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    let extensions = repo.canonical_root().join("extensions");
    assert_has(
        &error,
        &[
            "`zod`",
            "models/m.ts:1:",
            "not installed",
            &format!("hint: run 'npm install zod' in {}", extensions.display()),
        ],
    );
}

#[test]
fn a_package_without_an_import_condition_is_refused() {
    let repo = bad("import { a } from \"cjs-exports\";\nconst used = a;");
    package(
        &repo,
        "extensions",
        "cjs-exports",
        "1.0.0",
        r#""exports": {".": {"require": "./index.cjs", "node": "./index.cjs"}}"#,
        &[("index.cjs", "module.exports = { a: 1 };\n")],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(
        &error,
        &[
            "cjs-exports",
            "without an ES module condition",
            "require",
            "ESM build",
        ],
    );
}

#[test]
fn a_commonjs_only_package_is_refused_naming_the_file() {
    let repo = bad("import { a } from \"cjs-only\";\nconst used = a;");
    package(
        &repo,
        "extensions",
        "cjs-only",
        "2.0.0",
        r#""main": "lib/index.js""#,
        &[("lib/index.js", "exports.a = 1;\n")],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(
        &error,
        &[
            "cjs-only",
            "node_modules/cjs-only/lib/index.js",
            "CommonJS",
            "ESM build",
        ],
    );
}

#[test]
fn an_npm_specifier_must_match_the_installed_version_exactly() {
    let repo = bad("import { z } from \"npm:zod@4.0.0\";\nconst used = z;");
    package(
        &repo,
        "extensions",
        "zod",
        "4.6.7",
        r#""type": "module", "exports": {".": "./index.js"}"#,
        &[("index.js", "export const z = 1;\n")],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(&error, &["zod", "4.6.7", "4.0.0"]);

    let range = bad("import { z } from \"npm:zod@^4.6.0\";\nconst used = z;");
    let error = failed(&range, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(&error, &["exact version", "^4.6.0"]);
}

#[test]
fn an_exports_target_escaping_the_package_is_refused() {
    let repo = bad("import { s } from \"leaky/x\";\nconst used = s;");
    repo.write("extensions/secret.js", "export const s = \"secret\";\n");
    package(
        &repo,
        "extensions",
        "leaky",
        "1.0.0",
        r#""type": "module", "exports": {"./x": "../../secret.js"}"#,
        &[],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(&error, &["leaky", "../../secret.js", "escapes the package"]);
}

#[cfg(unix)]
#[test]
fn a_node_modules_symlink_leaving_the_boundary_is_refused() {
    let repo = bad("import { a } from \"linked\";\nconst used = a;");
    // A pnpm-style store outside `extensions/`.
    package(
        &repo,
        "store",
        "linked",
        "1.0.0",
        r#""type": "module", "exports": "./index.js""#,
        &[("index.js", "export const a = 1;\n")],
    );
    std::os::unix::fs::symlink(
        repo.path("store/node_modules"),
        repo.path("extensions/node_modules"),
    )
    .unwrap();
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(
        &error,
        &[
            "linked",
            "symlink leaving the extension root",
            "flat node_modules",
        ],
    );
}

#[test]
fn a_package_importing_a_node_builtin_is_refused() {
    let repo = bad("import { read } from \"fs-user\";\nconst used = read;");
    package(
        &repo,
        "extensions",
        "fs-user",
        "1.0.0",
        r#""type": "module", "exports": "./index.js""#,
        &[(
            "index.js",
            "import { readFileSync } from \"node:fs\";\nexport const read = readFileSync;\n",
        )],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(
        &error,
        &[
            "node:fs",
            "node_modules/fs-user/index.js:1:",
            "Node.js built-in",
        ],
    );

    for (line, needle) in [
        (
            "import { x } from \"jsr:@std/path\";\nconst used = x;",
            "jsr: imports are not supported",
        ),
        (
            "import { x } from \"https://esm.sh/zod\";\nconst used = x;",
            "URL imports are not supported",
        ),
        (
            "import { x } from \"path\";\nconst used = x;",
            "Node.js built-in",
        ),
    ] {
        let repo = bad(line);
        let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
        assert_has(&error, &[needle]);
    }
}

#[test]
fn a_package_reaching_the_module_cap_fails_the_build() {
    let repo = bad("import { a } from \"huge\";\nconst used = a;");
    let mut index = String::new();
    let mut files = Vec::new();
    for i in 0..2_000 {
        index.push_str(&format!("import \"./m/{i}.js\";\n"));
        files.push((format!("m/{i}.js"), String::new()));
    }
    index.push_str("export const a = 1;\n");
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    package(
        &repo,
        "extensions",
        "huge",
        "1.0.0",
        r#""type": "module", "exports": "./index.js""#,
        &refs,
    );
    repo.write("extensions/node_modules/huge/index.js", &index);
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(&error, &["2000 modules"]);
}

#[test]
fn a_package_reaching_the_code_size_cap_fails_the_build() {
    let repo = bad("import { a } from \"big\";\nconst used = a;");
    let text = format!("export const a = \"{}\";\n", "x".repeat(17 * 1024 * 1024));
    package(
        &repo,
        "extensions",
        "big",
        "1.0.0",
        r#""type": "module", "exports": "./index.js""#,
        &[("index.js", &text)],
    );
    let error = failed(&repo, "extensions/models/m.ts", "BundleBuildFailed");
    assert_has(&error, &["bytes of emitted code"]);
}

#[test]
fn a_package_whose_top_level_throws_or_loops_fails_validation() {
    let repo = bad("import { a } from \"thrower\";\nconst used = a;");
    package(
        &repo,
        "extensions",
        "thrower",
        "1.0.0",
        r#""type": "module", "module": "index.js""#,
        &[(
            "index.js",
            "throw new Error(\"package exploded\");\nexport const a = 1;\n",
        )],
    );
    let error = failed(&repo, "extensions/models/m.ts", "ValidationFailed");
    assert_has(&error, &["package exploded"]);

    let spin = bad("import { a } from \"spinner\";\nconst used = a;");
    package(
        &spin,
        "extensions",
        "spinner",
        "1.0.0",
        r#""type": "module", "exports": {"fen": "./index.js"}"#,
        &[("index.js", "while (true) {}\nexport const a = 1;\n")],
    );
    let search = spin.fen_env(
        &[("FEN_SANDBOX_EVAL_TIMEOUT_MS", "300")],
        &["model", "type", "search"],
    );
    assert_eq!(search.code, 0, "{}", search.stderr);
    let list = spin.ok(&["--json", "extension", "list"]).json();
    let rows = spin.rows_by_path(&list["sources"]);
    let row = &rows["extensions/models/m.ts"];
    assert_eq!(row["state"], "ValidationFailed", "{row}");
    assert_has(row["lastError"].as_str().unwrap(), &["time limit"]);
}

/// The extension of the pack test: one model importing `tiny-schema`, with the package
/// installed in the extension directory next to an unrelated one.
fn npm_ext() -> Ext {
    let pkg = |rel: &str, text: &str| (format!("node_modules/{rel}"), text.to_owned());
    let mut ext = Ext {
        name: "@t/npm",
        version: V1,
        files: vec![(
            "models/uses.ts".to_owned(),
            importer("@t/npm/uses", "1.2.3"),
        )],
        models: vec!["uses.ts".to_owned()],
        dependencies: Vec::new(),
    };
    ext.files.extend([
        pkg(
            "tiny-schema/package.json",
            r#"{"name": "tiny-schema", "version": "1.2.3", "type": "module", "exports": {".": {"import": "./index.js"}, "./sub/*": "./lib/*.js"}}"#,
        ),
        pkg(
            "tiny-schema/index.js",
            "import { shout } from \"./lib/util.js\";\nexport function describe(name) { return shout(name) + \" v\" + VERSION; }\nexport const VERSION = \"1.2.3\";\n",
        ),
        pkg("tiny-schema/lib/util.js", "export function shout(text) { return text.toUpperCase(); }\n"),
        pkg("tiny-schema/lib/extra.js", "export const EXTRA = 7;\n"),
        pkg("tiny-schema/unused.js", "export const UNUSED = 1;\n"),
        pkg("tiny-schema/LICENSE", "MIT\n"),
        pkg("tiny-schema/README.md", "readme\n"),
        pkg("unrelated/package.json", r#"{"name": "unrelated", "version": "1.0.0"}"#),
        pkg("unrelated/index.js", "export const u = 1;\n"),
        pkg(".package-lock.json", "{}\n"),
    ]);
    ext
}

#[test]
fn pack_ships_exactly_the_reachable_package_files_and_a_pull_runs_them() {
    let ext = npm_ext();
    let world = World::new(&[ext]);
    let archive = world.archive("@t/npm", V1);
    let listed = tar_listing(&std::fs::read(&archive).unwrap());
    assert_eq!(
        listed,
        [
            "extension/manifest.yaml",
            "extension/models/uses.ts",
            "extension/node_modules/tiny-schema/LICENSE",
            "extension/node_modules/tiny-schema/index.js",
            "extension/node_modules/tiny-schema/lib/extra.js",
            "extension/node_modules/tiny-schema/lib/util.js",
            "extension/node_modules/tiny-schema/package.json",
        ]
    );
    // Deterministic: packing the same tree again gives the same bytes.
    let work = crate::util::TempDir::new();
    let src = crate::lifecycle::write_source(work.path(), &npm_ext());
    let out = work.path().join("again.tar.gz");
    // `pack .` from inside the directory.
    let run: crate::util::Run = crate::util::fen(&src)
        .args(["extension", "pack", "."])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&archive).unwrap()
    );

    let pulled = world.fen(&["extension", "pull", "@t/npm"]);
    assert_eq!(pulled.code, 0, "{}", pulled.stderr);
    let files: Vec<String> = world.lockfile()["extensions"]["@t/npm"]["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", world.lockfile()))
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("/@t/npm/node_modules/tiny-schema/lib/util.js")),
        "{files:?}"
    );
    assert!(!files
        .iter()
        .any(|f| f.contains("unrelated") || f.contains("unused")));
    let described = world.json(0, &["model", "type", "describe", "@t/npm/uses"]);
    assert_eq!(described["description"], "USES v1.2.3 7 1.2.3");
    assert_eq!(
        described["packages"],
        json!([{"name": "tiny-schema", "version": "1.2.3"}])
    );
    let created = world.fen(&["model", "create", "@t/npm/uses", "u"]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let run = world.json(0, &["model", "method", "run", "u", "go"]);
    assert_eq!(run["result"], "RAN v1.2.3");
}

/// The entry names of a `.tar.gz`, in archive order.
fn tar_listing(gz: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

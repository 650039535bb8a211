//! Lazy loading and bundling (spec 30 §9 scenarios 1, 2, 4-14, 16) on a generated
//! fixture of 12 model types sharing `_lib` helpers instead of F116. Scenarios 3 and 15
//! run a model method and live in `models`; scenario 6 is in `catalog`; 17-21 are about
//! one process's registry and are tests of `fen-lifecycle`'s loader.

use std::collections::BTreeMap;

use crate::fixture::{local_bundle, warnings, Repo, Stats, GENERATED, NETWORK_IMPORTERS};

/// A generated repo after its cold start, with stat records that are not racy.
fn indexed_fixture() -> Repo {
    let repo = Repo::generated();
    let cold = repo.search_stats();
    assert_eq!((cold.built, cold.evaluated), (12, 12), "{cold:?}");
    repo
}

#[test]
fn search_on_an_unchanged_tree_builds_evaluates_and_locks_nothing() {
    let repo = indexed_fixture();
    let out = repo.ok(&["--stats", "model", "type", "search", "vpc"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("@fixture/aws/ec2/vpc  2026.01.01.0  Generated fixture type ec2 vpc"),
        "{}",
        lines[0]
    );
    let stats = Stats::of(&out);
    assert_eq!(
        stats,
        Stats {
            built: 0,
            evaluated: 0,
            evaluated_paths: vec![],
            hashed: 0,
            locks: 0
        }
    );
    assert!(warnings(&out).is_empty(), "{}", out.stderr);
}

// Spec 30 §5.6 lists `catalogStatements` in the stats line and scenario 1 bounds it.
#[test]
fn search_on_an_unchanged_tree_runs_at_most_two_catalog_statements() {
    let repo = indexed_fixture();
    let out = repo.ok(&["--stats", "model", "type", "search", "vpc"]);
    let stats = crate::fixture::stats(&out);
    let statements = stats["catalogStatements"]
        .as_u64()
        .unwrap_or_else(|| panic!("fenStats has no catalogStatements counter: {stats}"));
    assert!(statements <= 2, "{stats}");
}

// The warm read is one outline of the catalog (guards and rows, no descriptors); a
// search or a describe then reads the descriptors of the rows it shows in one more.
#[test]
fn describe_on_an_unchanged_tree_runs_at_most_two_catalog_statements() {
    let repo = indexed_fixture();
    let out = repo.ok(&[
        "--stats",
        "model",
        "type",
        "describe",
        "@fixture/aws/ec2/vpc",
    ]);
    let stats = crate::fixture::stats(&out);
    assert_eq!(stats["catalogStatements"], 2, "{stats}");
    assert_eq!(Stats::of(&out).evaluated, 0);
}

// Search lists from the outline, then takes each shown type's declared spelling from
// its descriptor: every match keeps its declared type, version and description.
#[test]
fn search_shows_the_declared_spelling_of_every_match() {
    let repo = indexed_fixture();
    let out = repo.ok(&["--json", "model", "type", "search", ""]);
    let doc = out.json();
    let types = doc["types"].as_array().expect("types");
    assert_eq!(types.len(), 12, "{doc}");
    for t in types {
        let declared = t["declaredType"].as_str().expect("declaredType");
        assert!(declared.starts_with("@fixture/"), "{t}");
        assert_eq!(declared.to_lowercase(), t["type"].as_str().unwrap(), "{t}");
        assert_eq!(t["version"], "2026.01.01.0", "{t}");
        assert!(
            t["description"]
                .as_str()
                .unwrap()
                .starts_with("Generated fixture type"),
            "{t}"
        );
    }
}

#[test]
fn list_and_describe_answer_from_descriptors() {
    let repo = indexed_fixture();
    let list = repo.ok(&["--stats", "--json", "extension", "list"]);
    assert_eq!(list.json()["sources"].as_array().unwrap().len(), 12);
    assert_eq!(Stats::of(&list).evaluated, 0);

    let describe = repo.ok(&[
        "--stats",
        "--json",
        "model",
        "type",
        "describe",
        "@fixture/aws/ec2/vpc",
    ]);
    assert_eq!(Stats::of(&describe).evaluated, 0);
    let doc = describe.json();
    assert_eq!(doc["type"], "@fixture/aws/ec2/vpc");
    assert_eq!(doc["version"], "2026.01.01.0");
    assert_eq!(
        doc["globalArguments"]["properties"]["cidr"]["default"],
        "10.0.0.0/16"
    );
    assert_eq!(doc["globalArguments"]["required"][0], "region");
    assert_eq!(
        doc["resources"]["state"]["schema"]["properties"]["id"]["type"],
        "string"
    );
    let methods = doc["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 1, "{doc}");
    assert_eq!(methods[0]["name"], "refresh");
    assert_eq!(methods[0]["origin"], "base");
    assert_eq!(
        methods[0]["arguments"]["properties"]["force"]["type"],
        "boolean"
    );

    // The type is normalized before the lookup (spec 10 §1.5).
    let human = repo.ok(&["model", "type", "describe", "@Fixture/AWS/EC2/VPC"]);
    assert!(human.stdout.contains("refresh"), "{}", human.stdout);
}

#[test]
fn editing_one_entry_rebuilds_only_its_bundle() {
    let repo = indexed_fixture();
    let before = repo.bundles();
    assert_eq!(before.len(), 12);

    let rel = "extensions/models/s3_bucket.ts";
    let text = repo.read(rel);
    repo.write(rel, &format!("{text}// edited\n"));
    let stats = Stats::of(&repo.ok(&["--stats", "model", "type", "search", "x"]));
    assert_eq!((stats.built, stats.evaluated), (1, 1), "{stats:?}");
    assert_eq!(stats.evaluated_paths, vec![local_bundle("s3_bucket")]);

    let after = repo.bundles();
    for (path, (bytes, mtime)) in &before {
        if path == &local_bundle("s3_bucket") {
            assert_ne!(&after[path].0, bytes, "the edited entry's bundle changed");
            continue;
        }
        assert_eq!(&after[path].0, bytes, "{path} bytes");
        assert_eq!(&after[path].1, mtime, "{path} mtime");
    }
}

#[test]
fn editing_a_helper_rebuilds_exactly_its_three_importers() {
    let repo = indexed_fixture();
    repo.write(
        "extensions/models/_lib/network.ts",
        "export const DEFAULT_CIDR: string = \"10.1.0.0/16\";\n",
    );
    let stats = repo.search_stats();
    assert_eq!((stats.built, stats.evaluated), (3, 3), "{stats:?}");
    let mut expected: Vec<String> = NETWORK_IMPORTERS.iter().map(|s| local_bundle(s)).collect();
    expected.sort();
    assert_eq!(stats.evaluated_paths, expected);
    let doc = repo
        .ok(&[
            "--json",
            "model",
            "type",
            "describe",
            "@fixture/aws/ec2/subnet",
        ])
        .json();
    assert_eq!(
        doc["globalArguments"]["properties"]["cidr"]["default"],
        "10.1.0.0/16"
    );
}

#[test]
fn a_layout_change_rebuilds_every_bundle_into_a_fresh_tree() {
    let repo = indexed_fixture();
    let vpc_bundle = repo.path(&local_bundle("ec2_vpc"));
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&vpc_bundle).unwrap()).unwrap();
    let layout = bundle["layout"].as_str().unwrap().to_owned();
    assert_eq!(
        repo.sqlite("select value from bundle_meta where key = 'bundle_layout'")
            .trim(),
        layout
    );

    // What a binary of an older layout leaves behind: the meta key, bundle files of
    // that layout, and a file fen no longer knows.
    repo.sqlite("update bundle_meta set value = 'old' where key = 'bundle_layout'");
    let old = serde_json::to_vec(&{
        let mut b = bundle.clone();
        b["layout"] = "old".into();
        b
    })
    .unwrap();
    std::fs::write(&vpc_bundle, old).unwrap();
    repo.write(".fen/bundles/local/models/leftover.ts.bundle.json", "{}");

    let stats = repo.search_stats();
    assert_eq!(stats.built, 12, "{stats:?}");
    assert_eq!(
        repo.sqlite("select value from bundle_meta where key = 'bundle_layout'")
            .trim(),
        layout
    );
    let bundles = repo.bundles();
    assert!(
        !bundles.contains_key(".fen/bundles/local/models/leftover.ts.bundle.json"),
        ".fen/bundles/ was not recreated: {:?}",
        bundles.keys()
    );
    assert_eq!(bundles.len(), 12);
    for (path, (bytes, _)) in &bundles {
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(doc["layout"], layout.as_str(), "{path}");
    }
    let again = repo.search_stats();
    assert_eq!((again.built, again.evaluated, again.locks), (0, 0, 0));
}

/// A small repo: two good types plus whatever a test adds.
fn two_good_types() -> Repo {
    let repo = Repo::new();
    repo.model("extensions/models/good_a.ts", "@fx/good/a", "first");
    repo.model("extensions/models/good_b.ts", "@fx/good/b", "second");
    repo
}

#[test]
fn an_unsupported_bare_import_fails_the_build_with_its_position() {
    let repo = two_good_types();
    repo.write(
        "extensions/models/uses_zod.ts",
        &format!(
            "import {{ z }} from \"zod\";\nconst schema = z;\n{}",
            crate::fixture::model_source("@fx/bad/zod", "d")
        ),
    );
    let row = repo.row("extensions/models/uses_zod.ts");
    assert_eq!(row["state"], "BundleBuildFailed");
    let error = row["lastError"].as_str().unwrap();
    assert!(error.contains("not installed"), "{error}");
    assert!(error.contains("npm install zod"), "{error}");
    assert!(error.contains("models/uses_zod.ts:1:"), "{error}");

    let search = repo.ok(&["model", "type", "search"]);
    assert!(!search.stdout.contains("@fx/bad/zod"), "{}", search.stdout);
    assert!(search.stdout.contains("@fx/good/a"));
    assert!(search.stdout.contains("@fx/good/b"));
}

// Spec 30 §3.8 and scenario 8: every `build_index` warns about each failed source that
// still exists, not only the pass that recorded the failure.
#[test]
fn search_warns_once_about_a_source_that_failed_in_an_earlier_command() {
    let repo = two_good_types();
    repo.write(
        "extensions/models/uses_zod.ts",
        &format!(
            "import {{ z }} from \"zod\";\nconst schema = z;\n{}",
            crate::fixture::model_source("@fx/bad/zod", "d")
        ),
    );
    assert_eq!(
        repo.row("extensions/models/uses_zod.ts")["state"],
        "BundleBuildFailed"
    );
    let search = repo.ok(&["model", "type", "search"]);
    let lines = warnings(&search);
    assert_eq!(lines.len(), 1, "stderr: {}", search.stderr);
    assert!(lines[0].contains("uses_zod.ts"), "{}", lines[0]);
}

#[test]
fn a_type_only_import_of_a_bare_module_is_fine() {
    let repo = two_good_types();
    repo.write(
        "extensions/models/typed.ts",
        &format!(
            "import type {{ ZodType }} from \"zod\";\nlet unused: ZodType | undefined;\n{}",
            crate::fixture::model_source("@fx/typed/t", "d")
        ),
    );
    let row = repo.row("extensions/models/typed.ts");
    assert_eq!(row["state"], "Indexed", "{row}");
    assert_eq!(row["type"], "@fx/typed/t");
}

#[test]
fn a_top_level_throw_stays_failed_without_rebuilds_until_fixed() {
    let repo = two_good_types();
    let rel = "extensions/models/throws.ts";
    repo.write(
        rel,
        &format!(
            "throw new Error(\"boom at top\");\n{}",
            crate::fixture::model_source("@fx/throws/t", "d")
        ),
    );
    repo.age_all();
    let row = repo.row(rel);
    assert_eq!(row["state"], "ValidationFailed");
    assert!(
        row["lastError"].as_str().unwrap().contains("boom at top"),
        "{row}"
    );
    for _ in 0..2 {
        let stats = repo.search_stats();
        assert_eq!((stats.built, stats.evaluated), (0, 0), "{stats:?}");
    }
    repo.model(rel, "@fx/throws/t", "fixed");
    assert_eq!(repo.row(rel)["state"], "Indexed");
    assert!(repo.search_types().contains(&"@fx/throws/t".to_owned()));
}

#[test]
fn a_missing_import_recovers_when_the_file_appears() {
    let repo = two_good_types();
    let rel = "extensions/models/needs_util.ts";
    repo.write(
        rel,
        &format!(
            "import {{ U }} from \"./util.ts\";\nconst u = U;\n{}",
            crate::fixture::model_source("@fx/needs/util", "d")
        ),
    );
    let row = repo.row(rel);
    assert_eq!(row["state"], "BundleBuildFailed");
    assert!(
        row["lastError"].as_str().unwrap().contains("./util.ts"),
        "{row}"
    );
    // The entry stays untouched; only the helper appears.
    repo.write("extensions/models/util.ts", "export const U = 1;\n");
    assert_eq!(repo.row(rel)["state"], "Indexed");
    assert!(repo.search_types().contains(&"@fx/needs/util".to_owned()));
}

#[cfg(unix)]
#[test]
fn an_entry_replaced_by_a_dangling_symlink_is_unreadable_and_named_once() {
    let repo = two_good_types();
    let rel = "extensions/models/linked.ts";
    repo.model(rel, "@fx/linked/t", "d");
    assert_eq!(repo.row(rel)["state"], "Indexed");

    repo.remove(rel);
    std::os::unix::fs::symlink(repo.path("nowhere/linked.ts"), repo.path(rel)).unwrap();
    let search = repo.ok(&["model", "type", "search"]);
    assert_eq!(
        search.stderr.matches("linked.ts").count(),
        1,
        "stderr: {}",
        search.stderr
    );
    assert!(search.stdout.contains("@fx/good/a"));
    assert!(search.stdout.contains("@fx/good/b"));
    assert!(!search.stdout.contains("@fx/linked/t"));
    assert_eq!(repo.row(rel)["state"], "EntryPointUnreadable");
}

#[test]
fn clones_at_different_paths_build_byte_identical_bundles() {
    let first = Repo::generated();
    let second = Repo::generated();
    assert_ne!(first.root(), second.root());
    first.search_stats();
    second.search_stats();
    let a: BTreeMap<String, Vec<u8>> = first
        .bundles()
        .into_iter()
        .map(|(p, (bytes, _))| (p, bytes))
        .collect();
    let b: BTreeMap<String, Vec<u8>> = second
        .bundles()
        .into_iter()
        .map(|(p, (bytes, _))| (p, bytes))
        .collect();
    assert_eq!(a.len(), GENERATED.len());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (path, bytes) in &a {
        assert!(bytes == &b[path], "{path} differs between the clones");
    }
}

#[test]
fn an_awaited_dynamic_import_fails_the_build() {
    let repo = two_good_types();
    repo.write("extensions/models/x.ts", "export const X = 1;\n");
    let rel = "extensions/models/dynamic.ts";
    repo.write(
        rel,
        &format!(
            "const m = await import(\"./x.ts\");\n{}",
            crate::fixture::model_source("@fx/dynamic/t", "d")
        ),
    );
    let row = repo.row(rel);
    assert_eq!(row["state"], "BundleBuildFailed");
    let error = row["lastError"].as_str().unwrap();
    assert!(error.contains("dynamic import"), "{error}");
    assert!(error.contains("models/dynamic.ts:1:"), "{error}");
    assert_eq!(repo.search_types(), ["@fx/good/a", "@fx/good/b"]);
}

#[test]
fn zod_like_global_arguments_get_the_json_schema_hint() {
    let repo = two_good_types();
    let rel = "extensions/models/zodish.ts";
    repo.write(
        rel,
        r#"const fakeZod = { _def: { typeName: "ZodObject" }, safeParse(v: unknown) { return { success: true, data: v }; } };
export const model = {
  type: "@fx/zodish/t",
  version: "2026.01.01.0",
  description: "d",
  globalArguments: fakeZod,
  methods: { go: { description: "g", arguments: { type: "object" }, run() { return 1; } } },
};
"#,
    );
    let row = repo.row(rel);
    assert_eq!(row["state"], "ValidationFailed");
    let error = row["lastError"].as_str().unwrap();
    assert!(error.contains("fen uses JSON Schema, not zod"), "{error}");
    assert!(error.contains("globalArguments"), "{error}");
}

#[test]
fn the_built_in_datastores_are_listed_and_described_without_a_bundle() {
    let repo = two_good_types();
    let out = repo.ok(&[
        "--json",
        "--stats",
        "model",
        "type",
        "search",
        "--kind",
        "datastore",
    ]);
    let names: Vec<String> = out.json()["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["filesystem", "local"]);
    let described = repo.ok(&["--json", "--stats", "extension", "describe", "filesystem"]);
    let doc = described.json();
    assert_eq!(doc["builtin"], true);
    assert_eq!(doc["configSchema"]["required"], serde_json::json!(["path"]));
    assert_eq!(Stats::of(&described).evaluated, 0);
    // Built-ins are datastores only.
    let model = repo.fen(&["model", "type", "describe", "local"]);
    assert_eq!(model.code, 3, "{}", model.stderr);
}

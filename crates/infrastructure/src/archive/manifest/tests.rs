//! Tests of `archive::manifest`: the text rules of spec 20 §5.3 and the file-set checks.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

const VALID: &str = r#"manifestVersion: 1
name: "@stress/alpha"
version: "2026.05.05.1"
description: "stress fixture"
models: [noop.ts, sub/b.ts]
vaults: []
files: [README.md]
dependencies: ["@stress/base", "@other/lib@2026.04.01.2"]
"#;

fn with(replace: &str, by: &str) -> String {
    assert!(VALID.contains(replace), "{replace}");
    VALID.replace(replace, by)
}

/// The problem `text` draws, as `FIELD: PROBLEM`.
fn problem(text: &str) -> String {
    parse_manifest(text).unwrap_err().to_string()
}

#[test]
fn a_valid_manifest_parses() {
    let (manifest, warnings) = parse_manifest(VALID).unwrap();
    assert_eq!(manifest.name.as_str(), "@stress/alpha");
    assert_eq!(manifest.version.to_string(), "2026.05.05.1");
    assert_eq!(manifest.description.as_deref(), Some("stress fixture"));
    assert_eq!(
        manifest.entry_points,
        BTreeMap::from([(
            LoaderKind::Model,
            vec!["noop.ts".to_owned(), "sub/b.ts".to_owned()]
        )])
    );
    assert_eq!(manifest.files, ["README.md"]);
    let deps: Vec<String> = manifest
        .dependencies
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(deps, ["@stress/base", "@other/lib@2026.04.01.2"]);
    assert!(warnings.is_empty());
}

#[test]
fn unquoted_versions_and_null_lists_are_fine() {
    let text = "manifestVersion: 1\nname: '@a/b'\nversion: 2026.05.05.10\nreports: [r.ts]\nmodels:\nfiles: ~\n";
    let (manifest, _) = parse_manifest(text).unwrap();
    assert_eq!(manifest.version.to_string(), "2026.05.05.10");
    assert_eq!(
        manifest.entry_points.keys().copied().collect::<Vec<_>>(),
        [LoaderKind::Report]
    );
}

#[test]
fn unknown_keys_are_warnings() {
    let (_, warnings) = parse_manifest(&format!("{VALID}license: MIT\nzeta: 1\n")).unwrap();
    assert_eq!(
        warnings,
        [
            "manifest.yaml: unknown key \"license\" is ignored",
            "manifest.yaml: unknown key \"zeta\" is ignored"
        ]
    );
}

#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(String, &str)> = vec![
        (
            with("manifestVersion: 1", "manifestVersion: 2"),
            "manifestVersion: must be 1",
        ),
        (
            with("manifestVersion: 1", "manifestVersion: '1'"),
            "manifestVersion: must be 1",
        ),
        (
            with("manifestVersion: 1\n", ""),
            "manifestVersion: is required",
        ),
        (with("name: \"@stress/alpha\"\n", ""), "name: is required"),
        (
            with("\"@stress/alpha\"", "\"@local/alpha\""),
            "name: scope @local is reserved",
        ),
        (
            with("\"@stress/alpha\"", "\"stress/alpha\""),
            "name: extension name must start with '@'",
        ),
        (with("\"@stress/alpha\"", "7"), "name: must be a string"),
        (
            with("\"2026.05.05.1\"", "\"0.0.0\""),
            "version: 0.0.0 is not a publishable version",
        ),
        (
            with("\"2026.05.05.1\"", "\"2026.02.30.1\""),
            "version: version day 2026-02-30 does not exist",
        ),
        (
            with("\"2026.05.05.1\"", "\"1.2.3\""),
            "version: version must look like",
        ),
        (
            with("\"stress fixture\"", "[a]"),
            "description: must be a string",
        ),
        (
            with("\"stress fixture\"", &"d".repeat(1001)),
            "description: is 1001 characters long, at most 1000",
        ),
        (
            with("models: [noop.ts, sub/b.ts]", "models: []"),
            "models: at least one of models, vaults",
        ),
        (
            with("models: [noop.ts, sub/b.ts]", "models: noop.ts"),
            "models: must be a list of strings",
        ),
        (with("sub/b.ts", "7"), "models[1]: must be a string"),
        (
            with("sub/b.ts", "'../x.ts'"),
            "models[1]: \"../x.ts\" is not a relative '/'-separated path ('..' path segment)",
        ),
        (
            with("sub/b.ts", "'/abs.ts'"),
            "models[1]: \"/abs.ts\" is not a relative '/'-separated path (absolute path)",
        ),
        (
            with("sub/b.ts", "'sub\\b.ts'"),
            "models[1]: \"sub\\\\b.ts\" is not a relative '/'-separated path (backslash in path)",
        ),
        (
            with("sub/b.ts", "'./b.ts'"),
            "models[1]: \"./b.ts\" is not a relative '/'-separated path ('.' path segment)",
        ),
        (
            with("sub/b.ts", "noop.ts"),
            "models[1]: \"noop.ts\" is listed twice",
        ),
        (
            with("[README.md]", "['']"),
            "files[0]: \"\" is not a relative '/'-separated path (empty path)",
        ),
        (
            with("\"@stress/base\"", "\"@stress/base@^2026.01.01.1\""),
            "dependencies[0]: \"@stress/base@^2026.01.01.1\" uses a version range",
        ),
        (
            with("\"@stress/base\"", "\"@stress/base@>=2026.01.01.1\""),
            "dependencies[0]: \"@stress/base@>=2026.01.01.1\" uses a version range",
        ),
        (
            with("\"@stress/base\"", "\"@stress/base@~2026.01.01.1\""),
            "dependencies[0]: \"@stress/base@~2026.01.01.1\" uses a version range",
        ),
        (
            with("\"@stress/base\"", "\"@stress/alpha\""),
            "dependencies[0]: an extension cannot depend on itself",
        ),
        (
            with("\"@stress/base\"", "\"@stress/alpha@2026.01.01.1\""),
            "dependencies[0]: an extension cannot depend on itself",
        ),
        (
            with("\"@stress/base\"", "\"@other/lib\""),
            "dependencies[1]: @other/lib is listed twice",
        ),
        (
            with("\"@stress/base\"", "\"@Bad/x\""),
            "dependencies[0]: invalid extension name \"@Bad/x\"",
        ),
        (
            with("\"@stress/base\"", "\"@a/b@\""),
            "dependencies[0]: invalid extension name \"@a/b@\"",
        ),
        (
            "- a\n- b\n".to_owned(),
            "manifest.yaml: must be a YAML mapping",
        ),
        ("".to_owned(), "manifest.yaml: must be a YAML mapping"),
        (
            "name: [unclosed\n".to_owned(),
            "manifest.yaml: not valid YAML: ",
        ),
        (
            format!("{VALID}1: x\n"),
            "manifest.yaml: every top-level key must be a string",
        ),
    ];
    for (text, expected) in cases {
        let got = problem(&text);
        assert!(
            got.starts_with(expected),
            "{got:?} should start with {expected:?}"
        );
        assert!(!got.contains('\n'), "{got:?} is one line");
    }
}

#[test]
fn duplicate_keys_are_invalid_yaml() {
    assert!(
        problem(&format!("{VALID}name: \"@x/y\"\n")).starts_with("manifest.yaml: not valid YAML")
    );
}

#[test]
fn a_manifest_over_64_kib_is_refused_before_parsing() {
    let text = format!("{VALID}# {}\n", "x".repeat(64 * 1024));
    assert!(problem(&text).starts_with("manifest.yaml: is 65"));
}

fn file_set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| (*p).to_owned()).collect()
}

/// Checks the valid manifest against `files`, where every `.ts` file exports `model`
/// unless its name contains `plain`.
fn check_files(paths: &[&str]) -> Result<(), FileSetProblem> {
    let (manifest, _) = parse_manifest(VALID).unwrap();
    check_file_set(&manifest, &file_set(paths), &mut |path| {
        Ok(if path.contains("plain") {
            b"export const helper = 1;".to_vec()
        } else {
            b"export const model = {};".to_vec()
        })
    })
}

const COMPLETE: [&str; 4] = [
    "manifest.yaml",
    "models/noop.ts",
    "models/sub/b.ts",
    "files/README.md",
];

#[test]
fn the_file_set_must_match_the_lists() {
    check_files(&COMPLETE).unwrap();
    // Helpers, data files and unlisted files under files/ are fine.
    let mut more = COMPLETE.to_vec();
    more.extend([
        "models/_lib/util.ts",
        "models/plain.ts",
        "models/data.json",
        "models/noop_test.ts",
        "models/node_modules/x/index.js",
        "files/extra.txt",
    ]);
    check_files(&more).unwrap();
}

#[test]
fn listed_files_must_exist_and_be_entry_points() {
    let problem = |paths: &[&str]| match check_files(paths).unwrap_err() {
        FileSetProblem::Manifest(problem) => problem.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        problem(&["manifest.yaml", "models/noop.ts", "files/README.md"]),
        "models: \"sub/b.ts\" is not in the archive"
    );
    assert_eq!(
        problem(&["manifest.yaml", "models/noop.ts", "models/sub/b.ts"]),
        "files: \"README.md\" is not in the archive"
    );

    let text = with("[noop.ts, sub/b.ts]", "[_lib/x.ts, a.json, plain.ts]");
    let (manifest, _) = parse_manifest(&text).unwrap();
    let files = file_set(&[
        "manifest.yaml",
        "models/_lib/x.ts",
        "models/a.json",
        "models/plain.ts",
        "files/README.md",
    ]);
    let problem = check_file_set(&manifest, &files, &mut |path| {
        Ok(if path.contains("plain") {
            b"export const vault = {};".to_vec()
        } else {
            b"export const model = {};".to_vec()
        })
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        problem,
        "models: \"_lib/x.ts\" is inside a helper directory ('_*' or node_modules), so it is not an entry point"
    );
    let text = with("[noop.ts, sub/b.ts]", "[a.json]");
    let (manifest, _) = parse_manifest(&text).unwrap();
    let problem = check_file_set(&manifest, &files, &mut |_| Ok(Vec::new()))
        .unwrap_err()
        .to_string();
    assert!(
        problem.starts_with("models: \"a.json\" is not a source file"),
        "{problem}"
    );
    let text = with("[noop.ts, sub/b.ts]", "[plain.ts]");
    let (manifest, _) = parse_manifest(&text).unwrap();
    let problem = check_file_set(&manifest, &files, &mut |_| {
        Ok(b"export const vault = {};".to_vec())
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        problem,
        "models: \"plain.ts\" has no `export const model` or `export const extension`"
    );
}

#[test]
fn an_unlisted_entry_point_is_refused() {
    let mut more = COMPLETE.to_vec();
    more.push("models/sub/extra.ts");
    match check_files(&more).unwrap_err() {
        FileSetProblem::UnlistedEntryPoint(path) => assert_eq!(path, "models/sub/extra.ts"),
        other => panic!("{other:?}"),
    }
    // An exporting file in a kind directory with no list at all counts too.
    let mut more = COMPLETE.to_vec();
    more.push("drivers/d.ts");
    let (manifest, _) = parse_manifest(VALID).unwrap();
    let problem = check_file_set(&manifest, &file_set(&more), &mut |path| {
        Ok(match path {
            "drivers/d.ts" => b"export { d as driver };".to_vec(),
            _ => b"export const model = {};".to_vec(),
        })
    })
    .unwrap_err();
    assert_eq!(
        problem.to_string(),
        "entry point \"drivers/d.ts\" is not listed in manifest.yaml"
    );
}

#[test]
fn permissions_are_parsed_canonical_and_checked_entry_by_entry() {
    // Spec 40 §2: declared in manifest.yaml, covering every entry point.
    let text = format!(
        "{VALID}permissions:\n  net: [\"https://*.amazonaws.com\", \"https://api.github.com\"]\n  env: [AWS_REGION]\n  secrets: [\"team:db/*\"]\n"
    );
    let (manifest, warnings) = parse_manifest(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        manifest.permissions.to_json(),
        serde_json::json!({
            "net": ["https://api.github.com", "https://*.amazonaws.com"],
            "env": ["AWS_REGION"],
            "secrets": ["team:db/*"],
        })
    );
    // Absent: none.
    assert!(parse_manifest(VALID).unwrap().0.permissions.is_empty());
    // Each refusal names the field, the entry and the rule (or the canonical form).
    let refused = |permissions: &str| problem(&format!("{VALID}permissions:\n{permissions}"));
    let message = refused("  net: [\"http://2130706433\"]\n");
    assert!(message.starts_with("permissions: "), "{message}");
    assert!(
        message.contains("2130706433") && message.contains("127.0.0.1"),
        "{message}"
    );
    let message = refused("  net: [\"https://api.*.github.com\"]\n");
    assert!(message.contains("api.*.github.com"), "{message}");
    let message = refused("  files: [\"/etc\"]\n");
    assert!(message.contains("unknown key `files`"), "{message}");
    let many: Vec<String> = (0..65)
        .map(|i| format!("\"https://h{i}.example.org\""))
        .collect();
    let message = refused(&format!("  net: [{}]\n", many.join(", ")));
    assert!(message.contains("65 entries"), "{message}");
    let message = refused("  env: [FEN_REGISTRY_TOKEN]\n");
    assert!(message.contains("FEN_REGISTRY_TOKEN"), "{message}");
}

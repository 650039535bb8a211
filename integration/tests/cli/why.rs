//! `fen extension why TYPE` (issue 13): the winner and one test per reason a candidate
//! is not it (shadowed by a local source, I2 loser, tombstoned, BundleBuildFailed,
//! ValidationFailed, EntryPointUnreadable), extensions of the type, unknown types,
//! all from the catalog alone (`--stats` shows nothing evaluated, built or locked).

use serde_json::Value;

use crate::fixture::{model_source, stats, Repo};
use crate::lifecycle::{Ext, World, V1};
use crate::util::Run;

/// `fen --json --stats extension why ARGS`, asserting exit 0 and that the catalog was
/// only read; returns the document.
fn why(repo: &Repo, args: &[&str]) -> Value {
    let mut all = vec!["--json", "--stats", "extension", "why"];
    all.extend_from_slice(args);
    let out = repo.fen(&all);
    assert_eq!(out.code, 0, "stdout {}\nstderr {}", out.stdout, out.stderr);
    assert_read_only(&out);
    out.json()
}

fn assert_read_only(out: &Run) {
    let stats = stats(out);
    assert_eq!(stats["bundlesEvaluated"], 0, "{stats}");
    assert_eq!(stats["bundlesBuilt"], 0, "{stats}");
    assert_eq!(stats["lifecycleLockAcquired"], 0, "{stats}");
}

/// The only candidate of a document, checked for its path (repo-relative) and reason.
fn only_candidate(repo: &Repo, doc: &Value, rel: &str, reason: &str) -> Value {
    let candidates = doc["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 1, "{doc}");
    let candidate = candidates[0].clone();
    assert_eq!(
        repo.rel(candidate["sourcePath"].as_str().unwrap()),
        rel,
        "{doc}"
    );
    assert_eq!(candidate["reason"], reason, "{doc}");
    candidate
}

/// A repo whose a.ts and b.ts both declare `@me/dup`, indexed.
fn duplicate_pair() -> Repo {
    let repo = Repo::new();
    repo.model("extensions/models/a.ts", "@me/dup", "first");
    repo.model("extensions/models/b.ts", "@me/dup", "second");
    repo.ok(&["extension", "list"]);
    repo
}

#[test]
fn the_winner_has_origin_extension_version_state_fingerprint_and_a_usable_bundle() {
    let repo = Repo::new();
    repo.model("extensions/models/endpoint.ts", "@me/endpoint", "d");
    let listed = repo.row("extensions/models/endpoint.ts");
    let doc = why(&repo, &["@me/endpoint"]);
    let winner = &doc["winner"];
    assert_eq!(doc["type"], "@me/endpoint");
    assert_eq!(doc["kind"], "model");
    assert_eq!(
        repo.rel(winner["sourcePath"].as_str().unwrap()),
        "extensions/models/endpoint.ts"
    );
    assert_eq!(winner["origin"], "local");
    assert_eq!(winner["extension"], listed["extension"]);
    assert_eq!(winner["version"], "2026.01.01.0");
    assert_eq!(winner["state"], "Indexed");
    assert!(
        winner["fingerprint"]
            .as_str()
            .is_some_and(|f| !f.is_empty()),
        "{doc}"
    );
    assert!(
        winner["bundle"]
            .as_str()
            .unwrap()
            .ends_with("endpoint.ts.bundle.json"),
        "{doc}"
    );
    assert_eq!(winner["bundleUsable"], true, "{doc}");
    assert_eq!(doc["candidates"], serde_json::json!([]));

    // A bundle damaged on disk is reported, and still nothing is rebuilt.
    let bundle = winner["bundle"].as_str().unwrap().to_owned();
    std::fs::write(&bundle, "{}").unwrap();
    let doc = why(&repo, &["@me/endpoint"]);
    assert_eq!(doc["winner"]["bundleUsable"], false, "{doc}");
    let human = repo.ok(&["extension", "why", "@me/endpoint"]);
    assert!(human.stdout.contains("not usable"), "{}", human.stdout);

    // A winner deleted from disk is still the catalog's winner until the next indexing
    // command; `why` says so.
    repo.remove("extensions/models/endpoint.ts");
    let doc = why(&repo, &["@me/endpoint"]);
    assert_eq!(doc["winner"]["sourceExists"], false, "{doc}");
    let human = repo.ok(&["extension", "why", "@me/endpoint"]);
    assert!(human.stdout.contains("gone from disk"), "{}", human.stdout);
}

#[test]
fn a_never_indexed_repo_points_at_indexing() {
    let repo = Repo::new();
    let out = repo.fen(&["extension", "why", "@me/anything"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("fen extension list"), "{}", out.stderr);
}

#[test]
fn a_pulled_source_shadowed_by_a_local_one_is_named_with_its_winner() {
    let world = World::new(&[Ext::model("@t/x", V1, "thing", "@t/thing")]);
    world.json(0, &["extension", "pull", "@t/x"]);
    std::fs::write(
        world.path("extensions/models/thing.ts"),
        model_source("@t/thing", "local override"),
    )
    .unwrap();
    world.json(0, &["extension", "list"]);
    let out = world.fen(&["--json", "--stats", "extension", "why", "@t/thing"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_read_only(&out);
    let doc = out.json();
    assert_eq!(doc["winner"]["origin"], "local", "{doc}");
    let winner_path = doc["winner"]["sourcePath"].as_str().unwrap();
    assert!(winner_path.ends_with("extensions/models/thing.ts"), "{doc}");
    let candidates = doc["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 1, "{doc}");
    let shadowed = &candidates[0];
    assert_eq!(shadowed["reason"], "shadowed_by_local");
    assert_eq!(shadowed["origin"], "pulled");
    assert_eq!(shadowed["extension"], format!("@t/x@{V1}"));
    assert_eq!(shadowed["state"], "Indexed");
    assert_eq!(shadowed["lostTo"], winner_path);
    let human = world.fen(&["extension", "why", "@t/thing"]);
    assert!(
        human.stdout.contains("shadowed by a local source"),
        "{}",
        human.stdout
    );
}

#[test]
fn an_i2_loser_names_the_source_that_won_its_slot() {
    let repo = duplicate_pair();
    let doc = why(&repo, &["@me/dup"]);
    assert_eq!(
        repo.rel(doc["winner"]["sourcePath"].as_str().unwrap()),
        "extensions/models/a.ts"
    );
    let loser = only_candidate(&repo, &doc, "extensions/models/b.ts", "i2_loser");
    assert_eq!(loser["state"], "Tombstoned");
    assert_eq!(loser["lostTo"], doc["winner"]["sourcePath"]);
}

#[test]
fn a_tombstone_without_a_winner_is_reported_as_tombstoned() {
    let repo = duplicate_pair();
    // A Renamed tombstone whose winner pointer is gone: the state the catalog holds
    // between the winner leaving the slot and the next indexing command.
    repo.sqlite("UPDATE bundle_types SET superseded_by = '' WHERE state = 'Tombstoned'");
    let doc = why(&repo, &["@me/dup"]);
    let tomb = only_candidate(&repo, &doc, "extensions/models/b.ts", "tombstoned");
    assert_eq!(tomb["lostTo"], Value::Null);
}

#[test]
fn a_build_failure_is_a_candidate_with_its_error_and_no_winner() {
    let repo = Repo::new();
    repo.model("extensions/models/fine.ts", "@me/fine", "d");
    repo.write(
        "extensions/models/broken.ts",
        "export const model = {\n  type: \"@me/broken\",\n  version: \"2026.01.01.0\",,\n};\n",
    );
    repo.fen(&["extension", "list"]);
    let doc = why(&repo, &["@me/broken"]);
    assert_eq!(doc["winner"], Value::Null, "{doc}");
    let failed = only_candidate(
        &repo,
        &doc,
        "extensions/models/broken.ts",
        "bundle_build_failed",
    );
    assert_eq!(failed["state"], "BundleBuildFailed");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{doc}"
    );
    let human = repo.ok(&["extension", "why", "@me/broken"]);
    assert!(
        human.stdout.contains("no visible source"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("BundleBuildFailed"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_validation_failure_is_a_candidate_with_its_error() {
    let repo = Repo::new();
    repo.write(
        "extensions/models/env.ts",
        &format!(
            "const home = process.env.HOME;\n{}",
            model_source("@me/env", "d")
        ),
    );
    repo.fen(&["extension", "list"]);
    let doc = why(&repo, &["@me/env"]);
    let failed = only_candidate(&repo, &doc, "extensions/models/env.ts", "validation_failed");
    assert_eq!(failed["state"], "ValidationFailed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("process is not defined"),
        "{doc}"
    );
}

#[cfg(unix)]
#[test]
fn an_unreadable_entry_point_is_a_candidate() {
    let repo = Repo::new();
    let rel = "extensions/models/linked.ts";
    std::os::unix::fs::symlink(repo.path("nowhere/linked.ts"), repo.path(rel)).unwrap();
    repo.fen(&["extension", "list"]);
    let doc = why(&repo, &["@me/linked"]);
    let failed = only_candidate(&repo, &doc, rel, "entry_point_unreadable");
    assert_eq!(failed["state"], "EntryPointUnreadable");
    assert!(failed["error"].is_string(), "{doc}");
}

#[test]
fn extensions_of_a_model_type_are_listed() {
    let repo = Repo::new();
    repo.model("extensions/models/endpoint.ts", "@me/endpoint", "d");
    repo.write(
        "extensions/models/audit.ts",
        r#"export const extension = {
  type: "@me/endpoint",
  methods: { audit: { description: "a", arguments: { type: "object" }, run() { return 1; } } },
};
"#,
    );
    repo.ok(&["extension", "list"]);
    let doc = why(&repo, &["@me/endpoint"]);
    let extended = doc["extendedBy"].as_array().unwrap();
    assert_eq!(extended.len(), 1, "{doc}");
    assert_eq!(
        repo.rel(extended[0]["sourcePath"].as_str().unwrap()),
        "extensions/models/audit.ts"
    );
    // `--kind extension` asks for the extension rows themselves.
    let doc = why(&repo, &["@me/endpoint", "--kind", "extension"]);
    assert_eq!(doc["kind"], "extension");
    assert_eq!(doc["extendedBy"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["suggestions"], serde_json::json!([]));
}

#[test]
fn an_unknown_type_is_unknown_type_with_the_nearest_names() {
    let repo = Repo::new();
    repo.model("extensions/models/endpoint.ts", "@me/endpoint", "d");
    repo.ok(&["extension", "list"]);
    let out = repo.fen(&["--json", "extension", "why", "@me/endpont"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    let doc = out.json();
    assert_eq!(doc["error"]["code"], "unknown_type", "{doc}");
    assert_eq!(
        doc["error"]["suggestions"],
        serde_json::json!(["@me/endpoint"])
    );
    let human = repo.fen(&["extension", "why", "@me/endpont"]);
    assert_eq!(human.code, 3);
    assert!(
        human.stderr.contains("did you mean @me/endpoint?"),
        "{}",
        human.stderr
    );
}

//! ReconcileFromDisk and `fen doctor extensions` (spec 10 §6.5, §7, §8 scenarios
//! 35-40): idempotent reconcile, the pulled matrix, the guardrail, and the repair plan.

use serde_json::{json, Value};

use crate::fixture::{local_bundle, model_source, Repo, Stats};

/// The `(from, to, reason)` of each transition, keyed by repo-relative path.
fn transitions(repo: &Repo, doc: &Value) -> Vec<(String, Value, Value, String)> {
    doc["recentTransitions"]
        .as_array()
        .expect("recentTransitions is always present")
        .iter()
        .map(|t| {
            (
                repo.rel(t["sourcePath"].as_str().unwrap()),
                t["from"].clone(),
                t["to"].clone(),
                t["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `sourceDetails` states keyed by repo-relative path.
fn states(repo: &Repo, doc: &Value) -> Vec<(String, String)> {
    repo.rows_by_path(&doc["sourceDetails"])
        .into_iter()
        .map(|(path, d)| (path, d["state"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn reconcile_indexes_a_new_source_once_and_then_settles() {
    let repo = Repo::new();
    repo.model("extensions/models/a.ts", "@fx/r/a", "d");
    repo.age_all();
    repo.search_stats();

    repo.model("extensions/models/b.ts", "@fx/r/b", "d");
    repo.age_all();
    let (_, doc) = repo.doctor(&[]);
    assert_eq!(
        transitions(&repo, &doc),
        [(
            "extensions/models/b.ts".to_owned(),
            Value::Null,
            json!("Indexed"),
            "new source discovered on disk".to_owned()
        )]
    );
    let (second, doc) = repo.doctor(&[]);
    assert_eq!(doc["recentTransitions"], json!([]));
    assert_eq!(
        Stats::of(&second).locks,
        0,
        "a settled reconcile writes nothing"
    );
    assert_eq!(doc["overallStatus"], "pass");
}

#[test]
fn broken_sources_settle_after_at_most_one_extra_run() {
    let repo = Repo::new();
    repo.model("extensions/models/a.ts", "@fx/r/a", "d");
    repo.model("extensions/models/deleted_bundle.ts", "@fx/r/del", "d");
    repo.age_all();
    repo.search_stats();

    repo.write(
        "extensions/models/broken_import.ts",
        &format!(
            "import {{ X }} from \"./nope.ts\";\nconst x = X;\n{}",
            model_source("@fx/r/broken", "d")
        ),
    );
    repo.write(
        "extensions/models/rejected.ts",
        &format!(
            "throw new Error(\"no\");\n{}",
            model_source("@fx/r/rej", "d")
        ),
    );
    std::fs::remove_file(repo.path(&local_bundle("deleted_bundle"))).unwrap();
    repo.age_all();

    let (first, doc) = repo.doctor(&[]);
    assert_eq!(first.code, 7, "failed sources make the status fail");
    assert_eq!(doc["overallStatus"], "fail");
    let first_transitions = transitions(&repo, &doc);
    assert!(
        first_transitions
            .iter()
            .any(|t| t.0 == "extensions/models/broken_import.ts" && t.2 == "BundleBuildFailed"),
        "{first_transitions:?}"
    );
    assert!(
        first_transitions
            .iter()
            .any(|t| t.0 == "extensions/models/rejected.ts" && t.2 == "ValidationFailed"),
        "{first_transitions:?}"
    );
    assert!(repo.path(&local_bundle("deleted_bundle")).is_file());

    repo.doctor(&[]);
    let (third, doc) = repo.doctor(&[]);
    assert_eq!(doc["recentTransitions"], json!([]), "third run");
    assert_eq!(Stats::of(&third).locks, 0, "third run writes nothing");
}

/// A pulled extension `@s/n` with one model source, pinned in the lockfile.
fn write_pulled(repo: &Repo, description: &str) {
    repo.model(
        ".fen/pulled-extensions/@s/n/models/x.ts",
        "@s/n/x",
        description,
    );
    write_lockfile(repo, true);
}

fn write_lockfile(repo: &Repo, with_entry: bool) {
    let extensions = if with_entry {
        json!({"@s/n": {"version": "2026.01.01.0", "files": ["models/x.ts"]}})
    } else {
        json!({})
    };
    repo.write(
        "extensions/upstream_extensions.json",
        &json!({"formatVersion": 1, "extensions": extensions}).to_string(),
    );
}

const PULLED: &str = ".fen/pulled-extensions/@s/n/models/x.ts";

#[test]
fn the_pulled_matrix() {
    let repo = Repo::new();
    write_pulled(&repo, "pulled");

    // File present, lockfile entry, no row → Indexed.
    let (_, doc) = repo.doctor(&[]);
    assert_eq!(
        transitions(&repo, &doc),
        [(
            PULLED.to_owned(),
            Value::Null,
            json!("Indexed"),
            "new source discovered on disk".to_owned()
        )]
    );
    let details = repo.rows_by_path(&doc["sourceDetails"]);
    assert_eq!(details[PULLED]["extension"], "@s/n@2026.01.01.0");
    assert_eq!(repo.search_types(), ["@s/n/x"]);

    // File removed, entry present → EntryPointUnreadable.
    repo.remove(PULLED);
    let (out, doc) = repo.doctor(&[]);
    assert_eq!(out.code, 7);
    let moved = transitions(&repo, &doc);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (&moved[0].1, &moved[0].2, moved[0].3.as_str()),
        (
            &json!("Indexed"),
            &json!("EntryPointUnreadable"),
            "pulled source missing from disk (lockfile entry present)"
        )
    );
    assert_eq!(
        states(&repo, &doc),
        [(PULLED.to_owned(), "EntryPointUnreadable".to_owned())]
    );

    // Entry removed → the row is gone.
    write_lockfile(&repo, false);
    let (out, doc) = repo.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let gone = transitions(&repo, &doc);
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].0, PULLED);
    assert_eq!(gone[0].3, "orphan: no lockfile entry");
    assert_eq!(doc["sourceDetails"], json!([]));
    assert_eq!(repo.rows().len(), 0);
}

/// Ten indexed local types `t0`..`t9`.
fn ten_types() -> Repo {
    let repo = Repo::new();
    for i in 0..10 {
        repo.model(
            &format!("extensions/models/t{i}.ts"),
            &format!("@fx/g/t{i}"),
            "d",
        );
    }
    repo.age_all();
    let cold = repo.search_stats();
    assert_eq!(cold.built, 10);
    repo
}

#[test]
fn the_guardrail_stops_a_mass_retirement_until_forced() {
    let repo = ten_types();
    for i in 0..6 {
        repo.remove(&format!("extensions/models/t{i}.ts"));
    }
    let (out, doc) = repo.doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(doc["guardrail"]["changed"], 6, "{doc}");
    assert_eq!(doc["guardrail"]["total"], 10, "{doc}");
    assert_eq!(doc["overallStatus"], "warn");
    assert_eq!(transitions(&repo, &doc).len(), 6, "shown for review");
    let unchanged = states(&repo, &doc);
    assert_eq!(unchanged.len(), 10);
    assert!(
        unchanged.iter().all(|(_, s)| s == "Indexed"),
        "{unchanged:?}"
    );

    let (_, doc) = repo.doctor(&["--force-reconcile"]);
    assert!(doc["guardrail"].is_null(), "{doc}");
    let applied = transitions(&repo, &doc);
    assert_eq!(applied.len(), 6, "{applied:?}");
    assert!(applied.iter().all(|t| t.1 == "Indexed"
        && t.2 == "OrphanedBundleOnly"
        && t.3 == "source file deleted from disk"));
    let after = states(&repo, &doc);
    let retired = after
        .iter()
        .filter(|(_, s)| s == "OrphanedBundleOnly")
        .count();
    assert_eq!(retired, 6, "{after:?}");
}

#[test]
fn the_guardrail_lets_half_through() {
    let repo = ten_types();
    for i in 0..5 {
        repo.remove(&format!("extensions/models/t{i}.ts"));
    }
    let (_, doc) = repo.doctor(&[]);
    assert!(doc["guardrail"].is_null(), "{doc}");
    assert_eq!(transitions(&repo, &doc).len(), 5);
}

/// Ten types with six deleted and retired by the warm pass, plus an unreferenced bundle.
fn retired_rows_and_an_orphan_bundle() -> Repo {
    let repo = ten_types();
    for i in 0..6 {
        repo.remove(&format!("extensions/models/t{i}.ts"));
    }
    // The warm pass applies what reconcile's guardrail would hold back.
    assert_eq!(repo.search_types().len(), 4);
    repo.write(".fen/bundles/local/models/stray.ts.bundle.json", "{}");
    repo
}

#[test]
fn repair_without_apply_only_plans() {
    let repo = retired_rows_and_an_orphan_bundle();
    let dump = repo.sqlite(".dump");
    let (_, doc) = repo.doctor(&["--repair"]);
    let aggregate = &doc["aggregates"][0];
    let distribution = aggregate["stateDistribution"].as_object().unwrap();
    assert_eq!(distribution.len(), 7, "{aggregate}");
    assert_eq!(distribution["OrphanedBundleOnly"], 6);
    assert_eq!(distribution["Indexed"], 4);
    assert_eq!(doc["bundleOrphans"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["overallStatus"], "warn");

    let repair = &doc["repair"];
    assert_eq!(repair["mode"], "dry_run");
    assert_eq!(repair["prunedRowCount"], 0);
    assert_eq!(repair["evictedFileCount"], 0);
    let operations = repair["operations"].as_array().unwrap();
    let prunes = operations
        .iter()
        .filter(|o| o["kind"] == "prune_row")
        .count();
    let evictions: Vec<&str> = operations
        .iter()
        .filter(|o| o["kind"] == "evict_bundle")
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(prunes, 6, "{repair}");
    assert_eq!(evictions.len(), 7, "{repair}");
    for path in &evictions {
        assert!(std::path::Path::new(path).is_file(), "{path} still exists");
    }
    assert_eq!(
        repo.sqlite(".dump"),
        dump,
        "the catalog content is unchanged"
    );
}

#[test]
fn repair_apply_prunes_and_evicts_and_a_second_apply_finds_nothing() {
    let repo = retired_rows_and_an_orphan_bundle();
    let (_, doc) = repo.doctor(&["--repair", "--apply"]);
    let repair = &doc["repair"];
    assert_eq!(repair["mode"], "applied");
    assert_eq!(repair["prunedRowCount"], 6, "{repair}");
    assert_eq!(repair["evictedFileCount"], 7, "{repair}");
    let bundles: Vec<String> = repo.bundles().into_keys().collect();
    let expected: Vec<String> = (6..10).map(|i| local_bundle(&format!("t{i}"))).collect();
    assert_eq!(bundles, expected);
    assert_eq!(repo.rows().len(), 4);
    assert_eq!(repo.search_types().len(), 4, "indexed rows are untouched");

    let (_, doc) = repo.doctor(&["--repair", "--apply"]);
    assert_eq!(doc["repair"]["operations"], json!([]));
    assert_eq!(doc["repair"]["prunedRowCount"], 0);
    assert_eq!(doc["repair"]["evictedFileCount"], 0);
    assert_eq!(doc["recentTransitions"], json!([]));
    assert_eq!(doc["overallStatus"], "pass");
}

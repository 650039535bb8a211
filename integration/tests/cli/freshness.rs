//! The warm path (spec 10 §6.2, §8 scenarios 31, 33, 34, 44, 45): the stat fast path,
//! the verdict table with equal fingerprints, no fallback to an older bundle, no lock on
//! an unchanged tree, and the cold start a new mount causes. File times are set
//! explicitly; nothing sleeps.

use std::time::Duration;

use crate::fixture::{local_bundle, model_source, set_mtime, set_mtime_ago, Repo, Stats};

/// A helper imported by three entries, plus one entry without imports; all aged.
fn helper_repo() -> Repo {
    let repo = Repo::new();
    repo.write(
        "extensions/models/_lib/helper.ts",
        "export const D: string = \"d\";\n",
    );
    for i in 0..3 {
        repo.write(
            &format!("extensions/models/t{i}.ts"),
            &format!(
                "import {{ D }} from \"./_lib/helper.ts\";\nexport const model = {{ type: \"@fx/s/t{i}\", version: \"2026.01.01.0\", description: D, methods: {{ go: {{ description: \"g\", arguments: {{ type: \"object\" }}, run() {{ return 1; }} }} }} }};\n"
            ),
        );
    }
    repo.model("extensions/models/solo.ts", "@fx/s/solo", "s");
    repo.age_all();
    let cold = repo.search_stats();
    assert_eq!((cold.built, cold.evaluated), (4, 4), "{cold:?}");
    // Each of the five files is hashed once: the cold commit re-checks them with
    // the (non-racy) stat records prepare took instead of reading them again.
    assert_eq!(cold.hashed, 5, "{cold:?}");
    repo
}

#[cfg(unix)]
#[test]
fn the_stat_fast_path_reads_only_what_changed() {
    let repo = helper_repo();
    let warm = repo.search_stats();
    assert_eq!((warm.hashed, warm.locks, warm.built), (0, 0, 0), "{warm:?}");

    // Same content, another mtime: that file alone is hashed (once while preparing,
    // once more under the lock), nothing is rebuilt, and only stat records are written.
    let helper = repo.path("extensions/models/_lib/helper.ts");
    set_mtime_ago(&helper, Duration::from_secs(7200));
    let bundles = repo.bundles();
    let touched = repo.search_stats();
    assert!(
        (1..=2).contains(&touched.hashed),
        "only the touched helper is hashed: {touched:?}"
    );
    assert_eq!((touched.built, touched.evaluated, touched.locks), (0, 0, 1));
    assert_eq!(repo.bundles(), bundles, "no bundle was rewritten");

    let settled = repo.search_stats();
    assert_eq!(
        (settled.hashed, settled.locks, settled.built),
        (0, 0, 0),
        "{settled:?}"
    );

    // An edit that keeps the size and restores the mtime still changes the ctime.
    let mtime = std::fs::metadata(&helper).unwrap().modified().unwrap();
    std::fs::write(&helper, "export const D: string = \"e\";\n").unwrap();
    set_mtime(&helper, mtime);
    let edited = repo.search_stats();
    assert_eq!((edited.built, edited.evaluated), (3, 3), "{edited:?}");
    let doc = repo
        .ok(&["--json", "model", "type", "describe", "@fx/s/t1"])
        .json();
    assert_eq!(doc["description"], "e");
}

#[test]
fn warm_verdicts_with_equal_fingerprints() {
    let repo = Repo::new();
    repo.model("extensions/models/ok.ts", "@fx/v/ok", "d");
    repo.write(
        "extensions/models/build_failed.ts",
        &format!(
            "import {{ U }} from \"./missing.ts\";\nconst u = U;\n{}",
            model_source("@fx/v/bbf", "d")
        ),
    );
    repo.write(
        "extensions/models/rejected.ts",
        &format!(
            "throw new Error(\"no\");\n{}",
            model_source("@fx/v/vf", "d")
        ),
    );
    repo.age_all();
    let rows = repo.rows();
    assert_eq!(rows["extensions/models/ok.ts"]["state"], "Indexed");
    assert_eq!(
        rows["extensions/models/build_failed.ts"]["state"],
        "BundleBuildFailed"
    );
    assert_eq!(
        rows["extensions/models/rejected.ts"]["state"],
        "ValidationFailed"
    );

    // BundleBuildFailed is retried on every pass; ValidationFailed is not.
    let again = repo.search_stats();
    assert_eq!((again.built, again.evaluated), (1, 0), "{again:?}");

    // Indexed with its bundle deleted: stale, rebuilt and evaluated.
    std::fs::remove_file(repo.path(&local_bundle("ok"))).unwrap();
    let rebuilt = repo.search_stats();
    assert_eq!((rebuilt.built, rebuilt.evaluated), (2, 1), "{rebuilt:?}");
    assert_eq!(rebuilt.evaluated_paths, vec![local_bundle("ok")]);
    assert!(repo.path(&local_bundle("ok")).is_file());

    // ValidationFailed with its bundle deleted: still fresh.
    let rejected_bundle = repo.path(&local_bundle("rejected"));
    assert!(
        rejected_bundle.is_file(),
        "ValidationFailed keeps its bundle"
    );
    std::fs::remove_file(&rejected_bundle).unwrap();
    let fresh = repo.search_stats();
    assert_eq!((fresh.built, fresh.evaluated), (1, 0), "{fresh:?}");
    assert_eq!(
        repo.row("extensions/models/rejected.ts")["state"],
        "ValidationFailed"
    );
}

#[test]
fn a_failed_rebuild_evicts_the_previous_bundle_and_recovers() {
    let repo = Repo::new();
    let rel = "extensions/models/x.ts";
    repo.model(rel, "@fx/evict/x", "first");
    repo.model("extensions/models/other.ts", "@fx/evict/other", "d");
    repo.age_all();
    assert_eq!(repo.row(rel)["state"], "Indexed");
    let bundle = repo.path(&local_bundle("x"));
    assert!(bundle.is_file());

    repo.write(rel, "export const model = {,};\n");
    let row = repo.row(rel);
    assert_eq!(row["state"], "BundleBuildFailed");
    assert!(!bundle.exists(), "the older bundle is never served");
    assert_eq!(repo.search_types(), ["@fx/evict/other"]);
    let describe = repo.fen(&["--json", "model", "type", "describe", "@fx/evict/x"]);
    assert_ne!(describe.code, 0, "{}", describe.stdout);

    // Retried without an edit.
    let retried = repo.search_stats();
    assert_eq!((retried.built, retried.evaluated), (1, 0), "{retried:?}");

    repo.model(rel, "@fx/evict/x", "second");
    assert_eq!(repo.row(rel)["state"], "Indexed");
    assert!(bundle.is_file());
    repo.age_all();
    repo.search_stats();
    let reused = repo.search_stats();
    assert_eq!(
        (reused.built, reused.evaluated, reused.locks),
        (0, 0, 0),
        "{reused:?}"
    );
    let doc = repo
        .ok(&["--json", "model", "type", "describe", "@fx/evict/x"])
        .json();
    assert_eq!(doc["description"], "second");
}

#[test]
fn an_unchanged_tree_takes_no_lock_even_when_taking_it_would_abort() {
    let repo = helper_repo();
    let abort = [("FEN_TEST_FAULT", "lock:acquired=abort")];
    let out = repo.fen_env(&abort, &["--stats", "model", "type", "search", "x"]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(!out.stderr.contains("fen-test-fault"), "{}", out.stderr);
    assert_eq!(Stats::of(&out).locks, 0);

    // The fault is live: a pass with something to commit dies at the lock.
    repo.model("extensions/models/new.ts", "@fx/s/new", "n");
    let dies = repo.fen_env(&abort, &["model", "type", "search", "x"]);
    assert_ne!(dies.code, 0);
    assert!(
        dies.stderr.contains("fen-test-fault: lock:acquired abort"),
        "{}",
        dies.stderr
    );
}

#[test]
fn a_new_empty_mount_cold_starts_once() {
    let repo = helper_repo();
    let mount = crate::util::TempDir::new();
    std::fs::create_dir_all(mount.path().join("extensions")).unwrap();
    let added = repo.ok(&[
        "--json",
        "extension",
        "source",
        "add",
        mount.path().to_str().unwrap(),
    ]);
    assert_eq!(added.json()["change"], "added");

    let cold = repo.search_stats();
    assert_eq!(
        cold.locks, 1,
        "the cold start commits mark_populated: {cold:?}"
    );
    assert_eq!((cold.built, cold.evaluated), (0, 0), "{cold:?}");
    let warm = repo.search_stats();
    assert_eq!((warm.locks, warm.built, warm.hashed), (0, 0, 0), "{warm:?}");
    assert_eq!(
        repo.search_types(),
        ["@fx/s/solo", "@fx/s/t0", "@fx/s/t1", "@fx/s/t2"]
    );
}

#[test]
fn rescan_rebuilds_every_bundle_without_transitions() {
    let repo = helper_repo();
    let before = repo.bundles();
    let (out, doc) = repo.doctor(&["--rescan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats = Stats::of(&out);
    assert_eq!(stats.built, 4, "{stats:?}");
    assert_eq!(doc["recentTransitions"], serde_json::json!([]));
    assert_eq!(doc["overallStatus"], "pass");
    let details = doc["sourceDetails"].as_array().unwrap();
    assert_eq!(details.len(), 4);
    assert!(details.iter().all(|d| d["state"] == "Indexed"), "{doc}");
    // Deterministic bundling: the rebuilt bundles have the same bytes.
    let after = repo.bundles();
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (path, (bytes, _)) in &before {
        assert!(&after[path].0 == bytes, "{path}");
    }
}

// After an edit of one source, the commit re-checks the prepared source under the lock
// and replays the rest of the tree: exactly the edited row changes in the catalog, and
// the edited file is hashed once while preparing and once more under the lock.
#[test]
fn an_edit_rewrites_only_the_edited_row() {
    let repo = helper_repo();
    let rows = "select source_path, fingerprint, bundle_path, file_stats, description, \
                descriptor, state from bundle_types order by source_path";
    let before: Vec<String> = repo.sqlite(rows).lines().map(str::to_owned).collect();
    assert_eq!(before.len(), 4, "{before:?}");
    repo.model("extensions/models/solo.ts", "@fx/s/solo", "edited");
    let edited = repo.search_stats();
    assert_eq!(
        (edited.built, edited.evaluated, edited.hashed, edited.locks),
        (1, 1, 2, 1),
        "{edited:?}"
    );
    let after: Vec<String> = repo.sqlite(rows).lines().map(str::to_owned).collect();
    let changed: Vec<(&String, &String)> =
        before.iter().zip(&after).filter(|(b, a)| b != a).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].1.contains("extensions/models/solo.ts"),
        "{changed:?}"
    );
    assert!(changed[0].1.contains("edited"), "{changed:?}");
    let doc = repo
        .ok(&["--json", "model", "type", "describe", "@fx/s/solo"])
        .json();
    assert_eq!(doc["description"], "edited");
}

// The commit does not observe again what prepare found fresh: a touched helper (same
// content, new mtime) is hashed once while preparing; under the lock only the edited
// source is fingerprinted again. (A full re-walk would hash the helper twice: 4.)
#[cfg(unix)]
#[test]
fn the_commit_re_checks_only_the_prepared_sources() {
    let repo = helper_repo();
    set_mtime_ago(
        &repo.path("extensions/models/_lib/helper.ts"),
        Duration::from_secs(7200),
    );
    repo.model("extensions/models/solo.ts", "@fx/s/solo", "edited");
    let run = repo.search_stats();
    assert_eq!(
        (run.built, run.evaluated, run.hashed, run.locks),
        (1, 1, 3, 1),
        "{run:?}"
    );
    // The helper's new records were stored; only the just-written (racy) source may
    // be hashed once more.
    let settled = repo.search_stats();
    assert_eq!((settled.built, settled.evaluated), (0, 0), "{settled:?}");
    assert!(settled.hashed <= 1, "{settled:?}");
}

//! The catalog as a disposable cache (spec 10 §4.7, §6.1, §8 scenarios 23, 28, 42; spec
//! 30 §9 scenario 6): deleted or corrupt catalogs rebuild from disk reusing bundles,
//! local sources override pulled ones, and concurrent processes agree.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::json;

use crate::fixture::{files_under, ok, warnings, Repo, Stats, GENERATED};
use crate::util::{fen, Run};

#[test]
fn a_deleted_catalog_rebuilds_from_the_bundles_on_disk() {
    let repo = Repo::generated();
    repo.search_stats();
    let bundles = repo.bundles();

    repo.delete_catalog();
    let rebuilt = repo.search_stats();
    assert_eq!(
        (rebuilt.built, rebuilt.evaluated),
        (0, GENERATED.len() as u64),
        "{rebuilt:?}"
    );
    assert_eq!(repo.bundles(), bundles, "bundles are reused, not rewritten");
    let warm = repo.search_stats();
    assert_eq!((warm.evaluated, warm.locks), (0, 0), "{warm:?}");

    repo.delete_catalog();
    std::fs::remove_dir_all(repo.path(".fen/bundles")).unwrap();
    let from_scratch = repo.search_stats();
    assert_eq!(from_scratch.built, GENERATED.len() as u64);
    assert_eq!(repo.bundles().len(), GENERATED.len());
    assert_eq!(repo.search_types().len(), GENERATED.len());
}

#[test]
fn a_corrupt_catalog_is_moved_aside_and_rebuilt() {
    let repo = Repo::generated();
    repo.search_stats();
    repo.delete_catalog();
    // Deterministic noise (an LCG), so no run can produce a SQLite header.
    let mut state: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let catalog = repo.path(".fen/_extension_catalog.db");
    std::fs::write(&catalog, &noise).unwrap();

    let out = repo.ok(&["--stats", "model", "type", "search"]);
    assert_eq!(
        out.stdout.lines().count(),
        GENERATED.len(),
        "{}",
        out.stdout
    );
    let lines = warnings(&out);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let moved_to = lines[0]
        .split_whitespace()
        .find(|w| w.contains("_extension_catalog.db."))
        .unwrap_or_else(|| panic!("the warning names where the file went: {}", lines[0]));
    let moved_to = std::path::Path::new(moved_to.trim_end_matches([',', '.', ';']));
    assert_eq!(
        std::fs::read(moved_to).unwrap(),
        noise,
        "the damaged file is kept"
    );
    assert_eq!(Stats::of(&out).built, 0, "bundles are reused");

    let next = repo.ok(&["--stats", "model", "type", "search"]);
    assert!(warnings(&next).is_empty(), "{}", next.stderr);
    assert_eq!(Stats::of(&next).locks, 0);
}

const PULLED: &str = ".fen/pulled-extensions/@s/n/models/x.ts";

#[test]
fn a_local_source_overrides_a_pulled_one_until_it_is_removed() {
    let repo = Repo::new();
    repo.model(PULLED, "@s/n/x", "pulled");
    repo.write(
        "extensions/upstream_extensions.json",
        &json!({"formatVersion": 1, "extensions": {
            "@s/n": {"version": "2026.01.01.0", "files": ["models/x.ts"]}}})
        .to_string(),
    );
    repo.model("extensions/models/x.ts", "@s/n/x", "local");

    let doc = repo.ok(&["--json", "model", "type", "search"]).json();
    assert_eq!(doc["types"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["types"][0]["description"], "local");
    let rows = repo.rows();
    assert_eq!(rows[PULLED]["state"], "Indexed");
    assert_eq!(
        repo.rel(rows[PULLED]["supersededBy"].as_str().unwrap()),
        "extensions/models/x.ts"
    );
    assert!(rows["extensions/models/x.ts"]["supersededBy"].is_null());

    repo.remove("extensions/models/x.ts");
    let doc = repo.ok(&["--json", "model", "type", "search"]).json();
    assert_eq!(doc["types"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["types"][0]["description"], "pulled");
    assert_eq!(
        repo.rel(doc["types"][0]["sourcePath"].as_str().unwrap()),
        PULLED
    );
    assert!(repo.rows()[PULLED]["supersededBy"].is_null());
}

/// Spawns `fen --stats model type search` in `repo` with extra environment.
fn spawn_search(repo: &Repo, env: &[(&str, &str)]) -> Child {
    fen(repo.root())
        .envs(env.iter().copied())
        .args(["--stats", "model", "type", "search"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_processes_over_the_same_edit_agree_on_one_row() {
    let repo = Repo::generated();
    repo.search_stats();
    let rel = "extensions/models/s3_bucket.ts";
    repo.write(
        rel,
        &repo
            .read(rel)
            .replace("describe(\"s3 bucket\")", "\"edited bucket\""),
    );

    // A prepares, takes the lock and holds it for a while; B starts once A holds it,
    // so B prepares its own bundle and then waits for the lock.
    let mut first = spawn_search(&repo, &[("FEN_TEST_FAULT", "lock:acquired=sleep:1500")]);
    let mut first_stderr = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let n = first_stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "the first process exited before taking the lock");
        if line.starts_with("fen-test-fault: lock:acquired") {
            break;
        }
    }
    let second = spawn_search(&repo, &[]);
    let second: Run = second.wait_with_output().unwrap().into();
    let first_status = first.wait().unwrap();
    assert_eq!(first_status.code(), Some(0));
    let second = ok(second);
    assert_eq!(second.stdout.lines().count(), GENERATED.len());

    let rows = repo.rows();
    assert_eq!(rows.len(), GENERATED.len());
    assert_eq!(rows[rel]["state"], "Indexed");
    let doc = repo
        .ok(&[
            "--json",
            "model",
            "type",
            "describe",
            "@fixture/aws/s3/bucket",
        ])
        .json();
    assert_eq!(doc["description"], "edited bucket");
    assert!(
        files_under(&repo.path(".fen/scratch")).is_empty(),
        "scratch is empty"
    );
    let settled = repo.search_stats();
    assert_eq!((settled.built, settled.evaluated), (0, 0), "{settled:?}");
}

#[test]
fn eight_processes_create_a_missing_catalog_without_busy_errors() {
    let repo = Repo::generated();
    let children: Vec<Child> = (0..8).map(|_| spawn_search(&repo, &[])).collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().into())
        .collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stdout.lines().count(),
            GENERATED.len(),
            "{}",
            run.stdout
        );
        let stderr = run.stderr.to_lowercase();
        assert!(
            !stderr.contains("busy") && !stderr.contains("locked"),
            "{}",
            run.stderr
        );
    }
    let duplicates =
        repo.sqlite("select version from _sqlx_migrations group by version having count(*) > 1");
    assert_eq!(duplicates.trim(), "", "each migration applied once");
    let built: u64 = runs.iter().map(|r| Stats::of(r).built).sum();
    assert!(built >= GENERATED.len() as u64, "{built}");
    assert_eq!(repo.rows().len(), GENERATED.len());
}

/// A command that committed folds the catalog's WAL into the main file before it exits
/// (fen exits without closing its connection, so SQLite's own checkpoint-on-close never
/// runs): the rows are in `_extension_catalog.db`, not only in its `-wal`.
#[test]
fn a_committing_command_checkpoints_the_catalog() {
    let repo = Repo::generated();
    let cold = repo.search_stats();
    assert_eq!(cold.locks, 1, "{cold:?}");
    let db = std::fs::metadata(repo.path(".fen/_extension_catalog.db"))
        .unwrap()
        .len();
    let wal = std::fs::metadata(repo.path(".fen/_extension_catalog.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    // 12 types with descriptors need far more than the one header page; the WAL may
    // keep its size (SQLite reuses it from the start), but the main file must have the
    // data.
    assert!(db > 16 * 1024, "main file {db} B, WAL {wal} B");
    let warm = repo.search_stats();
    assert_eq!((warm.built, warm.locks), (0, 0), "{warm:?}");
}

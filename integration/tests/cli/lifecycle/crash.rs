//! The crash matrix of spec 20 §13.4: an install of V2 over V1 (and a removal) is
//! aborted at each fault point — the process really dies (`std::process::abort`, as
//! SIGKILL) — and the next command's recovery converges: lockfile, owned roots and
//! catalog agree, no `txn-*` is left, and the next command did not wait for a lock.

use std::io::BufReader;

use super::{read_until, Ext, World, V1, V2};

fn world() -> World {
    let a1 = Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/v1-only.txt", "v1");
    let a2 = Ext::model("@t/a", V2, "noop", "@t/a-model").with_model("extra", "@t/a-extra");
    let b1 = Ext::model("@t/b", V1, "noop", "@t/b-model");
    let world = World::new(&[a1, a2, b1]);
    world.json(0, &["extension", "pull", &format!("@t/a@{V1}")]);
    world.json(0, &["extension", "pull", "@t/b"]);
    world
}

/// Lockfile, disk and catalog agree on `@t/a` at `version`, with nothing pending.
fn converged(world: &World, version: &str) {
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    assert_eq!(status["pendingTransactions"], serde_json::json!([]));
    assert_eq!(world.lockfile()["extensions"]["@t/a"]["version"], version);
    assert_eq!(
        world.lockfile()["extensions"]["@t/a"]["filesDigest"],
        world.disk_digest("@t/a").as_str()
    );
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

fn crash_install_at(point: &str) -> World {
    let world = world();
    let run = world.fen_env(
        &[("FEN_TEST_FAULT", &format!("{point}=abort"))],
        &[
            "--json",
            "extension",
            "pull",
            &format!("@t/a@{V2}"),
            "--force",
        ],
    );
    assert_ne!(run.code, 0, "the process must die at {point}");
    assert!(
        run.stderr
            .contains(&format!("fen-test-fault: {point} abort")),
        "{}",
        run.stderr
    );
    world
}

#[test]
fn crash_after_staging_leaves_only_a_stage_dir_to_collect() {
    let world = crash_install_at("install:after-stage");
    world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    converged(&world, V1);
}

#[test]
fn crash_right_after_the_lock_changes_nothing() {
    let world = crash_install_at("install:after-lock");
    world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    converged(&world, V1);
}

#[test]
fn crash_after_the_journal_rolls_back_a_no_op() {
    let world = crash_install_at("install:after-journal");
    assert_eq!(
        world.status()["pendingTransactions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_back");
    converged(&world, V1);
}

#[test]
fn crash_with_the_prior_moved_aside_restores_v1() {
    // The replacement window: V1's roots are in the txn, nothing is live.
    let world = crash_install_at("install:after-move-aside");
    assert!(!world.path(".fen/pulled-extensions/@t/a").exists());
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_back");
    converged(&world, V1);
    assert!(world
        .path(".fen/pulled-extensions/@t/a/files/v1-only.txt")
        .exists());
}

#[test]
fn a_writer_killed_holding_the_lock_leaves_nothing_for_good() {
    // Issue 8: a warm-pass writer killed inside its commit left its build-* directory
    // in .fen/scratch for good, without an owner record. Now the directory carries
    // owner.json and the next locked section collects it.
    let world = world();
    std::fs::write(
        world.path("extensions/models/local.ts"),
        crate::fixture::model_source("@t/local", "a local type"),
    )
    .unwrap();
    let run = world.fen_env(
        &[("FEN_TEST_FAULT", "lock:acquired=abort")],
        &["model", "type", "search", "local"],
    );
    assert_ne!(run.code, 0);
    let left = world.scratch();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("build-"));
    assert!(world
        .path(".fen/scratch")
        .join(&left[0])
        .join("owner.json")
        .exists());
    // A lifecycle command kills its lock at lock:acquired too: no txn, nothing changed.
    let run = world.fen_env(
        &[("FEN_TEST_FAULT", "lock:acquired=abort")],
        &["extension", "rm", "@t/b", "--yes"],
    );
    assert_ne!(run.code, 0);
    assert!(world.lockfile()["extensions"]["@t/b"].is_object());
    // The next locked section recovers: the dead owner's build dir is gone.
    let run = world.fen(&["model", "type", "search", "local"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("@t/local"), "{}", run.stdout);
    converged(&world, V1);
}

#[test]
fn crash_after_the_swap_rolls_back_to_v1() {
    // Scenario 37.
    let world = crash_install_at("install:after-swap");
    assert_eq!(
        world.status()["pendingTransactions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["name"], "@t/a");
    assert_eq!(doc["recovered"][0]["action"], "rolled_back");
    assert!(doc["timings"]["lockWaitMs"].as_u64().unwrap() < 1000);
    converged(&world, V1);
    assert!(world
        .path(".fen/pulled-extensions/@t/a/files/v1-only.txt")
        .exists());
}

#[test]
fn crash_after_the_lockfile_write_rolls_forward_to_v2() {
    let world = crash_install_at("install:after-lockfile-write");
    let doc = world.json(0, &["extension", "status"]);
    assert_eq!(doc["pendingTransactions"].as_array().unwrap().len(), 1);
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_forward");
    converged(&world, V2);
}

#[test]
fn crash_before_the_catalog_commit_rolls_forward_to_v2() {
    let world = crash_install_at("install:before-catalog-commit");
    let doc = world.json(0, &["extension", "update"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_forward");
    converged(&world, V2);
}

#[test]
fn crash_after_the_catalog_commit_rolls_forward_idempotently() {
    let world = crash_install_at("install:after-catalog-commit");
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_forward");
    converged(&world, V2);
}

#[test]
fn crashed_removals_are_completed() {
    for point in ["rm:after-journal", "rm:after-catalog", "rm:after-lockfile"] {
        let world = world();
        let run = world.fen_env(
            &[("FEN_TEST_FAULT", &format!("{point}=abort"))],
            &["--json", "extension", "rm", "@t/a", "--yes"],
        );
        assert_ne!(run.code, 0, "{point}");
        let doc = world.json(0, &["extension", "update"]);
        assert_eq!(doc["recovered"][0]["op"], "rm", "{point}: {doc}");
        let status = world.status();
        assert_eq!(status["drift"], serde_json::json!([]), "{point}: {status}");
        assert!(world.lockfile()["extensions"]["@t/a"].is_null(), "{point}");
        assert!(
            !world.path(".fen/pulled-extensions/@t/a").exists(),
            "{point}"
        );
        assert!(world.scratch().is_empty(), "{point}");
    }
}

#[cfg(unix)]
#[test]
fn a_signal_outside_the_lock_stops_the_pull_and_changes_nothing() {
    // Spec 20 §8.5: interrupted while staging → exit 130, staging deleted, nothing
    // installed.
    let world = world();
    let before = world.lockfile_bytes();
    let mut child = world.spawn(
        &[("FEN_TEST_FAULT", "install:after-stage=sleep:1500")],
        &[
            "--json",
            "extension",
            "pull",
            &format!("@t/a@{V2}"),
            "--force",
        ],
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    read_until(&mut stderr, "pull", &|l| {
        l.contains("fen-test-fault: install:after-stage")
    });
    interrupt(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "interrupted");
    assert_eq!(world.lockfile_bytes(), before);
    converged(&world, V1);
}

/// Sends SIGINT.
#[cfg(unix)]
fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_same_bytes_reinstall_cut_between_its_renames_is_rolled_back() {
    // A forced reinstall of the same archive leaves the lockfile equal to the journal's
    // new entry before the commit point. Here the process dies after the swap, and the
    // bundle root is removed by hand to stand for a kill between the two renames of the
    // swap: recovery must not roll forward to rows whose bundles are missing.
    let world = world();
    let run = world.fen_env(
        &[("FEN_TEST_FAULT", "install:after-swap=abort")],
        &[
            "--json",
            "extension",
            "pull",
            &format!("@t/a@{V1}"),
            "--force",
        ],
    );
    assert_ne!(run.code, 0);
    std::fs::remove_dir_all(world.path(".fen/bundles/pulled/@t/a")).unwrap();
    let doc = world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    assert_eq!(doc["recovered"][0]["action"], "rolled_back", "{doc}");
    converged(&world, V1);
    assert!(world
        .path(".fen/bundles/pulled/@t/a/models/noop.ts.bundle.json")
        .exists());
}

#[cfg(unix)]
#[test]
fn a_signal_while_waiting_for_the_lock_stops_the_wait_at_once() {
    // Spec 20 §8.5: waiting for the lock is outside any locked section; a signal ends
    // the wait at once (exit 130) while the holder keeps the lock.
    let world = world();
    let mut holder = world.spawn(
        &[("FEN_TEST_FAULT", "install:after-lock=sleep:10000")],
        &["extension", "pull", "@t/b", "--force"],
    );
    let mut holder_err = BufReader::new(holder.stderr.take().unwrap());
    read_until(&mut holder_err, "holder", &|l| {
        l.contains("fen-test-fault: install:after-lock")
    });
    let mut waiter = world.spawn(
        &[],
        &[
            "--json",
            "extension",
            "pull",
            &format!("@t/a@{V2}"),
            "--force",
        ],
    );
    let mut waiter_err = BufReader::new(waiter.stderr.take().unwrap());
    read_until(&mut waiter_err, "waiter", &|l| {
        l.contains("waiting for the lifecycle lock")
    });
    interrupt(&waiter);
    let output = waiter.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "interrupted");
    // The holder was still holding the lock when the waiter gave up.
    assert!(holder.try_wait().unwrap().is_none());
    let _ = holder.kill();
    let _ = holder.wait();
    // The killed holder's staging goes with the next locked section's recovery.
    world.json(0, &["extension", "rm", "@t/b", "--yes"]);
    converged(&world, V1);
}

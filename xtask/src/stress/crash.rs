//! The crash sweep (`cargo xtask stress --crash`): for every fault point of spec 20
//! §15.6 and every op, start the op with `FEN_TEST_FAULT=<point>=abort` (the process
//! really dies there: `std::process::abort`, as SIGKILL would, no destructors), then
//! run one more mutating command (`pull beta@V1 --force`, which takes the lifecycle
//! lock and so recovers first) and demand:
//!
//! - right after the death, the invariants no crash can break (`Level::AfterCrash`);
//! - the next command succeeds without waiting for the dead holder's lock, and its
//!   `recovered` list says what §13.4 says for that point: nothing (before the
//!   journal), `install … rolled_back` (swap done, lockfile not yet, for a version
//!   change; a same-version reinstall finds its entry already written and rolls
//!   forward), `install … rolled_forward` (lockfile written), `rm … rolled_forward`
//!   (any point after the rm journal); a stage directory left by a death in staging
//!   is collected;
//! - after it, the strict invariants without empty directories (so no `txn-*` is
//!   left after the next mutating command), `fen extension status` with no drift and
//!   nothing pending, and alpha at the version the crash point implies (the start
//!   state if the commit point was not reached, the op's end state if it was).
//!
//! A point an op never reaches (an `rm:*` point in a pull) leaves the op to finish
//! normally; its row says so. Each cell has its own fresh repo; the sweep goes on
//! after a failing cell and fails at the end with every failing cell's evidence.

use std::time::Instant;

use serde_json::{json, Value};

use super::fixtures::{ALPHA, BETA, V1, V2};
use super::invariants::{check, check_children, Level};
use super::ops::{classify, one_line, Op, Recovery};
use super::procs::{ChildRun, Exit};
use super::report::secs;
use super::rounds::run_one;
use super::snapshot::Snapshot;
use super::{Failure, Harness};
use fen_infrastructure::faults::POINTS;

/// The OPS menu and the restore path.
const SWEEP_OPS: [Op; 5] = [
    Op::PullAlpha,
    Op::PullBeta,
    Op::RmAlpha,
    Op::Update,
    Op::RestoreRefresh,
];

/// The sweep's table.
#[derive(Clone, Debug)]
pub struct Sweep {
    pub fen: String,
    pub cells: Vec<Cell>,
    pub wall: std::time::Duration,
}

/// One fault point × op.
#[derive(Clone, Debug)]
pub struct Cell {
    pub point: &'static str,
    pub op: Op,
    /// The process printed the fault line and died of SIGABRT there.
    pub fired: bool,
    /// What the death left: `txn`, `stage`, `temp`, or `-`.
    pub left: String,
    /// The next command's `recovered` list (or what it collected).
    pub recovered: String,
    /// Empty when the cell passed.
    pub problems: Vec<String>,
}

/// What the next command must report for a point that fired (§13.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Died before anything visible changed.
    Nothing,
    /// Died in staging: only its `stage-*` directory is left, and recovery deletes it.
    StageCollected,
    /// An install txn whose lockfile was (`rolled_forward`) or was not
    /// (`rolled_back`) written.
    Install(&'static str),
    /// An rm txn: always completed.
    Rm,
}

fn expectation(point: &str, op: Op) -> Expect {
    match point {
        "install:after-stage" => Expect::StageCollected,
        // §13.3 decides on the lockfile: a reinstall of the same version and bytes
        // finds its entry already equal to (newVersion, newChecksum), so recovery
        // cannot tell the write apart from no write and rolls forward (the staged
        // copy has the same bytes); a version change is rolled back.
        "install:after-journal" | "install:after-swap" if changes_version(op) => {
            Expect::Install("rolled_back")
        }
        "install:after-journal" | "install:after-swap" => Expect::Install("rolled_forward"),
        // The replacement window: the prior roots are in the txn and nothing is live,
        // so even a same-bytes reinstall fails the journal's file check and is undone.
        "install:after-move-aside" => Expect::Install("rolled_back"),
        "install:after-lockfile-write"
        | "install:before-catalog-commit"
        | "install:after-catalog-commit" => Expect::Install("rolled_forward"),
        "rm:after-journal" | "rm:after-catalog" | "rm:after-lockfile" => Expect::Rm,
        _ => Expect::Nothing,
    }
}

/// Whether the op installs another version than the one in place.
fn changes_version(op: Op) -> bool {
    let (before, after) = alpha_states(op);
    op != Op::PullBeta && before != after
}

/// alpha's version before the op, and after it completed.
fn alpha_states(op: Op) -> (Option<&'static str>, Option<&'static str>) {
    match op {
        Op::PullAlpha => (Some(V2), Some(V1)),
        Op::RmAlpha => (Some(V1), None),
        Op::Update => (Some(V1), Some(V2)),
        _ => (Some(V1), Some(V1)),
    }
}

/// The extension the op changes.
fn target_name(op: Op) -> &'static str {
    match op {
        Op::PullBeta => BETA,
        _ => ALPHA,
    }
}

/// Runs every cell; the table and the failures of the cells that failed.
pub async fn sweep(h: &Harness) -> (Sweep, Vec<Failure>) {
    let started = Instant::now();
    let mut cells = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    for point in POINTS {
        for op in SWEEP_OPS {
            let index = cells.len();
            let (cell, failure) = run_cell(h, index, point, op).await;
            eprintln!(
                "crash {index:02} {point} x {}: {}",
                op.label(),
                if cell.problems.is_empty() {
                    "ok"
                } else {
                    "FAIL"
                }
            );
            cells.push(cell);
            failures.extend(failure);
        }
    }
    let sweep = Sweep {
        fen: h.fen.label.clone(),
        cells,
        wall: started.elapsed(),
    };
    (sweep, failures)
}

async fn run_cell(
    h: &Harness,
    index: usize,
    point: &'static str,
    op: Op,
) -> (Cell, Option<Failure>) {
    let repo = h
        .work
        .join("crash")
        .join(format!("{index:02}"))
        .join("repo");
    let target = h.target(&repo);
    let mut cell = Cell {
        point,
        op,
        fired: false,
        left: "-".to_owned(),
        recovered: "-".to_owned(),
        problems: Vec::new(),
    };
    let mut runs: Vec<ChildRun> = Vec::new();
    let (start, end) = alpha_states(op);

    // A fresh repo at the op's start state.
    if let Err(e) = h
        .fen
        .run_checked(&h.work, &["init".to_owned(), repo.display().to_string()])
    {
        cell.problems.push(e);
    }
    let first = match start {
        Some(V2) => Op::PullAlphaV2,
        _ => Op::PullAlpha,
    };
    for setup in [first, Op::PullBeta] {
        let run = run_one(h, &target, setup, None).await;
        if run.code() != Some(0) {
            cell.problems
                .push(format!("set-up `{}`: {}", setup.label(), run.exit));
        }
        runs.push(run);
    }
    let snapshot = Snapshot::take(&repo).await;
    cell.problems.extend(
        check(&repo, &snapshot, &h.fixtures, Level::Round)
            .iter()
            .map(|v| format!("before the crash: {v}")),
    );
    if !cell.problems.is_empty() {
        return finish(h, cell, &runs, &snapshot);
    }

    // The op, dying at the point.
    let crashed = run_one(h, &target, op, Some(format!("{point}=abort"))).await;
    cell.fired = crashed
        .stderr
        .contains(&format!("fen-test-fault: {point} abort"));
    if cell.fired {
        if crashed.exit != Exit::Signal(6) {
            cell.problems.push(format!(
                "the fault line was printed but the process did not die there: {}",
                crashed.exit
            ));
        }
    } else if let Err(why) = classify(&crashed, Recovery::Forbidden) {
        cell.problems
            .push(format!("without reaching {point}: {why}"));
    }
    let after_crash = Snapshot::take(&repo).await;
    let mut left: Vec<&str> = Vec::new();
    let scratch = after_crash.scratch_dirs();
    if scratch.iter().any(|d| d.starts_with("txn-")) {
        left.push("txn");
    }
    let staged = scratch.iter().any(|d| d.starts_with("stage-"));
    if staged {
        left.push("stage");
    }
    if !after_crash.lockfile_temps.is_empty() {
        left.push("temp");
    }
    if !left.is_empty() {
        cell.left = left.join("+");
    }
    cell.problems.extend(
        check(&repo, &after_crash, &h.fixtures, Level::AfterCrash)
            .iter()
            .chain(&check_children(std::slice::from_ref(&crashed)))
            .map(|v| format!("right after the crash: {v}")),
    );
    runs.push(crashed);

    // The next mutating command recovers.
    let next = run_one(h, &target, Op::PullBeta, None).await;
    if let Err(why) = classify(&next, Recovery::Allowed) {
        cell.problems.push(format!("the next command: {why}"));
    }
    if next.json()["timings"]["lockWaitMs"].as_u64().unwrap_or(0) >= 1000 {
        cell.problems.push(format!(
            "the next command waited {} ms for the lock of a dead process",
            next.json()["timings"]["lockWaitMs"]
        ));
    }
    let recovered: Vec<&Value> = next.json()["recovered"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let expect = match cell.fired {
        true => expectation(point, op),
        false => Expect::Nothing,
    };
    cell.recovered = describe(&recovered, expect, staged);
    cell.problems.extend(recovery_problems(
        &recovered,
        expect,
        target_name(op),
        staged,
    ));
    runs.push(next);
    let after = Snapshot::take(&repo).await;
    cell.problems.extend(
        check(&repo, &after, &h.fixtures, Level::Final)
            .iter()
            .chain(&check_children(&runs[runs.len() - 1..]))
            .map(|v| format!("after the next command: {v}")),
    );
    let committed = match expect {
        Expect::Nothing | Expect::StageCollected => !cell.fired,
        Expect::Install(action) => action == "rolled_forward",
        Expect::Rm => true,
    };
    let want = if committed { end } else { start };
    let alpha = after
        .lockfile
        .as_ref()
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|doc| {
            doc["extensions"][ALPHA]["version"]
                .as_str()
                .map(str::to_owned)
        });
    if alpha.as_deref() != want {
        cell.problems.push(format!(
            "alpha is at {alpha:?} after recovery, expected {want:?} (commit point {})",
            if committed { "reached" } else { "not reached" }
        ));
    }
    let status = run_one(h, &target, Op::Status, None).await;
    let empty = Value::Array(Vec::new());
    if status.code() != Some(0)
        || status.json()["drift"] != empty
        || status.json()["pendingTransactions"] != empty
    {
        cell.problems.push(format!(
            "status after recovery: {}",
            one_line(status.json())
        ));
    }
    runs.push(status);
    finish(h, cell, &runs, &after)
}

fn finish(
    h: &Harness,
    cell: Cell,
    runs: &[ChildRun],
    snapshot: &Snapshot,
) -> (Cell, Option<Failure>) {
    let failure = (!cell.problems.is_empty()).then(|| {
        let when = format!("crash cell {} x {}", cell.point, cell.op.label());
        Failure::with_evidence(h, &when, cell.problems.clone(), runs, snapshot)
    });
    (cell, failure)
}

fn describe(recovered: &[&Value], expect: Expect, staged: bool) -> String {
    if !recovered.is_empty() {
        return recovered
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["op"].as_str().unwrap_or("?"),
                    r["name"].as_str().unwrap_or("?"),
                    r["action"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
    }
    match (expect, staged) {
        (_, true) => "stage dir collected".to_owned(),
        _ => "nothing to recover".to_owned(),
    }
}

fn recovery_problems(
    recovered: &[&Value],
    expect: Expect,
    name: &str,
    staged: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let want: Option<(&str, &str)> = match expect {
        Expect::Nothing | Expect::StageCollected => None,
        Expect::Install(action) => Some(("install", action)),
        Expect::Rm => Some(("rm", "rolled_forward")),
    };
    match (want, recovered) {
        (None, []) => {}
        (Some((op, action)), [only])
            if only["op"] == op && only["action"] == action && only["name"] == name => {}
        (want, got) => problems.push(format!(
            "the next command recovered {} but §13.4 says {}",
            json!(got),
            match want {
                None => "nothing".to_owned(),
                Some((op, action)) => format!("{op} {name} {action}"),
            }
        )),
    }
    if expect == Expect::StageCollected && !staged {
        problems.push("the death in staging left no stage-* directory".to_owned());
    }
    problems
}

impl Sweep {
    /// The table: fault point | op | died there | left behind | recovered how |
    /// invariants.
    pub fn text(&self) -> String {
        let mut out = format!(
            "fen lifecycle crash sweep: {} fault points x {} ops, {}\n",
            POINTS.len(),
            SWEEP_OPS.len(),
            self.fen
        );
        out.push_str(&format!(
            "{:<30} {:<18} {:<6} {:<12} {:<40} {}\n",
            "fault point",
            "op",
            "died",
            "left behind",
            "recovered how (next command)",
            "invariants"
        ));
        for cell in &self.cells {
            out.push_str(&format!(
                "{:<30} {:<18} {:<6} {:<12} {:<40} {}\n",
                cell.point,
                cell.op.label(),
                if cell.fired { "yes" } else { "no" },
                cell.left,
                cell.recovered,
                if cell.problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("FAIL ({})", cell.problems.len())
                }
            ));
        }
        let fired = self.cells.iter().filter(|c| c.fired).count();
        let failed = self.cells.iter().filter(|c| !c.problems.is_empty()).count();
        out.push_str(&format!(
            "{} cells: {fired} died at their fault point, {} never reached it; {}\nwall {}\n",
            self.cells.len(),
            self.cells.len() - fired,
            match failed {
                0 => "every one recovered as spec 20 §13.4 says and left the strict invariants"
                    .to_owned(),
                n => format!("{n} FAILED"),
            },
            secs(self.wall)
        ));
        out
    }

    /// The `--json` document.
    pub fn json(&self) -> Value {
        json!({
            "ok": self.cells.iter().all(|c| c.problems.is_empty()),
            "fen": self.fen,
            "wallMs": (self.wall.as_secs_f64() * 1000.0).round(),
            "cells": self.cells.iter().map(|c| json!({
                "point": c.point,
                "op": c.op.label(),
                "died": c.fired,
                "leftBehind": c.left,
                "recovered": c.recovered,
                "problems": c.problems,
            })).collect::<Vec<_>>(),
        })
    }
}

//! The procedure of spec 20 §16.3, steps 3–5: seed the repo, run the concurrent
//! rounds, then the sequential final reconcile pass. Stops at the first failure with
//! the evidence of that moment.
//!
//! With `--random-kill` (`Kills::EveryOtherRound`), rounds 1, 3, 5, … SIGKILL one
//! seeded child at a seeded instant (0–40 ms after its spawn; a release child runs
//! 15–80 ms and takes the lock in its last few, so kills land in every phase, some in
//! the locked section, and some find the child already gone). Such a round is checked
//! at `Level::AfterCrash`; the round after it, where every child takes the lifecycle
//! lock and therefore recovers first, is checked strictly. `recovered` entries are
//! accepted in both of those rounds and nowhere else.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fixtures::{ALPHA, BETA, SCOPE, V1};
use super::invariants::{check, check_children, Level};
use super::ops::{classify, one_line, Op, Recovery, OPS};
use super::prng::Prng;
use super::procs::{self, ChildRun, Launch, Target};
use super::report::{Report, Stats};
use super::snapshot::{Snapshot, BUNDLES_ROOT, PULLED_ROOT};
use super::{Failure, Harness, StressArgs};

/// Start jitter of each spawn: 0–5 ms (§16.3 step 4).
const JITTER_MAX_US: u64 = 5_000;
/// How late after its spawn a random kill may come.
const KILL_WINDOW_US: u64 = 40_000;

/// Whether rounds kill a child on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kills {
    /// §16.3 as written: no crash happens.
    None,
    /// `--random-kill`: one seeded child at a seeded instant in rounds 1, 3, 5, ….
    EveryOtherRound,
}

/// Runs seeding, the rounds and the final pass; the report on success.
pub async fn run(h: &Harness, args: &StressArgs, kills: Kills) -> Result<Report, Failure> {
    let random_kill = kills == Kills::EveryOtherRound;
    let repo = h.work.join("repo");
    let target = h.target(&repo);
    let mut checks = 0;

    // Step 3: init and seed sequentially.
    h.fen
        .run_checked(&h.work, &["init".to_owned(), repo.display().to_string()])
        .map_err(Failure::setup)?;
    let mut seeded = Vec::new();
    for op in [Op::PullAlpha, Op::PullBeta] {
        let run = run_one(h, &target, op, None).await;
        let ok = run.code() == Some(0) && run.json()["installed"]["version"] == V1;
        seeded.push(run);
        if !ok {
            let snapshot = Snapshot::take(&repo).await;
            return Err(Failure::with_evidence(
                h,
                "seeding",
                vec![format!("seeding `{}` did not install V1", op.label())],
                &seeded,
                &snapshot,
            ));
        }
    }
    verify(h, &repo, &seeded, Level::Round, "after seeding").await?;
    checks += 1;
    let setup = h.started.elapsed();

    // Step 4: the rounds.
    let rounds_started = Instant::now();
    let concurrency = usize::try_from(args.concurrency).unwrap_or(4);
    let mut stats = match kills {
        Kills::None => Stats::default(),
        Kills::EveryOtherRound => Stats::with_kills(),
    };
    let mut previous_killed = false;
    for round in 0..args.iterations {
        let mut rng = Prng::for_round(h.seed, round);
        let mut order: Vec<usize> = (0..concurrency).collect();
        rng.shuffle(&mut order);
        let kill = (random_kill && round % 2 == 0).then(|| {
            let victim = rng.below(concurrency as u64) as usize;
            (victim, Duration::from_micros(rng.below(KILL_WINDOW_US + 1)))
        });
        let runs = race(h, &target, &order, kill, &mut rng).await;
        let killed = runs.iter().any(ChildRun::killed_on_purpose);
        let recovery = match random_kill && (killed || previous_killed) {
            true => Recovery::Allowed,
            false => Recovery::Forbidden,
        };
        let mut problems = Vec::new();
        for run in &runs {
            match classify(run, recovery) {
                Ok(outcomes) => stats.record(run, &outcomes),
                Err(why) => {
                    stats.record(run, &[]);
                    problems.push(format!(
                        "§16.5 child {} ({}): {why}",
                        run.slot,
                        run.op.label()
                    ));
                }
            }
        }
        problems.extend(check_children(&runs).iter().map(ToString::to_string));
        let level = match killed {
            true => Level::AfterCrash,
            false => Level::Round,
        };
        let snapshot = Snapshot::take(&repo).await;
        problems.extend(
            check(&repo, &snapshot, &h.fixtures, level)
                .iter()
                .map(ToString::to_string),
        );
        if !problems.is_empty() {
            let when = format!("round {} of {}", round + 1, args.iterations);
            return Err(Failure::with_evidence(h, &when, problems, &runs, &snapshot));
        }
        checks += 1;
        previous_killed = killed;
        h.check_wall(&format!("after round {}", round + 1))?;
    }
    let rounds = rounds_started.elapsed();

    // Step 5.
    let final_started = Instant::now();
    // The final update recovers what a kill in the last round left.
    let recovery = match previous_killed {
        true => Recovery::Allowed,
        false => Recovery::Forbidden,
    };
    final_pass(h, &target, &repo, recovery).await?;
    checks += 1;
    let final_pass = final_started.elapsed();
    h.check_wall("in all")?;
    Ok(Report {
        seed: h.seed,
        iterations: args.iterations,
        concurrency,
        fen: h.fen.label.clone(),
        setup,
        rounds,
        final_pass,
        stats,
        checks,
    })
}

/// One round: spawn in `order`, each after its seeded jitter; wait for all. The runs
/// come back in spawn order.
async fn race(
    h: &Harness,
    target: &Target,
    order: &[usize],
    kill: Option<(usize, Duration)>,
    rng: &mut Prng,
) -> Vec<ChildRun> {
    let started = Instant::now();
    let mut handles = Vec::new();
    for &slot in order {
        let op = OPS[slot % OPS.len()];
        tokio::time::sleep(Duration::from_micros(rng.below(JITTER_MAX_US + 1))).await;
        let launch = Launch {
            op,
            slot,
            fault: None,
            kill_after: kill
                .filter(|(victim, _)| *victim == slot)
                .map(|(_, after)| after),
        };
        handles.push((op, slot, procs::spawn(&h.fen, target, launch, started)));
    }
    let mut runs = Vec::new();
    for (op, slot, handle) in handles {
        runs.push(procs::join(handle, op, slot).await);
    }
    runs
}

/// One sequential command (`slot` 0).
pub(super) async fn run_one(
    h: &Harness,
    target: &Target,
    op: Op,
    fault: Option<String>,
) -> ChildRun {
    let launch = Launch {
        op,
        slot: 0,
        fault,
        kill_after: None,
    };
    let handle = procs::spawn(&h.fen, target, launch, Instant::now());
    procs::join(handle, op, 0).await
}

/// The invariants at `level` plus the children's I2/I3; a failure with evidence.
async fn verify(
    h: &Harness,
    repo: &Path,
    runs: &[ChildRun],
    level: Level,
    when: &str,
) -> Result<(), Failure> {
    let snapshot = Snapshot::take(repo).await;
    let mut problems: Vec<String> = check_children(runs)
        .iter()
        .map(ToString::to_string)
        .collect();
    problems.extend(
        check(repo, &snapshot, &h.fixtures, level)
            .iter()
            .map(ToString::to_string),
    );
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Failure::with_evidence(h, when, problems, runs, &snapshot)),
    }
}

/// §16.3 step 5: `update` exits 0 with no `failed` or `not_found` item; the strict invariants
/// without empty directories; `status` reports no drift and nothing pending;
/// `install` finds everything up to date; removing both leaves no `@stress` trace.
async fn final_pass(
    h: &Harness,
    target: &Target,
    repo: &Path,
    recovery: Recovery,
) -> Result<(), Failure> {
    let mut runs = Vec::new();
    let update = run_one(h, target, Op::Update, None).await;
    let mut problems = Vec::new();
    if update.code() != Some(0) {
        problems.push(format!("final update: {}", update.exit));
    }
    for item in update.json()["extensions"].as_array().into_iter().flatten() {
        if matches!(item["status"].as_str(), Some("failed" | "not_found")) {
            problems.push(format!("final update: item {}", one_line(item)));
        }
    }
    if recovery == Recovery::Forbidden && has_recovered(update.json()) {
        problems.push(format!(
            "final update recovered {}",
            update.json()["recovered"]
        ));
    }
    runs.push(update);
    if !problems.is_empty() {
        let snapshot = Snapshot::take(repo).await;
        return Err(Failure::with_evidence(
            h,
            "final pass (update)",
            problems,
            &runs,
            &snapshot,
        ));
    }
    verify(h, repo, &runs, Level::Final, "final pass (after update)").await?;

    let status = run_one(h, target, Op::Status, None).await;
    let drift = &status.json()["drift"];
    let pending = &status.json()["pendingTransactions"];
    if status.code() != Some(0)
        || drift != &Value::Array(Vec::new())
        || pending != &Value::Array(Vec::new())
    {
        problems.push(format!(
            "final status: {}, drift {drift}, pendingTransactions {pending}",
            status.exit
        ));
    }
    runs.push(status);
    let install = run_one(h, target, Op::Install, None).await;
    let items = install.json()["extensions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if install.code() != Some(0)
        || items.is_empty()
        || items.iter().any(|item| item["status"] != "up_to_date")
        || has_recovered(install.json())
    {
        problems.push(format!(
            "final install: {}, not every entry up_to_date: {}",
            install.exit,
            one_line(install.json())
        ));
    }
    runs.push(install);
    let alpha_installed = Snapshot::take(repo)
        .await
        .lockfile
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .is_some_and(|doc| doc["extensions"][ALPHA].is_object());
    let mut removals = vec![Op::RmBeta];
    if alpha_installed {
        removals.push(Op::RmAlpha);
    }
    for op in removals {
        let rm = run_one(h, target, op, None).await;
        if rm.code() != Some(0) || !rm.json()["removed"].is_object() || has_recovered(rm.json()) {
            problems.push(format!(
                "final {}: {}: {}",
                op.label(),
                rm.exit,
                one_line(rm.json())
            ));
        }
        runs.push(rm);
    }
    let snapshot = Snapshot::take(repo).await;
    problems.extend(traces(repo, &snapshot));
    problems.extend(check_children(&runs).iter().map(ToString::to_string));
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Failure::with_evidence(
            h,
            "final pass (status, install, rm)",
            problems,
            &runs,
            &snapshot,
        )),
    }
}

fn has_recovered(doc: &Value) -> bool {
    doc["recovered"].as_array().is_some_and(|r| !r.is_empty())
}

/// After removing both: no `@stress` entry, row or directory, nothing pending.
fn traces(repo: &Path, snapshot: &Snapshot) -> Vec<String> {
    let mut problems = Vec::new();
    let lockfile: Value = snapshot
        .lockfile
        .as_ref()
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null);
    for name in [ALPHA, BETA] {
        if !lockfile["extensions"][name].is_null() {
            problems.push(format!("after removal the lockfile still has {name}"));
        }
    }
    match &snapshot.catalog {
        Err(why) => problems.push(format!("after removal the catalog is unreadable: {why}")),
        Ok(catalog) => {
            for row in catalog.rows.iter().filter(|r| r.name.starts_with(SCOPE)) {
                problems.push(format!(
                    "after removal the catalog still has {}@{} {}",
                    row.name, row.version, row.path
                ));
            }
        }
    }
    for root in [PULLED_ROOT, BUNDLES_ROOT] {
        let dir = repo.join(root).join(SCOPE);
        if dir.exists() {
            problems.push(format!("after removal {root}/{SCOPE} still exists"));
        }
    }
    for dir in snapshot.scratch_dirs() {
        problems.push(format!("after removal .fen/scratch/{dir} remains"));
    }
    for temp in &snapshot.lockfile_temps {
        problems.push(format!("after removal extensions/{temp} remains"));
    }
    problems
}

//! The report of spec 20 §16.6: per-op outcome counts and subprocess wall times
//! (spawn to exit; percentiles by nearest rank), the lifecycle lock's wait (the
//! children's `timings.lockWaitMs`) and hold (each `timings.lockSpans` entry), and the
//! invariant checks; as text or as one JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::ops::Op;
use super::procs::{ChildRun, Kill};

/// The run's figures.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    per_op: BTreeMap<Op, OpStats>,
    lock_wait: Vec<Duration>,
    lock_held: Vec<Duration>,
    /// Random-kill mode only.
    pub kills: Option<KillStats>,
}

#[derive(Clone, Debug, Default)]
struct OpStats {
    n: usize,
    outcomes: BTreeMap<String, usize>,
    /// Children that ran to their end (a child killed on purpose did not).
    walls: Vec<Duration>,
}

/// What the random kills did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillStats {
    pub planned: usize,
    pub landed: usize,
    pub finished_first: usize,
    /// `recovered[].op/action` counts over every child, e.g. `install rolled_back`.
    pub recovered: BTreeMap<String, usize>,
}

impl Stats {
    /// Empty figures that also count random kills.
    pub fn with_kills() -> Stats {
        Stats {
            kills: Some(KillStats::default()),
            ..Stats::default()
        }
    }

    /// Adds one classified child (the wall time only if it was not killed on
    /// purpose).
    pub fn record(&mut self, run: &ChildRun, outcomes: &[String]) {
        let op = self.per_op.entry(run.op).or_default();
        op.n += 1;
        if !run.killed_on_purpose() {
            op.walls.push(run.wall);
        }
        for outcome in outcomes {
            *op.outcomes.entry(outcome.clone()).or_default() += 1;
        }
        let doc = run.json();
        if let Some(wait) = doc["timings"]["lockWaitMs"].as_u64() {
            self.lock_wait.push(Duration::from_millis(wait));
        }
        for span in doc["timings"]["lockSpans"].as_array().into_iter().flatten() {
            if let (Some(from), Some(to)) = (span[0].as_u64(), span[1].as_u64()) {
                self.lock_held
                    .push(Duration::from_micros(to.saturating_sub(from)));
            }
        }
        if let Some(kills) = &mut self.kills {
            match run.kill {
                Kill::Sent(_) => {
                    kills.planned += 1;
                    kills.landed += usize::from(run.killed_on_purpose());
                }
                Kill::FinishedFirst(_) => {
                    kills.planned += 1;
                    kills.finished_first += 1;
                }
                Kill::NotPlanned => {}
            }
            for item in doc["recovered"].as_array().into_iter().flatten() {
                let key = format!(
                    "{} {}",
                    item["op"].as_str().unwrap_or("?"),
                    item["action"].as_str().unwrap_or("?")
                );
                *kills.recovered.entry(key).or_default() += 1;
            }
        }
    }

    /// Every child's wall time.
    pub fn all_walls(&self) -> Vec<Duration> {
        self.per_op
            .values()
            .flat_map(|o| o.walls.iter().copied())
            .collect()
    }
}

/// Everything the report prints.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub iterations: usize,
    pub concurrency: usize,
    pub fen: String,
    pub setup: Duration,
    pub rounds: Duration,
    pub final_pass: Duration,
    pub stats: Stats,
    /// Invariant checks passed (seeding + rounds + final pass).
    pub checks: usize,
}

/// The performance target of §16.7; over it is a warning, not a failure.
pub const WALL_TARGET: Duration = Duration::from_secs(30);

const OUTCOME_ORDER: [&str; 11] = [
    "installed",
    "reinstalled",
    "upgraded",
    "downgraded",
    "removed",
    "not_installed",
    "updated",
    "restored",
    "up_to_date",
    "skipped",
    "killed",
];

impl Report {
    pub fn wall(&self) -> Duration {
        self.setup + self.rounds + self.final_pass
    }

    /// The text report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "fen lifecycle stress: {} rounds x {} processes, seed {}, {}",
            self.iterations, self.concurrency, self.seed, self.fen
        );
        let _ = writeln!(
            out,
            "wall {} (setup {}, rounds {}, final pass {})",
            secs(self.wall()),
            secs(self.setup),
            secs(self.rounds),
            secs(self.final_pass)
        );
        let rows: Vec<(String, usize, String, Vec<Duration>)> = self
            .stats
            .per_op
            .iter()
            .map(|(op, s)| {
                (
                    op.label().to_owned(),
                    s.n,
                    outcomes_text(&s.outcomes),
                    s.walls.clone(),
                )
            })
            .chain(std::iter::once((
                "all".to_owned(),
                self.stats.per_op.values().map(|s| s.n).sum(),
                String::new(),
                self.stats.all_walls(),
            )))
            .collect();
        let width = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(8);
        let _ = writeln!(
            out,
            "{:<18} {:>4}  {:<width$}  {:>7} {:>7} {:>7}",
            "op", "n", "outcomes", "p50", "p95", "max"
        );
        for (label, n, outcomes, walls) in &rows {
            let _ = writeln!(
                out,
                "{label:<18} {n:>4}  {outcomes:<width$}  {:>7} {:>7} {:>7}",
                ms(percentile(walls, 50)),
                ms(percentile(walls, 95)),
                ms(walls.iter().max().copied().unwrap_or_default())
            );
        }
        for (what, values) in [
            ("wait", &self.stats.lock_wait),
            ("held", &self.stats.lock_held),
        ] {
            let _ = writeln!(
                out,
                "lifecycle lock {what}  p50 {}  p95 {}  max {}{}",
                ms(percentile(values, 50)),
                ms(percentile(values, 95)),
                ms(values.iter().max().copied().unwrap_or_default()),
                match what {
                    "held" => format!("  ({} holds)", values.len()),
                    _ => String::new(),
                }
            );
        }
        if let Some(kills) = &self.stats.kills {
            let recovered: Vec<String> = kills
                .recovered
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "random kills: {} planned, {} landed, {} finished first; recovered: {}",
                kills.planned,
                kills.landed,
                kills.finished_first,
                if recovered.is_empty() {
                    "nothing".to_owned()
                } else {
                    recovered.join(", ")
                }
            );
        }
        let _ = writeln!(out, "invariants: 5 x {} checks passed", self.checks);
        if self.wall() > WALL_TARGET {
            let _ = writeln!(
                out,
                "warning: the run took {}, over the {} s target of spec 20 §16.7",
                secs(self.wall()),
                WALL_TARGET.as_secs()
            );
        }
        out
    }

    /// The `--json` document.
    pub fn json(&self) -> Value {
        let figures = |values: &[Duration]| {
            json!({
                "p50Ms": ms_f64(percentile(values, 50)),
                "p95Ms": ms_f64(percentile(values, 95)),
                "maxMs": ms_f64(values.iter().max().copied().unwrap_or_default()),
            })
        };
        let mut ops = Map::new();
        for (op, s) in &self.stats.per_op {
            let mut entry = figures(&s.walls);
            entry["n"] = json!(s.n);
            entry["outcomes"] = json!(s.outcomes);
            ops.insert(op.label().to_owned(), entry);
        }
        let mut all = figures(&self.stats.all_walls());
        all["n"] = json!(self.stats.per_op.values().map(|s| s.n).sum::<usize>());
        let mut document = json!({
            "ok": true,
            "seed": self.seed,
            "iterations": self.iterations,
            "concurrency": self.concurrency,
            "fen": self.fen,
            "wallMs": ms_f64(self.wall()),
            "setupMs": ms_f64(self.setup),
            "roundsMs": ms_f64(self.rounds),
            "finalPassMs": ms_f64(self.final_pass),
            "ops": ops,
            "all": all,
            "lockWait": figures(&self.stats.lock_wait),
            "lockHeld": figures(&self.stats.lock_held),
            "invariants": 5,
            "invariantChecks": self.checks,
        });
        if let Some(kills) = &self.stats.kills {
            document["randomKills"] = json!({
                "planned": kills.planned,
                "landed": kills.landed,
                "finishedFirst": kills.finished_first,
                "recovered": kills.recovered,
            });
        }
        document
    }
}

fn outcomes_text(outcomes: &BTreeMap<String, usize>) -> String {
    let mut known: Vec<(usize, &String, usize)> = outcomes
        .iter()
        .map(|(name, n)| {
            let rank = OUTCOME_ORDER
                .iter()
                .position(|o| o == name)
                .unwrap_or(OUTCOME_ORDER.len());
            (rank, name, *n)
        })
        .collect();
    known.sort();
    known
        .iter()
        .map(|(_, name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Nearest-rank percentile.
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100);
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

/// `41ms`, or `2.4ms` below 10 ms.
pub fn ms(duration: Duration) -> String {
    let value = duration.as_secs_f64() * 1000.0;
    match value < 10.0 {
        true => format!("{value:.1}ms"),
        false => format!("{value:.0}ms"),
    }
}

fn ms_f64(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// `14.2 s`.
pub fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let values: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50), Duration::from_millis(10));
        assert_eq!(percentile(&values, 95), Duration::from_millis(19));
        assert_eq!(percentile(&[], 95), Duration::ZERO);
        assert_eq!(ms(Duration::from_micros(2_440)), "2.4ms");
        assert_eq!(ms(Duration::from_micros(41_400)), "41ms");
    }

    #[test]
    fn outcomes_follow_the_spec_order() {
        let outcomes: BTreeMap<String, usize> =
            [("downgraded", 13), ("installed", 9), ("reinstalled", 28)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        assert_eq!(
            outcomes_text(&outcomes),
            "installed 9, reinstalled 28, downgraded 13"
        );
    }
}

//! `cargo xtask stress` (spec 20 §16): the cross-process proof that lifecycle
//! commands racing each other from independent OS processes never leave the catalog,
//! the lockfile and the owned roots disagreeing.
//!
//! Three modes share the fixtures, the registry child, the children's supervision and
//! the invariant checks:
//!
//! - **rounds** (default, §16.3): seed, then `--iterations` rounds of `--concurrency`
//!   children from the OPS menu in seeded order with seeded start jitter; each child
//!   classified (§16.5), the invariants checked strictly after seeding and after every
//!   round (§16.4), then the final reconcile pass; the report of §16.6.
//! - **`--random-kill`**: the same rounds, but every other round SIGKILLs one seeded
//!   child at a seeded instant. Right after such a round only what no crash can break
//!   is checked (`Level::AfterCrash`); the next round, whose every child opens a
//!   locked section and so recovers first, must leave the strict invariants again.
//! - **`--crash`**: the sweep of every fault point of §15.6 × every op (`abort`: the
//!   process really dies there), each followed by one more mutating command that must
//!   recover as §13.4 says and leave the strict invariants; prints a table.
//!
//! The harness talks to 127.0.0.1 only and every loop is bounded (per-child timeout,
//! registry start and stop budgets, `--max-wall-secs`). The work directory is deleted
//! on success and kept on failure (or always, with `--keep-dir`).

mod crash;
mod fixtures;
mod invariants;
mod ops;
mod prng;
mod procs;
mod report;
mod rounds;
mod snapshot;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

use procs::{Fen, Registry, Target};

/// The flags of §16.1, plus the two crash modes.
#[derive(Clone, Debug, clap::Args)]
pub struct StressArgs {
    /// Concurrent rounds.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub iterations: usize,
    /// Subprocesses per round; child j runs OPS[j % 4].
    #[arg(long, value_name = "C", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Drives spawn order, start jitter and kills; random (and printed) when absent.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Work in DIR (empty or absent) and keep it; otherwise a temp dir, deleted on
    /// success and kept on failure.
    #[arg(long, value_name = "DIR")]
    pub keep_dir: Option<PathBuf>,
    /// The fen binary under test [default: `cargo build --release -p fen-cli`].
    #[arg(long, value_name = "PATH")]
    pub fen: Option<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Fail if the run (from the located binary to the report; a build does not
    /// count) takes longer than S seconds.
    #[arg(long, value_name = "S")]
    pub max_wall_secs: Option<f64>,
    /// Sweep every fault point × op with `abort` instead of running rounds.
    #[arg(long, conflicts_with = "random_kill")]
    pub crash: bool,
    /// SIGKILL one seeded child at a seeded instant in every other round.
    #[arg(long)]
    pub random_kill: bool,
}

impl StressArgs {
    /// Parses flags as `cargo xtask stress` would (for callers that are not the CLI).
    pub fn parse(flags: &[&str]) -> Result<StressArgs, String> {
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            args: StressArgs,
        }
        let argv = std::iter::once("stress").chain(flags.iter().copied());
        Line::try_parse_from(argv)
            .map(|line| line.args)
            .map_err(|e| e.to_string())
    }
}

/// Which procedure runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Rounds,
    RandomKill,
    CrashSweep,
}

/// A failed run: the problems in one paragraph, and the evidence dump.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, in one paragraph.
    pub summary: String,
    /// The event logs and catalog state that show it.
    pub evidence: String,
    /// A report to print anyway (the crash sweep's table with its failed rows).
    pub printed: Option<String>,
}

impl Failure {
    fn setup(summary: impl Into<String>) -> Failure {
        Failure {
            summary: summary.into(),
            evidence: String::new(),
            printed: None,
        }
    }

    /// A failure `when` (e.g. `round 17 of 50`) with every problem, every child's
    /// exit code and streams, and the snapshot (lockfile, `@stress` rows, owned roots
    /// and `.fen/scratch`) — the evidence dump of §16.6.
    fn with_evidence(
        h: &Harness,
        when: &str,
        problems: Vec<String>,
        runs: &[procs::ChildRun],
        snapshot: &snapshot::Snapshot,
    ) -> Failure {
        let list: String = problems.iter().map(|p| format!("  - {p}\n")).collect();
        let summary = format!("{when}: {} problem(s)\n{list}", problems.len());
        let mut evidence = format!(
            "=== stress failure evidence: {when} (seed {}, {})\n{list}--- children, in spawn order\n",
            h.seed, h.fen.label
        );
        for run in runs {
            evidence.push_str(&run.render());
        }
        evidence.push_str(&snapshot.render());
        Failure {
            summary,
            evidence,
            printed: None,
        }
    }
}

/// What every procedure needs.
pub(crate) struct Harness {
    fen: Fen,
    work: PathBuf,
    registry: Registry,
    fixtures: fixtures::Fixtures,
    seed: u64,
    started: Instant,
    max_wall_secs: Option<f64>,
}

impl Harness {
    /// Children run in `work`, against `repo`.
    fn target(&self, repo: &Path) -> Target {
        Target {
            repo: repo.to_path_buf(),
            url: self.registry.url.clone(),
            cwd: self.work.clone(),
        }
    }

    /// `Err` once the run is over `--max-wall-secs`.
    fn check_wall(&self, when: &str) -> Result<(), Failure> {
        match self.max_wall_secs {
            Some(max) if self.started.elapsed().as_secs_f64() > max => {
                Err(Failure::setup(format!(
                    "the run took {:.1} s {when}, over --max-wall-secs {max}",
                    self.started.elapsed().as_secs_f64()
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The work directory: kept (`--keep-dir`) or temporary.
enum WorkDir {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl WorkDir {
    fn create(keep: Option<&Path>) -> Result<WorkDir, String> {
        match keep {
            Some(dir) => {
                let dir = std::path::absolute(dir)
                    .map_err(|e| format!("--keep-dir {}: {e}", dir.display()))?;
                if dir.exists()
                    && std::fs::read_dir(&dir)
                        .map_err(|e| format!("--keep-dir {}: {e}", dir.display()))?
                        .next()
                        .is_some()
                {
                    return Err(format!("--keep-dir {} is not empty", dir.display()));
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("--keep-dir {}: {e}", dir.display()))?;
                Ok(WorkDir::Kept(dir))
            }
            None => tempfile::Builder::new()
                .prefix("fen-stress-")
                .tempdir()
                .map(WorkDir::Temp)
                .map_err(|e| format!("cannot create a temp dir: {e}")),
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            WorkDir::Kept(dir) => dir.clone(),
            WorkDir::Temp(temp) => temp.path().to_path_buf(),
        }
    }

    /// Keeps the directory and says where it is.
    fn keep(self) -> PathBuf {
        match self {
            WorkDir::Kept(dir) => dir,
            WorkDir::Temp(temp) => temp.keep(),
        }
    }
}

/// A passed run: the report as text and as JSON.
#[derive(Clone, Debug)]
pub struct Passed {
    /// The report for a terminal.
    pub text: String,
    /// The same report as JSON (`--json`).
    pub json: serde_json::Value,
}

/// Runs the harness. Prints the report on stdout (text or `--json`) and, on failure,
/// the evidence dump on stderr. `Ok` carries what was printed on stdout; `Err` the
/// one-paragraph reason (the CLI exits 1).
pub fn run(args: StressArgs) -> Result<String, String> {
    let json = args.json;
    match execute(args) {
        Ok(passed) => {
            let printed = match json {
                true => format!("{:#}\n", passed.json),
                false => passed.text,
            };
            print!("{printed}");
            let _ = std::io::stdout().flush();
            Ok(printed)
        }
        Err(Failed { printed, reason }) => {
            if let Some(printed) = printed {
                print!("{printed}");
                let _ = std::io::stdout().flush();
            }
            Err(reason)
        }
    }
}

/// A failed run: what to print on stdout (if anything) and the reason.
struct Failed {
    printed: Option<String>,
    reason: String,
}

impl From<String> for Failed {
    fn from(reason: String) -> Failed {
        Failed {
            printed: None,
            reason,
        }
    }
}

/// Runs the harness without printing the report (the evidence of a failure still
/// goes to stderr): for `cargo xtask bench`.
pub fn measure(args: StressArgs) -> Result<Passed, String> {
    execute(args).map_err(|failed| failed.reason)
}

fn execute(args: StressArgs) -> Result<Passed, Failed> {
    let mode = match (args.crash, args.random_kill) {
        (true, _) => Mode::CrashSweep,
        (false, true) => Mode::RandomKill,
        (false, false) => Mode::Rounds,
    };
    let seed = args
        .seed
        .unwrap_or_else(|| u64::from_le_bytes(fen_infrastructure::random::bytes::<8>()));
    eprintln!("seed {seed} (rerun with --seed {seed} to repeat the schedule)");
    let fen = Fen::locate(args.fen.as_deref())?;
    let work_dir = WorkDir::create(args.keep_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let work = work_dir.path();
    eprintln!("work dir {}", work.display());
    let started = Instant::now();
    let outcome = (|| {
        // §16.3 steps 1–2: fixtures, packing, the registry.
        let fixtures = fixtures::generate(&fen, &work).map_err(Failure::setup)?;
        let registry = Registry::start(
            &fen,
            &fixtures.registry_dir,
            &work,
            &work.join("registry.log"),
        )
        .map_err(Failure::setup)?;
        eprintln!("registry {}", registry.url);
        let harness = Harness {
            fen,
            work: work.clone(),
            registry,
            fixtures,
            seed,
            started,
            max_wall_secs: args.max_wall_secs,
        };
        let passed = runtime.block_on(async {
            match mode {
                Mode::Rounds | Mode::RandomKill => {
                    let kills = match mode {
                        Mode::RandomKill => rounds::Kills::EveryOtherRound,
                        _ => rounds::Kills::None,
                    };
                    let report = rounds::run(&harness, &args, kills).await?;
                    Ok::<Passed, Failure>(Passed {
                        text: report.text(),
                        json: report.json(),
                    })
                }
                Mode::CrashSweep => {
                    let (sweep, failures) = crash::sweep(&harness).await;
                    if !failures.is_empty() {
                        return Err(Failure {
                            summary: failures.iter().map(|f| f.summary.as_str()).collect(),
                            evidence: failures.iter().map(|f| f.evidence.as_str()).collect(),
                            printed: Some(match args.json {
                                true => format!("{:#}\n", sweep.json()),
                                false => sweep.text(),
                            }),
                        });
                    }
                    harness.check_wall("for the sweep")?;
                    Ok(Passed {
                        text: sweep.text(),
                        json: sweep.json(),
                    })
                }
            }
        })?;
        // §16.3 step 6.
        harness.registry.stop().map_err(Failure::setup)?;
        Ok::<Passed, Failure>(passed)
    })();
    match outcome {
        Ok(passed) => {
            if let WorkDir::Kept(dir) = &work_dir {
                eprintln!("work dir kept: {}", dir.display());
            }
            Ok(passed)
        }
        Err(failure) => {
            let kept = work_dir.keep();
            eprintln!("{}", failure.evidence);
            eprintln!("work dir kept: {}", kept.display());
            let printed = match (&failure.printed, args.json) {
                (Some(printed), _) => Some(printed.clone()),
                (None, true) => Some(format!(
                    "{:#}\n",
                    serde_json::json!({
                        "ok": false,
                        "seed": seed,
                        "failure": failure.summary,
                        "keptDir": kept.display().to_string(),
                    })
                )),
                (None, false) => None,
            };
            Err(Failed {
                printed,
                reason: format!(
                    "stress FAILED (seed {seed}; work dir kept: {}):\n{}",
                    kept.display(),
                    failure.summary
                ),
            })
        }
    }
}

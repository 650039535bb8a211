//! Lifecycle rows of `cargo xtask bench` (issue 8): `pull` of one extension with 10
//! model types, `rm` of it, and `update` with nothing to do, against a real
//! `fen registry serve` on 127.0.0.1, each with the lifecycle lock's hold time read
//! from the command's own `timings.lockHeldMs`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{median, p95, show_ms, Bench, Row};

const NAME: &str = "@bench/ten";
const VERSION: &str = "2026.01.01.1";
const N_TYPES: usize = 10;

/// The served registry; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One timed lifecycle command: wall time and the lock it held.
struct Timed {
    wall: Duration,
    lock_held: Duration,
}

fn fen(bin: &Path, cwd: &Path) -> Command {
    xtask::fen_build::clean_command(bin, cwd)
}

fn checked(mut command: Command, what: &str) -> Result<std::process::Output, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run fen ({what}): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

/// Writes and packs the 10-type extension, starts the server, inits a repo.
fn setup(fen_bin: &Path, scratch: &Path) -> Result<(Server, String, std::path::PathBuf), String> {
    let io = |e: std::io::Error| format!("bench setup: {e}");
    let src = scratch.join("lifecycle-src");
    let registry = scratch.join("lifecycle-registry");
    std::fs::create_dir_all(src.join("models")).map_err(io)?;
    std::fs::create_dir_all(&registry).map_err(io)?;
    let mut models = Vec::new();
    for i in 0..N_TYPES {
        let file = format!("t{i}.ts");
        std::fs::write(
            src.join("models").join(&file),
            format!(
                "export const model = {{\n  type: \"@bench/ten-{i}\",\n  version: \"2026.01.01.0\",\n  description: \"bench type {i}\",\n  methods: {{ go: {{ description: \"g\", arguments: {{ type: \"object\" }}, run() {{ return {i}; }} }} }},\n}};\n"
            ),
        )
        .map_err(io)?;
        models.push(format!("\"{file}\""));
    }
    std::fs::write(
        src.join("manifest.yaml"),
        format!(
            "manifestVersion: 1\nname: \"{NAME}\"\nversion: \"{VERSION}\"\nmodels: [{}]\n",
            models.join(", ")
        ),
    )
    .map_err(io)?;
    let mut pack = fen(fen_bin, scratch);
    pack.args(["extension", "pack"])
        .arg(&src)
        .arg("--registry-dir")
        .arg(&registry);
    checked(pack, "pack")?;

    let mut serve = fen(fen_bin, scratch);
    serve
        .args(["registry", "serve", "--quiet", "--dir"])
        .arg(&registry)
        .stderr(Stdio::null());
    let mut child = serve
        .spawn()
        .map_err(|e| format!("cannot start the registry: {e}"))?;
    let stdout = child.stdout.take().ok_or("registry stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(io)?;
    let url = line
        .trim()
        .strip_prefix("fen registry listening on ")
        .ok_or_else(|| format!("unexpected registry line {line:?}"))?
        .to_owned();
    let repo = scratch.join("lifecycle-repo");
    let mut init = fen(fen_bin, scratch);
    init.arg("init").arg(&repo);
    checked(init, "init")?;
    Ok((server, url, repo))
}

fn timed(fen_bin: &Path, repo: &Path, url: &str, args: &[&str]) -> Result<Timed, String> {
    let mut command = fen(fen_bin, repo);
    command
        .env("FEN_REGISTRY_URL", url)
        .arg("--json")
        .args(args);
    let started = Instant::now();
    let output = checked(command, &args.join(" "))?;
    let wall = started.elapsed();
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("{}: stdout is not JSON: {e}", args.join(" ")))?;
    let held = doc["timings"]["lockHeldMs"].as_u64().unwrap_or(0);
    Ok(Timed {
        wall,
        lock_held: Duration::from_millis(held),
    })
}

impl Bench {
    /// The three lifecycle rows, each with its lock-held row.
    pub(super) fn lifecycle(&mut self, scratch: &Path) -> Result<(), String> {
        let bin = self.fen.bin.clone();
        let (_server, url, repo) = setup(&bin, scratch)?;
        let runs = self.effort.warmups() + self.effort.timed_runs();
        let warmups = self.effort.warmups();
        let pull = ["extension", "pull", NAME];
        let rm = ["extension", "rm", NAME, "--yes"];
        let update = ["extension", "update"];
        let mut pulls = Vec::new();
        let mut rms = Vec::new();
        let mut updates = Vec::new();
        for i in 0..runs {
            let p = timed(&bin, &repo, &url, &pull)?;
            let u = timed(&bin, &repo, &url, &update)?;
            let r = timed(&bin, &repo, &url, &rm)?;
            if i >= warmups {
                pulls.push(p);
                updates.push(u);
                rms.push(r);
            }
        }
        self.lifecycle_rows(
            "pull, 1 extension of 10 types",
            &pulls,
            60.0,
            "~0.7 s per command; 50x4 in 2 min 57 s (~3.5 s per round of 4)",
        );
        self.lifecycle_rows("rm", &rms, 20.0, "~0.7 s per command");
        self.lifecycle_rows(
            "update, nothing to do",
            &updates,
            15.0,
            "~0.7 s per command",
        );
        Ok(())
    }

    fn lifecycle_rows(
        &mut self,
        metric: &str,
        samples: &[Timed],
        goal_ms: f64,
        swamp: &'static str,
    ) {
        let walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        let holds: Vec<Duration> = samples.iter().map(|s| s.lock_held).collect();
        let goal = Duration::from_secs_f64(goal_ms / 1000.0);
        let lock_goal = Duration::from_millis(10);
        self.rows.push(Row {
            metric: metric.to_owned(),
            p50: show_ms(median(&walls)),
            p95: show_ms(p95(&walls)),
            goal: format!("p50 <= {goal_ms} ms"),
            swamp,
            ok: median(&walls) <= goal,
        });
        self.rows.push(Row {
            metric: format!("{metric}: lifecycle lock held"),
            p50: show_ms(median(&holds)),
            p95: show_ms(p95(&holds)),
            goal: "p50 <= 10 ms".to_owned(),
            swamp: "-",
            ok: median(&holds) <= lock_goal,
        });
    }
}

impl Bench {
    /// `cargo xtask stress` (50x4, seed 1) as three rows: the whole run, the children's
    /// wall times and the lifecycle lock's holds, beside swamp's 2 min 57 s.
    pub(super) fn stress(&mut self) -> Result<(), String> {
        let bin = self.fen.bin.display().to_string();
        let args = xtask::stress::StressArgs::parse(&["--fen", &bin, "--seed", "1"])?;
        let report = xtask::stress::measure(args)?.json;
        let figure = |value: &serde_json::Value| {
            Duration::from_secs_f64(value.as_f64().unwrap_or(f64::NAN).max(0.0) / 1000.0)
        };
        let wall = figure(&report["wallMs"]);
        self.rows.push(Row {
            metric: "stress 50x4, whole run".to_owned(),
            p50: format!("{:.1} s", wall.as_secs_f64()),
            p95: "-".to_owned(),
            goal: "<= 20 s".to_owned(),
            swamp: "2 min 57 s",
            ok: wall <= Duration::from_secs(20),
        });
        for (metric, key, goal_ms, swamp) in [
            ("stress 50x4, per child", "all", 300, "~0.7 s per command"),
            ("stress 50x4, lifecycle lock held", "lockHeld", 30, "-"),
        ] {
            let p95 = figure(&report[key]["p95Ms"]);
            self.rows.push(Row {
                metric: metric.to_owned(),
                p50: show_ms(figure(&report[key]["p50Ms"])),
                p95: show_ms(p95),
                goal: format!("p95 <= {goal_ms} ms"),
                swamp,
                ok: p95 <= Duration::from_millis(goal_ms),
            });
        }
        Ok(())
    }
}

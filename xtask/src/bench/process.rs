//! Running processes for `cargo xtask bench`: timed `fen --stats`
//! runs with their parsed counters, and peak RSS.
//!
//! Peak RSS comes from `wait4` through `/usr/bin/time -f %M`: the workspace forbids
//! `unsafe`, so there is no direct `getrusage`. Without `/usr/bin/time`,
//! `/proc/<pid>/status` `VmHWM` is polled while the child runs, which gives a lower
//! bound that the table marks `>=`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub(super) struct Fen {
    pub(super) bin: PathBuf,
}

/// One run of fen.
pub(super) struct Sample {
    pub(super) wall: Duration,
    pub(super) stats: Stats,
    pub(super) stats_line: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Stats {
    pub(super) bundles_built: u64,
    pub(super) bundles_evaluated: u64,
    pub(super) sources_hashed: u64,
    pub(super) lifecycle_lock_acquired: u64,
    /// Absent from builds that predate the counter.
    pub(super) catalog_statements: Option<u64>,
    pub(super) elapsed_us: u64,
}

impl Fen {
    /// `fen --repo-dir DIR --stats ARGS`, with no inherited `FEN_*` variables.
    pub(super) fn command(&self, repo: &Path, args: &[&str]) -> Command {
        let mut command = xtask::fen_build::clean_command(&self.bin, repo);
        command
            .arg("--repo-dir")
            .arg(repo)
            .arg("--stats")
            .args(args);
        command
    }

    pub(super) fn run(&self, repo: &Path, args: &[&str]) -> Result<Sample, String> {
        let mut command = self.command(repo, args);
        let started = Instant::now();
        let output = command
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let wall = started.elapsed();
        sample_of(wall, &output, args)
    }
}

fn sample_of(
    wall: Duration,
    output: &std::process::Output,
    args: &[&str],
) -> Result<Sample, String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "`fen {}` failed ({}): {}",
            args.join(" "),
            output.status,
            stderr.trim()
        ));
    }
    let (stats, stats_line) = parse_stats(&stderr).ok_or_else(|| {
        format!(
            "`fen --stats {}` printed no fenStats line: {}",
            args.join(" "),
            stderr.trim()
        )
    })?;
    Ok(Sample {
        wall,
        stats,
        stats_line,
    })
}

/// The `{"fenStats":{...}}` line of stderr.
fn parse_stats(stderr: &str) -> Option<(Stats, String)> {
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with("{\"fenStats\""))?;
    let value: Value = serde_json::from_str(line).ok()?;
    let stats = value.get("fenStats")?;
    let field = |name: &str| stats.get(name).and_then(Value::as_u64);
    Some((
        Stats {
            bundles_built: field("bundlesBuilt")?,
            bundles_evaluated: field("bundlesEvaluated")?,
            sources_hashed: field("sourcesHashed")?,
            lifecycle_lock_acquired: field("lifecycleLockAcquired")?,
            catalog_statements: field("catalogStatements"),
            elapsed_us: field("elapsedUs")?,
        },
        line.trim().to_owned(),
    ))
}

// ---------------------------------------------------------------------------------------
// Peak RSS.

/// How peak RSS is read.
pub(super) enum RssProbe {
    /// `/usr/bin/time -f %M`: `ru_maxrss` from `wait4`, exact.
    GnuTime(PathBuf),
    /// Polling `VmHWM` in `/proc/<pid>/status`: a lower bound.
    ProcPolling,
}

impl RssProbe {
    pub(super) fn detect() -> RssProbe {
        let time = PathBuf::from("/usr/bin/time");
        let works = Command::new(&time)
            .args(["-f", "%M", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        match works {
            true => RssProbe::GnuTime(time),
            false => {
                println!(
                    "note: /usr/bin/time not usable; peak RSS is polled from /proc (a lower bound)"
                );
                RssProbe::ProcPolling
            }
        }
    }

    pub(super) fn bound(&self) -> &'static str {
        match self {
            RssProbe::GnuTime(_) => "",
            RssProbe::ProcPolling => ">= ",
        }
    }

    /// Peak RSS in KiB of one run, and the run.
    pub(super) fn measure(
        &self,
        fen: &Fen,
        repo: &Path,
        args: &[&str],
    ) -> Result<(u64, Sample), String> {
        match self {
            RssProbe::GnuTime(time) => {
                let report = tempfile::NamedTempFile::new()
                    .map_err(|e| format!("cannot create a temp file: {e}"))?;
                let inner = fen.command(repo, args);
                let mut command = Command::new(time);
                command
                    .arg("-f")
                    .arg("%M")
                    .arg("-o")
                    .arg(report.path())
                    .arg(inner.get_program())
                    .args(inner.get_args())
                    .current_dir(repo)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                for (key, _) in std::env::vars_os() {
                    if key.to_string_lossy().starts_with("FEN_") {
                        command.env_remove(key);
                    }
                }
                let started = Instant::now();
                let output = command
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", time.display()))?;
                let sample = sample_of(started.elapsed(), &output, args)?;
                let text = std::fs::read_to_string(report.path())
                    .map_err(|e| format!("cannot read the /usr/bin/time report: {e}"))?;
                let kib = text
                    .lines()
                    .rev()
                    .find_map(|line| line.trim().parse::<u64>().ok())
                    .ok_or_else(|| format!("/usr/bin/time printed no %M figure: {text:?}"))?;
                Ok((kib, sample))
            }
            RssProbe::ProcPolling => {
                let started = Instant::now();
                let mut child = fen
                    .command(repo, args)
                    .spawn()
                    .map_err(|e| format!("cannot run {}: {e}", fen.bin.display()))?;
                let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
                let mut peak = 0;
                // Pipes are small here (one stats line, a few result lines), so polling
                // before reading them cannot deadlock.
                while child
                    .try_wait()
                    .map_err(|e| format!("cannot wait for fen: {e}"))?
                    .is_none()
                {
                    if let Ok(status) = std::fs::read_to_string(&status_file) {
                        peak = peak.max(vm_hwm_kib(&status).unwrap_or(0));
                    }
                }
                let output = child
                    .wait_with_output()
                    .map_err(|e| format!("cannot wait for fen: {e}"))?;
                let sample = sample_of(started.elapsed(), &output, args)?;
                Ok((peak, sample))
            }
        }
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_line_is_found_among_warnings() {
        let stderr = "warning: something\n{\"fenStats\":{\"bundlesBuilt\":1,\"bundlesEvaluated\":2,\"evaluated\":[\"a\"],\"sourcesHashed\":3,\"lifecycleLockAcquired\":0,\"elapsedUs\":1234}}\n";
        let (stats, line) = parse_stats(stderr).unwrap();
        assert_eq!(
            stats,
            Stats {
                bundles_built: 1,
                bundles_evaluated: 2,
                sources_hashed: 3,
                lifecycle_lock_acquired: 0,
                catalog_statements: None,
                elapsed_us: 1234
            }
        );
        let with_statements =
            stderr.replace("\"elapsedUs\"", "\"catalogStatements\":2,\"elapsedUs\"");
        let (stats, _) = parse_stats(&with_statements).unwrap();
        assert_eq!(stats.catalog_statements, Some(2));
        assert!(line.starts_with("{\"fenStats\""));
        assert!(parse_stats("no stats here").is_none());
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tfen\nVmPeak:\t  20000 kB\nVmHWM:\t   9876 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(9876));
    }
}

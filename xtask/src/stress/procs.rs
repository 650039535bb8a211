//! Processes of the harness: the `fen` binary under test, the `fen registry serve`
//! child, and the supervised lifecycle children of a round (spawned at their
//! scheduled instant, timed from spawn to exit, killed at a planned instant or when
//! the per-child timeout runs out).
//!
//! Every child gets a clean environment as far as fen is concerned: each inherited
//! `FEN_*` variable is removed (spec 20 §16.3 names `FEN_LOG` and `FEN_TEST_FAULT`;
//! removing all of them also keeps a stray `FEN_LOCK_TIMEOUT_MS` from changing the
//! run), then `FEN_REGISTRY_URL` and, in the crash modes, `FEN_TEST_FAULT` are set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::ops::Op;

/// How long one child may run before it is killed and the round fails (§16.3).
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the registry has to announce its URL (§16.3).
const SERVER_ANNOUNCE: Duration = Duration::from_secs(10);
/// How long the registry has to stop after SIGTERM before SIGKILL (§16.3).
const SERVER_STOP: Duration = Duration::from_secs(2);

/// The binary under test.
#[derive(Clone, Debug)]
pub struct Fen {
    pub bin: PathBuf,
    /// `fen 0.1.0 (release)`, for the report.
    pub label: String,
}

impl Fen {
    /// `--fen PATH`, or a release build of `fen-cli`.
    pub fn locate(explicit: Option<&Path>) -> Result<Fen, String> {
        let bin = match explicit {
            Some(path) => {
                let path = std::path::absolute(path)
                    .map_err(|e| format!("--fen {}: {e}", path.display()))?;
                if !path.is_file() {
                    return Err(format!("--fen {}: no such file", path.display()));
                }
                path
            }
            None => crate::fen_build::release(&crate::fen_build::workspace_root())?,
        };
        let output = std::process::Command::new(&bin)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let profile = match bin.parent().and_then(Path::file_name) {
            Some(dir) if dir == "release" || dir == "debug" => dir.to_string_lossy().into_owned(),
            _ => bin.display().to_string(),
        };
        Ok(Fen {
            label: format!("{version} ({profile})"),
            bin,
        })
    }

    /// A blocking command with the clean environment.
    pub fn command(&self, cwd: &Path) -> std::process::Command {
        crate::fen_build::clean_command(&self.bin, cwd)
    }

    /// Runs `fen ARGS` to completion; non-zero exit is an error with its output.
    pub fn run_checked(&self, cwd: &Path, args: &[String]) -> Result<Output, String> {
        eprintln!("$ fen {}", args.join(" "));
        let output = self
            .command(cwd)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "`fen {}` failed ({}):\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(output)
    }
}

// ---------------------------------------------------------------------------------------
// The registry.

/// `fen registry serve` on 127.0.0.1:0; killed if dropped without `stop`.
pub struct Registry {
    child: Option<Child>,
    pub url: String,
}

impl Registry {
    /// Starts the server over `dir` and reads its URL from the first stdout line
    /// within 10 s. Its stderr goes to `log`.
    pub fn start(fen: &Fen, dir: &Path, cwd: &Path, log: &Path) -> Result<Registry, String> {
        let log_file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let args = [
            "registry".to_owned(),
            "serve".to_owned(),
            "--dir".to_owned(),
            dir.display().to_string(),
            "--addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--quiet".to_owned(),
        ];
        eprintln!("$ fen {}", args.join(" "));
        let mut child = fen
            .command(cwd)
            .args(&args)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start the registry: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("the registry has no stdout pipe")?;
        let mut registry = Registry {
            child: Some(child),
            url: String::new(),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
        let line = match rx.recv_timeout(SERVER_ANNOUNCE) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("cannot read the registry's stdout: {e}")),
            Err(_) => {
                return Err(format!(
                    "the registry announced no URL within {} s",
                    SERVER_ANNOUNCE.as_secs()
                ))
            }
        };
        registry.url = line
            .trim()
            .strip_prefix("fen registry listening on ")
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .ok_or_else(|| format!("unexpected first line from the registry: {line:?}"))?
            .to_owned();
        Ok(registry)
    }

    /// SIGTERM, then SIGKILL if it has not exited after 2 s (§16.3 step 6).
    pub fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std has no SIGTERM and the workspace forbids `unsafe`: ask kill(1).
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + SERVER_STOP;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!("the registry exited with {status} on SIGTERM"))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for the registry: {e}")),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "the registry did not stop within {} s of SIGTERM (killed)",
            SERVER_STOP.as_secs()
        ))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle children.

/// Where children run: the repo (`--repo-dir`), the registry URL, the cwd.
#[derive(Clone, Debug)]
pub struct Target {
    pub repo: PathBuf,
    pub url: String,
    pub cwd: PathBuf,
}

/// One child to start.
#[derive(Clone, Debug)]
pub struct Launch {
    pub op: Op,
    /// Its position `j` in the round (`OPS[j % 4]`).
    pub slot: usize,
    /// `FEN_TEST_FAULT`, in the crash sweep.
    pub fault: Option<String>,
    /// SIGKILL this long after the spawn (random-kill mode).
    pub kill_after: Option<Duration>,
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Killed by the harness after `CHILD_TIMEOUT`.
    TimedOut,
    SpawnFailed(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit {code}"),
            Exit::Signal(9) => write!(f, "killed by SIGKILL"),
            Exit::Signal(6) => write!(f, "died by SIGABRT"),
            Exit::Signal(signal) => write!(f, "died by signal {signal}"),
            Exit::TimedOut => write!(f, "timed out after {} s", CHILD_TIMEOUT.as_secs()),
            Exit::SpawnFailed(why) => write!(f, "could not be started: {why}"),
        }
    }
}

/// Whether the harness killed the child on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    NotPlanned,
    /// SIGKILL was sent this long after the spawn.
    Sent(Duration),
    /// The child had exited before its planned instant.
    FinishedFirst(Duration),
}

/// A finished child with everything the classification and the evidence need.
#[derive(Clone, Debug)]
pub struct ChildRun {
    pub op: Op,
    pub slot: usize,
    pub args: Vec<String>,
    pub fault: Option<String>,
    /// Spawned this long after the round started.
    pub offset: Duration,
    /// Spawn to exit.
    pub wall: Duration,
    pub exit: Exit,
    pub kill: Kill,
    pub stdout: String,
    pub stderr: String,
    /// stdout as exactly one JSON document, or why not.
    pub doc: Result<Value, String>,
}

impl ChildRun {
    /// The exit code, when it exited normally.
    pub fn code(&self) -> Option<i32> {
        match self.exit {
            Exit::Code(code) => Some(code),
            _ => None,
        }
    }

    /// The JSON document, or `Null`.
    pub fn json(&self) -> &Value {
        const NULL: Value = Value::Null;
        self.doc.as_ref().unwrap_or(&NULL)
    }

    /// The evidence of one child: command line, timing, exit, both streams.
    pub fn render(&self) -> String {
        let kill = match self.kill {
            Kill::NotPlanned => String::new(),
            Kill::Sent(after) => format!(", SIGKILL sent at {after:?}"),
            Kill::FinishedFirst(after) => format!(", exited before its kill at {after:?}"),
        };
        let fault = self
            .fault
            .as_ref()
            .map(|f| format!("FEN_TEST_FAULT={f} "))
            .unwrap_or_default();
        format!(
            "[child {}] {}: spawned at +{:?}, ran {:?}, {}{kill}\n  $ {fault}fen {}\n  stdout: {}\n  stderr: {}\n",
            self.slot,
            self.op.label(),
            self.offset,
            self.wall,
            self.exit,
            self.args.join(" "),
            indent(&self.stdout),
            indent(&self.stderr),
        )
    }

    /// True when the harness killed it (and it did die of that).
    pub fn killed_on_purpose(&self) -> bool {
        matches!(self.kill, Kill::Sent(_)) && self.exit == Exit::Signal(9)
    }
}

/// The command line of an op, `--repo-dir` and `--json` included.
pub fn command_line(target: &Target, op: Op) -> Vec<String> {
    let mut args = vec![
        "--repo-dir".to_owned(),
        target.repo.display().to_string(),
        "--json".to_owned(),
    ];
    args.extend(op.args());
    args
}

/// Spawns one child now and supervises it on the runtime: reads both pipes, kills it
/// at `launch.kill_after` or after `CHILD_TIMEOUT`.
pub fn spawn(
    fen: &Fen,
    target: &Target,
    launch: Launch,
    round_start: Instant,
) -> tokio::task::JoinHandle<ChildRun> {
    let args = command_line(target, launch.op);
    let mut command = tokio::process::Command::new(&fen.bin);
    command
        .current_dir(&target.cwd)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FEN_") {
            command.env_remove(key);
        }
    }
    command.env("FEN_REGISTRY_URL", &target.url);
    if let Some(fault) = &launch.fault {
        command.env("FEN_TEST_FAULT", fault);
    }
    let started = Instant::now();
    let offset = started.saturating_duration_since(round_start);
    let spawned = command.spawn();
    tokio::spawn(async move {
        let mut run = ChildRun {
            op: launch.op,
            slot: launch.slot,
            args,
            fault: launch.fault.clone(),
            offset,
            wall: Duration::ZERO,
            exit: Exit::TimedOut,
            kill: Kill::NotPlanned,
            stdout: String::new(),
            stderr: String::new(),
            doc: Err("no output".to_owned()),
        };
        match spawned {
            Err(e) => run.exit = Exit::SpawnFailed(e.to_string()),
            Ok(child) => supervise(child, started, launch.kill_after, &mut run).await,
        }
        run.doc = parse_document(&run.stdout);
        run
    })
}

/// Waits for a child spawned by [`spawn`]; a supervisor that panicked becomes a run
/// that failed to start, so it fails the round instead of the harness.
pub async fn join(handle: tokio::task::JoinHandle<ChildRun>, op: Op, slot: usize) -> ChildRun {
    match handle.await {
        Ok(run) => run,
        Err(e) => ChildRun {
            op,
            slot,
            args: Vec::new(),
            fault: None,
            offset: Duration::ZERO,
            wall: Duration::ZERO,
            exit: Exit::SpawnFailed(format!("its supervisor task failed: {e}")),
            kill: Kill::NotPlanned,
            stdout: String::new(),
            stderr: String::new(),
            doc: Err("no output".to_owned()),
        },
    }
}

async fn supervise(
    mut child: tokio::process::Child,
    started: Instant,
    kill_after: Option<Duration>,
    run: &mut ChildRun,
) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_out = async {
        let mut bytes = Vec::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_end(&mut bytes).await;
        }
        bytes
    };
    let read_err = async {
        let mut bytes = Vec::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_end(&mut bytes).await;
        }
        bytes
    };
    let waited = async {
        let mut kill = Kill::NotPlanned;
        if let Some(after) = kill_after {
            tokio::select! {
                status = child.wait() => {
                    return (status, Instant::now(), Kill::FinishedFirst(after), false);
                }
                _ = tokio::time::sleep_until((started + after).into()) => {
                    let _ = child.start_kill();
                    kill = Kill::Sent(after);
                }
            }
        }
        let deadline = started + CHILD_TIMEOUT;
        tokio::select! {
            status = child.wait() => (status, Instant::now(), kill, false),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let _ = child.start_kill();
                let status = child.wait().await;
                (status, Instant::now(), kill, true)
            }
        }
    };
    let (out, err, (status, ended, kill, timed_out)) = tokio::join!(read_out, read_err, waited);
    run.wall = ended.saturating_duration_since(started);
    run.kill = kill;
    run.stdout = String::from_utf8_lossy(&out).into_owned();
    run.stderr = String::from_utf8_lossy(&err).into_owned();
    run.exit = match (timed_out, status) {
        (true, _) => Exit::TimedOut,
        (false, Err(e)) => Exit::SpawnFailed(format!("cannot wait: {e}")),
        (false, Ok(status)) => exit_of(status),
    };
}

#[cfg(unix)]
fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::SpawnFailed(format!("unknown status {status}")),
    }
}

#[cfg(not(unix))]
fn exit_of(status: std::process::ExitStatus) -> Exit {
    match status.code() {
        Some(code) => Exit::Code(code),
        None => Exit::SpawnFailed(format!("unknown status {status}")),
    }
}

fn indent(text: &str) -> String {
    match text.trim_end() {
        "" => "(empty)".to_owned(),
        text => text.replace('\n', "\n          "),
    }
}

/// stdout must be exactly one JSON document (§16.5), whatever the exit code.
fn parse_document(stdout: &str) -> Result<Value, String> {
    if stdout.trim().is_empty() {
        return Err("stdout is empty".to_owned());
    }
    serde_json::from_str::<Value>(stdout.trim())
        .map_err(|e| format!("stdout is not exactly one JSON document: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_must_be_one_document() {
        assert!(parse_document("{\"a\":1}\n").is_ok());
        assert!(parse_document("{\"a\":1}\n{\"b\":2}\n").is_err());
        assert!(parse_document("").is_err());
        assert!(parse_document("error: x").is_err());
    }
}

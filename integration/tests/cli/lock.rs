//! The lifecycle lock across processes (spec 20 §8.1, issue #3): a waiter times out
//! with exit 75 naming the holder; a holder killed with SIGKILL frees the lock at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::{fen, TempDir};

/// Starts `fen init DIR` that holds the lifecycle lock (fault point `lock:acquired`
/// sleeps) and returns once the child reports it holds the lock.
fn spawn_holder(dir: &std::path::Path) -> Child {
    let mut child = fen(dir)
        .env("FEN_TEST_FAULT", "lock:acquired=sleep:120000")
        .args(["init", "--nested"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .expect("holder exited before taking the lock")
            .unwrap();
        if line.starts_with("fen-test-fault: lock:acquired") {
            break;
        }
    }
    child
}

#[test]
fn waiter_times_out_naming_the_holder_then_sigkill_frees_the_lock() {
    let tmp = TempDir::new();
    let repo = tmp.path();
    std::fs::create_dir(repo.join(".fen")).unwrap();
    let mut holder = spawn_holder(repo);

    let started = Instant::now();
    let waiter = fen(repo)
        .env("FEN_LOCK_TIMEOUT_MS", "300")
        .args(["--json", "init"])
        .output()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(waiter.status.code(), Some(75));
    let doc: serde_json::Value = serde_json::from_slice(&waiter.stdout).unwrap();
    assert_eq!(doc["error"]["code"], "lock_timeout");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("pid {}", holder.id())),
        "{message}"
    );
    assert!(message.contains("300 ms"), "{message}");
    assert!(doc["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("FEN_LOCK_TIMEOUT_MS"));

    // SIGKILL: no destructors run; the kernel releases the lock.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let after = fen(repo)
        .env("FEN_LOCK_TIMEOUT_MS", "5000")
        .args(["init"])
        .output()
        .unwrap();
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(started.elapsed() < Duration::from_millis(5000));
    assert!(!String::from_utf8_lossy(&after.stderr).contains("waiting for the lifecycle lock"));
}

#[test]
fn waiting_prints_one_notice_after_a_second() {
    let tmp = TempDir::new();
    let repo = tmp.path();
    std::fs::create_dir(repo.join(".fen")).unwrap();
    let mut holder = spawn_holder(repo);
    let waiter = fen(repo)
        .env("FEN_LOCK_TIMEOUT_MS", "1300")
        .args(["init"])
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(waiter.status.code(), Some(75));
    let stderr = String::from_utf8_lossy(&waiter.stderr);
    let notices: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("waiting for the lifecycle lock"))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr}");
    assert!(
        notices[0].contains(&format!("held by pid {}", holder.id())),
        "{stderr}"
    );
    assert!(stderr.contains("error: gave up after 1.3 s"), "{stderr}");
}

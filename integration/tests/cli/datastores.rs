//! Shared datastores through the binary (spec 30 §7, §9 scenarios 33 and 35-39, issue
//! #10): `fen datastore setup | status | sync`, the lock-and-sync flow of a method run
//! on a `filesystem` datastore, its failure modes, and concurrent runs from two
//! checkouts sharing one datastore.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::fixture::{ok, Repo};
use crate::models::{error_line, run_records, web_repo};
use crate::util::{Run, TempDir};

/// A repo with model `web` whose datastore is the filesystem directory `shared`.
fn shared_repo(shared: &Path) -> Repo {
    let repo = web_repo();
    repo.ok(&[
        "datastore",
        "setup",
        "filesystem",
        "--path",
        shared.to_str().unwrap(),
    ]);
    repo
}

/// `model method run web record --arg observed=200` with `--json`.
pub(crate) fn record(repo: &Repo, env: &[(&str, &str)]) -> Run {
    repo.fen_env(
        env,
        &[
            "--json",
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ],
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    crate::fixture::files_under(dir)
}

fn lock_files(shared: &Path) -> Vec<PathBuf> {
    files(&shared.join(".fen-locks"))
}

fn event_order(events: &Path) -> Vec<String> {
    std::fs::read_to_string(events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["model"] == "web")
        .map(|e| {
            let name = e["event"].as_str().unwrap().to_owned();
            match e["lock"].as_str() {
                Some(lock) => format!("{name}({lock})"),
                None => name,
            }
        })
        .collect()
}

fn latest(data: &Path, model: &str) -> String {
    std::fs::read_to_string(data.join(model).join("resources/verdict/current/latest"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn scenario_33_a_run_on_a_filesystem_datastore_locks_pulls_runs_pushes_and_releases_in_order() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    let yaml = repo.read(".fen/datastore.yaml");
    assert!(yaml.contains("type: filesystem"), "{yaml}");
    let events = repo.path("events.jsonl");
    let out = record(&repo, &[("FEN_EVENTS_FILE", events.to_str().unwrap())]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        event_order(&events),
        [
            "lock_acquired(model/web)",
            "sync_pull_start",
            "sync_pull_end",
            "method_start",
            "method_end",
            "sync_push_start",
            "sync_push_end",
            "lock_released(model/web)",
        ]
    );
    // The run's version, latest and record reached the shared directory.
    let remote = shared.path().join("data");
    assert_eq!(latest(&remote, "web"), "1");
    let run_id = out.json()["runId"].as_str().unwrap().to_owned();
    assert!(remote.join(format!("web/runs/{run_id}.json")).is_file());
    assert!(lock_files(shared.path()).is_empty());
    assert!(files(&repo.path(".fen/locks")).is_empty());
}

#[test]
fn scenario_35_a_held_model_lock_times_out_naming_its_pid_and_a_stale_one_is_taken_over() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    let mut holder = crate::util::fen(repo.root())
        .args([
            "model",
            "method",
            "run",
            "web",
            "spin",
            "--timeout-ms",
            "600000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = shared.path().join(".fen-locks/models/web.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&lock)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|info| info["pid"] == holder.id())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "A never took its lock"
        );
        std::thread::yield_now();
    }
    let waiter = record(&repo, &[("FEN_DATASTORE_LOCK_TIMEOUT_MS", "500")]);
    assert_eq!(waiter.code, 75, "{}", waiter.stderr);
    let error = &waiter.json()["error"];
    assert_eq!(error["code"], "datastore_lock_timeout");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", holder.id())),
        "{error}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    // A lock whose acquiredAt is an hour old is stale: the next run takes it over.
    let info = serde_json::json!({
        "holder": "someone@elsewhere", "hostname": "elsewhere", "pid": 1,
        "acquiredAt": "2000-01-01T00:00:00Z", "ttlMs": 30000,
        "nonce": "00000000-0000-4000-8000-000000000000", "fenVersion": "0.0.0"
    });
    std::fs::write(&lock, info.to_string()).unwrap();
    let out = record(&repo, &[("FEN_DATASTORE_LOCK_TIMEOUT_MS", "0")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!lock.exists());
}

#[test]
fn scenario_36_lock_release_needs_force_and_then_names_the_former_holder() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    let global = shared.path().join(".fen-locks/global.lock");
    let info = serde_json::json!({
        "holder": "ops@build-7", "hostname": "build-7", "pid": 4242,
        "acquiredAt": "2999-01-01T00:00:00Z", "ttlMs": 30000,
        "nonce": "11111111-1111-4111-8111-111111111111", "fenVersion": "0.0.0"
    });
    std::fs::write(&global, info.to_string()).unwrap();
    let refused = repo.fen(&["datastore", "lock", "release"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(global.exists());
    let status = repo.ok(&["--json", "datastore", "status"]).json();
    assert_eq!(status["type"], "filesystem");
    assert_eq!(status["health"], "ok");
    assert_eq!(status["capabilities"]["scopedSync"], true);
    assert_eq!(status["locks"][0]["key"], "global");
    let released = repo.ok(&["datastore", "lock", "release", "--force"]);
    assert!(
        released.stdout.contains("ops@build-7"),
        "{}",
        released.stdout
    );
    assert!(released.stdout.contains("pid 4242"), "{}", released.stdout);
    assert!(!global.exists());
}

/// Writes version 1 of `<model>/verdict/current` with `text` under a data root.
fn plant_version(data: &Path, model: &str, text: &str) {
    let inst = data.join(model).join("resources/verdict/current");
    let dir = inst.join("1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.json"), text).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        dir.join("meta.json"),
        format!("{{\"version\":1,\"sha256\":\"{sha}\"}}"),
    )
    .unwrap();
    std::fs::write(inst.join("latest"), "1\n").unwrap();
}

#[test]
fn scenario_37_a_conflict_in_another_model_stays_out_of_a_scoped_run_but_fails_a_full_sync() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    plant_version(&repo.path(".fen/data"), "other", "{\"ok\":true}");
    plant_version(
        &shared.path().join("data"),
        "other",
        "{\"ok\":false,\"x\":1}",
    );
    let run = record(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sync = repo.fen(&["--json", "datastore", "sync"]);
    assert_eq!(sync.code, 4, "{}", sync.stderr);
    let error = &sync.json()["error"];
    assert_eq!(error["code"], "sync_conflict");
    assert!(
        error["message"].as_str().unwrap().contains("other"),
        "{error}"
    );
    // Both sides kept, no lock left.
    let local = repo.read(".fen/data/other/resources/verdict/current/1/data.json");
    assert_eq!(local, "{\"ok\":true}");
    let remote = std::fs::read_to_string(
        shared
            .path()
            .join("data/other/resources/verdict/current/1/data.json"),
    )
    .unwrap();
    assert_eq!(remote, "{\"ok\":false,\"x\":1}");
    assert!(lock_files(shared.path()).is_empty());
}

#[test]
fn two_repos_that_both_wrote_version_1_conflict_and_keep_both_copies() {
    let shared = TempDir::new();
    let a = web_repo();
    let b = web_repo();
    ok(record(&a, &[]));
    // B's version 1 holds another verdict: the two data.json differ.
    b.ok(&[
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=500",
    ]);
    a.ok(&[
        "datastore",
        "setup",
        "filesystem",
        "--path",
        shared.path().to_str().unwrap(),
    ]);
    // B pushes its own version 1 of the same resource: a conflict, exit 4.
    let setup = b.fen(&[
        "--json",
        "datastore",
        "setup",
        "filesystem",
        "--path",
        shared.path().to_str().unwrap(),
    ]);
    assert_eq!(setup.code, 4, "{}", setup.stderr);
    assert_eq!(setup.json()["error"]["code"], "sync_conflict");
    assert!(!b.path(".fen/datastore.yaml").exists());
    assert!(b
        .path(".fen/data/web/resources/verdict/current/1/data.json")
        .is_file());
    assert!(lock_files(shared.path()).is_empty());
}

#[test]
fn scenario_38_the_second_repo_writes_version_2_and_the_remote_latest_is_2() {
    let shared = TempDir::new();
    let a = shared_repo(shared.path());
    let b = shared_repo(shared.path());
    ok(record(&a, &[]));
    let out = ok(record(&b, &[]));
    assert_eq!(out.json()["handles"][0]["version"], 2);
    assert_eq!(latest(&shared.path().join("data"), "web"), "2");
    // A sees B's version after a sync.
    a.ok(&["datastore", "sync", "--model", "web"]);
    assert_eq!(latest(&a.path(".fen/data"), "web"), "2");
}

#[test]
fn scenario_39_setup_under_a_regular_file_fails_and_leaves_the_config_alone() {
    let repo = web_repo();
    let tmp = TempDir::new();
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("sub");
    let out = repo.fen(&[
        "datastore",
        "setup",
        "filesystem",
        "--path",
        target.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let line = error_line(&out.stderr);
    assert!(line.contains("re-running"), "{line}");
    assert!(!repo.path(".fen/datastore.yaml").exists());
    let json = repo.fen(&[
        "--json",
        "datastore",
        "setup",
        "filesystem",
        "--path",
        target.to_str().unwrap(),
    ]);
    assert_eq!(json.json()["error"]["code"], "datastore_unavailable");
}

#[test]
fn a_datastore_yaml_of_an_unknown_shape_is_config_invalid() {
    let repo = web_repo();
    for text in [
        "type: filesystem\n",
        "type: filesystem\npath: relative/dir\n",
        "type: local\nbucket: x\n",
        "type: s3\n",
        "[1, 2]\n",
    ] {
        repo.write(".fen/datastore.yaml", text);
        let out = record(&repo, &[]);
        assert_eq!(out.code, 3, "{text}: {}", out.stderr);
        assert_eq!(out.json()["error"]["code"], "config_invalid", "{text}");
        assert!(run_records(&repo, "web").is_empty());
    }
}

#[test]
fn an_unreachable_remote_fails_the_run_before_it_starts_naming_model_and_datastore() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = shared_repo(&remote);
    ok(record(&repo, &[]));
    std::fs::remove_dir_all(&remote).unwrap();
    let out = record(&repo, &[]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "datastore_unavailable");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(remote.to_str().unwrap()), "{message}");
    // Nothing recreated the share, local data is kept, nothing ran.
    assert!(!remote.exists());
    assert_eq!(run_records(&repo, "web").len(), 1);
    assert_eq!(latest(&repo.path(".fen/data"), "web"), "1");
}

#[test]
fn a_remote_whose_data_cannot_be_written_keeps_the_run_locally_and_exits_6() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    // The instance directory is a regular file on the remote: the pull skips it, the
    // push cannot create the version under it (this refuses writes even as root,
    // which ignores permission bits).
    let blocked = shared.path().join("data/web/resources/verdict/current");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not a directory").unwrap();
    let out = record(&repo, &[]);
    assert_eq!(out.code, 6, "{}", out.stderr);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "datastore_push_failed");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("model \"web\""), "{message}");
    assert!(message.contains("filesystem datastore at"), "{message}");
    assert!(error["hint"]
        .as_str()
        .unwrap()
        .contains("fen datastore sync --push"));
    assert_eq!(run_records(&repo, "web").len(), 1);
    assert_eq!(latest(&repo.path(".fen/data"), "web"), "1");
    assert!(lock_files(shared.path()).is_empty());
    // Once the remote accepts writes again, the push the hint names finishes the job.
    std::fs::remove_file(&blocked).unwrap();
    let pushed = repo.ok(&["--json", "datastore", "sync", "--push"]).json();
    assert!(pushed["pushed"].as_u64().unwrap() >= 3, "{pushed}");
    assert_eq!(latest(&shared.path().join("data"), "web"), "1");
    assert!(lock_files(shared.path()).is_empty());
}

#[test]
fn eight_concurrent_runs_from_two_checkouts_allocate_every_version_once() {
    let shared = TempDir::new();
    let a = shared_repo(shared.path());
    let b = shared_repo(shared.path());
    let children: Vec<_> = (0..8)
        .map(|i| {
            let repo = if i % 2 == 0 { &a } else { &b };
            crate::util::fen(repo.root())
                .args([
                    "--json",
                    "model",
                    "method",
                    "run",
                    "web",
                    "record",
                    "--arg",
                    "observed=200",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut versions = Vec::new();
    for child in children {
        let out: Run = child.wait_with_output().unwrap().into();
        assert_eq!(out.code, 0, "{}", out.stderr);
        versions.push(out.json()["handles"][0]["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
    let remote = shared.path().join("data");
    assert_eq!(latest(&remote, "web"), "8");
    let inst = remote.join("web/resources/verdict/current");
    let dirs: BTreeSet<String> = std::fs::read_dir(&inst)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "latest")
        .collect();
    assert_eq!(dirs.len(), 8, "{dirs:?}");
    assert_eq!(files(&remote.join("web/runs")).len(), 8);
    // After a sync both checkouts hold all eight versions and records.
    for repo in [&a, &b] {
        repo.ok(&["datastore", "sync"]);
        assert_eq!(latest(&repo.path(".fen/data"), "web"), "8");
        assert_eq!(run_records(repo, "web").len(), 8);
    }
    assert!(lock_files(shared.path()).is_empty());
}

#[test]
fn sigint_while_a_full_sync_waits_for_a_model_lock_exits_130_and_leaves_no_lock() {
    let shared = TempDir::new();
    let repo = shared_repo(shared.path());
    let mut holder = crate::util::fen(repo.root())
        .args([
            "model",
            "method",
            "run",
            "web",
            "spin",
            "--timeout-ms",
            "600000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let model_lock = shared.path().join(".fen-locks/models/web.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&model_lock)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|info| info["pid"] == holder.id())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never took its lock"
        );
        std::thread::yield_now();
    }
    let events = repo.path("sync-events.jsonl");
    let sync = crate::util::fen(repo.root())
        .env("FEN_EVENTS_FILE", &events)
        .args(["datastore", "sync"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The sync announces that it waits for the model lock, then gets SIGINT.
    while !std::fs::read_to_string(&events)
        .unwrap_or_default()
        .contains("\"lock_wait\"")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never waited"
        );
        std::thread::yield_now();
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &sync.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out: Run = sync.wait_with_output().unwrap().into();
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(!shared.path().join(".fen-locks/global.lock").exists());
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn a_remote_deleted_mid_sync_keeps_the_run_locally_exits_6_and_leaves_no_lock() {
    use std::io::{BufReader, Read};
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = shared_repo(&remote);
    ok(record(&repo, &[]));
    // The next run's pull pauses once it has planned; the remote goes away right then.
    let mut child = crate::util::fen(repo.root())
        .env("FEN_TEST_FAULT", "sync:after-plan=sleep:2000")
        .args([
            "--json",
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let seen = crate::lifecycle::read_until(&mut stderr, "fen", &|line| {
        line.starts_with("fen-test-fault: sync:after-plan")
    });
    std::fs::remove_dir_all(&remote).unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(6), "{seen}{rest}{stdout}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let error = &doc["error"];
    assert_eq!(error["code"], "datastore_push_failed", "{doc}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("web"), "{message}");
    assert!(message.contains(remote.to_str().unwrap()), "{message}");
    // The run and its record stay in .fen/data; the share is not recreated; no lock.
    assert_eq!(run_records(&repo, "web").len(), 2);
    assert_eq!(latest(&repo.path(".fen/data"), "web"), "2");
    assert!(!remote.exists());
    assert!(files(&repo.path(".fen/locks")).is_empty());
}

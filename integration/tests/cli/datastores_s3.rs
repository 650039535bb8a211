//! The `s3` datastore through the binary, against a real S3-compatible server
//! (`moto_server` on 127.0.0.1, a free port, stopped when the test ends): the twins of
//! spec 30 §9 scenarios 33, 35, 37 and 38, eight concurrent runs from two checkouts,
//! and a killed lock holder. Without `moto_server` the tests say so loudly and pass,
//! except under `CI`, where they fail.

use std::collections::BTreeSet;
use std::process::Stdio;

use serde_json::Value;

use crate::fixture::{ok, Repo};
use crate::models::web_repo;
use crate::util::Run;

/// The test server with its bucket `fen-test`, or `None` (loudly) when `moto_server`
/// is not installed and `CI` is unset.
struct S3Server(xtask::s3_server::S3Server);

impl S3Server {
    fn start() -> Option<S3Server> {
        if !xtask::s3_server::available() {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server is not installed; CI must install it (pip install 'moto[server]')"
            );
            eprintln!("SKIPPED: moto_server is not installed (pip install 'moto[server]'); the s3 datastore tests did not run");
            return None;
        }
        let server = xtask::s3_server::S3Server::start().unwrap();
        server.create_bucket("fen-test").unwrap();
        Some(S3Server(server))
    }

    fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// A signed client of the test bucket (objects are private: anonymous reads are
    /// refused).
    fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("fen-test")
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    fn block<T>(work: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    }

    /// The object at `key` of the test bucket, if any.
    fn object(&self, key: &str) -> Option<String> {
        use object_store::ObjectStore;
        let client = self.client();
        S3Server::block(async move {
            let got = client.get(&key.into()).await.ok()?;
            Some(String::from_utf8(got.bytes().await.ok()?.to_vec()).unwrap())
        })
    }

    /// Writes the object at `key` of the test bucket.
    fn put(&self, key: &str, body: &[u8]) {
        use object_store::ObjectStore;
        let client = self.client();
        let body = body.to_vec();
        S3Server::block(async move { client.put(&key.into(), body.into()).await.unwrap() });
    }

    /// Every key under `prefix` of the test bucket.
    fn keys(&self, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let client = self.client();
        S3Server::block(async move {
            let listed: Vec<object_store::ObjectMeta> = client
                .list(Some(&prefix.into()))
                .try_collect()
                .await
                .unwrap();
            listed.into_iter().map(|o| o.location.to_string()).collect()
        })
    }
}

const ENV: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
];

fn env_with<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ENV.iter().copied().chain(more.iter().copied()).collect()
}

fn fen(repo: &Repo, more: &[(&str, &str)], args: &[&str]) -> Run {
    repo.fen_env(&env_with(more), args)
}

/// A repo with model `web` whose datastore is the test bucket under `prefix`.
fn s3_repo(server: &S3Server, prefix: &str) -> Repo {
    let repo = web_repo();
    ok(fen(
        &repo,
        &[],
        &[
            "datastore",
            "setup",
            "s3",
            "--bucket",
            "fen-test",
            "--prefix",
            prefix,
            "--endpoint",
            &server.endpoint(),
        ],
    ));
    repo
}

fn record(repo: &Repo, more: &[(&str, &str)]) -> Run {
    fen(
        repo,
        more,
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

fn held_locks(repo: &Repo) -> Vec<Value> {
    let out = ok(fen(repo, &[], &["--json", "datastore", "lock", "status"]));
    out.json()["locks"].as_array().cloned().unwrap_or_default()
}

#[test]
fn s3_scenario_33_a_run_locks_pulls_runs_pushes_and_releases_in_order() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = s3_repo(&server, "s33");
    let yaml = repo.read(".fen/datastore.yaml");
    assert!(
        yaml.contains("type: s3") && yaml.contains("bucket: fen-test"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("testing"),
        "credentials must never be written: {yaml}"
    );
    let events = repo.path("events.jsonl");
    let out = record(&repo, &[("FEN_EVENTS_FILE", events.to_str().unwrap())]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let order: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["model"] == "web")
        .map(|e| match e["lock"].as_str() {
            Some(lock) => format!("{}({lock})", e["event"].as_str().unwrap()),
            None => e["event"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(
        order,
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
    assert_eq!(
        server
            .object("s33/data/web/resources/verdict/current/latest")
            .unwrap()
            .trim(),
        "1"
    );
    let run_id = out.json()["runId"].as_str().unwrap().to_owned();
    assert!(server
        .object(&format!("s33/data/web/runs/{run_id}.json"))
        .is_some());
    assert!(held_locks(&repo).is_empty());
    // status names the bucket and reports it healthy.
    let status = ok(fen(&repo, &[], &["--json", "datastore", "status"])).json();
    assert_eq!(status["type"], "s3");
    assert_eq!(status["location"], "s3://fen-test/s33");
    assert_eq!(status["health"], "ok");
    assert_eq!(status["capabilities"]["scopedSync"], true);
}

#[test]
fn s3_scenario_35_a_held_lock_times_out_naming_its_pid_and_a_killed_holder_is_taken_over() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = s3_repo(&server, "s35");
    let mut holder = crate::util::fen(repo.root())
        .envs(ENV)
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
    let pid = holder.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !server
        .object("s35/.fen-locks/models/web.lock")
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|info| info["pid"] == pid)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never took its lock"
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
            .contains(&format!("pid {pid}")),
        "{error}"
    );
    // SIGKILL: no release runs. Its pid is gone on this host, so the lock is stale and
    // the next run takes it over without waiting out the ttl.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let stale = held_locks(&repo);
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0]["stale"], true, "{stale:?}");
    let out = record(&repo, &[("FEN_DATASTORE_LOCK_TIMEOUT_MS", "0")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(held_locks(&repo).is_empty());

    // A holder on another host is stale once its ttl has passed: an hour-old record.
    let info = serde_json::json!({
        "holder": "someone@elsewhere", "hostname": "elsewhere", "pid": 1,
        "acquiredAt": "2000-01-01T00:00:00Z", "ttlMs": 30000,
        "nonce": "00000000-0000-4000-8000-000000000000", "fenVersion": "0.0.0"
    });
    server.put(
        "s35/.fen-locks/models/web.lock",
        info.to_string().as_bytes(),
    );
    let out = record(&repo, &[("FEN_DATASTORE_LOCK_TIMEOUT_MS", "0")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(held_locks(&repo).is_empty());
}

fn put_version(server: &S3Server, prefix: &str, model: &str, text: &str) {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = format!("{prefix}/data/{model}/resources/verdict/current");
    server.put(&format!("{base}/1/data.json"), text.as_bytes());
    let meta = format!("{{\"version\":1,\"sha256\":\"{sha}\"}}");
    server.put(&format!("{base}/1/meta.json"), meta.as_bytes());
    server.put(&format!("{base}/latest"), b"1\n");
}

fn plant_local(repo: &Repo, model: &str, text: &str) {
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let inst = repo.path(&format!(".fen/data/{model}/resources/verdict/current"));
    std::fs::create_dir_all(inst.join("1")).unwrap();
    std::fs::write(inst.join("1/data.json"), text).unwrap();
    std::fs::write(
        inst.join("1/meta.json"),
        format!("{{\"version\":1,\"sha256\":\"{sha}\"}}"),
    )
    .unwrap();
    std::fs::write(inst.join("latest"), "1\n").unwrap();
}

#[test]
fn s3_scenario_37_a_conflict_in_another_model_stays_out_of_a_scoped_run_but_fails_a_full_sync() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = s3_repo(&server, "s37");
    plant_local(&repo, "other", "{\"ok\":true}");
    put_version(&server, "s37", "other", "{\"ok\":false,\"x\":1}");
    let run = record(&repo, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sync = fen(&repo, &[], &["--json", "datastore", "sync"]);
    assert_eq!(sync.code, 4, "{}", sync.stderr);
    let error = &sync.json()["error"];
    assert_eq!(error["code"], "sync_conflict");
    assert!(
        error["message"].as_str().unwrap().contains("other"),
        "{error}"
    );
    // Both sides kept, no lock left.
    assert_eq!(
        repo.read(".fen/data/other/resources/verdict/current/1/data.json"),
        "{\"ok\":true}"
    );
    assert_eq!(
        server
            .object("s37/data/other/resources/verdict/current/1/data.json")
            .unwrap(),
        "{\"ok\":false,\"x\":1}"
    );
    assert!(held_locks(&repo).is_empty());
}

#[test]
fn s3_scenario_38_the_second_repo_writes_version_2_and_the_remote_latest_is_2() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let a = s3_repo(&server, "s38");
    let b = s3_repo(&server, "s38");
    ok(record(&a, &[]));
    let out = ok(record(&b, &[]));
    assert_eq!(out.json()["handles"][0]["version"], 2);
    assert_eq!(
        server
            .object("s38/data/web/resources/verdict/current/latest")
            .unwrap()
            .trim(),
        "2"
    );
    ok(fen(&a, &[], &["datastore", "sync", "--model", "web"]));
    assert_eq!(
        a.read(".fen/data/web/resources/verdict/current/latest")
            .trim(),
        "2"
    );
}

#[test]
fn s3_eight_concurrent_runs_from_two_checkouts_allocate_every_version_once() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let a = s3_repo(&server, "s8");
    let b = s3_repo(&server, "s8");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let repo = if i % 2 == 0 { &a } else { &b };
            crate::util::fen(repo.root())
                .envs(ENV)
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
    assert_eq!(
        server
            .object("s8/data/web/resources/verdict/current/latest")
            .unwrap()
            .trim(),
        "8"
    );
    // Every version reached the bucket once, with its record.
    let metas: BTreeSet<String> = server
        .keys("s8/data/web")
        .into_iter()
        .filter(|k| k.ends_with("/meta.json"))
        .collect();
    assert_eq!(metas.len(), 8, "{metas:?}");
    for repo in [&a, &b] {
        ok(fen(repo, &[], &["datastore", "sync"]));
        assert_eq!(
            repo.read(".fen/data/web/resources/verdict/current/latest")
                .trim(),
            "8"
        );
    }
    assert!(held_locks(&a).is_empty());
}

#[test]
fn s3_setup_without_credentials_or_bucket_changes_nothing() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let repo = web_repo();
    let args = [
        "--json",
        "datastore",
        "setup",
        "s3",
        "--bucket",
        "no-such-bucket",
        "--endpoint",
        &server.endpoint(),
    ];
    let out = repo.fen_env(
        &[
            ("AWS_PROFILE", "nobody"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
        &args,
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.json()["error"]["code"], "datastore_unavailable");
    assert!(out.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("AWS_ACCESS_KEY_ID"));
    let out = fen(&repo, &[], &args);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("s3://no-such-bucket") && message.contains("re-running"),
        "{message}"
    );
    assert!(!repo.path(".fen/datastore.yaml").exists());
}

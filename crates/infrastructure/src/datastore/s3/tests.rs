//! Against a real S3-compatible server (`moto_server`, started per test on 127.0.0.1
//! with a free port, stopped on drop). Without the binary the tests say so loudly and
//! pass, except under `CI`, where a missing server fails them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fen_domain::ports::{
    DatastoreSyncService, DistributedLock, LockError, LockOptions, ModelName, ModelRef,
    SyncContext, SyncError, SyncOptions,
};
use fen_domain::TypeName;

use super::*;
use crate::datastore::LockIdentity;

/// A `moto_server` child on 127.0.0.1.
pub(crate) struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts a server, or `None` (with a loud message) when `moto_server` is not
    /// installed and `CI` is unset.
    pub(crate) fn start() -> Option<S3Server> {
        let found = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("moto_server").is_file())
        });
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto_server is not installed; CI must install it (pip install 'moto[server]')"
            );
            eprintln!(
                "SKIPPED: moto_server is not installed (pip install 'moto[server]'); the S3 datastore tests did not run"
            );
            return None;
        }
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let mut child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("moto_server starts");
            let stderr = child.stderr.take().expect("stderr");
            let mut lines = BufReader::new(stderr).lines();
            let mut ready = false;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.contains("Running on") {
                    ready = true;
                    break;
                }
                if line.contains("Address already in use") {
                    break;
                }
            }
            if !ready {
                let _ = child.kill();
                let _ = child.wait();
                continue; // the port was taken between our probe and its bind
            }
            // Keep draining its log so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Some(S3Server {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            });
        }
        panic!("moto_server did not start");
    }

    /// Creates a bucket (moto does not check signatures on this call).
    pub(crate) async fn bucket(&self, name: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .expect("create bucket");
        assert!(response.status().is_success(), "{}", response.status());
    }

    pub(crate) fn connect(&self, bucket: &str, prefix: &str) -> S3Bucket {
        let location =
            S3Location::new(bucket, Some(prefix), Some(&self.endpoint), None).expect("location");
        S3Bucket::connect(location, test_credentials(), Duration::from_secs(10)).expect("client")
    }
}

pub(crate) fn test_credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: "testing".to_owned(),
        secret_access_key: "testing".to_owned(),
        session_token: None,
    }
}

fn identity(pid: u32) -> LockIdentity {
    LockIdentity {
        holder: "tester@host".to_owned(),
        hostname: "some-other-host".to_owned(),
        pid,
        fen_version: "0.0.0".to_owned(),
    }
}

fn opts(key: &str, wait: u64) -> LockOptions {
    LockOptions {
        key: key.to_owned(),
        max_wait_ms: wait,
        ttl_ms: 30_000,
    }
}

#[test]
fn locations_are_checked() {
    assert!(S3Location::new("my-bucket", Some("/team/fen/"), None, None).is_ok());
    assert_eq!(
        S3Location::new("my-bucket", Some("/team/fen/"), None, None)
            .unwrap()
            .key("data/web/runs/x.json")
            .as_ref(),
        "team/fen/data/web/runs/x.json"
    );
    assert!(S3Location::new("My_Bucket", None, None, None).is_err());
    assert!(S3Location::new("ok-bucket", Some("a/../b"), None, None).is_err());
    assert!(S3Location::new("ok-bucket", None, Some("ftp://x"), None).is_err());
}

#[test]
fn credentials_come_from_the_environment_or_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[team]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n",
    )
    .unwrap();
    let file_text = file.to_string_lossy().into_owned();
    let env = |vars: Vec<(&'static str, String)>| {
        let map: BTreeMap<&str, String> = vars.into_iter().collect();
        move |name: &str| map.get(name).cloned()
    };
    let from_vars = S3Credentials::from_environment(&env(vec![
        ("AWS_ACCESS_KEY_ID", "X".into()),
        ("AWS_SECRET_ACCESS_KEY", "Y".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", file_text.clone()),
    ]))
    .unwrap();
    assert_eq!(from_vars.access_key_id, "X");
    let profile = S3Credentials::from_environment(&env(vec![
        ("AWS_PROFILE", "team".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", file_text.clone()),
    ]))
    .unwrap();
    assert_eq!(
        (
            profile.access_key_id.as_str(),
            profile.session_token.as_deref()
        ),
        ("C", Some("E"))
    );
    let missing = S3Credentials::from_environment(&env(vec![
        ("AWS_PROFILE", "nobody".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", file_text),
    ]))
    .unwrap_err();
    assert!(missing.contains("[nobody]"), "{missing}");
    assert!(!format!("{profile:?}").contains('D'));
}

#[tokio::test]
async fn verify_accepts_a_store_with_conditional_writes() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("verify").await;
    server.connect("verify", "fen").verify().await.unwrap();
    // A bucket that does not exist fails with a message naming it.
    let error = server.connect("absent", "").verify().await.unwrap_err();
    assert!(error.contains("s3://absent"), "{error}");
}

#[tokio::test]
async fn locks_exclude_time_out_and_take_over_stale_holders() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("locks").await;
    let a = S3DistributedLock::new(server.connect("locks", "p"), identity(1));
    let b = S3DistributedLock::new(server.connect("locks", "p"), identity(2));
    let held = a.acquire(&opts("model/web", 0)).await.unwrap();
    let seen = b.inspect("model/web").await.unwrap().unwrap();
    assert_eq!(seen.info.nonce, held.info.nonce);
    assert!(!seen.stale);
    match b.acquire(&opts("model/web", 200)).await {
        Err(LockError::Timeout {
            holder: Some(h), ..
        }) => assert_eq!(h.info.pid, 1),
        other => panic!("{other:?}"),
    }
    // Another model is independent.
    let other = b.acquire(&opts("model/db", 0)).await.unwrap();
    let keys: Vec<String> = a.list().await.unwrap().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, ["model/db", "model/web"]);
    // A wrong nonce releases nothing; release frees the key.
    assert!(!b.force_release("model/web", "not-it").await.unwrap());
    held.release().unwrap();
    other.release().unwrap();
    assert!(a.inspect("model/web").await.unwrap().is_none());
    assert!(a.list().await.unwrap().is_empty());
    let again = b.acquire(&opts("model/web", 0)).await.unwrap();
    // Force release by the observed nonce, as `fen datastore lock release --force`.
    assert!(a
        .force_release("model/web", &again.info.nonce)
        .await
        .unwrap());
    assert!(again.is_lost() || a.inspect("model/web").await.unwrap().is_none());
    drop(again);

    // A holder an hour old is stale: the next acquire replaces exactly that record.
    let stale = fen_domain::ports::LockInfo {
        holder: "gone@elsewhere".into(),
        hostname: "elsewhere".into(),
        pid: 7,
        acquired_at: "2026-01-01T00:00:00Z".into(),
        ttl_ms: 30_000,
        nonce: "old".into(),
        fen_version: "0".into(),
    };
    let bucket = server.connect("locks", "p");
    bucket
        .store
        .put(
            &bucket.location.key(".fen-locks/models/web.lock"),
            serde_json::to_vec(&stale).unwrap().into(),
        )
        .await
        .unwrap();
    assert!(b.inspect("model/web").await.unwrap().unwrap().stale);
    let took = b.acquire(&opts("model/web", 0)).await.unwrap();
    assert_eq!(took.info.pid, 2);
    // The drain of structural work passes once the model lock is gone.
    took.release().unwrap();
    b.drain_models(0).await.unwrap();
}

#[tokio::test]
async fn a_replaced_record_is_a_lost_lock() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("lost").await;
    let lock = S3DistributedLock::new(server.connect("lost", ""), identity(3));
    let held = lock
        .acquire(&LockOptions {
            key: "global".into(),
            max_wait_ms: 0,
            ttl_ms: 60,
        })
        .await
        .unwrap();
    // Someone else's record replaces ours (what a takeover after a stall does).
    let bucket = server.connect("lost", "");
    let mut theirs = held.info.clone();
    theirs.nonce = "theirs".into();
    bucket
        .store
        .put(
            &bucket.location.key(".fen-locks/global.lock"),
            serde_json::to_vec(&theirs).unwrap().into(),
        )
        .await
        .unwrap();
    // The heartbeat (every 20 ms here) finds out; wait on the flag, not on a clock.
    let loss = held.loss();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !loss.is_lost() {
        assert!(
            std::time::Instant::now() < deadline,
            "the loss was never noticed"
        );
        tokio::task::yield_now().await;
        std::thread::yield_now();
    }
    // Releasing a lost lock leaves the new holder's record alone.
    held.release().unwrap();
    assert_eq!(
        lock.inspect("global").await.unwrap().unwrap().info.nonce,
        "theirs"
    );
}

fn write_version(data: &Path, model: &str, instance: &str, version: u64, body: &str) {
    use sha2::Digest;
    let dir = data
        .join(model)
        .join("resources/verdict")
        .join(instance)
        .join(version.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.json"), body).unwrap();
    let sha = crate::random::hex(&sha2::Sha256::digest(body.as_bytes()));
    std::fs::write(
        dir.join("meta.json"),
        format!(
            r#"{{"version":{version},"size":{},"sha256":"{sha}"}}"#,
            body.len()
        ),
    )
    .unwrap();
    std::fs::write(dir.parent().unwrap().join("latest"), format!("{version}\n")).unwrap();
    let runs = data.join(model).join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(
        runs.join(format!("run-{version}.json")),
        format!("{{\"v\":{version}}}"),
    )
    .unwrap();
}

fn scoped(models: &[&str]) -> Option<SyncOptions> {
    SyncContext::new(
        models
            .iter()
            .map(|m| ModelRef {
                name: ModelName::parse(m).unwrap(),
                model_type: TypeName::parse("@t/m").unwrap(),
            })
            .collect(),
    )
    .map(|context| SyncOptions { context })
}

#[tokio::test]
async fn push_then_pull_moves_versions_runs_and_latest() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("sync").await;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    write_version(a.path(), "web", "current", 1, r#"{"ok":true}"#);
    write_version(a.path(), "web", "current", 2, r#"{"ok":false}"#);
    let sa = S3SyncService::new(
        a.path().into(),
        server.connect("sync", "team"),
        Duration::from_secs(30),
    );
    let sb = S3SyncService::new(
        b.path().into(),
        server.connect("sync", "team"),
        Duration::from_secs(30),
    );
    assert!(sa.capabilities().await.unwrap().scoped_sync);
    let pushed = sa.push_changed(scoped(&["web"])).await.unwrap();
    // 2 versions × 2 files, 2 runs, 1 latest.
    assert_eq!(pushed.files_transferred, Some(7));
    // Nothing left to push.
    assert_eq!(
        sa.push_changed(None).await.unwrap().files_transferred,
        Some(0)
    );
    let pulled = sb.pull_changed(None).await.unwrap();
    assert_eq!(pulled.files_transferred, Some(7));
    let latest = b.path().join("web/resources/verdict/current/latest");
    assert_eq!(std::fs::read_to_string(&latest).unwrap().trim(), "2");
    assert_eq!(
        std::fs::read(b.path().join("web/resources/verdict/current/1/data.json")).unwrap(),
        br#"{"ok":true}"#
    );
    // B writes version 3 and pushes; A pulls and its latest rises by maximum.
    write_version(b.path(), "web", "current", 3, r#"{"ok":1}"#);
    sb.push_changed(scoped(&["web"])).await.unwrap();
    sa.pull_changed(scoped(&["web"])).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(a.path().join("web/resources/verdict/current/latest"))
            .unwrap()
            .trim(),
        "3"
    );
    // No temp entries were left behind.
    let mut left = Vec::new();
    for root in [a.path(), b.path()] {
        for (rel, _) in walk_all(root) {
            if rel.contains(".fen-tmp-") {
                left.push(rel);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
}

fn walk_all(root: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push((path.to_string_lossy().into_owned(), 0));
        }
    }
    out
}

#[tokio::test]
async fn conflicts_keep_both_sides_and_scoped_calls_ignore_other_models() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("conflict").await;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // Both repos wrote version 1 of `other` before sharing the bucket.
    write_version(a.path(), "other", "current", 1, r#"{"from":"a"}"#);
    write_version(b.path(), "other", "current", 1, r#"{"from":"bbbb"}"#);
    write_version(b.path(), "web", "current", 1, r#"{"w":1}"#);
    let sa = S3SyncService::new(
        a.path().into(),
        server.connect("conflict", ""),
        Duration::from_secs(30),
    );
    let sb = S3SyncService::new(
        b.path().into(),
        server.connect("conflict", ""),
        Duration::from_secs(30),
    );
    sa.push_changed(None).await.unwrap();
    // A scoped push of `web` never looks at `other`.
    sb.push_changed(scoped(&["web"])).await.unwrap();
    sb.pull_changed(scoped(&["web"])).await.unwrap();
    // A full sync reports the conflict, naming `other`, and keeps both sides.
    match sb.push_changed(None).await {
        Err(SyncError::SyncConflict { path }) => assert!(path.contains("/data/other/"), "{path}"),
        other => panic!("{other:?}"),
    }
    match sb.pull_changed(None).await {
        Err(SyncError::SyncConflict { path }) => assert!(path.contains("/data/other/"), "{path}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read(b.path().join("other/resources/verdict/current/1/data.json")).unwrap(),
        br#"{"from":"bbbb"}"#
    );
    let remote = server.connect("conflict", "");
    let got = remote
        .store
        .get(
            &remote
                .location
                .key("data/other/resources/verdict/current/1/data.json"),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], br#"{"from":"a"}"#);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable() {
    // A port nobody listens on: bound, read, closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let location = S3Location::new(
        "bucket",
        None,
        Some(&format!("http://127.0.0.1:{port}")),
        None,
    )
    .unwrap();
    let bucket = S3Bucket::connect(location, test_credentials(), Duration::from_secs(2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sync = S3SyncService::new(dir.path().into(), bucket.clone(), Duration::from_secs(60));
    match sync.pull_changed(None).await {
        Err(SyncError::Unavailable(message)) => {
            assert!(message.contains("s3://bucket"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let lock = S3DistributedLock::new(bucket, identity(1));
    assert!(matches!(
        lock.acquire(&opts("global", 0)).await,
        Err(LockError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_file_over_the_multipart_threshold_goes_up_in_parts_and_comes_back_whole() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.bucket("large").await;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let runs = a.path().join("web/runs");
    std::fs::create_dir_all(&runs).unwrap();
    // 17 MiB of varied bytes: over the 16 MiB threshold, so in parts.
    let big: Vec<u8> = (0..17 * 1024 * 1024_u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(runs.join("big.json"), &big).unwrap();
    let sa = S3SyncService::new(
        a.path().into(),
        server.connect("large", ""),
        Duration::from_secs(120),
    );
    let sb = S3SyncService::new(
        b.path().into(),
        server.connect("large", ""),
        Duration::from_secs(120),
    );
    assert_eq!(
        sa.push_changed(None).await.unwrap().files_transferred,
        Some(1)
    );
    // Present with the same size: nothing to do, and no second upload.
    assert_eq!(
        sa.push_changed(None).await.unwrap().files_transferred,
        Some(0)
    );
    let head = server
        .connect("large", "")
        .store
        .head(&object_store::path::Path::from("data/web/runs/big.json"))
        .await
        .unwrap();
    assert_eq!(head.size, big.len() as u64);
    // A multipart ETag is not an MD5 of the bytes: it carries the part count.
    assert!(
        head.e_tag.as_deref().is_some_and(|t| t.contains('-')),
        "{head:?}"
    );
    assert_eq!(
        sb.pull_changed(None).await.unwrap().files_transferred,
        Some(1)
    );
    assert!(std::fs::read(b.path().join("web/runs/big.json")).unwrap() == big);
}

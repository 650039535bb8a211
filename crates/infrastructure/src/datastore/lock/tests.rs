//! Tests of the lock file protocol: create-new, release, stale takeover, timeout,
//! force release by nonce, heartbeat loss.

use super::*;

fn identity() -> LockIdentity {
    LockIdentity {
        holder: "tester@here".to_owned(),
        hostname: "here".to_owned(),
        pid: std::process::id(),
        fen_version: "0.0.0".to_owned(),
    }
}

fn opts(key: &str, max_wait_ms: u64) -> LockOptions {
    LockOptions {
        key: key.to_owned(),
        max_wait_ms,
        ttl_ms: 30_000,
    }
}

fn lock(dir: &Path) -> FileDistributedLock {
    FileDistributedLock::new(dir.join("locks"), identity())
}

#[tokio::test]
async fn acquire_writes_a_complete_record_and_release_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    let guard = locks
        .acquire(&opts("model/web", 0))
        .await
        .expect("acquired");
    let path = dir.path().join("locks/models/web.lock");
    let info: LockInfo =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("lock file")).expect("json");
    assert_eq!(info, guard.info);
    assert_eq!(info.pid, std::process::id());
    assert_eq!(info.ttl_ms, 30_000);
    let listed = locks.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "model/web");
    assert!(!listed[0].stale);
    guard.release().expect("released");
    assert!(!path.exists());
    // No temp file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("locks/models"))
        .expect("dir")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn dropping_the_guard_releases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    drop(locks.acquire(&opts("global", 0)).await.expect("acquired"));
    assert!(locks.inspect("global").await.expect("inspect").is_none());
}

#[tokio::test]
async fn a_held_lock_times_out_with_a_small_budget_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    let held = locks
        .acquire(&opts("model/web", 0))
        .await
        .expect("acquired");
    let error = locks
        .acquire(&opts("model/web", 120))
        .await
        .expect_err("held");
    match &error {
        LockError::Timeout { key, holder, .. } => {
            assert_eq!(key, "model/web");
            let holder = holder.as_ref().expect("holder");
            assert_eq!(holder.info.nonce, held.info.nonce);
            assert_eq!(holder.info.pid, std::process::id());
        }
        other => panic!("{other:?}"),
    }
    assert!(error
        .to_string()
        .contains(&format!("pid {}", std::process::id())));
    // The holder's file is untouched.
    let state = locks
        .inspect("model/web")
        .await
        .expect("inspect")
        .expect("held");
    assert_eq!(state.info.nonce, held.info.nonce);
}

fn plant(dir: &Path, key_file: &str, info: &LockInfo) {
    let path = dir.join("locks").join(key_file);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_string(info).expect("json")).expect("write");
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_without_waiting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = LockInfo {
        holder: "other@elsewhere".to_owned(),
        hostname: "elsewhere".to_owned(),
        pid: 1,
        acquired_at: rfc3339(SystemTime::now() - Duration::from_secs(3600)),
        ttl_ms: 30_000,
        nonce: "old-nonce".to_owned(),
        fen_version: "0.0.0".to_owned(),
    };
    plant(dir.path(), "models/web.lock", &old);
    let locks = lock(dir.path());
    let state = locks
        .inspect("model/web")
        .await
        .expect("inspect")
        .expect("held");
    assert!(state.stale);
    assert!(state.age_ms >= 3_600_000);
    // A zero budget: only a takeover can succeed.
    let guard = locks
        .acquire(&opts("model/web", 0))
        .await
        .expect("took over");
    assert_ne!(guard.info.nonce, "old-nonce");
}

#[tokio::test]
async fn a_lock_of_a_dead_local_process_is_stale() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = LockInfo {
        holder: "tester@here".to_owned(),
        hostname: "here".to_owned(),
        pid: u32::MAX - 1,
        acquired_at: rfc3339(SystemTime::now()),
        ttl_ms: 30_000,
        nonce: "dead".to_owned(),
        fen_version: "0.0.0".to_owned(),
    };
    plant(dir.path(), "global.lock", &dead);
    let locks = lock(dir.path());
    if cfg!(target_os = "linux") {
        assert!(
            locks
                .inspect("global")
                .await
                .expect("inspect")
                .expect("held")
                .stale
        );
        locks.acquire(&opts("global", 0)).await.expect("took over");
    }
}

#[tokio::test]
async fn force_release_compares_the_nonce() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    let guard = locks.acquire(&opts("model/a", 0)).await.expect("acquired");
    assert!(!locks.force_release("model/a", "not-it").await.expect("ok"));
    assert!(locks.inspect("model/a").await.expect("inspect").is_some());
    assert!(locks
        .force_release("model/a", &guard.info.nonce)
        .await
        .expect("ok"));
    assert!(locks.inspect("model/a").await.expect("inspect").is_none());
    // Releasing a lock that is gone is fine (idempotent).
    guard.release().expect("idempotent");
}

#[tokio::test]
async fn a_released_lock_of_someone_else_is_not_deleted_by_our_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    let guard = locks.acquire(&opts("model/a", 0)).await.expect("acquired");
    // Someone force-releases and takes it.
    assert!(locks
        .force_release("model/a", &guard.info.nonce)
        .await
        .expect("ok"));
    let theirs = locks.acquire(&opts("model/a", 0)).await.expect("acquired");
    guard.release().expect("release");
    let state = locks
        .inspect("model/a")
        .await
        .expect("inspect")
        .expect("still held");
    assert_eq!(state.info.nonce, theirs.info.nonce);
}

#[tokio::test]
async fn the_heartbeat_notices_a_lost_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    let guard = locks
        .acquire(&LockOptions {
            key: "model/a".to_owned(),
            max_wait_ms: 0,
            ttl_ms: 30,
        })
        .await
        .expect("acquired");
    assert!(locks
        .force_release("model/a", &guard.info.nonce)
        .await
        .expect("ok"));
    let _theirs = locks.acquire(&opts("model/a", 0)).await.expect("acquired");
    // The heartbeat runs every 10 ms; wait for its verdict without a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guard.is_lost() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(guard.is_lost());
}

#[tokio::test]
async fn bad_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    assert!(locks.acquire(&opts("model/../x", 0)).await.is_err());
    assert!(locks.acquire(&opts("other", 0)).await.is_err());
}

#[tokio::test]
async fn drain_returns_at_once_when_free_and_times_out_while_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    locks.drain("global", 0).await.expect("free");
    let held = locks.acquire(&opts("global", 0)).await.expect("acquired");
    let error = locks.drain("global", 50).await.expect_err("held");
    assert!(matches!(error, LockError::Timeout { .. }), "{error:?}");
    // Draining takes nothing: the holder still holds it.
    assert_eq!(
        locks
            .inspect("global")
            .await
            .expect("inspect")
            .expect("held")
            .info
            .nonce,
        held.info.nonce
    );
}

#[tokio::test]
async fn drain_is_bounded_by_twice_the_observed_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let locks = lock(dir.path());
    // A live holder (this process) that keeps its lock fresh: never stale.
    plant(
        dir.path(),
        "global.lock",
        &LockInfo {
            holder: "other@here".to_owned(),
            hostname: "here".to_owned(),
            pid: std::process::id(),
            acquired_at: "2999-01-01T00:00:00Z".to_owned(),
            ttl_ms: 40,
            nonce: "theirs".to_owned(),
            fen_version: "0.0.0".to_owned(),
        },
    );
    // Without the bound this waits (practically) forever.
    match locks.drain("global", u64::MAX).await {
        Err(LockError::Timeout { waited_ms, .. }) => assert!(waited_ms >= 80, "{waited_ms}"),
        other => panic!("{other:?}"),
    }
}

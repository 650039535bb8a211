//! Tests of the built-in sync: copy what is missing with its sha256 checked, merge
//! `latest` by maximum, scoped calls look only at their models, conflicts keep both
//! sides.

use super::*;
use fen_domain::ports::{ModelRef, SyncContext};
use fen_domain::TypeName;

struct Sides {
    _dir: tempfile::TempDir,
    local: PathBuf,
    remote: PathBuf,
    service: FilesystemSyncService,
}

fn sides() -> Sides {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local");
    let remote = dir.path().join("remote");
    std::fs::create_dir_all(&local).expect("local");
    std::fs::create_dir_all(remote.join("data")).expect("remote");
    let service =
        FilesystemSyncService::new(local.clone(), remote.clone(), Duration::from_secs(60));
    Sides {
        _dir: dir,
        local,
        remote,
        service,
    }
}

/// Writes version `version` of `<model>/verdict/current` holding `text`, and `latest`.
fn write_version(data: &Path, model: &str, version: u64, text: &str) {
    let inst = data.join(model).join("resources/verdict/current");
    let dir = inst.join(version.to_string());
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("data.json"), text).expect("data");
    let sha = crate::random::hex(&Sha256::digest(text.as_bytes()));
    std::fs::write(
        dir.join("meta.json"),
        format!("{{\"version\":{version},\"sha256\":\"{sha}\"}}"),
    )
    .expect("meta");
    std::fs::write(inst.join("latest"), format!("{version}\n")).expect("latest");
}

fn scoped(model: &str) -> Option<SyncOptions> {
    Some(SyncOptions {
        context: SyncContext::new(vec![ModelRef {
            name: ModelName::parse(model).expect("name"),
            model_type: TypeName::parse("@acme/net/endpoint").expect("type"),
        }])
        .expect("context"),
    })
}

fn latest(data: &Path, model: &str) -> String {
    std::fs::read_to_string(data.join(model).join("resources/verdict/current/latest"))
        .expect("latest")
}

#[tokio::test]
async fn push_then_pull_copies_versions_and_merges_latest_by_maximum() {
    let s = sides();
    write_version(&s.local, "web", 1, "{\"ok\":1}");
    write_version(&s.local, "web", 2, "{\"ok\":2}");
    let pushed = s.service.push_changed(None).await.expect("push");
    assert_eq!(pushed.files_transferred, Some(5));
    assert_eq!(latest(&s.remote.join("data"), "web"), "2\n");

    // The remote moves on to version 3; a pull brings it and raises latest.
    write_version(&s.remote.join("data"), "web", 3, "{\"ok\":3}");
    let pulled = s.service.pull_changed(scoped("web")).await.expect("pull");
    assert_eq!(pulled.files_transferred, Some(3));
    assert_eq!(latest(&s.local, "web"), "3\n");
    // Unchanged: nothing moves.
    let again = s.service.pull_changed(scoped("web")).await.expect("pull");
    assert_eq!(again.files_transferred, Some(0));
    // A lower remote latest never lowers the local one.
    std::fs::write(
        s.remote.join("data/web/resources/verdict/current/latest"),
        "1\n",
    )
    .expect("latest");
    s.service.pull_changed(None).await.expect("pull");
    assert_eq!(latest(&s.local, "web"), "3\n");
}

#[tokio::test]
async fn a_scoped_call_ignores_other_models_while_a_full_one_reports_their_conflict() {
    let s = sides();
    write_version(&s.local, "other", 1, "{\"a\":1}");
    write_version(&s.remote.join("data"), "other", 1, "{\"a\":22}");
    write_version(&s.remote.join("data"), "web", 1, "{}");
    s.service.pull_changed(scoped("web")).await.expect("scoped");
    assert_eq!(latest(&s.local, "web"), "1\n");
    let error = s.service.pull_changed(None).await.expect_err("conflict");
    let SyncError::SyncConflict { path } = error else {
        panic!("{error:?}")
    };
    assert!(path.contains("other"), "{path}");
    // Both sides kept.
    let local = s.local.join("other/resources/verdict/current/1/data.json");
    assert_eq!(std::fs::read_to_string(local).expect("kept"), "{\"a\":1}");
}

#[tokio::test]
async fn a_corrupt_remote_version_is_not_copied() {
    let s = sides();
    write_version(&s.remote.join("data"), "web", 1, "{}");
    std::fs::write(
        s.remote
            .join("data/web/resources/verdict/current/1/data.json"),
        "{\"x\":0}",
    )
    .expect("tamper");
    let error = s.service.pull_changed(None).await.expect_err("mismatch");
    assert!(error.to_string().contains("does not match"), "{error}");
    assert!(!s.local.join("web/resources/verdict/current/1").exists());
    assert!(!s
        .local
        .join("web/resources/verdict/current/latest")
        .exists());
}

#[tokio::test]
async fn a_missing_remote_is_unavailable_and_touches_nothing() {
    let s = sides();
    write_version(&s.local, "web", 1, "{}");
    std::fs::remove_dir_all(&s.remote).expect("gone");
    let error = s.service.push_changed(None).await.expect_err("unavailable");
    assert!(matches!(error, SyncError::Unavailable(_)), "{error:?}");
    assert!(!s.remote.exists());
}

#[test]
fn verify_remote_fails_under_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f");
    std::fs::write(&file, "x").expect("file");
    assert!(verify_remote(&file.join("sub")).is_err());
    verify_remote(&dir.path().join("ok")).expect("verified");
    assert!(dir.path().join("ok/.fen-locks").is_dir());
}

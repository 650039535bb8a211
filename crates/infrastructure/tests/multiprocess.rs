//! Cross-process catalog writers (issue #3): N processes each take the lifecycle lock and
//! save their own aggregates, upgrading them twice on the way; the final catalog equals
//! the serial result and no process fails with busy.
//!
//! The test re-executes its own binary as the child processes (`FEN_MP_ROLE=child`), so
//! no extra binary is needed. Children start together on a shared "go" file instead of
//! sleeping.

#![allow(clippy::unwrap_used)] // a test binary: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fen_domain::ports::{ExtensionRepository, LifecycleLock};
use fen_domain::{
    BundleLocation, CanonicalPath, Extension, ExtensionId, ExtensionName, ExtensionOrigin,
    ExtensionVersion, Kind, Observation, Origin, PathPolicy, RepoRoot, SourceFingerprint,
    SourceLocation, TypeMeta, TypeName,
};
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener};
use fen_infrastructure::locking::FileLifecycleLock;

const N_PROCESSES: usize = 6;
const TEST_NAME: &str = "concurrent_writers_equal_the_serial_result";

fn version(micro: u64) -> ExtensionVersion {
    ExtensionVersion::parse(&format!("2026.01.01.{micro}")).unwrap()
}

/// The aggregate process `p` saves at step `step`: `@mp/p<p>@2026.01.01.<step>` with
/// three model types (the last step ships two).
fn aggregate(root: &RepoRoot, p: usize, step: u64) -> Extension {
    let name = ExtensionName::parse(&format!("@mp/p{p}")).unwrap();
    let ext_root = root
        .canonical
        .join(".fen/pulled-extensions")
        .join(&name.directory_key());
    let mut ext = Extension::new(
        ExtensionId::new(name, version(step)),
        ExtensionOrigin::Pulled,
        ext_root.clone(),
        vec![],
    )
    .unwrap();
    let n_types = if step == 2 { 2 } else { 3 };
    for t in 0..n_types {
        let path = ext_root.join(&format!("models/t{t}.ts"));
        let fingerprint = SourceFingerprint::Content([step as u8 * 16 + t as u8; 32]);
        let obs = Observation {
            location: SourceLocation::from_canonical(path.clone(), ext_root.clone()),
            kind: Kind::Model,
            origin: Origin::Pulled,
            fingerprint,
            mtime: None,
        };
        let bundle = BundleLocation {
            path: root.canonical.join(&format!(
                ".fen/bundles/pulled/@mp/p{p}/models/t{t}.ts.bundle.json"
            )),
            fingerprint,
        };
        let type_name = TypeName::parse(&format!("@mp/p{p}/t{t}")).unwrap();
        ext = ext.observe_fresh_source(&obs, type_name, bundle).unwrap();
        ext = ext
            .record_indexed(
                &path,
                TypeMeta {
                    declared_version: version(step).to_string(),
                    ..TypeMeta::default()
                },
            )
            .unwrap();
    }
    ext
}

/// One writer: three saves, each under the lifecycle lock; steps 1 and 2 upgrade.
async fn write_all(root: &RepoRoot, p: usize) {
    let lock: Arc<dyn LifecycleLock> = Arc::new(FileLifecycleLock::for_repo(
        &root.native,
        Duration::from_secs(60),
    ));
    let ctx = CatalogContext::for_repo(root, Vec::new(), PathPolicy::host());
    let repo = CatalogOpener::open(ctx, Arc::clone(&lock))
        .await
        .expect("open")
        .repository;
    for step in 0..3 {
        let _guard = lock.acquire("multiprocess test").await.expect("lock");
        // Re-load under the lock: never save an aggregate loaded before it was taken.
        let loaded = repo.load_all().await.expect("load");
        let mut batch: Vec<Extension> = loaded
            .extensions
            .iter()
            .filter(|e| e.id().name.as_str() == format!("@mp/p{p}"))
            .map(Extension::tombstone_all)
            .collect();
        batch.push(aggregate(root, p, step));
        repo.save_all(&batch)
            .await
            .expect("save without busy or conflict");
    }
}

fn repo_root(dir: &Path) -> RepoRoot {
    std::fs::create_dir_all(dir.join(".fen")).unwrap();
    RepoRoot::new(dir.to_path_buf(), PathPolicy::host()).unwrap()
}

async fn snapshot(root: &RepoRoot, other_root: &CanonicalPath) -> Vec<String> {
    let ctx = CatalogContext::for_repo(root, Vec::new(), PathPolicy::host());
    let repo = CatalogOpener::open_read_only(ctx)
        .await
        .expect("read-only open");
    let loaded = repo.load_all().await.expect("load");
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    let mut lines = Vec::new();
    for ext in &loaded.extensions {
        for source in ext.sources() {
            let rel = source.path().relative_to(&root.canonical).unwrap_or("?");
            lines.push(format!(
                "{} {rel} {:?} {:?}",
                ext.id(),
                source.state(),
                source.fingerprint()
            ));
        }
    }
    // The serial repo lives elsewhere: compare repo-relative text only.
    lines
        .iter()
        .map(|l| {
            l.replace(root.canonical.as_str(), "<root>")
                .replace(other_root.as_str(), "<root>")
        })
        .collect()
}

#[test]
fn concurrent_writers_equal_the_serial_result() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if std::env::var("FEN_MP_ROLE").as_deref() == Ok("child") {
        let dir = PathBuf::from(std::env::var("FEN_MP_DIR").unwrap());
        let p: usize = std::env::var("FEN_MP_INDEX").unwrap().parse().unwrap();
        let go = dir.join("go");
        while !go.exists() {
            std::thread::yield_now();
        }
        runtime.block_on(write_all(&repo_root(&dir), p));
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let concurrent = repo_root(&tmp.path().join("concurrent"));
    let serial = repo_root(&tmp.path().join("serial"));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..N_PROCESSES)
        .map(|p| {
            Command::new(&exe)
                .args(["--exact", TEST_NAME, "--test-threads=1"])
                .stdout(std::process::Stdio::null())
                .env("FEN_MP_ROLE", "child")
                .env("FEN_MP_DIR", &concurrent.native)
                .env("FEN_MP_INDEX", p.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(concurrent.native.join("go"), "").unwrap();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a writer failed: {status}");
    }

    runtime.block_on(async {
        for p in 0..N_PROCESSES {
            write_all(&serial, p).await;
        }
        let got = snapshot(&concurrent, &serial.canonical).await;
        let want = snapshot(&serial, &concurrent.canonical).await;
        assert_eq!(
            got.len(),
            N_PROCESSES * 2,
            "each writer ends at v2 with two types"
        );
        assert_eq!(got, want);
    });
}

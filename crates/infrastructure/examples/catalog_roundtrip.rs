//! A real catalog in a temp directory: open (create and migrate) the SQLite file,
//! save aggregates through `ExtensionRepository` while holding the lifecycle lock, load
//! them back, and list types through `TypeIndex`, as fen-lifecycle's services do.
//!
//! Run it with `cargo run -p fen-infrastructure --example catalog_roundtrip`.

use std::sync::Arc;
use std::time::Duration;

use fen_domain::ports::{ExtensionRepository, LifecycleLock, TypeIndex};
use fen_domain::{
    BundleLocation, Change, Extension, ExtensionId, ExtensionName, ExtensionOrigin,
    ExtensionVersion, Kind, Observation, Origin, PathPolicy, RepoRoot, SourceFingerprint,
    SourceLocation, TypeMeta, TypeName,
};
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener};
use fen_infrastructure::locking::FileLifecycleLock;

type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // A repo is a directory with `.fen/`; its catalog is `.fen/_extension_catalog.db`.
    let dir = tempfile::tempdir()?;
    let native = std::fs::canonicalize(dir.path())?;
    std::fs::create_dir_all(native.join(".fen"))?;
    let policy = PathPolicy::host();
    let root = RepoRoot::new(native.clone(), policy)?;

    // Opening creates and migrates the file, under the lifecycle lock.
    let lock: Arc<dyn LifecycleLock> =
        Arc::new(FileLifecycleLock::for_repo(&native, Duration::from_secs(5)));
    let opened = CatalogOpener::open(
        CatalogContext::for_repo(&root, vec![], policy),
        lock.clone(),
    )
    .await?;
    println!(
        "catalog at {} (created: {})",
        native.join(".fen/_extension_catalog.db").display(),
        opened.report.created
    );
    let repo = opened.repository;

    // The local aggregate with one model type, and a pulled extension with two.
    let bundles = root.canonical.join(".fen/bundles");
    let local = Extension::local(&root.canonical).apply([indexed(
        &root.canonical,
        &bundles,
        "extensions/models/endpoint.ts",
        Origin::Local,
        "@acme/net/endpoint",
        1,
    )?])?;
    let pulled_root = root.canonical.join(".fen/pulled-extensions/@acme/aws");
    let pulled = Extension::new(
        ExtensionId::new(
            ExtensionName::parse("@acme/aws")?,
            ExtensionVersion::parse("2026.01.01.1")?,
        ),
        ExtensionOrigin::Pulled,
        pulled_root.clone(),
        vec![],
    )?
    .apply([
        indexed(
            &pulled_root,
            &bundles,
            "models/vpc.ts",
            Origin::Pulled,
            "@acme/aws/vpc",
            2,
        )?,
        indexed(
            &pulled_root,
            &bundles,
            "models/subnet.ts",
            Origin::Pulled,
            "@acme/aws/subnet",
            3,
        )?,
    ])?;

    // Every catalog write holds the lifecycle lock; the save is one transaction.
    let guard = lock.acquire("catalog_roundtrip example").await?;
    let report = repo.save_all(&[local, pulled]).await?;
    drop(guard);
    println!("saved: {} rows inserted", report.inserted);

    // Reads take no lock.
    let loaded = repo.load_all().await?;
    for ext in &loaded.extensions {
        println!("{} ({} sources)", ext.id(), ext.sources().len());
    }
    for entry in repo.list_types(Kind::Model).await? {
        println!(
            "  {}  {}  {}",
            entry.type_name, entry.meta.declared_version, entry.source_path
        );
    }
    let found = repo
        .find_type(Kind::Model, &TypeName::parse("@acme/aws/vpc")?)
        .await?;
    println!(
        "@acme/aws/vpc is provided by {}",
        found.map(|e| e.source_path.to_string()).unwrap_or_default()
    );
    repo.close().await;
    Ok(())
}

/// The transition of a source that was built and validated (no real bundle is written:
/// the catalog records where it would be).
fn indexed(
    ext_root: &fen_domain::CanonicalPath,
    bundles: &fen_domain::CanonicalPath,
    relative: &str,
    origin: Origin,
    ty: &str,
    seed: u8,
) -> Result<Change, Error> {
    let path = ext_root.join(relative);
    let fingerprint = SourceFingerprint::Content([seed; 32]);
    let obs = Observation {
        location: SourceLocation::from_canonical(path.clone(), ext_root.clone()),
        kind: Kind::Model,
        origin,
        fingerprint,
        mtime: None,
    };
    let bundle = BundleLocation {
        path: bundles.join(&format!("{}/{relative}.bundle.json", origin.as_str())),
        fingerprint,
    };
    Ok(Change::Indexed {
        obs,
        type_name: TypeName::parse(ty)?,
        bundle,
        meta: TypeMeta {
            declared_version: "2026.01.01.0".to_owned(),
            description: format!("{ty}, saved by the example"),
            descriptor: format!("{{\"type\":\"{ty}\"}}"),
        },
    })
}

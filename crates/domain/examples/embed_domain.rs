//! Embedding fen-domain: build an `Extension` aggregate, apply transitions, watch the
//! I2 rule pick a winner and retire the loser, tombstone a deleted source, and keep the
//! aggregates behind the `ExtensionRepository` and `TypeIndex` ports with an in-memory
//! implementation. No I/O, no async runtime: the in-memory ports are always ready, so a
//! ten-line `block_on` drives them.
//!
//! Run it with `cargo run -p fen-domain --example embed_domain`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use fen_domain::ports::{
    ExtensionRepository, FileStatsUpdate, GuardInputs, GuardVerdict, InvalidateOutcome, Loaded,
    RepoError, SaveReport, TypeEntry, TypeIndex,
};
use fen_domain::{
    BundleLocation, CanonicalPath, Change, Extension, ExtensionId, ExtensionName, Kind,
    Observation, Origin, PathPolicy, RetireReason, RowState, SourceFingerprint, SourceLocation,
    TypeMeta, TypeName,
};

const ROOT: &str = "/repo";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = path(ROOT)?;
    let catalog = InMemoryCatalog::default();

    // 1. The repo's local aggregate, and three observed entry points: two declare the
    //    same model type, one declares another.
    let local = Extension::local(&root);
    let a = observe("/repo/extensions/models/a.ts", 1)?;
    let b = observe("/repo/extensions/models/b.ts", 2)?;
    let c = observe("/repo/extensions/models/c.ts", 3)?;
    let vpc = TypeName::parse("@acme/aws/ec2/vpc")?;
    let subnet = TypeName::parse("@acme/aws/ec2/subnet")?;
    let local = local.apply([
        indexed(&b, &vpc, "2026.01.01.0")?,
        indexed(&a, &vpc, "2026.01.02.0")?,
        indexed(&c, &subnet, "2026.01.01.0")?,
    ])?;
    local.check_invariants()?;

    // 2. I2: a.ts and b.ts claim (model, @acme/aws/ec2/vpc). The smallest
    //    (origin rank, path) wins; the other becomes Tombstoned(Renamed { winner }).
    println!("after indexing {}:", local.id());
    print_sources(&local);
    let b_state = local
        .source(b.location.canonical())
        .map(|s| s.state().clone());
    assert!(matches!(b_state, Some(RowState::Tombstoned { .. })));

    // 3. Save through the port, then resolve types through the read side.
    block_on(catalog.save(&local))?;
    let winner = block_on(catalog.find_type(Kind::Model, &vpc))?;
    println!(
        "\n{vpc} resolves to {}",
        winner
            .map(|e| e.source_path.to_string())
            .unwrap_or_default()
    );

    // 4. a.ts is deleted: retiring it tombstones it, and b.ts, whose winner left the
    //    slot, keeps a tombstone without a winner until its next observation.
    let local = local.record_source_missing(a.location.canonical(), RetireReason::SourceDeleted)?;
    println!("\nafter a.ts was deleted:");
    print_sources(&local);
    let local = local.apply([indexed(&b, &vpc, "2026.01.01.0")?])?;
    println!("\nafter b.ts was observed again:");
    print_sources(&local);
    block_on(catalog.save(&local))?;
    let winner = block_on(catalog.find_type(Kind::Model, &vpc))?;
    println!(
        "\n{vpc} now resolves to {}",
        winner
            .map(|e| e.source_path.to_string())
            .unwrap_or_default()
    );
    let listed = block_on(catalog.list_types(Kind::Model))?;
    println!(
        "visible model types: {}",
        listed
            .iter()
            .map(|e| e.type_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn path(text: &str) -> Result<CanonicalPath, fen_domain::PathError> {
    CanonicalPath::from_text(text, PathPolicy::Posix)
}

/// One look at a local entry point, with a made-up content fingerprint.
fn observe(file: &str, seed: u8) -> Result<Observation, fen_domain::PathError> {
    Ok(Observation {
        location: SourceLocation::from_canonical(path(file)?, path(ROOT)?),
        kind: Kind::Model,
        origin: Origin::Local,
        fingerprint: SourceFingerprint::Content([seed; 32]),
        mtime: None,
    })
}

/// The transition a successful build and validation produce.
fn indexed(
    obs: &Observation,
    ty: &TypeName,
    version: &str,
) -> Result<Change, fen_domain::PathError> {
    let bundle = BundleLocation {
        path: path(&format!(
            "/repo/.fen/bundles/local/models/{}.bundle.json",
            obs.location.canonical().file_name()
        ))?,
        fingerprint: obs.fingerprint,
    };
    Ok(Change::Indexed {
        obs: obs.clone(),
        type_name: ty.clone(),
        bundle,
        meta: TypeMeta {
            declared_version: version.to_owned(),
            description: format!("{ty} from {}", obs.location.relative()),
            descriptor: "{}".to_owned(),
        },
    })
}

fn print_sources(ext: &Extension) {
    for source in ext.sources() {
        let detail = match source.state() {
            RowState::Indexed { type_name, .. } => format!("claims {type_name}"),
            RowState::Tombstoned { reason } => format!("{reason:?}"),
            other => other.tag().to_string(),
        };
        println!(
            "  {:<32} {:<10} {detail}",
            source.path().as_str(),
            source.state().tag().as_str()
        );
    }
}

/// Aggregates by id, answering both ports. A real adapter (fen-infrastructure's SQLite
/// catalog) also enforces I-Repo-1 and supersession across aggregates at every save.
#[derive(Default)]
struct InMemoryCatalog {
    aggregates: Mutex<BTreeMap<ExtensionId, Extension>>,
}

impl InMemoryCatalog {
    fn visible(&self, keep: impl Fn(&TypeEntry) -> bool) -> Result<Vec<TypeEntry>, RepoError> {
        let aggregates = self
            .aggregates
            .lock()
            .map_err(|_| RepoError::Storage("poisoned".into()))?;
        let mut out: Vec<TypeEntry> = aggregates
            .values()
            .flat_map(Extension::visible_sources)
            .filter_map(|s| match s.state() {
                RowState::Indexed {
                    type_name,
                    bundle,
                    meta,
                } => Some(TypeEntry {
                    source_path: s.path().clone(),
                    kind: s.kind(),
                    type_name: type_name.clone(),
                    bundle: bundle.clone(),
                    meta: meta.clone(),
                }),
                _ => None,
            })
            .filter(|e| keep(e))
            .collect();
        out.sort_by(|a, b| (&a.type_name, &a.source_path).cmp(&(&b.type_name, &b.source_path)));
        Ok(out)
    }
}

#[async_trait]
impl ExtensionRepository for InMemoryCatalog {
    async fn load_all(&self) -> Result<Loaded, RepoError> {
        let aggregates = self
            .aggregates
            .lock()
            .map_err(|_| RepoError::Storage("poisoned".into()))?;
        Ok(Loaded {
            extensions: aggregates.values().cloned().collect(),
            ..Loaded::default()
        })
    }

    async fn load_by_name(&self, name: &ExtensionName) -> Result<Vec<Extension>, RepoError> {
        let all = self.load_all().await?;
        Ok(all
            .extensions
            .into_iter()
            .filter(|e| &e.id().name == name)
            .collect())
    }

    async fn save_all(&self, exts: &[Extension]) -> Result<SaveReport, RepoError> {
        let mut aggregates = self
            .aggregates
            .lock()
            .map_err(|_| RepoError::Storage("poisoned".into()))?;
        let mut report = SaveReport::default();
        for ext in exts {
            match aggregates.insert(ext.id().clone(), ext.clone()) {
                Some(_) => report.updated += ext.sources().len(),
                None => report.inserted += ext.sources().len(),
            }
        }
        Ok(report)
    }

    async fn invalidation_guards(&self, _: &GuardInputs) -> Result<GuardVerdict, RepoError> {
        Ok(GuardVerdict::Fresh)
    }

    async fn mark_populated(&self, _: &GuardInputs) -> Result<(), RepoError> {
        Ok(())
    }

    async fn record_file_stats(&self, _: &[FileStatsUpdate]) -> Result<usize, RepoError> {
        Ok(0)
    }

    async fn prune_retired_rows(&self, _: &[CanonicalPath]) -> Result<usize, RepoError> {
        Ok(0)
    }

    async fn invalidate_all(&self) -> InvalidateOutcome {
        InvalidateOutcome::NoCatalog
    }
}

#[async_trait]
impl TypeIndex for InMemoryCatalog {
    async fn find_type(&self, kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        Ok(self
            .visible(|e| e.kind == kind && &e.type_name == ty)?
            .into_iter()
            .next())
    }

    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        self.visible(|e| e.kind == kind)
    }

    async fn extensions_for(&self, base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        self.visible(|e| e.kind == Kind::Extension && &e.type_name == base)
    }
}

/// Drives a future that never waits (the in-memory ports answer at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        std::thread::yield_now();
    }
}

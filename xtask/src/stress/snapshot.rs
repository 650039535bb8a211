//! What the harness sees at one instant, read by itself (spec 20 §16.4): the lockfile
//! bytes straight from the file, the owned-root trees and `.fen/scratch` walked without
//! following links, and the catalog through `fen-infrastructure`'s read-only
//! repository (`CatalogOpener::open_read_only`: SQLite `mode=ro`, no lock, one WAL
//! read snapshot per `load_all`). Nothing here goes through `fen extension status`.
//!
//! The parts are read one after the other, so a snapshot is only coherent when no
//! fen process runs, which is when the harness takes one (between rounds). The
//! rendering is the evidence dump of a failure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use fen_domain::ports::ExtensionRepository;
use fen_domain::{PathPolicy, RepoRoot, RowState};
use fen_infrastructure::bundler::FsBundleStore;
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener};

use super::fixtures::SCOPE;

/// `.fen/pulled-extensions`, relative to the repo.
pub const PULLED_ROOT: &str = ".fen/pulled-extensions";
/// `.fen/bundles/pulled`, relative to the repo.
pub const BUNDLES_ROOT: &str = ".fen/bundles/pulled";
/// `.fen/scratch`, relative to the repo.
pub const SCRATCH: &str = ".fen/scratch";
/// The lockfile, relative to the repo.
pub const LOCKFILE: &str = "extensions/upstream_extensions.json";

/// One look at the repo.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The lockfile's bytes; `None` when it does not exist.
    pub lockfile: Option<Vec<u8>>,
    /// `extensions/.fen-tmp-*` names.
    pub lockfile_temps: Vec<String>,
    pub catalog: Result<Catalog, String>,
    /// Everything below `.fen/pulled-extensions`.
    pub pulled: Vec<Node>,
    /// Everything below `.fen/bundles/pulled`.
    pub bundles: Vec<Node>,
    /// Everything below `.fen/scratch`.
    pub scratch: Vec<Node>,
    /// `txn-*` directories and the extension names their journals name (`None`: no
    /// readable journal, which excuses nothing).
    pub pending: BTreeMap<String, Option<Vec<String>>>,
}

/// The catalog rows, every origin, Tombstoned ones included.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub rows: Vec<Row>,
    /// Rows `load_all` could not attribute (`path (reason)`).
    pub skipped: Vec<String>,
}

/// One catalog row (one Source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub version: String,
    /// `pulled` or `local`.
    pub origin: &'static str,
    /// Repo-relative when under the repo, else absolute.
    pub path: String,
    pub kind: &'static str,
    /// `Indexed`, `Tombstoned`, ... (the `RowStateTag`).
    pub state: String,
    /// `(kind, type_normalized)` of an `Indexed` row whose kind is unique per type.
    pub claim: Option<(&'static str, String)>,
    pub bundle: Option<Bundle>,
}

impl Row {
    /// Not Tombstoned.
    pub fn is_live(&self) -> bool {
        self.state != "Tombstoned"
    }
}

/// The bundle an `Indexed` row points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// Repo-relative when under the repo.
    pub path: String,
    /// Exists, parses and matches the row's fingerprint (`FsBundleStore`).
    pub usable: bool,
}

/// One filesystem entry below a walked root, never followed through a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Repo-relative, `/`-separated.
    pub rel: String,
    pub kind: NodeKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    File { bytes: u64 },
    Dir { empty: bool },
    Symlink,
    Other,
}

impl Snapshot {
    /// Reads everything (see the module doc for what "everything" is).
    pub async fn take(repo: &Path) -> Snapshot {
        let lockfile = std::fs::read(repo.join(LOCKFILE)).ok();
        let lockfile_temps = list_names(&repo.join("extensions"))
            .into_iter()
            .filter(|name| name.starts_with(".fen-tmp-"))
            .collect();
        let scratch = walk(repo, SCRATCH);
        let mut pending = BTreeMap::new();
        for name in list_names(&repo.join(SCRATCH)) {
            if name.starts_with("txn-") {
                let journal = repo.join(SCRATCH).join(&name).join("journal.json");
                pending.insert(name, journal_names(&journal));
            }
        }
        Snapshot {
            lockfile,
            lockfile_temps,
            catalog: read_catalog(repo).await,
            pulled: walk(repo, PULLED_ROOT),
            bundles: walk(repo, BUNDLES_ROOT),
            scratch,
            pending,
        }
    }

    /// `scratch` entries directly below `.fen/scratch` whose names start with
    /// `txn-`, `stage-` or `build-`, or `.fen-tmp-` (a directory being filled, or a
    /// tree being deleted).
    pub fn scratch_dirs(&self) -> Vec<String> {
        self.scratch
            .iter()
            .filter_map(|node| node.rel.strip_prefix(&format!("{SCRATCH}/")))
            .filter(|rest| !rest.contains('/'))
            .filter(|name| {
                ["txn-", "stage-", "build-", ".fen-tmp-"]
                    .iter()
                    .any(|p| name.starts_with(p))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Names the pending journals name.
    pub fn pending_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.pending.values().flatten().flatten().cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// The evidence dump: lockfile, `@stress` rows, owned roots and scratch.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "--- {LOCKFILE}");
        match &self.lockfile {
            None => out.push_str("(absent)\n"),
            Some(bytes) => {
                out.push_str(&String::from_utf8_lossy(bytes));
                if !bytes.ends_with(b"\n") {
                    out.push_str("\n(no trailing newline)\n");
                }
            }
        }
        for temp in &self.lockfile_temps {
            let _ = writeln!(out, "extensions/{temp}");
        }
        let _ = writeln!(
            out,
            "--- catalog rows named {SCOPE}/* (read-only connection)"
        );
        match &self.catalog {
            Err(why) => {
                let _ = writeln!(out, "(unreadable: {why})");
            }
            Ok(catalog) => {
                for row in catalog.rows.iter().filter(|r| r.name.starts_with(SCOPE)) {
                    let _ = writeln!(
                        out,
                        "{}@{} {} {} {} {}{}",
                        row.name,
                        row.version,
                        row.origin,
                        row.path,
                        row.state,
                        row.claim
                            .as_ref()
                            .map(|(kind, ty)| format!("{kind} {ty}"))
                            .unwrap_or_else(|| "-".to_owned()),
                        row.bundle
                            .as_ref()
                            .map(|b| format!(
                                " bundle {}{}",
                                b.path,
                                if b.usable { "" } else { " (NOT usable)" }
                            ))
                            .unwrap_or_default()
                    );
                }
                for skipped in &catalog.skipped {
                    let _ = writeln!(out, "skipped row: {skipped}");
                }
            }
        }
        for (title, nodes) in [
            (PULLED_ROOT, &self.pulled),
            (BUNDLES_ROOT, &self.bundles),
            (SCRATCH, &self.scratch),
        ] {
            let _ = writeln!(out, "--- {title}/");
            if nodes.is_empty() {
                out.push_str("(empty or absent)\n");
            }
            for node in nodes {
                let what = match node.kind {
                    NodeKind::File { bytes } => format!("{bytes} bytes"),
                    NodeKind::Dir { empty: true } => "dir (empty)".to_owned(),
                    NodeKind::Dir { empty: false } => "dir".to_owned(),
                    NodeKind::Symlink => "SYMLINK".to_owned(),
                    NodeKind::Other => "OTHER".to_owned(),
                };
                let _ = writeln!(out, "{}  {what}", node.rel);
            }
        }
        out
    }
}

async fn read_catalog(repo: &Path) -> Result<Catalog, String> {
    let root = RepoRoot::new(repo.to_path_buf(), PathPolicy::host()).map_err(|e| e.to_string())?;
    let ctx = CatalogContext::for_repo(&root, Vec::new(), PathPolicy::host());
    let repository = CatalogOpener::open_read_only(ctx)
        .await
        .map_err(|e| format!("read-only open: {e}"))?;
    let loaded = repository
        .load_all()
        .await
        .map_err(|e| format!("load_all: {e}"))?;
    let store = FsBundleStore::for_repo(repo);
    let relative = |path: &fen_domain::CanonicalPath| {
        path.relative_to(&root.canonical)
            .map(str::to_owned)
            .unwrap_or_else(|| path.as_str().to_owned())
    };
    let mut catalog = Catalog::default();
    for extension in &loaded.extensions {
        for source in extension.sources() {
            let bundle = match &source.state() {
                RowState::Indexed { bundle, .. } => Some(Bundle {
                    path: relative(&bundle.path),
                    usable: store.is_usable_blocking(bundle),
                }),
                _ => None,
            };
            catalog.rows.push(Row {
                name: extension.id().name.as_str().to_owned(),
                version: extension.id().version.to_string(),
                origin: extension.origin().as_str(),
                path: relative(source.path()),
                kind: source.kind().as_str(),
                state: format!("{:?}", source.state().tag()),
                claim: source
                    .claim()
                    .map(|(kind, ty)| (kind.as_str(), ty.as_str().to_owned())),
                bundle,
            });
        }
    }
    catalog.skipped = loaded
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.source_path, s.reason.as_str()))
        .collect();
    Ok(catalog)
}

/// `targets[].name` of a journal; `None` when it is absent or unreadable.
fn journal_names(journal: &Path) -> Option<Vec<String>> {
    let bytes = std::fs::read(journal).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let names = value["targets"]
        .as_array()?
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    Some(names)
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every entry below `repo/rel` (not `rel` itself), depth first, sorted.
fn walk(repo: &Path, rel: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    walk_into(repo, rel, &mut nodes);
    nodes
}

fn walk_into(repo: &Path, rel: &str, nodes: &mut Vec<Node>) {
    for name in list_names(&repo.join(rel)) {
        let child = format!("{rel}/{name}");
        let Ok(meta) = std::fs::symlink_metadata(repo.join(&child)) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            nodes.push(Node {
                rel: child,
                kind: NodeKind::Symlink,
            });
        } else if kind.is_file() {
            nodes.push(Node {
                rel: child,
                kind: NodeKind::File { bytes: meta.len() },
            });
        } else if kind.is_dir() {
            let empty = list_names(&repo.join(&child)).is_empty();
            nodes.push(Node {
                rel: child.clone(),
                kind: NodeKind::Dir { empty },
            });
            walk_into(repo, &child, nodes);
        } else {
            nodes.push(Node {
                rel: child,
                kind: NodeKind::Other,
            });
        }
    }
}

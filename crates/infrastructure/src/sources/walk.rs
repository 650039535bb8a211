//! Entry-point discovery under one scan root (spec 10 §1.11, spec 30 §3.1).
//!
//! The walk uses `ignore::WalkBuilder` with every standard filter off (`.gitignore`
//! has no say in what is an extension), sorted, never descending a symlinked
//! directory. Candidates that are unchanged since some catalog row recorded them are
//! classified from that record, so an unchanged tree costs one stat per file and no
//! reads (spec 10 §6.2).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fen_domain::ports::indexing::{ScanRoot, ScannedEntry};
use fen_domain::ports::FileStats;
use fen_domain::{CanonicalPath, PathPolicy, SourceLocation};
use ignore::WalkBuilder;

use super::cache::FreshnessCache;
use super::fingerprint::join_rel;
use super::scan_text::ExportMask;
use super::stats::StoredStats;

/// Extensions of source files.
const SOURCE_SUFFIXES: [&str; 4] = [".ts", ".mts", ".js", ".mjs"];

/// The candidate entry points under `root.dir`, sorted by canonical path.
///
/// A readable candidate is kept only if its text passes the export pre-check for the
/// root's loader kind; an unreadable one (dangling symlink, no permission, a symlink
/// leaving the boundary) is kept with the reason. `known` maps row paths to their stat
/// records (pass the rows of every kind: a row's graph may hold files of another kind
/// directory). A candidate whose stat equals a non-racy record held for it by any row
/// is classified by that record's stored pre-check result without being read: with a
/// row of its own it is still an entry point, without one it is still a helper. A
/// missing scan root yields nothing.
pub fn walk_scan_root(
    root: &ScanRoot,
    known: &BTreeMap<CanonicalPath, FileStats>,
    policy: PathPolicy,
    cache: &mut FreshnessCache,
) -> Vec<ScannedEntry> {
    let records = known_records(&root.boundary, known, policy, cache);
    let kinds = root.loader_kind.kinds();
    let mut out = Vec::new();
    for item in walker(&root.dir) {
        let Ok(dir_entry) = item else {
            continue;
        };
        let is_candidate_type = dir_entry
            .file_type()
            .is_some_and(|t| t.is_file() || t.is_symlink());
        if dir_entry.depth() == 0 || !is_candidate_type {
            continue;
        }
        if !dir_entry
            .file_name()
            .to_str()
            .is_some_and(is_candidate_name)
        {
            continue;
        }
        let path = dir_entry.into_path();
        let Ok(canonical) = CanonicalPath::new(&path, policy) else {
            continue;
        };
        let unreadable = match classify_from_records(&path, &records, cache) {
            Some(Known::Readable(exports)) if exports.matches_any(kinds) => None,
            Some(Known::Readable(_)) => continue,
            Some(Known::Unreadable) | None => {
                let read = cache.read(&path, &root.boundary);
                match &read.unreadable {
                    Some(reason) => Some(reason.clone()),
                    None if read.exports.matches_any(kinds) => None,
                    None => continue,
                }
            }
        };
        out.push(ScannedEntry {
            location: SourceLocation::from_canonical(canonical, root.extension_root.clone()),
            root: root.clone(),
            native_path: path,
            unreadable,
        });
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    out
}

/// True if a file name may be an entry point: a `.ts`, `.mts`, `.js` or `.mjs` file
/// that is not hidden, not `*.d.ts`, `*_test.*`, `*.test.*` or `*.spec.*`.
pub fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.')
        && SOURCE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        && !name.ends_with(".d.ts")
        && !name.contains("_test.")
        && !name.contains(".test.")
        && !name.contains(".spec.")
}

/// What a clean record says about a candidate.
enum Known {
    Readable(ExportMask),
    Unreadable,
}

type RecordIndex = HashMap<PathBuf, Vec<(Arc<StoredStats>, usize)>>;

fn walker(dir: &Path) -> ignore::Walk {
    WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| {
            if entry.depth() == 0 {
                return true;
            }
            let name = entry.file_name().to_string_lossy();
            if name.starts_with('.') {
                return false;
            }
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && (name.starts_with('_') || name == "node_modules"))
        })
        .build()
}

/// Every record held by a row under `boundary`, by the native path it names.
/// Boundaries never nest, so a row under this boundary has its whole graph in it.
fn known_records(
    boundary: &Path,
    known: &BTreeMap<CanonicalPath, FileStats>,
    policy: PathPolicy,
    cache: &mut FreshnessCache,
) -> RecordIndex {
    let mut index = RecordIndex::new();
    let Ok(boundary_canonical) = CanonicalPath::new(boundary, policy) else {
        return index;
    };
    let rows = known
        .range(boundary_canonical.clone()..)
        .take_while(|(row, _)| row.as_str().starts_with(boundary_canonical.as_str()))
        .filter(|(row, _)| row.starts_under(&boundary_canonical));
    for (_, stats) in rows {
        let Some(stored) = cache.stored(stats) else {
            continue;
        };
        for (position, record) in stored.files.iter().enumerate() {
            index
                .entry(join_rel(boundary, record.rel()))
                .or_default()
                .push((Arc::clone(&stored), position));
        }
    }
    index
}

fn classify_from_records(
    path: &Path,
    records: &RecordIndex,
    cache: &mut FreshnessCache,
) -> Option<Known> {
    let held = records.get(path)?;
    let probe = cache.probe(path);
    held.iter().find_map(|(stored, position)| {
        let record = stored.files.get(*position)?;
        if !record.is_clean(&probe, stored.taken_at_ns) {
            return None;
        }
        Some(match record.digest() {
            Some(_) => Known::Readable(record.exports()),
            None => Known::Unreadable,
        })
    })
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

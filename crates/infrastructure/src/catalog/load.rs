//! Loading aggregates from rows (spec 10 §5.3). Pure: the repository reads the rows in
//! one statement (one consistent WAL snapshot, no lock) and hands them here. Loading
//! never writes; skipped rows stay until the next `save_all` prunes them.

use std::collections::{BTreeMap, HashMap};

use fen_domain::ports::{FileStats, Loaded, SkipReason, SkippedRow};
use fen_domain::{CanonicalPath, Extension, ExtensionId, ExtensionOrigin, Source};

use super::placement::Placement;
use super::rows::{restore_source, CatalogRow};

/// One aggregate under construction.
struct Group {
    origin: ExtensionOrigin,
    root: CanonicalPath,
    sources: Vec<Source>,
    rows: Vec<(String, String)>,
}

/// Builds the aggregates of `rows` (sorted by path), skipping unreachable, unowned and
/// misfiled rows; returns them sorted by id.
pub(crate) fn assemble(rows: &[CatalogRow], placement: &Placement) -> Loaded {
    let policy = placement.policy();
    let states: HashMap<&str, &str> = rows
        .iter()
        .map(|row| (row.source_path.as_str(), row.state.as_str()))
        .collect();
    let winner_is_indexed = |path: &str| states.get(path) == Some(&"Indexed");
    let mut skipped = Vec::new();
    let mut groups: BTreeMap<ExtensionId, Group> = BTreeMap::new();
    for row in rows {
        let placed = match placement.place(
            &row.source_path,
            &row.extension_name,
            &row.extension_version,
        ) {
            Ok(placed) => placed,
            Err(reason) => {
                skipped.push(SkippedRow {
                    source_path: row.source_path.clone(),
                    reason,
                });
                continue;
            }
        };
        let source = restore_source(row, &placed, policy, winner_is_indexed);
        let group = groups.entry(placed.id).or_insert_with(|| Group {
            origin: placed.extension_origin,
            root: placed.root.clone(),
            sources: Vec::new(),
            rows: Vec::new(),
        });
        group.sources.push(source);
        group
            .rows
            .push((row.source_path.clone(), row.file_stats.clone()));
    }
    let mut extensions = Vec::with_capacity(groups.len());
    let mut file_stats = BTreeMap::new();
    for (id, group) in groups {
        match Extension::new(id, group.origin, group.root, group.sources) {
            Ok(extension) => {
                extensions.push(extension);
                for (path, stats) in group.rows.into_iter().filter(|(_, s)| !s.is_empty()) {
                    if let Ok(path) = CanonicalPath::from_text(&path, policy) {
                        file_stats.insert(path, FileStats(stats));
                    }
                }
            }
            // Placement already guarantees I1, so this cannot happen; if it ever did, the
            // rows are reported instead of failing the whole load.
            Err(_) => skipped.extend(group.rows.into_iter().map(|(source_path, _)| SkippedRow {
                source_path,
                reason: SkipReason::Misfiled,
            })),
        }
    }
    skipped.sort_by(|a, b| a.source_path.cmp(&b.source_path));
    Loaded {
        extensions,
        skipped,
        file_stats,
    }
}

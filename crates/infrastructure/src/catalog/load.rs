//! Loading aggregates from rows (spec 10 §5.3). Pure: the repository reads the rows in
//! one statement (one consistent WAL snapshot, no lock) and hands them here. Loading
//! never writes; skipped rows stay until the next `save_all` prunes them.

use std::collections::{BTreeMap, HashMap, HashSet};

use fen_domain::ports::{FileStats, Loaded, SkipReason, SkippedRow};
use fen_domain::{CanonicalPath, Extension, ExtensionId, ExtensionOrigin, Source};

use super::placement::{Identity, Placement};
use super::rows::{restore_source, CatalogRow};

/// One aggregate under construction.
struct Group {
    origin: ExtensionOrigin,
    root: CanonicalPath,
    sources: Vec<Source>,
    stats: Vec<(CanonicalPath, String)>,
}

/// Builds the aggregates of `rows` (sorted by path), skipping unreachable, unowned and
/// misfiled rows; returns them sorted by id.
pub(crate) fn assemble(rows: Vec<CatalogRow>, placement: &Placement) -> Loaded {
    let policy = placement.policy();
    // A tombstone's winner counts only if its row exists and is Indexed (spec 10 §4.3).
    let winners: HashSet<&str> = rows
        .iter()
        .filter(|row| !row.superseded_by.is_empty() && row.state != "Indexed")
        .map(|row| row.superseded_by.as_str())
        .collect();
    let indexed_winners: HashSet<String> = rows
        .iter()
        .filter(|row| row.state == "Indexed" && winners.contains(row.source_path.as_str()))
        .map(|row| row.source_path.clone())
        .collect();
    let winner_is_indexed = |path: &str| indexed_winners.contains(path);
    let mut skipped = Vec::new();
    let mut groups: BTreeMap<ExtensionId, Group> = BTreeMap::new();
    // Each stored owner is parsed once, not once per row.
    let mut identities: HashMap<(String, String), Identity> = HashMap::new();
    for mut row in rows {
        let owner = (
            std::mem::take(&mut row.extension_name),
            std::mem::take(&mut row.extension_version),
        );
        let identity = identities
            .entry(owner)
            .or_insert_with_key(|(name, version)| placement.identity(name, version));
        let placed = match placement.place_as(&row.source_path, identity) {
            Ok(placed) => placed,
            Err(reason) => {
                skipped.push(SkippedRow {
                    source_path: row.source_path,
                    reason,
                });
                continue;
            }
        };
        let stats = std::mem::take(&mut row.file_stats);
        let path = placed.path.clone();
        let source = restore_source(row, &placed, policy, winner_is_indexed);
        let group = groups.entry(placed.id).or_insert_with(|| Group {
            origin: placed.extension_origin,
            root: placed.root,
            sources: Vec::new(),
            stats: Vec::new(),
        });
        group.sources.push(source);
        group.stats.push((path, stats));
    }
    let mut extensions = Vec::with_capacity(groups.len());
    let mut file_stats = BTreeMap::new();
    for (id, group) in groups {
        match Extension::new(id, group.origin, group.root, group.sources) {
            Ok(extension) => {
                extensions.push(extension);
                for (path, stats) in group.stats.into_iter().filter(|(_, s)| !s.is_empty()) {
                    file_stats.insert(path, FileStats(stats));
                }
            }
            // Placement already guarantees I1, so this cannot happen; if it ever did, the
            // rows are reported instead of failing the whole load.
            Err(_) => skipped.extend(group.stats.into_iter().map(|(path, _)| SkippedRow {
                source_path: path.to_string(),
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

//! The pure part of `save_all` (spec 10 §5.4 steps 1–3): which rows to prune, which
//! rows the batch wants, and the difference to what is stored. Independent of batch
//! order: a live source beats a `Renamed` tombstone beats a delete intent, whatever
//! aggregate comes first.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use fen_domain::ports::SkipReason;
use fen_domain::{Extension, ExtensionId, RowState, TombstoneReason};

use crate::catalog::placement::Placement;
use crate::catalog::rows::{target_values, CatalogRow, RowValues, CONTENT_COLUMNS, FINGERPRINT};

/// Path and owner of one stored row: all that planning needs of the rows it does not
/// rewrite. Decoded positionally from [`STORED_COLUMNS`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct StoredRow {
    pub(crate) source_path: String,
    pub(crate) extension_name: String,
    pub(crate) extension_version: String,
}

/// The columns of a [`StoredRow`].
pub(crate) const STORED_COLUMNS: &str = "source_path, extension_name, extension_version";

/// Owner text of a stored row: `(extension_name, extension_version)`.
pub(crate) type Owner = (String, String);

/// The owner text an aggregate writes.
pub(crate) fn owner_of(id: &ExtensionId) -> Owner {
    (id.name.as_str().to_owned(), id.version.to_string())
}

/// Step 1: rows `load_all` would skip and whose path is not live in the batch.
pub(crate) fn prunes(
    stored: &[StoredRow],
    batch: &[Extension],
    placement: &Placement,
) -> Vec<(String, SkipReason)> {
    let live: HashSet<&str> = batch
        .iter()
        .flat_map(|ext| ext.sources())
        .filter(|s| !s.state().is_tombstoned())
        .map(|s| s.path().as_str())
        .collect();
    stored
        .iter()
        .filter(|row| !live.contains(row.source_path.as_str()))
        .filter_map(|row| {
            placement
                .place(
                    &row.source_path,
                    &row.extension_name,
                    &row.extension_version,
                )
                .err()
                .map(|reason| (row.source_path.clone(), reason))
        })
        .collect()
}

/// Step 2: the row each path of the batch should have. A live source gives its row; a
/// path without one but with `Renamed` tombstones gives the tombstone of the aggregate
/// that owns the stored row, or else of the smallest id.
pub(crate) fn targets(
    batch: &[Extension],
    owners: &HashMap<String, Owner>,
) -> BTreeMap<String, RowValues> {
    let mut rows: BTreeMap<String, RowValues> = BTreeMap::new();
    let mut renamed: BTreeMap<String, Vec<(&ExtensionId, RowValues)>> = BTreeMap::new();
    for ext in batch {
        for source in ext.sources() {
            let Some(values) = target_values(ext, source) else {
                continue;
            };
            let path = source.path().as_str().to_owned();
            match source.state() {
                RowState::Tombstoned {
                    reason: TombstoneReason::Renamed { .. },
                } => renamed.entry(path).or_default().push((ext.id(), values)),
                _ => {
                    rows.insert(path, values);
                }
            }
        }
    }
    for (path, mut candidates) in renamed {
        if rows.contains_key(&path) {
            continue;
        }
        candidates.sort_by(|a, b| a.0.cmp(b.0));
        let owner = owners.get(&path);
        let chosen = candidates
            .iter()
            .position(|(id, _)| Some(&owner_of(id)) == owner)
            .unwrap_or(0);
        rows.insert(path, candidates.swap_remove(chosen).1);
    }
    rows
}

/// Step 2, deletions: stored rows without a target whose owner is an aggregate of the
/// batch (a delete intent of the owner, or a source the owner no longer has). Rows of
/// anyone else are never touched.
pub(crate) fn deletions(
    owners: &HashMap<String, Owner>,
    targets: &BTreeMap<String, RowValues>,
    batch: &[Extension],
) -> BTreeSet<String> {
    let batch_owners: HashSet<Owner> = batch.iter().map(|ext| owner_of(ext.id())).collect();
    owners
        .iter()
        .filter(|(path, owner)| !targets.contains_key(*path) && batch_owners.contains(*owner))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Step 3 for one stored row: the columns to update, empty when equal. An update that
/// changes the fingerprint also clears `file_stats` (records of another fingerprint).
pub(crate) fn changed_columns(
    current: &CatalogRow,
    target: &RowValues,
) -> Vec<(&'static str, String)> {
    let stored = current.content();
    let mut changes: Vec<(&'static str, String)> = CONTENT_COLUMNS
        .iter()
        .zip(stored.iter().zip(target.content.iter()))
        .filter(|(_, (old, new))| **old != new.as_str())
        .map(|(column, (_, new))| (*column, new.clone()))
        .collect();
    if let Some(winner) = &target.superseded_by {
        if current.superseded_by != *winner {
            changes.push(("superseded_by", winner.clone()));
        }
    }
    if stored[FINGERPRINT] != target.content[FINGERPRINT] && !current.file_stats.is_empty() {
        changes.push(("file_stats", String::new()));
    }
    changes
}

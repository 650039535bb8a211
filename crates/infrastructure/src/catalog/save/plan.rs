//! The pure part of `save_all` (spec 10 §5.4 steps 1–3): which rows to prune, which
//! rows the batch wants, and the difference to what is stored. Independent of batch
//! order: a live source beats a `Renamed` tombstone beats a delete intent, whatever
//! aggregate comes first.

use std::collections::{BTreeMap, HashMap, HashSet};

use fen_domain::ports::SkipReason;
use fen_domain::{Extension, ExtensionId, RowState, TombstoneReason};

use crate::catalog::placement::Placement;
use crate::catalog::rows::{target_values, CatalogRow, RowValues, CONTENT_COLUMNS, FINGERPRINT};

/// Path and owner of one stored row: all that planning needs of the rows it does not
/// rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub(crate) source_path: String,
    pub(crate) extension_name: String,
    pub(crate) extension_version: String,
}

impl From<[String; 3]> for StoredRow {
    /// The fields in [`STORED_COLUMNS`] order.
    fn from([source_path, extension_name, extension_version]: [String; 3]) -> StoredRow {
        StoredRow {
            source_path,
            extension_name,
            extension_version,
        }
    }
}

/// The columns of a [`StoredRow`].
pub(crate) const STORED_COLUMNS: &str = "source_path, extension_name, extension_version";

/// Owner text of a stored row: `(extension_name, extension_version)`.
pub(crate) type Owner = (String, String);

/// The owner text an aggregate writes.
pub(crate) fn owner_of(id: &ExtensionId) -> Owner {
    (id.name.as_str().to_owned(), id.version.to_string())
}

/// What one pass over the stored rows finds.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Step 1: rows `load_all` would skip and whose path is not live in the batch.
    pub(crate) prunes: Vec<(String, SkipReason)>,
    /// Owners of the kept rows at paths the batch mentions.
    pub(crate) owners: HashMap<String, Owner>,
    /// Kept rows owned by an aggregate of the batch; those without a target row are
    /// deleted (a delete intent of the owner, or a source it no longer has). Rows of
    /// anyone else are never touched.
    pub(crate) owned: Vec<String>,
}

/// Classifies every stored row once.
pub(crate) fn survey(
    stored: impl Iterator<Item = StoredRow>,
    batch: &[Extension],
    placement: &Placement,
) -> Survey {
    let sources = || batch.iter().flat_map(|ext| ext.sources());
    let mentioned: HashSet<&str> = sources().map(|s| s.path().as_str()).collect();
    let live: HashSet<&str> = sources()
        .filter(|s| !s.state().is_tombstoned())
        .map(|s| s.path().as_str())
        .collect();
    let batch_owners: HashSet<Owner> = batch.iter().map(|ext| owner_of(ext.id())).collect();
    let mut survey = Survey::default();
    for row in stored {
        if !live.contains(row.source_path.as_str()) {
            if let Err(reason) = placement.place(
                &row.source_path,
                &row.extension_name,
                &row.extension_version,
            ) {
                survey.prunes.push((row.source_path, reason));
                continue;
            }
        }
        let owner = (row.extension_name, row.extension_version);
        if batch_owners.contains(&owner) {
            survey.owned.push(row.source_path.clone());
        }
        if mentioned.contains(row.source_path.as_str()) {
            survey.owners.insert(row.source_path, owner);
        }
    }
    survey
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

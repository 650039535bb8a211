//! The pure part of `save_all` (spec 10 §5.4 steps 1–3): which rows to prune, which
//! rows the batch wants, and the difference to what is stored. Independent of batch
//! order: a live source beats a `Renamed` tombstone beats a delete intent, whatever
//! aggregate comes first.

use std::collections::{BTreeMap, HashSet};

use fen_domain::ports::SkipReason;
use fen_domain::{Extension, ExtensionId, RowState, TombstoneReason};

use crate::catalog::placement::{Identity, Placement};
use crate::catalog::rows::{
    target_values, RowValues, CONTENT_COLUMNS, DESCRIPTOR, FILE_STATS, FINGERPRINT, ROW_COLUMNS,
};

/// Owner text of a stored row: `(extension_name, extension_version)`.
pub(crate) type Owner = (String, String);

/// Path and owner of every stored row: all that planning needs of the rows it does not
/// rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The distinct stored owners.
    pub(crate) owners: Vec<Owner>,
    /// Every row: its path and the index of its owner in `owners`.
    pub(crate) rows: Vec<(String, usize)>,
}

/// A stored row as step 3 compares it with its target, borrowing the fetched text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredContent<'t> {
    pub(crate) source_path: &'t str,
    /// Values of [`CONTENT_COLUMNS`].
    pub(crate) content: [&'t str; 13],
    pub(crate) superseded_by: &'t str,
    /// `file_stats` is not `''`.
    pub(crate) has_file_stats: bool,
}

/// What [`StoredContent::from_fields`] reads: the path, [`CONTENT_COLUMNS`],
/// `superseded_by` and whether `file_stats` is set. `octet_length` takes the length
/// from the record header, so the stat records themselves are never loaded.
pub(crate) const STORED_CONTENT_COLUMNS: [&str; 16] = {
    let mut columns = ROW_COLUMNS;
    columns[FILE_STATS] = "octet_length(file_stats) > 0";
    columns
};

/// Index of `descriptor` in [`STORED_CONTENT_COLUMNS`].
pub(crate) const STORED_DESCRIPTOR: usize = DESCRIPTOR;

impl<'t> StoredContent<'t> {
    /// The row from the fields of [`STORED_CONTENT_COLUMNS`].
    pub(crate) fn from_fields(fields: [&'t str; 16]) -> StoredContent<'t> {
        let [source_path, content @ .., superseded_by, has_file_stats] = fields;
        StoredContent {
            source_path,
            content,
            superseded_by,
            has_file_stats: has_file_stats != "0",
        }
    }
}

/// The owner text an aggregate writes.
pub(crate) fn owner_of(id: &ExtensionId) -> Owner {
    (id.name.as_str().to_owned(), id.version.to_string())
}

/// What one pass over the stored rows finds.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    /// Step 1: rows `load_all` would skip and whose path is not live in the batch.
    pub(crate) prunes: Vec<(String, SkipReason)>,
    /// The rows that stay, sorted by path, with the index of their owner.
    kept: Vec<(String, usize)>,
    /// The distinct stored owners, and whether each is an aggregate of the batch.
    owners: Vec<(Owner, bool)>,
}

impl Survey {
    /// The owner of the kept row at `path`, if there is one.
    pub(crate) fn owner_at(&self, path: &str) -> Option<&Owner> {
        self.kept
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
            .map(|at| &self.owners[self.kept[at].1].0)
    }

    /// Kept rows owned by an aggregate of the batch; those without a target row are
    /// deleted (a delete intent of the owner, or a source it no longer has). Rows of
    /// anyone else are never touched.
    pub(crate) fn owned(&self) -> impl Iterator<Item = &str> {
        self.kept
            .iter()
            .filter(|(_, owner)| self.owners[*owner].1)
            .map(|(path, _)| path.as_str())
    }
}

/// Classifies every stored row once; each stored owner is parsed once.
pub(crate) fn survey(stored: Stored, batch: &[Extension], placement: &Placement) -> Survey {
    let batch_owners: HashSet<Owner> = batch.iter().map(|ext| owner_of(ext.id())).collect();
    let identities: Vec<Identity> = stored
        .owners
        .iter()
        .map(|(name, version)| placement.identity(name, version))
        .collect();
    // Built only if a row fails its placement check (rare).
    let mut live: Option<HashSet<&str>> = None;
    let mut survey = Survey {
        owners: stored
            .owners
            .into_iter()
            .map(|owner| {
                let in_batch = batch_owners.contains(&owner);
                (owner, in_batch)
            })
            .collect(),
        ..Survey::default()
    };
    survey.kept.reserve(stored.rows.len());
    for (source_path, owner) in stored.rows {
        if let Err(reason) = placement.check(&source_path, &identities[owner]) {
            let live = live.get_or_insert_with(|| {
                batch
                    .iter()
                    .flat_map(|ext| ext.sources())
                    .filter(|s| !s.state().is_tombstoned())
                    .map(|s| s.path().as_str())
                    .collect()
            });
            if !live.contains(source_path.as_str()) {
                survey.prunes.push((source_path, reason));
                continue;
            }
        }
        survey.kept.push((source_path, owner));
    }
    survey.kept.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    survey
}

/// Step 2: the row each path of the batch should have. A live source gives its row; a
/// path without one but with `Renamed` tombstones gives the tombstone of the aggregate
/// that owns the stored row, or else of the smallest id.
pub(crate) fn targets<'a>(
    batch: &'a [Extension],
    survey: &Survey,
) -> BTreeMap<&'a str, RowValues<'a>> {
    let mut rows: BTreeMap<&str, RowValues> = BTreeMap::new();
    let mut renamed: BTreeMap<&str, Vec<(&ExtensionId, RowValues)>> = BTreeMap::new();
    for ext in batch {
        for source in ext.sources() {
            let Some(values) = target_values(ext, source) else {
                continue;
            };
            let path = source.path().as_str();
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
        if rows.contains_key(path) {
            continue;
        }
        candidates.sort_by(|a, b| a.0.cmp(b.0));
        let owner = survey.owner_at(path);
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
pub(crate) fn changed_columns<'t>(
    current: &StoredContent<'_>,
    target: &'t RowValues<'_>,
) -> Vec<(&'static str, &'t str)> {
    let stored = &current.content;
    let mut changes: Vec<(&'static str, &str)> = CONTENT_COLUMNS
        .iter()
        .zip(stored.iter().zip(target.content.iter()))
        .filter(|(_, (old, new))| **old != new.as_ref())
        .map(|(column, (_, new))| (*column, new.as_ref()))
        .collect();
    if let Some(winner) = target.superseded_by {
        if current.superseded_by != winner {
            changes.push(("superseded_by", winner));
        }
    }
    if stored[FINGERPRINT] != target.content[FINGERPRINT] && current.has_file_stats {
        changes.push(("file_stats", ""));
    }
    changes
}

//! Loading aggregates from rows (spec 10 §5.3). Pure: the repository reads the rows
//! (one read transaction, one WAL snapshot, no lock) and hands them here one by one, as
//! text borrowed from the read; only what a `Source` keeps is copied. Loading never
//! writes; skipped rows stay until the next `save_all` prunes them.

use std::collections::{BTreeMap, HashMap, HashSet};

use fen_domain::ports::{FileStats, Loaded, SkipReason, SkippedRow};
use fen_domain::{CanonicalPath, Extension, Origin, RowStateTag, Source, SourceLocation};

use super::placement::{Identity, Placement};
use super::rows::{restore_source, CatalogRow};

/// Builds the aggregates of the rows it is given (in any order), skipping unreachable,
/// unowned and misfiled rows.
pub(crate) struct Assembler<'p> {
    placement: &'p Placement,
    /// Index into `groups` by stored `extension_name`, then `extension_version`: each
    /// stored owner is parsed once.
    owners: HashMap<String, HashMap<String, usize>>,
    /// One per stored owner, in order of appearance.
    groups: Vec<Group>,
    /// Skipped rows, and whether each is stored as `Indexed`.
    skipped: Vec<(SkippedRow, bool)>,
    /// `Tombstoned` rows: their winner counts only if its row exists and is `Indexed`
    /// (spec 10 §4.3), which is known once every row is in.
    tombstones: Vec<Tombstone>,
}

/// The rows of one stored owner.
struct Group {
    identity: Identity,
    sources: Vec<Source>,
    /// Per source: stored as `Indexed`.
    indexed: Vec<bool>,
    /// Non-empty stat records, by source path.
    stats: Vec<(CanonicalPath, FileStats)>,
}

/// A `Tombstoned` row, kept until the end.
struct Tombstone {
    fields: [String; 16],
    location: SourceLocation,
    origin: Origin,
    group: usize,
}

impl<'p> Assembler<'p> {
    pub(crate) fn new(placement: &'p Placement) -> Assembler<'p> {
        Assembler {
            placement,
            owners: HashMap::new(),
            groups: Vec::new(),
            skipped: Vec::new(),
            tombstones: Vec::new(),
        }
    }

    /// Takes one row.
    pub(crate) fn add(&mut self, row: CatalogRow<'_>) {
        let group = self.group_of(row.extension_name, row.extension_version);
        let placed = self
            .placement
            .locate_as(row.source_path, &self.groups[group].identity);
        let (path, origin, root) = match placed {
            Ok(placed) => placed,
            Err(reason) => {
                let skipped = SkippedRow {
                    source_path: row.source_path.to_owned(),
                    reason,
                };
                self.skipped.push((skipped, row.state == "Indexed"));
                return;
            }
        };
        let root = root.clone();
        let group_rows = &mut self.groups[group];
        if !row.file_stats.is_empty() {
            group_rows
                .stats
                .push((path.clone(), FileStats(row.file_stats.to_owned())));
        }
        let location = SourceLocation::from_canonical(path, root);
        if row.state.parse::<RowStateTag>() == Ok(RowStateTag::Tombstoned) {
            self.tombstones.push(Tombstone {
                fields: row.fields().map(str::to_owned),
                location,
                origin,
                group,
            });
            return;
        }
        let policy = self.placement.policy();
        // Only a tombstone asks about its winner.
        let source = restore_source(&row, location, origin, policy, |_| false);
        group_rows.sources.push(source);
        group_rows.indexed.push(row.state == "Indexed");
    }

    /// The index of the group of a stored owner.
    fn group_of(&mut self, name: &str, version: &str) -> usize {
        if let Some(index) = self.owners.get(name).and_then(|v| v.get(version)) {
            return *index;
        }
        let identity = self.placement.identity(name, version);
        // Two owner texts that parse to one id (none do today) share one aggregate.
        let same_id = |group: &Group| {
            let id = |identity| self.placement.owner(identity).map(|(id, _, _)| id);
            id(&identity).is_some() && id(&group.identity) == id(&identity)
        };
        let index = match self.groups.iter().position(same_id) {
            Some(index) => index,
            None => {
                self.groups.push(Group {
                    identity,
                    sources: Vec::new(),
                    indexed: Vec::new(),
                    stats: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        self.owners
            .entry(name.to_owned())
            .or_default()
            .insert(version.to_owned(), index);
        index
    }

    /// The aggregates, sorted by id, the skipped rows, sorted by path, and the stat
    /// records of the rows kept.
    pub(crate) fn finish(mut self) -> Loaded {
        self.restore_tombstones();
        let mut skipped: Vec<SkippedRow> = self.skipped.into_iter().map(|(row, _)| row).collect();
        let mut built = Vec::with_capacity(self.groups.len());
        for group in self.groups {
            // A group has sources only if its identity parsed.
            let Some((id, origin, root)) = self.placement.owner(&group.identity) else {
                continue;
            };
            if group.sources.is_empty() {
                continue;
            }
            // The paths, in case the aggregate cannot be built; one buffer, since that
            // does not happen: placement already guarantees I1 and the rest.
            let mut paths = String::new();
            let mut ends = Vec::with_capacity(group.sources.len());
            for source in &group.sources {
                paths.push_str(source.path().as_str());
                ends.push(paths.len());
            }
            match Extension::new(id.clone(), origin, root.clone(), group.sources) {
                Ok(extension) => built.push((extension, group.stats)),
                // Reported instead of failing the whole load.
                Err(_) => {
                    let mut start = 0;
                    for end in ends {
                        skipped.push(SkippedRow {
                            source_path: paths[start..end].to_owned(),
                            reason: SkipReason::Misfiled,
                        });
                        start = end;
                    }
                }
            }
        }
        built.sort_by(|a, b| a.0.id().cmp(b.0.id()));
        let mut extensions = Vec::with_capacity(built.len());
        let mut file_stats = BTreeMap::new();
        for (extension, stats) in built {
            extensions.push(extension);
            file_stats.extend(stats);
        }
        skipped.sort_by(|a, b| a.source_path.cmp(&b.source_path));
        Loaded {
            extensions,
            skipped,
            file_stats,
        }
    }

    /// Restores the `Tombstoned` rows now that every row is known.
    fn restore_tombstones(&mut self) {
        let tombstones = std::mem::take(&mut self.tombstones);
        if tombstones.is_empty() {
            return;
        }
        let indexed: HashSet<String> = self
            .groups
            .iter()
            .flat_map(|group| {
                group
                    .sources
                    .iter()
                    .zip(&group.indexed)
                    .filter(|(_, indexed)| **indexed)
                    .map(|(source, _)| source.path().to_string())
            })
            .chain(
                self.skipped
                    .iter()
                    .filter(|(_, indexed)| *indexed)
                    .map(|(row, _)| row.source_path.clone()),
            )
            .collect();
        let policy = self.placement.policy();
        for tombstone in tombstones {
            let fields = tombstone.fields.each_ref().map(String::as_str);
            let row = CatalogRow::from_fields(fields);
            let source = restore_source(
                &row,
                tombstone.location,
                tombstone.origin,
                policy,
                |winner| indexed.contains(winner),
            );
            let group = &mut self.groups[tombstone.group];
            group.sources.push(source);
            group.indexed.push(false);
        }
    }
}

//! Entry-point discovery under one scan root (spec 10 §1.11, spec 30 §3.1).
//!
//! The walk reads each directory once, sorted by name, with no ignore files
//! (`.gitignore` has no say in what is an extension), never descending a symlinked
//! directory: the rules `ignore::WalkBuilder` applied here with every standard filter
//! off, without its per-entry bookkeeping. Candidates that are unchanged since some
//! catalog row recorded them are classified from that record, so an unchanged tree
//! costs one stat per file and no reads (spec 10 §6.2).
//!
//! A candidate with a row of its own is first checked against that row's first record
//! (the entry's own record), scanned straight from the row's text; only when that does
//! not settle it (a helper, a changed file) are the records of every row under the
//! boundary scanned and indexed by boundary-relative path, once per walk.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::Hasher;
use std::path::{Path, PathBuf};

use fen_domain::ports::indexing::{ScanRoot, ScannedEntry};
use fen_domain::ports::FileStats;
use fen_domain::{CanonicalPath, PathPolicy, SourceLocation};

use super::cache::{FastHasher, FastMap, FreshnessCache};
use super::scan_text::ExportMask;
use super::stats::{FileRecord, Probe, StatsText};

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
    let kinds = root.loader_kind.kinds();
    let records = Records::new(root, known, policy);
    let mut rel = RelBuilder::new(root);
    let mut out = Vec::new();
    visit_dir(&root.dir, &mut |path| {
        let Ok(canonical) = CanonicalPath::new(&path, policy) else {
            return;
        };
        let unreadable = match records.classify(&path, &canonical, rel.of(&path), cache) {
            Some(Known::Readable(exports)) if exports.matches_any(kinds) => None,
            Some(Known::Readable(_)) => return,
            Some(Known::Unreadable) | None => {
                let read = cache.read(&path, &root.boundary);
                match &read.unreadable {
                    Some(reason) => Some(reason.clone()),
                    None if read.exports.matches_any(kinds) => None,
                    None => return,
                }
            }
        };
        out.push(ScannedEntry {
            location: SourceLocation::from_canonical(canonical, root.extension_root.clone()),
            root: root.clone(),
            native_path: path,
            unreadable,
        });
    });
    out.sort_by(|a, b| a.location.cmp(&b.location));
    out
}

pub use fen_domain::layout::is_candidate_name;

/// What a clean record says about a candidate.
enum Known {
    Readable(ExportMask),
    Unreadable,
}

impl Known {
    fn of(record: &FileRecord<'_>) -> Known {
        if record.has_digest() {
            Known::Readable(record.exports())
        } else {
            Known::Unreadable
        }
    }
}

/// Calls `visit` with the path of every candidate file below `dir`, depth first, each
/// directory in file-name order. Hidden entries, directories named `_*` and
/// `node_modules`, and anything unreadable are skipped; symlinks are reported (when
/// their name is a candidate's) but never descended.
fn visit_dir(dir: &Path, visit: &mut dyn FnMut(PathBuf)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // `(is a directory to descend, name)` of the entries that pass the filters.
    let mut children: Vec<(bool, OsString)> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let file_type = entry.file_type().ok()?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text.starts_with('.') {
                return None;
            }
            if file_type.is_dir() {
                let skipped = text.starts_with('_') || text == "node_modules";
                return (!skipped).then_some((true, name));
            }
            let candidate = (file_type.is_file() || file_type.is_symlink())
                && name.to_str().is_some_and(is_candidate_name);
            candidate.then_some((false, name))
        })
        .collect();
    children.sort_unstable_by(|a, b| a.1.cmp(&b.1));
    for (is_dir, name) in children {
        let path = dir.join(name);
        if is_dir {
            visit_dir(&path, visit);
        } else {
            visit(path);
        }
    }
}

/// Spells a walked path relative to the boundary, as records name files.
struct RelBuilder {
    /// `root.dir` as text, and its own boundary-relative spelling; `None` when the root
    /// is not UTF-8 or not under its boundary (its files then match no record).
    base: Option<(String, String)>,
    buf: String,
}

impl RelBuilder {
    fn new(root: &ScanRoot) -> RelBuilder {
        let base = root.dir.to_str().and_then(|dir| {
            let rel = root.dir.strip_prefix(&root.boundary).ok()?;
            let rel: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
            Some((dir.to_owned(), rel?.join("/")))
        });
        RelBuilder {
            base,
            buf: String::new(),
        }
    }

    /// The boundary-relative path of `path`, a path the walk built below `root.dir`.
    fn of(&mut self, path: &Path) -> Option<&str> {
        let (dir, dir_rel) = self.base.as_ref()?;
        let below = path.to_str()?.strip_prefix(dir.as_str())?;
        let below = below.trim_start_matches(std::path::is_separator);
        self.buf.clear();
        self.buf.push_str(dir_rel);
        if !dir_rel.is_empty() {
            self.buf.push('/');
        }
        if std::path::MAIN_SEPARATOR == '/' {
            self.buf.push_str(below);
        } else {
            self.buf.extend(below.chars().map(
                |c| {
                    if std::path::is_separator(c) {
                        '/'
                    } else {
                        c
                    }
                },
            ));
        }
        Some(&self.buf)
    }
}

/// The stat records held by the rows under one boundary (boundaries never nest, so a
/// row under this boundary has its whole graph in it).
struct Records<'k> {
    known: &'k BTreeMap<CanonicalPath, FileStats>,
    boundary: Option<CanonicalPath>,
    /// Every row's records with their index, built for the first candidate that its
    /// own row does not settle.
    all: OnceCell<AllRecords<'k>>,
}

struct AllRecords<'k> {
    /// Each row's `takenAtNs` and records.
    rows: Vec<(i64, Vec<FileRecord<'k>>)>,
    /// `(row, position)` of each record, by the hash of its boundary-relative path.
    by_rel: FastMap<u64, Vec<(u32, u32)>>,
}

impl<'k> Records<'k> {
    fn new(
        root: &ScanRoot,
        known: &'k BTreeMap<CanonicalPath, FileStats>,
        policy: PathPolicy,
    ) -> Records<'k> {
        Records {
            known,
            boundary: CanonicalPath::new(&root.boundary, policy).ok(),
            all: OnceCell::new(),
        }
    }

    /// What a clean record held for the candidate says, if any row holds one.
    fn classify(
        &self,
        path: &Path,
        canonical: &CanonicalPath,
        rel: Option<&str>,
        cache: &mut FreshnessCache,
    ) -> Option<Known> {
        let boundary = self.boundary.as_ref()?;
        let rel = rel?;
        let probe = cache.probe(path);
        if let Some(stats) = self.known.get(canonical) {
            if canonical.starts_under(boundary) {
                if let Some(known) = own_record(stats, rel, &probe) {
                    return Some(known);
                }
            }
        }
        let all = self
            .all
            .get_or_init(|| AllRecords::new(self.known, boundary));
        all.by_rel
            .get(&hash_rel(rel))?
            .iter()
            .find_map(|(row, position)| {
                let (taken_at_ns, records) = all.rows.get(*row as usize)?;
                let record = records.get(*position as usize)?;
                (record.rel() == rel && record.is_clean(&probe, *taken_at_ns))
                    .then(|| Known::of(record))
            })
    }
}

impl<'k> AllRecords<'k> {
    fn new(known: &'k BTreeMap<CanonicalPath, FileStats>, boundary: &CanonicalPath) -> Self {
        let rows: Vec<(i64, Vec<FileRecord<'k>>)> = known
            .range(boundary.clone()..)
            .take_while(|(row, _)| row.as_str().starts_with(boundary.as_str()))
            .filter(|(row, _)| row.starts_under(boundary))
            .filter_map(|(_, stats)| {
                let text = StatsText::parse(stats)?;
                let records = text.records().collect::<Result<Vec<_>, _>>().ok()?;
                Some((text.taken_at_ns, records))
            })
            .collect();
        let mut by_rel: FastMap<u64, Vec<(u32, u32)>> = FastMap::default();
        for (row, (_, records)) in rows.iter().enumerate() {
            for (position, record) in records.iter().enumerate() {
                if let (Ok(row), Ok(position)) = (u32::try_from(row), u32::try_from(position)) {
                    by_rel
                        .entry(hash_rel(record.rel()))
                        .or_default()
                        .push((row, position));
                }
            }
        }
        AllRecords { rows, by_rel }
    }
}

fn hash_rel(rel: &str) -> u64 {
    let mut hasher = FastHasher::default();
    hasher.write(rel.as_bytes());
    hasher.finish()
}

/// The entry's own record in its row (the row's first record), when it is clean.
fn own_record(stats: &FileStats, rel: &str, probe: &Probe) -> Option<Known> {
    let text = StatsText::parse(stats)?;
    let first = text.records().next()?.ok()?;
    (first.rel() == rel && first.is_clean(probe, text.taken_at_ns)).then(|| Known::of(&first))
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

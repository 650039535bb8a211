//! The fingerprint of an entry point and its local import closure (spec 10 §1.9,
//! spec 30 §3.4), with the stat fast path of spec 10 §6.2.
//!
//! The closure is found by text scanning (`scan_text`), resolved lexically with exact
//! file names, and limited to the boundary. Each file contributes the line
//! `<rel>:<sha256>` (or `<rel>:MISSING`); `SourceFingerprint::from_lines` combines them.
//!
//! With stored records (`FileStats`), a file whose stat equals its non-racy record is
//! taken from the record (digest and import edges) without being read; only the
//! other files are read, through the pass's `FreshnessCache`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use fen_domain::ports::indexing::Fingerprinted;
use fen_domain::ports::FileStats;
use fen_domain::repo_root::normalize_lexically;
use fen_domain::{FingerprintLine, SourceFingerprint};

use super::cache::FreshnessCache;
use super::scan_text::ExportMask;
use super::stats::{self, FileRecord, Probe, StoredStats, RECORDS_SUPPORTED};

/// Computes the fingerprint of `entry` within `boundary`; never fails.
///
/// `known` is the row's fingerprint with the stat records stored for it. Records that
/// do not describe that fingerprint are ignored. A file whose stat equals its non-racy
/// record is not read; when that holds for every file, nothing is read and the result
/// is the row's fingerprint. `hashed` tells whether any file had to be hashed.
///
/// `fresh_stats` carries new records for every file of the graph when storing them
/// gains something: some file was hashed, and either one of the hashed files now has a
/// non-racy record, or the fingerprint differs from the row's (the source is then
/// rebuilt and the records are stored with the index result; a racy one is refreshed
/// by a later pass). It is `None` on hosts without inode and ctime.
pub fn fingerprint(
    entry: &Path,
    boundary: &Path,
    known: Option<(&SourceFingerprint, &FileStats)>,
    cache: &mut FreshnessCache,
) -> Fingerprinted {
    let entry = normalize_lexically(entry);
    let boundary = normalize_lexically(boundary);
    let entry_rel = rel_text(&entry, &boundary);
    let row_fingerprint = known.map(|(fp, _)| *fp);
    let stored = known.and_then(|(fp, stats)| {
        cache
            .stored(stats)
            .filter(|old| described_fingerprint(old, &entry_rel) == Some(*fp))
    });
    let graph = collect_graph(&entry, entry_rel, &boundary, stored.as_deref(), cache);

    let lines = graph
        .iter()
        .map(|file| FingerprintLine {
            relative: file.rel.clone(),
            digest: file.digest,
        })
        .collect();
    let entry_readable = graph.first().is_some_and(|file| file.digest.is_some());
    let fp = SourceFingerprint::from_lines(lines, entry_readable);

    let hashed = graph.iter().any(|file| file.hashed);
    let fresh_stats = if RECORDS_SUPPORTED && hashed {
        let taken_at_ns = graph
            .iter()
            .map(|file| file.probe.taken_at_ns)
            .min()
            .unwrap_or_else(stats::now_ns);
        let useful_record = graph
            .iter()
            .any(|file| file.hashed && !file.probe.is_racy(taken_at_ns));
        (useful_record || row_fingerprint != Some(fp)).then(|| encode_graph(&graph, taken_at_ns))
    } else {
        None
    };
    Fingerprinted {
        fingerprint: fp,
        hashed,
        fresh_stats,
    }
}

/// One file of the closure.
struct GraphFile {
    rel: String,
    digest: Option<[u8; 32]>,
    deps: Vec<String>,
    probe: Probe,
    exports: ExportMask,
    hashed: bool,
}

/// Breadth-first closure from the entry; the entry is first.
fn collect_graph(
    entry: &Path,
    entry_rel: String,
    boundary: &Path,
    stored: Option<&StoredStats>,
    cache: &mut FreshnessCache,
) -> Vec<GraphFile> {
    let mut graph = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([entry_rel.clone()]);
    let mut queue = VecDeque::from([(entry.to_path_buf(), entry_rel)]);
    while let Some((path, rel)) = queue.pop_front() {
        let probe = cache.probe(&path);
        let clean = stored.and_then(|old| {
            old.get(&rel)
                .filter(|record| record.is_clean(&probe, old.taken_at_ns))
                .map(|record| (old, record))
        });
        let file = match clean {
            Some((old, record)) => GraphFile {
                digest: record.digest(),
                deps: old.dep_rels(record).map(str::to_owned).collect(),
                exports: record.exports(),
                hashed: false,
                rel,
                probe,
            },
            None => {
                let read = cache.read(&path, boundary);
                let mut deps: Vec<String> = Vec::new();
                for spec in &read.imports {
                    if let Some((_, dep_rel)) = resolve(&path, spec, boundary) {
                        if !deps.contains(&dep_rel) {
                            deps.push(dep_rel);
                        }
                    }
                }
                GraphFile {
                    digest: read.digest,
                    deps,
                    exports: read.exports,
                    hashed: true,
                    rel,
                    probe,
                }
            }
        };
        for dep in &file.deps {
            if seen.insert(dep.clone()) {
                queue.push_back((join_rel(boundary, dep), dep.clone()));
            }
        }
        graph.push(file);
    }
    graph
}

/// Resolves a local specifier against the importer's directory, lexically, with the
/// exact file name. `None` when the result is not strictly inside `boundary`.
pub(crate) fn resolve(importer: &Path, spec: &str, boundary: &Path) -> Option<(PathBuf, String)> {
    let dir = importer.parent()?;
    let joined = normalize_lexically(&dir.join(spec));
    let rel = joined.strip_prefix(boundary).ok()?;
    if rel.as_os_str().is_empty() {
        return None;
    }
    let rel = rel_components(rel);
    Some((joined, rel))
}

/// `path` relative to `boundary` with `/` separators, spelled as given; the whole path
/// when it is not under the boundary.
pub(crate) fn rel_text(path: &Path, boundary: &Path) -> String {
    match path.strip_prefix(boundary) {
        Ok(rel) => rel_components(rel),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

/// The native path of a boundary-relative path.
pub(crate) fn join_rel(boundary: &Path, rel: &str) -> PathBuf {
    let mut path = boundary.to_path_buf();
    for segment in rel.split('/') {
        path.push(segment);
    }
    path
}

fn rel_components(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The fingerprint the stored records describe: the closure reached from the entry's
/// record through the stored import edges.
fn described_fingerprint(old: &StoredStats, entry_rel: &str) -> Option<SourceFingerprint> {
    let entry = old.get(entry_rel)?;
    let mut seen: HashSet<&str> = HashSet::from([entry.rel()]);
    let mut queue = VecDeque::from([entry]);
    let mut lines = Vec::new();
    while let Some(record) = queue.pop_front() {
        lines.push(FingerprintLine {
            relative: record.rel().to_owned(),
            digest: record.digest(),
        });
        for dep in old.dep_rels(record) {
            if seen.insert(dep) {
                queue.extend(old.get(dep));
            }
        }
    }
    Some(SourceFingerprint::from_lines(
        lines,
        entry.digest().is_some(),
    ))
}

fn encode_graph(graph: &[GraphFile], taken_at_ns: i64) -> FileStats {
    let index: HashMap<&str, u32> = graph
        .iter()
        .enumerate()
        .filter_map(|(i, file)| Some((file.rel.as_str(), u32::try_from(i).ok()?)))
        .collect();
    let records = graph
        .iter()
        .map(|file| {
            FileRecord(
                file.rel.clone(),
                file.digest.as_ref().map(stats::encode_hex),
                file.deps
                    .iter()
                    .filter_map(|dep| index.get(dep.as_str()).copied())
                    .collect(),
                file.probe.target,
                file.probe.link,
                file.exports.bits(),
            )
        })
        .collect();
    stats::encode(taken_at_ns, records)
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

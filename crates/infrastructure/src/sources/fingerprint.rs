//! The fingerprint of an entry point and its local import closure (spec 10 §1.9,
//! spec 30 §3.4), with the stat fast path of spec 10 §6.2.
//!
//! The closure is found by text scanning (`scan_text`), resolved lexically with exact
//! file names, and limited to the boundary. Each file contributes the line
//! `<rel>:<sha256>` (or `<rel>:MISSING`); `SourceFingerprint::from_lines` combines them.
//!
//! With stored records (`FileStats`) taken for the row's fingerprint, a file whose stat
//! equals its non-racy record is taken from the record (digest and import edges)
//! without being read; only the other files are read, through the pass's
//! `FreshnessCache`. When every recorded file is unchanged, the closure is the recorded
//! one, so the row's fingerprint is returned as it is: one stat per file, no read, no
//! hashing, and the records are scanned one at a time straight from their text.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use fen_domain::ports::indexing::Fingerprinted;
use fen_domain::ports::FileStats;
use fen_domain::repo_root::normalize_lexically;
use fen_domain::{FingerprintLine, SourceFingerprint};

use super::cache::{segments_are_names, FreshnessCache};
use super::scan_text::ExportMask;
use super::stats::{self, NewRecord, Probe, StatsText, StoredStats, RECORDS_SUPPORTED};
use crate::bundler::npm::{self, Foreign};

/// Computes the fingerprint of `entry` within `boundary`; never fails.
///
/// `known` is the row's fingerprint with the stat records stored for it. Records that
/// were not taken for that fingerprint are ignored. A file whose stat equals its
/// non-racy record is not read; when that holds for every file, nothing is read and
/// the result is the row's fingerprint. `hashed` tells whether any file had to be
/// hashed.
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
    let entry = lexical(entry);
    let boundary = lexical(boundary);
    let entry_rel = rel_text(&entry, &boundary);
    let row_fingerprint = known.map(|(fp, _)| *fp);
    let text = known.and_then(|(fp, stats)| StatsText::parse(stats).filter(|t| t.describes(fp)));
    if let (Some(text), Some(fp)) = (&text, row_fingerprint) {
        if all_unchanged(text, &entry_rel, &boundary, cache) {
            return Fingerprinted {
                fingerprint: fp,
                hashed: false,
                fresh_stats: None,
            };
        }
    }
    let stored = text
        .and_then(StoredStats::from_text)
        .filter(|old| old.get(&entry_rel).is_some());
    let graph = collect_graph(
        &entry,
        entry_rel.into_owned(),
        &boundary,
        stored.as_ref(),
        cache,
    );

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
        (useful_record || row_fingerprint != Some(fp))
            .then(|| encode_graph(&graph, &fp, taken_at_ns))
    } else {
        None
    };
    Fingerprinted {
        fingerprint: fp,
        hashed,
        fresh_stats,
    }
}

/// The boundary-relative files of `entry`'s import closure, entry first: the files the
/// fingerprint covers (relative imports and, for package imports, each package's
/// `package.json` and resolved modules). Missing files are listed too. Used by `pack`
/// to find the `node_modules` files an extension needs.
pub fn import_closure(entry: &Path, boundary: &Path, cache: &mut FreshnessCache) -> Vec<String> {
    let entry = lexical(entry);
    let boundary = lexical(boundary);
    let entry_rel = rel_text(&entry, &boundary).into_owned();
    collect_graph(&entry, entry_rel, &boundary, None, cache)
        .into_iter()
        .map(|file| file.rel)
        .collect()
}

/// True when the records (taken for the row's fingerprint, the entry's first) are
/// complete and every file they name still matches its non-racy record. The graph is
/// then the recorded one: every file's content, and so its imports, is unchanged.
fn all_unchanged(
    text: &StatsText<'_>,
    entry_rel: &str,
    boundary: &Path,
    cache: &mut FreshnessCache,
) -> bool {
    let mut path = cache.take_path_buffer();
    let mut count = 0usize;
    let unchanged = text.records().all(|record| {
        let Ok(record) = record else {
            return false;
        };
        if count == 0 && record.rel() != entry_rel {
            return false;
        }
        count += 1;
        join_rel_into(&mut path, boundary, record.rel());
        let probe = cache.probe(Path::new(&path));
        record.is_clean(&probe, text.taken_at_ns)
    });
    cache.put_path_buffer(path);
    unchanged && count > 0
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
    stored: Option<&StoredStats<'_>>,
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
                // A package.json is a graph file (its version and exports decide the
                // resolution) but imports nothing.
                let imports = if rel.ends_with(".json") {
                    &[][..]
                } else {
                    &read.imports[..]
                };
                for spec in imports {
                    if spec.starts_with("./") || spec.starts_with("../") {
                        if let Some((_, dep_rel)) = resolve(&path, spec, boundary) {
                            if !deps.contains(&dep_rel) {
                                deps.push(dep_rel);
                            }
                        }
                    } else {
                        for dep_rel in package_files(boundary, &rel, spec) {
                            if !deps.contains(&dep_rel) {
                                deps.push(dep_rel);
                            }
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

/// The graph files of a package import (issue 17): the package's `package.json` and
/// the module it resolves to, with the bundler's rules. A failed resolution adds
/// nothing: the bundle then fails to build, and a `BundleBuildFailed` row is retried on
/// every pass, so installing the package repairs it.
fn package_files(boundary: &Path, importer_rel: &str, spec: &str) -> Vec<String> {
    let Foreign::Package(package) = npm::classify_foreign(spec) else {
        return Vec::new();
    };
    match npm::resolve_package(boundary, importer_rel, &package, boundary) {
        Ok(resolved) => vec![resolved.manifest, resolved.target],
        Err(_) => Vec::new(),
    }
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

/// `path` normalised lexically (`normalize_lexically`), borrowed when it already is.
pub(crate) fn lexical(path: &Path) -> Cow<'_, Path> {
    if is_lexically_normal(path) {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normalize_lexically(path))
    }
}

/// True when `normalize_lexically` would return the path unchanged: no empty, `.` or
/// `..` segment after the first, and a first segment that is the root or a name.
#[cfg(unix)]
fn is_lexically_normal(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let text = path.as_os_str().as_bytes();
    let first = text.split(|byte| *byte == b'/').next().unwrap_or_default();
    first != b"." && first != b".." && segments_are_names(text, false)
}

#[cfg(not(unix))]
fn is_lexically_normal(_path: &Path) -> bool {
    false
}

/// `path` relative to `boundary` with `/` separators, spelled as given; the whole path
/// when it is not under the boundary. Both must be lexically normal (see [`lexical`]).
pub(crate) fn rel_text<'p>(path: &'p Path, boundary: &Path) -> Cow<'p, str> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let (text, base) = (path.as_os_str().as_bytes(), boundary.as_os_str().as_bytes());
        if let Some(rest) = text.strip_prefix(base).filter(|_| !base.is_empty()) {
            let rest = match rest.split_first() {
                None => Some(rest),
                Some((b'/', after)) => Some(after),
                Some(_) if base.ends_with(b"/") => Some(rest),
                Some(_) => None,
            };
            if let Some(rest) = rest {
                return String::from_utf8_lossy(rest);
            }
        }
    }
    match path.strip_prefix(boundary) {
        Ok(rel) => Cow::Owned(rel_components(rel)),
        Err(_) => path.to_string_lossy(),
    }
}

/// The native path of a boundary-relative path.
pub(crate) fn join_rel(boundary: &Path, rel: &str) -> PathBuf {
    let mut path = OsString::new();
    join_rel_into(&mut path, boundary, rel);
    PathBuf::from(path)
}

/// Writes the native path of a boundary-relative path into `out`, reusing its buffer
/// (the same path as pushing each segment onto `boundary`).
#[cfg(unix)]
pub(crate) fn join_rel_into(out: &mut OsString, boundary: &Path, rel: &str) {
    use std::os::unix::ffi::OsStrExt;
    let base = boundary.as_os_str();
    out.clear();
    out.reserve(base.len() + 1 + rel.len());
    out.push(base);
    if !base.is_empty() && !base.as_bytes().ends_with(b"/") {
        out.push("/");
    }
    out.push(rel);
}

/// Writes the native path of a boundary-relative path into `out`.
#[cfg(not(unix))]
pub(crate) fn join_rel_into(out: &mut OsString, boundary: &Path, rel: &str) {
    let mut path = boundary.to_path_buf();
    for segment in rel.split('/') {
        path.push(segment);
    }
    *out = path.into_os_string();
}

fn rel_components(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn encode_graph(graph: &[GraphFile], fp: &SourceFingerprint, taken_at_ns: i64) -> FileStats {
    let index: HashMap<&str, u32> = graph
        .iter()
        .enumerate()
        .filter_map(|(i, file)| Some((file.rel.as_str(), u32::try_from(i).ok()?)))
        .collect();
    let records: Vec<NewRecord> = graph
        .iter()
        .map(|file| {
            NewRecord(
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
    stats::encode(fp, taken_at_ns, &records)
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

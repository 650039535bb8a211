//! Stat records and the text format of `FileStats` (spec 10 §6.2, spec 30 §3.4).
//!
//! A row's `FileStats` is versioned compact JSON, read only by this module:
//!
//! ```text
//! {"v":1,"takenAtNs":N,"files":[[rel,digest,deps,target,link,exports],...]}
//! ```
//!
//! One entry per file of the source's graph, the entry first, named-but-missing files
//! included: `rel` is the path relative to the boundary as in the fingerprint line;
//! `digest` the lower-case hex SHA-256 of the bytes, or `null` for `MISSING`; `deps`
//! the indices of the files it imports; `target` the stat record
//! `[size, mtimeNs, ctimeNs, ino, dev]` of the file (through a symlink), `null` when it
//! does not exist; `link` the record of the symlink itself, `null` for a non-symlink;
//! `exports` the export-key bits of the pre-check (`ExportMask`). `takenAtNs` is the
//! wall-clock time, taken before the first of the stats and reads behind the records.
//!
//! Storing digests and import edges lets a pass that finds one changed file re-read
//! only that file. Unknown versions or malformed text read as "no records": every file
//! is hashed, which is always correct.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use fen_domain::ports::FileStats;
use serde::{Deserialize, Serialize};

use super::scan_text::ExportMask;

/// The format version written and accepted.
const VERSION: u32 = 1;

/// Filesystem timestamp granularity allowed for: a record whose mtime is not older
/// than `takenAt - 1 s` is racy (the file may have changed within the same tick after
/// it was read), so it never proves a file unchanged.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

/// True where the standard library exposes inode and ctime (the fast path is on).
pub(crate) const RECORDS_SUPPORTED: bool = cfg!(unix);

/// `(size, mtime_ns, ctime_ns, inode, device)` of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatRecord(pub u64, pub i64, pub i64, pub u64, pub u64);

/// One stat of a path, as taken during a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Wall-clock time just before the stat.
    pub taken_at_ns: i64,
    /// The file's record, through a symlink; `None` when absent or dangling.
    pub target: Option<StatRecord>,
    /// The record of the symlink itself; `None` for anything else.
    pub link: Option<StatRecord>,
    /// The path itself is a symlink.
    pub is_symlink: bool,
}

/// One file of a stored graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileRecord(
    pub String,
    pub Option<String>,
    pub Vec<u32>,
    pub Option<StatRecord>,
    pub Option<StatRecord>,
    pub u8,
);

/// Parsed `FileStats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredStats {
    pub taken_at_ns: i64,
    pub files: Vec<FileRecord>,
    by_rel: HashMap<String, usize>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StatsDoc {
    v: u32,
    taken_at_ns: i64,
    files: Vec<FileRecord>,
}

/// Stats `path` without following a final symlink, and, for a symlink, its target too.
/// On hosts without inode and ctime no record is taken.
pub(crate) fn probe(path: &Path) -> Probe {
    let taken_at_ns = now_ns();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Probe {
            taken_at_ns,
            target: std::fs::metadata(path).ok().and_then(|m| record(&m)),
            link: record(&meta),
            is_symlink: true,
        },
        Ok(meta) => Probe {
            taken_at_ns,
            target: record(&meta),
            link: None,
            is_symlink: false,
        },
        Err(_) => Probe {
            taken_at_ns,
            target: None,
            link: None,
            is_symlink: false,
        },
    }
}

/// Nanoseconds since the Unix epoch (0 before it).
pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Probe {
    /// True when a record holding this probe's stats would be racy at `taken_at_ns`.
    pub fn is_racy(&self, taken_at_ns: i64) -> bool {
        is_racy(self.target.as_ref(), taken_at_ns) || is_racy(self.link.as_ref(), taken_at_ns)
    }
}

impl FileRecord {
    /// The boundary-relative path.
    pub fn rel(&self) -> &str {
        &self.0
    }

    /// The stored digest; `None` is `MISSING`. A malformed digest also reads as
    /// `None`, which only makes the fingerprint differ (and the source stale).
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.1.as_deref().and_then(decode_hex32)
    }

    /// The stored export-key bits of the pre-check.
    pub fn exports(&self) -> ExportMask {
        ExportMask::from_bits(self.5)
    }

    /// True when `probe` equals the record and the record is not racy: the file is
    /// unchanged since it was hashed, without reading it.
    pub fn is_clean(&self, probe: &Probe, taken_at_ns: i64) -> bool {
        RECORDS_SUPPORTED
            && self.3 == probe.target
            && self.4 == probe.link
            && !is_racy(self.3.as_ref(), taken_at_ns)
            && !is_racy(self.4.as_ref(), taken_at_ns)
    }
}

impl StoredStats {
    /// Parses stored text; `None` for another version or malformed text.
    pub fn parse(stats: &FileStats) -> Option<StoredStats> {
        let doc: StatsDoc = serde_json::from_str(&stats.0).ok()?;
        if doc.v != VERSION {
            return None;
        }
        let by_rel = doc
            .files
            .iter()
            .enumerate()
            .map(|(index, file)| (file.0.clone(), index))
            .collect();
        Some(StoredStats {
            taken_at_ns: doc.taken_at_ns,
            files: doc.files,
            by_rel,
        })
    }

    /// The record of one file.
    pub fn get(&self, rel: &str) -> Option<&FileRecord> {
        self.by_rel.get(rel).map(|index| &self.files[*index])
    }

    /// The boundary-relative paths a file imports.
    pub fn dep_rels<'s>(&'s self, file: &'s FileRecord) -> impl Iterator<Item = &'s str> + 's {
        file.2.iter().filter_map(|index| {
            let index = usize::try_from(*index).ok()?;
            self.files.get(index).map(FileRecord::rel)
        })
    }
}

/// Serialises records in the stored format.
pub(crate) fn encode(taken_at_ns: i64, files: Vec<FileRecord>) -> FileStats {
    let doc = StatsDoc {
        v: VERSION,
        taken_at_ns,
        files,
    };
    // Serialising plain strings, integers and vectors cannot fail.
    FileStats(serde_json::to_string(&doc).unwrap_or_default())
}

/// Lower-case hex of a digest.
pub(crate) fn encode_hex(bytes: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (index, pair) in bytes.chunks_exact(2).enumerate() {
        out[index] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn is_racy(record: Option<&StatRecord>, taken_at_ns: i64) -> bool {
    record.is_some_and(|r| r.1 >= taken_at_ns.saturating_sub(RACY_WINDOW_NS))
}

#[cfg(unix)]
fn record(meta: &std::fs::Metadata) -> Option<StatRecord> {
    use std::os::unix::fs::MetadataExt;
    let ns = |secs: i64, nsec: i64| secs.saturating_mul(1_000_000_000).saturating_add(nsec);
    Some(StatRecord(
        meta.size(),
        ns(meta.mtime(), meta.mtime_nsec()),
        ns(meta.ctime(), meta.ctime_nsec()),
        meta.ino(),
        meta.dev(),
    ))
}

#[cfg(not(unix))]
fn record(_meta: &std::fs::Metadata) -> Option<StatRecord> {
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    fn file(rel: &str, mtime_ns: i64) -> FileRecord {
        FileRecord(
            rel.to_owned(),
            Some(encode_hex(&[7; 32])),
            vec![1],
            Some(StatRecord(3, mtime_ns, mtime_ns, 11, 12)),
            None,
            1,
        )
    }

    #[test]
    fn round_trip_and_lookup() {
        let stats = encode(
            5_000_000_000,
            vec![file("models/a.ts", 1), file("lib/b.ts", 2)],
        );
        assert!(stats
            .0
            .starts_with(r#"{"v":1,"takenAtNs":5000000000,"files":[["models/a.ts","#));
        let stored = StoredStats::parse(&stats).unwrap();
        let entry = stored.get("models/a.ts").unwrap();
        assert_eq!(entry.digest(), Some([7; 32]));
        assert_eq!(stored.dep_rels(entry).collect::<Vec<_>>(), ["lib/b.ts"]);
        assert_eq!(stored.get("nope.ts"), None);
    }

    #[test]
    fn unknown_versions_and_garbage_are_no_records() {
        for text in ["", "{}", r#"{"v":2,"takenAtNs":0,"files":[]}"#, "not json"] {
            assert_eq!(
                StoredStats::parse(&FileStats(text.to_owned())),
                None,
                "{text}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn racy_records_are_never_clean() {
        let taken_at = 10 * RACY_WINDOW_NS;
        let old = file("a.ts", taken_at - 2 * RACY_WINDOW_NS);
        let racy = file("a.ts", taken_at - RACY_WINDOW_NS / 2);
        let probe_of = |f: &FileRecord| Probe {
            taken_at_ns: taken_at + 1,
            target: f.3,
            link: None,
            is_symlink: false,
        };
        assert!(old.is_clean(&probe_of(&old), taken_at));
        assert!(!racy.is_clean(&probe_of(&racy), taken_at));
        let mut moved = probe_of(&old);
        moved.target = Some(StatRecord(3, old.3.unwrap().1, 99, 11, 12));
        assert!(!old.is_clean(&moved, taken_at));
    }
}

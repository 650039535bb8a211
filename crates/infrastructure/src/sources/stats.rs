//! Stat records and the text format of `FileStats` (spec 10 §6.2, spec 30 §3.4).
//!
//! A row's `FileStats` is versioned compact JSON, written and read only by this module:
//!
//! ```text
//! {"v":2,"fp":F,"takenAtNs":N,"files":[[rel,digest,deps,target,link,exports],...]}
//! ```
//!
//! `fp` is the stored text of the fingerprint the records were taken for (the
//! fingerprint of exactly this graph), so checking that the records describe a row's
//! fingerprint is one comparison, not a re-hash. One entry per file of the source's
//! graph, the entry first, named-but-missing files included: `rel` is the path
//! relative to the boundary as in the fingerprint line; `digest` the lower-case hex
//! SHA-256 of the bytes, or `null` for `MISSING`; `deps` the indices of the files it
//! imports; `target` the stat record `[size, mtimeNs, ctimeNs, ino, dev]` of the file
//! (through a symlink), `null` when it does not exist; `link` the record of the symlink
//! itself, `null` for a non-symlink; `exports` the export-key bits of the pre-check
//! (`ExportMask`). `takenAtNs` is the wall-clock time, taken before the first of the
//! stats and reads behind the records.
//!
//! Storing digests and import edges lets a pass that finds one changed file re-read
//! only that file. The text is read by a small parser of exactly the layout written
//! here, borrowing from the text and scanning records only as far as they are needed
//! (the warm pass over an unchanged tree never holds more than one record at a time).
//! A record is compared with a fresh stat as text: each `Probe` carries its
//! `target,link` spelled as stored, and integers have one spelling, so equal text is
//! equal records. The numbers, import edges and everything else are parsed and
//! checked only when all records of a row are needed ([`StoredStats`]). Other versions
//! (`v` 1 had no `fp`) and malformed text read as "no records": every file is hashed
//! once and the records are refreshed, which is always correct.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fen_domain::ports::FileStats;
use fen_domain::SourceFingerprint;
use serde::Serialize;

use super::scan_text::ExportMask;

/// The format version written and accepted.
const VERSION: u32 = 2;

/// The fixed start of the stored text, up to the fingerprint's opening quote.
const HEAD: &str = "{\"v\":2,\"fp\":\"";

/// Filesystem timestamp granularity allowed for: a record whose mtime is not older
/// than `takenAt - 1 s` is racy (the file may have changed within the same tick after
/// it was read), so it never proves a file unchanged.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

/// True where the standard library exposes inode and ctime (the fast path is on).
pub(crate) const RECORDS_SUPPORTED: bool = cfg!(unix);

/// `(size, mtime_ns, ctime_ns, inode, device)` of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct StatRecord(pub u64, pub i64, pub i64, pub u64, pub u64);

/// One stat of a path, as taken during a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Wall-clock time just before the stat.
    pub taken_at_ns: i64,
    /// The file's record, through a symlink; `None` when absent or dangling.
    pub target: Option<StatRecord>,
    /// The record of the symlink itself; `None` for anything else.
    pub link: Option<StatRecord>,
    /// The path itself is a symlink.
    pub is_symlink: bool,
    /// `target,link` spelled as `encode` stores them.
    text: Arc<str>,
}

/// One file of a graph, as encoded (see [`encode`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct NewRecord(
    pub String,
    pub Option<String>,
    pub Vec<u32>,
    pub Option<StatRecord>,
    pub Option<StatRecord>,
    pub u8,
);

/// One stored file record, borrowed from the `FileStats` text. Scanning delimits the
/// dependency list and the stat records without reading their numbers;
/// [`StoredStats`] keeps only records whose numbers parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileRecord<'a> {
    rel: Cow<'a, str>,
    /// The digest text as stored (`None` for `null`).
    digest: Option<&'a str>,
    /// The text between the brackets of the dependency list.
    deps: &'a str,
    /// `target,link` as stored.
    stats: &'a str,
    exports: u8,
}

/// The header of stored text; the records follow and are parsed on demand.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatsText<'a> {
    /// The stored text of the fingerprint the records describe.
    pub fp: &'a str,
    /// When the records were taken.
    pub taken_at_ns: i64,
    /// The text after `"files":[`.
    files: &'a str,
}

/// Every record of a row, parsed and checked, with a lookup by path: the slow path of
/// the fingerprint, when some file of the row's graph must be hashed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredStats<'a> {
    pub taken_at_ns: i64,
    pub files: Vec<FileRecord<'a>>,
    /// Indices of `files`, sorted by `rel`.
    by_rel: Vec<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatsDoc<'d> {
    v: u32,
    fp: String,
    taken_at_ns: i64,
    files: &'d [NewRecord],
}

/// Stats `path` without following a final symlink, and, for a symlink, its target too.
/// On hosts without inode and ctime no record is taken.
pub(crate) fn probe(path: &Path) -> Probe {
    let taken_at_ns = now_ns();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Probe::new(
            taken_at_ns,
            std::fs::metadata(path).ok().and_then(|m| record(&m)),
            record(&meta),
            true,
        ),
        Ok(meta) => Probe::new(taken_at_ns, record(&meta), None, false),
        Err(_) => Probe::new(taken_at_ns, None, None, false),
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
    /// A probe with the given records.
    pub fn new(
        taken_at_ns: i64,
        target: Option<StatRecord>,
        link: Option<StatRecord>,
        is_symlink: bool,
    ) -> Probe {
        let mut text = StatText::default();
        text.stat(target.as_ref());
        text.push(b',');
        text.stat(link.as_ref());
        Probe {
            taken_at_ns,
            target,
            link,
            is_symlink,
            text: text.as_str().into(),
        }
    }

    /// True when a record holding this probe's stats would be racy at `taken_at_ns`.
    pub fn is_racy(&self, taken_at_ns: i64) -> bool {
        is_racy(self.target.as_ref(), taken_at_ns) || is_racy(self.link.as_ref(), taken_at_ns)
    }
}

impl FileRecord<'_> {
    /// The boundary-relative path.
    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// The stored digest; `None` is `MISSING`. A malformed digest also reads as
    /// `None`, which only makes the fingerprint differ (and the source stale).
    pub fn digest(&self) -> Option<[u8; 32]> {
        self.digest.and_then(decode_hex32)
    }

    /// True when the stored digest is well formed (the file was readable): the same
    /// as `digest().is_some()`, without decoding it.
    pub fn has_digest(&self) -> bool {
        self.digest.is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }

    /// The stored export-key bits of the pre-check.
    pub fn exports(&self) -> ExportMask {
        ExportMask::from_bits(self.exports)
    }

    /// The indices of the files this one imports.
    pub fn deps(&self) -> impl Iterator<Item = u32> + '_ {
        self.deps
            .split(',')
            .filter(|digits| !digits.is_empty())
            .filter_map(|digits| digits.parse().ok())
    }

    /// True when `probe` equals the record and the record is not racy: the file is
    /// unchanged since it was hashed, without reading it. Records are compared as
    /// text (one spelling per value); equal records have equal mtimes, so the probe's
    /// tell whether the record is racy.
    pub fn is_clean(&self, probe: &Probe, taken_at_ns: i64) -> bool {
        RECORDS_SUPPORTED && self.stats == &*probe.text && !probe.is_racy(taken_at_ns)
    }

    /// The stored `(target, link)` records; `None` when malformed.
    pub fn stat_records(&self) -> Option<(Option<StatRecord>, Option<StatRecord>)> {
        let mut cursor = Cursor::new(self.stats);
        let target = cursor.nullable(Cursor::stat)?;
        cursor.eat(b',')?;
        let link = cursor.nullable(Cursor::stat)?;
        cursor.rest().is_empty().then_some((target, link))
    }

    /// True when the numbers of the record parse: import indices and stat records.
    fn is_well_formed(&self) -> bool {
        let mut deps = Cursor::new(self.deps);
        let deps_ok = deps.rest().is_empty() || {
            let mut ok = true;
            loop {
                if deps
                    .uint()
                    .and_then(|index| u32::try_from(index).ok())
                    .is_none()
                {
                    ok = false;
                    break;
                }
                if deps.eat(b',').is_none() {
                    break;
                }
            }
            ok && deps.rest().is_empty()
        };
        deps_ok && self.stat_records().is_some()
    }
}

impl<'a> StatsText<'a> {
    /// The header of stored text; `None` for another version or a malformed header.
    pub fn parse(stats: &'a FileStats) -> Option<StatsText<'a>> {
        let rest = stats.0.strip_prefix(HEAD)?;
        let fp_end = rest.find('"')?;
        let fp = &rest[..fp_end];
        let rest = rest[fp_end..].strip_prefix("\",\"takenAtNs\":")?;
        let mut cursor = Cursor::new(rest);
        let taken_at_ns = cursor.int()?;
        cursor.eat_str(",\"files\":[")?;
        Some(StatsText {
            fp,
            taken_at_ns,
            files: cursor.rest(),
        })
    }

    /// True when the records were taken for `fp`.
    pub fn describes(&self, fp: &SourceFingerprint) -> bool {
        let hex = match fp {
            SourceFingerprint::Content(_) => Some(self.fp),
            SourceFingerprint::EntryUnreadable(_) => self.fp.strip_prefix("MISSING:"),
        };
        // `encode` writes `fp.to_string()`: lower-case hex after the optional prefix.
        hex.is_some_and(|hex| hex.as_bytes() == hex_digits(fp.digest()))
    }

    /// The records in stored order (the entry first). Yields `Err` once, as the last
    /// item, when the text is malformed from there on.
    pub fn records(&self) -> Records<'a> {
        Records {
            cursor: Cursor::new(self.files),
            first: true,
            done: false,
        }
    }
}

/// Iterator over the stored records; see [`StatsText::records`].
#[derive(Debug)]
pub(crate) struct Records<'a> {
    cursor: Cursor<'a>,
    first: bool,
    done: bool,
}

/// The stored text is not in the expected layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

impl<'a> Iterator for Records<'a> {
    type Item = Result<FileRecord<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let first = std::mem::replace(&mut self.first, false);
        let cursor = &mut self.cursor;
        let more = match cursor.peek() {
            Some(b']') => false,
            Some(b',') if !first => {
                cursor.pos += 1;
                true
            }
            Some(b'[') if first => true,
            _ => {
                self.done = true;
                return Some(Err(Malformed));
            }
        };
        if !more {
            self.done = true;
            return (cursor.eat_str("]}").is_none() || !cursor.rest().is_empty())
                .then_some(Err(Malformed));
        }
        match cursor.record() {
            Some(record) => Some(Ok(record)),
            None => {
                self.done = true;
                Some(Err(Malformed))
            }
        }
    }
}

impl<'a> StoredStats<'a> {
    /// Parses every record after a header; `None` when any is malformed.
    pub fn from_text(text: StatsText<'a>) -> Option<StoredStats<'a>> {
        let files = text
            .records()
            .collect::<Result<Vec<FileRecord<'a>>, Malformed>>()
            .ok()?;
        if !files.iter().all(FileRecord::is_well_formed) {
            return None;
        }
        let mut by_rel: Vec<u32> = (0..u32::try_from(files.len()).ok()?).collect();
        by_rel.sort_by(|a, b| files[*a as usize].rel.cmp(&files[*b as usize].rel));
        Some(StoredStats {
            taken_at_ns: text.taken_at_ns,
            files,
            by_rel,
        })
    }

    /// The record of one file.
    pub fn get(&self, rel: &str) -> Option<&FileRecord<'a>> {
        let found = self
            .by_rel
            .binary_search_by(|index| self.files[*index as usize].rel().cmp(rel))
            .ok()?;
        Some(&self.files[self.by_rel[found] as usize])
    }

    /// The boundary-relative paths a file imports.
    pub fn dep_rels<'s>(&'s self, file: &'s FileRecord<'a>) -> impl Iterator<Item = &'s str> + 's {
        file.deps().filter_map(|index| {
            let index = usize::try_from(index).ok()?;
            self.files.get(index).map(FileRecord::rel)
        })
    }
}

/// Serialises records in the stored format, for the graph whose fingerprint is `fp`.
pub(crate) fn encode(fp: &SourceFingerprint, taken_at_ns: i64, files: &[NewRecord]) -> FileStats {
    let doc = StatsDoc {
        v: VERSION,
        fp: fp.to_string(),
        taken_at_ns,
        files,
    };
    // Serialising plain strings, integers and vectors cannot fail.
    FileStats(serde_json::to_string(&doc).unwrap_or_default())
}

/// Lower-case hex of a digest.
pub(crate) fn encode_hex(bytes: &[u8; 32]) -> String {
    hex_digits(bytes)
        .iter()
        .map(|digit| char::from(*digit))
        .collect()
}

/// Lower-case hex digits of a digest, on the stack.
fn hex_digits(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
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

/// A position in stored text, for the parser of exactly the layout `encode` writes
/// (compact JSON: no whitespace, fields in order). Every method returns `None` on a
/// mismatch, leaving the position unspecified. Strings and digit runs are scanned a
/// word (8 bytes) at a time: a warm pass reads thousands of records.
#[derive(Debug)]
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek()? == byte {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    fn eat_str(&mut self, expected: &str) -> Option<()> {
        let end = self.pos + expected.len();
        if self.text.as_bytes().get(self.pos..end)? == expected.as_bytes() {
            self.pos = end;
            Some(())
        } else {
            None
        }
    }

    /// `null` → `Some(None)`; otherwise `item` parses the value.
    fn nullable<T>(&mut self, item: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.peek()? == b'n' {
            self.eat_str("null")?;
            Some(None)
        } else {
            item(self).map(Some)
        }
    }

    /// An unsigned decimal integer (at least one digit).
    fn uint(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = digit_run(bytes, start);
        let run = bytes.get(start..start + digits)?;
        let value = match digits {
            0 => return None,
            // Fewer than 20 digits cannot overflow a u64.
            1..=19 => {
                let mut chunks = run.chunks_exact(8);
                let mut value = 0u64;
                for chunk in &mut chunks {
                    value = value * 100_000_000 + eight_digits(chunk);
                }
                chunks
                    .remainder()
                    .iter()
                    .fold(value, |value, digit| value * 10 + u64::from(digit - b'0'))
            }
            _ => run.iter().try_fold(0u64, |value, digit| {
                value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
            })?,
        };
        self.pos += digits;
        Some(value)
    }

    /// A signed decimal integer.
    fn int(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let magnitude = self.uint()?;
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// A JSON string. Without escapes it is borrowed; with escapes (only in unusual
    /// file names) it is decoded by serde_json.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        self.eat(b'"')?;
        let mut escaped = false;
        let mut at = self.pos;
        loop {
            at = quote_or_backslash(bytes, at)?;
            if bytes[at] == b'"' {
                break;
            }
            escaped = true;
            at += 2;
        }
        self.pos = at + 1;
        if escaped {
            serde_json::from_str::<String>(self.text.get(start..self.pos)?)
                .ok()
                .map(Cow::Owned)
        } else {
            self.text.get(start + 1..at).map(Cow::Borrowed)
        }
    }

    /// `[size,mtime,ctime,ino,dev]`.
    fn stat(&mut self) -> Option<StatRecord> {
        self.eat(b'[')?;
        let size = self.uint()?;
        self.eat(b',')?;
        let mtime = self.int()?;
        self.eat(b',')?;
        let ctime = self.int()?;
        self.eat(b',')?;
        let ino = self.uint()?;
        self.eat(b',')?;
        let dev = self.uint()?;
        self.eat(b']')?;
        Some(StatRecord(size, mtime, ctime, ino, dev))
    }

    /// `[...]` without nested brackets, returned as the text between them.
    fn bracketed(&mut self) -> Option<&'a str> {
        self.eat(b'[')?;
        let start = self.pos;
        let end = find_byte(self.text.as_bytes(), start, b']')?;
        self.pos = end + 1;
        self.text.get(start..end)
    }

    /// `null` or a bracketed list.
    fn skip_nullable_list(&mut self) -> Option<()> {
        self.nullable(Cursor::bracketed).map(|_| ())
    }

    /// `[rel,digest,deps,target,link,exports]`, delimiting `deps` and `target,link`.
    fn record(&mut self) -> Option<FileRecord<'a>> {
        self.eat(b'[')?;
        let rel = self.string()?;
        self.eat(b',')?;
        let digest = self.nullable(|c| match c.string()? {
            Cow::Borrowed(text) => Some(text),
            // A digest never needs escapes: read it as malformed (`MISSING`).
            Cow::Owned(_) => Some(""),
        })?;
        self.eat(b',')?;
        let deps = self.bracketed()?;
        self.eat(b',')?;
        let stats_start = self.pos;
        self.skip_nullable_list()?;
        self.eat(b',')?;
        self.skip_nullable_list()?;
        let stats = self.text.get(stats_start..self.pos)?;
        self.eat(b',')?;
        let exports = u8::try_from(self.uint()?).ok()?;
        self.eat(b']')?;
        Some(FileRecord {
            rel,
            digest,
            deps,
            stats,
            exports,
        })
    }
}

/// `target,link` spelled as `encode` (serde_json) spells them, built on the stack.
struct StatText {
    bytes: [u8; 2 * Self::MAX_STAT + 1],
    len: usize,
}

impl Default for StatText {
    fn default() -> StatText {
        StatText {
            bytes: [0; 2 * Self::MAX_STAT + 1],
            len: 0,
        }
    }
}

impl StatText {
    /// `[` + five integers of at most 20 digits and a sign + four `,` + `]`.
    const MAX_STAT: usize = 2 + 5 * 21 + 4;

    fn push(&mut self, byte: u8) {
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    /// `null` or `[size,mtime,ctime,ino,dev]` in plain decimal.
    fn stat(&mut self, stat: Option<&StatRecord>) {
        let Some(StatRecord(size, mtime, ctime, ino, dev)) = stat else {
            self.bytes[self.len..self.len + 4].copy_from_slice(b"null");
            self.len += 4;
            return;
        };
        self.push(b'[');
        self.decimal(false, *size);
        self.push(b',');
        self.decimal(*mtime < 0, mtime.unsigned_abs());
        self.push(b',');
        self.decimal(*ctime < 0, ctime.unsigned_abs());
        self.push(b',');
        self.decimal(false, *ino);
        self.push(b',');
        self.decimal(false, *dev);
        self.push(b']');
    }

    /// Two digits at a time, from the right.
    fn decimal(&mut self, negative: bool, mut magnitude: u64) {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        while magnitude >= 100 {
            let pair = (magnitude % 100) as usize * 2;
            magnitude /= 100;
            start -= 2;
            digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if magnitude >= 10 {
            let pair = magnitude as usize * 2;
            start -= 2;
            digits[start..start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            start -= 1;
            digits[start] = b'0' + magnitude as u8;
        }
        if negative {
            self.push(b'-');
        }
        let run = &digits[start..];
        self.bytes[self.len..self.len + run.len()].copy_from_slice(run);
        self.len += run.len();
    }
}

/// Byte-wise constants of the word-at-a-time scans.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `at` as a little-endian word (the first byte lowest).
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes.get(at..at + 8)?);
    Some(u64::from_le_bytes(word))
}

/// The high bit of each byte of `word` that equals `byte` is set; the lowest set bit
/// is exact (only bytes above a match may be flagged wrongly).
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let diff = word ^ (ONES * u64::from(byte));
    diff.wrapping_sub(ONES) & !diff & HIGHS
}

/// The high bit of each byte of `word` that is not an ASCII digit is set (exact).
fn non_digits(word: u64) -> u64 {
    // Zero per byte iff the high nibble is 3 and the low nibble is at most 9.
    let odd = ((word & 0xf0f0_f0f0_f0f0_f0f0) ^ 0x3030_3030_3030_3030)
        | (((word & 0x0f0f_0f0f_0f0f_0f0f) + 0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0);
    // High bit per byte iff the byte is non-zero (no carry crosses a byte).
    (odd | ((odd & !HIGHS) + !HIGHS)) & HIGHS
}

/// Index of the first `byte` at or after `at`, scanning a word at a time.
pub(crate) fn find_byte(bytes: &[u8], mut at: usize, byte: u8) -> Option<usize> {
    while let Some(word) = word_at(bytes, at) {
        let found = bytes_equal(word, byte);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|b| *b == byte).map(|index| at + index)
}

/// Index of the first `"` or `\` at or after `at`.
fn quote_or_backslash(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(word) = word_at(bytes, at) {
        let found = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter()
        .position(|byte| matches!(byte, b'"' | b'\\'))
        .map(|index| at + index)
}

/// Number of ASCII digits from `at` on.
fn digit_run(bytes: &[u8], at: usize) -> usize {
    let mut count = 0;
    while let Some(word) = word_at(bytes, at + count) {
        let stops = non_digits(word);
        if stops != 0 {
            return count + (stops.trailing_zeros() / 8) as usize;
        }
        count += 8;
    }
    let tail = bytes.get(at + count..).unwrap_or_default();
    count + tail.iter().take_while(|byte| byte.is_ascii_digit()).count()
}

/// The value of exactly 8 ASCII digits (the most significant first).
fn eight_digits(digits: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(digits);
    let word = u64::from_le_bytes(word) - 0x3030_3030_3030_3030;
    let word = (word * 10 + (word >> 8)) & 0x00ff_00ff_00ff_00ff;
    let word = (word * 100 + (word >> 16)) & 0x0000_ffff_0000_ffff;
    (word * 10_000 + (word >> 32)) & 0xffff_ffff
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn file(rel: &str, mtime_ns: i64) -> NewRecord {
        NewRecord(
            rel.to_owned(),
            Some(encode_hex(&[7; 32])),
            vec![1],
            Some(StatRecord(3, mtime_ns, mtime_ns, 11, 12)),
            None,
            1,
        )
    }

    const FP: SourceFingerprint = SourceFingerprint::Content([9; 32]);

    fn parse_all(stats: &FileStats) -> Option<StoredStats<'_>> {
        StatsText::parse(stats).and_then(StoredStats::from_text)
    }

    #[test]
    fn round_trip_and_lookup() {
        let stats = encode(
            &FP,
            5_000_000_000,
            &[file("models/a.ts", 1), file("lib/b.ts", 2)],
        );
        let head = format!(
            r#"{{"v":2,"fp":"{}","takenAtNs":5000000000,"files":[["models/a.ts","#,
            encode_hex(&[9; 32])
        );
        assert!(stats.0.starts_with(&head), "{}", stats.0);
        let text = StatsText::parse(&stats).unwrap();
        assert!(text.describes(&FP));
        assert!(!text.describes(&SourceFingerprint::EntryUnreadable([9; 32])));
        assert!(!text.describes(&SourceFingerprint::Content([8; 32])));
        assert_eq!(text.taken_at_ns, 5_000_000_000);
        let stored = parse_all(&stats).unwrap();
        let entry = stored.get("models/a.ts").unwrap();
        assert_eq!(entry.digest(), Some([7; 32]));
        assert!(entry.has_digest());
        assert_eq!(entry.exports(), ExportMask::from_bits(1));
        assert_eq!(stored.dep_rels(entry).collect::<Vec<_>>(), ["lib/b.ts"]);
        let b = stored.get("lib/b.ts").unwrap();
        assert_eq!(
            b.stat_records(),
            Some((Some(StatRecord(3, 2, 2, 11, 12)), None))
        );
        assert_eq!(stored.get("nope.ts"), None);
        let lazily: Vec<FileRecord<'_>> = text.records().map(Result::unwrap).collect();
        assert_eq!(lazily, stored.files);
    }

    #[test]
    fn every_field_round_trips() {
        let files = [
            NewRecord(
                "models/odd \"name\"\\ñ\n.ts".to_owned(),
                None,
                vec![],
                None,
                Some(StatRecord(u64::MAX, i64::MIN, -5, 0, u64::MAX)),
                0b0011_1111,
            ),
            NewRecord(
                "b.ts".to_owned(),
                Some(encode_hex(&[0xab; 32])),
                vec![0, 1, u32::MAX],
                Some(StatRecord(0, i64::MAX, 0, 1, 2)),
                None,
                255,
            ),
            NewRecord(
                "c.ts".to_owned(),
                Some("not hex".to_owned()),
                vec![1],
                Some(StatRecord(1, 2, 3, 4, 5)),
                Some(StatRecord(6, 7, 8, 9, 10)),
                0,
            ),
        ];
        let unreadable = SourceFingerprint::EntryUnreadable([1; 32]);
        let stats = encode(&unreadable, -1, &files);
        let stored = parse_all(&stats).unwrap();
        assert!(StatsText::parse(&stats).unwrap().describes(&unreadable));
        assert!(!StatsText::parse(&stats)
            .unwrap()
            .describes(&SourceFingerprint::Content([1; 32])));
        assert_eq!(stored.taken_at_ns, -1);
        for (stored, written) in stored.files.iter().zip(&files) {
            assert_eq!(stored.rel(), written.0);
            assert_eq!(
                stored.digest().map(|d| encode_hex(&d)),
                written.1.clone().filter(|d| d.len() == 64)
            );
            assert_eq!(stored.has_digest(), stored.digest().is_some());
            assert_eq!(stored.deps().collect::<Vec<_>>(), written.2);
            assert_eq!(stored.stat_records(), Some((written.3, written.4)));
            assert_eq!(stored.exports().bits(), written.5 & 0b0011_1111);
            let probe = Probe::new(0, written.3, written.4, written.4.is_some());
            assert_eq!(stored.is_clean(&probe, i64::MAX), !probe.is_racy(i64::MAX));
            let other = Probe::new(0, Some(StatRecord(1, 1, 1, 1, 1)), None, false);
            assert!(!stored.is_clean(&other, i64::MAX));
        }
        assert_eq!(stored.get(&files[0].0).unwrap().rel(), files[0].0);
    }

    #[test]
    fn unknown_versions_and_garbage_are_no_records() {
        let good = encode(&FP, 0, &[file("a.ts", 1)]).0;
        let texts = [
            "".to_owned(),
            "{}".to_owned(),
            r#"{"v":1,"takenAtNs":0,"files":[]}"#.to_owned(),
            r#"{"v":1,"takenAtNs":0,"files":[["a.ts",null,[],null,null,0]]}"#.to_owned(),
            good.replacen("\"v\":2", "\"v\":3", 1),
            good.replacen("\"v\":2", "\"v\": 2", 1),
            "not json".to_owned(),
            good[..good.len() - 1].to_owned(),
            format!("{good} "),
            good.replacen(",11,12]", ",11,12,13]", 1),
            good.replacen(",11,12]", ",11,x]", 1),
            good.replacen(",1]]}", ",256]]}", 1),
            good.replacen("[1]", "[1,]", 1),
            good.replacen("[1]", "[4294967296]", 1),
            good.replacen("null", "nul", 1),
        ];
        for text in texts {
            assert_eq!(parse_all(&FileStats(text.clone())), None, "{text}");
        }
        assert!(parse_all(&FileStats(good)).is_some());
    }

    #[test]
    fn records_are_scanned_one_at_a_time() {
        let good = encode(&FP, 0, &[file("a.ts", 1), file("b.ts", 2)]).0;
        let broken = FileStats(good.replacen("[\"b.ts\"", "[b.ts", 1));
        let text = StatsText::parse(&broken).unwrap();
        let mut records = text.records();
        assert_eq!(records.next().unwrap().unwrap().rel(), "a.ts");
        assert_eq!(records.next(), Some(Err(Malformed)));
        assert_eq!(records.next(), None);
        assert_eq!(parse_all(&broken), None);
    }

    #[cfg(unix)]
    #[test]
    fn racy_records_are_never_clean() {
        let taken_at = 10 * RACY_WINDOW_NS;
        let stats = encode(
            &FP,
            taken_at,
            &[
                file("old.ts", taken_at - 2 * RACY_WINDOW_NS),
                file("racy.ts", taken_at - RACY_WINDOW_NS / 2),
            ],
        );
        let stored = parse_all(&stats).unwrap();
        let (old, racy) = (
            stored.get("old.ts").unwrap(),
            stored.get("racy.ts").unwrap(),
        );
        let probe_of = |f: &FileRecord<'_>| {
            let (target, link) = f.stat_records().unwrap();
            Probe::new(taken_at + 1, target, link, false)
        };
        assert!(old.is_clean(&probe_of(old), taken_at));
        assert!(!racy.is_clean(&probe_of(racy), taken_at));
        let (target, _) = old.stat_records().unwrap();
        let moved = Probe::new(
            taken_at + 1,
            Some(StatRecord(3, target.unwrap().1, 99, 11, 12)),
            None,
            false,
        );
        assert!(!old.is_clean(&moved, taken_at));
        let linked = Probe::new(taken_at + 1, target, target, true);
        assert!(!old.is_clean(&linked, taken_at));
    }

    fn stat_strategy() -> impl Strategy<Value = Option<StatRecord>> {
        prop::option::of(
            (
                any::<u64>(),
                any::<i64>(),
                any::<i64>(),
                any::<u64>(),
                any::<u64>(),
            )
                .prop_map(|(a, b, c, d, e)| StatRecord(a, b, c, d, e)),
        )
    }

    proptest! {
        /// The probe's text is serde_json's spelling of the records, and parses back.
        #[test]
        fn probe_text_is_the_stored_spelling(
            target in stat_strategy(),
            link in stat_strategy(),
            small in 0u64..1000,
        ) {
            for (target, link) in [(target, link), (target.map(|_| StatRecord(small, -(small as i64), 0, small, 1)), None)] {
                let probe = Probe::new(0, target, link, false);
                let json = serde_json::to_string(&(target, link)).unwrap();
                prop_assert_eq!(&*probe.text, &json[1..json.len() - 1]);
                let written = NewRecord("a.ts".to_owned(), None, vec![], target, link, 0);
                let stats = encode(&FP, 0, &[written]);
                let stored = parse_all(&stats).unwrap();
                prop_assert_eq!(stored.files[0].stat_records(), Some((target, link)));
                prop_assert_eq!(stored.files[0].stats, &*probe.text);
            }
        }

        /// Stored text round-trips whatever the file names and numbers.
        #[test]
        fn arbitrary_records_round_trip(
            rels in prop::collection::vec(".{0,40}", 1..5),
            taken_at in any::<i64>(),
            exports in any::<u8>(),
            target in stat_strategy(),
        ) {
            let written: Vec<NewRecord> = rels
                .iter()
                .enumerate()
                .map(|(i, rel)| NewRecord(
                    format!("{i}/{rel}"),
                    Some(encode_hex(&[exports; 32])),
                    (0..u32::try_from(i).unwrap()).collect(),
                    target,
                    None,
                    exports,
                ))
                .collect();
            let stats = encode(&FP, taken_at, &written);
            let stored = parse_all(&stats).unwrap();
            prop_assert_eq!(stored.taken_at_ns, taken_at);
            prop_assert_eq!(stored.files.len(), written.len());
            for (stored, written) in stored.files.iter().zip(&written) {
                prop_assert_eq!(stored.rel(), written.0.as_str());
                prop_assert_eq!(stored.digest(), Some([exports; 32]));
                prop_assert_eq!(stored.deps().collect::<Vec<_>>(), written.2.clone());
                prop_assert_eq!(stored.stat_records(), Some((target, None)));
                prop_assert_eq!(stored.exports().bits(), exports & 0b0011_1111);
            }
        }
    }
}

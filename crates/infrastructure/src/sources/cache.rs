//! `FreshnessCache`: what one pass learned about files, so that each file is stat'ed
//! once and read and hashed at most once per pass (spec 10 §1.9, §6.4).
//!
//! A cache belongs to one pass (one warm pass of one loader kind, or one reconcile) and
//! is dropped afterwards: it never answers for a later pass, so it needs no invalidation.
//! Reads are keyed by path alone; that is sound because the boundaries of one repo
//! (`extensions/`, each `<mount>/extensions/`, each pulled root) never nest.
//!
//! Keys are the path text with the component normalisation of `Path` equality (no
//! empty or `.` segments, no trailing separator), hashed with [`FastHasher`]: paths
//! spelled alike by the walk and the fingerprint are looked up without rebuilding or
//! hashing them component by component.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::scan_text::{export_mask, module_import_specifiers, ExportMask};
use super::stats::{find_byte, probe, Probe};

/// Per-pass memo of stats, file hashes and import lists.
#[derive(Debug, Default)]
pub struct FreshnessCache {
    probes: FastMap<OsString, Probe>,
    reads: FastMap<OsString, Arc<FileRead>>,
    real_boundaries: HashMap<PathBuf, Option<PathBuf>>,
    files_hashed: usize,
    /// A buffer for building paths, kept between calls.
    path_buffer: OsString,
}

/// A hash map with [`FastHasher`], for keys taken from the local tree (paths,
/// boundary-relative paths), where SipHash's flooding resistance buys nothing.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A `HashSet` with [`FastHasher`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

/// A multiply-rotate hasher over 8-byte words (FxHash's round) with a final
/// avalanche, so that the high bits hashbrown uses for its control bytes are mixed.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.add(u64::from_le_bytes(word) ^ ((tail.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^ (hash >> 33)
    }
}

/// The cache key of a path: its text when it has no empty or `.` segment and no
/// trailing separator (the spelling of every path the walk and the fingerprint
/// build), else the text rebuilt from its components, so that paths equal as `Path`
/// share one key.
pub(crate) fn path_key(path: &Path) -> Cow<'_, OsStr> {
    if is_component_clean(path) {
        Cow::Borrowed(path.as_os_str())
    } else {
        Cow::Owned(path.components().collect::<PathBuf>().into_os_string())
    }
}

/// True when no segment after the first is empty or `.` (and so no trailing
/// separator): `components()` would give the path back as it is spelled.
#[cfg(unix)]
fn is_component_clean(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    segments_are_names(path.as_os_str().as_bytes(), false)
}

#[cfg(not(unix))]
fn is_component_clean(_path: &Path) -> bool {
    false
}

/// True when every `/`-separated segment of `text` after the first is neither empty
/// nor `.` (nor `..` unless `dot_dot_ok`). Looks only at the bytes after each `/`.
pub(crate) fn segments_are_names(text: &[u8], dot_dot_ok: bool) -> bool {
    let mut at = 0;
    while let Some(slash) = find_byte(text, at, b'/') {
        at = slash + 1;
        match &text[at..] {
            [] | [b'/', ..] => return false,
            [b'.'] | [b'.', b'/', ..] => return false,
            [b'.', b'.'] | [b'.', b'.', b'/', ..] if !dot_dot_ok => return false,
            _ => {}
        }
    }
    true
}

/// What reading one file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRead {
    /// SHA-256 of the bytes; `None` when unreadable (hashed as `MISSING`).
    pub digest: Option<[u8; 32]>,
    /// Why the file could not be read.
    pub unreadable: Option<String>,
    /// Its local import specifiers (`./`, `../`), unresolved.
    pub imports: Vec<String>,
    /// The export keys its text matches.
    pub exports: ExportMask,
}

impl FreshnessCache {
    /// An empty cache for a new pass.
    pub fn new() -> FreshnessCache {
        FreshnessCache::default()
    }

    /// Files read and hashed so far (`sourcesHashed`); failed reads do not count.
    pub fn files_hashed(&self) -> usize {
        self.files_hashed
    }

    /// The path buffer, to build paths in without allocating; give it back with
    /// [`FreshnessCache::put_path_buffer`].
    pub(crate) fn take_path_buffer(&mut self) -> OsString {
        std::mem::take(&mut self.path_buffer)
    }

    /// Keeps a path buffer for the next [`FreshnessCache::take_path_buffer`].
    pub(crate) fn put_path_buffer(&mut self, buffer: OsString) {
        self.path_buffer = buffer;
    }

    /// The stat of a path, taken once per pass.
    pub(crate) fn probe(&mut self, path: &Path) -> Probe {
        let key = path_key(path);
        if let Some(found) = self.probes.get(&*key) {
            return found.clone();
        }
        let taken = probe(path);
        self.probes.insert(key.into_owned(), taken.clone());
        taken
    }

    /// Reads and hashes a file once per pass. Its stat is always taken first, so a
    /// record never claims a newer stat than the content it was hashed with. A symlink
    /// whose target leaves `boundary` is not read.
    pub(crate) fn read(&mut self, path: &Path, boundary: &Path) -> Arc<FileRead> {
        let key = path_key(path);
        if let Some(read) = self.reads.get(&*key) {
            return Arc::clone(read);
        }
        let probe = self.probe(path);
        let read = Arc::new(self.read_uncached(path, boundary, &probe));
        if read.digest.is_some() {
            self.files_hashed += 1;
        }
        self.reads.insert(key.into_owned(), Arc::clone(&read));
        read
    }

    fn read_uncached(&mut self, path: &Path, boundary: &Path, probe: &Probe) -> FileRead {
        if probe.is_symlink {
            if let Err(reason) = self.check_symlink_target(path, boundary) {
                return FileRead::unreadable(reason);
            }
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                FileRead {
                    digest: Some(Sha256::digest(&bytes).into()),
                    unreadable: None,
                    imports: module_import_specifiers(&text)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    exports: export_mask(&text),
                }
            }
            Err(error) => FileRead::unreadable(describe(&error)),
        }
    }

    /// A symlink must resolve to a file inside the (resolved) boundary.
    fn check_symlink_target(&mut self, path: &Path, boundary: &Path) -> Result<(), String> {
        let target = std::fs::canonicalize(path).map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => "dangling symlink".to_owned(),
            _ => format!("symlink cannot be resolved: {}", describe(&error)),
        })?;
        let real_boundary = self
            .real_boundaries
            .entry(boundary.to_path_buf())
            .or_insert_with(|| std::fs::canonicalize(boundary).ok());
        match real_boundary {
            Some(real) if target.starts_with(real.as_path()) => Ok(()),
            _ => Err("symlink target leaves the boundary".to_owned()),
        }
    }
}

impl FileRead {
    fn unreadable(reason: String) -> FileRead {
        FileRead {
            digest: None,
            unreadable: Some(reason),
            imports: Vec::new(),
            exports: ExportMask::NONE,
        }
    }
}

/// A short, stable reason for a failed read.
fn describe(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "file not found".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => error.to_string(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn paths_equal_as_path_share_a_key() {
        let key = |text: &str| path_key(Path::new(text)).into_owned();
        assert!(matches!(path_key(Path::new("/a/b.ts")), Cow::Borrowed(_)));
        for spelling in ["/a/./b.ts", "/a//b.ts", "/a/b.ts/", "//a/b.ts"] {
            assert_eq!(key(spelling), key("/a/b.ts"), "{spelling}");
            assert_eq!(Path::new(spelling), Path::new("/a/b.ts"));
        }
        assert_ne!(key("/a/x/../b.ts"), key("/a/b.ts"));
        assert_eq!(key("./a"), "./a");
        assert_eq!(key("/"), "/");
    }

    #[test]
    fn segment_checks() {
        let cases = [
            ("/a/b.ts", true, true),
            ("a/b", true, true),
            ("/", false, false),
            ("", true, true),
            ("/a//b", false, false),
            ("/a/./b", false, false),
            ("/a/.", false, false),
            ("/a/b/", false, false),
            ("/a/../b", false, true),
            ("/a/..", false, true),
            ("/a/.fen/..x/...", true, true),
            (
                "/a/very-long-segment-name-over-eight-bytes/x.ts",
                true,
                true,
            ),
            (
                "/a/very-long-segment-name-over-eight-bytes//x.ts",
                false,
                false,
            ),
        ];
        for (text, strict, dot_dot_ok) in cases {
            assert_eq!(segments_are_names(text.as_bytes(), false), strict, "{text}");
            assert_eq!(
                segments_are_names(text.as_bytes(), true),
                dot_dot_ok,
                "{text}"
            );
        }
    }

    #[test]
    fn a_path_is_stat_once() {
        let dir = std::env::temp_dir();
        let mut cache = FreshnessCache::new();
        let first = cache.probe(&dir.join("fen-no-such-file.ts"));
        let again = cache.probe(&dir.join(".").join("fen-no-such-file.ts"));
        assert_eq!(first, again);
        assert_eq!(cache.probes.len(), 1);
    }
}

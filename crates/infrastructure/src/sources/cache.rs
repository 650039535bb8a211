//! `FreshnessCache`: what one pass learned about files, so that each file is stat'ed
//! once and read and hashed at most once per pass (spec 10 §1.9, §6.4).
//!
//! A cache belongs to one pass (one warm pass of one loader kind, or one reconcile) and
//! is dropped afterwards: it never answers for a later pass, so it needs no invalidation.
//! Reads are keyed by path alone; that is sound because the boundaries of one repo
//! (`extensions/`, each `<mount>/extensions/`, each pulled root) never nest.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fen_domain::ports::FileStats;
use sha2::{Digest, Sha256};

use super::scan_text::{export_mask, local_import_specifiers, ExportMask};
use super::stats::{probe, Probe, StoredStats};

/// Per-pass memo of stats, file hashes, import lists and parsed stat records.
#[derive(Debug, Default)]
pub struct FreshnessCache {
    probes: HashMap<PathBuf, Probe>,
    reads: HashMap<PathBuf, Arc<FileRead>>,
    real_boundaries: HashMap<PathBuf, Option<PathBuf>>,
    stored: HashMap<String, Option<Arc<StoredStats>>>,
    files_hashed: usize,
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

    /// The stat of a path, taken once per pass.
    pub(crate) fn probe(&mut self, path: &Path) -> Probe {
        *self
            .probes
            .entry(path.to_path_buf())
            .or_insert_with(|| probe(path))
    }

    /// Reads and hashes a file once per pass. Its stat is always taken first, so a
    /// record never claims a newer stat than the content it was hashed with. A symlink
    /// whose target leaves `boundary` is not read.
    pub(crate) fn read(&mut self, path: &Path, boundary: &Path) -> Arc<FileRead> {
        if let Some(read) = self.reads.get(path) {
            return Arc::clone(read);
        }
        let probe = self.probe(path);
        let read = Arc::new(self.read_uncached(path, boundary, &probe));
        if read.digest.is_some() {
            self.files_hashed += 1;
        }
        self.reads.insert(path.to_path_buf(), Arc::clone(&read));
        read
    }

    /// Parsed stat records, memoised by their text.
    pub(crate) fn stored(&mut self, stats: &FileStats) -> Option<Arc<StoredStats>> {
        if let Some(parsed) = self.stored.get(&stats.0) {
            return parsed.clone();
        }
        let parsed = StoredStats::parse(stats).map(Arc::new);
        self.stored.insert(stats.0.clone(), parsed.clone());
        parsed
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
                    imports: local_import_specifiers(&text)
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

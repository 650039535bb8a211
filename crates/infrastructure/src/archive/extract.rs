//! `TarGzUnpacker`: streaming extraction of an untrusted `.tar.gz` under the safety
//! rules of spec 20 §5.2, then the manifest checks of §5.3.
//!
//! Crash safety: everything is written inside `dest`, a directory this module creates
//! and refuses to reuse, inside the caller's private staging; a failure leaves a
//! partial tree there that the caller deletes with its staging, and nothing outside
//! it ever changes. Nothing becomes visible to other processes until the caller
//! renames the staged tree under the lifecycle lock.
//!
//! The archive is never unpacked whole: `GzDecoder` feeds `tar::Archive::entries()`
//! through a meter (`stream`), each entry is checked against S1–S7 (and S8's
//! placement) before a byte of it is written, the first violation ends the run, and
//! the missing-manifest part of S8 is checked at the end. Files are created by
//! `staging` (S9).

mod staging;
mod stream;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::Path;

use async_trait::async_trait;
use fen_domain::manifest::READ_ONLY_HEADER;
use fen_domain::ports::{ArchiveError, UnpackedExtension, Unpacker};
use fen_domain::{ExtensionName, ExtensionVersion};
use flate2::read::GzDecoder;
use tar::EntryType;

use self::staging::{CreateError, Staging};
use self::stream::Meter;
use super::limits::{Tally, MAX_MANIFEST_BYTES};
use super::manifest::{check_file_set, parse_manifest, ManifestProblem};
use super::messages::Subject;
use super::paths::{
    entry_path, placement, visibility, PathProblem, Placement, SeenPaths, Visibility,
    MANIFEST_FILE, ROOT_DIR,
};

/// The `Unpacker` for `.tar.gz` archives. Extraction is blocking file work, so it
/// runs on tokio's blocking pool.
#[derive(Clone, Copy, Debug, Default)]
pub struct TarGzUnpacker;

#[async_trait]
impl Unpacker for TarGzUnpacker {
    async fn unpack(
        &self,
        archive: &[u8],
        dest: &Path,
        name: &ExtensionName,
        version: &ExtensionVersion,
    ) -> Result<UnpackedExtension, ArchiveError> {
        let subject = Subject::unpack(name, version);
        let archive = archive.to_vec();
        let dest = dest.to_path_buf();
        let (name, version) = (name.clone(), *version);
        let task =
            tokio::task::spawn_blocking(move || unpack_archive(&archive, &dest, &name, &version));
        match task.await {
            Ok(result) => result,
            Err(e) => Err(subject.io(format!("the extraction task failed: {e}"))),
        }
    }
}

/// Extracts `archive` into `dest` (created here; it must not exist) without the
/// `extension/` prefix, as [`Unpacker::unpack`] describes: the blocking work behind
/// [`TarGzUnpacker`].
pub fn unpack_archive(
    archive: &[u8],
    dest: &Path,
    name: &ExtensionName,
    version: &ExtensionVersion,
) -> Result<UnpackedExtension, ArchiveError> {
    let subject = Subject::unpack(name, version);
    let staging = Staging::create(dest).map_err(|e| {
        subject.io(format!(
            "cannot create the directory {}: {e}",
            dest.display()
        ))
    })?;
    let meter = Meter::new();
    let mut tar = tar::Archive::new(meter.reader(GzDecoder::new(archive)));
    let mut run = Extraction {
        subject: &subject,
        meter: &meter,
        staging,
        seen: SeenPaths::default(),
        tally: Tally::default(),
        files: BTreeSet::new(),
        manifest: None,
    };
    let entries = tar.entries().map_err(|e| meter.classify(&subject, &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| meter.classify(&subject, &e))?;
        run.take(&mut entry)?;
    }
    // Bytes after the end-of-archive blocks are no entries, but they are still gzip
    // data: decode them to the end, under the cap, so a corrupt tail or a bomb hidden
    // behind the end blocks is noticed.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(|e| meter.classify(&subject, &e))?;
    run.finish(name, version)
}

/// The state of one extraction.
struct Extraction<'r> {
    subject: &'r Subject,
    meter: &'r Meter,
    staging: Staging,
    seen: SeenPaths,
    tally: Tally,
    /// Regular files written, relative to the extension root (the manifest aside).
    files: BTreeSet<String>,
    manifest: Option<ManifestEntry>,
}

/// `extension/manifest.yaml`, held in memory until it is checked and written
/// read-only.
enum ManifestEntry {
    Text(Vec<u8>),
    TooLong(u64),
}

impl Extraction<'_> {
    /// Checks one entry against S2–S8 and writes it.
    fn take<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let subject = self.subject;
        let entry_type = entry.header().entry_type();
        if entry_type.is_pax_global_extensions() {
            return Ok(());
        }
        let is_dir = entry_type.is_dir();
        let raw = entry.path_bytes().into_owned();
        let path = entry_path(&raw, is_dir)
            .map_err(|problem| subject.unsafe_entry(&String::from_utf8_lossy(&raw), problem))?;
        if !is_dir && !entry_type.is_file() {
            return Err(subject.unsafe_entry(&path, type_reason(entry_type)));
        }
        match visibility(&path) {
            Visibility::Visible => {}
            Visibility::Skipped => return Ok(()),
            Visibility::Hidden => return Err(subject.unsafe_entry(&path, PathProblem::Hidden)),
        }
        self.seen
            .add(&path, is_dir)
            .map_err(|reason| subject.unsafe_entry(&path, reason))?;
        let size = entry.size();
        let counted = match is_dir {
            true => self.tally.add_entry(),
            false => self
                .tally
                .add_entry()
                .and_then(|()| self.tally.add_file(size)),
        };
        counted.map_err(|over| subject.too_large(&over))?;

        let rel = match path.strip_prefix(ROOT_DIR) {
            Some("") if is_dir => return Ok(()),
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => {
                return Err(subject.invalid(format!(
                    "entry \"{}\" is outside {ROOT_DIR}/",
                    path.escape_debug()
                )))
            }
        };
        let place = placement(rel);
        check_placement(subject, rel, place, is_dir)?;
        if is_dir {
            return self
                .staging
                .create_dir(rel)
                .map_err(|e| self.create_failed(&path, e));
        }
        if place == Placement::Manifest {
            let held = if size > MAX_MANIFEST_BYTES {
                self.copy(entry, &mut io::sink(), &path, size)?;
                ManifestEntry::TooLong(size)
            } else {
                let mut text = Vec::new();
                self.copy(entry, &mut text, &path, size)?;
                ManifestEntry::Text(text)
            };
            self.manifest = Some(held);
            return Ok(());
        }
        let mut file = self
            .staging
            .create_file(rel)
            .map_err(|e| self.create_failed(&path, e))?;
        self.copy(entry, &mut file, &path, size)?;
        self.files.insert(rel.to_owned());
        Ok(())
    }

    /// Copies an entry's data: read errors are S1 or S7 (the meter says which), a
    /// short entry is S1, write errors are `io`.
    fn copy(
        &self,
        entry: &mut dyn Read,
        out: &mut dyn Write,
        path: &str,
        size: u64,
    ) -> Result<(), ArchiveError> {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut copied: u64 = 0;
        loop {
            let n = match entry.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.meter.classify(self.subject, &e)),
            };
            copied += n as u64;
            out.write_all(&buffer[..n])
                .map_err(|e| self.subject.io(format!("cannot write {path}: {e}")))?;
        }
        if copied != size {
            return Err(self.subject.corrupt(format!(
                "the archive ends inside \"{}\" ({copied} of {size} bytes)",
                path.escape_debug()
            )));
        }
        Ok(())
    }

    fn create_failed(&self, path: &str, error: CreateError) -> ArchiveError {
        match error {
            CreateError::Escapes => self
                .subject
                .unsafe_entry(path, "its directory resolves outside the staging directory"),
            CreateError::Io(e) => self.subject.io(format!("cannot create {path}: {e}")),
        }
    }

    /// S8's missing manifest, §5.3, the name and version, and the read-only manifest.
    fn finish(
        mut self,
        name: &ExtensionName,
        version: &ExtensionVersion,
    ) -> Result<UnpackedExtension, ArchiveError> {
        let subject = self.subject;
        let invalid_manifest = |problem: String| {
            subject.manifest_invalid(&ManifestProblem::new(MANIFEST_FILE, problem))
        };
        let bytes = match self.manifest.take() {
            None => return Err(subject.invalid(format!("missing {ROOT_DIR}/{MANIFEST_FILE}"))),
            Some(ManifestEntry::TooLong(size)) => {
                return Err(invalid_manifest(format!(
                    "is {size} bytes long, at most {MAX_MANIFEST_BYTES}"
                )))
            }
            Some(ManifestEntry::Text(bytes)) => bytes,
        };
        let text =
            String::from_utf8(bytes).map_err(|_| invalid_manifest("is not valid UTF-8".into()))?;
        let (manifest, warnings) =
            parse_manifest(&text).map_err(|problem| subject.manifest_invalid(&problem))?;
        if manifest.name != *name || manifest.version != *version {
            return Err(subject.mismatch(&format!("{}@{}", manifest.name, manifest.version)));
        }
        let mut files = std::mem::take(&mut self.files);
        files.insert(MANIFEST_FILE.to_owned());
        let staging = &self.staging;
        check_file_set(&manifest, &files, &mut |rel| {
            std::fs::read(staging.path(rel))
        })
        .map_err(|problem| subject.file_set(problem))?;

        let shown = format!("{ROOT_DIR}/{MANIFEST_FILE}");
        let mut copy = self
            .staging
            .create_file_with_mode(MANIFEST_FILE, 0o444)
            .map_err(|e| self.create_failed(&shown, e))?;
        copy.write_all(format!("{READ_ONLY_HEADER}\n{text}").as_bytes())
            .map_err(|e| subject.io(format!("cannot write {shown}: {e}")))?;
        Ok(UnpackedExtension {
            manifest,
            files: files.into_iter().collect(),
            warnings,
        })
    }
}

/// S8 for one entry below `extension/`: a known top-level name, used as the file or
/// directory it must be.
fn check_placement(
    subject: &Subject,
    rel: &str,
    place: Placement<'_>,
    is_dir: bool,
) -> Result<(), ArchiveError> {
    let problem = match (place, is_dir) {
        (Placement::Unknown { top }, _) => format!(
            "unknown top-level name \"{ROOT_DIR}/{}\" (expected {MANIFEST_FILE}, models, vaults, drivers, datastores, reports, files or node_modules)",
            top.escape_debug()
        ),
        (Placement::Manifest, true) => format!("{ROOT_DIR}/{MANIFEST_FILE} is a directory"),
        (
            Placement::Kind { rest: "", .. }
            | Placement::Files { rest: "" }
            | Placement::Packages { rest: "" },
            false,
        ) => {
            format!("{ROOT_DIR}/{rel} is a file, not a directory")
        }
        _ => return Ok(()),
    };
    Err(subject.invalid(problem))
}

/// S4's reason for an entry that is neither a regular file nor a directory.
fn type_reason(entry_type: EntryType) -> String {
    match entry_type.as_byte() {
        b'1' => "hard link".to_owned(),
        b'2' => "symbolic link".to_owned(),
        b'3' => "character device".to_owned(),
        b'4' => "block device".to_owned(),
        b'6' => "FIFO".to_owned(),
        b'7' => "contiguous file".to_owned(),
        b'S' => "sparse file".to_owned(),
        other => format!("unsupported entry type '{}'", other.escape_ascii()),
    }
}

#[cfg(test)]
mod tests;

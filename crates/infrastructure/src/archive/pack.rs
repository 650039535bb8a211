//! `fen extension pack` (spec 20 §4): a deterministic `.tar.gz` of an extension
//! directory, refused with the codes extraction would give the same tree.
//!
//! Crash safety: `write_packed` writes the archive, then its `.sha256` sidecar, each to
//! a temp file beside its target, synced and renamed over it, so a registry serving
//! the directory sees the old file or the new one, never a part of one. Nothing is
//! written unless `pack` succeeded.
//!
//! What goes in (§4 step 2): `manifest.yaml`; every file below the kind directories
//! (listed entry points, helpers, data files) except an entry point the manifest does
//! not list, which is refused; and the paths the manifest lists under `files`. The
//! walk honours `.gitignore` files and `.fenignore` files inside the directory (not
//! those of its parents, and no global git excludes, so the result depends on the
//! directory alone); `.git/` and AppleDouble files are skipped silently, and the
//! ignore files themselves are not packed. Below the kind directories and `files/`,
//! a symlink or a hidden entry that no ignore file excludes is refused, listed or not.
//! `node_modules` (issue 17): only the files the packed sources' import closures reach,
//! plus each used package's `package.json` and license file, are packed (see
//! `reachable_packages`); the rest of `node_modules` is left out, wherever it sits.
//! One deviation from the letter of §4: a source file outside `_` directories that
//! fails the export pre-check is a helper to the loader (spec 10 §1.11), so it is
//! packed like the helpers under `_` directories; leaving it out would break the
//! entry points that import it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use fen_domain::ports::ArchiveError;
use fen_domain::{ExtensionName, ExtensionVersion, LoaderKind, Manifest};
use flate2::{Compression, GzBuilder};
use ignore::{DirEntry, WalkBuilder};
use sha2::{Digest, Sha256};

use super::limits::{Tally, MAX_FILE_BYTES, MAX_MANIFEST_BYTES};
use super::manifest::{check_file_set, parse_manifest, ManifestProblem};
use super::messages::Subject;
use super::paths::{
    check_path, placement, visibility, PathProblem, Placement, SeenPaths, Visibility, FILES_DIR,
    MANIFEST_FILE, PACKAGES_DIR, ROOT_DIR,
};
use crate::random;

/// The custom ignore file `pack` honours beside `.gitignore`.
const FEN_IGNORE: &str = ".fenignore";
/// The gzip header's OS byte: "unknown", so the bytes do not depend on the host.
const GZIP_OS_UNKNOWN: u8 = 255;

/// A packed archive, not yet written anywhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedArchive {
    /// The manifest's name.
    pub name: ExtensionName,
    /// The manifest's version.
    pub version: ExtensionVersion,
    /// The `.tar.gz` bytes.
    pub bytes: Vec<u8>,
    /// The files inside, relative to the extension root (without `extension/`),
    /// `/`-separated, sorted by bytes; `manifest.yaml` included.
    pub files: Vec<String>,
    /// SHA-256 of `bytes`, 64 lowercase hex digits.
    pub sha256: String,
    /// Warnings (unknown manifest keys).
    pub warnings: Vec<String>,
}

/// Where `write_packed` puts an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackDestination {
    /// Exactly this file (`--out FILE`, or the default name in the current directory).
    File(PathBuf),
    /// `REGDIR/<name path>/<version>.tar.gz` plus its `.sha256` sidecar, in the layout
    /// `fen registry serve` reads (spec 20 §3.1).
    RegistryDir(PathBuf),
}

impl PackDestination {
    /// The default: `./<scope>-<name>-<version>.tar.gz`.
    pub fn default_for(name: &ExtensionName, version: &ExtensionVersion) -> PackDestination {
        PackDestination::File(PathBuf::from(default_archive_file_name(name, version)))
    }
}

/// What `write_packed` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenArchive {
    /// The archive.
    pub archive: PathBuf,
    /// The `.sha256` sidecar, for a registry directory.
    pub sidecar: Option<PathBuf>,
}

/// `<scope>-<name>-<version>.tar.gz`: the name without `@`, `/` turned into `-`.
///
/// ```
/// use fen_domain::{ExtensionName, ExtensionVersion};
/// use fen_infrastructure::archive::default_archive_file_name;
/// let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
/// let version = ExtensionVersion::parse("2026.05.05.1").unwrap();
/// assert_eq!(default_archive_file_name(&name, &version), "acme-aws-ec2-2026.05.05.1.tar.gz");
/// ```
pub fn default_archive_file_name(name: &ExtensionName, version: &ExtensionVersion) -> String {
    let flat = name.as_str().trim_start_matches('@').replace('/', "-");
    format!("{flat}-{version}.tar.gz")
}

/// Packs `dir` (the archive layout without the `extension/` prefix) into a
/// deterministic archive: same tree, same fen build, same bytes.
pub fn pack(dir: &Path) -> Result<PackedArchive, ArchiveError> {
    let subject = Subject::pack(dir.display().to_string());
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(subject.io("it is not a directory")),
        Err(e) => return Err(subject.io(format!("cannot read it: {e}"))),
    }
    let text = read_manifest(dir, &subject)?;
    let (manifest, warnings) =
        parse_manifest(&text).map_err(|problem| subject.manifest_invalid(&problem))?;
    let subject = Subject::pack(format!("{}@{}", manifest.name, manifest.version));
    let files = collect(dir, &manifest, text.len() as u64, &subject)?;
    let names: BTreeSet<String> = files.keys().cloned().collect();
    check_file_set(&manifest, &names, &mut |rel| match files.get(rel) {
        Some(path) => std::fs::read(path),
        None => Err(std::io::ErrorKind::NotFound.into()),
    })
    .map_err(|problem| subject.file_set(problem))?;
    let bytes = build(&files, &text, &subject)?;
    let sha256 = random::hex(&Sha256::digest(&bytes));
    Ok(PackedArchive {
        name: manifest.name,
        version: manifest.version,
        bytes,
        files: names.into_iter().collect(),
        sha256,
        warnings,
    })
}

/// Writes a packed archive (and, for a registry directory, its sidecar
/// `"<hex>  <file>\n"`), creating directories as needed.
pub fn write_packed(
    packed: &PackedArchive,
    destination: &PackDestination,
) -> Result<WrittenArchive, ArchiveError> {
    let subject = Subject::pack(format!("{}@{}", packed.name, packed.version));
    let write = |path: &Path, bytes: &[u8]| {
        replace_file(path, bytes)
            .map_err(|e| subject.io(format!("cannot write {}: {e}", path.display())))
    };
    match destination {
        PackDestination::File(path) => {
            write(path, &packed.bytes)?;
            Ok(WrittenArchive {
                archive: path.clone(),
                sidecar: None,
            })
        }
        PackDestination::RegistryDir(root) => {
            let mut dir = root.clone();
            dir.extend(packed.name.as_str().split('/'));
            let file_name = format!("{}.tar.gz", packed.version);
            let archive = dir.join(&file_name);
            let sidecar = dir.join(format!("{file_name}.sha256"));
            write(&archive, &packed.bytes)?;
            write(
                &sidecar,
                format!("{}  {file_name}\n", packed.sha256).as_bytes(),
            )?;
            Ok(WrittenArchive {
                archive,
                sidecar: Some(sidecar),
            })
        }
    }
}

/// `dir/manifest.yaml` as text: a regular file of at most 64 KiB.
fn read_manifest(dir: &Path, subject: &Subject) -> Result<String, ArchiveError> {
    let path = dir.join(MANIFEST_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(subject.invalid(format!("there is no {MANIFEST_FILE}")))
        }
        Err(e) => return Err(subject.io(format!("cannot read {}: {e}", path.display()))),
    };
    let shown = format!("{ROOT_DIR}/{MANIFEST_FILE}");
    if meta.file_type().is_symlink() {
        return Err(subject.unsafe_entry(&shown, "symbolic link"));
    }
    if !meta.is_file() {
        return Err(subject.invalid(format!("{MANIFEST_FILE} is not a regular file")));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(subject.manifest_invalid(&ManifestProblem::new(
            MANIFEST_FILE,
            format!("is {} bytes long, at most {MAX_MANIFEST_BYTES}", meta.len()),
        )));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| subject.io(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| {
        subject.manifest_invalid(&ManifestProblem::new(MANIFEST_FILE, "is not valid UTF-8"))
    })
}

/// The files to pack, by path relative to the extension root, with their paths on
/// disk; refuses what extraction would refuse (S2–S7).
fn collect(
    dir: &Path,
    manifest: &Manifest,
    manifest_len: u64,
    subject: &Subject,
) -> Result<BTreeMap<String, PathBuf>, ArchiveError> {
    let listed_files: BTreeSet<String> = manifest
        .files
        .iter()
        .map(|path| format!("{FILES_DIR}/{path}"))
        .collect();
    let mut out = BTreeMap::new();
    let mut seen = SeenPaths::default();
    let mut tally = Tally::default();
    let manifest_entry = format!("{ROOT_DIR}/{MANIFEST_FILE}");
    seen.add(&manifest_entry, false)
        .map_err(|reason| subject.unsafe_entry(&manifest_entry, reason))?;
    tally
        .add_entry()
        .and_then(|()| tally.add_file(manifest_len))
        .map_err(|over| subject.too_large(&over))?;
    out.insert(MANIFEST_FILE.to_owned(), dir.join(MANIFEST_FILE));

    for result in walker(dir).build() {
        let entry =
            result.map_err(|e| subject.io(format!("cannot walk {}: {e}", dir.display())))?;
        if let Some(e) = entry.error() {
            return Err(subject.io(format!("cannot read ignore rules: {e}")));
        }
        if entry.depth() == 0 {
            continue;
        }
        let rel = relative(dir, entry.path())
            .map_err(|shown| subject.unsafe_entry(&shown, PathProblem::NotUtf8))?;
        let archive_path = format!("{ROOT_DIR}/{rel}");
        check_path(&archive_path)
            .map_err(|problem| subject.unsafe_entry(&archive_path, problem))?;
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            return Err(subject.unsafe_entry(&archive_path, "symbolic link"));
        }
        match visibility(&rel) {
            Visibility::Visible => {}
            Visibility::Skipped => continue,
            Visibility::Hidden => {
                return Err(subject.unsafe_entry(&archive_path, PathProblem::Hidden))
            }
        }
        if file_type.is_dir() {
            continue;
        }
        if !file_type.is_file() {
            return Err(subject.unsafe_entry(&archive_path, "not a regular file or directory"));
        }
        if entry.depth() == 1 {
            return Err(subject.invalid(format!("{rel} must be a directory")));
        }
        if rel.starts_with(&format!("{FILES_DIR}/")) && !listed_files.contains(&rel) {
            continue;
        }
        seen.add(&archive_path, false)
            .map_err(|reason| subject.unsafe_entry(&archive_path, reason))?;
        let len = entry
            .metadata()
            .map_err(|e| subject.io(format!("cannot read {}: {e}", entry.path().display())))?
            .len();
        tally
            .add_entry()
            .and_then(|()| tally.add_file(len))
            .map_err(|over| subject.too_large(&over))?;
        out.insert(rel, entry.into_path());
    }
    for rel in reachable_packages(dir, &out, subject)? {
        let archive_path = format!("{ROOT_DIR}/{rel}");
        check_path(&archive_path)
            .map_err(|problem| subject.unsafe_entry(&archive_path, problem))?;
        if visibility(&rel) != Visibility::Visible {
            return Err(subject.unsafe_entry(&archive_path, PathProblem::Hidden));
        }
        let path = dir.join(&rel);
        let len = regular_file_len(dir, &rel)
            .map_err(|reason| subject.unsafe_entry(&archive_path, reason))?;
        seen.add(&archive_path, false)
            .map_err(|reason| subject.unsafe_entry(&archive_path, reason))?;
        tally
            .add_entry()
            .and_then(|()| tally.add_file(len))
            .map_err(|over| subject.too_large(&over))?;
        out.insert(rel, path);
    }
    Ok(out)
}

/// The `node_modules` files the packed sources need (issue 17, amending §4 step 2):
/// every file of their import closures that lies under a `node_modules` directory,
/// plus each used package's `package.json` and license file. Nothing else of
/// `node_modules` is packed. The closures use the fingerprint's resolution, which is
/// the bundler's, so the pulled copy bundles exactly as the packed directory did.
fn reachable_packages(
    dir: &Path,
    packed: &BTreeMap<String, PathBuf>,
    subject: &Subject,
) -> Result<BTreeSet<String>, ArchiveError> {
    // The closures need an absolute boundary (`pack .` is common).
    let dir = &std::path::absolute(dir)
        .map_err(|e| subject.io(format!("cannot resolve {}: {e}", dir.display())))?;
    let mut cache = crate::sources::FreshnessCache::new();
    let mut files = BTreeSet::new();
    let mut package_dirs = BTreeSet::new();
    for rel in packed.keys() {
        let is_source = matches!(placement(rel), Placement::Kind { .. })
            && [".ts", ".mts", ".js", ".mjs"]
                .iter()
                .any(|ext| rel.ends_with(ext));
        if !is_source {
            continue;
        }
        for file in crate::sources::import_closure(&dir.join(rel), dir, &mut cache) {
            if let Some(package) = package_dir_of(&file) {
                package_dirs.insert(package.to_owned());
                if !packed.contains_key(&file) && dir.join(&file).is_file() {
                    files.insert(file);
                }
            }
        }
    }
    for package in &package_dirs {
        let listing = std::fs::read_dir(dir.join(package))
            .map_err(|e| subject.io(format!("cannot read {package}: {e}")))?;
        let mut names: Vec<String> = listing
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| {
                let lower = name.to_ascii_lowercase();
                lower == "package.json"
                    || lower.starts_with("license")
                    || lower.starts_with("licence")
            })
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{package}/{name}");
            if dir.join(&rel).is_file() && !packed.contains_key(&rel) {
                files.insert(rel);
            }
        }
    }
    Ok(files)
}

/// `.../node_modules/<name>` or `.../node_modules/@scope/<name>` for a path inside a
/// package (the innermost one).
fn package_dir_of(rel: &str) -> Option<&str> {
    let start = rel.rfind("node_modules/")?;
    if start > 0 && !rel[..start].ends_with('/') {
        return None;
    }
    let after = start + "node_modules/".len();
    let rest = &rel[after..];
    let mut parts = rest.splitn(3, '/');
    let first = parts.next()?;
    let len = if first.starts_with('@') {
        let second = parts.next()?;
        first.len() + 1 + second.len()
    } else {
        first.len()
    };
    // A file directly in node_modules/ (or in a scope dir) is in no package.
    (rest.len() > len).then(|| &rel[..after + len])
}

/// The size of the regular file at `rel` below `dir`; refuses a symlink on the way.
fn regular_file_len(dir: &Path, rel: &str) -> Result<u64, &'static str> {
    let mut path = dir.to_path_buf();
    let mut meta = None;
    for segment in rel.split('/') {
        path.push(segment);
        let found = std::fs::symlink_metadata(&path).map_err(|_| "cannot be read")?;
        if found.file_type().is_symlink() {
            return Err("symbolic link");
        }
        meta = Some(found);
    }
    match meta {
        Some(meta) if meta.is_file() => Ok(meta.len()),
        _ => Err("not a regular file or directory"),
    }
}

/// The walk over `dir`: `.gitignore` (without needing a git repository) and
/// `.fenignore` files inside `dir`, hidden files shown (so they can be refused),
/// symlinks reported and never followed, only the kind directories and `files/`
/// entered.
fn walker(dir: &Path) -> WalkBuilder {
    let mut builder = WalkBuilder::new(dir);
    builder
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_global(false)
        .git_exclude(false)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(FEN_IGNORE)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(in_scope);
    builder
}

/// Which walked entries matter: the top level only for kind directories and `files/`;
/// below, everything but `.git/`, the ignore files and what S5 skips silently.
fn in_scope(entry: &DirEntry) -> bool {
    let name = entry.file_name().to_string_lossy();
    match entry.depth() {
        0 => true,
        1 => LoaderKind::from_kind_dir(&name).is_some() || name == FILES_DIR,
        _ => {
            let is_file = entry.file_type().is_some_and(|t| t.is_file());
            let ignore_file = is_file && (name == ".gitignore" || name == FEN_IGNORE);
            // `node_modules` is never walked: `reachable_packages` adds what is used.
            name != ".git"
                && name != PACKAGES_DIR
                && !ignore_file
                && visibility(&name) != Visibility::Skipped
        }
    }
}

/// `path` below `dir` as a `/`-separated string, or its lossy spelling if it is not
/// UTF-8.
fn relative(dir: &Path, path: &Path) -> Result<String, String> {
    let below = path.strip_prefix(dir).unwrap_or(path);
    let parts: Option<Vec<&str>> = below.iter().map(|part| part.to_str()).collect();
    match parts {
        Some(parts) => Ok(parts.join("/")),
        None => Err(format!("{ROOT_DIR}/{}", below.to_string_lossy())),
    }
}

/// The tar, gzipped: entries in path byte order, regular files only, `extension/`
/// prefix, ustar headers (a GNU long-name entry for a path ustar cannot hold), mode
/// 0644, uid/gid 0, empty owner names, mtime 0; gzip without file name, mtime 0,
/// OS byte 255. The limits are checked again on the bytes actually read.
fn build(
    files: &BTreeMap<String, PathBuf>,
    manifest_text: &str,
    subject: &Subject,
) -> Result<Vec<u8>, ArchiveError> {
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(Vec::new(), Compression::default());
    let mut tar = tar::Builder::new(gzip);
    let mut tally = Tally::default();
    let failed = |e: std::io::Error| subject.io(format!("cannot build the archive: {e}"));
    for (rel, path) in files {
        let data = if rel == MANIFEST_FILE {
            manifest_text.as_bytes().to_vec()
        } else {
            read_capped(path)
                .map_err(|e| subject.io(format!("cannot read {}: {e}", path.display())))?
        };
        tally
            .add_entry()
            .and_then(|()| tally.add_file(data.len() as u64))
            .map_err(|over| subject.too_large(&over))?;
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, format!("{ROOT_DIR}/{rel}"), data.as_slice())
            .map_err(failed)?;
    }
    let gzip = tar.into_inner().map_err(failed)?;
    gzip.finish().map_err(failed)
}

/// A file's bytes, reading at most one byte past the file size limit.
fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut data)?;
    Ok(data)
}

/// Writes `bytes` to a temp file beside `path`, syncs it and renames it over `path`.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".fen-tmp-{}", random::hex(&random::bytes::<8>())));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests;

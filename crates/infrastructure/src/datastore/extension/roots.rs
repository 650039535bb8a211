//! The confined file roots of a datastore call's `ctx` (spec 30 §2.8): `ctx.local`
//! over `.fen/data/` and `ctx.remote` over the configured `remote:` directory.
//!
//! Every path is checked in Rust before any syscall (non-empty, relative, `/`-separated,
//! no `\`, no NUL, no empty / `.` / `..` segment, not under a reserved prefix), and
//! every existing component below the root is inspected with `symlink_metadata`: a
//! symlink anywhere on the way is `path_denied`, so a planted link can never lead
//! outside the root. Writes and copies go to a temp file in the target directory and
//! are renamed into place, so a reader never sees a half-written file.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

use fen_domain::ports::runtime::CtxError;

/// Largest file `readText` returns (spec 30 §2.8: larger files go through `ctx.copy`).
pub const MAX_READ_BYTES: u64 = 32 * 1024 * 1024;
/// Most entries `list` returns.
const MAX_LIST_ENTRIES: usize = 1_000_000;
/// Name prefix of the temp files of atomic writes; `list` leaves them out.
const TEMP_PREFIX: &str = ".fen-tmp-";

/// One root: a directory and the prefixes the extension may not touch.
#[derive(Clone, Debug)]
pub struct FileRoot {
    name: &'static str,
    dir: PathBuf,
    reserved: &'static [&'static str],
}

fn denied(message: String) -> CtxError {
    CtxError::new("path_denied", message)
}

fn io_error(op: &str, path: &str, error: io::Error) -> CtxError {
    CtxError::new("io_error", format!("{op} {path}: {error}"))
}

impl FileRoot {
    /// `ctx.local`.
    pub fn local(dir: PathBuf) -> FileRoot {
        FileRoot {
            name: "local",
            dir,
            reserved: &[],
        }
    }

    /// `ctx.remote`: `.fen-locks/` belongs to fen's locks (spec 30 §7.6).
    pub fn remote(dir: PathBuf) -> FileRoot {
        FileRoot {
            name: "remote",
            dir,
            reserved: &[".fen-locks"],
        }
    }

    /// The root's name, `local` or `remote`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Checks `path` against the path rules; returns its segments.
    pub fn check<'p>(&self, op: &str, path: &'p str) -> Result<Vec<&'p str>, CtxError> {
        let shown = format!("ctx.{}.{op}({path:?})", self.name);
        if path.is_empty() {
            return Err(denied(format!("{shown}: the path is empty")));
        }
        if path.starts_with('/') {
            return Err(denied(format!("{shown}: the path must be relative")));
        }
        if path.contains('\\') {
            return Err(denied(format!("{shown}: the path contains a backslash")));
        }
        if path.contains('\0') {
            return Err(denied(format!("{shown}: the path contains a NUL")));
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(denied(format!(
                "{shown}: empty, '.' and '..' segments are not allowed"
            )));
        }
        if self.reserved.contains(&segments[0]) {
            return Err(denied(format!(
                "{shown}: {}/ is reserved for fen's locks",
                segments[0]
            )));
        }
        Ok(segments)
    }

    /// The native path of checked `segments`, refusing a symlink on the way. Missing
    /// components are fine (a write creates them).
    fn resolve(&self, op: &str, path: &str, segments: &[&str]) -> Result<PathBuf, CtxError> {
        let mut native = self.dir.clone();
        for segment in segments {
            native.push(segment);
            match fs::symlink_metadata(&native) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(denied(format!(
                    "ctx.{}.{op}({path:?}): {segment} is a symlink; symlinks are never followed",
                    self.name
                )))
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_error(op, path, e)),
            }
        }
        Ok(self.dir.join(segments.join("/")))
    }

    /// The checked native path of `path`.
    pub fn native(&self, op: &str, path: &str) -> Result<PathBuf, CtxError> {
        let segments = self.check(op, path)?;
        self.resolve(op, path, &segments)
    }

    /// `list(prefix?)`: `[{ path, size }]` of files, recursive, sorted, temp files and
    /// reserved prefixes left out.
    pub fn list(&self, prefix: &str) -> Result<Json, CtxError> {
        let prefix = prefix.trim_end_matches('/');
        let start = if prefix.is_empty() {
            self.dir.clone()
        } else {
            self.native("list", prefix)?
        };
        let mut out = Vec::new();
        let meta = match fs::symlink_metadata(&start) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(json!([])),
            Err(e) => return Err(io_error("list", prefix, e)),
        };
        if meta.is_file() {
            out.push((prefix.to_owned(), meta.len()));
        } else {
            self.walk(&start, prefix, &mut out)?;
        }
        out.sort();
        Ok(Json::Array(
            out.into_iter()
                .map(|(path, size)| json!({ "path": path, "size": size }))
                .collect(),
        ))
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<(String, u64)>) -> Result<(), CtxError> {
        let entries = fs::read_dir(dir).map_err(|e| io_error("list", rel, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", rel, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if name.starts_with(TEMP_PREFIX)
                || (rel.is_empty() && self.reserved.contains(&name.as_str()))
            {
                continue;
            }
            let kind = entry.file_type().map_err(|e| io_error("list", &child, e))?;
            if kind.is_symlink() {
                return Err(denied(format!(
                    "ctx.{}.list: {child} is a symlink; symlinks are never followed",
                    self.name
                )));
            }
            if kind.is_dir() {
                self.walk(&entry.path(), &child, out)?;
            } else if kind.is_file() {
                if out.len() >= MAX_LIST_ENTRIES {
                    return Err(CtxError::new(
                        "invalid_argument",
                        format!("ctx.{}.list: more than {MAX_LIST_ENTRIES} files; list a narrower prefix", self.name),
                    ));
                }
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((child, size));
            }
        }
        Ok(())
    }

    /// `stat(path)`: `{ size, sha256 }` or `null`.
    pub fn stat(&self, path: &str) -> Result<Json, CtxError> {
        let native = self.native("stat", path)?;
        let mut file = match open_file(&native) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(Json::Null),
            Err(e) => return Err(io_error("stat", path, e)),
        };
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher).map_err(|e| io_error("stat", path, e))?;
        Ok(json!({ "size": size, "sha256": crate::random::hex(&hasher.finalize()) }))
    }

    /// `readBytes(path)`: the bytes (at most 32 MiB) or `None`.
    pub fn read_bytes(&self, op: &str, path: &str) -> Result<Option<Vec<u8>>, CtxError> {
        let native = self.native(op, path)?;
        let file = match open_file(&native) {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(None),
            Err(e) => return Err(io_error(op, path, e)),
        };
        let mut bytes = Vec::new();
        file.take(MAX_READ_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(op, path, e))?;
        if bytes.len() as u64 > MAX_READ_BYTES {
            return Err(CtxError::new(
                "invalid_argument",
                format!(
                    "ctx.{}.{op}({path:?}): the file is over 32 MiB; use ctx.copy",
                    self.name
                ),
            ));
        }
        Ok(Some(bytes))
    }

    /// `writeBytes(path, u8)`: temp file in the same directory, fsync, rename.
    pub fn write_bytes(&self, path: &str, bytes: &[u8]) -> Result<(), CtxError> {
        let native = self.native("writeBytes", path)?;
        self.make_parents("writeBytes", path)?;
        write_atomic(&native, |file| file.write_all(bytes))
            .map_err(|e| io_error("writeBytes", path, e))
    }

    /// `readText(path)`: the text or `null`.
    pub fn read_text(&self, path: &str) -> Result<Json, CtxError> {
        let Some(bytes) = self.read_bytes("readText", path)? else {
            return Ok(Json::Null);
        };
        String::from_utf8(bytes).map(Json::String).map_err(|_| {
            CtxError::new(
                "invalid_argument",
                format!(
                    "ctx.{}.readText({path:?}): the file is not UTF-8 text",
                    self.name
                ),
            )
        })
    }

    /// `writeText(path, s)`: temp file in the same directory, fsync, rename.
    pub fn write_text(&self, path: &str, text: &str) -> Result<(), CtxError> {
        let native = self.native("writeText", path)?;
        self.make_parents("writeText", path)?;
        write_atomic(&native, |file| file.write_all(text.as_bytes()))
            .map_err(|e| io_error("writeText", path, e))
    }

    /// `remove(path)`: `true` if a file was removed.
    pub fn remove(&self, path: &str) -> Result<Json, CtxError> {
        let native = self.native("remove", path)?;
        match fs::symlink_metadata(&native) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Ok(Json::Bool(false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Json::Bool(false)),
            Err(e) => return Err(io_error("remove", path, e)),
        }
        match fs::remove_file(&native) {
            Ok(()) => Ok(Json::Bool(true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Json::Bool(false)),
            Err(e) => Err(io_error("remove", path, e)),
        }
    }

    /// Creates the missing parent directories of `path`, one checked component at a
    /// time (a symlink planted on the way is refused by `native` first).
    fn make_parents(&self, op: &str, path: &str) -> Result<(), CtxError> {
        let segments = self.check(op, path)?;
        let mut dir = self.dir.clone();
        for segment in &segments[..segments.len() - 1] {
            dir.push(segment);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let meta = fs::symlink_metadata(&dir).map_err(|e| io_error(op, path, e))?;
                    if !meta.is_dir() {
                        return Err(denied(format!(
                            "ctx.{}.{op}({path:?}): {segment} is not a directory",
                            self.name
                        )));
                    }
                }
                Err(e) => return Err(io_error(op, path, e)),
            }
        }
        Ok(())
    }
}

/// `ctx.copy(path, { from })`: copies `path` from `from` to the same path in `to`
/// through a temp file and a rename; the bytes never enter the JS heap.
pub fn copy(from: &FileRoot, to: &FileRoot, path: &str) -> Result<(), CtxError> {
    let source = from.native("copy", path)?;
    let target = to.native("copy", path)?;
    let Some(mut reader) = open_file(&source).map_err(|e| io_error("copy", path, e))? else {
        return Err(CtxError::new(
            "not_found",
            format!(
                "ctx.copy({path:?}, {{ from: \"{}\" }}): no such file",
                from.name
            ),
        ));
    };
    to.make_parents("copy", path)?;
    write_atomic(&target, |file| io::copy(&mut reader, file).map(|_| ()))
        .map_err(|e| io_error("copy", path, e))
}

/// Opens a regular file without following a final symlink; `None` when absent.
fn open_file(path: &Path) -> io::Result<Option<fs::File>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc_nofollow());
    }
    match options.open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(all(unix, target_os = "linux"))]
fn libc_nofollow() -> i32 {
    0o400000 // O_NOFOLLOW
}

#[cfg(all(unix, not(target_os = "linux")))]
fn libc_nofollow() -> i32 {
    0x0100 // O_NOFOLLOW on the BSDs and macOS
}

/// Writes a temp file next to `target` with `fill`, fsyncs it and renames it over
/// `target` (atomic on one filesystem); the temp file is removed on failure.
fn write_atomic(
    target: &Path,
    fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}",
        crate::random::hex(&crate::random::bytes::<8>())
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        fill(&mut file)?;
        file.sync_all()?;
        fs::rename(&temp, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

//! Resolution of import specifiers (spec 30 §2.1, §3.2 step 4; spec 10 §1.9).
//!
//! Relative specifiers name the exact file: they are joined with the importer's
//! directory and normalized lexically, with no extension probing and no `index`
//! lookup. The result must stay inside the boundary, and so must a symlink's target.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The host modules of this layout version (spec 30 §2.1).
pub const HOST_MODULES: [&str; 1] = ["fen:sdk"];

/// What a specifier is, before touching the filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Specifier {
    /// `./...` or `../...`.
    Relative,
    /// `fen:<name>` from [`HOST_MODULES`].
    Host,
    /// `fen:<name>` outside the set.
    UnknownHost,
    /// Anything else: bare names, `npm:`, `jsr:`, `node:`, URLs, absolute paths.
    Unsupported,
}

/// Classifies a specifier as written.
pub(crate) fn classify(specifier: &str) -> Specifier {
    if specifier.starts_with("./") || specifier.starts_with("../") {
        Specifier::Relative
    } else if HOST_MODULES.contains(&specifier) {
        Specifier::Host
    } else if specifier.starts_with("fen:") {
        Specifier::UnknownHost
    } else {
        Specifier::Unsupported
    }
}

/// Joins a relative specifier with the importer's directory and normalizes
/// lexically (spec 10 §1.6 step 3), like the fingerprint does. Returns the
/// boundary-relative path, or `None` when the result is not strictly inside the
/// boundary; intermediate `..` above the boundary is fine if the path comes back.
pub(crate) fn join_relative(boundary: &Path, importer: &str, specifier: &str) -> Option<String> {
    let mut path = native_path(&lexical(boundary), importer);
    path.pop();
    for segment in specifier.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                path.pop();
            }
            other => path.push(other),
        }
    }
    relative_to(&path, boundary)
}

/// `path` relative to `base` with `/` separators, spelled as the native components
/// are (no case folding); `None` when not strictly under `base` or not UTF-8.
pub(crate) fn relative_to(path: &Path, base: &Path) -> Option<String> {
    let path = lexical(path);
    let base = lexical(base);
    let rest = path.strip_prefix(&base).ok()?;
    let mut segments = Vec::new();
    for component in rest.components() {
        match component {
            Component::Normal(segment) => segments.push(segment.to_str()?),
            _ => return None,
        }
    }
    (!segments.is_empty()).then(|| segments.join("/"))
}

/// Removes `.` components and applies `..` lexically (never above the root).
pub(crate) fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The native path of a boundary-relative path.
pub(crate) fn native_path(boundary: &Path, relative: &str) -> PathBuf {
    let mut path = boundary.to_path_buf();
    path.extend(relative.split('/'));
    path
}

/// Why a resolved file cannot be used.
#[derive(Debug)]
pub(crate) enum FileProblem {
    /// Nothing exists at the path.
    Missing,
    /// A symlink whose target lies outside the boundary.
    Escapes,
    /// It exists but cannot be read as a file.
    Unreadable(String),
}

/// Checks the file at `path`: it must exist, be (or link to) a regular file, and a
/// symlink's resolved target must lie under `boundary`.
pub(crate) fn check_file(path: &Path, boundary: &Path) -> Result<(), FileProblem> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(FileProblem::Missing),
        Err(error) => return Err(FileProblem::Unreadable(error.to_string())),
    };
    let metadata = if metadata.file_type().is_symlink() {
        let target = fs::canonicalize(path)
            .map_err(|error| FileProblem::Unreadable(format!("dangling symlink: {error}")))?;
        let boundary = fs::canonicalize(boundary)
            .map_err(|error| FileProblem::Unreadable(format!("boundary unreadable: {error}")))?;
        if !target.starts_with(&boundary) {
            return Err(FileProblem::Escapes);
        }
        fs::metadata(&target).map_err(|error| FileProblem::Unreadable(error.to_string()))?
    } else {
        metadata
    };
    if metadata.is_dir() {
        return Err(FileProblem::Unreadable("is a directory".to_owned()));
    }
    Ok(())
}

/// A specifier for an existing sibling that differs only by a TS/JS extension
/// (`./x.js` → `./x.ts`, `./x` → `./x.ts`), for "did you mean" hints.
pub(crate) fn suggest_sibling(specifier: &str, missing: &Path) -> Option<String> {
    let (stem, extension) = match specifier.rsplit_once('/') {
        Some((_, last)) => match last.rsplit_once('.') {
            Some((_, extension)) => (
                &specifier[..specifier.len() - extension.len() - 1],
                Some(extension),
            ),
            None => (specifier, None),
        },
        None => return None,
    };
    let alternatives: &[&str] = match extension {
        Some("js") => &["ts"],
        Some("mjs") => &["mts"],
        Some("ts") => &["js"],
        Some("mts") => &["mjs"],
        Some(_) => &[],
        None => &["ts", "mts", "js", "mjs"],
    };
    let file_name = missing.file_name()?.to_str()?;
    let file_stem = match extension {
        Some(extension) => file_name.strip_suffix(extension)?.strip_suffix('.')?,
        None => file_name,
    };
    alternatives.iter().find_map(|alternative| {
        let candidate = missing.with_file_name(format!("{file_stem}.{alternative}"));
        fs::symlink_metadata(&candidate)
            .is_ok()
            .then(|| format!("{stem}.{alternative}"))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let cases = [
            ("./a.ts", Specifier::Relative),
            ("../a.ts", Specifier::Relative),
            ("fen:sdk", Specifier::Host),
            ("fen:nope", Specifier::UnknownHost),
            ("zod", Specifier::Unsupported),
            ("npm:zod", Specifier::Unsupported),
            ("jsr:@std/path", Specifier::Unsupported),
            ("node:fs", Specifier::Unsupported),
            ("https://x.test/a.js", Specifier::Unsupported),
            ("/abs/a.ts", Specifier::Unsupported),
            (".", Specifier::Unsupported),
            ("..", Specifier::Unsupported),
        ];
        for (specifier, expected) in cases {
            assert_eq!(classify(specifier), expected, "{specifier}");
        }
    }

    #[test]
    fn lexical_join() {
        let boundary = Path::new("/w/repo/extensions");
        let cases = [
            ("models/a.ts", "./b.ts", Some("models/b.ts")),
            ("models/a.ts", "../_lib/h.ts", Some("_lib/h.ts")),
            ("models/net/a.ts", ".././/x/./y.ts", Some("models/x/y.ts")),
            (
                "models/a.ts",
                "../../extensions/models/c.ts",
                Some("models/c.ts"),
            ),
            ("models/a.ts", "../../outside.ts", None),
            ("models/a.ts", "../../extensions-old/x.ts", None),
            ("models/a.ts", "../", None),
        ];
        for (importer, specifier, expected) in cases {
            assert_eq!(
                join_relative(boundary, importer, specifier).as_deref(),
                expected,
                "{importer} {specifier}"
            );
        }
    }

    #[test]
    fn sibling_suggestions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.ts"), "").unwrap();
        fs::write(dir.path().join("y.mjs"), "").unwrap();
        let suggest =
            |specifier: &str, name: &str| suggest_sibling(specifier, &dir.path().join(name));
        assert_eq!(suggest("./x.js", "x.js").as_deref(), Some("./x.ts"));
        assert_eq!(suggest("../m/x", "x").as_deref(), Some("../m/x.ts"));
        assert_eq!(suggest("./y.mts", "y.mts").as_deref(), Some("./y.mjs"));
        assert_eq!(suggest("./z.js", "z.js"), None);
        assert_eq!(suggest("./x.json", "x.json"), None);
    }
}

//! Path rules shared by the packer and the extractor: S2, S3, S5 and S6 of spec 20
//! §5.2 and the layout of §5.1 (top-level names, what an entry point is).
//!
//! What counts as a source file and as an entry point is the loader's rule (spec 10
//! §1.11): `sources::is_candidate_name` for the file name, and no directory below the
//! kind directory named `_*` or `node_modules`.

use std::collections::HashMap;
use std::fmt;

use fen_domain::LoaderKind;

use crate::sources::is_candidate_name;

/// Every archive entry lives under this directory.
pub(crate) const ROOT_DIR: &str = "extension";
/// The manifest, relative to the extension root.
pub(crate) const MANIFEST_FILE: &str = "manifest.yaml";
/// Non-code files, relative to the extension root.
pub(crate) const FILES_DIR: &str = "files";
/// The npm packages the extension imports, relative to the extension root (issue 17).
pub(crate) const PACKAGES_DIR: &str = "node_modules";

const MAX_PATH_BYTES: usize = 240;
const MAX_SEGMENT_BYTES: usize = 128;

/// Why a path breaks S2, S3 or S5: the REASON of an `archive_unsafe` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathProblem {
    NotUtf8,
    Empty,
    ControlCharacter,
    Backslash,
    Absolute,
    DrivePath,
    EmptySegment,
    DotSegment,
    DotDotSegment,
    TooLong(usize),
    SegmentTooLong(usize),
    Hidden,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::NotUtf8 => f.write_str("path is not valid UTF-8"),
            PathProblem::Empty => f.write_str("empty path"),
            PathProblem::ControlCharacter => f.write_str("control character in path"),
            PathProblem::Backslash => f.write_str("backslash in path"),
            PathProblem::Absolute => f.write_str("absolute path"),
            PathProblem::DrivePath => f.write_str("Windows drive path"),
            PathProblem::EmptySegment => f.write_str("empty path segment"),
            PathProblem::DotSegment => f.write_str("'.' path segment"),
            PathProblem::DotDotSegment => f.write_str("'..' path segment"),
            PathProblem::TooLong(len) => {
                write!(f, "path is {len} bytes long, at most {MAX_PATH_BYTES}")
            }
            PathProblem::SegmentTooLong(len) => {
                write!(
                    f,
                    "path segment is {len} bytes long, at most {MAX_SEGMENT_BYTES}"
                )
            }
            PathProblem::Hidden => f.write_str("hidden file or directory"),
        }
    }
}

/// S2 and S3 for a `/`-separated relative path, taken as written (no `./` removed).
pub(crate) fn check_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}') {
        return Err(PathProblem::ControlCharacter);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(PathProblem::DrivePath);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathProblem::EmptySegment),
            "." => return Err(PathProblem::DotSegment),
            ".." => return Err(PathProblem::DotDotSegment),
            _ if segment.len() > MAX_SEGMENT_BYTES => {
                return Err(PathProblem::SegmentTooLong(segment.len()))
            }
            _ => {}
        }
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::TooLong(path.len()));
    }
    Ok(())
}

/// An archive entry's path, checked against S2 and S3: one leading `./` is removed,
/// and for a directory one trailing `/`.
pub(crate) fn entry_path(raw: &[u8], is_dir: bool) -> Result<String, PathProblem> {
    let text = std::str::from_utf8(raw).map_err(|_| PathProblem::NotUtf8)?;
    let text = text.strip_prefix("./").unwrap_or(text);
    let text = match is_dir {
        true => text.strip_suffix('/').unwrap_or(text),
        false => text,
    };
    check_path(text)?;
    Ok(text.to_owned())
}

/// What S5 says about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// An ordinary path.
    Visible,
    /// AppleDouble (`._*`) or under `__MACOSX/`: skipped without a word.
    Skipped,
    /// Some other segment starts with `.`.
    Hidden,
}

/// S5 for a `/`-separated path.
pub(crate) fn visibility(path: &str) -> Visibility {
    let last = path.rsplit('/').next().unwrap_or(path);
    if last.starts_with("._") || path.split('/').any(|segment| segment == "__MACOSX") {
        Visibility::Skipped
    } else if path.split('/').any(|segment| segment.starts_with('.')) {
        Visibility::Hidden
    } else {
        Visibility::Visible
    }
}

/// Where a path relative to the extension root belongs (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement<'p> {
    /// `manifest.yaml`.
    Manifest,
    /// A kind directory, or something below it (`rest` is empty for the directory).
    Kind { kind: LoaderKind, rest: &'p str },
    /// `files/`, or something below it.
    Files { rest: &'p str },
    /// `node_modules/`, or something below it: the npm packages the extension's
    /// modules import (issue 17; the packer includes only the reachable files).
    Packages { rest: &'p str },
    /// Any other top-level name.
    Unknown { top: &'p str },
}

/// Places a path relative to the extension root.
pub(crate) fn placement(rel: &str) -> Placement<'_> {
    let (top, rest) = rel.split_once('/').unwrap_or((rel, ""));
    if rel == MANIFEST_FILE {
        Placement::Manifest
    } else if let Some(kind) = LoaderKind::from_kind_dir(top) {
        Placement::Kind { kind, rest }
    } else if top == FILES_DIR {
        Placement::Files { rest }
    } else if top == PACKAGES_DIR {
        Placement::Packages { rest }
    } else {
        Placement::Unknown { top }
    }
}

/// The loader kind whose entry point `rel` (relative to the extension root) would be if
/// its text passes the export pre-check: a source file inside a kind directory with no
/// directory below the kind directory named `_*` or `node_modules` (spec 10 §1.11).
pub(crate) fn entry_point_kind(rel: &str) -> Option<LoaderKind> {
    let Placement::Kind { kind, rest } = placement(rel) else {
        return None;
    };
    let (dirs, file) = match rest.rsplit_once('/') {
        Some((dirs, file)) => (Some(dirs), file),
        None => (None, rest),
    };
    let helper_dir = dirs.is_some_and(|dirs| {
        dirs.split('/')
            .any(|dir| dir.starts_with('_') || dir == "node_modules")
    });
    (!helper_dir && is_candidate_name(file)).then_some(kind)
}

/// Why `rel` is not an entry point of `kind`, for a listed path that is not one.
pub(crate) fn why_not_entry_point(rel: &str) -> &'static str {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    if is_candidate_name(file) {
        "is inside a helper directory ('_*' or node_modules), so it is not an entry point"
    } else {
        "is not a source file (.ts, .mts, .js or .mjs; not .d.ts or a test file)"
    }
}

/// S6: the paths seen so far, folded to ASCII lower case, with their directories.
#[derive(Debug, Default)]
pub(crate) struct SeenPaths {
    /// Folded path → its first spelling and what it is.
    by_folded: HashMap<String, (String, Seen)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    File,
    /// A directory; `explicit` once an entry named it (not just a file below it).
    Dir {
        explicit: bool,
    },
}

impl SeenPaths {
    /// Records one entry; `Err` is the S6 reason when it repeats a path, differs from
    /// one only in case, or is a file where another entry has a directory (or back).
    pub(crate) fn add(&mut self, path: &str, is_dir: bool) -> Result<(), String> {
        for (end, _) in path.match_indices('/') {
            self.add_one(&path[..end], Seen::Dir { explicit: false })?;
        }
        let seen = match is_dir {
            true => Seen::Dir { explicit: true },
            false => Seen::File,
        };
        self.add_one(path, seen)
    }

    fn add_one(&mut self, path: &str, seen: Seen) -> Result<(), String> {
        let folded = path.to_ascii_lowercase();
        let Some((spelling, earlier)) = self.by_folded.get_mut(&folded) else {
            self.by_folded.insert(folded, (path.to_owned(), seen));
            return Ok(());
        };
        if spelling != path {
            return Err(format!("differs only in case from \"{spelling}\""));
        }
        match (*earlier, seen) {
            (Seen::Dir { .. }, Seen::Dir { explicit: false }) => Ok(()),
            (Seen::Dir { explicit: false }, Seen::Dir { explicit: true }) => {
                *earlier = seen;
                Ok(())
            }
            (Seen::File, Seen::File) | (Seen::Dir { explicit: true }, Seen::Dir { .. }) => {
                Err("duplicate entry".to_owned())
            }
            (Seen::File, Seen::Dir { .. }) | (Seen::Dir { .. }, Seen::File) => {
                Err(format!("\"{spelling}\" is both a file and a directory"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s2_and_s3() {
        let cases: [(&str, Result<(), PathProblem>); 14] = [
            ("extension/models/a.ts", Ok(())),
            ("", Err(PathProblem::Empty)),
            ("/etc/passwd", Err(PathProblem::Absolute)),
            ("C:/x", Err(PathProblem::DrivePath)),
            ("c:x", Err(PathProblem::DrivePath)),
            ("a\\b", Err(PathProblem::Backslash)),
            ("a\u{0}b", Err(PathProblem::ControlCharacter)),
            ("a\u{7f}b", Err(PathProblem::ControlCharacter)),
            ("a//b", Err(PathProblem::EmptySegment)),
            ("a/", Err(PathProblem::EmptySegment)),
            ("a/./b", Err(PathProblem::DotSegment)),
            ("extension/../x", Err(PathProblem::DotDotSegment)),
            ("..", Err(PathProblem::DotDotSegment)),
            ("a/ü.ts", Ok(())),
        ];
        for (path, expected) in cases {
            assert_eq!(check_path(path), expected, "{path:?}");
        }
        let long = format!("extension/files/{}", "a/".repeat(120));
        assert_eq!(
            check_path(long.trim_end_matches('/')),
            Err(PathProblem::TooLong(255))
        );
        let segment = "s".repeat(129);
        assert_eq!(
            check_path(&format!("extension/{segment}")),
            Err(PathProblem::SegmentTooLong(129))
        );
        assert_eq!(check_path(&"a".repeat(128)), Ok(()));
    }

    #[test]
    fn entry_paths_lose_one_leading_dot_slash_and_a_directory_slash() {
        assert_eq!(entry_path(b"./extension/a", false).unwrap(), "extension/a");
        assert_eq!(entry_path(b"extension/", true).unwrap(), "extension");
        assert_eq!(
            entry_path(b"extension/", false),
            Err(PathProblem::EmptySegment)
        );
        assert_eq!(entry_path(b"././a", false), Err(PathProblem::DotSegment));
        assert_eq!(entry_path(b"a\xff", false), Err(PathProblem::NotUtf8));
    }

    #[test]
    fn s5_visibility() {
        assert_eq!(visibility("extension/models/a.ts"), Visibility::Visible);
        assert_eq!(visibility("extension/models/._a.ts"), Visibility::Skipped);
        assert_eq!(visibility("__MACOSX/extension/x"), Visibility::Skipped);
        assert_eq!(visibility("extension/__MACOSX"), Visibility::Skipped);
        assert_eq!(visibility("extension/.env"), Visibility::Hidden);
        assert_eq!(visibility("extension/.git/config"), Visibility::Hidden);
        assert_eq!(visibility("extension/._dir/x"), Visibility::Hidden);
    }

    #[test]
    fn entry_points_follow_the_loader() {
        let cases = [
            ("models/a.ts", Some(LoaderKind::Model)),
            ("models/sub/a.mjs", Some(LoaderKind::Model)),
            ("models/_x.ts", Some(LoaderKind::Model)),
            ("reports/r.js", Some(LoaderKind::Report)),
            ("models/_lib/a.ts", None),
            ("models/sub/node_modules/a.ts", None),
            ("models/a.d.ts", None),
            ("models/a_test.ts", None),
            ("models/a.spec.ts", None),
            ("models/data.json", None),
            ("files/a.ts", None),
            ("a.ts", None),
        ];
        for (path, expected) in cases {
            assert_eq!(entry_point_kind(path), expected, "{path}");
        }
    }

    #[test]
    fn placement_by_top_level_name() {
        assert_eq!(placement("manifest.yaml"), Placement::Manifest);
        assert_eq!(
            placement("models"),
            Placement::Kind {
                kind: LoaderKind::Model,
                rest: ""
            }
        );
        assert_eq!(placement("files/a/b"), Placement::Files { rest: "a/b" });
        assert_eq!(
            placement("bundles/x"),
            Placement::Unknown { top: "bundles" }
        );
        assert_eq!(
            placement("manifest.yaml/x"),
            Placement::Unknown {
                top: "manifest.yaml"
            }
        );
    }

    #[test]
    fn s6_duplicates_case_and_file_directory_clashes() {
        let mut seen = SeenPaths::default();
        seen.add("extension/models/a.ts", false).unwrap();
        seen.add("extension/models", true).unwrap();
        seen.add("extension", true).unwrap();
        assert_eq!(
            seen.add("extension/models/a.ts", false).unwrap_err(),
            "duplicate entry"
        );
        assert_eq!(seen.add("extension", true).unwrap_err(), "duplicate entry");
        assert_eq!(
            seen.add("extension/models/A.ts", false).unwrap_err(),
            "differs only in case from \"extension/models/a.ts\""
        );
        assert_eq!(
            seen.add("extension/Models/b.ts", false).unwrap_err(),
            "differs only in case from \"extension/models\""
        );
        assert_eq!(
            seen.add("extension/models/a.ts/x", false).unwrap_err(),
            "\"extension/models/a.ts\" is both a file and a directory"
        );
        assert_eq!(
            seen.add("extension/models", false).unwrap_err(),
            "\"extension/models\" is both a file and a directory"
        );
        seen.add("extension/models/b.ts", false).unwrap();
    }
}

//! `CanonicalPath` and `PathPolicy`: the identity form of an absolute path (spec 10 §1.6).
//!
//! Canonicalisation is a pure string transform. It never touches the filesystem and
//! never resolves symlinks, so the same input gives the same key on every host, and
//! all three policies can be tested on any host.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// How a path is canonicalised; picked by the host's target OS in production.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathPolicy {
    /// Linux and other Unix: byte-exact, case-sensitive names.
    Posix,
    /// macOS: NFC, no case folding.
    MacOs,
    /// Windows: `\` becomes `/`, NFC and full lower-casing.
    Windows,
}

impl PathPolicy {
    /// The policy of the host this binary was built for.
    pub fn host() -> PathPolicy {
        if cfg!(target_os = "windows") {
            PathPolicy::Windows
        } else if cfg!(target_os = "macos") {
            PathPolicy::MacOs
        } else {
            PathPolicy::Posix
        }
    }
}

/// Why a path cannot be canonicalised.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is not valid UTF-8.
    #[error("path is not valid UTF-8: {0}")]
    NonUtf8(String),
    /// The path is not absolute for the policy.
    #[error("path is not absolute: {0}")]
    NotAbsolute(String),
}

/// The canonical text of an absolute path: `/`-separated, lexically normalised, with
/// the policy's Unicode and case rules applied. Ordered and compared as bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CanonicalPath(String);

impl CanonicalPath {
    /// Canonicalises a native path under `policy`.
    ///
    /// ```
    /// use fen_domain::{CanonicalPath, PathPolicy};
    /// let p = CanonicalPath::new(r"C:\Repo\.\x\..\A.ts", PathPolicy::Windows).unwrap();
    /// assert_eq!(p.as_str(), "c:/repo/a.ts");
    /// ```
    pub fn new(path: impl AsRef<Path>, policy: PathPolicy) -> Result<CanonicalPath, PathError> {
        let path = path.as_ref();
        let text = path
            .to_str()
            .ok_or_else(|| PathError::NonUtf8(path.to_string_lossy().into_owned()))?;
        CanonicalPath::from_text(text, policy)
    }

    /// Canonicalises path text under `policy`.
    pub fn from_text(text: &str, policy: PathPolicy) -> Result<CanonicalPath, PathError> {
        // Fast path: text that is already canonical (the common case for paths fen
        // built itself) is copied as it is.
        if is_clean_posix(text, policy) {
            return Ok(CanonicalPath(text.to_owned()));
        }
        let (root, rest) =
            split_root(text, policy).ok_or_else(|| PathError::NotAbsolute(text.to_owned()))?;
        let mut segments: Vec<&str> = Vec::new();
        let separators: &[char] = match policy {
            PathPolicy::Windows => &['/', '\\'],
            PathPolicy::Posix | PathPolicy::MacOs => &['/'],
        };
        for segment in rest.split(separators) {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                other => segments.push(other),
            }
        }
        let mut out = root;
        out.push_str(&segments.join("/"));
        let out = match policy {
            PathPolicy::Posix => out,
            PathPolicy::MacOs => out.nfc().collect(),
            PathPolicy::Windows => out.nfc().collect::<String>().to_lowercase().nfc().collect(),
        };
        Ok(CanonicalPath(out))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True iff `self == base` or `self` lies below `base` (segment-aware:
    /// `/w/repo-old/x` is not under `/w/repo`).
    pub fn starts_under(&self, base: &CanonicalPath) -> bool {
        if self.0 == base.0 {
            return true;
        }
        if base.0.ends_with('/') {
            return self.0.starts_with(&base.0);
        }
        self.0.len() > base.0.len()
            && self.0.starts_with(&base.0)
            && self.0.as_bytes()[base.0.len()] == b'/'
    }

    /// The part of `self` after `base/`, `""` when equal, `None` when not under `base`.
    pub fn relative_to(&self, base: &CanonicalPath) -> Option<&str> {
        if self.0 == base.0 {
            return Some("");
        }
        if !self.starts_under(base) {
            return None;
        }
        let rest = &self.0[base.0.len()..];
        Some(rest.strip_prefix('/').unwrap_or(rest))
    }

    /// Appends `/`-separated relative text lexically (no `..` above the root).
    pub fn join(&self, relative: &str) -> CanonicalPath {
        let mut segments: Vec<&str> = Vec::new();
        let root_len = root_len(&self.0);
        let (root, rest) = self.0.split_at(root_len);
        for segment in rest.split('/').chain(relative.split('/')) {
            match segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                other => segments.push(other),
            }
        }
        CanonicalPath(format!("{root}{}", segments.join("/")))
    }

    /// The last segment, or `""` for a root.
    pub fn file_name(&self) -> &str {
        let rest = &self.0[root_len(&self.0)..];
        rest.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory; a root is its own parent.
    pub fn parent(&self) -> CanonicalPath {
        let root_len = root_len(&self.0);
        match self.0[root_len..].rfind('/') {
            Some(index) => CanonicalPath(self.0[..root_len + index].to_owned()),
            None => CanonicalPath(self.0[..root_len].to_owned()),
        }
    }
}

/// True when `text` is an absolute POSIX path with no empty, `.` or `..` segment and
/// no trailing `/`, and needs no Unicode change under `policy`.
fn is_clean_posix(text: &str, policy: PathPolicy) -> bool {
    let unicode_ok = match policy {
        PathPolicy::Posix => true,
        PathPolicy::MacOs => text.is_ascii(),
        PathPolicy::Windows => return false,
    };
    if !unicode_ok || !text.starts_with('/') {
        return false;
    }
    if text == "/" {
        return true;
    }
    text[1..]
        .split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// Length of the root prefix of canonical text (`/`, `c:/`, `//server/share/`).
fn root_len(text: &str) -> usize {
    if let Some(rest) = text.strip_prefix("//") {
        // UNC: //server/share/
        let mut seen = 0;
        for (index, ch) in rest.char_indices() {
            if ch == '/' {
                seen += 1;
                if seen == 2 {
                    return 2 + index + 1;
                }
            }
        }
        return text.len();
    }
    let bytes = text.as_bytes();
    if bytes.len() >= 3 && bytes[1] == b':' && bytes[2] == b'/' {
        return 3;
    }
    usize::from(text.starts_with('/'))
}

/// Splits native text into a canonical root and the remainder, or `None` if relative.
fn split_root(text: &str, policy: PathPolicy) -> Option<(String, &str)> {
    match policy {
        PathPolicy::Posix | PathPolicy::MacOs => {
            text.strip_prefix('/').map(|rest| ("/".to_owned(), rest))
        }
        PathPolicy::Windows => {
            let bytes = text.as_bytes();
            if bytes.len() >= 3
                && bytes[0].is_ascii_alphabetic()
                && bytes[1] == b':'
                && (bytes[2] == b'\\' || bytes[2] == b'/')
            {
                let drive = (bytes[0] as char).to_ascii_lowercase();
                return Some((format!("{drive}:/"), &text[3..]));
            }
            let is_sep = |b: u8| b == b'\\' || b == b'/';
            if bytes.len() >= 2 && is_sep(bytes[0]) && is_sep(bytes[1]) {
                let rest = &text[2..];
                let mut parts = rest.splitn(3, ['\\', '/']);
                let server = parts.next().filter(|s| !s.is_empty())?;
                let share = parts.next().filter(|s| !s.is_empty())?;
                let remainder = parts.next().unwrap_or("");
                return Some((format!("//{server}/{share}/"), remainder));
            }
            None
        }
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl TryFrom<String> for CanonicalPath {
    type Error = PathError;
    /// Parses stored canonical text. Canonicalisation is idempotent, so the host policy
    /// maps stored text to itself.
    fn try_from(text: String) -> Result<CanonicalPath, PathError> {
        CanonicalPath::from_text(&text, PathPolicy::host())
    }
}

impl From<CanonicalPath> for String {
    fn from(path: CanonicalPath) -> String {
        path.0
    }
}

impl AsRef<Path> for CanonicalPath {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(text: &str, policy: PathPolicy) -> String {
        CanonicalPath::from_text(text, policy).unwrap().0
    }

    #[test]
    fn posix_lexical_normalisation() {
        let cases = [
            ("/", "/"),
            ("/a/b/", "/a/b"),
            ("/a/./b//c", "/a/b/c"),
            ("/a/../../b", "/b"),
            ("/..", "/"),
            ("/a\\b", "/a\\b"),
        ];
        for (input, expected) in cases {
            assert_eq!(canon(input, PathPolicy::Posix), expected, "{input}");
        }
    }

    #[test]
    fn relative_paths_are_rejected() {
        for policy in [PathPolicy::Posix, PathPolicy::MacOs, PathPolicy::Windows] {
            assert!(matches!(
                CanonicalPath::from_text("a/b", policy),
                Err(PathError::NotAbsolute(_))
            ));
        }
        assert!(CanonicalPath::from_text("/a", PathPolicy::Windows).is_err());
        assert!(CanonicalPath::from_text("c:a", PathPolicy::Windows).is_err());
        assert!(CanonicalPath::from_text(r"\\server", PathPolicy::Windows).is_err());
    }

    #[test]
    fn windows_fixture_pair_is_equal() {
        let a = canon(r"C:\repo\EXTENSIONS\Models\A.ts", PathPolicy::Windows);
        let b = canon("c:/repo/extensions/models/a.ts", PathPolicy::Windows);
        assert_eq!(a, b);
        assert_eq!(a, "c:/repo/extensions/models/a.ts");
    }

    #[test]
    fn posix_and_macos_keep_case() {
        for policy in [PathPolicy::Posix, PathPolicy::MacOs] {
            assert_ne!(
                canon("/repo/EXTENSIONS/Models/A.ts", policy),
                canon("/repo/extensions/models/a.ts", policy)
            );
        }
    }

    #[test]
    fn unicode_rules_per_policy() {
        let decomposed = "/re\u{301}sume\u{301}";
        assert_eq!(canon(decomposed, PathPolicy::Posix), decomposed);
        assert_eq!(canon(decomposed, PathPolicy::MacOs), "/r\u{e9}sum\u{e9}");
    }

    #[test]
    fn unc_roots() {
        assert_eq!(
            canon(r"\\Srv\Share\X\..\y", PathPolicy::Windows),
            "//srv/share/y"
        );
        assert_eq!(canon(r"\\srv\share", PathPolicy::Windows), "//srv/share/");
    }

    #[test]
    fn containment_is_segment_aware() {
        let repo = CanonicalPath::from_text("/w/repo", PathPolicy::Posix).unwrap();
        let inside = repo.join("x.ts");
        let sibling = CanonicalPath::from_text("/w/repo-old/x.ts", PathPolicy::Posix).unwrap();
        assert!(inside.starts_under(&repo));
        assert!(repo.starts_under(&repo));
        assert!(!sibling.starts_under(&repo));
        let root = CanonicalPath::from_text("/", PathPolicy::Posix).unwrap();
        assert!(inside.starts_under(&root));
        assert_eq!(inside.relative_to(&repo), Some("x.ts"));
        assert_eq!(repo.relative_to(&repo), Some(""));
        assert_eq!(sibling.relative_to(&repo), None);
    }

    #[test]
    fn join_parent_and_file_name() {
        let p = CanonicalPath::from_text("/a/b", PathPolicy::Posix).unwrap();
        assert_eq!(p.join("c/../d.ts").as_str(), "/a/b/d.ts");
        assert_eq!(p.join("../../../x").as_str(), "/x");
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(p.parent().parent().as_str(), "/");
        assert_eq!(p.file_name(), "b");
        let drive = CanonicalPath::from_text("c:/x", PathPolicy::Windows).unwrap();
        assert_eq!(drive.parent().as_str(), "c:/");
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_transform() {
        for text in [
            "/", "/a", "/a/b.ts", "/a//b", "/a/./b", "/a/../b", "/a/", "/a/.", "/..",
        ] {
            for policy in [PathPolicy::Posix, PathPolicy::MacOs] {
                let (root, rest) = split_root(text, policy).unwrap();
                let mut segments: Vec<&str> = Vec::new();
                for segment in rest.split('/') {
                    match segment {
                        "" | "." => {}
                        ".." => {
                            segments.pop();
                        }
                        other => segments.push(other),
                    }
                }
                let slow = format!("{root}{}", segments.join("/"));
                assert_eq!(canon(text, policy), slow, "{text}");
            }
        }
    }

    proptest! {
        #[test]
        fn canonicalisation_is_idempotent(
            segments in proptest::collection::vec("[a-zA-Z.\u{e9}\u{301}]{0,4}", 0..6),
            policy in prop_oneof![Just(PathPolicy::Posix), Just(PathPolicy::MacOs), Just(PathPolicy::Windows)],
        ) {
            let prefix = if policy == PathPolicy::Windows { "C:\\" } else { "/" };
            let text = format!("{prefix}{}", segments.join("/"));
            let once = CanonicalPath::from_text(&text, policy).unwrap();
            let twice = CanonicalPath::from_text(once.as_str(), policy).unwrap();
            prop_assert_eq!(&once, &twice);
            // Display/parse round trip.
            prop_assert_eq!(CanonicalPath::from_text(&once.to_string(), policy).unwrap(), once);
        }
    }
}

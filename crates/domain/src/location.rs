//! `SourceLocation` and `BundleLocation` (spec 10 §1.7–§1.8).

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::SourceFingerprint;
use crate::path::{CanonicalPath, PathError, PathPolicy};

/// Identifies one entry point inside an Extension. Equality, hashing and ordering use
/// `canonical` only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceLocation {
    canonical: CanonicalPath,
    extension_root: CanonicalPath,
    relative: String,
}

impl SourceLocation {
    /// Canonicalises both paths and derives the display-only `relative` part.
    pub fn new(
        native_path: impl AsRef<Path>,
        extension_root: impl AsRef<Path>,
        policy: PathPolicy,
    ) -> Result<SourceLocation, PathError> {
        Ok(SourceLocation::from_canonical(
            CanonicalPath::new(native_path, policy)?,
            CanonicalPath::new(extension_root, policy)?,
        ))
    }

    /// Builds a location from paths that are already canonical.
    pub fn from_canonical(
        canonical: CanonicalPath,
        extension_root: CanonicalPath,
    ) -> SourceLocation {
        let relative = match canonical.relative_to(&extension_root) {
            Some(rel) => rel.to_owned(),
            None => canonical.as_str().to_owned(),
        };
        SourceLocation {
            canonical,
            extension_root,
            relative,
        }
    }

    /// The canonical path: the identity.
    pub fn canonical(&self) -> &CanonicalPath {
        &self.canonical
    }

    /// The root of the owning extension.
    pub fn extension_root(&self) -> &CanonicalPath {
        &self.extension_root
    }

    /// The part after `extension_root/`, `""` for the root itself, or the full text when
    /// the source lies outside the root (a mounted source). Display only.
    pub fn relative(&self) -> &str {
        &self.relative
    }
}

impl PartialEq for SourceLocation {
    fn eq(&self, other: &SourceLocation) -> bool {
        self.canonical == other.canonical
    }
}
impl Eq for SourceLocation {}
impl Hash for SourceLocation {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}
impl PartialOrd for SourceLocation {
    fn partial_cmp(&self, other: &SourceLocation) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SourceLocation {
    fn cmp(&self, other: &SourceLocation) -> Ordering {
        self.canonical.cmp(&other.canonical)
    }
}

/// A built bundle and the source fingerprint it was built from. Both fields take part
/// in equality: the same path with another fingerprint is different content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BundleLocation {
    /// Canonical path of the `.bundle.json` file.
    pub path: CanonicalPath,
    /// Fingerprint of the source the bundle was built from.
    pub fingerprint: SourceFingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_5_windows_locations_are_equal() {
        let a = SourceLocation::new(
            r"C:\repo\EXTENSIONS\Models\A.ts",
            r"C:\repo",
            PathPolicy::Windows,
        )
        .unwrap();
        let b = SourceLocation::new(
            "c:/repo/extensions/models/a.ts",
            "c:/repo",
            PathPolicy::Windows,
        )
        .unwrap();
        assert_eq!(a, b);
        for policy in [PathPolicy::Posix, PathPolicy::MacOs] {
            let a = SourceLocation::new("/repo/EXTENSIONS/Models/A.ts", "/repo", policy).unwrap();
            let b = SourceLocation::new("/repo/extensions/models/a.ts", "/repo", policy).unwrap();
            assert_ne!(a, b);
        }
    }

    #[test]
    fn scenario_6_relative() {
        let root = "/r/.fen/pulled-extensions/@s/n";
        let loc =
            SourceLocation::new(format!("{root}/models/x.ts"), root, PathPolicy::Posix).unwrap();
        assert_eq!(loc.relative(), "models/x.ts");
        let at_root = SourceLocation::new(root, root, PathPolicy::Posix).unwrap();
        assert_eq!(at_root.relative(), "");
        let outside =
            SourceLocation::new("/m/extensions/models/y.ts", "/r", PathPolicy::Posix).unwrap();
        assert_eq!(outside.relative(), "/m/extensions/models/y.ts");
    }

    #[test]
    fn equality_ignores_the_root() {
        let a = SourceLocation::new("/r/x.ts", "/r", PathPolicy::Posix).unwrap();
        let b = SourceLocation::new("/r/x.ts", "/other", PathPolicy::Posix).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn scenario_7_bundle_locations() {
        let path = CanonicalPath::from_text(
            "/r/.fen/bundles/local/models/a.ts.bundle.json",
            PathPolicy::Posix,
        )
        .unwrap();
        let fp = |text: &str| text.parse::<SourceFingerprint>().unwrap();
        let a = BundleLocation {
            path: path.clone(),
            fingerprint: fp(&"a".repeat(64)),
        };
        let b = BundleLocation {
            path: path.clone(),
            fingerprint: fp(&"b".repeat(64)),
        };
        assert_ne!(a, b);
        let missing = format!("MISSING:{}", "c".repeat(64));
        let c = BundleLocation {
            path: path.clone(),
            fingerprint: fp(&missing),
        };
        let d = BundleLocation {
            path,
            fingerprint: fp(&missing),
        };
        assert_eq!(c, d);
    }
}

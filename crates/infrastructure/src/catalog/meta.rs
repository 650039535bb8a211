//! The four guard keys of `bundle_meta` (spec 10 §4.5, §5.8): what decides between a
//! warm pass and a cold start.

use std::collections::BTreeMap;

use fen_domain::ports::{GuardInputs, GuardReason, GuardVerdict};
use fen_domain::CanonicalPath;
use sha2::{Digest, Sha256};

/// `true` after a successful cold start.
pub(crate) const POPULATED: &str = "populated";
/// The bundle layout version the catalog was populated with.
pub(crate) const BUNDLE_LAYOUT: &str = "bundle_layout";
/// Canonical path of `.fen/bundles` when the catalog was populated.
pub(crate) const BUNDLES_BASE_PATH: &str = "bundles_base_path";
/// Hash of the scan roots of all five loader kinds.
pub(crate) const SOURCE_DIRS_FINGERPRINT: &str = "source_dirs_fingerprint";

/// The four keys, in guard order.
pub(crate) const GUARD_KEYS: [&str; 4] = [
    POPULATED,
    BUNDLE_LAYOUT,
    BUNDLES_BASE_PATH,
    SOURCE_DIRS_FINGERPRINT,
];

/// Lower-case hex SHA-256 of the sorted, de-duplicated canonical scan roots joined by
/// `\n` (the value of `source_dirs_fingerprint`).
///
/// ```
/// use fen_domain::{CanonicalPath, PathPolicy};
/// use fen_infrastructure::catalog::source_dirs_fingerprint;
/// let a = CanonicalPath::from_text("/r/extensions/models", PathPolicy::Posix).unwrap();
/// let b = CanonicalPath::from_text("/r/extensions/vaults", PathPolicy::Posix).unwrap();
/// assert_eq!(
///     source_dirs_fingerprint(&[b.clone(), a.clone()]),
///     source_dirs_fingerprint(&[a, b]),
/// );
/// ```
pub fn source_dirs_fingerprint(dirs: &[CanonicalPath]) -> String {
    let mut dirs: Vec<&str> = dirs.iter().map(CanonicalPath::as_str).collect();
    dirs.sort_unstable();
    dirs.dedup();
    let digest = Sha256::digest(dirs.join("\n").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The values `mark_populated` writes, in guard order.
pub(crate) fn populated_values(inputs: &GuardInputs) -> [(&'static str, String); 4] {
    [
        (POPULATED, "true".to_owned()),
        (BUNDLE_LAYOUT, inputs.layout_version.clone()),
        (BUNDLES_BASE_PATH, inputs.bundles_base_path.clone()),
        (
            SOURCE_DIRS_FINGERPRINT,
            source_dirs_fingerprint(&inputs.source_dirs),
        ),
    ]
}

/// The first guard that fails, in the order of spec 10 §5.8, or `Fresh`.
pub(crate) fn verdict(stored: &BTreeMap<String, String>, expected: &GuardInputs) -> GuardVerdict {
    if stored.get(POPULATED).map(String::as_str) != Some("true") {
        return GuardVerdict::Invalidate(GuardReason::NotPopulated);
    }
    let stored_value = |key: &str| stored.get(key).cloned();
    if stored_value(BUNDLE_LAYOUT).as_ref() != Some(&expected.layout_version) {
        return GuardVerdict::Invalidate(GuardReason::LayoutVersionChanged {
            stored: stored_value(BUNDLE_LAYOUT),
            expected: expected.layout_version.clone(),
        });
    }
    if stored_value(BUNDLES_BASE_PATH).as_ref() != Some(&expected.bundles_base_path) {
        return GuardVerdict::Invalidate(GuardReason::BundlesBasePathChanged {
            stored: stored_value(BUNDLES_BASE_PATH),
            expected: expected.bundles_base_path.clone(),
        });
    }
    let dirs = source_dirs_fingerprint(&expected.source_dirs);
    if stored_value(SOURCE_DIRS_FINGERPRINT).as_ref() != Some(&dirs) {
        return GuardVerdict::Invalidate(GuardReason::SourceDirsChanged {
            stored: stored_value(SOURCE_DIRS_FINGERPRINT),
            expected: dirs,
        });
    }
    GuardVerdict::Fresh
}

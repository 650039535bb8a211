//! The lazy loader's read side (spec 10 §5.9): visible rows only, one statement each,
//! no lock. By I-Repo-1 `find_type` matches at most one row.

use fen_domain::ports::TypeEntry;
use fen_domain::{
    BundleLocation, CanonicalPath, Kind, PathPolicy, SourceFingerprint, TypeMeta, TypeName,
};

use super::log_warning;

/// Columns of a [`TypeRow`].
pub(crate) const TYPE_COLUMNS: &str = "source_path, kind, type_normalized, bundle_path, \
     fingerprint, type_version, description, descriptor";

/// The visibility filter every query applies (spec 10 §2.4).
pub(crate) const VISIBLE: &str = "state = 'Indexed' AND superseded_by = ''";

/// One visible row, as stored; decoded positionally from [`TYPE_COLUMNS`].
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct TypeRow {
    source_path: String,
    kind: String,
    type_normalized: String,
    bundle_path: String,
    fingerprint: String,
    type_version: String,
    description: String,
    descriptor: String,
}

/// Converts rows; a row that cannot be read back (only a foreign edit makes one) is
/// left out and logged, since it could not be loaded anyway.
pub(crate) fn entries(rows: Vec<TypeRow>, policy: PathPolicy) -> Vec<TypeEntry> {
    rows.into_iter()
        .filter_map(|row| {
            let path = row.source_path.clone();
            let entry = entry(row, policy);
            if entry.is_none() {
                log_warning(&format!("catalog row {path} is unreadable; ignored"));
            }
            entry
        })
        .collect()
}

fn entry(row: TypeRow, policy: PathPolicy) -> Option<TypeEntry> {
    Some(TypeEntry {
        source_path: CanonicalPath::from_text(&row.source_path, policy).ok()?,
        kind: row.kind.parse::<Kind>().ok()?,
        type_name: TypeName::parse(&row.type_normalized).ok()?,
        bundle: BundleLocation {
            path: CanonicalPath::from_text(&row.bundle_path, policy).ok()?,
            fingerprint: SourceFingerprint::parse_stored(&row.fingerprint)?,
        },
        meta: TypeMeta {
            declared_version: row.type_version,
            description: row.description,
            descriptor: row.descriptor,
        },
    })
}

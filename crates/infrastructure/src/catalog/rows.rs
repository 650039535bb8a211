//! The `bundle_types` row and its mapping to and from `Source` (spec 10 §4.2–§4.3).
//!
//! `file_stats` is not part of the mapping: it is the source scanner's cache, written
//! only by `record_file_stats` and reset when an update changes the fingerprint.
//! `superseded_by` of an `Indexed` row is maintained by the supersession step of
//! `save_all` (spec 10 §5.6); for a `Renamed` tombstone it is the aggregate's winner
//! pointer and is written like any content column.

use fen_domain::{
    BundleLocation, CanonicalPath, Extension, Kind, PathPolicy, RowState, RowStateTag, Source,
    SourceFingerprint, SourceLocation, TombstoneReason, TypeMeta, TypeName,
};

use super::placement::Placed;

/// Every column, in the order of [`CatalogRow`].
pub(crate) const ROW_COLUMNS: &str = "source_path, kind, type_normalized, extends_type, \
     bundle_path, fingerprint, source_mtime, type_version, description, descriptor, state, \
     state_detail, extension_name, extension_version, superseded_by, file_stats";

/// The content columns `save_all` compares and writes (spec 10 §5.4 step 3), in the
/// order of [`RowValues::content`].
pub(crate) const CONTENT_COLUMNS: [&str; 13] = [
    "kind",
    "type_normalized",
    "extends_type",
    "bundle_path",
    "fingerprint",
    "source_mtime",
    "type_version",
    "description",
    "descriptor",
    "state",
    "state_detail",
    "extension_name",
    "extension_version",
];

/// Index of `fingerprint` in [`CONTENT_COLUMNS`].
pub(crate) const FINGERPRINT: usize = 4;

/// `state_detail` of a persisted `Renamed` tombstone.
const RENAMED: &str = "renamed";

/// One stored row, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CatalogRow {
    pub(crate) source_path: String,
    pub(crate) kind: String,
    pub(crate) type_normalized: String,
    pub(crate) extends_type: String,
    pub(crate) bundle_path: String,
    pub(crate) fingerprint: String,
    pub(crate) source_mtime: String,
    pub(crate) type_version: String,
    pub(crate) description: String,
    pub(crate) descriptor: String,
    pub(crate) state: String,
    pub(crate) state_detail: String,
    pub(crate) extension_name: String,
    pub(crate) extension_version: String,
    pub(crate) superseded_by: String,
    pub(crate) file_stats: String,
}

/// The row a Source should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowValues {
    /// Values of [`CONTENT_COLUMNS`].
    pub(crate) content: [String; 13],
    /// `Some` for states whose `superseded_by` the aggregate decides (tombstones and
    /// failure states); `None` for `Indexed`, whose marker supersession maintains.
    pub(crate) superseded_by: Option<String>,
}

impl From<[String; 16]> for CatalogRow {
    /// The fields in [`ROW_COLUMNS`] order.
    fn from(fields: [String; 16]) -> CatalogRow {
        let [source_path, kind, type_normalized, extends_type, bundle_path, fingerprint, source_mtime, type_version, description, descriptor, state, state_detail, extension_name, extension_version, superseded_by, file_stats] =
            fields;
        CatalogRow {
            source_path,
            kind,
            type_normalized,
            extends_type,
            bundle_path,
            fingerprint,
            source_mtime,
            type_version,
            description,
            descriptor,
            state,
            state_detail,
            extension_name,
            extension_version,
            superseded_by,
            file_stats,
        }
    }
}

impl CatalogRow {
    /// Values of [`CONTENT_COLUMNS`] of the stored row.
    pub(crate) fn content(&self) -> [&str; 13] {
        [
            &self.kind,
            &self.type_normalized,
            &self.extends_type,
            &self.bundle_path,
            &self.fingerprint,
            &self.source_mtime,
            &self.type_version,
            &self.description,
            &self.descriptor,
            &self.state,
            &self.state_detail,
            &self.extension_name,
            &self.extension_version,
        ]
    }
}

/// Spec 10 §4.3, Source → row. `None` for states that have no row: tombstones other
/// than `Renamed`, and `Bundled` (never persisted; precondition P1 rejects it first).
pub(crate) fn target_values(ext: &Extension, source: &Source) -> Option<RowValues> {
    let fingerprint = source
        .fingerprint()
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut row = Draft::default();
    let superseded_by = match source.state() {
        RowState::Indexed {
            type_name,
            bundle,
            meta,
        } => {
            row.type_normalized = type_name.to_string();
            if source.kind() == Kind::Extension {
                row.extends_type = type_name.to_string();
            }
            row.bundle_path = bundle.path.to_string();
            row.type_version = meta.declared_version.clone();
            row.description = meta.description.clone();
            row.descriptor = meta.descriptor.clone();
            None
        }
        RowState::Bundled { .. } => return None,
        RowState::BundleBuildFailed { last_error }
        | RowState::EntryPointUnreadable { last_error } => {
            row.state_detail = last_error.clone();
            Some(String::new())
        }
        RowState::ValidationFailed { bundle, last_error } => {
            row.bundle_path = bundle.path.to_string();
            row.state_detail = last_error.clone();
            Some(String::new())
        }
        RowState::OrphanedBundleOnly { bundle } => {
            row.bundle_path = bundle.path.to_string();
            Some(String::new())
        }
        RowState::Tombstoned { reason } => match reason {
            TombstoneReason::Renamed { winner } => {
                row.state_detail = RENAMED.to_owned();
                Some(winner.as_ref().map(ToString::to_string).unwrap_or_default())
            }
            TombstoneReason::SourceDeleted | TombstoneReason::ExtensionRemoved => return None,
        },
    };
    Some(RowValues {
        content: [
            source.kind().as_str().to_owned(),
            row.type_normalized,
            row.extends_type,
            row.bundle_path,
            fingerprint,
            source.mtime().unwrap_or_default().to_owned(),
            row.type_version,
            row.description,
            row.descriptor,
            source.state().tag().as_str().to_owned(),
            row.state_detail,
            ext.id().name.as_str().to_owned(),
            ext.id().version.to_string(),
        ],
        superseded_by,
    })
}

#[derive(Default)]
struct Draft {
    type_normalized: String,
    extends_type: String,
    bundle_path: String,
    type_version: String,
    description: String,
    descriptor: String,
    state_detail: String,
}

/// Spec 10 §4.3, row → Source. `winner_is_indexed` tells whether the row at a
/// tombstone's winner path exists and is `Indexed`. A row whose payload cannot be read
/// back (possible only after a foreign edit) loads as `BundleBuildFailed`, which the
/// next warm pass retries; a persisted `Bundled` row loads as
/// `BundleBuildFailed("interrupted build")`.
pub(crate) fn restore_source(
    row: CatalogRow,
    placed: &Placed,
    policy: PathPolicy,
    winner_is_indexed: impl Fn(&str) -> bool,
) -> Source {
    // The CHECK constraint of migration 0003 admits only the six kind names.
    let kind = row.kind.parse::<Kind>().unwrap_or(Kind::Model);
    let fingerprint = SourceFingerprint::parse_stored(&row.fingerprint);
    let bundle = || {
        let path = CanonicalPath::from_text(&row.bundle_path, policy).ok()?;
        Some(BundleLocation {
            path,
            fingerprint: fingerprint?,
        })
    };
    let unreadable = |what: &str| RowState::BundleBuildFailed {
        last_error: format!("catalog row unreadable: {what}"),
    };
    let state = match row.state.parse::<RowStateTag>() {
        Ok(RowStateTag::Indexed) => match (TypeName::parse(&row.type_normalized), bundle()) {
            (Ok(type_name), Some(bundle)) => RowState::Indexed {
                type_name,
                bundle,
                meta: TypeMeta {
                    declared_version: row.type_version,
                    description: row.description,
                    descriptor: row.descriptor,
                },
            },
            (Err(_), _) => unreadable("type"),
            (Ok(_), None) => unreadable("bundle"),
        },
        Ok(RowStateTag::Bundled) => RowState::BundleBuildFailed {
            last_error: "interrupted build".to_owned(),
        },
        Ok(RowStateTag::BundleBuildFailed) => RowState::BundleBuildFailed {
            last_error: row.state_detail,
        },
        Ok(RowStateTag::ValidationFailed) => match bundle() {
            Some(bundle) => RowState::ValidationFailed {
                bundle,
                last_error: row.state_detail,
            },
            None => unreadable("bundle"),
        },
        Ok(RowStateTag::EntryPointUnreadable) => RowState::EntryPointUnreadable {
            last_error: row.state_detail,
        },
        Ok(RowStateTag::OrphanedBundleOnly) => match bundle() {
            Some(bundle) => RowState::OrphanedBundleOnly { bundle },
            None => unreadable("bundle"),
        },
        Ok(RowStateTag::Tombstoned) => {
            let winner = Some(row.superseded_by.as_str())
                .filter(|w| !w.is_empty() && winner_is_indexed(w))
                .and_then(|w| CanonicalPath::from_text(w, policy).ok());
            RowState::Tombstoned {
                reason: TombstoneReason::Renamed { winner },
            }
        }
        Err(_) => unreadable("state"),
    };
    let superseded_by = match state {
        RowState::Indexed { .. } if !row.superseded_by.is_empty() => {
            CanonicalPath::from_text(&row.superseded_by, policy).ok()
        }
        _ => None,
    };
    let mtime = Some(row.source_mtime).filter(|m| !m.is_empty());
    Source::restore(
        SourceLocation::from_canonical(placed.path.clone(), placed.root.clone()),
        kind,
        placed.origin,
        fingerprint,
        state,
        mtime,
        superseded_by,
    )
}

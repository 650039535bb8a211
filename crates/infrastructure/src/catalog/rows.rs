//! The `bundle_types` row and its mapping to and from `Source` (spec 10 §4.2–§4.3).
//!
//! `file_stats` is not part of the mapping: it is the source scanner's cache, written
//! only by `record_file_stats` and reset when an update changes the fingerprint.
//! `superseded_by` of an `Indexed` row is maintained by the supersession step of
//! `save_all` (spec 10 §5.6); for a `Renamed` tombstone it is the aggregate's winner
//! pointer and is written like any content column.

use std::borrow::Cow;

use fen_domain::{
    BundleLocation, CanonicalPath, Extension, Kind, Origin, PathPolicy, RowState, RowStateTag,
    Source, SourceFingerprint, SourceLocation, TombstoneReason, TypeMeta, TypeName,
};

/// Every column, in the order of [`CatalogRow`].
pub(crate) const ROW_COLUMNS: [&str; 16] = [
    "source_path",
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
    "superseded_by",
    "file_stats",
];

/// [`ROW_COLUMNS`] with the descriptor read as `''`: what `load_outline` reads. The
/// descriptors are most of a catalog's bytes (about 5 KB a row against 1 KB for the
/// rest), and only describing a type, or loading it, needs one.
pub(crate) const OUTLINE_COLUMNS: [&str; 16] = {
    let mut columns = ROW_COLUMNS;
    columns[DESCRIPTOR] = "''";
    columns
};

/// Index of `descriptor` in [`ROW_COLUMNS`].
pub(crate) const DESCRIPTOR: usize = 9;
/// Index of `file_stats` in [`ROW_COLUMNS`].
pub(crate) const FILE_STATS: usize = 15;

/// The content columns `save_all` compares and writes (spec 10 §5.4 step 3), in the
/// order of [`RowValues::content`]: [`ROW_COLUMNS`] without the key (`source_path`)
/// and the two columns kept apart (`superseded_by`, `file_stats`).
pub(crate) const CONTENT_COLUMNS: [&str; 13] = {
    let mut columns = [""; 13];
    let mut i = 0;
    while i < columns.len() {
        columns[i] = ROW_COLUMNS[i + 1];
        i += 1;
    }
    columns
};

/// Index of `fingerprint` in [`CONTENT_COLUMNS`].
pub(crate) const FINGERPRINT: usize = 4;

/// `state_detail` of a persisted `Renamed` tombstone.
const RENAMED: &str = "renamed";

/// One stored row, as read, borrowing the fetched text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CatalogRow<'a> {
    pub(crate) source_path: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) type_normalized: &'a str,
    pub(crate) extends_type: &'a str,
    pub(crate) bundle_path: &'a str,
    pub(crate) fingerprint: &'a str,
    pub(crate) source_mtime: &'a str,
    pub(crate) type_version: &'a str,
    pub(crate) description: &'a str,
    pub(crate) descriptor: &'a str,
    pub(crate) state: &'a str,
    pub(crate) state_detail: &'a str,
    pub(crate) extension_name: &'a str,
    pub(crate) extension_version: &'a str,
    pub(crate) superseded_by: &'a str,
    pub(crate) file_stats: &'a str,
}

/// The row a Source should have, borrowing the aggregate's text where it can (a
/// descriptor is never copied to be compared or written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowValues<'a> {
    /// Values of [`CONTENT_COLUMNS`].
    pub(crate) content: [Cow<'a, str>; 13],
    /// `Some` for states whose `superseded_by` the aggregate decides (tombstones and
    /// failure states); `None` for `Indexed`, whose marker supersession maintains.
    pub(crate) superseded_by: Option<&'a str>,
}

impl RowValues<'_> {
    /// An `Indexed` target without a descriptor: a source of an outline
    /// (`load_outline`), whose descriptor was not read. Saving it keeps the stored
    /// descriptor; every other target writes its own.
    pub(crate) fn keeps_descriptor(&self) -> bool {
        self.content[CONTENT_STATE] == "Indexed" && self.content[CONTENT_DESCRIPTOR].is_empty()
    }
}

/// Index of `descriptor` in [`CONTENT_COLUMNS`].
const CONTENT_DESCRIPTOR: usize = DESCRIPTOR - 1;
/// Index of `state` in [`CONTENT_COLUMNS`].
const CONTENT_STATE: usize = 9;

impl<'a> CatalogRow<'a> {
    /// The fields in [`ROW_COLUMNS`] order.
    pub(crate) fn from_fields(fields: [&'a str; 16]) -> CatalogRow<'a> {
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

    /// The fields in [`ROW_COLUMNS`] order.
    pub(crate) fn fields(&self) -> [&'a str; 16] {
        [
            self.source_path,
            self.kind,
            self.type_normalized,
            self.extends_type,
            self.bundle_path,
            self.fingerprint,
            self.source_mtime,
            self.type_version,
            self.description,
            self.descriptor,
            self.state,
            self.state_detail,
            self.extension_name,
            self.extension_version,
            self.superseded_by,
            self.file_stats,
        ]
    }
}

/// Whether a Source has a row at all: every state but `Bundled` (never persisted;
/// precondition P1 rejects it first) and the tombstones other than `Renamed`.
pub(crate) fn has_row(source: &Source) -> bool {
    !matches!(
        source.state(),
        RowState::Bundled { .. }
            | RowState::Tombstoned {
                reason: TombstoneReason::SourceDeleted | TombstoneReason::ExtensionRemoved
            }
    )
}

/// Spec 10 §4.3, Source → row; `None` exactly when [`has_row`] is false.
pub(crate) fn target_values<'a>(ext: &'a Extension, source: &'a Source) -> Option<RowValues<'a>> {
    if !has_row(source) {
        return None;
    }
    let fingerprint = source
        .fingerprint()
        .map(|fp| Cow::Owned(fp.to_string()))
        .unwrap_or_default();
    let mut row = Draft::default();
    let superseded_by = match source.state() {
        RowState::Indexed {
            type_name,
            bundle,
            meta,
        } => {
            row.type_normalized = type_name.as_str();
            if source.kind() == Kind::Extension {
                row.extends_type = type_name.as_str();
            }
            row.bundle_path = bundle.path.as_str();
            row.type_version = &meta.declared_version;
            row.description = &meta.description;
            row.descriptor = &meta.descriptor;
            None
        }
        RowState::Bundled { .. } => return None,
        RowState::BundleBuildFailed { last_error }
        | RowState::EntryPointUnreadable { last_error } => {
            row.state_detail = last_error;
            Some("")
        }
        RowState::ValidationFailed { bundle, last_error } => {
            row.bundle_path = bundle.path.as_str();
            row.state_detail = last_error;
            Some("")
        }
        RowState::OrphanedBundleOnly { bundle } => {
            row.bundle_path = bundle.path.as_str();
            Some("")
        }
        RowState::Tombstoned { reason } => match reason {
            TombstoneReason::Renamed { winner } => {
                row.state_detail = RENAMED;
                Some(
                    winner
                        .as_ref()
                        .map(CanonicalPath::as_str)
                        .unwrap_or_default(),
                )
            }
            TombstoneReason::SourceDeleted | TombstoneReason::ExtensionRemoved => return None,
        },
    };
    Some(RowValues {
        content: [
            Cow::Borrowed(source.kind().as_str()),
            Cow::Borrowed(row.type_normalized),
            Cow::Borrowed(row.extends_type),
            Cow::Borrowed(row.bundle_path),
            fingerprint,
            Cow::Borrowed(source.mtime().unwrap_or_default()),
            Cow::Borrowed(row.type_version),
            Cow::Borrowed(row.description),
            Cow::Borrowed(row.descriptor),
            Cow::Borrowed(source.state().tag().as_str()),
            Cow::Borrowed(row.state_detail),
            Cow::Borrowed(ext.id().name.as_str()),
            Cow::Owned(ext.id().version.to_string()),
        ],
        superseded_by,
    })
}

#[derive(Default)]
struct Draft<'a> {
    type_normalized: &'a str,
    extends_type: &'a str,
    bundle_path: &'a str,
    type_version: &'a str,
    description: &'a str,
    descriptor: &'a str,
    state_detail: &'a str,
}

/// Spec 10 §4.3, row → Source. `winner_is_indexed` tells whether the row at a
/// tombstone's winner path exists and is `Indexed`. A row whose payload cannot be read
/// back (possible only after a foreign edit) loads as `BundleBuildFailed`, which the
/// next warm pass retries; a persisted `Bundled` row loads as
/// `BundleBuildFailed("interrupted build")`.
pub(crate) fn restore_source(
    row: &CatalogRow<'_>,
    location: SourceLocation,
    origin: Origin,
    policy: PathPolicy,
    winner_is_indexed: impl Fn(&str) -> bool,
) -> Source {
    // The CHECK constraint of migration 0003 admits only the six kind names.
    let kind = row.kind.parse::<Kind>().unwrap_or(Kind::Model);
    let fingerprint = SourceFingerprint::parse_stored(row.fingerprint);
    let bundle = || {
        let path = CanonicalPath::from_text(row.bundle_path, policy).ok()?;
        Some(BundleLocation {
            path,
            fingerprint: fingerprint?,
        })
    };
    let unreadable = |what: &str| RowState::BundleBuildFailed {
        last_error: format!("catalog row unreadable: {what}"),
    };
    let state = match row.state.parse::<RowStateTag>() {
        Ok(RowStateTag::Indexed) => match (TypeName::parse(row.type_normalized), bundle()) {
            (Ok(type_name), Some(bundle)) => RowState::Indexed {
                type_name,
                bundle,
                meta: TypeMeta {
                    declared_version: row.type_version.to_owned(),
                    description: row.description.to_owned(),
                    descriptor: row.descriptor.to_owned(),
                },
            },
            (Err(_), _) => unreadable("type"),
            (Ok(_), None) => unreadable("bundle"),
        },
        Ok(RowStateTag::Bundled) => RowState::BundleBuildFailed {
            last_error: "interrupted build".to_owned(),
        },
        Ok(RowStateTag::BundleBuildFailed) => RowState::BundleBuildFailed {
            last_error: row.state_detail.to_owned(),
        },
        Ok(RowStateTag::ValidationFailed) => match bundle() {
            Some(bundle) => RowState::ValidationFailed {
                bundle,
                last_error: row.state_detail.to_owned(),
            },
            None => unreadable("bundle"),
        },
        Ok(RowStateTag::EntryPointUnreadable) => RowState::EntryPointUnreadable {
            last_error: row.state_detail.to_owned(),
        },
        Ok(RowStateTag::OrphanedBundleOnly) => match bundle() {
            Some(bundle) => RowState::OrphanedBundleOnly { bundle },
            None => unreadable("bundle"),
        },
        Ok(RowStateTag::Tombstoned) => {
            let winner = Some(row.superseded_by)
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
            CanonicalPath::from_text(row.superseded_by, policy).ok()
        }
        _ => None,
    };
    let mtime = Some(row.source_mtime)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    Source::restore(
        location,
        kind,
        origin,
        fingerprint,
        state,
        mtime,
        superseded_by,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_column_lists_and_indices_name_the_right_columns() {
        assert_eq!(ROW_COLUMNS[DESCRIPTOR], "descriptor");
        assert_eq!(ROW_COLUMNS[FILE_STATS], "file_stats");
        assert_eq!(OUTLINE_COLUMNS[DESCRIPTOR], "''");
        assert_eq!(CONTENT_COLUMNS[..], ROW_COLUMNS[1..14]);
        assert_eq!(CONTENT_COLUMNS[FINGERPRINT], "fingerprint");
        assert_eq!(CONTENT_COLUMNS[CONTENT_DESCRIPTOR], "descriptor");
        assert_eq!(CONTENT_COLUMNS[CONTENT_STATE], "state");
    }
}

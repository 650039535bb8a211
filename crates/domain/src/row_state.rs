//! `RowState`: the lifecycle of one Source row (spec 10 §2).
//!
//! | Tag | Entered when | Visible | Persisted | Exits |
//! |---|---|---|---|---|
//! | `Indexed` | `record_indexed`: built (or reused) and validated | yes, unless superseded | yes | fingerprint change → `Bundled` → `Indexed` / `ValidationFailed` / `BundleBuildFailed`; source gone → `OrphanedBundleOnly`, `Tombstoned(SourceDeleted)` or `EntryPointUnreadable` (pulled); I2 loss → `Tombstoned(Renamed)`; `tombstone_all` → `Tombstoned(ExtensionRemoved)` |
//! | `Bundled` | `observe_fresh_source`: built, not yet validated | no | never | `record_indexed` → `Indexed`; `record_validation_failed` → `ValidationFailed` |
//! | `BundleBuildFailed` | the build failed (an older bundle is never served) | no | yes | retried on every warm pass; success → `Bundled`; still failing → stays; source gone → `Tombstoned` / `EntryPointUnreadable` |
//! | `ValidationFailed` | built, export rejected | no | yes, with bundle and fingerprint (I3) | only a fingerprint change retries; source gone → `OrphanedBundleOnly` or `Tombstoned(SourceDeleted)` |
//! | `EntryPointUnreadable` | the entry cannot be read, or a pulled source is missing with its lockfile entry present | no | yes, fingerprint `MISSING:…` | readable again → indexed; lockfile entry removed → `Tombstoned(ExtensionRemoved)`; local file gone → `Tombstoned(SourceDeleted)` |
//! | `OrphanedBundleOnly` | `mark_source_missing` with the bundle file still on disk | no | yes, with bundle | source reappears → indexed; doctor repair prunes; aggregate retired → `Tombstoned` |
//! | `Tombstoned` | `record_source_missing`, `mark_source_missing` without bundle, I2 loss, `tombstone_all` | no | only reason `Renamed` | none: a file that reappears becomes a new Source |
//!
//! A row persisted as `Bundled` (fen never writes one) loads as
//! `BundleBuildFailed { last_error: "interrupted build" }` so the next pass retries it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::location::BundleLocation;
use crate::path::CanonicalPath;
use crate::type_name::TypeName;

/// Longest `last_error` kept, in bytes.
pub const MAX_ERROR_BYTES: usize = 4096;

/// The state of one Source, with the payload each state needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Built and validated; visible unless superseded.
    Indexed {
        /// The claimed type (for `extension`: the target base type).
        type_name: TypeName,
        /// The bundle it was built into.
        bundle: BundleLocation,
        /// What listing and describing need.
        meta: TypeMeta,
    },
    /// Built, not yet validated. Transient; never persisted.
    Bundled {
        /// The declared type.
        type_name: TypeName,
        /// The new bundle.
        bundle: BundleLocation,
    },
    /// The build failed.
    BundleBuildFailed {
        /// The build error.
        last_error: String,
    },
    /// Built, but the export was rejected.
    ValidationFailed {
        /// The bundle that was evaluated (kept as evidence, I3).
        bundle: BundleLocation,
        /// The validation error.
        last_error: String,
    },
    /// The entry point cannot be read.
    EntryPointUnreadable {
        /// Why.
        last_error: String,
    },
    /// The source is gone but its bundle file is still on disk.
    OrphanedBundleOnly {
        /// The leftover bundle.
        bundle: BundleLocation,
    },
    /// Retired.
    Tombstoned {
        /// Why.
        reason: TombstoneReason,
    },
}

/// What an `Indexed` row tells about its type without evaluating the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// The version the export declares.
    pub declared_version: String,
    /// The export's description.
    pub description: String,
    /// Canonical JSON of the validated export; opaque to the domain.
    pub descriptor: String,
}

/// The seven tags, without payloads; the catalog's `state` text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub enum RowStateTag {
    /// See [`RowState::Indexed`].
    Indexed,
    /// See [`RowState::Bundled`].
    Bundled,
    /// See [`RowState::BundleBuildFailed`].
    BundleBuildFailed,
    /// See [`RowState::ValidationFailed`].
    ValidationFailed,
    /// See [`RowState::EntryPointUnreadable`].
    EntryPointUnreadable,
    /// See [`RowState::OrphanedBundleOnly`].
    OrphanedBundleOnly,
    /// See [`RowState::Tombstoned`].
    Tombstoned,
}

/// Why a Source was retired.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TombstoneReason {
    /// The file left the disk.
    SourceDeleted,
    /// The whole aggregate was retired (rm, upgrade, lockfile orphan).
    ExtensionRemoved,
    /// Lost the intra-extension duplicate rule (I2); the only persisted tombstone.
    Renamed {
        /// The source holding the contested slot; `None` once it left the slot.
        winner: Option<CanonicalPath>,
    },
}

/// The retirement reasons callers may pass to `record_source_missing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetireReason {
    /// The file left the disk.
    SourceDeleted,
    /// The aggregate was retired.
    ExtensionRemoved,
}

/// Text is not one of the seven tags.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown row state {0:?}")]
pub struct UnknownRowState(pub String);

impl RowStateTag {
    /// Every tag, in the order of the spec. Iterate this and `match` without a
    /// wildcard arm where every state must be covered.
    pub const ALL: [RowStateTag; 7] = [
        RowStateTag::Indexed,
        RowStateTag::Bundled,
        RowStateTag::BundleBuildFailed,
        RowStateTag::ValidationFailed,
        RowStateTag::EntryPointUnreadable,
        RowStateTag::OrphanedBundleOnly,
        RowStateTag::Tombstoned,
    ];

    /// The catalog spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RowStateTag::Indexed => "Indexed",
            RowStateTag::Bundled => "Bundled",
            RowStateTag::BundleBuildFailed => "BundleBuildFailed",
            RowStateTag::ValidationFailed => "ValidationFailed",
            RowStateTag::EntryPointUnreadable => "EntryPointUnreadable",
            RowStateTag::OrphanedBundleOnly => "OrphanedBundleOnly",
            RowStateTag::Tombstoned => "Tombstoned",
        }
    }

    /// True for the three failure tags that make doctor report `fail`.
    pub fn is_failure(self) -> bool {
        match self {
            RowStateTag::BundleBuildFailed
            | RowStateTag::ValidationFailed
            | RowStateTag::EntryPointUnreadable => true,
            RowStateTag::Indexed
            | RowStateTag::Bundled
            | RowStateTag::OrphanedBundleOnly
            | RowStateTag::Tombstoned => false,
        }
    }
}

impl fmt::Display for RowStateTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RowStateTag {
    type Err = UnknownRowState;
    fn from_str(text: &str) -> Result<RowStateTag, UnknownRowState> {
        RowStateTag::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownRowState(text.to_owned()))
    }
}

impl RowState {
    /// The payload-free tag.
    pub fn tag(&self) -> RowStateTag {
        match self {
            RowState::Indexed { .. } => RowStateTag::Indexed,
            RowState::Bundled { .. } => RowStateTag::Bundled,
            RowState::BundleBuildFailed { .. } => RowStateTag::BundleBuildFailed,
            RowState::ValidationFailed { .. } => RowStateTag::ValidationFailed,
            RowState::EntryPointUnreadable { .. } => RowStateTag::EntryPointUnreadable,
            RowState::OrphanedBundleOnly { .. } => RowStateTag::OrphanedBundleOnly,
            RowState::Tombstoned { .. } => RowStateTag::Tombstoned,
        }
    }

    /// The bundle this state carries, if any.
    pub fn bundle(&self) -> Option<&BundleLocation> {
        match self {
            RowState::Indexed { bundle, .. }
            | RowState::Bundled { bundle, .. }
            | RowState::ValidationFailed { bundle, .. }
            | RowState::OrphanedBundleOnly { bundle } => Some(bundle),
            RowState::BundleBuildFailed { .. }
            | RowState::EntryPointUnreadable { .. }
            | RowState::Tombstoned { .. } => None,
        }
    }

    /// The error text of a failure state.
    pub fn last_error(&self) -> Option<&str> {
        match self {
            RowState::BundleBuildFailed { last_error }
            | RowState::ValidationFailed { last_error, .. }
            | RowState::EntryPointUnreadable { last_error } => Some(last_error),
            RowState::Indexed { .. }
            | RowState::Bundled { .. }
            | RowState::OrphanedBundleOnly { .. }
            | RowState::Tombstoned { .. } => None,
        }
    }

    /// True for `Tombstoned`.
    pub fn is_tombstoned(&self) -> bool {
        matches!(self, RowState::Tombstoned { .. })
    }
}

/// Cuts an error message to [`MAX_ERROR_BYTES`] at a UTF-8 boundary.
pub fn truncate_error(message: impl Into<String>) -> String {
    let mut message = message.into();
    if message.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_cover_all() {
        for tag in RowStateTag::ALL {
            assert_eq!(tag.as_str().parse::<RowStateTag>().unwrap(), tag);
        }
        assert!("indexed".parse::<RowStateTag>().is_err());
    }

    #[test]
    fn errors_are_cut_at_a_char_boundary() {
        let long = "é".repeat(3000);
        let cut = truncate_error(long);
        assert!(cut.len() <= MAX_ERROR_BYTES);
        assert_eq!(cut.len(), 4096);
        let three = format!("a{}", "€".repeat(2000));
        let cut = truncate_error(three);
        assert!(cut.len() <= MAX_ERROR_BYTES && cut.len() > 4090);
    }
}

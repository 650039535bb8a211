//! `Source`, `Origin` and `Observation` (spec 10 §3.1–§3.2, §3.6).

use crate::fingerprint::SourceFingerprint;
use crate::kind::Kind;
use crate::location::SourceLocation;
use crate::path::CanonicalPath;
use crate::row_state::RowState;
use crate::type_name::TypeName;

/// Where a Source comes from; smaller rank wins a slot (Local > SourceMounted > Pulled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Under `<root>/extensions/`.
    Local,
    /// Under a configured source mount.
    SourceMounted,
    /// Under `<root>/.fen/pulled-extensions/`.
    Pulled,
}

impl Origin {
    /// Precedence rank: 0, 1, 2.
    pub fn rank(self) -> u8 {
        match self {
            Origin::Local => 0,
            Origin::SourceMounted => 1,
            Origin::Pulled => 2,
        }
    }

    /// True for `Local` and `SourceMounted`.
    pub fn is_local_class(self) -> bool {
        !matches!(self, Origin::Pulled)
    }

    /// snake_case text for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Local => "local",
            Origin::SourceMounted => "source_mounted",
            Origin::Pulled => "pulled",
        }
    }
}

/// The origin of an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionOrigin {
    /// The repo's single local aggregate.
    Local,
    /// A pulled extension.
    Pulled,
}

impl ExtensionOrigin {
    /// snake_case text for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtensionOrigin::Local => "local",
            ExtensionOrigin::Pulled => "pulled",
        }
    }
}

/// One look at an entry point on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Where it is.
    pub location: SourceLocation,
    /// What it declares (or the kind dir's first kind when unknown).
    pub kind: Kind,
    /// Where it comes from.
    pub origin: Origin,
    /// Its fingerprint now.
    pub fingerprint: SourceFingerprint,
    /// RFC 3339 UTC mtime, for observability only.
    pub mtime: Option<String>,
}

/// One entry point of an Extension. Immutable: transitions on the aggregate produce
/// new values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    location: SourceLocation,
    kind: Kind,
    origin: Origin,
    fingerprint: Option<SourceFingerprint>,
    state: RowState,
    mtime: Option<String>,
    superseded_by: Option<CanonicalPath>,
}

impl Source {
    /// Rebuilds a Source from stored fields. Used by repositories when loading rows and
    /// by tests; services change Sources only through the aggregate's transitions.
    pub fn restore(
        location: SourceLocation,
        kind: Kind,
        origin: Origin,
        fingerprint: Option<SourceFingerprint>,
        state: RowState,
        mtime: Option<String>,
        superseded_by: Option<CanonicalPath>,
    ) -> Source {
        Source {
            location,
            kind,
            origin,
            fingerprint,
            state,
            mtime,
            superseded_by,
        }
    }

    pub(crate) fn observed(obs: &Observation, state: RowState) -> Source {
        Source {
            location: obs.location.clone(),
            kind: obs.kind,
            origin: obs.origin,
            fingerprint: Some(obs.fingerprint),
            state,
            mtime: obs.mtime.clone(),
            superseded_by: None,
        }
    }

    pub(crate) fn with_state(&self, state: RowState) -> Source {
        Source {
            state,
            ..self.clone()
        }
    }

    /// Identity within the aggregate.
    pub fn location(&self) -> &SourceLocation {
        &self.location
    }
    /// The canonical path.
    pub fn path(&self) -> &CanonicalPath {
        self.location.canonical()
    }
    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The origin.
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// The fingerprint; `None` when the stored text was `''` or unparsable.
    pub fn fingerprint(&self) -> Option<&SourceFingerprint> {
        self.fingerprint.as_ref()
    }
    /// The state.
    pub fn state(&self) -> &RowState {
        &self.state
    }
    /// The mtime (observability only).
    pub fn mtime(&self) -> Option<&str> {
        self.mtime.as_deref()
    }
    /// The local-class source that hides this pulled one (maintained by the repository).
    pub fn superseded_by(&self) -> Option<&CanonicalPath> {
        self.superseded_by.as_ref()
    }

    /// The slot this source claims: `Indexed` and not of kind `extension`.
    pub fn claim(&self) -> Option<(Kind, &TypeName)> {
        match &self.state {
            RowState::Indexed { type_name, .. } if self.kind.is_unique_per_type() => {
                Some((self.kind, type_name))
            }
            _ => None,
        }
    }

    /// Visible to type resolution: `Indexed` and not superseded.
    pub fn is_visible(&self) -> bool {
        matches!(self.state, RowState::Indexed { .. }) && self.superseded_by.is_none()
    }
}

//! `DomainError`: failures of the aggregate's constructor and transitions (spec 10 §3.8).

use crate::id::ExtensionId;
use crate::name::NameError;
use crate::path::{CanonicalPath, PathError};
use crate::repo_root::RepoRootNotFound;
use crate::row_state::RowStateTag;
use crate::type_name::TypeNameError;
use crate::version::VersionError;

/// A rule of the domain was broken. Nothing is changed when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// A source's extension root is not the aggregate's root (I1).
    #[error("source {actual} of {extension} is not under the extension root {expected}")]
    SourceRootMismatch {
        /// The aggregate.
        extension: ExtensionId,
        /// The aggregate's root.
        expected: CanonicalPath,
        /// The source's root (or path).
        actual: CanonicalPath,
    },
    /// A pulled source in the local aggregate or the other way round (I1).
    #[error("source {path} has the wrong origin for {extension}")]
    OriginMismatch {
        /// The aggregate.
        extension: ExtensionId,
        /// The source.
        path: CanonicalPath,
    },
    /// Two sources with one canonical path.
    #[error("two sources share the path {path}")]
    DuplicateLocation {
        /// The path.
        path: CanonicalPath,
    },
    /// No source at that path.
    #[error("{extension} has no source {path}")]
    UnknownSource {
        /// The aggregate.
        extension: ExtensionId,
        /// The path.
        path: CanonicalPath,
    },
    /// `record_indexed` on a source that is not `Bundled`.
    #[error("source {path} is {state}, not Bundled")]
    NotBundled {
        /// The source.
        path: CanonicalPath,
        /// Its state.
        state: RowStateTag,
    },
    /// A bundle's fingerprint differs from the observation's.
    #[error("bundle fingerprint of {path} does not match the source fingerprint")]
    FingerprintMismatch {
        /// The source.
        path: CanonicalPath,
    },
    /// A bad extension name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A bad version.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A bad type name.
    #[error(transparent)]
    TypeName(#[from] TypeNameError),
    /// A bad path.
    #[error(transparent)]
    Path(#[from] PathError),
    /// No repository root was found.
    #[error(transparent)]
    RepoRootNotFound(#[from] RepoRootNotFound),
}

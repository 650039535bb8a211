//! `LifecycleError`, the failure of every lifecycle service.

use fen_domain::ports::{BundleStoreError, LifecycleLockError, LockfileError, RepoError};
use fen_domain::DomainError;

/// A failure of a lifecycle service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The catalog failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The lifecycle lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LifecycleLockError),
    /// The lockfile is invalid.
    #[error(transparent)]
    Lockfile(#[from] LockfileError),
    /// A domain rule was broken (a bug in a service).
    #[error("internal error: {0}")]
    Domain(#[from] DomainError),
    /// The bundle store failed.
    #[error(transparent)]
    Store(#[from] BundleStoreError),
    /// A file system operation failed.
    #[error("{0}")]
    Io(String),
    /// A lifecycle command failed with a coded error (spec 20 §15.3–§15.4).
    #[error("{0}")]
    Failed(Box<crate::extensions::Failure>),
}

//! `RegistryClient` and `Unpacker`: fetching published extensions and extracting their
//! archives (spec 20 §2, §5). Implemented by `fen_infrastructure::registry`.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::name::ExtensionName;
use crate::version::ExtensionVersion;

/// A published version as the registry describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryVersion {
    /// The name.
    pub name: ExtensionName,
    /// The version.
    pub version: ExtensionVersion,
    /// `sha256:<hex>` of the archive, when the registry publishes one.
    pub checksum: Option<String>,
}

/// A registry request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No registry URL is configured.
    #[error("no registry is configured")]
    NotConfigured,
    /// The name or version does not exist.
    #[error("{0} was not found in the registry")]
    NotFound(String),
    /// Authentication failed.
    #[error("the registry refused the credentials")]
    Auth,
    /// The registry could not be reached or kept failing.
    #[error("the registry is unavailable: {0}")]
    Unavailable(String),
    /// The registry answered something fen cannot use.
    #[error("the registry answered with an invalid response: {0}")]
    Protocol(String),
}

/// An archive could not be extracted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// Not a readable archive.
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    /// An entry would escape the target or is not a regular file.
    #[error("the archive contains an unsafe entry: {0}")]
    Unsafe(String),
    /// The archive exceeds a size cap.
    #[error("the archive is too large: {0}")]
    TooLarge(String),
}

/// The registry's HTTP API.
#[async_trait]
pub trait RegistryClient: Send + Sync {
    /// Resolves a name and optional version to a published version.
    async fn resolve(
        &self,
        name: &ExtensionName,
        version: Option<&ExtensionVersion>,
    ) -> Result<RegistryVersion, RegistryError>;
    /// Downloads the archive of a version into `dest`.
    async fn download(&self, version: &RegistryVersion, dest: &Path) -> Result<(), RegistryError>;
}

/// Extracts untrusted archives under the safety rules of spec 20 §5.2.
#[async_trait]
pub trait Unpacker: Send + Sync {
    /// Extracts `archive` into the empty directory `dest`; returns the files written,
    /// relative to `dest`.
    async fn unpack(&self, archive: &Path, dest: &Path) -> Result<Vec<PathBuf>, UnpackError>;
}

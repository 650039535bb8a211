//! `RegistryClient` and `Unpacker`: fetching published extensions and extracting their
//! archives (spec 20 §2, §5). Implemented by `fen_infrastructure::registry`.
//!
//! Both carry their user-facing message fully formatted (spec 20 §15.4): the adapter
//! knows the URL, the status and the entry that failed; the CLI prints `message` and
//! maps `code` to an exit code.

use std::fmt;
use std::path::Path;

use async_trait::async_trait;

use crate::manifest::Manifest;
use crate::name::ExtensionName;
use crate::version::ExtensionVersion;

/// A registry base URL, normalised: `http` or `https`, one trailing `/` stripped, a
/// path prefix allowed (spec 20 §2.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryUrl(String);

impl RegistryUrl {
    /// Checks the scheme and strips one trailing `/`.
    ///
    /// ```
    /// use fen_domain::ports::RegistryUrl;
    /// assert_eq!(RegistryUrl::parse("http://127.0.0.1:9/reg/").unwrap().as_str(), "http://127.0.0.1:9/reg");
    /// assert!(RegistryUrl::parse("ftp://x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<RegistryUrl, RegistryError> {
        let lower = text.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        match rest {
            Some(host)
                if !host.is_empty()
                    && !host.starts_with('/')
                    && !text.contains(char::is_whitespace) =>
            {
                let trimmed = text.strip_suffix('/').unwrap_or(text);
                Ok(RegistryUrl(trimmed.to_owned()))
            }
            _ => Err(RegistryError {
                code: RegistryErrorCode::NotConfigured,
                message: format!("registry URL {text:?} is not an http or https URL"),
                hint: Some("pass --registry http://HOST:PORT or set FEN_REGISTRY_URL".to_owned()),
            }),
        }
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What R1 says about an extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionMeta {
    /// The name.
    pub name: ExtensionName,
    /// `latestVersion`; `None` when nothing is published.
    pub latest_version: Option<ExtensionVersion>,
    /// `deprecated`.
    pub deprecated: Option<Deprecation>,
}

/// A deprecation notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deprecation {
    /// Why.
    pub reason: String,
    /// The replacement, if named.
    pub superseded_by: Option<String>,
}

/// Which failure of spec 20 §2.4 a registry request ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorCode {
    /// `registry_not_configured`.
    NotConfigured,
    /// `registry_not_found` (404, 410, or no published version).
    NotFound,
    /// `registry_auth` (401, 403).
    Auth,
    /// `registry_unavailable` (retries exhausted, other statuses).
    Unavailable,
    /// `registry_protocol` (a response fen cannot use).
    Protocol,
    /// `archive_too_large` (a download past the 32 MiB cap).
    TooLarge,
}

impl RegistryErrorCode {
    /// The stable CLI code.
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryErrorCode::NotConfigured => "registry_not_configured",
            RegistryErrorCode::NotFound => "registry_not_found",
            RegistryErrorCode::Auth => "registry_auth",
            RegistryErrorCode::Unavailable => "registry_unavailable",
            RegistryErrorCode::Protocol => "registry_protocol",
            RegistryErrorCode::TooLarge => "archive_too_large",
        }
    }
}

/// A registry request failed; `message` is the one line of spec 20 §15.4.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    /// What kind of failure.
    pub code: RegistryErrorCode,
    /// The one-line message, without the hint.
    pub message: String,
    /// What to try, if anything.
    pub hint: Option<String>,
}

/// Told about a download's progress (a progress bar on a terminal; nothing otherwise).
pub trait DownloadProgress: Send + Sync {
    /// The body starts; `total` is the `Content-Length`, if sent.
    fn started(&self, total: Option<u64>);
    /// `bytes` more arrived.
    fn advanced(&self, bytes: u64);
}

/// Ignores progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn started(&self, _total: Option<u64>) {}
    fn advanced(&self, _bytes: u64) {}
}

/// The registry's HTTP API (spec 20 §2.3, endpoints R1–R4), with the retries, time
/// limits, size caps and redirect rules of §2.3–§2.5. One value per process.
#[async_trait]
pub trait RegistryClient: Send + Sync {
    /// R1: metadata of a name.
    async fn metadata(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
    ) -> Result<ExtensionMeta, RegistryError>;
    /// R2: the latest version; `None` when the registry answers 404 (`update` reports
    /// the item `not_found`).
    async fn latest(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
    ) -> Result<Option<ExtensionVersion>, RegistryError>;
    /// R3: the archive bytes (at most 32 MiB), following redirects.
    async fn download(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
        version: &ExtensionVersion,
        progress: &dyn DownloadProgress,
    ) -> Result<Vec<u8>, RegistryError>;
    /// R4: the published sha256 as 64 lowercase hex digits; `None` when the registry
    /// answers 404 (checksum unavailable, spec 20 §2.6).
    async fn checksum(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
        version: &ExtensionVersion,
    ) -> Result<Option<String>, RegistryError>;
}

/// Which rule of spec 20 §5 an archive broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveErrorCode {
    /// `archive_corrupt` (S1).
    Corrupt,
    /// `archive_unsafe` (S2–S6).
    Unsafe,
    /// `archive_invalid` (S8, unlisted entry points).
    Invalid,
    /// `archive_too_large` (S7).
    TooLarge,
    /// `manifest_invalid` (§5.3).
    ManifestInvalid,
    /// `manifest_mismatch`: the manifest names another name or version.
    ManifestMismatch,
    /// `io`: the staging directory could not be written.
    Io,
}

impl ArchiveErrorCode {
    /// The stable CLI code.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveErrorCode::Corrupt => "archive_corrupt",
            ArchiveErrorCode::Unsafe => "archive_unsafe",
            ArchiveErrorCode::Invalid => "archive_invalid",
            ArchiveErrorCode::TooLarge => "archive_too_large",
            ArchiveErrorCode::ManifestInvalid => "manifest_invalid",
            ArchiveErrorCode::ManifestMismatch => "manifest_mismatch",
            ArchiveErrorCode::Io => "io",
        }
    }
}

/// An archive was rejected; `message` is the one line of spec 20 §15.4.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ArchiveError {
    /// Which rule.
    pub code: ArchiveErrorCode,
    /// The one-line message.
    pub message: String,
}

/// What an archive held, once extracted and checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpackedExtension {
    /// The validated manifest (name and version equal the expected ones).
    pub manifest: Manifest,
    /// Every regular file written, relative to the extension root, `/`-separated,
    /// sorted by bytes; `manifest.yaml` included.
    pub files: Vec<String>,
    /// Warnings (unknown manifest keys).
    pub warnings: Vec<String>,
}

/// Extracts untrusted archives under the safety rules of spec 20 §5.2.
#[async_trait]
pub trait Unpacker: Send + Sync {
    /// Extracts the `.tar.gz` bytes into `dest` (which must not exist; it is created),
    /// without the `extension/` prefix, checks every rule of §5.2 before a byte of an
    /// entry is written and the manifest of §5.3, requires the manifest's name and
    /// version to equal `name` and `version`, and rewrites `manifest.yaml` as the
    /// read-only copy (mode 0444, first line [`crate::manifest::READ_ONLY_HEADER`]).
    /// On error `dest` may hold a partial tree; the caller deletes its staging.
    async fn unpack(
        &self,
        archive: &[u8],
        dest: &Path,
        name: &ExtensionName,
        version: &ExtensionVersion,
    ) -> Result<UnpackedExtension, ArchiveError>;
}

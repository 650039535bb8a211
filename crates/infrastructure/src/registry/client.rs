//! The registry HTTP client (spec 20 §2): `HttpRegistryClient` implements the
//! `RegistryClient` port over reqwest (rustls, no proxy).
//!
//! Submodules by concern: `encode` (URLs, percent-encoding, the redirect and origin
//! rules), `transport` (attempts, retries, time limits, size caps, redirects),
//! `wire` (the JSON bodies) and `failure` (the one-line messages of spec 20 §15.4).

mod encode;
mod failure;
mod transport;
mod wire;

#[cfg(test)]
mod tests;

use std::time::Duration;

use async_trait::async_trait;
use fen_domain::ports::{
    DownloadProgress, ExtensionMeta, NoProgress, RegistryClient, RegistryError, RegistryUrl,
};
use fen_domain::{ExtensionName, ExtensionVersion};

pub(crate) use self::encode::encode_segment;
use self::encode::{base_url, endpoint_path, request_url, Endpoint};
use self::transport::{Answer, Request, Transport};

/// Time limits, retries, caps and the token of an [`HttpRegistryClient`]. The
/// defaults are those of spec 20 §2.5; the CLI overrides them from
/// `FEN_HTTP_TIMEOUT_MS`, `FEN_DOWNLOAD_TIMEOUT_MS`, `FEN_HTTP_RETRIES` and
/// `FEN_REGISTRY_TOKEN`.
/// No `Debug`: it would print the token.
#[derive(Clone)]
pub struct ClientConfig {
    /// Total time of one R1, R2 or R4 attempt (15 s).
    pub request_timeout: Duration,
    /// Total time of one R3 attempt: every redirect hop and the whole body (120 s).
    pub download_timeout: Duration,
    /// Time to establish a connection (10 s).
    pub connect_timeout: Duration,
    /// Attempts per request, the first included (3; at least 1 is made).
    pub attempts: u32,
    /// Sent as `Authorization: Bearer <token>` to the base URL's origin only.
    pub token: Option<String>,
    /// The largest JSON body accepted (1 MiB).
    pub max_json_bytes: u64,
    /// The largest archive accepted (32 MiB).
    pub max_archive_bytes: u64,
    /// The pause before the second attempt; it doubles for each later one (250 ms).
    pub backoff_base: Duration,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            request_timeout: Duration::from_secs(15),
            download_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            attempts: 3,
            token: None,
            max_json_bytes: 1024 * 1024,
            max_archive_bytes: 32 * 1024 * 1024,
            backoff_base: Duration::from_millis(250),
        }
    }
}

/// The registry client of spec 20 §2; one per process (it pools connections).
pub struct HttpRegistryClient {
    transport: Transport,
}

impl std::fmt::Debug for HttpRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRegistryClient").finish_non_exhaustive()
    }
}

impl HttpRegistryClient {
    /// Builds the HTTP client. An empty token counts as none.
    pub fn new(mut config: ClientConfig) -> Result<HttpRegistryClient, RegistryError> {
        config.token = config.token.filter(|token| !token.trim().is_empty());
        Ok(HttpRegistryClient {
            transport: Transport::new(config)?,
        })
    }

    async fn fetch(
        &self,
        registry: &RegistryUrl,
        endpoint: Endpoint,
        name: &ExtensionName,
        version: Option<&ExtensionVersion>,
        progress: &dyn DownloadProgress,
    ) -> Result<Answer, RegistryError> {
        let path = endpoint_path(endpoint, name, version);
        let base = base_url(registry).map_err(|e| failure::bad_url(registry, &e))?;
        let url = request_url(registry, &path).map_err(|e| failure::bad_url(registry, &e))?;
        let subject = match version {
            Some(version) => format!("{name}@{version}"),
            None => name.to_string(),
        };
        let request = Request {
            registry,
            base,
            endpoint,
            url,
            subject,
        };
        self.transport.fetch(&request, progress).await
    }
}

#[async_trait]
impl RegistryClient for HttpRegistryClient {
    async fn metadata(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
    ) -> Result<ExtensionMeta, RegistryError> {
        match self
            .fetch(registry, Endpoint::Metadata, name, None, &NoProgress)
            .await?
        {
            Answer::Body { bytes, path, html } => wire::metadata(&bytes, html, name)
                .map_err(|detail| failure::protocol(registry, &path, &detail)),
            Answer::NotFound(detail) => Err(failure::not_found(
                registry,
                name.as_str(),
                detail.as_deref(),
            )),
        }
    }

    async fn latest(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
    ) -> Result<Option<ExtensionVersion>, RegistryError> {
        match self
            .fetch(registry, Endpoint::Latest, name, None, &NoProgress)
            .await?
        {
            Answer::Body { bytes, path, html } => wire::latest(&bytes, html)
                .map_err(|detail| failure::protocol(registry, &path, &detail)),
            Answer::NotFound(_) => Ok(None),
        }
    }

    async fn download(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
        version: &ExtensionVersion,
        progress: &dyn DownloadProgress,
    ) -> Result<Vec<u8>, RegistryError> {
        match self
            .fetch(registry, Endpoint::Download, name, Some(version), progress)
            .await?
        {
            Answer::Body { bytes, .. } => Ok(bytes),
            Answer::NotFound(detail) => Err(failure::not_found(
                registry,
                &format!("{name}@{version}"),
                detail.as_deref(),
            )),
        }
    }

    async fn checksum(
        &self,
        registry: &RegistryUrl,
        name: &ExtensionName,
        version: &ExtensionVersion,
    ) -> Result<Option<String>, RegistryError> {
        match self
            .fetch(
                registry,
                Endpoint::Checksum,
                name,
                Some(version),
                &NoProgress,
            )
            .await?
        {
            Answer::Body { bytes, path, html } => wire::checksum(&bytes, html)
                .map(Some)
                .map_err(|detail| failure::protocol(registry, &path, &detail)),
            Answer::NotFound(_) => Ok(None),
        }
    }
}

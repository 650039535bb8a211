//! One registry request under the rules of spec 20 §2.3–§2.5: attempts with jittered
//! backoff, `Retry-After`, a time limit per attempt (R3: all hops and the whole body),
//! size caps enforced while the body streams in, and R3 redirects followed by hand.
//!
//! Redirects are followed here rather than by reqwest so that every hop is checked
//! the same way: at most 5, no `https`→`http` downgrade except to loopback, and the
//! bearer token only on requests to the base URL's own origin.
//!
//! The client never uses a proxy (`no_proxy()`): fen has no proxy setting, and the
//! spec requires loopback registries to be reached directly, which this covers.

use std::error::Error as _;
use std::time::Duration;

use fen_domain::ports::{DownloadProgress, RegistryError, RegistryUrl};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, Url};

use super::encode::{redirect_refusal, same_origin, Endpoint};
use super::{failure, ClientConfig};

/// Redirects R3 may follow (spec 20 §2.3).
const MAX_REDIRECTS: u32 = 5;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The longest `Retry-After` fen waits for; a longer one ends the retries.
const MAX_RETRY_AFTER_SECS: u64 = 10;
/// How much of an error body is read for its `error` field.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// What one call of the API asks for.
pub(crate) struct Request<'a> {
    pub registry: &'a RegistryUrl,
    /// The base URL parsed, for the same-origin rule of the token.
    pub base: Url,
    pub endpoint: Endpoint,
    pub url: Url,
    /// `@s/n` or `@s/n@V`, for messages.
    pub subject: String,
}

/// A request's useful answer.
pub(crate) enum Answer {
    /// 2xx: the body, the path it came from, and whether it was declared HTML.
    Body {
        bytes: Vec<u8>,
        path: String,
        html: bool,
    },
    /// 404, with the registry's `error` text if it sent one.
    NotFound(Option<String>),
}

/// The HTTP side of `HttpRegistryClient`: one reqwest client and the settings.
pub(crate) struct Transport {
    http: reqwest::Client,
    config: ClientConfig,
}

enum Step {
    Done(Answer),
    Failed(RegistryError),
    Retry { failure: Transient, wait: Wait },
}

/// A failure worth another attempt.
enum Transient {
    Status {
        status: u16,
        path: String,
        detail: Option<String>,
    },
    Network(String),
}

/// What to wait before the next attempt.
enum Wait {
    Backoff,
    RetryAfter(Duration),
    /// `Retry-After` beyond 10 s: give up now.
    Never,
}

enum BodyError {
    /// The declared or received size, past the limit.
    TooLarge(u64),
    /// The connection broke or closed before `Content-Length` bytes arrived.
    Broken(String),
}

impl Transport {
    pub(crate) fn new(config: ClientConfig) -> Result<Transport, RegistryError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("fen/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| failure::setup(&error_chain(&e)))?;
        Ok(Transport { http, config })
    }

    /// Runs the request with retries; `progress` hears about an archive body.
    pub(crate) async fn fetch(
        &self,
        request: &Request<'_>,
        progress: &dyn DownloadProgress,
    ) -> Result<Answer, RegistryError> {
        let attempts = self.config.attempts.max(1);
        let limit = match request.endpoint {
            Endpoint::Download => self.config.download_timeout,
            Endpoint::Metadata | Endpoint::Latest | Endpoint::Checksum => {
                self.config.request_timeout
            }
        };
        let mut number = 1;
        loop {
            let step = tokio::time::timeout(limit, self.attempt(request, number, progress))
                .await
                .unwrap_or_else(|_| Step::Retry {
                    failure: Transient::Network(format!(
                        "no complete answer within {} ms",
                        limit.as_millis()
                    )),
                    wait: Wait::Backoff,
                });
            let (failure, wait) = match step {
                Step::Done(answer) => return Ok(answer),
                Step::Failed(error) => return Err(error),
                Step::Retry { failure, wait } => (failure, wait),
            };
            let pause = match wait {
                Wait::Backoff => Some(backoff(self.config.backoff_base, number + 1)),
                Wait::RetryAfter(pause) => Some(pause),
                Wait::Never => None,
            };
            match pause {
                Some(pause) if number < attempts => {
                    tracing::debug!(attempt = number, ?pause, url = %request.url, "registry request retried");
                    tokio::time::sleep(pause).await;
                    number += 1;
                }
                _ => return Err(exhausted(request.registry, failure, number)),
            }
        }
    }

    /// One attempt: the request, its redirects (R3 only) and the body.
    async fn attempt(
        &self,
        request: &Request<'_>,
        number: u32,
        progress: &dyn DownloadProgress,
    ) -> Step {
        let registry = request.registry;
        let mut url = request.url.clone();
        let mut hops = 0;
        loop {
            let path = url.path().to_owned();
            let response = match self.send(request, &url).await {
                Ok(response) => response,
                Err(error) => {
                    return Step::Retry {
                        failure: Transient::Network(error_chain(&error)),
                        wait: Wait::Backoff,
                    }
                }
            };
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                match next_hop(request.endpoint, &url, &response, hops) {
                    Ok(target) => {
                        url = target;
                        hops += 1;
                        continue;
                    }
                    Err(detail) => {
                        return Step::Failed(failure::protocol(registry, &path, &detail))
                    }
                }
            }
            return match status {
                200..=299 => self.success(request, response, path, progress).await,
                404 => Step::Done(Answer::NotFound(error_detail(response).await)),
                410 => {
                    let detail = error_detail(response).await;
                    Step::Failed(failure::gone(registry, &request.subject, detail.as_deref()))
                }
                401 | 403 => {
                    let detail = error_detail(response).await;
                    Step::Failed(failure::auth(registry, status, detail.as_deref()))
                }
                408 | 429 | 500 | 502 | 503 | 504 => {
                    let wait = retry_after(&response);
                    let detail = error_detail(response).await;
                    Step::Retry {
                        failure: Transient::Status {
                            status,
                            path,
                            detail,
                        },
                        wait,
                    }
                }
                _ => {
                    let detail = error_detail(response).await;
                    Step::Failed(failure::status(
                        registry,
                        status,
                        &path,
                        detail.as_deref(),
                        number,
                    ))
                }
            };
        }
    }

    async fn send(&self, request: &Request<'_>, url: &Url) -> reqwest::Result<Response> {
        let accept = match request.endpoint {
            Endpoint::Download => "*/*",
            Endpoint::Metadata | Endpoint::Latest | Endpoint::Checksum => "application/json",
        };
        let mut builder = self
            .http
            .get(url.clone())
            .header(ACCEPT, HeaderValue::from_static(accept));
        if let Some(token) = &self.config.token {
            if same_origin(url, &request.base) {
                builder = builder.bearer_auth(token);
            }
        }
        builder.send().await
    }

    async fn success(
        &self,
        request: &Request<'_>,
        response: Response,
        path: String,
        progress: &dyn DownloadProgress,
    ) -> Step {
        let html = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with("text/html"));
        let archive = request.endpoint == Endpoint::Download;
        let limit = if archive {
            self.config.max_archive_bytes
        } else {
            self.config.max_json_bytes
        };
        let progress = archive.then_some(progress);
        match read_body(response, limit, progress).await {
            Ok(bytes) => Step::Done(Answer::Body { bytes, path, html }),
            Err(BodyError::TooLarge(size)) if archive => {
                Step::Failed(failure::too_large(&request.subject, size, limit))
            }
            Err(BodyError::TooLarge(size)) => Step::Failed(failure::protocol(
                request.registry,
                &path,
                &format!(
                    "the JSON response exceeds the {} limit ({size} > {limit})",
                    failure::human_size(limit)
                ),
            )),
            Err(BodyError::Broken(cause)) => Step::Retry {
                failure: Transient::Network(format!(
                    "the response for {path} was cut short: {cause}"
                )),
                wait: Wait::Backoff,
            },
        }
    }
}

/// The pause before attempt `attempt` (≥ 2): `base × 2^(attempt−2)`, ±20 % jitter,
/// at most 2 s.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(2).min(20);
    let nominal = base.saturating_mul(1 << exponent);
    let unit = f64::from(u32::from_le_bytes(crate::random::bytes::<4>())) / f64::from(u32::MAX);
    nominal.mul_f64(0.8 + 0.4 * unit).min(MAX_BACKOFF)
}

/// The target of a redirect, or why it is not followed.
fn next_hop(endpoint: Endpoint, from: &Url, response: &Response, hops: u32) -> Result<Url, String> {
    let status = response.status().as_u16();
    if endpoint != Endpoint::Download {
        return Err(format!("unexpected redirect (HTTP {status})"));
    }
    if !matches!(status, 301 | 302 | 303 | 307 | 308) {
        return Err(format!("unexpected HTTP {status} in place of the archive"));
    }
    if hops >= MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let location = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| format!("HTTP {status} redirect without a Location header"))?
        .to_str()
        .map_err(|_| "the redirect's Location header is not text".to_owned())?;
    let target = from
        .join(location)
        .map_err(|e| format!("the redirect's Location {location:?} is not a URL ({e})"))?;
    match redirect_refusal(from, &target) {
        Some(refusal) => Err(refusal),
        None => Ok(target),
    }
}

/// `Retry-After` in seconds on 429 and 503; other forms (an HTTP date) fall back to
/// the backoff.
fn retry_after(response: &Response) -> Wait {
    if !matches!(response.status().as_u16(), 429 | 503) {
        return Wait::Backoff;
    }
    let seconds = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match seconds {
        Some(seconds) if seconds <= MAX_RETRY_AFTER_SECS => {
            Wait::RetryAfter(Duration::from_secs(seconds))
        }
        Some(_) => Wait::Never,
        None => Wait::Backoff,
    }
}

/// The `error` field of an error body, if a small one arrives in time.
async fn error_detail(response: Response) -> Option<String> {
    let body = read_body(response, MAX_ERROR_BODY, None).await.ok()?;
    failure::error_detail(&body)
}

/// Reads the body chunk by chunk, failing as soon as it is known to exceed `limit`:
/// before reading when `Content-Length` says so, else when the bytes pass it.
async fn read_body(
    mut response: Response,
    limit: u64,
    progress: Option<&dyn DownloadProgress>,
) -> Result<Vec<u8>, BodyError> {
    let declared = response.content_length();
    if let Some(size) = declared.filter(|size| *size > limit) {
        return Err(BodyError::TooLarge(size));
    }
    if let Some(progress) = progress {
        progress.started(declared);
    }
    let capacity = usize::try_from(declared.unwrap_or(0)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let size = bytes.len() as u64 + chunk.len() as u64;
                if size > limit {
                    return Err(BodyError::TooLarge(size));
                }
                bytes.extend_from_slice(&chunk);
                if let Some(progress) = progress {
                    progress.advanced(chunk.len() as u64);
                }
            }
            Ok(None) => return Ok(bytes),
            Err(error) => return Err(BodyError::Broken(error_chain(&error))),
        }
    }
}

fn exhausted(registry: &RegistryUrl, failure: Transient, attempts: u32) -> RegistryError {
    match failure {
        Transient::Status {
            status,
            path,
            detail,
        } => failure::status(registry, status, &path, detail.as_deref(), attempts),
        Transient::Network(cause) => failure::unreachable(registry, &cause, attempts),
    }
}

/// A reqwest error as one line: what failed, then its innermost cause (reqwest's own
/// text only says "error sending request for url (...)").
fn error_chain(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the body broke off"
    } else {
        "request failed"
    };
    let mut innermost = None;
    let mut source = error.source();
    while let Some(cause) = source {
        innermost = Some(cause.to_string());
        source = cause.source();
    }
    match innermost {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        let base = Duration::from_millis(250);
        for _ in 0..50 {
            let second = backoff(base, 2);
            assert!(second >= Duration::from_millis(200), "{second:?}");
            assert!(second <= Duration::from_millis(300), "{second:?}");
            let third = backoff(base, 3);
            assert!(third >= Duration::from_millis(400), "{third:?}");
            assert!(third <= Duration::from_millis(600), "{third:?}");
            assert!(backoff(base, 9) <= MAX_BACKOFF);
            assert!(backoff(base, 9) >= Duration::from_millis(1600));
        }
    }
}

//! The `s3` datastore: `.fen/data/` as a cache of `<prefix>/data/` in an S3 bucket, with
//! datastore locks as objects under `<prefix>/.fen-locks/` (spec 30 §7.1 reserves the
//! place; the sync contract and the lock port are the ones `filesystem` implements).
//!
//! The client is `object_store`'s S3 client (SigV4, retries, multipart). Credentials
//! come from the standard AWS environment variables or a profile of the shared
//! credentials file, never from the repository. Conditional writes (`If-None-Match: *`
//! to create, `If-Match: <etag>` to replace) are what make the locks safe; `verify`
//! refuses an endpoint that ignores them.

mod lock;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

pub use lock::S3DistributedLock;
pub use sync::S3SyncService;

/// Where an `s3` datastore lives (`.fen/datastore.yaml`: `bucket`, `prefix`,
/// `endpoint`, `region`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
    /// A custom endpoint (`http://127.0.0.1:9000`), or `None` for AWS.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when not given).
    pub region: String,
}

impl S3Location {
    /// Checks the fields: a bucket name of 3–63 lowercase letters, digits, `-` and `.`;
    /// a prefix of `/`-separated segments without `.`/`..`/empty ones (leading and
    /// trailing `/` are dropped); an endpoint with an `http://` or `https://` scheme.
    pub fn new(
        bucket: &str,
        prefix: Option<&str>,
        endpoint: Option<&str>,
        region: Option<&str>,
    ) -> Result<S3Location, String> {
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !bucket.starts_with(['-', '.'])
            && !bucket.ends_with(['-', '.']);
        if !bucket_ok {
            return Err(format!(
                "'bucket: {bucket}' is not a valid S3 bucket name (3-63 lowercase letters, digits, '-' or '.')"
            ));
        }
        let prefix = prefix.unwrap_or("").trim_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s.contains(['\\', '\0']))
        {
            return Err(format!(
                "'prefix: {prefix}' must be '/'-separated names without empty, '.' or '..' segments"
            ));
        }
        if let Some(endpoint) = endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!(
                    "'endpoint: {endpoint}' must start with http:// or https://"
                ));
            }
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            region: region.unwrap_or("us-east-1").to_owned(),
        })
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The key of `rel` (`data/...` or `.fen-locks/...`) under the prefix.
    pub(crate) fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }
}

/// Access keys for the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID` / `aws_access_key_id`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY` / `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN` / `aws_session_token`, when temporary.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`),
    /// else from the profile `AWS_PROFILE` (default `default`) of the shared
    /// credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`).
    pub fn from_environment(env: &dyn Fn(&str) -> Option<String>) -> Result<S3Credentials, String> {
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            return Ok(S3Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var("AWS_SESSION_TOKEN"),
            });
        }
        let profile = var("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        let file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".aws/credentials")));
        let missing = || {
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials (AWS_PROFILE)".to_owned()
        };
        let Some(file) = file else {
            return Err(missing());
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            return Err(missing());
        };
        profile_keys(&text, &profile).ok_or_else(|| {
            format!(
                "no usable profile [{profile}] in {} (it needs aws_access_key_id and aws_secret_access_key)",
                file.display()
            )
        })
    }
}

/// The keys of `[profile]` in an AWS shared credentials file (INI).
fn profile_keys(text: &str, profile: &str) -> Option<S3Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().to_owned();
        match key.trim() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    Some(S3Credentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

/// A connected bucket: the client and where fen's objects live in it.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) location: S3Location,
    credentials: S3Credentials,
    request_timeout: Duration,
}

impl S3Bucket {
    /// A client for `location` (no request is made). `request_timeout` bounds each
    /// HTTP request; failed requests are retried up to 3 times with backoff.
    pub fn connect(
        location: S3Location,
        credentials: S3Credentials,
        request_timeout: Duration,
    ) -> Result<S3Bucket, String> {
        let store = build(&location, &credentials, request_timeout)?;
        Ok(S3Bucket {
            store,
            location,
            credentials,
            request_timeout,
        })
    }

    /// Another client for the same bucket, for a thread with its own runtime (a
    /// client's connection pool belongs to the runtime that made its connections).
    pub(crate) fn reconnect(&self) -> Result<S3Bucket, String> {
        S3Bucket::connect(
            self.location.clone(),
            self.credentials.clone(),
            self.request_timeout,
        )
    }

    /// Where it is, for messages.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Checks the bucket can serve as a datastore (spec 30 §7.10 step 1, for S3):
    /// writes, reads and deletes a probe object, and checks that the endpoint honours
    /// conditional writes (a second create of the probe must be refused), which the
    /// locks need. Only the probe object is touched.
    pub async fn verify(&self) -> Result<(), String> {
        let probe = self.location.key(&format!(
            ".fen-locks/.fen-tmp-probe-{}",
            crate::random::hex(&crate::random::bytes::<8>())
        ));
        let at = self.location.url();
        let create = PutOptions::from(PutMode::Create);
        self.store
            .put_opts(&probe, PutPayload::from_static(b"probe"), create.clone())
            .await
            .map_err(|e| format!("cannot write to {at}: {}", short(&e)))?;
        let second = self
            .store
            .put_opts(&probe, PutPayload::from_static(b"again"), create)
            .await;
        let read = self.store.get(&probe).await;
        let _ = self.store.delete(&probe).await;
        match second {
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Ok(_) => {
                return Err(format!(
                    "{at} does not honour conditional writes (If-None-Match: *), which fen's datastore locks need; use a store that supports them (AWS S3, MinIO, Cloudflare R2)"
                ))
            }
            Err(e) => return Err(format!("cannot write to {at}: {}", short(&e))),
        }
        let bytes = match read {
            Ok(got) => got
                .bytes()
                .await
                .map_err(|e| format!("cannot read from {at}: {}", short(&e)))?,
            Err(e) => return Err(format!("cannot read from {at}: {}", short(&e))),
        };
        if &bytes[..] != b"probe" {
            return Err(format!(
                "{at} returned other bytes than were written to its probe object"
            ));
        }
        Ok(())
    }
}

fn build(
    location: &S3Location,
    credentials: &S3Credentials,
    request_timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&location.region)
        .with_access_key_id(&credentials.access_key_id)
        .with_secret_access_key(&credentials.secret_access_key)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_client_options(
            ClientOptions::new()
                .with_timeout(request_timeout)
                .with_connect_timeout(request_timeout.min(Duration::from_secs(10)))
                .with_allow_http(
                    location
                        .endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                ),
        )
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: request_timeout.saturating_mul(4),
            ..RetryConfig::default()
        });
    if let Some(token) = &credentials.session_token {
        builder = builder.with_token(token);
    }
    if let Some(endpoint) = &location.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    let store = builder
        .build()
        .map_err(|e| format!("cannot configure the S3 client for {}: {e}", location.url()))?;
    Ok(Arc::new(store))
}

/// The first line of an object_store error, without its source chain.
pub(crate) fn short(error: &object_store::Error) -> String {
    let text = error.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests;

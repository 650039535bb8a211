//! Routing of the registry server (spec 20 §3.2) on the RAW request path: `{n}` is one
//! percent-encoded segment and `{n}@{v}` shares one, so the path is split first and
//! each part decoded afterwards, then validated as an `ExtensionName` or a CalVer
//! `ExtensionVersion` before any filesystem access.

use std::path::Path;

use bytes::Bytes;
use fen_domain::{ExtensionName, ExtensionVersion};
use serde_json::json;

use super::layout::{self, Published};
use crate::registry::client::encode_segment;

const API_PREFIX: &str = "/api/v1/extensions/";
const FILES_PREFIX: &str = "/files/";

/// A response before it becomes an HTTP one.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
    /// `Location` of a redirect.
    pub location: Option<String>,
}

impl Reply {
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
            location: None,
        }
    }

    /// `{"error": text}`.
    pub(crate) fn error(status: u16, text: &str) -> Reply {
        Reply::json(status, &json!({ "error": text }))
    }

    fn not_found() -> Reply {
        Reply::error(404, "not found")
    }
}

/// Answers a GET (or HEAD: the caller drops the body) of `raw_path` from `root`.
pub(crate) fn respond(root: &Path, raw_path: &str) -> Reply {
    match answer(root, raw_path) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn answer(root: &Path, raw_path: &str) -> Result<Reply, Reply> {
    if raw_path == "/healthz" {
        return Ok(Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: Bytes::from_static(b"ok"),
            location: None,
        });
    }
    if let Some(rest) = raw_path.strip_prefix(FILES_PREFIX) {
        return file(root, rest);
    }
    let Some(rest) = raw_path.strip_prefix(API_PREFIX) else {
        return Err(Reply::not_found());
    };
    let (segment, action) = match rest.split_once('/') {
        Some((segment, action)) => (segment, Some(action)),
        None => (rest, None),
    };
    match action {
        None => metadata(root, &name(segment)?),
        Some("latest") => latest(root, &name(segment)?),
        Some("download") => {
            let (name, version) = reference(segment)?;
            let published = published(root, &name)?;
            if !published.has(&version) {
                return Err(Reply::not_found());
            }
            Ok(Reply {
                status: 302,
                content_type: "application/json",
                body: Bytes::new(),
                location: Some(format!(
                    "{FILES_PREFIX}{}/{}.tar.gz",
                    encode_segment(name.as_str()),
                    encode_segment(&version.to_string())
                )),
            })
        }
        Some("checksum") => {
            let (name, version) = reference(segment)?;
            let published = published(root, &name)?;
            if !published.has(&version) {
                return Err(Reply::not_found());
            }
            let checksum = published.checksum(&version).map_err(internal)?;
            Ok(Reply::json(
                200,
                &json!({ "algorithm": "sha256", "checksum": checksum }),
            ))
        }
        Some(_) => Err(Reply::not_found()),
    }
}

fn metadata(root: &Path, name: &ExtensionName) -> Result<Reply, Reply> {
    let published = published(root, name)?;
    let mut body = json!({
        "name": name.as_str(),
        "latestVersion": published.latest().to_string(),
        "versions": published.versions().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "deprecated": published.deprecated(),
    });
    if let Some(description) = published.description() {
        body["description"] = json!(description);
    }
    Ok(Reply::json(200, &body))
}

fn latest(root: &Path, name: &ExtensionName) -> Result<Reply, Reply> {
    let published = published(root, name)?;
    let latest = published.latest();
    let published_at = published
        .published_at(&latest)
        .map(crate::time::rfc3339)
        .map_or(serde_json::Value::Null, serde_json::Value::String);
    Ok(Reply::json(
        200,
        &json!({
            "name": name.as_str(),
            "latestVersion": latest.to_string(),
            "publishedAt": published_at,
        }),
    ))
}

/// `/files/{n}/{v}.tar.gz`.
fn file(root: &Path, rest: &str) -> Result<Reply, Reply> {
    let Some((segment, file_name)) = rest.split_once('/') else {
        return Err(Reply::not_found());
    };
    let Some(version) = file_name
        .strip_suffix(".tar.gz")
        .filter(|v| !v.contains('/'))
    else {
        return Err(Reply::not_found());
    };
    let name = name(segment)?;
    let version = version_of(version)?;
    let published = published(root, &name)?;
    if !published.has(&version) {
        return Err(Reply::not_found());
    }
    let bytes = std::fs::read(published.archive(&version)).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            Reply::not_found()
        } else {
            internal(error)
        }
    })?;
    Ok(Reply {
        status: 200,
        content_type: "application/gzip",
        body: Bytes::from(bytes),
        location: None,
    })
}

fn published(root: &Path, name: &ExtensionName) -> Result<Published, Reply> {
    layout::find(root, name)
        .map_err(internal)?
        .ok_or_else(Reply::not_found)
}

/// `{n}`: decoded, then validated.
fn name(raw: &str) -> Result<ExtensionName, Reply> {
    percent_decode(raw)
        .and_then(|text| ExtensionName::parse(&text).ok())
        .ok_or_else(|| Reply::error(400, "invalid name"))
}

/// `{n}@{v}`: split on the last literal `@` after the first byte (an encoded name has
/// none; a client that leaves the name's own `@` literal still splits right).
fn reference(raw: &str) -> Result<(ExtensionName, ExtensionVersion), Reply> {
    let at = raw
        .rfind('@')
        .filter(|at| *at > 0)
        .ok_or_else(|| Reply::error(400, "invalid version"))?;
    let name = name(&raw[..at])?;
    let version = version_of(&raw[at + 1..])?;
    Ok((name, version))
}

fn version_of(raw: &str) -> Result<ExtensionVersion, Reply> {
    percent_decode(raw)
        .and_then(|text| ExtensionVersion::parse(&text).ok())
        .filter(|version| !version.is_local())
        .ok_or_else(|| Reply::error(400, "invalid version"))
}

fn internal(error: std::io::Error) -> Reply {
    Reply::error(500, &format!("cannot read the registry directory: {error}"))
}

/// `%XX` decoding; `None` for a malformed escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = raw.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%40s%2Fa").as_deref(), Some("@s/a"));
        assert_eq!(percent_decode("%40s%2fa").as_deref(), Some("@s/a"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn names_and_versions_are_validated_before_the_disk() {
        let root = Path::new("/nonexistent-registry-root");
        let check = |path: &str, status: u16, body: &str| {
            let reply = respond(root, path);
            assert_eq!(reply.status, status, "{path}");
            assert_eq!(reply.body, body.as_bytes(), "{path}");
        };
        check(
            "/api/v1/extensions/..%2F..%2Fetc",
            400,
            r#"{"error":"invalid name"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2F..",
            400,
            r#"{"error":"invalid name"}"#,
        );
        check(
            "/api/v1/extensions/%40S%2Fa/latest",
            400,
            r#"{"error":"invalid name"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2Fa@1.2/download",
            400,
            r#"{"error":"invalid version"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2Fa@0.0.0/checksum",
            400,
            r#"{"error":"invalid version"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2Fa/checksum",
            400,
            r#"{"error":"invalid version"}"#,
        );
        check(
            "/files/%40s%2Fa/..%2Fx.tar.gz",
            400,
            r#"{"error":"invalid version"}"#,
        );
        check(
            "/files/..%2F..%2Fx/2026.01.01.1.tar.gz",
            400,
            r#"{"error":"invalid name"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2Fa",
            404,
            r#"{"error":"not found"}"#,
        );
        check(
            "/api/v1/extensions/%40s%2Fa/other",
            404,
            r#"{"error":"not found"}"#,
        );
        check("/api/v2/x", 404, r#"{"error":"not found"}"#);
        check("/healthz", 200, "ok");
    }
}

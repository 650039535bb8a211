//! The one-line messages of registry failures (spec 20 §2.4, §15.4). Each helper
//! builds a complete `RegistryError`; the clause that says what to try goes into
//! `hint`, never into `message`.

use fen_domain::ports::{RegistryError, RegistryErrorCode, RegistryUrl};

/// How much of a registry's `{"error": "..."}` text a message quotes.
const MAX_DETAIL_CHARS: usize = 200;

/// `extension SUBJECT not found in registry URL`; `subject` is `@s/n` or `@s/n@V`.
pub(crate) fn not_found(
    registry: &RegistryUrl,
    subject: &str,
    detail: Option<&str>,
) -> RegistryError {
    error(
        RegistryErrorCode::NotFound,
        with_detail(
            format!("extension {subject} not found in registry {registry}"),
            detail,
        ),
        None,
    )
}

/// 410: `extension SUBJECT was removed from the registry URL`.
pub(crate) fn gone(registry: &RegistryUrl, subject: &str, detail: Option<&str>) -> RegistryError {
    error(
        RegistryErrorCode::NotFound,
        with_detail(
            format!("extension {subject} was removed from the registry {registry}"),
            detail,
        ),
        None,
    )
}

/// 401, 403: `registry URL refused access (HTTP S)`.
pub(crate) fn auth(registry: &RegistryUrl, status: u16, detail: Option<&str>) -> RegistryError {
    error(
        RegistryErrorCode::Auth,
        with_detail(
            format!("registry {registry} refused access (HTTP {status})"),
            detail,
        ),
        Some("set FEN_REGISTRY_TOKEN if it requires authentication"),
    )
}

/// `registry URL answered HTTP S for PATH (after K attempts)`.
pub(crate) fn status(
    registry: &RegistryUrl,
    status: u16,
    path: &str,
    detail: Option<&str>,
    attempts: u32,
) -> RegistryError {
    error(
        RegistryErrorCode::Unavailable,
        with_detail(
            format!(
                "registry {registry} answered HTTP {status} for {path} ({})",
                after(attempts)
            ),
            detail,
        ),
        None,
    )
}

/// `could not reach registry URL: CAUSE (after K attempts)`.
pub(crate) fn unreachable(registry: &RegistryUrl, cause: &str, attempts: u32) -> RegistryError {
    error(
        RegistryErrorCode::Unavailable,
        format!(
            "could not reach registry {registry}: {} ({})",
            one_line(cause),
            after(attempts)
        ),
        None,
    )
}

/// `registry URL sent an invalid response for PATH: DETAIL`.
pub(crate) fn protocol(registry: &RegistryUrl, path: &str, detail: &str) -> RegistryError {
    error(
        RegistryErrorCode::Protocol,
        format!(
            "registry {registry} sent an invalid response for {path}: {}",
            one_line(detail)
        ),
        None,
    )
}

/// `archive for SUBJECT exceeds the LIMIT limit (N > MAX); nothing was installed`.
pub(crate) fn too_large(subject: &str, size: u64, max: u64) -> RegistryError {
    error(
        RegistryErrorCode::TooLarge,
        format!(
            "archive for {subject} exceeds the {} limit ({size} > {max}); nothing was installed",
            human_size(max)
        ),
        None,
    )
}

/// The base URL passed the scheme check of `RegistryUrl` but is no URL (a bad port,
/// say): a configuration problem, like a missing URL.
pub(crate) fn bad_url(registry: &RegistryUrl, cause: &str) -> RegistryError {
    error(
        RegistryErrorCode::NotConfigured,
        format!(
            "registry URL {registry} is not a valid URL: {}",
            one_line(cause)
        ),
        Some("pass --registry http://HOST:PORT or set FEN_REGISTRY_URL"),
    )
}

/// The client could not be built (no TLS backend, for instance).
pub(crate) fn setup(cause: &str) -> RegistryError {
    error(
        RegistryErrorCode::Unavailable,
        format!(
            "cannot set up the registry HTTP client: {}",
            one_line(cause)
        ),
        None,
    )
}

/// The `error` field of a JSON error body: newlines removed, at most 200 characters.
pub(crate) fn error_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value.get("error")?.as_str()?;
    let text: String = one_line(text).chars().take(MAX_DETAIL_CHARS).collect();
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// `1 MiB`, `32 MiB`, or bytes when the limit is not a whole number of MiB.
pub(crate) fn human_size(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn error(code: RegistryErrorCode, message: String, hint: Option<&str>) -> RegistryError {
    RegistryError {
        code,
        message,
        hint: hint.map(str::to_owned),
    }
}

/// Appends the registry's own words in parentheses, unless the message already says
/// them: our server's 404 body is `{"error":"not found"}`, and repeating it would turn
/// `extension @t/zz not found in registry URL` into something scripts do not expect.
fn with_detail(message: String, detail: Option<&str>) -> String {
    match detail {
        Some(detail) if !message.to_lowercase().contains(&detail.to_lowercase()) => {
            format!("{message} ({detail})")
        }
        _ => message,
    }
}

fn after(attempts: u32) -> String {
    if attempts == 1 {
        "after 1 attempt".to_owned()
    } else {
        format!("after {attempts} attempts")
    }
}

fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn registry() -> RegistryUrl {
        RegistryUrl::parse("http://127.0.0.1:9").unwrap()
    }

    #[test]
    fn messages_match_the_spec_table() {
        let r = registry();
        assert_eq!(
            not_found(&r, "@s/n", Some("not found")).message,
            "extension @s/n not found in registry http://127.0.0.1:9"
        );
        assert_eq!(
            not_found(&r, "@s/n@2026.01.01.1", Some("no such version")).message,
            "extension @s/n@2026.01.01.1 not found in registry http://127.0.0.1:9 (no such version)"
        );
        assert_eq!(
            gone(&r, "@s/n", None).message,
            "extension @s/n was removed from the registry http://127.0.0.1:9"
        );
        let denied = auth(&r, 401, None);
        assert_eq!(
            denied.message,
            "registry http://127.0.0.1:9 refused access (HTTP 401)"
        );
        assert_eq!(
            denied.hint.as_deref(),
            Some("set FEN_REGISTRY_TOKEN if it requires authentication")
        );
        assert_eq!(
            status(&r, 503, "/x", Some("injected fault"), 3).message,
            "registry http://127.0.0.1:9 answered HTTP 503 for /x (after 3 attempts) (injected fault)"
        );
        assert_eq!(
            unreachable(&r, "connection refused", 3).message,
            "could not reach registry http://127.0.0.1:9: connection refused (after 3 attempts)"
        );
        assert_eq!(
            protocol(&r, "/x", "bad\nthing").message,
            "registry http://127.0.0.1:9 sent an invalid response for /x: bad thing"
        );
        let big = too_large("@s/n@2026.01.01.1", 40_000_000, 33_554_432);
        assert_eq!(big.code, RegistryErrorCode::TooLarge);
        assert_eq!(
            big.message,
            "archive for @s/n@2026.01.01.1 exceeds the 32 MiB limit (40000000 > 33554432); nothing was installed"
        );
    }

    #[test]
    fn error_details_are_one_line_and_short() {
        assert_eq!(error_detail(br#"{"error":"a\nb"}"#).as_deref(), Some("a b"));
        let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(500));
        assert_eq!(error_detail(long.as_bytes()).unwrap().len(), 200);
        assert_eq!(error_detail(b"<html>"), None);
        assert_eq!(error_detail(br#"{"error":3}"#), None);
    }
}

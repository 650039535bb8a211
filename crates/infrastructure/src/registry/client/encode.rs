//! Request URLs of the registry API (spec 20 §2.2–§2.3): names and versions become
//! ONE percent-encoded path segment each, so `@stress/alpha` travels as
//! `%40stress%2Falpha` and a server can split `{n}@{v}` on the raw path.

use std::net::IpAddr;

use fen_domain::ports::RegistryUrl;
use fen_domain::{ExtensionName, ExtensionVersion};
use reqwest::Url;

/// Which endpoint a request goes to; the four rows of the table in spec 20 §2.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// R1 `/api/v1/extensions/{n}`.
    Metadata,
    /// R2 `/api/v1/extensions/{n}/latest`.
    Latest,
    /// R3 `/api/v1/extensions/{n}@{v}/download`.
    Download,
    /// R4 `/api/v1/extensions/{n}@{v}/checksum`.
    Checksum,
}

/// Percent-encodes `text` as one path segment: every byte outside RFC 3986
/// *unreserved* (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` (upper-case hex).
pub(crate) fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path of an endpoint below the base URL, starting with `/`.
pub(crate) fn endpoint_path(
    endpoint: Endpoint,
    name: &ExtensionName,
    version: Option<&ExtensionVersion>,
) -> String {
    let name = encode_segment(name.as_str());
    let with_version = || match version {
        Some(version) => format!("{name}@{}", encode_segment(&version.to_string())),
        None => name.clone(),
    };
    match endpoint {
        Endpoint::Metadata => format!("/api/v1/extensions/{name}"),
        Endpoint::Latest => format!("/api/v1/extensions/{name}/latest"),
        Endpoint::Download => format!("/api/v1/extensions/{}/download", with_version()),
        Endpoint::Checksum => format!("/api/v1/extensions/{}/checksum", with_version()),
    }
}

/// The base URL as a parsed URL, or why it cannot be one (a `RegistryUrl` only checks
/// the scheme, so a bad port or host still ends here).
pub(crate) fn base_url(registry: &RegistryUrl) -> Result<Url, String> {
    Url::parse(registry.as_str()).map_err(|e| format!("{e}"))
}

/// The full URL of a request: the base URL's text with the endpoint path appended, so
/// a path prefix (`https://host/reg`) is kept and the encoded segment stays as it is.
pub(crate) fn request_url(registry: &RegistryUrl, path: &str) -> Result<Url, String> {
    Url::parse(&format!("{}{path}", registry.as_str())).map_err(|e| format!("{e}"))
}

/// True for `localhost`, `127.0.0.0/8` and `::1` (IPv4-mapped loopback included).
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Why a redirect from `from` to `to` must not be followed (spec 20 §2.3), if it must not.
pub(crate) fn redirect_refusal(from: &Url, to: &Url) -> Option<String> {
    match to.scheme() {
        "http" | "https" => {}
        other => return Some(format!("redirect to unsupported scheme {other:?} refused")),
    }
    if from.scheme() == "https" && to.scheme() == "http" && !is_loopback_host(to) {
        return Some(format!(
            "redirect from https to {} refused (downgrade to http to a non-loopback host)",
            without_credentials(to)
        ));
    }
    None
}

/// True when the request to `url` may carry the bearer token: same scheme, host and
/// port as the base URL (spec 20 §2.3).
pub(crate) fn same_origin(url: &Url, base: &Url) -> bool {
    url.origin() == base.origin()
}

/// The URL without user info, for messages.
pub(crate) fn without_credentials(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_only_unreserved_bytes() {
        let check = |text: &str, expected: &str| assert_eq!(encode_segment(text), expected);
        check("@stress/alpha", "%40stress%2Falpha");
        check("@s/a/b", "%40s%2Fa%2Fb");
        check("2026.05.05.1", "2026.05.05.1");
        check("a-b_c.d~e", "a-b_c.d~e");
        check("a b%", "a%20b%25");
        check("é", "%C3%A9");
    }

    #[test]
    fn endpoint_paths_encode_name_and_version_separately() {
        let name = ExtensionName::parse("@stress/alpha/x").unwrap();
        let version = ExtensionVersion::parse("2026.05.05.2").unwrap();
        assert_eq!(
            endpoint_path(Endpoint::Metadata, &name, None),
            "/api/v1/extensions/%40stress%2Falpha%2Fx"
        );
        assert_eq!(
            endpoint_path(Endpoint::Latest, &name, None),
            "/api/v1/extensions/%40stress%2Falpha%2Fx/latest"
        );
        assert_eq!(
            endpoint_path(Endpoint::Download, &name, Some(&version)),
            "/api/v1/extensions/%40stress%2Falpha%2Fx@2026.05.05.2/download"
        );
        assert_eq!(
            endpoint_path(Endpoint::Checksum, &name, Some(&version)),
            "/api/v1/extensions/%40stress%2Falpha%2Fx@2026.05.05.2/checksum"
        );
    }

    #[test]
    fn request_urls_keep_the_prefix_and_the_encoding() {
        let registry = RegistryUrl::parse("http://127.0.0.1:9/reg/").unwrap();
        let url = request_url(
            &registry,
            "/api/v1/extensions/%40s%2Fn@2026.01.01.1/download",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/reg/api/v1/extensions/%40s%2Fn@2026.01.01.1/download"
        );
    }

    #[test]
    fn downgrades_are_refused_except_to_loopback() {
        let url = |text: &str| Url::parse(text).unwrap();
        let from = url("https://registry.example/api");
        assert!(redirect_refusal(&from, &url("http://cdn.example/x")).is_some());
        assert!(redirect_refusal(&from, &url("http://127.0.0.1:8/x")).is_none());
        assert!(redirect_refusal(&from, &url("http://127.9.9.9/x")).is_none());
        assert!(redirect_refusal(&from, &url("http://[::1]:8/x")).is_none());
        assert!(redirect_refusal(&from, &url("http://localhost/x")).is_none());
        assert!(redirect_refusal(&from, &url("https://cdn.example/x")).is_none());
        assert!(redirect_refusal(&url("http://a/"), &url("http://cdn.example/x")).is_none());
        assert!(redirect_refusal(&from, &url("ftp://cdn.example/x")).is_some());
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let url = |text: &str| Url::parse(text).unwrap();
        let base = url("http://127.0.0.1:8080/reg");
        assert!(same_origin(&url("http://127.0.0.1:8080/files/x"), &base));
        assert!(!same_origin(&url("http://127.0.0.1:8081/files/x"), &base));
        assert!(!same_origin(&url("http://localhost:8080/files/x"), &base));
        assert!(!same_origin(&url("https://127.0.0.1:8080/files/x"), &base));
        assert!(same_origin(&url("https://h/x"), &url("https://h:443/reg")));
    }
}

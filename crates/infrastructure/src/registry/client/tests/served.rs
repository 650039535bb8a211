//! The client against the real `fen registry serve` server over a temporary directory.

#![allow(clippy::unwrap_used)]

use fen_domain::ports::{NoProgress, RegistryClient, RegistryErrorCode};

use super::support::{client, fast_config, name, sha256, version, Recorded, Served};
use crate::registry::client::ClientConfig;

const V1: &str = "2026.05.05.1";
const V2: &str = "2026.05.05.2";

#[tokio::test]
async fn endpoints_resolve_download_and_verify() {
    let served = Served::start().await;
    served.publish("@stress/alpha", V1, b"first archive");
    served.publish("@stress/alpha", V2, b"second archive");
    served.write(
        "@stress/alpha/meta.json",
        r#"{"description":"stress fixture","deprecated":{"reason":"old","supersededBy":"@stress/beta"}}"#,
    );
    let registry = client(fast_config());
    let alpha = name("@stress/alpha");

    let meta = registry.metadata(&served.url, &alpha).await.unwrap();
    assert_eq!(meta.name, alpha);
    assert_eq!(meta.latest_version, Some(version(V2)));
    let deprecated = meta.deprecated.unwrap();
    assert_eq!(deprecated.reason, "old");
    assert_eq!(deprecated.superseded_by.as_deref(), Some("@stress/beta"));

    assert_eq!(
        registry.latest(&served.url, &alpha).await.unwrap(),
        Some(version(V2))
    );

    let progress = Recorded::default();
    let bytes = registry
        .download(&served.url, &alpha, &version(V1), &progress)
        .await
        .unwrap();
    assert_eq!(bytes, b"first archive");
    assert_eq!(*progress.started.lock().unwrap(), [Some(13)]);
    assert_eq!(*progress.advanced.lock().unwrap(), 13);

    let checksum = registry
        .checksum(&served.url, &alpha, &version(V1))
        .await
        .unwrap();
    assert_eq!(checksum, Some(sha256(b"first archive")));

    // The name travelled as one encoded segment, and R3 went through the redirect.
    assert_eq!(
        served.seen("/api/v1/extensions/"),
        [
            "GET /api/v1/extensions/%40stress%2Falpha 200",
            "GET /api/v1/extensions/%40stress%2Falpha/latest 200",
            "GET /api/v1/extensions/%40stress%2Falpha@2026.05.05.1/download 302",
            "GET /api/v1/extensions/%40stress%2Falpha@2026.05.05.1/checksum 200",
        ]
    );
    assert_eq!(
        served.seen("/files/"),
        ["GET /files/%40stress%2Falpha/2026.05.05.1.tar.gz 200"]
    );
    served.stop().await;
}

#[tokio::test]
async fn multi_segment_names_map_to_nested_directories() {
    let served = Served::start().await;
    served.publish("@s/aws/ec2", V1, b"nested");
    let registry = client(fast_config());
    let nested = name("@s/aws/ec2");
    let bytes = registry
        .download(&served.url, &nested, &version(V1), &NoProgress)
        .await
        .unwrap();
    assert_eq!(bytes, b"nested");
    assert_eq!(
        registry.latest(&served.url, &nested).await.unwrap(),
        Some(version(V1))
    );
    assert_eq!(
        served.seen("/files/"),
        ["GET /files/%40s%2Faws%2Fec2/2026.05.05.1.tar.gz 200"]
    );
    // `@s/aws` holds no archive of its own: not an extension.
    assert_eq!(
        registry.latest(&served.url, &name("@s/aws")).await.unwrap(),
        None
    );
    served.stop().await;
}

#[tokio::test]
async fn sidecars_are_served_verbatim_and_meta_pins_latest() {
    let served = Served::start().await;
    let archive = served.publish("@t/a", V1, b"one");
    served.publish("@t/a", V2, b"two");
    let zeros = "0".repeat(64);
    std::fs::write(
        format!("{}.sha256", archive.display()),
        format!("{}  {V1}.tar.gz\n", "AB".repeat(32)),
    )
    .unwrap();
    served.write("@t/a/meta.json", &format!(r#"{{"latest":"{V1}"}}"#));
    let registry = client(fast_config());
    let a = name("@t/a");

    // Served as written (upper case); the client normalises to lower case.
    assert_eq!(
        registry
            .checksum(&served.url, &a, &version(V1))
            .await
            .unwrap(),
        Some("ab".repeat(32))
    );
    assert_eq!(
        registry.latest(&served.url, &a).await.unwrap(),
        Some(version(V1))
    );
    assert_eq!(
        registry
            .metadata(&served.url, &a)
            .await
            .unwrap()
            .latest_version,
        Some(version(V1))
    );

    // A planted wrong checksum is served as is; a malformed one is the client's
    // protocol error.
    std::fs::write(format!("{}.sha256", archive.display()), &zeros).unwrap();
    assert_eq!(
        registry
            .checksum(&served.url, &a, &version(V1))
            .await
            .unwrap(),
        Some(zeros)
    );
    std::fs::write(format!("{}.sha256", archive.display()), "nonsense\n").unwrap();
    let error = registry
        .checksum(&served.url, &a, &version(V1))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Protocol);
    assert!(error.message.contains("not 64 hex digits"), "{error}");
    served.stop().await;
}

#[tokio::test]
async fn missing_names_and_versions() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"one");
    let registry = client(fast_config());
    let url = served.url.to_string();

    let error = registry
        .metadata(&served.url, &name("@t/zz"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotFound);
    assert_eq!(
        error.message,
        format!("extension @t/zz not found in registry {url}")
    );

    let error = registry
        .download(
            &served.url,
            &name("@t/a"),
            &version("2026.01.01.9"),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotFound);
    assert_eq!(
        error.message,
        format!("extension @t/a@2026.01.01.9 not found in registry {url}")
    );

    assert_eq!(
        registry.latest(&served.url, &name("@t/zz")).await.unwrap(),
        None
    );
    assert_eq!(
        registry
            .checksum(&served.url, &name("@t/a"), &version("2026.01.01.9"))
            .await
            .unwrap(),
        None
    );
    served.stop().await;
}

#[tokio::test]
async fn head_other_methods_and_bad_names() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"0123456789");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", served.url);

    let head = http
        .head(url("/files/%40t%2Fa/2026.05.05.1.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-length"], "10");
    assert_eq!(head.headers()["content-type"], "application/gzip");
    assert!(head.bytes().await.unwrap().is_empty());

    let get = http
        .get(url("/files/%40t%2Fa/2026.05.05.1.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.headers()["content-length"], "10");
    assert_eq!(get.bytes().await.unwrap().as_ref(), b"0123456789");

    let redirect = http
        .head(url("/api/v1/extensions/%40t%2Fa@2026.05.05.1/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 302);
    assert_eq!(
        redirect.headers()["location"],
        "/files/%40t%2Fa/2026.05.05.1.tar.gz"
    );

    let post = http
        .post(url("/api/v1/extensions/%40t%2Fa"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");

    let health = http.get(url("/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    for (path, status, body) in [
        (
            "/api/v1/extensions/..%2F..%2Fetc",
            400,
            r#"{"error":"invalid name"}"#,
        ),
        (
            "/api/v1/extensions/%40t%2F..%2F..",
            400,
            r#"{"error":"invalid name"}"#,
        ),
        (
            "/files/..%2F@t/2026.05.05.1.tar.gz",
            400,
            r#"{"error":"invalid name"}"#,
        ),
        (
            "/api/v1/extensions/%40t%2Fa@latest/download",
            400,
            r#"{"error":"invalid version"}"#,
        ),
        (
            "/api/v1/extensions/%40t%2Fa/nope",
            404,
            r#"{"error":"not found"}"#,
        ),
        ("/nothing/here", 404, r#"{"error":"not found"}"#),
    ] {
        let response = http.get(url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(response.text().await.unwrap(), body, "{path}");
    }
    served.stop().await;
}

#[tokio::test]
async fn transient_503_is_retried() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"one");
    served.write(
        "_faults.json",
        r#"[{"match":"/download","status":503,"times":2}]"#,
    );
    let registry = client(fast_config());
    let bytes = registry
        .download(&served.url, &name("@t/a"), &version(V1), &NoProgress)
        .await
        .unwrap();
    assert_eq!(bytes, b"one");
    assert_eq!(
        served.seen("/download"),
        [
            "GET /api/v1/extensions/%40t%2Fa@2026.05.05.1/download 503",
            "GET /api/v1/extensions/%40t%2Fa@2026.05.05.1/download 503",
            "GET /api/v1/extensions/%40t%2Fa@2026.05.05.1/download 302",
        ]
    );
    served.stop().await;
}

#[tokio::test]
async fn a_truncated_body_is_retried() {
    let served = Served::start().await;
    served.publish("@t/a", V1, &[7u8; 1000]);
    served.write(
        "_faults.json",
        r#"[{"match":"/files/","truncateAfterBytes":100,"times":1}]"#,
    );
    let registry = client(fast_config());
    let progress = Recorded::default();
    let bytes = registry
        .download(&served.url, &name("@t/a"), &version(V1), &progress)
        .await
        .unwrap();
    assert_eq!(bytes, [7u8; 1000]);
    // The first transfer declared 1000 bytes and broke off; the whole R3 (redirect
    // included) was repeated.
    assert_eq!(served.seen("/download").len(), 2);
    assert_eq!(served.seen("/files/").len(), 2);
    assert_eq!(*progress.started.lock().unwrap(), [Some(1000), Some(1000)]);
    served.stop().await;
}

#[tokio::test]
async fn persistent_5xx_exhausts_the_attempts() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"one");
    served.write("_faults.json", r#"[{"match":"/checksum","status":500}]"#);
    let registry = client(fast_config());
    let error = registry
        .checksum(&served.url, &name("@t/a"), &version(V1))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert_eq!(
        error.message,
        format!(
            "registry {} answered HTTP 500 for /api/v1/extensions/%40t%2Fa@2026.05.05.1/checksum (after 3 attempts) (injected fault)",
            served.url
        )
    );
    assert_eq!(served.seen("/checksum").len(), 3);
    served.stop().await;
}

#[tokio::test]
async fn fault_budgets_count_since_start_and_bad_rules_are_ignored() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"one");
    served.write(
        "_faults.json",
        r#"[{"match":"/latest","status":502,"times":1}]"#,
    );
    let once = client(ClientConfig {
        attempts: 1,
        ..fast_config()
    });
    let a = name("@t/a");
    let error = once.latest(&served.url, &a).await.unwrap_err();
    assert!(error.message.contains("HTTP 502"), "{error}");
    assert!(error.message.contains("after 1 attempt"), "{error}");
    assert_eq!(
        once.latest(&served.url, &a).await.unwrap(),
        Some(version(V1))
    );

    served.write("_faults.json", r#"[{"match":"/latest","status":"#);
    assert_eq!(
        once.latest(&served.url, &a).await.unwrap(),
        Some(version(V1))
    );
    served.stop().await;
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let served = Served::start().await;
    served.publish("@t/a", V1, b"one");
    served.write("_faults.json", r#"[{"match":"/latest","delayMs":300}]"#);
    let impatient = client(ClientConfig {
        attempts: 2,
        request_timeout: std::time::Duration::from_millis(50),
        ..fast_config()
    });
    let error = impatient
        .latest(&served.url, &name("@t/a"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert_eq!(
        error.message,
        format!(
            "could not reach registry {}: no complete answer within 50 ms (after 2 attempts)",
            served.url
        )
    );
    served.stop().await;
}

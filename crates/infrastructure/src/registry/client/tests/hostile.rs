//! The client against raw TCP servers that misbehave on purpose: silence, lies about
//! sizes, endless bodies, redirect loops, HTML, odd statuses, bad JSON.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use fen_domain::ports::{NoProgress, RegistryClient, RegistryErrorCode, RegistryUrl};

use super::support::{
    client, fast_config, header, name, raw, target, version, Hostile, Recorded, Script,
};
use crate::registry::client::ClientConfig;

const V1: &str = "2026.05.05.1";

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = Hostile::start(|_, _| Script::Silent).await;
    let registry = client(ClientConfig {
        request_timeout: Duration::from_millis(100),
        ..fast_config()
    });
    let error = registry
        .metadata(&server.url(), &name("@s/n"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert_eq!(
        error.message,
        format!(
            "could not reach registry {}: no complete answer within 100 ms (after 3 attempts)",
            server.base
        )
    );
    assert_eq!(server.heads().len(), 3);
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = RegistryUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let error = client(fast_config())
        .download(&url, &name("@t/a"), &version(V1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert!(
        error.message.starts_with(&format!(
            "could not reach registry {url}: connection failed"
        )),
        "{error}"
    );
    assert!(error.message.ends_with("(after 3 attempts)"), "{error}");
}

#[tokio::test]
async fn a_declared_oversize_archive_fails_before_reading() {
    // The head promises 40 MB and no body follows: only the header can end this fast.
    let server = Hostile::start(|_, _| {
        Script::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 40000000\r\n\r\n".to_vec())
    })
    .await;
    let started = Instant::now();
    let progress = Recorded::default();
    let error = client(fast_config())
        .download(&server.url(), &name("@s/n"), &version(V1), &progress)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(error.code, RegistryErrorCode::TooLarge);
    assert_eq!(
        error.message,
        "archive for @s/n@2026.05.05.1 exceeds the 32 MiB limit (40000000 > 33554432); nothing was installed"
    );
    assert!(progress.started.lock().unwrap().is_empty());
    assert_eq!(server.heads().len(), 1, "not retried");
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    let server = Hostile::start(|_, _| {
        Script::Endless("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into())
    })
    .await;
    let registry = client(ClientConfig {
        max_archive_bytes: 256 * 1024,
        ..fast_config()
    });
    let progress = Recorded::default();
    let error = registry
        .download(&server.url(), &name("@s/n"), &version(V1), &progress)
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::TooLarge);
    assert!(
        error
            .message
            .starts_with("archive for @s/n@2026.05.05.1 exceeds the 262144 bytes limit ("),
        "{error}"
    );
    assert!(
        error.message.ends_with(" > 262144); nothing was installed"),
        "{error}"
    );
    assert_eq!(*progress.started.lock().unwrap(), [None]);
    assert!(*progress.advanced.lock().unwrap() <= 256 * 1024);
}

#[tokio::test]
async fn oversize_json_is_a_protocol_error() {
    let server = Hostile::start(|_, _| {
        Script::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n{".to_vec())
    })
    .await;
    let error = client(fast_config())
        .metadata(&server.url(), &name("@s/n"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Protocol);
    assert!(
        error.message.ends_with(
            "sent an invalid response for /api/v1/extensions/%40s%2Fn: the JSON response exceeds the 1 MiB limit (2000000 > 1048576)"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn a_short_body_is_retried_then_reported() {
    let server = Hostile::start(|_, _| {
        Script::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten!!".to_vec())
    })
    .await;
    let error = client(fast_config())
        .download(&server.url(), &name("@s/n"), &version(V1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert!(error.message.contains("was cut short"), "{error}");
    assert!(error.message.ends_with("(after 3 attempts)"), "{error}");
    assert_eq!(server.heads().len(), 3);
}

#[tokio::test]
async fn a_redirect_loop_stops_after_five_hops() {
    let server = Hostile::start(|index, _| {
        let location = format!("/hop/{index}");
        raw("302 Found", &[("Location", &location)], "")
    })
    .await;
    let error = client(fast_config())
        .download(&server.url(), &name("@s/n"), &version(V1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Protocol);
    assert_eq!(
        error.message,
        format!(
            "registry {} sent an invalid response for /hop/4: more than 5 redirects",
            server.base
        )
    );
    let targets: Vec<String> = server
        .heads()
        .iter()
        .map(|h| target(h).to_owned())
        .collect();
    assert_eq!(
        targets,
        [
            "/api/v1/extensions/%40s%2Fn@2026.05.05.1/download",
            "/hop/0",
            "/hop/1",
            "/hop/2",
            "/hop/3",
            "/hop/4",
        ]
    );
}

#[tokio::test]
async fn redirects_are_protocol_errors_outside_downloads() {
    let server = Hostile::start(|_, _| raw("301 Moved", &[("Location", "/x")], "")).await;
    let error = client(fast_config())
        .latest(&server.url(), &name("@s/n"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Protocol);
    assert!(
        error.message.ends_with("unexpected redirect (HTTP 301)"),
        "{error}"
    );
}

#[tokio::test]
async fn html_is_named_as_html() {
    let server = Hostile::start(|index, _| {
        if index == 0 {
            raw("200 OK", &[("Content-Type", "text/html")], "{}")
        } else {
            raw("200 OK", &[], "<!doctype html><p>sign in</p>")
        }
    })
    .await;
    let registry = client(fast_config());
    for _ in 0..2 {
        let error = registry
            .metadata(&server.url(), &name("@s/n"))
            .await
            .unwrap_err();
        assert_eq!(error.code, RegistryErrorCode::Protocol);
        assert_eq!(
            error.message,
            format!(
                "registry {} sent an invalid response for /api/v1/extensions/%40s%2Fn: the registry returned an HTML page instead of JSON",
                server.base
            )
        );
    }
}

#[tokio::test]
async fn statuses_map_to_codes() {
    let server = Hostile::start(|_, head| {
        let target = target(head);
        if target.contains("%40s%2Fmissing") {
            raw("404 Not Found", &[], r#"{"error":"nope\nreally"}"#)
        } else if target.contains("%40s%2Fgone") {
            raw("410 Gone", &[], "")
        } else if target.contains("%40s%2Flocked") {
            raw("401 Unauthorized", &[], r#"{"error":"token expired"}"#)
        } else if target.contains("%40s%2Fforbidden") {
            raw("403 Forbidden", &[], "")
        } else {
            raw("418 I'm a teapot", &[], "")
        }
    })
    .await;
    let registry = client(fast_config());
    let url = server.url();
    let base = &server.base;

    let error = registry
        .metadata(&url, &name("@s/missing"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotFound);
    assert_eq!(
        error.message,
        format!("extension @s/missing not found in registry {base} (nope really)")
    );

    let error = registry
        .download(&url, &name("@s/gone"), &version(V1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotFound);
    assert_eq!(
        error.message,
        format!("extension @s/gone@2026.05.05.1 was removed from the registry {base}")
    );
    let error = registry.latest(&url, &name("@s/gone")).await.unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotFound);

    let error = registry.latest(&url, &name("@s/locked")).await.unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Auth);
    assert_eq!(
        error.message,
        format!("registry {base} refused access (HTTP 401) (token expired)")
    );
    assert_eq!(
        error.hint.as_deref(),
        Some("set FEN_REGISTRY_TOKEN if it requires authentication")
    );
    let error = registry
        .checksum(&url, &name("@s/forbidden"), &version(V1))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Auth);
    assert_eq!(
        error.message,
        format!("registry {base} refused access (HTTP 403)")
    );

    let before = server.heads().len();
    let error = registry
        .metadata(&url, &name("@s/teapot"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert_eq!(
        error.message,
        format!(
            "registry {base} answered HTTP 418 for /api/v1/extensions/%40s%2Fteapot (after 1 attempt)"
        )
    );
    assert_eq!(server.heads().len(), before + 1, "no retry");
}

#[tokio::test]
async fn bad_json_bodies_are_protocol_errors() {
    let server = Hostile::start(|_, head| {
        let target = target(head);
        if target.ends_with("/latest") {
            raw("200 OK", &[], r#"{"latestVersion":"1.2.3","extra":true}"#)
        } else if target.ends_with("/checksum") {
            raw("200 OK", &[], r#"{"algorithm":"sha256","checksum":"xyz"}"#)
        } else {
            raw("200 OK", &[], "{not json")
        }
    })
    .await;
    let registry = client(fast_config());
    let url = server.url();
    let check = |error: fen_domain::ports::RegistryError, detail: &str| {
        assert_eq!(error.code, RegistryErrorCode::Protocol);
        assert!(error.message.contains(detail), "{error}");
    };
    check(
        registry.metadata(&url, &name("@s/n")).await.unwrap_err(),
        ": invalid JSON: ",
    );
    check(
        registry.latest(&url, &name("@s/n")).await.unwrap_err(),
        "/latest: latestVersion \"1.2.3\" is not a CalVer version",
    );
    check(
        registry
            .checksum(&url, &name("@s/n"), &version(V1))
            .await
            .unwrap_err(),
        "/checksum: checksum \"xyz\" is not 64 hex digits",
    );
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_ten_seconds() {
    let server = Hostile::start(|index, head| {
        if target(head).contains("%40s%2Flong") {
            raw("429 Too Many Requests", &[("Retry-After", "30")], "")
        } else if index % 2 == 0 {
            raw("503 Service Unavailable", &[("Retry-After", "1")], "")
        } else {
            raw("200 OK", &[], r#"{"latestVersion":"2026.05.05.1"}"#)
        }
    })
    .await;
    let registry = client(fast_config());
    let started = Instant::now();
    let latest = registry.latest(&server.url(), &name("@s/n")).await.unwrap();
    assert_eq!(latest, Some(version(V1)));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let before = server.heads().len();
    let error = registry
        .latest(&server.url(), &name("@s/long"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::Unavailable);
    assert!(error.message.contains("HTTP 429"), "{error}");
    assert!(error.message.ends_with("(after 1 attempt)"), "{error}");
    assert_eq!(server.heads().len(), before + 1);
}

#[tokio::test]
async fn headers_and_the_token_go_to_the_base_origin_only() {
    let elsewhere = Hostile::start(|_, _| raw("200 OK", &[], "archive")).await;
    let target_url = format!("{}/cdn/archive.tar.gz", elsewhere.base);
    let origin = Hostile::start(move |_, head| {
        if target(head).ends_with("/download") {
            raw(
                "307 Temporary Redirect",
                &[("Location", "/same/origin")],
                "",
            )
        } else if target(head) == "/same/origin" {
            raw("302 Found", &[("Location", &target_url)], "")
        } else {
            raw("200 OK", &[], r#"{"name":"@s/n","latestVersion":null}"#)
        }
    })
    .await;
    let registry = client(ClientConfig {
        token: Some("sekrit".to_owned()),
        ..fast_config()
    });
    let meta = registry
        .metadata(&origin.url(), &name("@s/n"))
        .await
        .unwrap();
    assert_eq!(meta.latest_version, None);
    let bytes = registry
        .download(&origin.url(), &name("@s/n"), &version(V1), &NoProgress)
        .await
        .unwrap();
    assert_eq!(bytes, b"archive");

    let heads = origin.heads();
    assert_eq!(heads.len(), 3);
    for head in &heads {
        assert_eq!(
            header(head, "authorization"),
            Some("Bearer sekrit"),
            "{head}"
        );
        assert_eq!(
            header(head, "user-agent"),
            Some(concat!("fen/", env!("CARGO_PKG_VERSION")))
        );
    }
    assert_eq!(header(&heads[0], "accept"), Some("application/json"));
    assert_eq!(header(&heads[1], "accept"), Some("*/*"));
    let elsewhere_heads = elsewhere.heads();
    assert_eq!(elsewhere_heads.len(), 1);
    assert_eq!(target(&elsewhere_heads[0]), "/cdn/archive.tar.gz");
    assert_eq!(header(&elsewhere_heads[0], "authorization"), None);
}

#[tokio::test]
async fn a_path_prefix_is_kept() {
    let server =
        Hostile::start(|_, _| raw("200 OK", &[], r#"{"latestVersion":"2026.05.05.1"}"#)).await;
    let url = RegistryUrl::parse(&format!("{}/reg/", server.base)).unwrap();
    client(fast_config())
        .latest(&url, &name("@s/n"))
        .await
        .unwrap();
    assert_eq!(
        target(&server.heads()[0]),
        "/reg/api/v1/extensions/%40s%2Fn/latest"
    );
}

#[tokio::test]
async fn a_base_url_that_is_no_url_is_a_configuration_error() {
    let url = RegistryUrl::parse("http://127.0.0.1:99999").unwrap();
    let error = client(fast_config())
        .latest(&url, &name("@s/n"))
        .await
        .unwrap_err();
    assert_eq!(error.code, RegistryErrorCode::NotConfigured);
    assert!(
        error
            .message
            .starts_with("registry URL http://127.0.0.1:99999 is not a valid URL"),
        "{error}"
    );
}

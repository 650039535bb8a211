//! Unit tests of `Permissions`: the refusals of spec 40 §2 and §7 scenario 24, the parser
//! differentials of issue 16, coverage, and the address classification. The property tests
//! are in `proptests.rs`.

use serde_json::{json, Value};
use url::Url;

use super::*;

pub(super) fn net(entries: &[&str]) -> Result<Permissions, PermissionsError> {
    Permissions::from_json(&json!({ "net": entries }))
}

fn refused(entry: &str) -> PermissionsError {
    match net(&[entry]) {
        Ok(p) => panic!("{entry} was accepted as {:?}", p.to_json()),
        Err(e) => e,
    }
}

/// `entry` is refused, the message names it and contains `needle`.
fn check_refused(entry: &str, needle: &str) {
    let message = refused(entry).to_string();
    assert!(message.contains(&format!("`{entry}`")), "{message}");
    assert!(
        message.contains(needle),
        "{entry}: {message} lacks {needle}"
    );
}

/// `entry` is refused as not canonical, with `canonical` in the hint.
fn check_canonical(entry: &str, canonical: &str) {
    let error = refused(entry);
    assert_eq!(error.canonical(), Some(canonical), "{entry}: {error}");
    assert!(error.to_string().contains(canonical), "{error}");
}

fn check_accepted(entry: &str, canonical: &str) {
    let p = net(&[entry]).unwrap_or_else(|e| panic!("{entry}: {e}"));
    assert_eq!(p.to_json(), json!({ "net": [canonical] }), "{entry}");
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn covers_url(entries: &[&str], target: &str) -> bool {
    net(entries)
        .unwrap_or_else(|e| panic!("{e}"))
        .covers_url(&url(target))
}

#[test]
fn spec_example_parses_to_its_canonical_form() {
    let p = Permissions::from_json(&json!({
        "net": ["https://api.github.com", "https://*.amazonaws.com", "http://127.0.0.1:8200"],
        "env": ["AWS_REGION", "AWS_PROFILE"],
        "secrets": ["github-token", "team:db/*"],
    }))
    .expect("the spec's example is valid");
    assert_eq!(
        p.to_json(),
        json!({
            "net": ["http://127.0.0.1:8200", "https://api.github.com", "https://*.amazonaws.com"],
            "env": ["AWS_PROFILE", "AWS_REGION"],
            "secrets": ["github-token", "team:db/*"],
        })
    );
    assert_eq!(Permissions::from_json(&p.to_json()), Ok(p));
}

#[test]
fn absent_and_empty_are_none() {
    assert_eq!(
        Permissions::from_json(&Value::Null),
        Ok(Permissions::none())
    );
    assert_eq!(Permissions::from_json(&json!({})), Ok(Permissions::none()));
    assert_eq!(Permissions::none().to_json(), json!({}));
}

#[test]
fn accepted_forms() {
    check_accepted("https://api.github.com", "https://api.github.com");
    check_accepted("https://api.github.com/", "https://api.github.com");
    check_accepted("https://api.github.com:8443", "https://api.github.com:8443");
    check_accepted("https://api.github.com:*", "https://api.github.com:*");
    check_accepted("http://localhost:8080", "http://localhost:8080");
    check_accepted("http://[::1]:8200", "http://[::1]:8200");
    check_accepted("http://[::1]", "http://[::1]");
    check_accepted("http://*.example.test:8080", "http://*.example.test:8080");
    check_accepted("https://*.api.github.com", "https://*.api.github.com");
    check_accepted("https://8.8.8.8:*", "https://8.8.8.8:*");
    // An xn-- name is a name of its own: accepted as written, covers only itself.
    check_accepted("https://xn--gthub-zsa.com", "https://xn--gthub-zsa.com");
}

#[test]
fn scenario_24_refused_entries() {
    check_canonical("http://0177.0.0.1", "http://127.0.0.1");
    check_canonical("http://2130706433", "http://127.0.0.1");
    check_refused("http://127.0.0.1:*", "port `*`");
    check_refused("https://*.com", "fewer than two labels");
    check_refused("https://*.github.io", "public suffix `github.io`");
    check_refused("https://*.co.uk", "public suffix `co.uk`");
    check_refused(
        "https://*.s3.amazonaws.com",
        "public suffix `s3.amazonaws.com`",
    );
    check_refused("https://a.*.example.com", "not the first label");
    check_canonical("HTTPS://API.X.COM", "https://api.x.com");
    let many: Vec<String> = (0..65)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    let error = Permissions::from_json(&json!({ "net": many })).expect_err("65 entries");
    assert_eq!(
        error,
        PermissionsError::TooMany {
            list: "net",
            count: 65
        }
    );
    assert!(error.to_string().contains("at most 64"), "{error}");
    let exactly: Vec<String> = (0..64)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    assert_eq!(
        Permissions::from_json(&json!({ "net": exactly })).map(|p| p.net().len()),
        Ok(64)
    );
    let error = Permissions::from_json(&json!({ "net": [], "fs": ["/"] })).expect_err("unknown");
    assert_eq!(error, PermissionsError::UnknownKey("fs".into()));
    assert!(error.to_string().contains("`fs`"), "{error}");
    let error = Permissions::from_json(&json!({ "secrets": ["team:db/../x"] })).expect_err("..");
    assert!(error.to_string().contains("`team:db/../x`"), "{error}");
}

#[test]
fn parser_differentials_of_issue_16() {
    // Shorthand and numeric IPv4 forms: the WHATWG parser reads them as 127.0.0.1.
    check_canonical("http://127.1/", "http://127.0.0.1");
    check_canonical("http://0x7f.1/", "http://127.0.0.1");
    check_canonical("http://2130706433/", "http://127.0.0.1");
    // IPv6 literals are serialised compressed; the mapped form is its own canonical text.
    check_canonical("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]");
    check_accepted("http://[::ffff:7f00:1]/", "http://[::ffff:7f00:1]");
    check_canonical("http://[0:0:0:0:0:0:0:1]", "http://[::1]");
    check_accepted("http://[::1]/", "http://[::1]");
    // Trailing dots survive parsing and are refused as host names.
    check_refused("http://localhost./", "invalid host name `localhost.`");
    check_refused("https://api.github.com.", "invalid host name");
    check_refused("https://*.example.com.", "invalid host name");
    // Case and percent-encoding are normalised by the parser, so refused with the hint.
    check_canonical("https://Api.GitHub.com", "https://api.github.com");
    check_canonical("Https://api.github.com", "https://api.github.com");
    check_canonical("https://ex%61mple.com", "https://example.com");
    check_canonical("https://%65xample.com/", "https://example.com");
    // Unicode hosts become their xn-- form in the hint.
    check_canonical("https://gíthub.com", "https://xn--gthub-zsa.com");
    check_canonical("https://*.gíthub.com", "https://*.xn--gthub-zsa.com");
    // A non-canonical form whose canonical text breaks another rule reports that rule.
    check_refused("HTTPS://*.CO.UK", "public suffix `co.uk`");
    check_refused("http://127.1:*", "port `*`");
    check_refused("http://[::ffff:127.0.0.1]:*", "port `*`");
    check_refused("http://LOCALHOST:*", "port `*`");
    // Default ports are dropped by the serialiser.
    check_canonical("https://api.github.com:443", "https://api.github.com");
    check_canonical("http://api.github.com:80/", "http://api.github.com");
}

#[test]
fn idna_lookalike_is_not_covered_by_the_plain_name() {
    assert!(covers_url(&["https://github.com"], "https://github.com/x"));
    assert!(!covers_url(&["https://github.com"], "https://gíthub.com/x"));
    assert!(!covers_url(
        &["https://github.com"],
        "https://xn--gthub-zsa.com/x"
    ));
    assert!(!covers_url(
        &["https://*.github.com"],
        "https://api.gíthub.com/"
    ));
    // The request is judged on its serialised form, so the lookalike entry covers it.
    assert!(covers_url(
        &["https://xn--gthub-zsa.com"],
        "https://gíthub.com/x"
    ));
}

#[test]
fn other_refusals() {
    check_refused("ftp://example.com", "scheme `ftp`");
    check_refused("file:///etc/passwd", "scheme `file`");
    check_refused("https://user:pw@example.com", "userinfo");
    check_refused("https://user@example.com", "userinfo");
    check_refused("https://example.com/path", "path, query or fragment");
    check_refused("https://example.com/?q=1", "path, query or fragment");
    check_refused("https://example.com/#f", "path, query or fragment");
    check_refused("https://example.com:0", "port 0");
    check_refused("https://example.com:65536", "is not a URL");
    check_refused("example.com", "is not a URL");
    check_refused("http://localhost:*", "port `*`");
    check_refused("http://[::1]:*", "port `*`");
    check_refused("http://10.0.0.1:*", "port `*`");
    check_refused("http://[::ffff:7f00:1]:*", "port `*`");
    check_refused("https://*.0.1", "numeric");
    check_refused("https://*.example.0x1f", "numeric");
    check_refused("https://*.*.example.com", "not the first label");
    check_refused("https://*example.com", "not the first label");
    check_refused("https://api.*", "not the first label");
    check_refused("https://*", "not the first label");
    check_refused("https://*.localhost", "fewer than two labels");
    check_refused("https://ex_ample.com:*x", "is not a URL");
    let error = Permissions::from_json(&json!(["https://x.com"])).expect_err("list");
    assert_eq!(error, PermissionsError::NotAMapping);
    let error = Permissions::from_json(&json!({ "net": "https://x.com" })).expect_err("string");
    assert_eq!(error, PermissionsError::NotAList { list: "net" });
    let error = Permissions::from_json(&json!({ "env": [1] })).expect_err("number");
    assert_eq!(error, PermissionsError::NotAList { list: "env" });
}

#[test]
fn env_rules() {
    let env = |names: Value| Permissions::from_json(&json!({ "env": names }));
    assert_eq!(
        env(json!(["AWS_REGION", "_X", "A1", "AWS_REGION"])).map(|p| p.to_json()),
        Ok(json!({ "env": ["A1", "AWS_REGION", "_X"] }))
    );
    for bad in ["aws_region", "1A", "A-B", "", "A B", "É"] {
        let error = env(json!([bad])).expect_err(bad);
        assert!(
            error.to_string().contains("is not a variable name"),
            "{error}"
        );
    }
    let error = env(json!(["FEN_REGISTRY_TOKEN"])).expect_err("FEN_");
    assert!(
        error
            .to_string()
            .contains("`FEN_REGISTRY_TOKEN` starts with FEN_"),
        "{error}"
    );
    assert!(env(json!(["FENX"])).is_ok());
    let many: Vec<String> = (0..65).map(|i| format!("V{i}")).collect();
    assert_eq!(
        env(json!(many)),
        Err(PermissionsError::TooMany {
            list: "env",
            count: 65
        })
    );
}

#[test]
fn secret_rules() {
    let secrets = |refs: Value| Permissions::from_json(&json!({ "secrets": refs }));
    assert_eq!(
        secrets(json!(["team:db/*", "github-token", "a.b_c-d/e", "0:x"])).map(|p| p.to_json()),
        Ok(json!({ "secrets": ["a.b_c-d/e", "github-token", "0:x", "team:db/*"] }))
    );
    for (bad, rule) in [
        ("team:db/../x", "`..`"),
        ("db//x", "empty"),
        ("db/", "empty"),
        ("/db", "empty"),
        ("./x", "`.`"),
        ("Team:x", "vault name"),
        ("-team:x", "vault name"),
        (":x", "vault name"),
        ("team:", "empty"),
        ("*", "invalid key"),
        ("db/*/x", "invalid key"),
        ("db/x*", "invalid key"),
        ("DB", "invalid key"),
        ("a:b:c", "invalid key"),
        ("-x", "invalid key"),
    ] {
        let error = secrets(json!([bad])).expect_err(bad);
        let message = error.to_string();
        assert!(message.contains(&format!("`{bad}`")), "{message}");
        assert!(message.contains(rule), "{bad}: {message}");
    }
}

#[test]
fn net_coverage() {
    let wildcard = &["http://*.example.test:8080"];
    assert!(covers_url(wildcard, "http://api.example.test:8080/x?y"));
    assert!(covers_url(wildcard, "http://a.b.example.test:8080/"));
    assert!(!covers_url(wildcard, "http://example.test:8080/"));
    assert!(!covers_url(wildcard, "http://evilexample.test:8080/"));
    assert!(!covers_url(wildcard, "http://api.example.test/"));
    assert!(!covers_url(wildcard, "https://api.example.test:8080/"));
    assert!(!covers_url(wildcard, "http://api.example.test.:8080/"));
    let plain = &["https://api.github.com"];
    assert!(covers_url(plain, "https://api.github.com/repos"));
    assert!(covers_url(plain, "https://API.github.com:443/repos"));
    assert!(!covers_url(plain, "https://api.github.com:8443/"));
    assert!(!covers_url(plain, "http://api.github.com/"));
    assert!(!covers_url(plain, "https://x.api.github.com/"));
    assert!(!covers_url(plain, "https://api.github.com./"));
    assert!(!covers_url(plain, "https://user@api.github.com/"));
    assert!(!covers_url(plain, "ftp://api.github.com/"));
    let any_port = &["https://api.github.com:*"];
    assert!(covers_url(any_port, "https://api.github.com:8443/"));
    assert!(covers_url(any_port, "https://api.github.com/"));
    // Literals: the request's address forms are normalised before the comparison.
    let loopback = &["http://127.0.0.1:8200", "http://[::1]:8200"];
    assert!(covers_url(loopback, "http://127.1:8200/"));
    assert!(covers_url(loopback, "http://2130706433:8200/"));
    assert!(covers_url(loopback, "http://0x7f.1:8200/"));
    assert!(covers_url(loopback, "http://[0::1]:8200/"));
    assert!(!covers_url(loopback, "http://[::ffff:127.0.0.1]:8200/"));
    assert!(!covers_url(loopback, "http://localhost:8200/"));
    assert!(!covers_url(&["http://localhost"], "http://localhost./"));
    // A request host containing `*` is never matched by a wildcard.
    assert!(!covers_url(
        &["https://*.example.com"],
        "https://*.example.com/"
    ));

    let set = |entries: &[&str]| net(entries).expect("valid");
    let wide = set(&["https://*.example.com:*"]);
    assert!(wide.covers(&set(&[
        "https://*.a.example.com",
        "https://b.example.com:9"
    ])));
    assert!(wide.covers(&set(&["https://*.example.com"])));
    assert!(!wide.covers(&set(&["https://example.com"])));
    assert!(!wide.covers(&set(&["http://a.example.com"])));
    assert!(!set(&["https://*.example.com"]).covers(&set(&["https://a.example.com:*"])));
    assert!(!set(&["https://a.example.com"]).covers(&set(&["https://*.example.com"])));
}

#[test]
fn added_lists_what_is_missing() {
    let granted = Permissions::from_json(&json!({
        "net": ["https://*.example.com"], "env": ["A"], "secrets": ["team:db/*"],
    }))
    .expect("valid");
    let declared = Permissions::from_json(&json!({
        "net": ["https://api.example.com", "https://other.com"],
        "env": ["A", "B"],
        "secrets": ["team:db/x", "team:db/y/*", "db/x", "team:dbx"],
    }))
    .expect("valid");
    assert_eq!(
        granted.added(&declared).to_json(),
        json!({ "net": ["https://other.com"], "env": ["B"], "secrets": ["db/x", "team:dbx"] })
    );
    assert!(!granted.covers(&declared));
    assert!(declared.added(&Permissions::none()).is_empty());
}

#[test]
fn env_and_secret_checks() {
    let p = Permissions::from_json(&json!({
        "env": ["AWS_REGION"], "secrets": ["github-token", "team:db/*"],
    }))
    .expect("valid");
    assert!(p.covers_env("AWS_REGION"));
    assert!(!p.covers_env("AWS_PROFILE"));
    assert!(!p.covers_env("aws_region"));
    assert!(p.covers_secret("env", "env", "github-token"));
    assert!(p.covers_secret("team", "team", "github-token"));
    assert!(!p.covers_secret("env", "team", "github-token"));
    assert!(p.covers_secret("env", "team", "db/x"));
    assert!(p.covers_secret("env", "team", "db/x/y"));
    assert!(!p.covers_secret("env", "team", "db"));
    assert!(!p.covers_secret("env", "team", "dbx"));
    assert!(!p.covers_secret("env", "env", "db/x"));
}

#[test]
fn public_addresses() {
    let public = |text: &str| is_public_address(text.parse().expect("an address"));
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2002:808:808::1",
        "64:ff9b::808:808",
    ] {
        assert!(public(addr), "{addr}");
    }
    for addr in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "fc00::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
    ] {
        assert!(!public(addr), "{addr}");
    }
}

//! Output channels and the error envelope (spec 00 §6).

use crate::util::{fen, run, TempDir};

#[test]
fn usage_errors_exit_2_with_an_envelope_in_json_mode() {
    let tmp = TempDir::new();
    let human = run(tmp.path(), &["frobnicate"]);
    assert_eq!(human.code, 2);
    assert!(human.stdout.is_empty());
    assert!(human.stderr.starts_with("error: "), "{}", human.stderr);

    let json = run(tmp.path(), &["--json", "frobnicate"]);
    assert_eq!(json.code, 2);
    let doc = json.json();
    assert_eq!(doc["error"]["code"], "usage");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("frobnicate"));
    assert!(doc["error"]["hint"].is_string());
}

#[test]
fn help_and_version_are_not_errors() {
    let tmp = TempDir::new();
    for args in [
        &["--help"][..],
        &["--version"],
        &["--json", "--version"],
        &["init", "--help"],
    ] {
        let out = run(tmp.path(), args);
        assert_eq!(out.code, 0, "{args:?}");
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn bad_environment_is_exit_3() {
    let tmp = TempDir::new();
    for (var, value) in [
        ("FEN_LOCK_TIMEOUT_MS", "soon"),
        ("FEN_TEST_FAULT", "lock:acquired=explode"),
        ("FEN_LOG", "loud please"),
        ("FEN_BUNDLE_CACHE_BYTES", "16MB"),
        ("FEN_BUNDLE_CACHE_ENTRIES", "0"),
    ] {
        let out = fen(tmp.path())
            .env(var, value)
            .args(["--json", "init"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{var}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["error"]["code"], "invalid_environment");
        assert!(doc["error"]["message"].as_str().unwrap().contains(var));
        assert!(!tmp.path().join(".fen").exists(), "nothing is written");
    }
}

#[test]
fn fen_log_traces_to_stderr_and_keeps_stdout_one_document() {
    let tmp = TempDir::new();
    assert_eq!(run(tmp.path(), &["init"]).code, 0);
    let quiet = run(tmp.path(), &["--json", "model", "type", "search"]);
    assert_eq!(quiet.code, 0);
    assert!(
        !quiet.stderr.contains("DEBUG"),
        "FEN_LOG is off by default: {}",
        quiet.stderr
    );
    let out: crate::util::Run = fen(tmp.path())
        .env("FEN_LOG", "debug")
        .args(["--json", "model", "type", "search"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["types"], serde_json::json!([]));
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("DEBUG") && l.contains("index ready")),
        "{}",
        out.stderr
    );
}

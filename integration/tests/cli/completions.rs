//! `fen completions SHELL` and `fen --version` (issue 13).

use std::process::Command;

use crate::util::{run, TempDir};

#[test]
fn every_shell_gets_a_non_empty_script_naming_the_commands() {
    let dir = TempDir::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("extension"), "{shell}: {}", out.stdout);
        assert!(out.stdout.contains("why"), "{shell}");
    }
}

#[test]
fn the_bash_script_parses() {
    let dir = TempDir::new();
    let out = run(dir.path(), &["completions", "bash"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let script = dir.path().join("fen.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let dir = TempDir::new();
    let out = run(dir.path(), &["--json", "completions", "tcsh"]);
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["error"]["code"], "usage");
}

#[test]
fn version_names_the_catalog_schema_and_the_bundle_layout() {
    let dir = TempDir::new();
    let out = run(dir.path(), &["--version"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_eq!(lines[0], format!("fen {}", env!("CARGO_PKG_VERSION")));
    let schema: i64 = lines[1]
        .strip_prefix("catalog schema ")
        .unwrap_or_else(|| panic!("{}", out.stdout))
        .parse()
        .unwrap();
    assert!(schema >= 3, "{schema}");
    assert_eq!(lines[2], "bundle layout fen-bundle-1");

    for args in [["--json", "--version"], ["--version", "--json"]] {
        let out = run(dir.path(), &args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let doc = out.json();
        assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(doc["catalogSchemaVersion"], schema);
        assert_eq!(doc["bundleLayoutVersion"], "fen-bundle-1");
    }
}

//! `fen init` (spec 10 §1.13 and issue #2).

use crate::util::{run, TempDir};

const KIND_DIRS: [&str; 5] = ["models", "vaults", "drivers", "datastores", "reports"];

#[test]
fn creates_the_marker_catalog_and_kind_dirs() {
    let tmp = TempDir::new();
    let repo = tmp.path().join("new/deep/repo");
    let out = run(tmp.path(), &["init", repo.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Initialized fen repository in {}", repo.display())
    );
    assert!(repo.join(".fen").is_dir());
    assert!(repo.join(".fen/_extension_catalog.db").is_file());
    for dir in KIND_DIRS {
        assert!(repo.join("extensions").join(dir).is_dir(), "{dir}");
    }
}

#[test]
fn second_run_is_harmless() {
    let tmp = TempDir::new();
    let repo = tmp.path();
    assert_eq!(run(repo, &["init"]).code, 0);
    std::fs::write(
        repo.join("extensions/models/keep.ts"),
        "export const model = {};",
    )
    .unwrap();
    let again = run(repo, &["init", "--json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let json = again.json();
    assert_eq!(json["created"], false);
    assert_eq!(json["root"], repo.to_str().unwrap());
    assert!(repo.join("extensions/models/keep.ts").is_file());
    let human = run(repo, &["init"]);
    assert_eq!(
        human.stdout.trim(),
        format!("already a fen repository: {}", repo.display())
    );
}

#[test]
fn json_output_on_creation() {
    let tmp = TempDir::new();
    let out = run(tmp.path(), &["--json", "init", "r"]);
    assert_eq!(out.code, 0);
    let json = out.json();
    assert_eq!(json["created"], true);
    assert_eq!(json["root"], tmp.path().join("r").to_str().unwrap());
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn refuses_inside_another_repository() {
    let tmp = TempDir::new();
    assert_eq!(run(tmp.path(), &["init"]).code, 0);
    let inner = tmp.path().join("sub/dir");
    let out = run(tmp.path(), &["init", inner.to_str().unwrap()]);
    assert_eq!(out.code, 3);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(lines[0].starts_with("error: ") && lines[0].contains(tmp.path().to_str().unwrap()));
    assert!(lines[1].starts_with("hint: "));
    assert!(!inner.join(".fen").exists(), "nothing is written");

    let json = run(tmp.path(), &["init", inner.to_str().unwrap(), "--json"]);
    assert_eq!(json.code, 3);
    assert_eq!(json.json()["error"]["code"], "invalid_input");

    let nested = run(tmp.path(), &["init", inner.to_str().unwrap(), "--nested"]);
    assert_eq!(nested.code, 0, "{}", nested.stderr);
    assert!(inner.join(".fen").is_dir());
}

#[test]
fn a_file_in_the_way_is_an_io_error() {
    let tmp = TempDir::new();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = run(tmp.path(), &["--json", "init", file.to_str().unwrap()]);
    assert_eq!(out.code, 3);
    assert_eq!(out.json()["error"]["code"], "io");
}

#[test]
fn repo_dir_flag_and_env_pick_the_directory() {
    let tmp = TempDir::new();
    let by_flag = tmp.path().join("by-flag");
    let out = run(
        tmp.path(),
        &["--repo-dir", by_flag.to_str().unwrap(), "init"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(by_flag.join(".fen").is_dir());

    let by_env = tmp.path().join("by-env");
    let out = crate::util::fen(tmp.path())
        .env("FEN_REPO_DIR", &by_env)
        .arg("init")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(by_env.join(".fen").is_dir());
}

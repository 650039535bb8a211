//! Colour (issue 13): escapes only on a terminal or with `CLICOLOR_FORCE`, never with
//! `NO_COLOR`, `--no-color` or `--json`, and never in a pipe by default.

use crate::fixture::Repo;
use crate::util::{fen, Run};

const ESC: char = '\u{1b}';

/// A repo with one indexed model and one failed source, so `extension list` shows
/// two states.
fn repo() -> Repo {
    let repo = Repo::new();
    repo.model("extensions/models/good.ts", "@me/good", "d");
    repo.write("extensions/models/bad.ts", "export const model = {,,};\n");
    repo.fen(&["extension", "list"]);
    repo
}

fn run(repo: &Repo, env: &[(&str, &str)], args: &[&str]) -> Run {
    fen(repo.root())
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn escapes(out: &Run) -> bool {
    out.stdout.contains(ESC) || out.stderr.contains(ESC)
}

#[test]
fn piped_output_has_no_escape_bytes() {
    let repo = repo();
    let list = run(&repo, &[], &["extension", "list"]);
    assert!(list.stdout.contains("Indexed"), "{}", list.stdout);
    assert!(!escapes(&list), "{:?}", list.stdout);
    let error = run(&repo, &[], &["extension", "why", "@me/nothing-like-it"]);
    assert!(error.stderr.starts_with("error: "), "{:?}", error.stderr);
    assert!(!escapes(&error));
}

#[test]
fn clicolor_force_colours_states_and_prefixes() {
    let repo = repo();
    let force = [("CLICOLOR_FORCE", "1")];
    let list = run(&repo, &force, &["extension", "list"]);
    assert!(
        list.stdout.contains("\u{1b}[32mIndexed"),
        "{:?}",
        list.stdout
    );
    assert!(
        list.stdout.contains("\u{1b}[1;31mBundleBuildFailed"),
        "{:?}",
        list.stdout
    );
    let error = run(&repo, &force, &["extension", "why", "@me/nothing-like-it"]);
    assert!(
        error.stderr.starts_with("\u{1b}[1;31merror:\u{1b}[0m "),
        "{:?}",
        error.stderr
    );
    // Colour never shifts the columns: without escapes the lines are the plain ones.
    let plain = run(&repo, &[], &["extension", "list"]);
    let stripped = list
        .stdout
        .replace("\u{1b}[32m", "")
        .replace("\u{1b}[1;31m", "")
        .replace("\u{1b}[0m", "");
    assert_eq!(stripped, plain.stdout);
}

#[test]
fn no_color_no_color_flag_and_json_beat_clicolor_force() {
    let repo = repo();
    for (env, flags) in [
        (vec![("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")], vec![]),
        (vec![("CLICOLOR_FORCE", "1")], vec!["--no-color"]),
        (vec![("CLICOLOR_FORCE", "1")], vec!["--json"]),
    ] {
        let mut args = flags.clone();
        args.extend(["extension", "list"]);
        let list = run(&repo, &env, &args);
        assert_eq!(list.code, 0, "{}", list.stderr);
        assert!(!escapes(&list), "{env:?} {flags:?}: {:?}", list.stdout);
        let mut args = flags.clone();
        args.extend(["extension", "why", "@me/nothing-like-it"]);
        let error = run(&repo, &env, &args);
        assert_eq!(error.code, 3);
        assert!(!escapes(&error), "{env:?} {flags:?}: {:?}", error.stderr);
    }
}

#[test]
fn an_empty_no_color_does_not_disable_forced_colour() {
    let repo = repo();
    let list = run(
        &repo,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")],
        &["extension", "list"],
    );
    assert!(escapes(&list), "{:?}", list.stdout);
}

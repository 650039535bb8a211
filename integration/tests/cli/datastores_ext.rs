//! Extension datastores through the binary (spec 30 §2.5, §2.8, §7.6, §9 scenarios
//! 31, 32 and 34, issue #10): the JS adapter's options and capability probe, and an
//! extension that throws, hangs, answers garbage, exceeds memory or reaches for files
//! outside `ctx.remote` — each fails naming the model and the datastore, keeps local
//! data and leaves no lock behind.

use std::path::Path;

use crate::datastores::record;
use crate::fixture::{ok, Repo};
use crate::models::{run_records, web_repo};
use crate::util::{Run, TempDir};

const TYPE: &str = "@fixture/recorder";

/// A datastore type that appends `<call> <opts as JSON or undefined>` to the remote
/// file `calls.log`; push copies every local file to the remote. `CAPS`, `PULL` and
/// `PUSH` are replaced by each test.
const RECORDER: &str = r#"import { defineDatastore } from "fen:sdk";

function note(ctx, what, opts) {
  const before = ctx.remote.readText("calls.log") ?? "";
  const shown = opts === undefined ? "undefined" : JSON.stringify(opts);
  ctx.remote.writeText("calls.log", before + what + " " + shown + "\n");
}

export const datastore = defineDatastore({
  type: "@fixture/recorder",
  description: "Records its calls and copies local files to the remote",
  configSchema: { type: "object", properties: { mode: { type: "string" } }, additionalProperties: false },
  CAPS
  pullChanged(opts, ctx) {
    note(ctx, "pull", opts);
    PULL
    return 0;
  },
  async pushChanged(opts, ctx) {
    note(ctx, "push", opts);
    PUSH
    ctx.remote.writeBytes("bin/probe", new Uint8Array([1, 2, 255]));
    const back = ctx.remote.readBytes("bin/probe");
    if (!(back instanceof Uint8Array) || back.length !== 3 || back[2] !== 255) throw new Error("bytes differ");
    if (ctx.local.readBytes("no/such/file") !== null) throw new Error("a missing file is not null");
    if (ctx.config.mode !== "test" || !Object.isFrozen(ctx.config)) throw new Error("config is not as set up");
    let n = 0;
    for (const file of ctx.local.list()) {
      ctx.copy(file.path, { from: "local" });
      n++;
    }
    return n;
  },
});
"#;

/// Scoped; throws (so the probe falls back, failing scenario 31) if its `ctx` has more
/// than `config` and `log`.
const SCOPED: &str = "capabilities(ctx) { if (ctx.local !== undefined || ctx.remainingMs !== undefined || ctx.config.mode !== \"test\") throw new Error(\"ctx has too much\"); ctx.log.info(\"probed\"); return { scopedSync: true }; },";

fn source(caps: &str, pull: &str, push: &str) -> String {
    RECORDER
        .replace("CAPS", caps)
        .replace("PULL", pull)
        .replace("PUSH", push)
}

/// Model `web` in a repo whose datastore is the recorder over `remote`, set up with
/// `--skip-push`; `calls.log` is emptied after the setup.
fn ext_repo(remote: &Path, datastore: &str) -> Repo {
    let repo = web_repo();
    repo.write("extensions/datastores/recorder.ts", datastore);
    repo.age_all();
    let setup = repo.fen(&[
        "datastore",
        "setup",
        "extension",
        TYPE,
        "--remote",
        remote.to_str().unwrap(),
        "--config",
        r#"{"mode":"test"}"#,
        "--skip-push",
    ]);
    assert_eq!(setup.code, 0, "{}", setup.stderr);
    let _ = std::fs::remove_file(remote.join("calls.log"));
    repo
}

/// A repo set up with a working recorder that ran `record` once (version 1), then
/// given `datastore` as the type's source; `calls.log` is emptied.
fn broken_repo(remote: &Path, datastore: &str) -> Repo {
    let repo = ext_repo(remote, &source(SCOPED, "", ""));
    ok(record(&repo, &[]));
    repo.write("extensions/datastores/recorder.ts", datastore);
    repo.age_all();
    let _ = std::fs::remove_file(remote.join("calls.log"));
    repo
}

/// Local data is as the first run left it: one run record, latest version 1.
fn local_data_kept(repo: &Repo) {
    assert_eq!(run_records(repo, "web").len(), 1);
    let latest = repo.read(".fen/data/web/resources/verdict/current/latest");
    assert_eq!(latest.trim(), "1");
}

fn calls(remote: &Path) -> Vec<String> {
    std::fs::read_to_string(remote.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn lock_files(remote: &Path) -> Vec<std::path::PathBuf> {
    crate::fixture::files_under(&remote.join(".fen-locks"))
}

/// The run failed with `code` and exit `exit`, naming the model and the datastore,
/// leaving no lock; returns the message.
fn failed(out: &Run, exit: i32, code: &str, remote: &Path) -> String {
    assert_eq!(out.code, exit, "{}", out.stderr);
    let error = &out.json()["error"];
    assert_eq!(error["code"], code, "{error}");
    let message = error["message"].as_str().unwrap().to_owned();
    assert!(message.contains("\"web\""), "{message}");
    assert!(message.contains(TYPE), "{message}");
    assert!(lock_files(remote).is_empty(), "{:?}", lock_files(remote));
    message
}

fn scoped_opts() -> String {
    r#"{"context":{"models":[{"name":"web","type":"@acme/net/endpoint"}]}}"#.to_owned()
}

#[test]
fn scenario_31_a_scoped_extension_gets_the_model_context_and_an_unscoped_one_undefined() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = ext_repo(&remote, &source(SCOPED, "", ""));
    let yaml = repo.read(".fen/datastore.yaml");
    assert!(yaml.contains(TYPE) && yaml.contains("mode"), "{yaml}");
    let out = ok(record(&repo, &[]));
    assert_eq!(
        calls(&remote),
        [
            format!("pull {}", scoped_opts()),
            format!("push {}", scoped_opts())
        ]
    );
    // Push copied the run's files into the remote; `capabilities` logged.
    let run_id = out.json()["runId"].as_str().unwrap().to_owned();
    assert!(remote.join(format!("web/runs/{run_id}.json")).is_file());
    assert_eq!(
        std::fs::read(remote.join("bin/probe")).unwrap(),
        [1, 2, 255]
    );
    assert!(out.stderr.contains("probed"), "{}", out.stderr);
    assert!(lock_files(&remote).is_empty());

    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = ext_repo(&remote, &source("", "", ""));
    ok(record(&repo, &[]));
    assert_eq!(calls(&remote), ["pull undefined", "push undefined"]);
}

#[test]
fn scenario_32_a_throwing_capabilities_probe_warns_once_and_syncs_unscoped() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = ext_repo(
        &remote,
        &source(
            "capabilities() { throw new Error(\"probe broke\"); },",
            "",
            "",
        ),
    );
    let out = ok(record(&repo, &[]));
    assert_eq!(calls(&remote), ["pull undefined", "push undefined"]);
    let warnings: Vec<_> = out
        .stderr
        .lines()
        .filter(|l| l.contains("capabilities"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains("probe broke"), "{}", warnings[0]);
}

#[test]
fn garbage_or_a_hang_in_capabilities_degrades_to_the_default_with_one_warning() {
    for caps in [
        "capabilities() { return \"garbage\"; },",
        "capabilities() { return { scopedSync: \"yes\" }; },",
        "capabilities() { while (true) {} },",
    ] {
        let shared = TempDir::new();
        let remote = shared.path().join("store");
        let repo = broken_repo(&remote, &source(caps, "", ""));
        let out = ok(record(&repo, &[]));
        assert_eq!(
            calls(&remote),
            ["pull undefined", "push undefined"],
            "{caps}"
        );
        let warnings = out
            .stderr
            .lines()
            .filter(|l| l.contains("capabilities"))
            .count();
        let expected = usize::from(!caps.contains("yes"));
        assert_eq!(warnings, expected, "{caps}: {}", out.stderr);
    }
}

#[test]
fn scenario_34_a_throwing_pull_fails_with_exit_7_before_the_method_and_leaves_no_lock() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = broken_repo(
        &remote,
        &source(SCOPED, "throw new Error(\"remote is corrupt\");", ""),
    );
    let events = repo.path("events.jsonl");
    let out = record(&repo, &[("FEN_EVENTS_FILE", events.to_str().unwrap())]);
    let message = failed(&out, 7, "datastore_extension_failed", &remote);
    assert!(message.contains("remote is corrupt"), "{message}");
    let events = std::fs::read_to_string(&events).unwrap();
    assert!(!events.contains("method_start"), "{events}");
    assert!(!events.contains("sync_push"), "{events}");
    assert_eq!(calls(&remote), [format!("pull {}", scoped_opts())]);
    local_data_kept(&repo);
}

#[test]
fn a_hanging_pull_or_one_over_the_memory_limit_fails_with_exit_7_and_keeps_local_data() {
    for (pull, env, expected) in [
        (
            "while (true) {}",
            ("FEN_DATASTORE_SYNC_TIMEOUT_MS", "300"),
            "time limit",
        ),
        (
            "const hog = []; while (true) hog.push(new Array(100000).fill(1));",
            ("FEN_SANDBOX_MEMORY_MB", "16"),
            "memory limit",
        ),
    ] {
        let shared = TempDir::new();
        let remote = shared.path().join("store");
        let repo = broken_repo(&remote, &source(SCOPED, pull, ""));
        let out = record(&repo, &[env]);
        let message = failed(&out, 7, "datastore_extension_failed", &remote);
        assert!(message.contains(expected), "{message}");
        local_data_kept(&repo);
    }
}

#[test]
fn a_throwing_push_after_the_run_is_exit_6_and_keeps_the_new_version_locally() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = broken_repo(
        &remote,
        &source(SCOPED, "", "throw new Error(\"disk full\");"),
    );
    let out = record(&repo, &[]);
    let message = failed(&out, 6, "datastore_push_failed", &remote);
    assert!(message.contains("disk full"), "{message}");
    assert_eq!(run_records(&repo, "web").len(), 2);
}

#[test]
fn paths_outside_the_remote_or_into_fen_locks_are_denied() {
    let shared = TempDir::new();
    let outside = shared.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (what, target) in [
        ("lock", ".fen-locks/global.lock"),
        ("lock-dir", ".fen-locks/models/web.lock"),
        ("dotdot", "../outside/escaped"),
        ("nested-dotdot", "data/../../outside/escaped"),
        ("absolute", "ABS/escaped"),
        ("symlink", "link/escaped"),
    ] {
        let remote = shared.path().join(format!("store-{what}"));
        let target = target.replace("ABS", outside.to_str().unwrap());
        let pull = format!("ctx.remote.writeText({target:?}, \"pwned\");");
        let repo = broken_repo(&remote, &source(SCOPED, &pull, ""));
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, remote.join("link")).unwrap();
        let out = record(&repo, &[]);
        let message = failed(&out, 7, "datastore_extension_failed", &remote);
        assert!(
            message.contains("ctx.remote.writeText"),
            "{what}: {message}"
        );
        assert!(!outside.join("escaped").exists(), "{what}");
        local_data_kept(&repo);
    }
}

#[test]
fn setup_refuses_an_unknown_type_or_a_config_against_its_schema_and_keeps_the_config() {
    let shared = TempDir::new();
    let remote = shared.path().join("store");
    let repo = web_repo();
    repo.write("extensions/datastores/recorder.ts", &source(SCOPED, "", ""));
    repo.age_all();
    let setup = |type_name: &str, config: &str| {
        repo.fen(&[
            "--json",
            "datastore",
            "setup",
            "extension",
            type_name,
            "--remote",
            remote.to_str().unwrap(),
            "--config",
            config,
        ])
    };
    let out = setup("@fixture/recorderz", "{}");
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.json()["error"]["code"], "unknown_type");
    let out = setup(TYPE, r#"{"mode": 5}"#);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(out.json()["error"]["code"], "config_invalid");
    let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("/mode") && message.contains("not changed"),
        "{message}"
    );
    assert!(!repo.path(".fen/datastore.yaml").exists());
    // Refused before the remote was probed: nothing was created there.
    assert!(!remote.exists());
    // Set up, then a source that no longer evaluates: the type is unavailable.
    ok(setup(TYPE, r#"{"mode": "test"}"#));
    repo.write(
        "extensions/datastores/recorder.ts",
        "import { defineDatastore } from \"fen:sdk\";\nthrow new Error(\"broken at load\");\nexport const datastore = defineDatastore({});\n",
    );
    repo.age_all();
    let out = record(&repo, &[]);
    // The failed source leaves no type row: unknown_type, with a hint to the sources.
    assert_eq!(out.code, 3, "{}", out.stderr);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "unknown_type");
    assert!(error["hint"]
        .as_str()
        .unwrap()
        .contains("fen extension list"));
    let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(TYPE), "{message}");
    assert!(lock_files(&remote).is_empty());
}

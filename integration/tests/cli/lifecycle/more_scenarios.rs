//! Spec 20 §18 scenarios 8–14, 21, 22, 34 and 35: a registry that is down, packing,
//! serving, hand-made archives, update and ghost-row collisions, and the lifecycle lock
//! held by a dead and by a live process.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{read_until, rest, walk, write_source, Ext, RawTar, World, V1, V2};
use crate::util::{fen, Run, TempDir};

fn a1() -> Ext {
    Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/v1-only.txt", "v1")
}

fn b1() -> Ext {
    Ext::model("@t/b", V1, "noop", "@t/b-model")
}

fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap()
}

/// Every path below `dir` whose file name satisfies `matches`.
fn find(dir: &Path, matches: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    walk(dir, &mut |path, _| {
        let name = path.file_name().unwrap().to_string_lossy();
        if matches(&name) {
            found.push(path.display().to_string());
        }
    });
    found
}

#[test]
fn a_registry_that_is_down_fails_after_three_quick_attempts() {
    // Scenario 8.
    let world = World::new(&[a1()]);
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let before = world.snapshot();
    let started = Instant::now();
    let error = world.refused(
        &[("FEN_REGISTRY_URL", &url)],
        &["extension", "pull", "@t/a"],
        3,
        "registry_unavailable",
    );
    let elapsed = started.elapsed();
    assert!(
        message(&error).starts_with(&format!("could not reach registry {url}: ")),
        "{error}"
    );
    assert!(message(&error).contains("after 3 attempts"), "{error}");
    // Two runs, each with 250 ms and 500 ms of backoff (±20 %) between refused
    // connections: well over a second, and nowhere near a timeout.
    assert!(elapsed >= Duration::from_millis(1100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    world.assert_untouched(&before);
}

fn pack_run(cwd: &Path, args: &[&str]) -> Run {
    fen(cwd).args(args).output().unwrap().into()
}

#[test]
fn packing_twice_gives_identical_sorted_archives() {
    // Scenario 9.
    let dir = TempDir::new();
    let ext = Ext::model("@t/a", V1, "noop", "@t/a-model")
        .with_model("zeta", "@t/a-zeta")
        .with_file("models/_lib/util.ts", "export const x = 1;\n")
        .with_file("files/README.md", "# a\n")
        .with_file("files/B.txt", "b\n");
    let src = write_source(dir.path(), &ext);
    let src_arg = src.to_str().unwrap();
    let run = pack_run(
        dir.path(),
        &["extension", "pack", src_arg, "--out", "first.tar.gz"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // New mtimes on every source file must not reach the archive.
    let later = SystemTime::now() + Duration::from_secs(3600);
    walk(&src, &mut |path, is_dir| {
        if !is_dir {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(later).unwrap();
        }
    });
    let run = pack_run(
        dir.path(),
        &["extension", "pack", src_arg, "--out", "second.tar.gz"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = std::fs::read(dir.path().join("first.tar.gz")).unwrap();
    let second = std::fs::read(dir.path().join("second.tar.gz")).unwrap();
    assert!(first == second, "the two packs differ");

    // gzip: no file name, mtime 0, OS byte 255.
    assert_eq!(&first[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(first[3] & 0x08, 0, "FNAME set");
    assert_eq!(&first[4..8], &[0, 0, 0, 0], "gzip mtime");
    assert_eq!(first[9], 255, "gzip OS byte");

    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&first[..]));
    let mut paths = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert_eq!(header.entry_type(), tar::EntryType::Regular, "{path}");
        assert_eq!(header.mode().unwrap(), 0o644, "{path}");
        assert_eq!(header.mtime().unwrap(), 0, "{path}");
        assert_eq!(
            (header.uid().unwrap(), header.gid().unwrap()),
            (0, 0),
            "{path}"
        );
        assert_eq!(header.username_bytes().unwrap_or_default(), b"", "{path}");
        paths.push(path);
    }
    assert_eq!(
        paths,
        [
            "extension/files/B.txt",
            "extension/files/README.md",
            "extension/manifest.yaml",
            "extension/models/_lib/util.ts",
            "extension/models/noop.ts",
            "extension/models/zeta.ts",
        ]
    );
}

#[cfg(unix)]
#[test]
fn pack_refuses_a_symlink_and_writes_nothing() {
    // Scenario 10.
    let dir = TempDir::new();
    let src = write_source(dir.path(), &a1());
    std::os::unix::fs::symlink("noop.ts", src.join("models/link.ts")).unwrap();
    let src_arg = src.to_str().unwrap();
    let run = pack_run(
        dir.path(),
        &[
            "--json",
            "extension",
            "pack",
            src_arg,
            "--out",
            "out.tar.gz",
        ],
    );
    assert_eq!(run.code, 3, "{} {}", run.stdout, run.stderr);
    let error = &run.json()["error"];
    assert_eq!(error["code"], "archive_unsafe", "{error}");
    assert!(
        message(error).contains("unsafe entry \"extension/models/link.ts\" (symbolic link)"),
        "{error}"
    );
    // The default output name as well.
    let run = pack_run(dir.path(), &["extension", "pack", src_arg]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["src"], "no archive, no temp file");
}

/// Runs `fen registry serve` and returns its first stdout line (empty when it exited
/// without listening) and its result; a server that did listen is killed.
fn serve(args: &[&str]) -> (String, Run) {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path().join("reg")).unwrap();
    let mut child = fen(dir.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    if first.starts_with("fen registry listening") {
        let _ = child.kill();
    }
    let mut out = first.clone();
    stdout.read_to_string(&mut out).unwrap();
    let stderr = rest(child.stderr.as_mut().unwrap());
    let status = child.wait().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out,
        stderr,
    };
    (first, run)
}

#[test]
fn serve_refuses_a_non_loopback_address_without_listening() {
    // Scenario 11.
    let (first, run) = serve(&[
        "--json",
        "registry",
        "serve",
        "--dir",
        "reg",
        "--addr",
        "0.0.0.0:0",
    ]);
    assert_eq!(
        first.trim_end(),
        run.stdout.trim_end(),
        "one JSON document only"
    );
    assert!(!first.contains("listening"), "{first}");
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.json()["error"]["code"], "invalid_input");
    let (first, run) = serve(&["registry", "serve", "--dir", "reg", "--addr", "0.0.0.0:0"]);
    assert_eq!(first, "", "nothing on stdout");
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .starts_with("error: refusing to listen on 0.0.0.0:0: not a loopback address\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_traversal_entry_is_rejected_and_nothing_escapes() {
    // Scenario 12.
    let world = World::new(&[]);
    let archive = RawTar::of(&a1())
        .file(
            "extension/models/../../evil.ts",
            b"export const evil = 1;\n",
        )
        .gz();
    world.plant("@t/a", V1, &archive);
    let before = world.snapshot();
    let error = world.refused(
        &[],
        &["extension", "pull", &format!("@t/a@{V1}")],
        3,
        "archive_unsafe",
    );
    assert_eq!(
        message(&error),
        format!(
            "archive for @t/a@{V1} rejected: unsafe entry \"extension/models/../../evil.ts\" ('..' path segment); nothing was installed"
        )
    );
    world.assert_untouched(&before);
    let parent = world.repo.parent().unwrap();
    assert_eq!(
        find(parent, &|name| name == "evil.ts"),
        Vec::<String>::new()
    );
}

#[test]
fn apple_double_entries_are_skipped() {
    // Scenario 13.
    let world = World::new(&[]);
    let archive = RawTar::of(&a1())
        .file(
            "extension/models/._noop.ts",
            b"\x00\x05\x16\x07 resource fork",
        )
        .gz();
    world.plant("@t/a", V1, &archive);
    let doc = world.json(0, &["extension", "pull", "@t/a"]);
    assert_eq!(doc["installed"]["version"], V1);
    let files = world.lockfile()["extensions"]["@t/a"]["files"].clone();
    assert!(!files.as_array().unwrap().is_empty());
    assert!(!files.to_string().contains("._"), "{files}");
    assert!(
        !doc["installed"]["files"].to_string().contains("._"),
        "{doc}"
    );
    assert_eq!(
        find(&world.repo, &|name| name.contains("._")),
        Vec::<String>::new()
    );
    assert_eq!(world.status()["drift"], serde_json::json!([]));
}

#[test]
fn an_archive_for_another_extension_is_a_manifest_mismatch() {
    // Scenario 14.
    let world = World::new(&[]);
    let other = Ext::model("@t/other", V1, "noop", "@t/other-model");
    world.plant("@t/a", V1, &RawTar::of(&other).gz());
    let before = world.snapshot();
    let error = world.refused(&[], &["extension", "pull", "@t/a"], 5, "manifest_mismatch");
    assert_eq!(
        message(&error),
        format!("archive for @t/a@{V1} carries a manifest for @t/other@{V1}; refusing to install")
    );
    world.assert_untouched(&before);
}

fn catalog_entries(world: &World, name: &str) -> Vec<Value> {
    world.status()["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == name)
        .cloned()
        .collect()
}

/// `@t/a` V1 and `@t/b` (type `@t/x`) installed, then `@t/a` V2 newly providing `@t/x`
/// published and `fen --json extension update @t/a` run (exit 4). Returns the world,
/// the lockfile bytes from before the update and its document.
fn upgrade_collision() -> (World, Vec<u8>, Value) {
    let world = World::new(&[a1(), Ext::model("@t/b", V1, "x", "@t/x")]);
    world.json(0, &["extension", "pull", "@t/a"]);
    world.json(0, &["extension", "pull", "@t/b"]);
    let lock = world.lockfile_bytes();
    world.publish(&Ext::model("@t/a", V2, "noop", "@t/a-model").with_model("x", "@t/x"));
    let doc = world.json(4, &["extension", "update", "@t/a"]);
    (world, lock, doc)
}

#[test]
fn an_upgrade_collision_restores_the_prior_version() {
    // Scenario 21.
    let (world, lock, doc) = upgrade_collision();
    let items = doc["extensions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{doc}");
    let item = &items[0];
    assert_eq!(item["name"], "@t/a");
    assert_eq!(item["status"], "failed", "{doc}");
    assert_eq!(item["from"], V1, "{doc}");
    assert_eq!(item["error"]["code"], "duplicate_type", "{doc}");
    assert_eq!(
        item["error"]["duplicateType"]["existing"]["extensionName"],
        "@t/b"
    );
    assert_eq!(doc["summary"]["failed"], 1);

    assert_eq!(world.lockfile_bytes(), lock, "the lockfile is restored");
    assert_eq!(world.lockfile()["extensions"]["@t/a"]["version"], V1);
    assert_eq!(
        world.lockfile()["extensions"]["@t/a"]["filesDigest"],
        world.disk_digest("@t/a").as_str()
    );
    assert!(world
        .path(".fen/pulled-extensions/@t/a/files/v1-only.txt")
        .exists());
    assert!(!world
        .path(".fen/pulled-extensions/@t/a/models/x.ts")
        .exists());
    let entries = catalog_entries(&world, "@t/a");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["version"], V1);
    let sources = entries[0]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1, "{entries:?}");
    assert!(
        sources.iter().all(|s| s["state"] == "Indexed"),
        "{entries:?}"
    );
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn a_failed_upgrade_names_the_version_it_tried() {
    let (_world, _lock, doc) = upgrade_collision();
    let item = &doc["extensions"][0];
    assert_eq!(item["status"], "failed", "{doc}");
    assert_eq!(item["to"], V2, "{doc}");
}

/// `@t/a` installed providing `@t/shared`, its source file deleted by hand, then
/// `fen --json extension pull @t/b` (also `@t/shared`) run (exit 4). Returns the world,
/// the lockfile bytes from before the pull and its document.
fn ghost_collision() -> (World, Vec<u8>, Value) {
    let world = World::new(&[
        Ext::model("@t/a", V1, "shared", "@t/shared"),
        Ext::model("@t/b", V1, "shared", "@t/shared"),
    ]);
    world.json(0, &["extension", "pull", "@t/a"]);
    std::fs::remove_file(world.path(".fen/pulled-extensions/@t/a/models/shared.ts")).unwrap();
    let lock = world.lockfile_bytes();
    let doc = world.json(4, &["extension", "pull", "@t/b"]);
    (world, lock, doc)
}

#[test]
fn a_ghost_row_gets_the_doctor_hint() {
    // Scenario 22.
    let (world, lock, doc) = ghost_collision();
    let error = &doc["error"];
    assert_eq!(error["code"], "duplicate_type", "{doc}");
    assert_eq!(error["duplicateType"]["existingIsGhost"], true, "{doc}");
    assert_eq!(error["duplicateType"]["existing"]["extensionName"], "@t/a");
    let hint = error["hint"].as_str().unwrap();
    assert!(hint.contains("fen doctor extensions"), "{hint}");
    assert_eq!(world.lockfile_bytes(), lock);
    assert!(!world.path(".fen/pulled-extensions/@t/b").exists());
    assert!(!world.path(".fen/bundles/pulled/@t/b").exists());
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn a_ghost_row_hint_says_the_file_is_gone() {
    let (_world, _lock, doc) = ghost_collision();
    assert_eq!(
        doc["error"]["hint"],
        "the existing catalog entry points at a file that no longer exists; run 'fen doctor extensions' to clear stale catalog entries, then retry",
        "{doc}"
    );
}

const LOCKFILE_LOCK: &str = "extensions/upstream_extensions.json.lock";

/// The start of the lock-wait line naming `pid` as the holder running
/// `fen extension pull @t/b`.
fn wait_line_prefix(pid: u32) -> String {
    format!(
        "waiting for the lifecycle lock .fen/lifecycle.lock (held by pid {pid}: fen extension pull @t/b, since "
    )
}

/// The pid in `.fen/lifecycle.lock`'s owner record.
fn lock_owner(world: &World) -> Value {
    let text = std::fs::read_to_string(world.path(".fen/lifecycle.lock")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["pid"].clone()
}

#[test]
fn a_dead_lock_holder_is_released_by_the_kernel() {
    // Scenario 34.
    let world = World::new(&[a1(), b1()]);
    let mut holder = world.spawn(
        &[("FEN_TEST_FAULT", "install:after-lock=sleep:60000")],
        &["extension", "pull", "@t/b"],
    );
    let mut holder_err = BufReader::new(holder.stderr.take().unwrap());
    read_until(&mut holder_err, "the holder", &|line| {
        line == "fen-test-fault: install:after-lock sleep:60000"
    });
    assert_eq!(lock_owner(&world), holder.id());
    assert!(!world.path(LOCKFILE_LOCK).exists());

    let mut waiter = world.spawn(&[], &["extension", "pull", "@t/a"]);
    let mut waiter_err = BufReader::new(waiter.stderr.take().unwrap());
    let prefix = wait_line_prefix(holder.id());
    let line = read_until(&mut waiter_err, "the waiter", &|line| {
        line.starts_with("waiting for the lifecycle lock")
    });
    assert!(line.starts_with(&prefix) && line.ends_with(')'), "{line}");
    assert!(!world.path(LOCKFILE_LOCK).exists());

    holder.kill().unwrap();
    let killed = Instant::now();
    holder.wait().unwrap();
    let stderr = rest(&mut waiter_err);
    let stdout = rest(waiter.stdout.as_mut().unwrap());
    let status = waiter.wait().unwrap();
    let took = killed.elapsed();
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(stdout.starts_with("Installed @t/a@"), "{stdout}");
    assert!(!world.path(LOCKFILE_LOCK).exists());
    assert!(world.lockfile()["extensions"]["@t/a"].is_object());
    assert!(world.lockfile()["extensions"]["@t/b"].is_null());

    // The dead holder's staging is collected by the next locked section.
    world.json(0, &["extension", "update"]);
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    assert!(!world.path(LOCKFILE_LOCK).exists());
}

#[test]
fn a_live_lock_holder_times_the_waiter_out() {
    // Scenario 35.
    let world = World::new(&[a1(), b1()]);
    let mut holder = world.spawn(
        &[("FEN_TEST_FAULT", "install:after-lock=sleep:5000")],
        &["extension", "pull", "@t/b"],
    );
    let mut holder_err = BufReader::new(holder.stderr.take().unwrap());
    read_until(&mut holder_err, "the holder", &|line| {
        line == "fen-test-fault: install:after-lock sleep:5000"
    });
    let pid = holder.id();

    let started = Instant::now();
    let run = world.fen_env(
        &[("FEN_LOCK_TIMEOUT_MS", "1500")],
        &["--json", "extension", "pull", "@t/a"],
    );
    let waited = started.elapsed();
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the holder must still hold the lock"
    );
    assert_eq!(run.code, 75, "{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "only the lock-wait line: {}", run.stderr);
    assert!(
        lines[0].starts_with(&wait_line_prefix(pid)) && lines[0].ends_with(')'),
        "{}",
        lines[0]
    );
    let error = &run.json()["error"];
    assert_eq!(error["code"], "lock_timeout", "{error}");
    assert_eq!(
        message(error),
        format!(
            "gave up after 1.5 s waiting for the lifecycle lock .fen/lifecycle.lock (held by pid {pid}: fen extension pull @t/b)"
        )
    );
    assert_eq!(
        error["hint"],
        "wait for that command to finish and retry, or raise FEN_LOCK_TIMEOUT_MS"
    );
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    assert!(!world.path(".fen/pulled-extensions/@t/a").exists());
    assert!(!world.path(".fen/bundles/pulled/@t/a").exists());
    assert!(
        world.scratch().iter().all(|n| !n.starts_with("txn-")),
        "{:?}",
        world.scratch()
    );

    let stderr = rest(&mut holder_err);
    let stdout = rest(holder.stdout.as_mut().unwrap());
    let status = holder.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    let lock = world.lockfile();
    assert!(lock["extensions"]["@t/a"].is_null(), "{lock}");
    assert!(lock["extensions"]["@t/b"].is_object(), "{lock}");
    assert!(catalog_entries(&world, "@t/a").is_empty());
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn pack_refuses_a_manifest_whose_permissions_break_a_rule_naming_the_entry() {
    // Spec 40 §2: permissions are declared in manifest.yaml; a refused entry is
    // manifest_invalid, the message names it and the form to write.
    let dir = TempDir::new();
    let src = write_source(dir.path(), &a1());
    let manifest = src.join("manifest.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}permissions:\n  net: [\"http://0x7f.1:8200\"]\n"),
    )
    .unwrap();
    let src_arg = src.to_str().unwrap();
    let run = pack_run(dir.path(), &["--json", "extension", "pack", src_arg]);
    assert_eq!(run.code, 3, "{} {}", run.stdout, run.stderr);
    let error = &run.json()["error"];
    assert_eq!(error["code"], "manifest_invalid", "{error}");
    let text = message(error);
    assert!(
        text.contains("permissions") && text.contains("0x7f.1") && text.contains("127.0.0.1:8200"),
        "{error}"
    );
    // The canonical form packs.
    std::fs::write(
        &manifest,
        format!(
            "{text_}permissions:\n  net: [\"http://127.0.0.1:8200\"]\n",
            text_ = std::fs::read_to_string(&manifest)
                .unwrap()
                .split("permissions:")
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    let run = pack_run(dir.path(), &["extension", "pack", src_arg]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

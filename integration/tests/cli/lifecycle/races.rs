//! `fen extension update` racing another writer, made deterministic: the updater
//! holds the lifecycle lock for a moment at its first acquisition (`lock:acquired`
//! sleeps; the test waits for the fault line, never on a clock), a `pull` is started
//! meanwhile and commits as soon as the updater lets go, and the registry delays the
//! updater's `latest` request (`_faults.json`) so that the pull has committed before the
//! updater looks at the catalog. The updater read the lockfile before the pull wrote it.
//!
//! Both races were found by `cargo xtask stress --iterations 200 --concurrency 8`
//! (issue 9): `update` reported `reconciled` for an extension another process had just
//! installed, and `failed` with `drift` for one another process had just replaced.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use serde_json::Value;

use super::{Ext, World, V1, V2};
use crate::util::Run;

fn a1() -> Ext {
    Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/v1-only.txt", "v1")
}
fn a2() -> Ext {
    Ext::model("@t/a", V2, "noop", "@t/a-model").with_model("extra", "@t/a-extra")
}
fn b1() -> Ext {
    Ext::model("@t/b", V1, "noop", "@t/b-model")
}

/// Starts `fen --json extension update` holding the lock for 300 ms at its first
/// acquisition, with the registry delaying `GET …/<delayed>/latest` by 3 s, and
/// returns once the updater holds the lock. The delay is long enough for a loaded
/// machine to finish the concurrent pull in it.
fn start_update(world: &World, delayed: &str) -> Child {
    std::fs::write(
        world.registry_dir.join("_faults.json"),
        format!(r#"[{{"match":"{delayed}/latest","delayMs":3000}}]"#),
    )
    .unwrap();
    let mut child = crate::util::fen(&world.repo)
        .env("FEN_REGISTRY_URL", &world.url)
        .env("FEN_TEST_FAULT", "lock:acquired=sleep:300")
        .args(["--json", "extension", "update"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("fen-test-fault: lock:acquired") {
        line.clear();
        assert_ne!(
            stderr.read_line(&mut line).unwrap(),
            0,
            "update exited early"
        );
    }
    // Drain the rest so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn item<'a>(doc: &'a Value, name: &str) -> Option<&'a Value> {
    doc["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
}

#[test]
fn update_does_not_report_reconciled_for_an_extension_installed_meanwhile() {
    let world = World::new(&[a1(), b1()]);
    world.json(0, &["extension", "pull", "@t/b"]);
    let update = start_update(&world, "%2Fb");
    // Waits for the updater's lock, then installs @t/a while the updater queries the
    // registry about @t/b with a lockfile read that has no @t/a.
    world.json(0, &["extension", "pull", "@t/a"]);
    let run: Run = update.wait_with_output().unwrap().into();
    let doc = run.json();
    assert_eq!(run.code, 0, "{doc}");
    assert_eq!(item(&doc, "@t/b").unwrap()["status"], "up_to_date", "{doc}");
    // Its reconcile commit re-read the lockfile under the lock and retired nothing.
    assert!(item(&doc, "@t/a").is_none(), "{doc}");
    assert_eq!(doc["summary"]["reconciled"], 0, "{doc}");
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    assert_eq!(world.lockfile()["extensions"]["@t/a"]["version"], V1);
}

#[test]
fn update_skips_an_extension_replaced_meanwhile_instead_of_calling_it_drift() {
    let world = World::new(&[a1(), a2(), b1()]);
    world.json(0, &["extension", "pull", "@t/a"]);
    world.json(0, &["extension", "pull", "@t/b"]);
    let update = start_update(&world, "%2Fa");
    // Downgrades @t/a (V2 has models/extra.ts, V1 has not) while the updater, which
    // read @t/a@V2 from the lockfile, waits for the registry's answer about it.
    world.json(0, &["extension", "pull", &format!("@t/a@{V1}"), "--force"]);
    let run: Run = update.wait_with_output().unwrap().into();
    let doc = run.json();
    assert_eq!(run.code, 0, "{doc}");
    let a = item(&doc, "@t/a").unwrap();
    assert_eq!(a["status"], "skipped", "{doc}");
    assert_eq!(a["reason"], "changed concurrently", "{doc}");
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    assert_eq!(world.lockfile()["extensions"]["@t/a"]["version"], V1);
}

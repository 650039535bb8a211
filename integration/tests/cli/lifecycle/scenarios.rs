//! Spec 20 §18 scenarios that drive `fen` against a live registry.

use serde_json::Value;

use super::{Ext, World, V1, V2};

fn a1() -> Ext {
    Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/v1-only.txt", "v1")
}
fn a2() -> Ext {
    Ext::model("@t/a", V2, "noop", "@t/a-model").with_model("extra", "@t/a-extra")
}
fn b1() -> Ext {
    Ext::model("@t/b", V1, "noop", "@t/b-model")
}

fn catalog_versions(world: &World, name: &str) -> Vec<String> {
    world.status()["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == name)
        .map(|e| e["version"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn latest_resolution_pins_the_served_checksum() {
    // Scenario 1.
    let world = World::new(&[a1(), a2()]);
    let doc = world.json(0, &["extension", "pull", "@t/a"]);
    assert_eq!(doc["installed"]["version"], V2);
    assert_eq!(doc["installed"]["outcome"], "installed");
    let bytes = std::fs::read(world.archive("@t/a", V2)).unwrap();
    let sha = fen_sha(&bytes);
    assert_eq!(world.lockfile()["extensions"]["@t/a"]["checksum"], sha);
    assert!(doc["timings"]["lockSpans"].as_array().unwrap().len() == 1);
}

fn fen_sha(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn no_registry_and_unknown_names_fail_cleanly() {
    let world = World::new(&[a1()]);
    // Scenario 2: no registry.
    let run = crate::util::fen(&world.repo)
        .args(["--json", "extension", "pull", "@t/a"])
        .output()
        .unwrap();
    let run: crate::util::Run = run.into();
    assert_eq!(run.code, 3);
    assert_eq!(run.json()["error"]["code"], "registry_not_configured");
    assert!(!world.path(".fen/pulled-extensions").exists());
    // Scenario 3: the flag beats the environment.
    let run = world.fen_env(
        &[("FEN_REGISTRY_URL", "http://127.0.0.1:1")],
        &[
            "extension",
            "pull",
            "@t/a",
            "--registry",
            &world.url.clone(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        world.lockfile()["extensions"]["@t/a"]["registry"],
        world.url.as_str()
    );
    // Scenario 4: unknown extension.
    let run = world.fen(&["extension", "pull", "@t/zz"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr.lines().next().unwrap(),
        format!("error: extension @t/zz not found in registry {}", world.url)
    );
    // Scenario 5: unknown version.
    let doc = world.json(3, &["extension", "pull", "@t/a@2026.01.01.9"]);
    assert_eq!(doc["error"]["code"], "registry_not_found");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("@t/a@2026.01.01.9"));
    // A bad name.
    let doc = world.json(3, &["extension", "pull", "@T/a"]);
    assert_eq!(doc["error"]["code"], "invalid_name");
}

#[test]
fn checksum_mismatch_installs_nothing() {
    // Scenario 6.
    let world = World::new(&[a1()]);
    let sidecar = world
        .registry_dir
        .join("@t/a")
        .join(format!("{V1}.tar.gz.sha256"));
    std::fs::write(&sidecar, format!("{}  {V1}.tar.gz\n", "0".repeat(64))).unwrap();
    let doc = world.json(5, &["extension", "pull", &format!("@t/a@{V1}")]);
    assert_eq!(doc["error"]["code"], "checksum_mismatch");
    assert!(!world.path(".fen/pulled-extensions/@t").exists());
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn transient_503_is_retried() {
    // Scenario 7.
    let world = World::new(&[a1()]);
    std::fs::write(
        world.registry_dir.join("_faults.json"),
        r#"[{"match":"/download","status":503,"times":2}]"#,
    )
    .unwrap();
    let run = world.fen(&["extension", "pull", "@t/a"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn fresh_install_layout_and_reinstall_rules() {
    let world = World::new(&[a1(), a2()]);
    world.json(0, &["extension", "pull", &format!("@t/a@{V1}")]);
    // Scenario 15.
    let lock = world.lockfile();
    let entry = &lock["extensions"]["@t/a"];
    let files: Vec<&str> = entry["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
    assert!(files.contains(&".fen/pulled-extensions/@t/a/manifest.yaml"));
    assert!(files.iter().all(|f| !f.starts_with(".fen/bundles/")));
    let manifest = world.path(".fen/pulled-extensions/@t/a/manifest.yaml");
    assert!(std::fs::read_to_string(&manifest)
        .unwrap()
        .starts_with("# Read-only"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&manifest).unwrap().permissions().mode() & 0o777,
            0o444
        );
    }
    assert!(world
        .path(".fen/bundles/pulled/@t/a/models/noop.ts.bundle.json")
        .exists());
    assert_eq!(entry["filesDigest"], world.disk_digest("@t/a").as_str());
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]));
    let sources = &status["catalog"][0]["sources"];
    assert_eq!(sources.as_array().unwrap().len(), 1);
    assert_eq!(sources[0]["state"], "Indexed");
    assert_eq!(sources[0]["type"], "@t/a-model");
    // The type is usable by the read side.
    let search = world.json(0, &["model", "type", "search", "a-model"]);
    assert!(search.to_string().contains("@t/a-model"), "{search}");

    // Scenario 16: reinstall needs --force; the lockfile is untouched.
    let before = world.lockfile_bytes();
    let doc = world.json(4, &["extension", "pull", &format!("@t/a@{V1}")]);
    assert_eq!(doc["error"]["code"], "conflict");
    assert_eq!(world.lockfile_bytes(), before);

    // Scenario 17: forced reinstall keeps pulledAt and checksum.
    let doc = world.json(0, &["extension", "pull", &format!("@t/a@{V1}"), "--force"]);
    assert_eq!(doc["installed"]["outcome"], "reinstalled");
    let after = world.lockfile();
    assert_eq!(
        after["extensions"]["@t/a"]["pulledAt"],
        lock["extensions"]["@t/a"]["pulledAt"]
    );
    assert_eq!(
        after["extensions"]["@t/a"]["checksum"],
        lock["extensions"]["@t/a"]["checksum"]
    );

    // Scenario 19: a version change needs update or --force.
    let run = world.fen(&["extension", "pull", &format!("@t/a@{V2}")]);
    assert_eq!(run.code, 4);
    assert!(
        run.stderr.contains("fen extension update @t/a"),
        "{}",
        run.stderr
    );

    // Scenario 18: a forced upgrade is atomic and prunes V1-only files.
    let doc = world.json(0, &["extension", "pull", &format!("@t/a@{V2}"), "--force"]);
    assert_eq!(doc["installed"]["outcome"], "upgraded");
    assert_eq!(catalog_versions(&world, "@t/a"), [V2]);
    assert!(!world
        .path(".fen/pulled-extensions/@t/a/files/v1-only.txt")
        .exists());
    assert_eq!(world.status()["drift"], serde_json::json!([]));
}

#[test]
fn duplicate_type_rolls_back_everything() {
    // Scenario 20.
    let shared_a = Ext::model("@t/a", V1, "shared", "@t/shared");
    let shared_b = Ext::model("@t/b", V1, "shared", "@t/shared");
    let world = World::new(&[shared_a, shared_b]);
    world.json(0, &["extension", "pull", "@t/a"]);
    let before = world.lockfile_bytes();
    let doc = world.json(4, &["extension", "pull", "@t/b"]);
    assert_eq!(doc["error"]["code"], "duplicate_type");
    assert_eq!(
        doc["error"]["duplicateType"]["existing"]["extensionName"],
        "@t/a"
    );
    assert_eq!(doc["error"]["duplicateType"]["existingIsGhost"], false);
    assert_eq!(world.lockfile_bytes(), before);
    assert!(!world.path(".fen/pulled-extensions/@t/b").exists());
    assert!(!world.path(".fen/bundles/pulled/@t/b").exists());
    assert!(catalog_versions(&world, "@t/b").is_empty());
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn dependencies_install_in_one_commit() {
    // Scenario 23.
    let c = Ext::model("@t/c", V1, "noop", "@t/c-model").depends_on("@t/a");
    let world = World::new(&[a1(), c]);
    let doc = world.json(0, &["extension", "pull", "@t/c"]);
    assert_eq!(doc["installed"]["dependencies"][0]["name"], "@t/a");
    let lock = world.lockfile();
    assert_eq!(
        lock["extensions"]["@t/a"]["pulledAt"],
        lock["extensions"]["@t/c"]["pulledAt"]
    );
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    // Scenario 28: dependents are named on removal.
    let doc = world.json(0, &["extension", "rm", "@t/a", "--yes"]);
    assert_eq!(doc["removed"]["dependents"], serde_json::json!(["@t/c"]));
}

#[test]
fn partially_applied_install_is_finished_by_the_next_command() {
    // Scenario 24.
    let world = World::new(&[a1()]);
    let run = world.fen_env(
        &[("FEN_TEST_FAULT", "install:before-catalog-commit=error")],
        &["--json", "extension", "pull", "@t/a"],
    );
    assert_eq!(run.code, 6, "{}", run.stdout);
    assert_eq!(run.json()["error"]["code"], "partially_applied");
    assert!(world.lockfile()["extensions"]["@t/a"].is_object());
    let status = world.status();
    assert!(
        status["drift"]
            .to_string()
            .contains("lockfile_without_catalog"),
        "{status}"
    );
    assert_eq!(status["pendingTransactions"].as_array().unwrap().len(), 1);
    let doc = world.json(0, &["extension", "update"]);
    assert_eq!(doc["recovered"][0]["name"], "@t/a");
    assert_eq!(doc["recovered"][0]["action"], "rolled_forward");
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]));
    assert_eq!(status["pendingTransactions"], serde_json::json!([]));
}

#[test]
fn remove_cleans_every_partial_state() {
    let world = World::new(&[a1()]);
    world.json(0, &["extension", "pull", "@t/a"]);
    let files: Vec<String> = world.lockfile()["extensions"]["@t/a"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    // Scenario 25.
    let doc = world.json(0, &["extension", "rm", "@t/a", "--yes"]);
    assert_eq!(doc["removed"]["version"], V1);
    for file in &files {
        assert!(!world.path(file).exists(), "{file}");
    }
    assert!(!world.path(".fen/pulled-extensions/@t").exists());
    assert!(!world.path(".fen/bundles/pulled/@t").exists());
    assert!(catalog_versions(&world, "@t/a").is_empty());
    // Scenario 26: double rm.
    let run = world.fen(&["extension", "rm", "@t/a", "--yes"]);
    assert_eq!(run.code, 3);
    assert_eq!(
        run.stderr.trim_end(),
        "error: extension @t/a is not installed"
    );
    // Scenario 27: catalog-only state.
    world.json(0, &["extension", "pull", "@t/a"]);
    std::fs::write(
        world.path("extensions/upstream_extensions.json"),
        "{\"formatVersion\": 1, \"extensions\": {}}\n",
    )
    .unwrap();
    world.json(0, &["extension", "rm", "@t/a", "--yes"]);
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]));
    assert_eq!(status["catalog"], serde_json::json!([]));
}

#[test]
fn update_statuses_check_mode_and_keep_going() {
    let world = World::new(&[a1(), b1()]);
    world.json(0, &["extension", "pull", &format!("@t/a@{V1}")]);
    world.json(0, &["extension", "pull", "@t/b"]);
    world.publish(&a2());
    // Scenario 31: --check is read-only.
    let before = world.lockfile_bytes();
    let doc = world.json(0, &["extension", "update", "--check"]);
    let status = |doc: &Value, name: &str| {
        doc["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&doc, "@t/a"), "update_available");
    assert_eq!(world.lockfile_bytes(), before);
    // Scenario 29.
    let doc = world.json(0, &["extension", "update"]);
    assert_eq!(status(&doc, "@t/a"), "updated");
    assert_eq!(status(&doc, "@t/b"), "up_to_date");
    assert_eq!(catalog_versions(&world, "@t/a"), [V2]);
    // Scenario 30: a vanished registry entry is not_found, exit 3.
    std::fs::remove_dir_all(world.registry_dir.join("@t/b")).unwrap();
    let doc = world.json(3, &["extension", "update"]);
    assert_eq!(status(&doc, "@t/b"), "not_found");
    assert_eq!(status(&doc, "@t/a"), "up_to_date");
}

#[test]
fn restore_and_the_integrity_anchor() {
    let world = World::new(&[a1(), b1()]);
    world.json(0, &["extension", "pull", "@t/a"]);
    world.json(0, &["extension", "pull", "@t/b"]);
    // Scenario 32.
    std::fs::remove_dir_all(world.path(".fen/pulled-extensions")).unwrap();
    std::fs::remove_dir_all(world.path(".fen/bundles/pulled")).unwrap();
    std::fs::remove_file(world.path(".fen/_extension_catalog.db")).unwrap();
    let _ = std::fs::remove_file(world.path(".fen/_extension_catalog.db-wal"));
    let _ = std::fs::remove_file(world.path(".fen/_extension_catalog.db-shm"));
    let doc = world.json(0, &["extension", "install"]);
    for item in doc["extensions"].as_array().unwrap() {
        assert_eq!(item["status"], "restored", "{doc}");
    }
    assert_eq!(
        world.lockfile()["extensions"]["@t/a"]["filesDigest"],
        world.disk_digest("@t/a").as_str()
    );
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    // Up to date the second time.
    let doc = world.json(0, &["extension", "install"]);
    assert!(
        doc["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "up_to_date"),
        "{doc}"
    );

    // Scenario 33: same version, new bytes.
    let changed =
        Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/v1-only.txt", "changed");
    world.publish(&changed);
    std::fs::remove_dir_all(world.path(".fen/pulled-extensions")).unwrap();
    let before = world.lockfile_bytes();
    let doc = world.json(5, &["extension", "install"]);
    let a = doc["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "@t/a")
        .unwrap();
    assert_eq!(a["error"]["code"], "lockfile_checksum_mismatch", "{doc}");
    assert_eq!(world.lockfile_bytes(), before);
}

#[test]
fn concurrent_pulls_serialise_on_the_lifecycle_lock() {
    // Scenario 36.
    let names = ["@t/p1", "@t/p2", "@t/p3", "@t/p4", "@t/p5", "@t/p6"];
    let exts: Vec<Ext> = names
        .iter()
        .map(|n| Ext::model(n, V1, "noop", &format!("{n}-model")))
        .collect();
    let world = World::new(&exts);
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            crate::util::fen(&world.repo)
                .env("FEN_REGISTRY_URL", &world.url)
                .args(["--json", "extension", "pull", n])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for child in children {
        let run: crate::util::Run = child.wait_with_output().unwrap().into();
        assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
        for span in run.json()["timings"]["lockSpans"].as_array().unwrap() {
            spans.push((span[0].as_u64().unwrap(), span[1].as_u64().unwrap()));
        }
    }
    assert_eq!(world.lockfile()["extensions"].as_object().unwrap().len(), 6);
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping lock spans {pair:?}");
    }
}

#[test]
fn a_helper_beside_the_entry_points_is_not_mistaken_for_one() {
    // `models/util.ts` has no kind export: the loader treats it as a helper, so the
    // catalog has one row, and update/status must agree with that.
    let ext = Ext {
        name: "@t/h",
        version: V1,
        files: vec![
            (
                "models/util.ts".to_owned(),
                "export const PREFIX = \"h\";\n".to_owned(),
            ),
            (
                "models/noop.ts".to_owned(),
                format!(
                    "import {{ PREFIX }} from \"./util.ts\";\n{}",
                    crate::fixture::model_source("@t/h-model", "helper user")
                ),
            ),
        ],
        models: vec!["noop.ts".to_owned()],
        dependencies: Vec::new(),
    };
    let world = World::new(&[ext]);
    world.json(0, &["extension", "pull", "@t/h"]);
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    let doc = world.json(0, &["extension", "update"]);
    assert_eq!(doc["extensions"][0]["status"], "up_to_date", "{doc}");
    let doc = world.json(0, &["extension", "install"]);
    assert_eq!(doc["extensions"][0]["status"], "up_to_date", "{doc}");
}

#[test]
fn a_dependency_removed_between_plan_and_lock_is_warned_about() {
    use std::io::BufReader;
    // Spec 20 §9.2: a dependency present at plan time that vanished by the locked
    // section is a warning, and the install continues.
    let c = Ext::model("@t/c", V1, "noop", "@t/c-model").depends_on("@t/a");
    let world = World::new(&[a1(), c]);
    world.json(0, &["extension", "pull", "@t/a"]);
    let mut child = world.spawn(
        &[("FEN_TEST_FAULT", "install:after-stage=sleep:1500")],
        &["--json", "extension", "pull", "@t/c"],
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    super::read_until(&mut stderr, "pull", &|l| {
        l.contains("fen-test-fault: install:after-stage")
    });
    world.json(0, &["extension", "rm", "@t/a", "--yes"]);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    let warnings = doc["warnings"].to_string();
    assert!(
        warnings.contains("dependency @t/a is no longer installed"),
        "{doc}"
    );
    assert!(world.lockfile()["extensions"]["@t/a"].is_null());
    assert!(world.lockfile()["extensions"]["@t/c"].is_object());
}

#[test]
fn a_local_source_of_the_same_type_shadows_the_pulled_one() {
    // Spec 20 §9.3: origin precedence is reported, not an error.
    let world = World::new(&[a1()]);
    let local = world.path("extensions/models/mine.ts");
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    std::fs::write(
        &local,
        crate::fixture::model_source("@t/a-model", "the local one"),
    )
    .unwrap();
    // The local source is indexed first, by any command that reads types.
    world.json(0, &["model", "type", "search"]);
    let doc = world.json(0, &["extension", "pull", "@t/a"]);
    let shadowed = doc["installed"]["shadowedTypes"].as_array().unwrap();
    assert_eq!(shadowed.len(), 1, "{doc}");
    assert_eq!(shadowed[0]["type"], "@t/a-model");
    assert_eq!(shadowed[0]["kind"], "model");
    assert!(shadowed[0]["sourcePath"]
        .as_str()
        .unwrap()
        .contains(".fen/pulled-extensions/@t/a/models/noop.ts"));
    assert!(shadowed[0]["shadowedBy"]
        .as_str()
        .unwrap()
        .ends_with("extensions/models/mine.ts"));
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(|w| w
            .starts_with("type @t/a-model from @t/a is shadowed by local source ")
            && w.ends_with("extensions/models/mine.ts")),
        "{warnings:?}"
    );
    // The local type is the one described.
    let described = world.json(0, &["model", "type", "describe", "@t/a-model"]);
    assert_eq!(described["description"], "the local one", "{described}");
    // Once the catalog knows the local source is gone, nothing is shadowed.
    std::fs::remove_file(&local).unwrap();
    world.json(0, &["model", "type", "search"]);
    let doc = world.json(0, &["extension", "pull", "@t/a", "--force"]);
    assert_eq!(
        doc["installed"]["shadowedTypes"],
        serde_json::json!([]),
        "{doc}"
    );
}

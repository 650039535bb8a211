//! Tests of the local data store: version allocation, `latest`, meta digests, schema
//! checks before any write, run records.

use super::*;
use fen_domain::model::RunStatus;

fn scope(run_id: &str) -> RunScope {
    RunScope {
        model: ModelName::parse("web").expect("name"),
        type_name: "@acme/net/endpoint".to_owned(),
        type_version: "2026.03.01.1".to_owned(),
        method: "record".to_owned(),
        run_id: run_id.to_owned(),
        resources: BTreeMap::from([(
            "verdict".to_owned(),
            json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}),
        )]),
    }
}

fn store(dir: &Path) -> LocalModelData {
    LocalModelData::new(dir.join("data"), Arc::new(|_: &str, _: &str, _: &str| {}))
}

#[test]
fn versions_count_up_and_latest_follows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    let first = host
        .write_resource("verdict", "current", r#"{"ok":true}"#)
        .expect("written");
    assert_eq!(first["version"], 1);
    let second = host
        .write_resource("verdict", "current", r#"{"ok":false}"#)
        .expect("written");
    assert_eq!(second["version"], 2);
    let base = dir.path().join("data/web/resources/verdict/current");
    assert_eq!(
        std::fs::read_to_string(base.join("latest")).expect("latest"),
        "2\n"
    );
    for version in ["1", "2"] {
        let bytes = std::fs::read(base.join(version).join("data.json")).expect("data");
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(base.join(version).join("meta.json")).expect("meta"),
        )
        .expect("json");
        assert_eq!(meta["sha256"], random::hex(&Sha256::digest(&bytes)));
        assert_eq!(meta["size"], bytes.len());
        assert_eq!(meta["runId"], "20260301T120000Z-00000001");
        assert_eq!(meta["contentType"], "application/json");
    }
    assert_eq!(host.handles().len(), 2);
    assert_eq!(
        host.read_resource("verdict", "current", None)
            .expect("read"),
        Some(r#"{"ok":false}"#.to_owned())
    );
    assert_eq!(
        host.read_resource("verdict", "current", Some(1))
            .expect("read"),
        Some(r#"{"ok":true}"#.to_owned())
    );
    assert_eq!(
        host.list_resources(None).expect("list"),
        json!([{"spec": "verdict", "instance": "current", "latest": 2}])
    );
}

#[test]
fn a_version_dir_beyond_latest_is_not_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let base = dir.path().join("data/web/resources/verdict/current");
    std::fs::create_dir_all(base.join("5")).expect("mkdir");
    std::fs::write(base.join("latest"), "3\n").expect("latest");
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    let handle = host
        .write_resource("verdict", "current", r#"{"ok":true}"#)
        .expect("written");
    assert_eq!(handle["version"], 6);
}

#[test]
fn schema_violations_and_bad_names_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    let error = host
        .write_resource("verdict", "current", r#"{"ok":"yes"}"#)
        .expect_err("violates");
    assert_eq!(error.code, "resource_schema_violation");
    assert!(error.message.contains("/ok:"), "{}", error.message);
    assert_eq!(
        host.write_resource("nope", "current", "{}")
            .expect_err("unknown")
            .code,
        "invalid_argument"
    );
    assert_eq!(
        host.write_resource("verdict", "../x", "{}")
            .expect_err("bad")
            .code,
        "invalid_argument"
    );
    assert!(!dir.path().join("data").exists());
    assert!(host.handles().is_empty());
}

#[test]
fn run_records_are_created_once_and_the_latest_is_found_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let model = ModelName::parse("web").expect("name");
    assert_eq!(data.latest_run(&model).expect("none"), None);
    let record = |run_id: &str| RunRecord {
        run_id: run_id.to_owned(),
        model: "web".to_owned(),
        type_name: "@acme/net/endpoint".to_owned(),
        type_version: "2026.03.01.1".to_owned(),
        method: "record".to_owned(),
        args: json!({}),
        status: RunStatus::Succeeded,
        error: None,
        started_at: "2026-03-01T12:00:00.000Z".to_owned(),
        finished_at: "2026-03-01T12:00:00.010Z".to_owned(),
        duration_ms: 10,
        handles: Vec::new(),
        result: Value::Null,
        stack: None,
    };
    data.write_run_record(&record("20260301T120000Z-0000000a"))
        .expect("written");
    data.write_run_record(&record("20260302T120000Z-00000001"))
        .expect("written");
    assert!(data
        .write_run_record(&record("20260302T120000Z-00000001"))
        .is_err());
    assert_eq!(
        data.latest_run(&model).expect("found").as_deref(),
        Some("20260302T120000Z-00000001")
    );
    let id = data.new_run_id("2026-03-01T12:00:05.123Z");
    assert!(id.starts_with("20260301T120005Z-"), "{id}");
    assert!(is_run_id(&id));
}

#[cfg(unix)]
#[test]
fn symlinks_planted_in_the_store_are_never_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("data.json"), r#"{"secret":1}"#).expect("secret");
    let data = store(dir.path());
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    let spec_dir = dir.path().join("data/web/resources/verdict");
    std::fs::create_dir_all(&spec_dir).expect("mkdir");

    // An instance directory that is a link: writes and reads refuse it.
    symlink(&outside, spec_dir.join("current")).expect("symlink");
    let error = host
        .write_resource("verdict", "current", r#"{"ok":true}"#)
        .expect_err("denied");
    assert_eq!(error.code, "path_denied", "{}", error.message);
    assert_eq!(
        host.read_resource("verdict", "current", None)
            .expect_err("denied")
            .code,
        "path_denied"
    );
    assert_eq!(host.list_resources(None).expect("listed"), json!([]));
    assert_eq!(
        std::fs::read_dir(&outside).expect("outside").count(),
        1,
        "nothing was written outside the store"
    );

    // A version directory or a `latest` that is a link: reads refuse it.
    let real = spec_dir.join("real");
    std::fs::create_dir_all(&real).expect("mkdir");
    symlink(&outside, real.join("1")).expect("symlink");
    assert_eq!(
        host.read_resource("verdict", "real", Some(1))
            .expect_err("denied")
            .code,
        "path_denied"
    );
    std::fs::write(outside.join("latest"), "1\n").expect("latest");
    symlink(outside.join("latest"), real.join("latest")).expect("symlink");
    assert_eq!(
        host.read_resource("verdict", "real", None)
            .expect_err("denied")
            .code,
        "path_denied"
    );
    // A `data.json` that is a link to a file outside.
    let linked = spec_dir.join("linked");
    std::fs::create_dir_all(linked.join("1")).expect("mkdir");
    symlink(outside.join("data.json"), linked.join("1/data.json")).expect("symlink");
    assert_eq!(
        host.read_resource("verdict", "linked", Some(1))
            .expect_err("denied")
            .code,
        "path_denied"
    );

    // The `resources` and `runs` directories themselves.
    let other = tempfile::tempdir().expect("tempdir");
    let data = store(other.path());
    std::fs::create_dir_all(other.path().join("data/web")).expect("mkdir");
    symlink(&outside, other.path().join("data/web/resources")).expect("symlink");
    symlink(&outside, other.path().join("data/web/runs")).expect("symlink");
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    assert_eq!(
        host.write_resource("verdict", "current", r#"{"ok":true}"#)
            .expect_err("denied")
            .code,
        "path_denied"
    );
    let record = RunRecord {
        run_id: "20260301T120000Z-00000001".to_owned(),
        model: "web".to_owned(),
        type_name: "@acme/net/endpoint".to_owned(),
        type_version: "2026.03.01.1".to_owned(),
        method: "record".to_owned(),
        args: json!({}),
        status: RunStatus::Succeeded,
        error: None,
        started_at: "2026-03-01T12:00:00.000Z".to_owned(),
        finished_at: "2026-03-01T12:00:00.010Z".to_owned(),
        duration_ms: 10,
        handles: Vec::new(),
        result: Value::Null,
        stack: None,
    };
    assert!(data.write_run_record(&record).is_err());
    assert!(data
        .write_run_record(&RunRecord {
            model: "../escape".to_owned(),
            ..record
        })
        .is_err());
    assert_eq!(std::fs::read_dir(&outside).expect("outside").count(), 2);
}

#[test]
fn a_damaged_data_file_is_an_error_not_a_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    host.write_resource("verdict", "current", r#"{"ok":true}"#)
        .expect("written");
    let file = dir
        .path()
        .join("data/web/resources/verdict/current/1/data.json");
    // Text that would break out of the sandbox's `{"value": ...}` envelope.
    std::fs::write(&file, r#"null,"error":{"code":"x","message":"y"}"#).expect("damage");
    let error = host
        .read_resource("verdict", "current", None)
        .expect_err("refused");
    assert_eq!(error.code, "io");
    assert!(
        error.message.contains("not valid JSON"),
        "{}",
        error.message
    );
    std::fs::write(&file, vec![b' '; 8 * 1024 * 1024 + 1]).expect("grow");
    assert!(host
        .read_resource("verdict", "current", None)
        .expect_err("too big")
        .message
        .contains("more than any resource"));
}

#[test]
fn a_latest_at_the_top_of_the_range_does_not_wrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = store(dir.path());
    let base = dir.path().join("data/web/resources/verdict/current");
    std::fs::create_dir_all(&base).expect("mkdir");
    std::fs::write(base.join("latest"), format!("{}\n", u64::MAX)).expect("latest");
    let host = data.begin_run(scope("20260301T120000Z-00000001"));
    let error = host
        .write_resource("verdict", "current", r#"{"ok":true}"#)
        .expect_err("no version left");
    assert_eq!(error.code, "io");
    assert!(!base.join("0").exists());
}

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

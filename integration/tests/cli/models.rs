//! Models (spec 30 §6, §7.8 on the `local` datastore, §9 scenarios 3, 15, 22-30):
//! `fen model create | list | method run` and `fen datastore lock status | release`
//! through the binary, on the generated fixture and on small hand-written types.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fixture::{local_bundle, ok, Repo, Stats};

/// A type requiring `url`, with `port` (integer), `tag` (string) and
/// `expectStatus` (default 200), a `verdict` resource and methods covering the
/// failure modes of spec 30 §2.9 and §6.6.
pub(crate) const ENDPOINT: &str = r#"import { defineModel, FenError } from "fen:sdk";

export const model = defineModel({
  type: "@acme/net/endpoint",
  version: "2026.03.01.1",
  description: "Tracks the health verdict of one HTTP endpoint",
  globalArguments: {
    type: "object",
    properties: {
      url: { type: "string" },
      port: { type: "integer" },
      tag: { type: "string" },
      expectStatus: { type: "integer", default: 200 },
    },
    required: ["url"],
    additionalProperties: false,
  },
  resources: {
    verdict: {
      description: "Latest verdict",
      schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"] },
    },
  },
  methods: {
    record: {
      description: "Record a verdict from an observed status code",
      arguments: { type: "object", properties: { observed: { type: "integer" } }, required: ["observed"] },
      run(args, ctx) {
        const ok = args.observed === ctx.globalArgs.expectStatus;
        const h = ctx.writeResource("verdict", "current", { ok });
        const back = ctx.readResource("verdict", "current");
        return { ok, version: h.version, readBack: back.ok, listed: ctx.listResources("verdict").length };
      },
    },
    badWrite: {
      description: "Writes data that violates the schema",
      arguments: { type: "object" },
      run(_args, ctx) { ctx.writeResource("verdict", "current", { ok: "yes" }); },
    },
    refuse: {
      description: "Throws a FenError",
      arguments: { type: "object" },
      run() { throw new FenError("the endpoint refused the check", { code: "refused" }); },
    },
    crash: {
      description: "Throws a TypeError",
      arguments: { type: "object" },
      run() { null.field; },
    },
    spin: {
      description: "Loops forever",
      arguments: { type: "object" },
      run() { for (;;) {} },
    },
    hog: {
      description: "Allocates without bound",
      arguments: { type: "object" },
      run() { const keep = []; for (;;) keep.push(new Array(100000).fill(keep.length)); },
    },
    globals: {
      description: "Looks for host globals",
      arguments: { type: "object" },
      run() {
        return [typeof Deno, typeof process, typeof require, typeof fetch, typeof setTimeout];
      },
    },
  },
});
"#;

/// A repo with the endpoint type, indexed.
pub(crate) fn endpoint_repo() -> Repo {
    let repo = Repo::new();
    repo.write("extensions/models/endpoint.ts", ENDPOINT);
    repo.age_all();
    repo.search_stats();
    repo
}

/// `endpoint_repo` plus model `web` (url given, expectStatus defaulted).
pub(crate) fn web_repo() -> Repo {
    let repo = endpoint_repo();
    repo.ok(&[
        "model",
        "create",
        "@acme/net/endpoint",
        "web",
        "--arg",
        "url=https://example.org/",
    ]);
    repo
}

pub(crate) fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"))
}

pub(crate) fn run_records(repo: &Repo, model: &str) -> Vec<Value> {
    let dir = repo.path(&format!(".fen/data/{model}/runs"));
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn lock_files(repo: &Repo) -> Vec<String> {
    crate::fixture::files_under(&repo.path(".fen/locks"))
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

// ---- scenarios 3 and 15: what a method run evaluates and rebuilds ----

const VPC_AUDIT: &str = r#"export const extension = {
  type: "@fixture/aws/ec2/vpc",
  methods: { audit: { description: "a", arguments: { type: "object" }, run() { return "audited"; } } },
};
"#;

const VPC_TAGS: &str = r#"export const extension = {
  type: "@fixture/aws/ec2/vpc",
  resources: { tags: { schema: { type: "object" } } },
  methods: { tag: { description: "t", arguments: { type: "object" }, run(_a, ctx) { ctx.writeResource("tags", "all", {}); } } },
};
"#;

/// The generated fixture with two extensions of the vpc type, indexed, and model
/// `net` of that type.
fn vpc_repo() -> Repo {
    let repo = Repo::new();
    repo.write_generated();
    repo.write("extensions/models/vpc_audit.ts", VPC_AUDIT);
    repo.write("extensions/models/vpc_tags.ts", VPC_TAGS);
    repo.age_all();
    let cold = repo.search_stats();
    assert_eq!(cold.built, 14, "{cold:?}");
    repo.ok(&[
        "model",
        "create",
        "@fixture/aws/ec2/vpc",
        "net",
        "--arg",
        "region=eu-west-1",
    ]);
    repo
}

#[test]
fn scenario_3_a_method_run_evaluates_the_base_and_its_extensions_only() {
    let repo = vpc_repo();
    let out = repo.ok(&["--stats", "model", "method", "run", "net", "refresh"]);
    let stats = Stats::of(&out);
    assert_eq!(stats.built, 0, "{stats:?}");
    assert_eq!(stats.locks, 0, "{stats:?}");
    assert_eq!(
        stats.evaluated_paths,
        vec![
            local_bundle("ec2_vpc"),
            local_bundle("vpc_audit"),
            local_bundle("vpc_tags"),
        ]
    );
    let cache = &crate::fixture::stats(&out)["bundleCache"];
    assert_eq!(
        (cache["hits"].as_u64(), cache["misses"].as_u64()),
        (Some(0), Some(1)),
        "{cache}"
    );
    assert_eq!(cache["entries"], 1, "{cache}");
    // Extension methods run in the same instance with the merged resources.
    let tag = repo
        .ok(&["--json", "model", "method", "run", "net", "tag"])
        .json();
    assert_eq!(tag["handles"][0]["spec"], "tags");
    let audit = repo
        .ok(&["--json", "model", "method", "run", "net", "audit"])
        .json();
    assert_eq!(audit["result"], "audited");
}

#[test]
fn scenario_15_a_deleted_bundle_is_rebuilt_and_the_run_succeeds() {
    let repo = vpc_repo();
    std::fs::remove_file(repo.path(&local_bundle("ec2_vpc"))).unwrap();
    let out = repo.ok(&[
        "--stats", "--json", "model", "method", "run", "net", "refresh",
    ]);
    assert_eq!(out.json()["status"], "succeeded");
    assert_eq!(Stats::of(&out).built, 1);
    assert!(repo.path(&local_bundle("ec2_vpc")).exists());
}

/// The table of spec 30 §5.5 on an unchanged tree: what each model command builds,
/// evaluates and locks.
#[test]
fn model_commands_touch_exactly_the_bundles_of_the_table() {
    let repo = vpc_repo();
    let three = vec![
        local_bundle("ec2_vpc"),
        local_bundle("vpc_audit"),
        local_bundle("vpc_tags"),
    ];
    // `model create`: 1 + E(type).
    let create = repo.ok(&[
        "--stats",
        "model",
        "create",
        "@fixture/aws/ec2/vpc",
        "edge",
        "--arg",
        "region=eu-west-1",
    ]);
    let stats = Stats::of(&create);
    assert_eq!((stats.built, stats.locks), (0, 0), "{stats:?}");
    assert_eq!(stats.evaluated_paths, three);
    // `model list`: nothing.
    let list = Stats::of(&repo.ok(&["--stats", "model", "list"]));
    assert_eq!(
        (list.built, list.evaluated, list.locks),
        (0, 0, 0),
        "{list:?}"
    );
    // `datastore lock status`: no build_index at all, so not even the catalog.
    let status = repo.ok(&["--stats", "datastore", "lock", "status"]);
    let raw = crate::fixture::stats(&status);
    assert_eq!(raw["catalogStatements"], 0, "{raw}");
    assert_eq!(raw["bundlesEvaluated"], 0, "{raw}");
}

// ---- create (scenarios 22-24) ----

#[test]
fn scenario_22_a_missing_required_argument_writes_nothing() {
    let repo = endpoint_repo();
    let out = repo.fen(&["model", "create", "@acme/net/endpoint", "web"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("/: missing required property \"url\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        error_line(&out.stderr),
        "error: invalid global arguments for model \"web\" (type @acme/net/endpoint): /: missing required property \"url\""
    );
    assert!(!repo.path("models/web.yaml").exists());
    let json = repo.fen(&[
        "--json",
        "model",
        "create",
        "@acme/net/endpoint",
        "web",
        "--arg",
        "port=x",
    ]);
    assert_eq!(json.code, 3);
    let error = &json.json()["error"];
    assert_eq!(error["code"], "invalid_arguments");
    let violations = error["violations"].as_array().unwrap();
    assert!(violations
        .contains(&json!({"pointer": "/", "message": "missing required property \"url\""})));
    assert!(
        violations.iter().any(|v| v["pointer"] == "/port"),
        "{violations:?}"
    );
}

#[test]
fn scenario_23_arg_values_are_coerced_by_the_property_type() {
    let repo = endpoint_repo();
    repo.ok(&[
        "model",
        "create",
        "@acme/net/endpoint",
        "m",
        "--arg",
        "port=8080",
        "--arg",
        "tag=8080",
        "--arg",
        "url=x",
    ]);
    let text = repo.read("models/m.yaml");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(lines.contains(&"port: 8080"), "{text}");
    assert!(
        lines.contains(&"tag: '8080'") || lines.contains(&"tag: \"8080\""),
        "{text}"
    );
    assert!(lines.contains(&"name: m"), "{text}");
    assert!(lines.contains(&"typeVersion: 2026.03.01.1"), "{text}");
    // Defaults are not written.
    assert!(!text.contains("expectStatus"), "{text}");
}

#[test]
fn scenario_24_an_existing_model_is_left_byte_identical() {
    let repo = endpoint_repo();
    repo.write(
        "models/web.yaml",
        "# mine\nname: web\ntype: \"@acme/net/endpoint\"\n",
    );
    let before = std::fs::read(repo.path("models/web.yaml")).unwrap();
    let out = repo.fen(&[
        "model",
        "create",
        "@acme/net/endpoint",
        "web",
        "--arg",
        "url=x",
    ]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(error_line(&out.stderr).contains("model \"web\" already exists"));
    assert_eq!(std::fs::read(repo.path("models/web.yaml")).unwrap(), before);
    let json = repo.fen(&["--json", "model", "create", "@acme/net/endpoint", "web"]);
    assert_eq!(json.json()["error"]["code"], "model_exists");
}

#[test]
fn create_refuses_an_unknown_type_with_suggestions() {
    let repo = endpoint_repo();
    let out = repo.fen(&["--json", "model", "create", "@acme/net/endpont", "web"]);
    assert_eq!(out.code, 3);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "unknown_type");
    assert_eq!(error["suggestions"], json!(["@acme/net/endpoint"]));
    assert!(!repo.path("models").exists());
}

// ---- runs (scenarios 25-30) ----

#[test]
fn scenario_25_two_runs_write_versions_1_and_2_with_digests_and_records() {
    let repo = web_repo();
    let first = repo.ok(&[
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=200",
    ]);
    assert!(
        first.stdout.starts_with("succeeded: web.record (run "),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("wrote verdict/current v1 (11 B)"),
        "{}",
        first.stdout
    );
    let second = repo
        .ok(&[
            "--json",
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=500",
        ])
        .json();
    assert_eq!(second["status"], "succeeded");
    assert_eq!(
        second["result"],
        json!({"ok": false, "version": 2, "readBack": false, "listed": 1})
    );
    assert_eq!(second["args"], json!({"observed": 500}));
    assert_eq!(second["handles"][0]["version"], 2);
    let base = repo.path(".fen/data/web/resources/verdict/current");
    assert_eq!(std::fs::read_to_string(base.join("latest")).unwrap(), "2\n");
    for version in ["1", "2"] {
        let data = std::fs::read(base.join(version).join("data.json")).unwrap();
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(base.join(version).join("meta.json")).unwrap(),
        )
        .unwrap();
        let digest: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(meta["sha256"], digest);
        assert_eq!(meta["size"], data.len());
        assert_eq!(meta["model"], "web");
        assert_eq!(meta["type"], "@acme/net/endpoint");
    }
    let records = run_records(&repo, "web");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["status"] == "succeeded"));
    assert!(
        records.contains(&second),
        "the record printed is the record stored"
    );
    // Run ids sort by start second, then by their random suffix: the newest name wins.
    let newest = records
        .iter()
        .map(|r| r["runId"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    let list = repo.ok(&["--json", "model", "list"]).json();
    assert_eq!(
        list["models"],
        json!([{"name": "web", "type": "@acme/net/endpoint", "status": "ok", "error": null,
                "latestRun": newest,
                "latestRunAt": format!("{}-{}-{}T{}:{}:{}Z", &newest[0..4], &newest[4..6],
                    &newest[6..8], &newest[9..11], &newest[11..13], &newest[13..15])}])
    );
    assert!(lock_files(&repo).is_empty());
}

#[test]
fn scenario_26_invalid_method_arguments_take_no_datastore_lock() {
    let repo = web_repo();
    let events = repo.path("events.jsonl");
    let out = repo.fen_env(
        &[("FEN_EVENTS_FILE", events.to_str().unwrap())],
        &[
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=lots",
        ],
    );
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        error_line(&out.stderr).starts_with(
            "error: invalid arguments for method \"record\" of model \"web\": /observed: \"lots\" is not of type \"integer\""
        ),
        "{}",
        out.stderr
    );
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    for line in text.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let name = event["event"].as_str().unwrap();
        assert!(!name.starts_with("sync_"), "{line}");
        assert!(!name.starts_with("method_"), "{line}");
        if name.starts_with("lock_") {
            assert_eq!(event["lock"], "lifecycle", "{line}");
        }
    }
    assert!(run_records(&repo, "web").is_empty());
    // The successful run emits lock, method and lock events in this order.
    std::fs::remove_file(&events).ok();
    ok(repo.fen_env(
        &[("FEN_EVENTS_FILE", events.to_str().unwrap())],
        &[
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ],
    ));
    let order: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["model"] == "web")
        .map(|e| {
            format!(
                "{}:{}",
                e["event"].as_str().unwrap(),
                e["lock"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "lock_acquired:model/web",
            "method_start:",
            "method_end:",
            "lock_released:model/web"
        ]
    );
}

const ENDPOINT_AUDIT: &str = r#"export const extension = {
  type: "@acme/net/endpoint",
  resources: { audit: { schema: { type: "object" } } },
  methods: {
    audit: {
      description: "Write an audit note",
      arguments: { type: "object" },
      run(_args, ctx) { return ctx.writeResource("audit", "latest", { at: ctx.runId }).version; },
    },
  },
};
"#;

const ENDPOINT_RECORD: &str = r#"export const extension = {
  type: "@acme/net/endpoint",
  methods: {
    record: { description: "Shadows the base", arguments: { type: "object" }, run() { return "extension"; } },
  },
};
"#;

#[test]
fn scenario_27_a_conflicting_extension_method_does_not_attach() {
    let repo = Repo::new();
    repo.write("extensions/models/endpoint.ts", ENDPOINT);
    repo.write("extensions/models/x_audit.ts", ENDPOINT_AUDIT);
    repo.write("extensions/models/x_record.ts", ENDPOINT_RECORD);
    repo.age_all();
    repo.search_stats();
    repo.ok(&[
        "model",
        "create",
        "@acme/net/endpoint",
        "web",
        "--arg",
        "url=x",
    ]);
    let out = repo.ok(&["model", "method", "run", "web", "audit"]);
    assert!(
        out.stdout.contains("wrote audit/latest v1"),
        "{}",
        out.stdout
    );
    let warning = out
        .stderr
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("\"record\""))
        .unwrap_or_else(|| panic!("no conflict warning: {}", out.stderr));
    assert!(warning.contains("x_record.ts"), "{warning}");
    assert!(warning.contains("from base"), "{warning}");
    let record = repo
        .ok(&[
            "--json",
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ])
        .json();
    assert_eq!(record["result"]["ok"], true, "the base method ran");
    let described = repo
        .ok(&["--json", "model", "type", "describe", "@acme/net/endpoint"])
        .json();
    let methods = described["methods"].as_array().unwrap();
    let origin = |name: &str| {
        methods
            .iter()
            .filter(|m| m["name"] == name)
            .map(|m| m["origin"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(origin("record"), ["base"]);
    assert!(origin("audit")[0].ends_with("extensions/models/x_audit.ts"));
}

#[test]
fn scenario_28_a_method_looping_forever_hits_the_time_limit_and_releases_its_lock() {
    let repo = web_repo();
    let out = repo.fen(&[
        "model",
        "method",
        "run",
        "web",
        "spin",
        "--timeout-ms",
        "200",
    ]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert_eq!(
        error_line(&out.stderr),
        "error: method \"spin\" of model \"web\" (type @acme/net/endpoint, source extensions/models/endpoint.ts) exceeded the execution time limit of 200 ms; the run was recorded as limit_exceeded"
    );
    assert!(
        out.stderr.contains("hint: raise it with --timeout-ms"),
        "{}",
        out.stderr
    );
    let records = run_records(&repo, "web");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], "limit_exceeded");
    assert_eq!(records[0]["error"]["code"], "sandbox_time_limit");
    let status = repo.ok(&["--json", "datastore", "lock", "status"]).json();
    assert_eq!(status["locks"], json!([]));
    assert!(lock_files(&repo).is_empty());
}

#[test]
fn scenario_29_unbounded_allocation_hits_the_memory_limit() {
    let repo = web_repo();
    let out = repo.fen(&[
        "--json",
        "model",
        "method",
        "run",
        "web",
        "hog",
        "--memory-mb",
        "32",
    ]);
    assert_eq!(out.code, 7, "{}", out.stdout);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "sandbox_memory_limit");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("exceeded the memory limit of 32 MiB"),
        "{error}"
    );
    assert_eq!(error["status"], "limit_exceeded");
    assert_eq!(error["run"], run_records(&repo, "web")[0]);
    assert_eq!(run_records(&repo, "web")[0]["status"], "limit_exceeded");
    assert!(lock_files(&repo).is_empty());
}

#[test]
fn scenario_30_host_globals_are_absent() {
    let repo = web_repo();
    let out = repo
        .ok(&["--json", "model", "method", "run", "web", "globals"])
        .json();
    assert_eq!(out["result"], json!(vec!["undefined"; 5]));
}

#[test]
fn a_fen_error_is_one_line_with_its_code_and_is_recorded() {
    let repo = web_repo();
    let out = repo.fen(&["model", "method", "run", "web", "refuse"]);
    assert_eq!(out.code, 7);
    assert_eq!(
        error_line(&out.stderr),
        "error: the endpoint refused the check"
    );
    let json = repo
        .fen(&["--json", "model", "method", "run", "web", "refuse"])
        .json();
    assert_eq!(json["error"]["code"], "method_threw");
    assert_eq!(json["error"]["extensionCode"], "refused");
    let records = run_records(&repo, "web");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r["status"] == "failed"
        && r["error"]["code"] == "method_threw"
        && r["result"].is_null()));
}

#[test]
fn another_thrown_value_names_method_and_model() {
    let repo = web_repo();
    let out = repo.fen(&["--json", "model", "method", "run", "web", "crash"]);
    assert_eq!(out.code, 7);
    let error = &out.json()["error"];
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("method \"crash\" of model \"web\" threw: TypeError: "),
        "{message}"
    );
    assert!(error["stack"].is_string(), "{error}");
}

#[test]
fn a_schema_violating_write_throws_and_writes_nothing() {
    let repo = web_repo();
    let out = repo.fen(&["--json", "model", "method", "run", "web", "badWrite"]);
    assert_eq!(out.code, 7);
    let error = &out.json()["error"];
    assert_eq!(error["extensionCode"], "resource_schema_violation");
    assert!(
        error["message"].as_str().unwrap().contains("/ok:"),
        "{error}"
    );
    assert!(!repo.path(".fen/data/web/resources").exists());
}

#[test]
fn an_unknown_model_suggests_close_names() {
    let repo = web_repo();
    let out = repo.fen(&["--json", "model", "method", "run", "wbe", "record"]);
    assert_eq!(out.code, 3);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "model_not_found");
    assert_eq!(error["suggestions"], json!(["web"]));
    assert_eq!(error["hint"], "did you mean web?");
}

#[test]
fn an_unknown_method_lists_the_available_ones_with_their_origin() {
    let repo = web_repo();
    let out = repo.fen(&["model", "method", "run", "web", "recrod"]);
    assert_eq!(out.code, 3);
    assert_eq!(
        error_line(&out.stderr),
        "error: model \"web\" (type @acme/net/endpoint) has no method \"recrod\""
    );
    let hint = out
        .stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap();
    assert!(hint.starts_with("hint: available methods: "), "{hint}");
    assert!(
        hint.contains("record (extensions/models/endpoint.ts)"),
        "{hint}"
    );
    assert!(
        hint.contains("refuse (extensions/models/endpoint.ts)"),
        "{hint}"
    );
}

#[test]
fn an_invalid_definition_names_file_line_and_column() {
    let repo = endpoint_repo();
    repo.write(
        "models/web.yaml",
        "name: web\ntype: \"@acme/net/endpoint\"\ncolour: red\n",
    );
    let out = repo.fen(&["model", "method", "run", "web", "record"]);
    assert_eq!(out.code, 3);
    let line = error_line(&out.stderr);
    assert!(line.starts_with("error: models/web.yaml:3:"), "{line}");
    assert!(line.contains("colour"), "{line}");
    let list = repo.ok(&["--json", "model", "list"]).json();
    assert_eq!(list["models"][0]["status"], "invalid_definition");
}

#[test]
fn model_list_reports_unknown_types_and_evaluates_nothing() {
    let repo = web_repo();
    repo.write(
        "models/gone.yaml",
        "name: gone\ntype: \"@acme/net/nothing\"\n",
    );
    let out = repo.ok(&["--stats", "model", "list"]);
    assert_eq!(Stats::of(&out).evaluated, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "gone  @acme/net/nothing  unknown type  never run",
            "web  @acme/net/endpoint  ok  never run"
        ]
    );
}

// ---- the per-model lock (spec 30 §7.7-§7.8, §7.10) ----

fn plant_lock(root: &Path, model: &str, acquired_at: &str, pid: u32) {
    let dir = root.join(".fen/locks/models");
    std::fs::create_dir_all(&dir).unwrap();
    let info = json!({
        "holder": "someone@elsewhere", "hostname": "elsewhere", "pid": pid,
        "acquiredAt": acquired_at, "ttlMs": 60000, "nonce": "planted-nonce", "fenVersion": "0.1.0",
    });
    std::fs::write(dir.join(format!("{model}.lock")), info.to_string()).unwrap();
}

#[test]
fn a_held_model_lock_times_out_naming_the_holder_and_a_stale_one_is_taken_over() {
    let repo = web_repo();
    let now = "2999-01-01T00:00:00.000Z"; // never older than its ttl
    plant_lock(repo.root(), "web", now, 4242);
    let events = repo.path("events.jsonl");
    let out = repo.fen_env(
        &[
            ("FEN_DATASTORE_LOCK_TIMEOUT_MS", "0"),
            ("FEN_EVENTS_FILE", events.to_str().unwrap()),
        ],
        &[
            "--json",
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ],
    );
    assert_eq!(out.code, 75, "{}", out.stdout);
    let waits: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "lock_wait")
        .collect();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert_eq!(waits[0]["lock"], "model/web");
    assert_eq!(waits[0]["holderPid"], 4242);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "datastore_lock_timeout");
    assert_eq!(error["holderPid"], 4242);
    assert!(
        error["message"].as_str().unwrap().contains("pid 4242"),
        "{error}"
    );
    assert!(run_records(&repo, "web").is_empty());
    // The planted lock is still there, untouched.
    assert!(repo
        .read(".fen/locks/models/web.lock")
        .contains("planted-nonce"));

    plant_lock(repo.root(), "web", "2020-01-01T00:00:00.000Z", 4242);
    let status = repo.ok(&["--json", "datastore", "lock", "status"]).json();
    assert_eq!(status["locks"][0]["key"], "model/web");
    assert_eq!(status["locks"][0]["stale"], true);
    repo.ok(&[
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=200",
    ]);
    assert!(lock_files(&repo).is_empty());
}

#[test]
fn lock_release_needs_force_and_prints_the_former_holder() {
    let repo = web_repo();
    plant_lock(repo.root(), "web", "2999-01-01T00:00:00.000Z", 4242);
    let refused = repo.fen(&["datastore", "lock", "release", "--model", "web"]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(
        error_line(&refused.stderr),
        "error: the following required arguments were not provided: --force"
    );
    assert!(repo.path(".fen/locks/models/web.lock").exists());
    let released = repo.ok(&["datastore", "lock", "release", "--force", "--model", "web"]);
    assert!(
        released
            .stdout
            .starts_with("released model/web, held by someone@elsewhere (pid 4242 on elsewhere)"),
        "{}",
        released.stdout
    );
    assert!(!repo.path(".fen/locks/models/web.lock").exists());
    let again = repo.ok(&["datastore", "lock", "release", "--force", "--model", "web"]);
    assert_eq!(again.stdout.trim(), "no lock held (model/web)");
}

#[test]
fn an_unknown_extension_datastore_type_fails_before_the_run_naming_the_type() {
    let repo = web_repo();
    repo.write(
        ".fen/datastore.yaml",
        "type: \"@acme/packed-store\"\nremote: /mnt/x\n",
    );
    let out = repo.fen(&[
        "--json",
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=1",
    ]);
    assert_eq!(out.code, 3);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "unknown_type");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("datastore type \"@acme/packed-store\""),
        "{error}"
    );
    assert!(run_records(&repo, "web").is_empty());
}

#[test]
fn a_damaged_bundle_is_rebuilt_when_its_type_is_loaded() {
    let repo = vpc_repo();
    // The file exists, so the warm pass keeps the row; opening it fails its check.
    repo.write(&local_bundle("ec2_vpc"), "{\"damaged\": true}");
    let out = repo.ok(&[
        "--stats", "--json", "model", "method", "run", "net", "refresh",
    ]);
    assert_eq!(out.json()["status"], "succeeded");
    let stats = Stats::of(&out);
    assert_eq!(stats.built, 1, "{stats:?}");
    assert!(
        stats.locks >= 1,
        "the rebuild commits under the lifecycle lock: {stats:?}"
    );
    assert!(!repo.read(&local_bundle("ec2_vpc")).contains("damaged"));
    // The next run finds everything in place.
    let again = Stats::of(&repo.ok(&["--stats", "model", "method", "run", "net", "refresh"]));
    assert_eq!((again.built, again.locks), (0, 0), "{again:?}");
}

#[test]
fn sigint_during_a_run_releases_the_model_lock_and_exits_130() {
    let repo = web_repo();
    let child = crate::util::fen(repo.root())
        .args([
            "model",
            "method",
            "run",
            "web",
            "spin",
            "--timeout-ms",
            "600000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run holds the lock from before the call until after the record: wait until
    // the lock file names this child, then interrupt it.
    let lock = repo.path(".fen/locks/models/web.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let held = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|info| info["pid"] == child.id());
        if held {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never took its lock"
        );
        std::thread::yield_now();
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out: crate::util::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(
        error_line(&out.stderr).starts_with("error: interrupted by SIGINT"),
        "{}",
        out.stderr
    );
    assert!(
        error_line(&out.stderr).contains("recorded as cancelled"),
        "{}",
        out.stderr
    );
    assert!(!lock.exists());
    // The call was cancelled and recorded before the lock went (spec 30 §2.10, §7.8).
    let records = run_records(&repo, "web");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["status"], "cancelled");
    assert_eq!(records[0]["error"]["code"], "interrupted");
}

#[test]
fn limits_out_of_range_are_usage_or_environment_errors() {
    let repo = web_repo();
    let flag = repo.fen(&[
        "model",
        "method",
        "run",
        "web",
        "record",
        "--timeout-ms",
        "0",
    ]);
    assert_eq!(flag.code, 2, "{}", flag.stderr);
    let flag = repo.fen(&[
        "model",
        "method",
        "run",
        "web",
        "record",
        "--memory-mb",
        "2048",
    ]);
    assert_eq!(flag.code, 2, "{}", flag.stderr);
    let env = repo.fen_env(
        &[("FEN_DATASTORE_LOCK_TIMEOUT_MS", "soon")],
        &[
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ],
    );
    assert_eq!(env.code, 3, "{}", env.stderr);
    assert!(error_line(&env.stderr).contains("FEN_DATASTORE_LOCK_TIMEOUT_MS"));
    assert!(run_records(&repo, "web").is_empty());
}

#[test]
fn concurrent_runs_on_one_model_are_serialized_by_its_lock() {
    let repo = web_repo();
    let spawn = || {
        crate::util::fen(repo.root())
            .args([
                "--json",
                "model",
                "method",
                "run",
                "web",
                "record",
                "--arg",
                "observed=200",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..4).map(|_| spawn()).collect();
    let mut versions: Vec<u64> = children
        .into_iter()
        .map(|child| {
            let out: crate::util::Run = child.wait_with_output().unwrap().into();
            assert_eq!(out.code, 0, "{}", out.stderr);
            out.json()["handles"][0]["version"].as_u64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4], "each run allocated its own version");
    assert_eq!(
        repo.read(".fen/data/web/resources/verdict/current/latest"),
        "4\n"
    );
    assert_eq!(run_records(&repo, "web").len(), 4);
    assert!(lock_files(&repo).is_empty());
}

/// Rewrites a bundle so its entry declares `to` instead of `from`, keeping it
/// internally consistent (`contentSha256` recomputed): only evaluation can tell.
fn retype_bundle(repo: &Repo, stem: &str, from: &str, to: &str) {
    let path = local_bundle(stem);
    let mut bundle: Value = serde_json::from_str(&repo.read(&path)).unwrap();
    let mut hasher = Sha256::new();
    for module in bundle["modules"].as_array_mut().unwrap() {
        let code = module["code"].as_str().unwrap().replace(from, to);
        hasher.update(module["id"].as_str().unwrap().as_bytes());
        hasher.update(b"\n");
        hasher.update(code.as_bytes());
        hasher.update(b"\n");
        module["code"] = json!(code);
    }
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    bundle["contentSha256"] = json!(digest);
    repo.write(&path, &format!("{bundle}\n"));
}

#[test]
fn a_bundle_declaring_another_type_is_unavailable_and_rebuilt_by_the_next_pass() {
    let repo = web_repo();
    retype_bundle(
        &repo,
        "endpoint",
        "@acme/net/endpoint",
        "@acme/net/impostor",
    );
    let out = repo.fen(&[
        "--stats",
        "--json",
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=200",
    ]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "type_unavailable");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("now declares @acme/net/impostor"),
        "{error}"
    );
    let stats = Stats::of(&out);
    assert!(
        stats.locks >= 1,
        "recorded under the lifecycle lock: {stats:?}"
    );
    // Spec 30 §5.3 step 4c: the row is recorded for a rebuild, its file evicted.
    assert_eq!(
        repo.sqlite(
            "select state from bundle_types where source_path like '%/extensions/models/endpoint.ts'"
        ),
        "BundleBuildFailed\n"
    );
    assert!(!repo.path(&local_bundle("endpoint")).exists());
    assert!(run_records(&repo, "web").is_empty(), "nothing ran");
    // The next command's pass rebuilds it from source and the run succeeds.
    let again = repo.ok(&[
        "--stats",
        "--json",
        "model",
        "method",
        "run",
        "web",
        "record",
        "--arg",
        "observed=200",
    ]);
    assert_eq!(again.json()["status"], "succeeded");
    assert_eq!(Stats::of(&again).built, 1);
    assert!(!repo.read(&local_bundle("endpoint")).contains("impostor"));
}

/// A type whose method logs and throws text meant to fake lines on the terminal.
const NOISY: &str = r#"import { defineModel, FenError } from "fen:sdk";

export const model = defineModel({
  type: "@acme/noisy",
  version: "2026.03.01.1",
  description: "Writes hostile text",
  globalArguments: { type: "object" },
  methods: {
    shout: {
      description: "Logs and throws text with newlines and escape sequences",
      arguments: { type: "object" },
      run(_args, ctx) {
        ctx.log.warn("first\nerror: a forged error line\u001b[2J");
        throw new FenError("real\u001b]0;pwned\u0007\nerror: forged too", { code: "x" });
      },
    },
  },
});
"#;

#[test]
fn extension_text_cannot_forge_lines_or_drive_the_terminal() {
    let repo = Repo::new();
    repo.write("extensions/models/noisy.ts", NOISY);
    repo.age_all();
    repo.ok(&["model", "create", "@acme/noisy", "loud"]);
    let out = repo.fen(&["model", "method", "run", "loud", "shout"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    assert!(!out.stderr.contains('\u{7}'), "{:?}", out.stderr);
    assert!(
        out.stderr
            .contains("[loud] warn: first\\u{a}error: a forged error line\\u{1b}[2J"),
        "{}",
        out.stderr
    );
}

#[test]
fn lock_status_shows_a_forged_holder_escaped() {
    let repo = Repo::new();
    repo.write(
        ".fen/locks/models/web.lock",
        &json!({
            "holder": "eve\n\u{1b}[2Jweb  held by nobody",
            "hostname": "h\u{7}",
            "pid": 1,
            "acquiredAt": "2020-01-01T00:00:00Z",
            "ttlMs": 30000,
            "nonce": "n",
            "fenVersion": "0.0.0",
        })
        .to_string(),
    );
    let out = repo.ok(&["datastore", "lock", "status"]);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        !out.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        out.stdout
    );
    assert!(out.stdout.contains("eve\\u{a}\\u{1b}[2J"), "{}", out.stdout);
}

#[test]
fn an_extension_bundle_extending_another_type_is_recorded_for_a_rebuild() {
    let repo = vpc_repo();
    retype_bundle(
        &repo,
        "vpc_audit",
        "@fixture/aws/ec2/vpc",
        "@fixture/aws/ec2/subnet",
    );
    let out = repo.fen(&["--json", "model", "method", "run", "net", "refresh"]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert_eq!(out.json()["error"]["code"], "type_unavailable");
    let state = |stem: &str| {
        repo.sqlite(&format!(
            "select state from bundle_types where source_path like '%/{stem}.ts'"
        ))
    };
    assert_eq!(state("ec2_vpc"), "Indexed\n");
    assert_eq!(state("vpc_audit"), "BundleBuildFailed\n");
    let again = repo.ok(&["--stats", "model", "method", "run", "net", "refresh"]);
    assert_eq!(Stats::of(&again).built, 1);
}

#[test]
fn sigint_while_waiting_for_the_model_lock_exits_130_and_runs_nothing() {
    let repo = web_repo();
    plant_lock(repo.root(), "web", "2999-01-01T00:00:00.000Z", 4242);
    let events = repo.path("events.jsonl");
    let child = crate::util::fen(repo.root())
        .env("FEN_DATASTORE_LOCK_TIMEOUT_MS", "600000")
        .env("FEN_EVENTS_FILE", &events)
        .args([
            "model",
            "method",
            "run",
            "web",
            "record",
            "--arg",
            "observed=200",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run reports that it waits for the lock, then interrupt it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"lock_wait\"")) {
        assert!(std::time::Instant::now() < deadline, "the run never waited");
        std::thread::yield_now();
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out: crate::util::Run = child.wait_with_output().unwrap().into();
    assert_eq!(out.code, 130, "{}", out.stderr);
    assert!(
        error_line(&out.stderr).ends_with("; nothing ran"),
        "{}",
        out.stderr
    );
    assert!(run_records(&repo, "web").is_empty());
    assert!(repo
        .read(".fen/locks/models/web.lock")
        .contains("planted-nonce"));
}

#[test]
fn model_list_shows_hostile_definition_text_on_one_line_without_escapes() {
    let repo = Repo::new();
    repo.write(
        "models/odd.yaml",
        "name: odd\ntype: \"@a/b\\u001b[2J\\nfake  row\"\n",
    );
    repo.write(
        "models/bad.yaml",
        "name: bad\ntype: x\n\"k\\u001b]0;t\\u0007\": 1\n",
    );
    let out = repo.ok(&["model", "list"]);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert!(
        !out.stdout.contains(['\u{1b}', '\u{7}']),
        "{:?}",
        out.stdout
    );
}

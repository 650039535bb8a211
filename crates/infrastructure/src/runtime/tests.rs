//! Tests of the QuickJS sandbox: limits, globals, module loading, isolation, export
//! snapshots and calls. Bundles are hand-written containers of plain JS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use fen_domain::ports::runtime::{
    BundleFile, BundleRuntime, CallError, CallInput, CallTarget, CtxError, ExportSnapshot, HostApi,
    HostError, InstantiateRequest, RuntimeError, SandboxLimits, TypeInstance,
};
use fen_domain::LoaderKind;

use super::{validate_export, ConsoleLevel, ConsoleSink, QuickJsBundleRuntime};

mod caps;

const ENTRY: &str = "local:/models/a.ts#abcdef012345";
const HELPER: &str = "local:/models/lib/helper.ts#abcdef012345";
const EXT_ENTRY: &str = "local:/models/audit.ts#0123456789ab";
const MIB: usize = 1024 * 1024;

/// A container with `modules` (id, code); the first module is the entry.
fn bundle(path: &str, modules: &[(&str, &str)]) -> Arc<BundleFile> {
    let entry = modules.first().map(|m| m.0).unwrap_or_default();
    let modules: Vec<Json> = modules
        .iter()
        .map(|(id, code)| json!({"id": id, "code": code, "map": null}))
        .collect();
    let container = json!({
        "format": "fen-bundle",
        "layout": "fen-bundle-1",
        "kind": "model",
        "entry": entry,
        "fingerprint": "0".repeat(64),
        "contentSha256": "0".repeat(64),
        "hostModules": ["fen:sdk"],
        "modules": modules,
    });
    Arc::new(BundleFile {
        path: path.to_owned(),
        contents: container.to_string(),
    })
}

fn single(code: &str) -> Arc<BundleFile> {
    bundle(
        "/repo/.fen/bundles/local/models/a.ts.bundle.json",
        &[(ENTRY, code)],
    )
}

/// A model module whose `methods` object literal is `methods`.
fn model_with(methods: &str) -> String {
    format!(
        r#"export const model = {{
  type: "@test/sandbox/probe",
  version: "2026.03.01.0",
  description: "probe",
  methods: {methods},
}};"#
    )
}

fn limits(time_ms: u64) -> SandboxLimits {
    SandboxLimits::evaluation().with_time(Duration::from_millis(time_ms))
}

fn runtime() -> QuickJsBundleRuntime {
    QuickJsBundleRuntime::new().expect("worker thread starts")
}

async fn instantiate(
    runtime: &QuickJsBundleRuntime,
    bundles: Vec<Arc<BundleFile>>,
    limits: SandboxLimits,
) -> Result<Arc<dyn TypeInstance>, RuntimeError> {
    runtime
        .instantiate(InstantiateRequest { bundles, limits })
        .await
}

async fn instance(code: &str) -> Arc<dyn TypeInstance> {
    instantiate(&runtime(), vec![single(code)], limits(2_000))
        .await
        .expect("instantiates")
}

/// Records `ctx.log` lines.
#[derive(Default)]
struct RecordingHost {
    lines: Mutex<Vec<String>>,
}

impl HostApi for RecordingHost {
    fn write_resource(&self, spec: &str, instance: &str, data: &str) -> Result<Json, CtxError> {
        if spec == "refused" {
            return Err(CtxError::new(
                "resource_schema_violation",
                "refused by the test",
            ));
        }
        self.lines
            .lock()
            .expect("not poisoned")
            .push(format!("write {spec}/{instance} {data}"));
        Ok(json!({ "spec": spec, "instance": instance, "version": 1 }))
    }
    fn read_resource(
        &self,
        spec: &str,
        instance: &str,
        version: Option<u64>,
    ) -> Result<Option<String>, CtxError> {
        Ok(Some(
            json!({ "read": format!("{spec}/{instance}"), "version": version }).to_string(),
        ))
    }
    fn list_resources(&self, spec: Option<&str>) -> Result<Json, CtxError> {
        Ok(json!([{ "spec": spec, "instance": "i", "latest": 1 }]))
    }
    fn log(&self, level: &str, message: &str) {
        self.lines
            .lock()
            .expect("not poisoned")
            .push(format!("{level}: {message}"));
    }
}

async fn call_with(
    instance: &Arc<dyn TypeInstance>,
    method: &str,
    input: CallInput,
    time_ms: u64,
) -> Result<Json, CallError> {
    instance
        .call(
            &CallTarget::ModelMethod {
                name: method.to_owned(),
            },
            input,
            Arc::new(RecordingHost::default()),
            SandboxLimits::method_run().with_time(Duration::from_millis(time_ms)),
        )
        .await
}

async fn call(
    instance: &Arc<dyn TypeInstance>,
    method: &str,
    args: Json,
) -> Result<Json, CallError> {
    let input = CallInput {
        args,
        ..CallInput::default()
    };
    call_with(instance, method, input, 2_000).await
}

fn evaluation_message(result: Result<Arc<dyn TypeInstance>, RuntimeError>) -> String {
    match result {
        Err(RuntimeError::Evaluation { message, .. }) => message,
        Err(other) => panic!("expected an evaluation error, got {other:?}"),
        Ok(_) => panic!("expected an evaluation error, got an instance"),
    }
}

#[tokio::test]
async fn top_level_infinite_loop_hits_the_time_limit() {
    let started = Instant::now();
    let result = instantiate(&runtime(), vec![single("while (true) {}")], limits(200)).await;
    let message = evaluation_message(result);
    assert_eq!(
        message,
        "module evaluation exceeded the time limit (200 ms)"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1_500), "{elapsed:?}");
}

#[tokio::test]
async fn method_infinite_loop_hits_the_time_limit_and_discards_the_instance() {
    let instance = instance(&model_with(
        "{ spin: { run() { for (;;) {} } }, ok: { run() { return 1; } } }",
    ))
    .await;
    let started = Instant::now();
    let result = call_with(&instance, "spin", CallInput::default(), 200).await;
    assert_eq!(
        result,
        Err(CallError::TimeLimit {
            limit: Duration::from_millis(200)
        })
    );
    assert!(started.elapsed() < Duration::from_millis(1_500));
    assert_eq!(
        call(&instance, "ok", Json::Null).await,
        Err(CallError::Unavailable)
    );
}

#[tokio::test]
async fn an_endless_promise_chain_hits_the_time_limit() {
    let instance = instance(&model_with(
        "{ chain: { async run() { for (;;) { await null; } } } }",
    ))
    .await;
    let result = call_with(&instance, "chain", CallInput::default(), 200).await;
    assert!(
        matches!(result, Err(CallError::TimeLimit { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn top_level_memory_bomb_names_the_memory_limit() {
    let code = "const hoard = []; for (;;) hoard.push(new Array(100000).fill(7));";
    let result = instantiate(
        &runtime(),
        vec![single(code)],
        limits(5_000).with_memory_bytes(16 * MIB),
    )
    .await;
    assert_eq!(
        evaluation_message(result),
        "module evaluation exceeded the memory limit (16 MiB)"
    );
}

#[tokio::test]
async fn a_caught_out_of_memory_is_still_a_memory_limit() {
    let instance = instance(&model_with(
        r#"{ hoard: { run() {
            const hoard = [];
            try { for (;;) hoard.push("x".repeat(65536) + hoard.length); }
            catch (e) { hoard.length = 0; return "caught " + e; }
        } } }"#,
    ))
    .await;
    let result = instance
        .call(
            &CallTarget::ModelMethod {
                name: "hoard".to_owned(),
            },
            CallInput::default(),
            Arc::new(RecordingHost::default()),
            SandboxLimits::method_run().with_memory_bytes(16 * MIB),
        )
        .await;
    assert_eq!(
        result,
        Err(CallError::MemoryLimit {
            limit_bytes: 16 * MIB
        })
    );
}

#[tokio::test]
async fn one_refused_allocation_counts_even_when_caught() {
    let code = r#"let note = "none";
try { new ArrayBuffer(64 * 1024 * 1024); } catch (e) { note = String(e); }
export const model = { note };"#;
    let result = instantiate(
        &runtime(),
        vec![single(code)],
        limits(2_000).with_memory_bytes(16 * MIB),
    )
    .await;
    assert_eq!(
        evaluation_message(result),
        "module evaluation exceeded the memory limit (16 MiB)"
    );
    let instance = instance(&model_with(
        "{ once: { run() { try { new ArrayBuffer(64 * 1024 * 1024); } catch (e) {} return 1; } } }",
    ))
    .await;
    let result = instance
        .call(
            &CallTarget::ModelMethod {
                name: "once".to_owned(),
            },
            CallInput::default(),
            Arc::new(RecordingHost::default()),
            SandboxLimits::method_run().with_memory_bytes(16 * MIB),
        )
        .await;
    assert_eq!(
        result,
        Err(CallError::MemoryLimit {
            limit_bytes: 16 * MIB
        })
    );
}

#[tokio::test]
async fn heap_bytes_are_counted() {
    let instance = instance(&model_with("{ ok: { run() { return 1; } } }")).await;
    let bytes = instance.heap_bytes();
    assert!(bytes > 10_000, "{bytes}");
    assert!(bytes < SandboxLimits::MEMORY_BYTES, "{bytes}");
}

#[tokio::test]
async fn host_globals_are_absent() {
    let instance = instance(&model_with(
        r#"{ globals: { run() {
            return {
                process: typeof process, fetch: typeof fetch, setTimeout: typeof setTimeout,
                setInterval: typeof setInterval, require: typeof require, Deno: typeof Deno,
                WebAssembly: typeof WebAssembly, std: typeof std, os: typeof os,
                queueMicrotask: typeof queueMicrotask, performance: typeof performance,
                navigator: typeof navigator, print: typeof print,
                console: typeof console, log: typeof console.log, JSON: typeof JSON,
                Promise: typeof Promise, Proxy: typeof Proxy, BigInt: typeof BigInt,
            };
        } } }"#,
    ))
    .await;
    let undefined = "undefined";
    assert_eq!(
        call(&instance, "globals", Json::Null).await,
        Ok(json!({
            "process": undefined, "fetch": undefined, "setTimeout": undefined,
            "setInterval": undefined, "require": undefined, "Deno": undefined,
            "WebAssembly": undefined, "std": undefined, "os": undefined,
            "queueMicrotask": undefined, "performance": undefined,
            "navigator": undefined, "print": undefined,
            "console": "object", "log": "function", "JSON": "object",
            "Promise": "function", "Proxy": "function", "BigInt": "function",
        }))
    );
}

#[tokio::test]
async fn dynamic_import_fails_at_top_level_and_in_methods() {
    let code = format!(
        r#"let topLevel;
try {{ await import("{ENTRY}"); topLevel = "imported"; }} catch (e) {{ topLevel = "failed"; }}
export const model = {{
  type: "@test/sandbox/probe", version: "2026.03.01.0", description: "probe",
  "x-top-level": topLevel,
  methods: {{ load: {{ async run(args) {{
    try {{ await import(args.id); return "imported"; }} catch (e) {{ return "failed: " + e.message; }}
  }} }} }},
}};"#
    );
    let instance = instance(&code).await;
    assert_eq!(instance.exports()[0].value["x-top-level"], json!("failed"));
    for id in ["x", ENTRY, "fen:sdk"] {
        let result = call(&instance, "load", json!({ "id": id })).await;
        let text = result.expect("the method catches");
        assert!(
            text.as_str().is_some_and(|t| t.starts_with("failed: ")),
            "{id}: {text}"
        );
    }
}

#[tokio::test]
async fn importing_an_id_outside_the_bundle_fails() {
    let code =
        "import { x } from \"local:/models/elsewhere.ts#abcdef012345\";\nexport const model = x;";
    let message =
        evaluation_message(instantiate(&runtime(), vec![single(code)], limits(2_000)).await);
    assert!(message.starts_with("module failed to load: "), "{message}");
    assert!(message.contains("elsewhere.ts"), "{message}");
}

#[tokio::test]
async fn static_imports_of_the_bundle_and_fen_sdk_resolve() {
    let entry = format!(
        r#"import {{ defineModel, SDK_VERSION, FenError }} from "fen:sdk";
import {{ double }} from "{HELPER}";
export const model = defineModel({{
  type: "@test/sandbox/probe", version: "2026.03.01.0", description: "probe",
  "x-sdk": SDK_VERSION, "x-fen-error": typeof FenError, "x-url": import.meta.url,
  methods: {{ double: {{ run(args) {{ return double(args.n); }} }} }},
}});"#
    );
    let helper = "export function double(n) { return n * 2; }";
    let bundles = vec![bundle("/b/a.json", &[(ENTRY, &entry), (HELPER, helper)])];
    let instance = instantiate(&runtime(), bundles, limits(2_000))
        .await
        .expect("instantiates");
    let value = &instance.exports()[0].value;
    assert_eq!(value["x-sdk"], json!("1"));
    assert_eq!(value["x-fen-error"], json!("function"));
    assert_eq!(value["x-url"], json!(ENTRY));
    assert_eq!(
        call(&instance, "double", json!({"n": 21})).await,
        Ok(json!(42))
    );
}

#[tokio::test]
async fn prototype_pollution_stays_in_its_instance_and_supplies_no_field() {
    let runtime = runtime();
    let polluter = r#"
Object.prototype.description = "from the prototype";
Object.prototype.polluted = "yes";
export const model = {
  type: "@test/sandbox/polluter", version: "2026.03.01.0",
  methods: { probe: { description: "d", arguments: { type: "object" }, run() { return ({}).polluted; } } },
};"#;
    let polluted = instantiate(&runtime, vec![single(polluter)], limits(2_000))
        .await
        .expect("instantiates");
    assert!(polluted.exports()[0].value.get("description").is_none());
    let error = validate_export(LoaderKind::Model, polluted.exports()).expect_err("no description");
    assert_eq!(error.to_string(), "model.description: missing");
    assert_eq!(call(&polluted, "probe", Json::Null).await, Ok(json!("yes")));

    let clean = instantiate(
        &runtime,
        vec![single(&model_with(
            "{ probe: { run() { return ({}).polluted; } } }",
        ))],
        limits(2_000),
    )
    .await
    .expect("instantiates");
    assert_eq!(call(&clean, "probe", Json::Null).await, Ok(Json::Null));
}

#[tokio::test]
async fn accessor_exports_are_rejected() {
    let code = r#"export const model = {
  get type() { return "@test/sandbox/probe"; },
  version: "2026.03.01.0", description: "probe", methods: {},
};"#;
    let result = instantiate(&runtime(), vec![single(code)], limits(2_000)).await;
    match result {
        Err(RuntimeError::InvalidExport { message, .. }) => {
            assert!(
                message.starts_with("model.type is an accessor property"),
                "{message}"
            )
        }
        Err(other) => panic!("expected InvalidExport, got {other:?}"),
        Ok(_) => panic!("expected InvalidExport, got an instance"),
    }
}

#[tokio::test]
async fn snapshots_hold_own_enumerable_data_and_function_markers() {
    let code = r#"
const base = { inherited: true };
const model = Object.create(base);
model.type = "@test/sandbox/probe";
model.version = "2026.03.01.0";
model.description = "probe";
Object.defineProperty(model, "hidden", { value: 1, enumerable: false });
model.numbers = [1, 2.5, 3.0, NaN, undefined, () => 1];
model.methods = { go: { description: "go", arguments: { type: "object" }, run() {} } };
export { model };
export const helper = { ignored: true };"#;
    let instance = instance(code).await;
    let exports = instance.exports();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].bundle, 0);
    assert_eq!(exports[0].key, "model");
    assert_eq!(
        exports[0].value,
        json!({
            "type": "@test/sandbox/probe",
            "version": "2026.03.01.0",
            "description": "probe",
            "numbers": [1, 2.5, 3, null, null, {"$fn": true}],
            "methods": {"go": {"description": "go", "arguments": {"type": "object"}, "run": {"$fn": true}}},
        })
    );
}

#[tokio::test]
async fn forged_markers_cycles_and_proxies_are_rejected() {
    let cases = [
        (
            "export const model = { run: { $fn: true } };",
            "model.run.$fn: the property name $fn is reserved by fen",
        ),
        (
            "const model = { a: {} }; model.a.back = model; export { model };",
            "model.a.back refers back to an enclosing object (a cycle)",
        ),
        (
            "export const model = { p: new Proxy({}, {}) };",
            "model.p is a Proxy",
        ),
        (
            "export const model = { n: 1n };",
            "model.n is a BigInt, which JSON cannot hold",
        ),
        (
            "export const model = Promise.resolve({});",
            "model is a Promise (await it at top level before exporting)",
        ),
    ];
    let runtime = runtime();
    for (code, expected) in cases {
        match instantiate(&runtime, vec![single(code)], limits(2_000)).await {
            Err(RuntimeError::InvalidExport { message, .. }) => assert_eq!(message, expected),
            Err(other) => panic!("{code}: {other:?}"),
            Ok(_) => panic!("{code}: accepted"),
        }
    }
}

#[tokio::test]
async fn zod_looking_schemas_fail_validation_end_to_end() {
    let code = r#"
const fakeZod = { _def: { typeName: "ZodObject" }, safeParse(value) { return { success: true }; } };
export const model = {
  type: "@test/sandbox/probe", version: "2026.03.01.0", description: "probe",
  globalArguments: fakeZod,
  methods: { go: { description: "go", arguments: { type: "object" }, run() {} } },
};"#;
    let instance = instance(code).await;
    let error = validate_export(LoaderKind::Model, instance.exports()).expect_err("zod");
    assert_eq!(
        error.to_string(),
        "model.globalArguments: fen uses JSON Schema, not zod"
    );
}

#[tokio::test]
async fn async_run_with_an_awaited_promise_returns_its_value() {
    let instance = instance(&model_with(
        "{ add: { async run(args) { const v = await Promise.resolve(args.n + 1); return { v }; } } }",
    ))
    .await;
    assert_eq!(
        call(&instance, "add", json!({"n": 1})).await,
        Ok(json!({"v": 2}))
    );
}

#[tokio::test]
async fn a_never_settling_promise_did_not_settle() {
    let instance = instance(&model_with(
        "{ wait: { run() { return new Promise(() => {}); } }, ok: { run() { return 1; } } }",
    ))
    .await;
    assert_eq!(
        call(&instance, "wait", Json::Null).await,
        Err(CallError::DidNotSettle)
    );
    // Not a limit: the instance stays usable.
    assert_eq!(call(&instance, "ok", Json::Null).await, Ok(json!(1)));
}

#[tokio::test]
async fn top_level_await_settles_or_reports_that_it_did_not() {
    let settled = "const x = await Promise.resolve(5);\nexport const model = { x };";
    let instance = instance(settled).await;
    assert_eq!(instance.exports()[0].value, json!({"x": 5}));

    let pending = "await new Promise(() => {});\nexport const model = {};";
    let message =
        evaluation_message(instantiate(&runtime(), vec![single(pending)], limits(2_000)).await);
    assert_eq!(message, "top-level await did not settle");
}

#[tokio::test]
async fn thrown_values_map_to_threw() {
    let code = r#"import { FenError } from "fen:sdk";
export const model = { methods: {
  fen: { run() { throw new FenError("the endpoint is down", { code: "endpoint_down" }); } },
  fenAsync: { async run() { await null; throw new FenError("later", { code: "late" }); } },
  type: { run() { null.x; } },
  text: { run() { throw "plain text"; } },
  deep: { run() { const f = () => f() + 1; return f(); } },
} };"#;
    let instance = instance(code).await;
    assert_eq!(
        call(&instance, "fen", Json::Null).await,
        Err(CallError::Threw {
            name: "FenError".to_owned(),
            message: "the endpoint is down".to_owned(),
            code: Some("endpoint_down".to_owned()),
            stack: None,
        })
    );
    match call(&instance, "fenAsync", Json::Null).await {
        Err(CallError::Threw { name, code, .. }) => {
            assert_eq!((name.as_str(), code.as_deref()), ("FenError", Some("late")))
        }
        other => panic!("{other:?}"),
    }
    match call(&instance, "type", Json::Null).await {
        Err(error @ CallError::Threw { .. }) => {
            let CallError::Threw {
                name, stack, code, ..
            } = &error
            else {
                unreachable!()
            };
            assert_eq!(name, "TypeError");
            assert_eq!(code, &None);
            assert!(
                stack.as_deref().is_some_and(|s| s.contains(ENTRY)),
                "{stack:?}"
            );
            assert!(error.to_string().starts_with("TypeError: "), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let text = call(&instance, "text", Json::Null)
        .await
        .expect_err("throws");
    assert_eq!(text.to_string(), "plain text");
    // A stack overflow is an ordinary error, not a limit; the instance lives on.
    match call(&instance, "deep", Json::Null).await {
        Err(CallError::Threw { name, .. }) => assert_eq!(name, "RangeError"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(&instance, "text", Json::Null).await,
        Err(CallError::Threw { .. })
    ));
}

#[tokio::test]
async fn invalid_returns_are_reported() {
    let instance = instance(&model_with(
        r#"{
  fn: { run() { return () => 1; } },
  cycle: { run() { const a = {}; a.a = a; return a; } },
  big: { run() { return { n: 1n }; } },
  nothing: { run() {} },
  date: { run() { return { at: new Date(0) }; } },
}"#,
    ))
    .await;
    for method in ["fn", "cycle", "big"] {
        let result = call(&instance, method, Json::Null).await;
        assert!(
            matches!(result, Err(CallError::InvalidReturn { .. })),
            "{method}: {result:?}"
        );
    }
    assert_eq!(call(&instance, "nothing", Json::Null).await, Ok(Json::Null));
    assert_eq!(
        call(&instance, "date", Json::Null).await,
        Ok(json!({"at": "1970-01-01T00:00:00.000Z"}))
    );
    assert_eq!(
        call(&instance, "missing", Json::Null).await,
        Err(CallError::MissingFunction {
            what: "methods.missing.run".to_owned()
        })
    );
}

#[tokio::test]
async fn ctx_carries_frozen_data_and_logs_and_expires() {
    let instance = instance(&model_with(
        r#"{
  show: { run(args, ctx) {
    ctx.log.info("hello", { n: args.n });
    globalThis.kept = ctx;
    let frozen;
    try { ctx.globalArgs.url = "changed"; frozen = false; } catch (e) { frozen = true; }
    return { url: ctx.globalArgs.url, frozen, remaining: ctx.remainingMs() > 0 };
  } },
  reuse: { run() { globalThis.kept.log.info("late"); } },
}"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let mut context = serde_json::Map::new();
    context.insert(
        "globalArgs".to_owned(),
        json!({"url": "https://example.test"}),
    );
    let result = instance
        .call(
            &CallTarget::ModelMethod {
                name: "show".to_owned(),
            },
            CallInput {
                args: json!({"n": 3}),
                context,
                ..CallInput::default()
            },
            host.clone(),
            SandboxLimits::method_run(),
        )
        .await;
    assert_eq!(
        result,
        Ok(json!({"url": "https://example.test", "frozen": true, "remaining": true}))
    );
    assert_eq!(
        *host.lines.lock().expect("not poisoned"),
        vec![r#"info: hello {"n":3}"#.to_owned()]
    );
    match call(&instance, "reuse", Json::Null).await {
        Err(CallError::Threw { name, code, .. }) => {
            assert_eq!(
                (name.as_str(), code.as_deref()),
                ("FenError", Some("context_expired"))
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn console_goes_to_the_sink() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let sink: ConsoleSink = Arc::new(move |level: ConsoleLevel, text: &str| {
        sink_lines
            .lock()
            .expect("not poisoned")
            .push(format!("{}: {text}", level.as_str()));
    });
    let runtime = QuickJsBundleRuntime::with_console(sink).expect("worker starts");
    let code = r#"console.log("top", 1, { a: [true] }); console.error(new TypeError("bad"));
export const model = {};"#;
    instantiate(&runtime, vec![single(code)], limits(2_000))
        .await
        .expect("instantiates");
    assert_eq!(
        *lines.lock().expect("not poisoned"),
        vec![
            r#"log: top 1 {"a":[true]}"#.to_owned(),
            "error: TypeError: bad".to_owned()
        ]
    );
}

#[tokio::test]
async fn extension_bundles_share_the_instance_and_add_methods() {
    let base = single(&model_with(
        "{ base: { run() { return globalThis.mark; } } }",
    ));
    let extension = bundle(
        "/b/audit.json",
        &[(
            EXT_ENTRY,
            r#"globalThis.mark = "set by the extension";
export const extension = { type: "@test/sandbox/probe",
  methods: { audit: { description: "a", arguments: { type: "object" }, run(args, ctx) { return "audited"; } } } };"#,
        )],
    );
    let instance = instantiate(&runtime(), vec![base, extension], limits(2_000))
        .await
        .expect("instantiates");
    let exports = instance.exports();
    assert_eq!(ExportSnapshot::of_bundle(exports, 0)[0].key, "model");
    assert_eq!(ExportSnapshot::of_bundle(exports, 1)[0].key, "extension");
    assert_eq!(
        call(&instance, "audit", Json::Null).await,
        Ok(json!("audited"))
    );
    assert_eq!(
        call(&instance, "base", Json::Null).await,
        Ok(json!("set by the extension"))
    );
}

#[tokio::test]
async fn datastore_functions_are_called() {
    let code = r#"export const datastore = {
  type: "@test/store", description: "d",
  pullChanged(opts, ctx) { return opts === undefined ? 3 : opts.context.models.length; },
  pushChanged() {},
};"#;
    let instance = instance(code).await;
    let run = |target: CallTarget, args: Json| {
        let instance = instance.clone();
        async move {
            instance
                .call(
                    &target,
                    CallInput {
                        args,
                        ..CallInput::default()
                    },
                    Arc::new(RecordingHost::default()),
                    SandboxLimits::method_run(),
                )
                .await
        }
    };
    assert_eq!(
        run(CallTarget::DatastoreCapabilities, Json::Null).await,
        Ok(Json::Null)
    );
    assert_eq!(
        run(CallTarget::DatastorePull, Json::Null).await,
        Ok(json!(3))
    );
    assert_eq!(
        run(
            CallTarget::DatastorePull,
            json!({"context": {"models": [1, 2]}})
        )
        .await,
        Ok(json!(2))
    );
    assert_eq!(
        run(CallTarget::DatastorePush, Json::Null).await,
        Ok(Json::Null)
    );
}

#[tokio::test]
async fn malformed_containers_and_throwing_modules_are_reported() {
    let runtime = runtime();
    let not_json = Arc::new(BundleFile {
        path: "/b/x.json".to_owned(),
        contents: "{".to_owned(),
    });
    assert!(matches!(
        instantiate(&runtime, vec![not_json], limits(2_000)).await,
        Err(RuntimeError::Malformed { .. })
    ));
    let message = evaluation_message(
        instantiate(
            &runtime,
            vec![single("throw new Error(\"boom\");")],
            limits(2_000),
        )
        .await,
    );
    assert_eq!(message, "module threw: Error: boom");
    let message = evaluation_message(
        instantiate(&runtime, vec![single("export const = ;")], limits(2_000)).await,
    );
    assert!(
        message.starts_with("module failed to load: SyntaxError"),
        "{message}"
    );
}

#[tokio::test]
async fn catastrophic_regex_backtracking_hits_the_time_limit() {
    let instance = instance(&model_with(
        r#"{ regex: { run() { return /^(a+)+$/.test("a".repeat(40) + "b"); } } }"#,
    ))
    .await;
    let started = Instant::now();
    let result = call_with(&instance, "regex", CallInput::default(), 200).await;
    assert!(
        matches!(result, Err(CallError::TimeLimit { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn polluted_descriptor_keys_do_not_break_the_helpers() {
    let code = r#"
Object.prototype.get = function () { return "polluted"; };
Object.prototype.set = function () {};
Object.defineProperty = () => { throw new Error("replaced"); };
Object.getOwnPropertyDescriptor = () => undefined;
Array.prototype[Symbol.iterator] = function* () { throw new Error("iterated"); };
export const model = {
  type: "@test/sandbox/probe", version: "2026.03.01.0", description: "probe",
  methods: { go: { description: "go", arguments: { type: "object" },
    run(args, ctx) { ctx.log.info("ran"); return ctx.globalArgs.n; } } },
};"#;
    let instance = instance(code).await;
    let validated = validate_export(LoaderKind::Model, instance.exports()).expect("valid");
    assert_eq!(validated.meta.description, "probe");
    let mut context = serde_json::Map::new();
    context.insert("globalArgs".to_owned(), json!({"n": 4}));
    let result = call_with(
        &instance,
        "go",
        CallInput {
            args: Json::Null,
            context,
            ..CallInput::default()
        },
        2_000,
    )
    .await;
    assert_eq!(result, Ok(json!(4)));
}

#[tokio::test]
async fn huge_sparse_arrays_and_results_are_refused() {
    let code = "export const model = { a: Object.assign([], { length: 2 ** 32 - 1 }) };";
    match instantiate(&runtime(), vec![single(code)], limits(2_000)).await {
        Err(RuntimeError::InvalidExport { message, .. }) => {
            assert_eq!(message, "model.a: the export holds more than 100000 values")
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    }
    let instance = instance(&model_with(
        r#"{ big: { run() { return "x".repeat(2 * 1024 * 1024); } } }"#,
    ))
    .await;
    match call(&instance, "big", Json::Null).await {
        Err(CallError::InvalidReturn { reason }) => {
            assert!(
                reason.starts_with("the serialized result is at least 2097154 bytes"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// A host whose `log` panics.
struct PanickingHost;

impl HostApi for PanickingHost {
    fn write_resource(&self, _: &str, _: &str, _: &str) -> Result<Json, CtxError> {
        Ok(Json::Null)
    }
    fn read_resource(&self, _: &str, _: &str, _: Option<u64>) -> Result<Option<String>, CtxError> {
        Ok(None)
    }
    fn list_resources(&self, _: Option<&str>) -> Result<Json, CtxError> {
        Ok(json!([]))
    }
    fn log(&self, _: &str, _: &str) {
        panic!("host bug");
    }
}

#[tokio::test]
async fn a_panicking_host_function_discards_only_its_instance() {
    let runtime = runtime();
    let code = model_with("{ log: { run(args, ctx) { ctx.log.info(\"x\"); return 1; } } }");
    let instance = instantiate(&runtime, vec![single(&code)], limits(2_000))
        .await
        .expect("instantiates");
    let result = instance
        .call(
            &CallTarget::ModelMethod {
                name: "log".to_owned(),
            },
            CallInput::default(),
            Arc::new(PanickingHost),
            SandboxLimits::method_run(),
        )
        .await;
    match result {
        Err(CallError::Host(HostError(message))) => {
            assert!(message.contains("host bug"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        call(&instance, "log", Json::Null).await,
        Err(CallError::Unavailable)
    );
    let fresh = instantiate(&runtime, vec![single(&code)], limits(2_000))
        .await
        .expect("the worker survived");
    assert_eq!(call(&fresh, "log", Json::Null).await, Ok(json!(1)));
}

/// Calls `method` with a `RecordingHost` the test keeps, to read what it saw.
async fn call_recorded(
    instance: &Arc<dyn TypeInstance>,
    method: &str,
    host: &Arc<RecordingHost>,
) -> Result<Json, CallError> {
    let host_api: Arc<dyn HostApi> = host.clone();
    instance
        .call(
            &CallTarget::ModelMethod {
                name: method.to_owned(),
            },
            CallInput::default(),
            host_api,
            SandboxLimits::method_run(),
        )
        .await
}

#[tokio::test]
async fn ctx_resource_members_reach_the_host_as_json_text() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            const h = ctx.writeResource("verdict", "current", { ok: true, n: [1, 2] });
            return { h, frozen: Object.isFrozen(h), read: ctx.readResource("verdict", "current", 3),
                     latest: ctx.readResource("verdict", "current"), list: ctx.listResources() };
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let result = call_recorded(&instance, "go", &host).await.expect("runs");
    assert_eq!(
        result,
        json!({
            "h": {"spec": "verdict", "instance": "current", "version": 1},
            "frozen": true,
            "read": {"read": "verdict/current", "version": 3},
            "latest": {"read": "verdict/current", "version": null},
            "list": [{"spec": null, "instance": "i", "latest": 1}],
        })
    );
    assert_eq!(
        host.lines.lock().expect("not poisoned").as_slice(),
        [r#"write verdict/current {"ok":true,"n":[1,2]}"#]
    );
}

#[tokio::test]
async fn write_resource_uses_the_pristine_json_stringify() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            JSON.stringify = () => "\"tampered\"";
            ctx.writeResource("verdict", "current", { ok: true });
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    call_recorded(&instance, "go", &host).await.expect("runs");
    assert_eq!(
        host.lines.lock().expect("not poisoned").as_slice(),
        [r#"write verdict/current {"ok":true}"#]
    );
}

#[tokio::test]
async fn host_refusals_and_bad_arguments_throw_fen_errors_with_codes() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            const codes = [];
            const attempt = (f) => { try { f(); codes.push("none"); } catch (e) { codes.push(e.name + ":" + e.code); } };
            attempt(() => ctx.writeResource("refused", "x", {}));
            attempt(() => ctx.writeResource(1, "x", {}));
            attempt(() => ctx.writeResource("verdict", "x", () => 1));
            attempt(() => ctx.readResource("verdict", "x", 0));
            attempt(() => ctx.writeResource("verdict", "x", "a".repeat(8 * 1024 * 1024)));
            return codes;
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let result = call_recorded(&instance, "go", &host).await.expect("runs");
    assert_eq!(
        result,
        json!([
            "FenError:resource_schema_violation",
            "FenError:invalid_argument",
            "FenError:invalid_argument",
            "FenError:invalid_argument",
            "FenError:invalid_argument",
        ])
    );
    assert!(host.lines.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn ctx_is_revoked_when_the_call_settles() {
    let instance = instance(&model_with(
        r#"{ keep: { run(_a, ctx) { globalThis.kept = ctx; return 1; } },
             late: { run() {
                const codes = [];
                for (const f of [() => kept.writeResource("v", "i", {}), () => kept.readResource("v", "i"),
                                 () => kept.listResources(), () => kept.log.info("x"), () => kept.remainingMs()]) {
                    try { f(); codes.push("none"); } catch (e) { codes.push(e.code); }
                }
                return codes;
             } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    call_recorded(&instance, "keep", &host).await.expect("runs");
    let result = call_recorded(&instance, "late", &host).await.expect("runs");
    assert_eq!(result, json!(vec!["context_expired"; 5]));
    assert!(host.lines.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn lone_surrogates_are_fen_errors_in_names_and_replaced_in_log_lines() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            const out = [];
            const attempt = (f) => { try { f(); out.push("none"); } catch (e) { out.push(e.name + ":" + e.code); } };
            attempt(() => ctx.writeResource("verdict", "\ud800", {}));
            attempt(() => ctx.readResource("\udfff", "x"));
            attempt(() => ctx.listResources("a\ud800"));
            attempt(() => ctx.writeResource("verdict", "x".repeat(1 << 20), {}));
            attempt(() => ctx.log.info("a\ud800b\udc00c\ud83d\ude00"));
            attempt(() => console.log("\udc00"));
            attempt(() => ctx.log.warn("y".repeat(1 << 20)));
            return out;
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let result = call_recorded(&instance, "go", &host).await.expect("runs");
    assert_eq!(
        result,
        json!([
            "FenError:invalid_argument",
            "FenError:invalid_argument",
            "FenError:invalid_argument",
            "FenError:invalid_argument",
            "none",
            "none",
            "none",
        ])
    );
    let lines = host.lines.lock().expect("not poisoned");
    assert_eq!(lines[0], "info: a\u{fffd}b\u{fffd}c\u{1f600}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].len() <= 8 * 1024 + 8, "cut: {}", lines[1].len());
}

#[tokio::test]
async fn a_host_operation_after_the_deadline_writes_nothing_and_ends_as_time_limit() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            try { ctx.writeResource("verdict", "current", { ok: true }); } catch (_) {}
            return 1;
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let host_api: Arc<dyn HostApi> = host.clone();
    // The deadline has passed before the method body runs its first host call.
    let outcome = instance
        .call(
            &CallTarget::ModelMethod {
                name: "go".to_owned(),
            },
            CallInput::default(),
            host_api,
            SandboxLimits::method_run().with_time(Duration::ZERO),
        )
        .await;
    assert!(
        matches!(outcome, Err(CallError::TimeLimit { .. })),
        "{outcome:?}"
    );
    assert!(host.lines.lock().expect("not poisoned").is_empty());
}

/// Sets a cancel flag from `ctx.log`, as a signal handler would while the code runs.
struct CancellingHost {
    cancel: fen_domain::ports::runtime::CancelFlag,
    writes: Mutex<usize>,
}

impl HostApi for CancellingHost {
    fn write_resource(&self, _: &str, _: &str, _: &str) -> Result<Json, CtxError> {
        *self.writes.lock().expect("not poisoned") += 1;
        Ok(json!({}))
    }
    fn read_resource(&self, _: &str, _: &str, _: Option<u64>) -> Result<Option<String>, CtxError> {
        Ok(None)
    }
    fn list_resources(&self, _: Option<&str>) -> Result<Json, CtxError> {
        Ok(json!([]))
    }
    fn log(&self, _: &str, _: &str) {
        self.cancel.cancel();
    }
}

#[tokio::test]
async fn a_cancelled_call_stops_its_code_and_its_host_operations() {
    let looping = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            ctx.log.info("signal");
            try { ctx.writeResource("verdict", "current", { ok: true }); } catch (_) {}
            for (;;) {}
        } } }"#,
    ))
    .await;
    let cancel = fen_domain::ports::runtime::CancelFlag::default();
    let host = Arc::new(CancellingHost {
        cancel: cancel.clone(),
        writes: Mutex::new(0),
    });
    let outcome = looping
        .call(
            &CallTarget::ModelMethod {
                name: "go".to_owned(),
            },
            CallInput {
                cancel: cancel.clone(),
                ..CallInput::default()
            },
            host.clone(),
            // The time limit is far away: only the cancel flag can end the loop.
            SandboxLimits::method_run().with_time(Duration::from_secs(600)),
        )
        .await;
    assert_eq!(outcome, Err(CallError::Cancelled));
    assert_eq!(*host.writes.lock().expect("not poisoned"), 0);
    // A flag already set stops the call before any code runs.
    let fresh = instance(&model_with(r#"{ later: { run() { return 1; } } }"#)).await;
    let outcome = fresh
        .call(
            &CallTarget::ModelMethod {
                name: "later".to_owned(),
            },
            CallInput {
                cancel,
                ..CallInput::default()
            },
            host,
            SandboxLimits::method_run(),
        )
        .await;
    assert_eq!(outcome, Err(CallError::Cancelled));
}

#[tokio::test]
async fn a_polluted_object_prototype_does_not_change_host_answers() {
    let instance = instance(&model_with(
        r#"{ go: { run(_a, ctx) {
            Object.prototype.expired = true;
            Object.prototype.error = { message: "forged", code: "forged" };
            const h = ctx.writeResource("verdict", "current", { ok: true });
            const back = ctx.readResource("verdict", "current");
            delete Object.prototype.expired;
            delete Object.prototype.error;
            return { version: h.version, read: back.read };
        } } }"#,
    ))
    .await;
    let host = Arc::new(RecordingHost::default());
    let result = call_recorded(&instance, "go", &host).await.expect("runs");
    assert_eq!(result, json!({"version": 1, "read": "verdict/current"}));
}

//! Caps on extension-chosen text crossing into the host: a descriptor over
//! `MAX_DESCRIPTOR_BYTES` is refused, and thrown names, messages, codes and stacks
//! are cut to `MAX_THROWN_BYTES` with a note.

use std::sync::Arc;

use serde_json::Value as Json;

use fen_domain::ports::runtime::{CallError, RuntimeError};
use fen_domain::text::MAX_THROWN_BYTES;

use super::{
    call, call_recorded, evaluation_message, instance, instantiate, limits, model_with, runtime,
    single, RecordingHost,
};

const FORTY_MIB: usize = 40 * 1024 * 1024;
const THIRTY_MIB: usize = 30 * 1024 * 1024;
const TWENTY_MIB: usize = 20 * 1024 * 1024;
const ONE_MIB: usize = 1024 * 1024;

/// The message of an export that failed validation inside the sandbox (the indexer
/// records it as `ValidationFailed`).
async fn invalid_export(code: &str) -> String {
    match instantiate(&runtime(), vec![single(code)], limits(10_000)).await {
        Err(RuntimeError::InvalidExport { message, .. }) => message,
        Err(other) => panic!("expected an invalid export, got {other:?}"),
        Ok(_) => panic!("expected an invalid export, got an instance"),
    }
}

#[tokio::test]
async fn a_40_mib_string_in_a_descriptor_is_refused_naming_the_limit() {
    let message = invalid_export(&format!(
        r#"export const model = {{
  type: "@test/huge/default", version: "2026.03.01.0", description: "d",
  globalArguments: {{ type: "object", properties: {{ blob: {{ type: "string", default: "x".repeat({FORTY_MIB}) }} }} }},
  methods: {{ go: {{ description: "g", arguments: {{ type: "object" }}, run() {{}} }} }},
}};"#
    ))
    .await;
    assert!(
        message.starts_with(
            "model.globalArguments.properties.blob.default: the descriptor would be at least "
        ),
        "{message}"
    );
    assert!(
        message.ends_with("bytes, over the 1 MiB limit"),
        "{message}"
    );
    // Named by its length alone: the 40 MiB were never copied into the message.
    assert!(message.len() < 200, "{}", message.len());
}

#[tokio::test]
async fn a_40_mib_key_or_x_field_is_refused_too() {
    let message = invalid_export(&format!(
        r#"export const model = {{ ["k".repeat({FORTY_MIB})]: 1 }};"#
    ))
    .await;
    assert_eq!(
        message,
        format!(
            "model: the descriptor would be at least {} bytes, over the 1 MiB limit",
            FORTY_MIB + 2 + 3 + 1
        )
    );
    // Many strings just under the limit each add up to more than it.
    let message = invalid_export(
        r#"export const model = { "x-parts": Array.from({ length: 64 }, () => "p".repeat(32768)) };"#,
    )
    .await;
    assert!(
        message.starts_with("model.x-parts[31]: the descriptor would be at least "),
        "{message}"
    );
}

#[tokio::test]
async fn a_descriptor_under_the_limit_is_kept_whole() {
    let code = r#"export const model = {
  type: "@test/big/ok", version: "2026.03.01.0", description: "d",
  "x-notes": "n".repeat(900 * 1024),
  methods: { go: { description: "g", arguments: { type: "object" }, run() {} } },
};"#;
    let instance = instantiate(&runtime(), vec![single(code)], limits(10_000))
        .await
        .expect("instantiates");
    let notes = instance.exports()[0].value["x-notes"]
        .as_str()
        .map(str::len);
    assert_eq!(notes, Some(900 * 1024));
}

/// The `Threw` fields of a call's result.
fn threw(result: Result<Json, CallError>) -> (String, String, Option<String>, Option<String>) {
    match result {
        Err(CallError::Threw {
            name,
            message,
            code,
            stack,
        }) => (name, message, code, stack),
        other => panic!("expected a throw, got {other:?}"),
    }
}

#[tokio::test]
async fn a_30_mib_thrown_message_is_cut_with_a_note() {
    let instance = instance(&format!(
        r#"import {{ FenError }} from "fen:sdk";
export const model = {{ methods: {{
  error: {{ run() {{ throw new Error("y".repeat({THIRTY_MIB})); }} }},
  text: {{ run() {{ throw "z".repeat({THIRTY_MIB}); }} }},
  rejected: {{ async run() {{ await null; throw new TypeError("r".repeat({THIRTY_MIB})); }} }},
  fen: {{ run() {{ throw new FenError("f".repeat({THIRTY_MIB}), {{ code: "c".repeat({ONE_MIB}) }}); }} }},
  named: {{ run() {{ const e = new Error("m"); e.name = "N".repeat({THIRTY_MIB}); throw e; }} }},
  stacked: {{ run() {{ const e = new Error("s"); e.stack = "at ".repeat({THIRTY_MIB} / 3); throw e; }} }},
  wrapped: {{ run() {{ throw {{ toString() {{ return "w".repeat({THIRTY_MIB}); }} }}; }} }},
}} }};"#
    ))
    .await;
    let note = format!(" … [cut: {THIRTY_MIB} characters in all]");
    let cut_from = |text: &str, fill: char, whole: usize| {
        let note = format!(" … [cut: {whole} characters in all]");
        assert!(text.len() <= MAX_THROWN_BYTES, "{} bytes", text.len());
        assert!(text.len() > MAX_THROWN_BYTES - 64, "{} bytes", text.len());
        assert!(text.ends_with(&note), "{}", &text[text.len() - 64..]);
        assert!(text[..text.len() - note.len()].chars().all(|c| c == fill));
    };
    let cut = |text: &str, fill: char| cut_from(text, fill, THIRTY_MIB);

    let (name, message, code, stack) = threw(call(&instance, "error", Json::Null).await);
    assert_eq!(name, "Error");
    cut(&message, 'y');
    assert_eq!(code, None);
    assert!(stack.is_some_and(|s| s.len() < MAX_THROWN_BYTES));

    let (_, message, _, _) = threw(call(&instance, "text", Json::Null).await);
    cut(&message, 'z');
    let (_, message, _, _) = threw(call(&instance, "rejected", Json::Null).await);
    cut(&message, 'r');
    let (name, message, code, _) = threw(call(&instance, "fen", Json::Null).await);
    assert_eq!(name, "FenError");
    cut(&message, 'f');
    cut_from(&code.expect("a code"), 'c', ONE_MIB);
    let (name, message, _, _) = threw(call(&instance, "named", Json::Null).await);
    cut(&name, 'N');
    assert_eq!(message, "m");
    let (_, _, _, stack) = threw(call(&instance, "stacked", Json::Null).await);
    let stack = stack.expect("a stack");
    assert!(stack.len() <= MAX_THROWN_BYTES && stack.starts_with("at at "));
    assert!(stack.ends_with(&note), "{}", &stack[stack.len() - 64..]);
    let (_, message, _, _) = threw(call(&instance, "wrapped", Json::Null).await);
    cut(&message, 'w');
}

#[tokio::test]
async fn cuts_keep_whole_characters() {
    let instance = instance(&model_with(
        r#"{
  emoji: { run() { throw new Error("😀".repeat(1000000)); } },
  accents: { run() { throw new Error("é".repeat(3000)); } },
  short: { run() { throw new Error("é".repeat(2000)); } },
}"#,
    ))
    .await;
    let (_, message, _, _) = threw(call(&instance, "emoji", Json::Null).await);
    assert!(message.len() <= MAX_THROWN_BYTES);
    let (head, note) = message.split_once(" … ").expect("a note");
    assert!(head.chars().all(|c| c == '😀'), "{head}");
    assert_eq!(note, "[cut: 2000000 characters in all]");
    // 3000 characters fit in the units read but not in the bytes kept.
    let (_, message, _, _) = threw(call(&instance, "accents", Json::Null).await);
    assert!(message.len() <= MAX_THROWN_BYTES);
    assert!(
        message.ends_with("é … [cut: 3000 characters in all]"),
        "{message}"
    );
    let (_, message, _, _) = threw(call(&instance, "short", Json::Null).await);
    assert_eq!(message, "é".repeat(2000));
}

#[tokio::test]
async fn a_30_mib_top_level_throw_is_cut_in_the_evaluation_error() {
    let message = evaluation_message(
        instantiate(
            &runtime(),
            vec![single(&format!(
                "throw new Error(\"t\".repeat({THIRTY_MIB}));"
            ))],
            limits(10_000),
        )
        .await,
    );
    assert!(message.starts_with("module threw: Error: ttt"), "{message}");
    assert!(
        message.ends_with(&format!("t … [cut: {THIRTY_MIB} characters in all]")),
        "{message}"
    );
    assert!(message.len() < 2 * MAX_THROWN_BYTES, "{}", message.len());
}

/// Serializing doubles the string in the heap: 20 MiB stays under the 64 MiB limit.
#[tokio::test]
async fn huge_results_and_resource_data_are_refused_by_their_length() {
    let instance = instance(&model_with(&format!(
        r#"{{
  result: {{ run() {{ return "x".repeat({TWENTY_MIB}); }} }},
  write: {{ run(_a, ctx) {{
    try {{ ctx.writeResource("verdict", "current", "d".repeat({TWENTY_MIB})); }}
    catch (e) {{ return e.code + ": " + e.message; }}
  }} }},
}}"#
    )))
    .await;
    match call(&instance, "result", Json::Null).await {
        Err(CallError::InvalidReturn { reason }) => assert_eq!(
            reason,
            format!(
                "the serialized result is at least {} bytes (at most 1048576)",
                TWENTY_MIB + 2
            )
        ),
        other => panic!("{other:?}"),
    }
    let host = Arc::new(RecordingHost::default());
    let answer = call_recorded(&instance, "write", &host).await;
    assert_eq!(
        answer,
        Ok(Json::String(format!(
            "invalid_argument: writeResource: data is at least {} bytes serialized (at most 8388608)",
            TWENTY_MIB + 2
        )))
    );
    assert!(host.lines.lock().expect("not poisoned").is_empty());
}

//! Tests of export validation: an accept/reject table over hand-made snapshots, and
//! the descriptor.

use serde_json::{json, Value as Json};

use fen_domain::ports::runtime::ExportSnapshot;
use fen_domain::{Kind, LoaderKind};

use super::validate_export;

fn f() -> Json {
    json!({"$fn": true})
}

fn snapshots(exports: &[(&str, Json)]) -> Vec<ExportSnapshot> {
    exports
        .iter()
        .map(|(key, value)| ExportSnapshot {
            bundle: 0,
            key: (*key).to_owned(),
            value: value.clone(),
        })
        .collect()
}

fn good_model() -> Json {
    json!({
        "type": "@acme/net/endpoint",
        "version": "2026.03.01.1",
        "description": "Tracks one endpoint",
        "globalArguments": {
            "type": "object",
            "properties": {"url": {"type": "string"}, "expectStatus": {"type": "integer", "default": 200}},
            "required": ["url"],
            "additionalProperties": false,
        },
        "resources": {"verdict": {"description": "Latest verdict", "schema": {"type": "object"}}},
        "methods": {
            "record": {
                "description": "Record a verdict",
                "arguments": {"type": "object", "properties": {"observed": {"type": "integer"}}},
                "run": f(),
            },
        },
    })
}

/// `good_model()` with `edit` applied at a JSON pointer (`None` removes the field).
fn model_with(pointer: &str, edit: Option<Json>) -> Json {
    let mut model = good_model();
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let target = model
        .pointer_mut(parent)
        .and_then(Json::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"));
    match edit {
        Some(value) => {
            target.insert(key.to_owned(), value);
        }
        None => {
            target.remove(key);
        }
    }
    model
}

/// `Ok(kind)` or the start of the error message.
fn check(loader: LoaderKind, exports: &[(&str, Json)], expected: Result<Kind, &str>) {
    let got = validate_export(loader, &snapshots(exports));
    match (got, expected) {
        (Ok(validated), Ok(kind)) => assert_eq!(validated.kind, kind),
        (Err(error), Err(prefix)) => {
            let message = error.to_string();
            assert!(
                message.starts_with(prefix),
                "{message:?} does not start with {prefix:?}"
            );
            assert!(!message.contains('\n'), "{message:?}");
        }
        (got, expected) => panic!("{exports:?}: got {got:?}, expected {expected:?}"),
    }
}

fn model_case(model: Json, expected: Result<Kind, &str>) {
    check(LoaderKind::Model, &[("model", model)], expected);
}

#[test]
fn models() {
    model_case(good_model(), Ok(Kind::Model));
    model_case(
        model_with("/x-owner", Some(json!("team-net"))),
        Ok(Kind::Model),
    );
    model_case(model_with("/globalArguments", None), Ok(Kind::Model));
    model_case(model_with("/resources", None), Ok(Kind::Model));
    model_case(
        model_with("/methods/record/x-examples", Some(json!([1]))),
        Ok(Kind::Model),
    );
    model_case(
        model_with("/type", Some(json!("Microsoft.Resources/resourceGroup"))),
        Ok(Kind::Model),
    );
    model_case(
        model_with(
            "/globalArguments",
            Some(json!({
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "definitions": {"port": {"type": "integer"}},
                "properties": {"port": {"$ref": "#/definitions/port"}},
            })),
        ),
        Ok(Kind::Model),
    );

    model_case(
        model_with("/typo", Some(json!(1))),
        Err("model.typo: unknown field"),
    );
    model_case(
        model_with("/methods/record/tags", Some(json!([]))),
        Err("model.methods.record.tags: unknown field"),
    );
    model_case(model_with("/type", None), Err("model.type: missing"));
    model_case(
        model_with("/type", Some(json!("aws"))),
        Err("model.type: \"aws\" needs at least 2 segments"),
    );
    model_case(
        model_with("/type", Some(json!("aws//vpc"))),
        Err("model.type: \"aws//vpc\" has an invalid segment"),
    );
    model_case(
        model_with("/type", Some(json!("AWS::EC2::VPC"))),
        Err("model.type: \"AWS::EC2::VPC\" has an invalid segment"),
    );
    model_case(
        model_with("/type", Some(json!("-a/b"))),
        Err("model.type: \"-a/b\" has an invalid segment"),
    );
    model_case(
        model_with("/type", Some(json!(format!("a/{}", "b".repeat(199))))),
        Err("model.type: is longer than 200 characters"),
    );
    model_case(
        model_with("/type", Some(json!(7))),
        Err("model.type: must be a string"),
    );
    model_case(
        model_with("/version", Some(json!("1.0.0"))),
        Err("model.version: \"1.0.0\": version must look like YYYY.MM.DD.MICRO"),
    );
    model_case(
        model_with("/version", Some(json!("2026.02.30.0"))),
        Err("model.version: \"2026.02.30.0\": version day"),
    );
    model_case(
        model_with("/version", Some(json!("0.0.0"))),
        Err("model.version: \"0.0.0\" is not a CalVer version"),
    );
    model_case(model_with("/version", None), Err("model.version: missing"));
    model_case(
        model_with("/description", Some(json!(""))),
        Err("model.description: must not be empty"),
    );
    model_case(
        model_with("/description", Some(json!("d".repeat(2_001)))),
        Err("model.description: is 2001 characters long"),
    );
    model_case(
        model_with("/description", Some(json!("d".repeat(2_000)))),
        Ok(Kind::Model),
    );
    model_case(
        model_with("/methods", Some(json!({}))),
        Err("model.methods: must declare at least one method"),
    );
    model_case(model_with("/methods", None), Err("model.methods: missing"));
    model_case(
        model_with("/methods/record/run", None),
        Err("model.methods.record.run: missing (a function)"),
    );
    model_case(
        model_with("/methods/record/run", Some(json!("run"))),
        Err("model.methods.record.run: must be a function"),
    );
    model_case(
        model_with(
            "/methods/record",
            Some(json!({"description": "d", "arguments": {"type": "object"}, "execute": f()})),
        ),
        Err("model.methods.record: has `execute` but no `run`: fen calls this function `run`"),
    );
    model_case(
        model_with("/methods/record/description", None),
        Err("model.methods.record.description: missing"),
    );
    model_case(
        model_with("/methods/record/arguments", None),
        Err("model.methods.record.arguments: missing"),
    );
    model_case(
        model_with(
            "/methods/bad-name",
            Some(json!({"description": "d", "arguments": {"type": "object"}, "run": f()})),
        ),
        Err("model.methods.bad-name: invalid method name"),
    );
    model_case(
        model_with("/resources/verdict/schema", None),
        Err("model.resources.verdict.schema: missing"),
    );
}

#[test]
fn schemas() {
    let zod = json!({"_def": {"typeName": "ZodObject"}, "safeParse": f(), "parse": f()});
    model_case(
        model_with("/globalArguments", Some(zod.clone())),
        Err("model.globalArguments: fen uses JSON Schema, not zod"),
    );
    model_case(
        model_with("/methods/record/arguments", Some(zod)),
        Err("model.methods.record.arguments: fen uses JSON Schema, not zod"),
    );
    model_case(
        model_with("/resources/verdict/schema", Some(json!({"type": "object", "properties": {"ok": {"_def": {}, "safeParse": f()}}}))),
        Err("model.resources.verdict.schema.properties.ok.safeParse: a schema must be plain JSON, not a function (fen uses JSON Schema, not zod)"),
    );
    model_case(
        model_with("/globalArguments", Some(json!({"type": "string"}))),
        Err("model.globalArguments: the root of this schema must have \"type\": \"object\""),
    );
    model_case(
        model_with(
            "/methods/record/arguments",
            Some(json!({"type": "object", "properties": {"n": {"type": "strin"}}})),
        ),
        Err("model.methods.record.arguments: invalid JSON Schema: "),
    );
    model_case(
        model_with(
            "/globalArguments",
            Some(json!({"type": "object", "minProperties": -1})),
        ),
        Err("model.globalArguments: invalid JSON Schema: "),
    );
    model_case(
        model_with("/methods/record/arguments", Some(json!({"type": "object", "properties": {"n": {"$ref": "https://example.com/n.json"}}}))),
        Err("model.methods.record.arguments: $ref \"https://example.com/n.json\" points outside the schema"),
    );
    model_case(
        model_with(
            "/resources/verdict/schema",
            Some(json!({"$ref": "other.json#/x"})),
        ),
        Err("model.resources.verdict.schema: $ref \"other.json#/x\" points outside the schema"),
    );
    model_case(
        model_with(
            "/resources/verdict/schema",
            Some(json!({"$ref": "#/$defs/missing"})),
        ),
        Err("model.resources.verdict.schema: invalid JSON Schema: "),
    );
    model_case(
        model_with(
            "/resources/verdict/schema",
            Some(json!({"$schema": "https://example.com/meta", "type": "object"})),
        ),
        Err("model.resources.verdict.schema: invalid JSON Schema: "),
    );
    // `$ref`-looking data inside `const` / `default` is data, not a reference.
    model_case(
        model_with(
            "/resources/verdict/schema",
            Some(json!({"type": "object", "default": {"$ref": "https://x"}})),
        ),
        Ok(Kind::Model),
    );
    model_case(
        model_with("/resources/verdict/schema", Some(json!(true))),
        Ok(Kind::Model),
    );
}

#[test]
fn export_keys() {
    let extension = json!({
        "type": "@acme/net/endpoint",
        "methods": {"audit": {"description": "a", "arguments": {"type": "object"}, "run": f()}},
    });
    check(
        LoaderKind::Model,
        &[("extension", extension.clone())],
        Ok(Kind::Extension),
    );
    check(
        LoaderKind::Model,
        &[("model", good_model()), ("extension", extension.clone())],
        Err("export exactly one of model, extension"),
    );
    check(
        LoaderKind::Model,
        &[],
        Err("export exactly one of model, extension"),
    );
    check(
        LoaderKind::Model,
        &[("model", json!([]))],
        Err("model: must be an object"),
    );
    check(
        LoaderKind::Model,
        &[("model", f())],
        Err("model: must be an object"),
    );
    check(
        LoaderKind::Vault,
        &[("model", good_model())],
        Err("missing export `vault`"),
    );
    check(
        LoaderKind::Model,
        &[(
            "extension",
            json!({"type": "@acme/net/endpoint", "version": "2026.03.01.0", "methods": {}}),
        )],
        Err("extension.version: unknown field"),
    );
    check(
        LoaderKind::Model,
        &[("extension", json!({"type": "@acme/net/endpoint"}))],
        Err("extension: an extension must add at least one method or resource"),
    );
}

#[test]
fn other_kinds() {
    let datastore = json!({
        "type": "@acme/packed-store", "description": "Packed files",
        "configSchema": {"type": "object", "properties": {"compress": {"type": "boolean"}}},
        "capabilities": f(), "pullChanged": f(), "pushChanged": f(),
    });
    check(
        LoaderKind::Datastore,
        &[("datastore", datastore.clone())],
        Ok(Kind::Datastore),
    );
    let mut three_segments = datastore.clone();
    three_segments["type"] = json!("@acme/packed/store");
    check(
        LoaderKind::Datastore,
        &[("datastore", three_segments)],
        Err("datastore.type: \"@acme/packed/store\" must have exactly 2 segments"),
    );
    let mut no_push = datastore;
    no_push.as_object_mut().map(|m| m.remove("pushChanged"));
    check(
        LoaderKind::Datastore,
        &[("datastore", no_push)],
        Err("datastore.pushChanged: missing"),
    );

    check(
        LoaderKind::Vault,
        &[(
            "vault",
            json!({"type": "@acme/vault", "description": "v", "get": f(), "list": f()}),
        )],
        Ok(Kind::Vault),
    );
    check(
        LoaderKind::Vault,
        &[(
            "vault",
            json!({"type": "@acme/vault", "description": "v", "put": f()}),
        )],
        Err("vault.get: missing"),
    );
    check(
        LoaderKind::Driver,
        &[(
            "driver",
            json!({"type": "@acme/driver", "description": "d", "execute": f()}),
        )],
        Ok(Kind::Driver),
    );
    check(
        LoaderKind::Report,
        &[(
            "report",
            json!({"name": "@acme/weekly", "description": "r", "scope": "model", "labels": ["a"], "run": f()}),
        )],
        Ok(Kind::Report),
    );
    check(
        LoaderKind::Report,
        &[(
            "report",
            json!({"name": "@acme/weekly", "description": "r", "scope": "repo", "run": f()}),
        )],
        Err("report.scope: must be \"method\" or \"model\""),
    );
    check(
        LoaderKind::Report,
        &[(
            "report",
            json!({"name": "@acme/weekly", "description": "r", "scope": "method", "labels": [1], "run": f()}),
        )],
        Err("report.labels: must be an array of strings"),
    );
}

#[test]
fn descriptor_is_canonical_with_defaults() {
    let model = model_with("/globalArguments", None);
    let validated =
        validate_export(LoaderKind::Model, &snapshots(&[("model", model)])).expect("valid");
    assert_eq!(validated.kind, Kind::Model);
    assert_eq!(validated.type_name.as_str(), "@acme/net/endpoint");
    assert_eq!(validated.declared_type, "@acme/net/endpoint");
    assert_eq!(validated.meta.declared_version, "2026.03.01.1");
    assert_eq!(validated.meta.description, "Tracks one endpoint");
    assert_eq!(
        validated.meta.descriptor,
        concat!(
            r#"{"description":"Tracks one endpoint","#,
            r#""globalArguments":{"additionalProperties":false,"type":"object"},"#,
            r#""methods":{"record":{"arguments":{"properties":{"observed":{"type":"integer"}},"type":"object"},"#,
            r#""description":"Record a verdict","run":{"$fn":true}}},"#,
            r#""resources":{"verdict":{"description":"Latest verdict","schema":{"type":"object"}}},"#,
            r#""type":"@acme/net/endpoint","version":"2026.03.01.1"}"#,
        )
    );

    let report =
        json!({"name": "@Acme/Weekly.Digest", "description": "r", "scope": "model", "run": f()});
    let validated =
        validate_export(LoaderKind::Report, &snapshots(&[("report", report)])).expect("valid");
    assert_eq!(validated.type_name.as_str(), "@acme/weekly/digest");
    assert_eq!(validated.declared_type, "@Acme/Weekly.Digest");
    assert_eq!(validated.meta.declared_version, "");
}

#[test]
fn canonical_text_is_the_sorted_copy_serialized() {
    let values = [
        json!({"b": 1, "a": {"d": [3, {"z": null, "y": true}], "c": "x\u{1}\"é"}, "": 1.5}),
        json!([{"b": -0.0, "a": 1e300}, [], {}, "s", 12345678901234567890u64]),
        json!(null),
        good_model(),
    ];
    for value in values {
        assert_eq!(
            super::canonical_text(&value),
            super::canonical(&value).to_string()
        );
    }
}

#[test]
fn descriptors_over_the_limit_are_refused_by_their_exact_size() {
    // 300 000 control characters count 300 000 bytes in the snapshot's walk, but are
    // 1.8 MB once escaped (`\u0001`): the canonical text is what is measured.
    let model = model_with("/x-escaped", Some(json!("\u{1}".repeat(300_000))));
    let error = validate_export(LoaderKind::Model, &snapshots(&[("model", model)]))
        .expect_err("over the limit");
    let size = 1_800_000 + super::canonical_text(&good_model()).len() + r#","x-escaped":"""#.len();
    assert_eq!(
        error.to_string(),
        format!("model: the descriptor is {size} bytes, over the 1 MiB limit")
    );
    let fits = model_with(
        "/x-notes",
        Some(json!("n".repeat(super::MAX_DESCRIPTOR_BYTES / 2))),
    );
    model_case(fits, Ok(Kind::Model));
}

//! Validation of one bundle's export snapshots against the author API (spec 30
//! §2.2–§2.6), producing the catalog's [`TypeMeta`].
//!
//! Messages are one line and start with the path of the offending field
//! (`model.methods.record.run: must be a function`).
//!
//! # The descriptor
//!
//! `TypeMeta::descriptor` is the validated export as canonical JSON (keys sorted at
//! every level, no whitespace), with each function replaced by the marker
//! `{"$fn":true}` and these defaults filled in, so `describe` never needs the rules:
//!
//! | kind | descriptor fields |
//! |---|---|
//! | model | `type` (declared spelling), `version`, `description`, `globalArguments` (default `{"additionalProperties":false,"type":"object"}`), `resources` (default `{}`: name → `{description?, schema}`), `methods` (name → `{description, arguments, run}`), `x-*` |
//! | extension | `type` (the base type), `description` (default `""`), `resources` (default `{}`), `methods` (default `{}`), `x-*` |
//! | datastore | `type`, `description`, `configSchema?`, `capabilities?`, `pullChanged`, `pushChanged`, `x-*` |
//! | vault | `type`, `description`, `configSchema?`, `get`, `put?`, `list?`, `x-*` |
//! | driver | `type`, `description`, `configSchema?`, `execute`, `x-*` |
//! | report | `name` (its type), `description`, `scope`, `labels?`, `run`, `x-*` |
//!
//! A descriptor is at most [`MAX_DESCRIPTOR_BYTES`]; a larger one fails validation.

use std::fmt::Display;

use serde_json::{Map, Value as Json};

use fen_domain::ports::runtime::ExportSnapshot;
use fen_domain::{ExtensionVersion, Kind, LoaderKind, TypeMeta, TypeName};

use super::sandbox::format_bytes;

/// Largest descriptor, in bytes of canonical JSON. Descriptors of real types are a
/// few KiB (a large resource schema some tens of KiB); a bigger one is hostile or a
/// mistake, and every catalog read of the row would pay for it. The export snapshot
/// stops at the same size, before it copies the rest out of the sandbox.
pub const MAX_DESCRIPTOR_BYTES: usize = 1024 * 1024;
/// Longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 2_000;
/// Longest declared type, in characters.
const MAX_TYPE_CHARS: usize = 200;

/// A validated export: what the catalog row of an `Indexed` source records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedExport {
    /// `Model` or `Extension` for the models directory; the loader's kind otherwise.
    pub kind: Kind,
    /// The normalised type (for an extension: its base type; for a report: its name).
    pub type_name: TypeName,
    /// The type as declared.
    pub declared_type: String,
    /// Version (`""` for kinds without one), description and descriptor.
    pub meta: TypeMeta,
}

/// Why an export was rejected; the text is one line naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExportValidationError(pub String);

/// Validates the export snapshots of one bundle (see
/// `ExportSnapshot::of_bundle`) found by the loader of `loader_kind`.
pub fn validate_export(
    loader_kind: LoaderKind,
    exports: &[ExportSnapshot],
) -> Result<ValidatedExport, ExportValidationError> {
    let (kind, snapshot) = pick_export(loader_kind, exports)?;
    let key = kind.export_key();
    let Some(object) = snapshot
        .value
        .as_object()
        .filter(|_| !ExportSnapshot::is_function_marker(&snapshot.value))
    else {
        return Err(fail(key, "must be an object"));
    };
    let export = Fields { path: key, object };
    let mut descriptor = object.clone();
    let (declared_type, declared_version, description) = match kind {
        Kind::Model => model(&export, &mut descriptor)?,
        Kind::Extension => extension(&export, &mut descriptor)?,
        Kind::Datastore => datastore(&export)?,
        Kind::Vault => vault(&export)?,
        Kind::Driver => driver(&export)?,
        Kind::Report => report(&export)?,
    };
    let type_name = TypeName::parse(&declared_type)
        .map_err(|e| fail(&format!("{key}.{}", type_field(kind)), e))?;
    let descriptor = canonical_text(&Json::Object(descriptor));
    if descriptor.len() > MAX_DESCRIPTOR_BYTES {
        return Err(fail(
            key,
            format!(
                "the descriptor is {} bytes, over the {} limit",
                descriptor.len(),
                format_bytes(MAX_DESCRIPTOR_BYTES)
            ),
        ));
    }
    Ok(ValidatedExport {
        kind,
        type_name,
        declared_type,
        meta: TypeMeta {
            declared_version,
            description,
            descriptor,
        },
    })
}

/// (declared type, declared version, description)
type Checked = (String, String, String);

/// One object of the export and its path.
struct Fields<'a> {
    path: &'a str,
    object: &'a Map<String, Json>,
}

/// Picks the export the loader reads: exactly one of `model`/`extension` in
/// `models/`, the kind's own key elsewhere. Other exports are ignored.
fn pick_export(
    loader_kind: LoaderKind,
    exports: &[ExportSnapshot],
) -> Result<(Kind, &ExportSnapshot), ExportValidationError> {
    let found: Vec<(Kind, &ExportSnapshot)> = loader_kind
        .kinds()
        .iter()
        .filter_map(|kind| {
            exports
                .iter()
                .find(|s| s.key == kind.export_key())
                .map(|s| (*kind, s))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] | [_, _, ..] if loader_kind == LoaderKind::Model => Err(ExportValidationError(
            "export exactly one of model, extension".to_owned(),
        )),
        _ => Err(ExportValidationError(format!(
            "missing export `{}` (a module in {}/ declares its {} with `export const {} = ...`)",
            loader_kind.kinds()[0].export_key(),
            loader_kind.kind_dir(),
            loader_kind.kinds()[0],
            loader_kind.kinds()[0].export_key(),
        ))),
    }
}

fn model(
    export: &Fields,
    descriptor: &mut Map<String, Json>,
) -> Result<Checked, ExportValidationError> {
    export.only(&[
        "type",
        "version",
        "description",
        "globalArguments",
        "resources",
        "methods",
    ])?;
    let declared_type = type_rule(export, "type", TypeSegments::AtLeastTwo)?;
    let version = version(export)?;
    let description = description(export, Presence::Required)?;
    match export.object.get("globalArguments") {
        Some(schema) => check_schema(&export.child("globalArguments"), schema, Root::Object)?,
        None => {
            descriptor.insert(
                "globalArguments".to_owned(),
                serde_json::json!({"type": "object", "additionalProperties": false}),
            );
        }
    }
    resources(export, descriptor)?;
    methods(export, descriptor, Presence::Required)?;
    Ok((declared_type, version, description))
}

fn extension(
    export: &Fields,
    descriptor: &mut Map<String, Json>,
) -> Result<Checked, ExportValidationError> {
    export.only(&["type", "description", "resources", "methods"])?;
    let declared_type = type_rule(export, "type", TypeSegments::AtLeastTwo)?;
    let description = description(export, Presence::Optional)?;
    descriptor
        .entry("description")
        .or_insert_with(|| Json::String(String::new()));
    resources(export, descriptor)?;
    methods(export, descriptor, Presence::Optional)?;
    let n_members = ["resources", "methods"]
        .iter()
        .filter_map(|key| descriptor.get(*key).and_then(Json::as_object))
        .map(Map::len)
        .sum::<usize>();
    if n_members == 0 {
        return Err(fail(
            export.path,
            "an extension must add at least one method or resource",
        ));
    }
    Ok((declared_type, String::new(), description))
}

fn datastore(export: &Fields) -> Result<Checked, ExportValidationError> {
    export.only(&[
        "type",
        "description",
        "configSchema",
        "capabilities",
        "pullChanged",
        "pushChanged",
    ])?;
    let declared_type = type_rule(export, "type", TypeSegments::ExactlyTwo)?;
    let description = description(export, Presence::Required)?;
    config_schema(export)?;
    export.function("capabilities", Presence::Optional)?;
    export.function("pullChanged", Presence::Required)?;
    export.function("pushChanged", Presence::Required)?;
    Ok((declared_type, String::new(), description))
}

fn vault(export: &Fields) -> Result<Checked, ExportValidationError> {
    export.only(&["type", "description", "configSchema", "get", "put", "list"])?;
    let declared_type = type_rule(export, "type", TypeSegments::AtLeastTwo)?;
    let description = description(export, Presence::Required)?;
    config_schema(export)?;
    export.function("get", Presence::Required)?;
    export.function("put", Presence::Optional)?;
    export.function("list", Presence::Optional)?;
    Ok((declared_type, String::new(), description))
}

fn driver(export: &Fields) -> Result<Checked, ExportValidationError> {
    export.only(&["type", "description", "configSchema", "execute"])?;
    let declared_type = type_rule(export, "type", TypeSegments::AtLeastTwo)?;
    let description = description(export, Presence::Required)?;
    config_schema(export)?;
    export.function("execute", Presence::Required)?;
    Ok((declared_type, String::new(), description))
}

fn report(export: &Fields) -> Result<Checked, ExportValidationError> {
    export.only(&["name", "description", "scope", "labels", "run"])?;
    let declared_type = type_rule(export, "name", TypeSegments::AtLeastTwo)?;
    let description = description(export, Presence::Required)?;
    match export.required("scope")? {
        Json::String(scope) if scope == "method" || scope == "model" => {}
        _ => {
            return Err(export
                .child("scope")
                .fail("must be \"method\" or \"model\""))
        }
    }
    if let Some(labels) = export.object.get("labels") {
        let all_strings = labels
            .as_array()
            .is_some_and(|items| items.iter().all(Json::is_string));
        if !all_strings {
            return Err(export.child("labels").fail("must be an array of strings"));
        }
    }
    export.function("run", Presence::Required)?;
    Ok((declared_type, String::new(), description))
}

/// `resources`: spec name → `{ description?, schema }`; `{}` when absent.
fn resources(
    export: &Fields,
    descriptor: &mut Map<String, Json>,
) -> Result<(), ExportValidationError> {
    let Some(value) = export.object.get("resources") else {
        descriptor.insert("resources".to_owned(), Json::Object(Map::new()));
        return Ok(());
    };
    let resources = export.child("resources");
    let map = resources.as_object(value)?;
    for (name, resource) in map {
        let path = resources.child(name);
        if !is_member_name(name) {
            return Err(path.fail(
                "invalid resource name (expected a letter, then up to 63 letters, digits or _)",
            ));
        }
        let fields = Fields {
            path: &path.path,
            object: path.as_object(resource)?,
        };
        fields.only(&["description", "schema"])?;
        if let Some(text) = fields.object.get("description") {
            check_description(&fields.child("description"), text, Emptiness::Allowed)?;
        }
        check_schema(
            &fields.child("schema"),
            fields.required("schema")?,
            Root::Any,
        )?;
    }
    Ok(())
}

/// `methods`: name → `{ description, arguments, run }`.
fn methods(
    export: &Fields,
    descriptor: &mut Map<String, Json>,
    presence: Presence,
) -> Result<(), ExportValidationError> {
    let value = match (export.object.get("methods"), presence) {
        (Some(value), _) => value,
        (None, Presence::Required) => return Err(export.child("methods").fail("missing")),
        (None, Presence::Optional) => {
            descriptor.insert("methods".to_owned(), Json::Object(Map::new()));
            return Ok(());
        }
    };
    let methods = export.child("methods");
    let map = methods.as_object(value)?;
    if map.is_empty() && presence == Presence::Required {
        return Err(methods.fail("must declare at least one method"));
    }
    for (name, method) in map {
        let path = methods.child(name);
        if !is_member_name(name) {
            return Err(path.fail(
                "invalid method name (expected a letter, then up to 63 letters, digits or _)",
            ));
        }
        let fields = Fields {
            path: &path.path,
            object: path.as_object(method)?,
        };
        if !fields.object.contains_key("run") && fields.object.contains_key("execute") {
            return Err(path.fail("has `execute` but no `run`: fen calls this function `run`"));
        }
        fields.only(&["description", "arguments", "run"])?;
        check_description(
            &fields.child("description"),
            fields.required("description")?,
            Emptiness::Allowed,
        )?;
        check_schema(
            &fields.child("arguments"),
            fields.required("arguments")?,
            Root::Object,
        )?;
        fields.function("run", Presence::Required)?;
    }
    Ok(())
}

fn config_schema(export: &Fields) -> Result<(), ExportValidationError> {
    match export.object.get("configSchema") {
        Some(schema) => check_schema(&export.child("configSchema"), schema, Root::Any),
        None => Ok(()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Presence {
    Required,
    Optional,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Emptiness {
    Allowed,
    Refused,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TypeSegments {
    AtLeastTwo,
    ExactlyTwo,
}

/// What the root of a schema must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    /// An object schema with `"type": "object"` (arguments).
    Object,
    /// Any schema, including `true` / `false`.
    Any,
}

/// A path for messages.
struct Path {
    path: String,
}

impl Path {
    fn child(&self, key: &str) -> Path {
        Path {
            path: format!("{}.{key}", self.path),
        }
    }

    fn fail(&self, message: impl Display) -> ExportValidationError {
        fail(&self.path, message)
    }

    fn as_object<'v>(
        &self,
        value: &'v Json,
    ) -> Result<&'v Map<String, Json>, ExportValidationError> {
        value
            .as_object()
            .filter(|_| !ExportSnapshot::is_function_marker(value))
            .ok_or_else(|| self.fail("must be an object"))
    }
}

impl Fields<'_> {
    fn child(&self, key: &str) -> Path {
        Path {
            path: format!("{}.{key}", self.path),
        }
    }

    /// Refuses fields outside `allowed`, except `x-*`.
    fn only(&self, allowed: &[&str]) -> Result<(), ExportValidationError> {
        for key in self.object.keys() {
            if !key.starts_with("x-") && !allowed.contains(&key.as_str()) {
                return Err(self.child(key).fail(format!(
                    "unknown field (allowed: {}, or x-* for your own data)",
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn required(&self, key: &str) -> Result<&Json, ExportValidationError> {
        self.object
            .get(key)
            .ok_or_else(|| self.child(key).fail("missing"))
    }

    fn function(&self, key: &str, presence: Presence) -> Result<(), ExportValidationError> {
        match (self.object.get(key), presence) {
            (Some(value), _) if ExportSnapshot::is_function_marker(value) => Ok(()),
            (Some(_), _) => Err(self.child(key).fail("must be a function")),
            (None, Presence::Required) => Err(self.child(key).fail("missing (a function)")),
            (None, Presence::Optional) => Ok(()),
        }
    }
}

/// The declared type (or report name) under `key`, checked against spec 30 §2.2.
fn type_rule(
    export: &Fields,
    key: &str,
    segments: TypeSegments,
) -> Result<String, ExportValidationError> {
    let path = export.child(key);
    let Json::String(text) = export.required(key)? else {
        return Err(path.fail("must be a string"));
    };
    if text.chars().count() > MAX_TYPE_CHARS {
        return Err(path.fail(format!("is longer than {MAX_TYPE_CHARS} characters")));
    }
    let body = text.strip_prefix('@').unwrap_or(text);
    let parts: Vec<&str> = body.split('/').collect();
    if let Some(bad) = parts.iter().find(|part| !is_type_segment(part)) {
        return Err(path.fail(format!(
            "{text:?} has an invalid segment {bad:?} (a segment starts with a letter or digit, \
             then letters, digits, '.', '_' or '-')"
        )));
    }
    match segments {
        TypeSegments::AtLeastTwo if parts.len() < 2 => Err(path.fail(format!(
            "{text:?} needs at least 2 segments separated by '/' (e.g. \"@acme/net/endpoint\")"
        ))),
        TypeSegments::ExactlyTwo if parts.len() != 2 => Err(path.fail(format!(
            "{text:?} must have exactly 2 segments (e.g. \"@acme/packed-store\")"
        ))),
        TypeSegments::AtLeastTwo | TypeSegments::ExactlyTwo => Ok(text.clone()),
    }
}

fn is_type_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Method and resource spec names: `[A-Za-z][A-Za-z0-9_]{0,63}`.
fn is_member_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A model's CalVer `version`.
fn version(export: &Fields) -> Result<String, ExportValidationError> {
    let path = export.child("version");
    let Json::String(text) = export.required("version")? else {
        return Err(path.fail("must be a string"));
    };
    match ExtensionVersion::parse(text) {
        Ok(ExtensionVersion::CalVer { .. }) => Ok(text.clone()),
        Ok(ExtensionVersion::Local) => Err(path.fail(format!(
            "{text:?} is not a CalVer version YYYY.MM.DD.MICRO (e.g. 2026.03.01.0)"
        ))),
        Err(error) => Err(path.fail(format!("{text:?}: {error}"))),
    }
}

fn description(export: &Fields, presence: Presence) -> Result<String, ExportValidationError> {
    match (export.object.get("description"), presence) {
        (Some(value), Presence::Required) => {
            check_description(&export.child("description"), value, Emptiness::Refused)
        }
        (Some(value), Presence::Optional) => {
            check_description(&export.child("description"), value, Emptiness::Allowed)
        }
        (None, Presence::Required) => Err(export.child("description").fail("missing")),
        (None, Presence::Optional) => Ok(String::new()),
    }
}

fn check_description(
    path: &Path,
    value: &Json,
    emptiness: Emptiness,
) -> Result<String, ExportValidationError> {
    let Json::String(text) = value else {
        return Err(path.fail("must be a string"));
    };
    if emptiness == Emptiness::Refused && text.trim().is_empty() {
        return Err(path.fail("must not be empty"));
    }
    let n_chars = text.chars().count();
    if n_chars > MAX_DESCRIPTION_CHARS {
        return Err(path.fail(format!(
            "is {n_chars} characters long (at most {MAX_DESCRIPTION_CHARS})"
        )));
    }
    Ok(text.clone())
}

/// A JSON Schema: plain JSON, not zod, `$ref`s inside the document only, compiling.
fn check_schema(path: &Path, schema: &Json, root: Root) -> Result<(), ExportValidationError> {
    if let Some(object) = schema.as_object() {
        if looks_like_zod(object) {
            return Err(path.fail("fen uses JSON Schema, not zod"));
        }
    }
    if let Some((inner, zod)) = find_function(schema, &path.path) {
        let hint = if zod {
            " (fen uses JSON Schema, not zod)"
        } else {
            ""
        };
        return Err(fail(
            &inner,
            format!("a schema must be plain JSON, not a function{hint}"),
        ));
    }
    match (schema, root) {
        (Json::Object(object), Root::Object) => {
            if object.get("type") != Some(&Json::String("object".to_owned())) {
                return Err(path.fail("the root of this schema must have \"type\": \"object\""));
            }
        }
        (Json::Object(_) | Json::Bool(_), Root::Any) => {}
        _ => return Err(path.fail("must be a JSON Schema object")),
    }
    if let Some(reference) = find_external_ref(schema) {
        return Err(path.fail(format!(
            "$ref {reference:?} points outside the schema (only \"#...\" references are allowed)"
        )));
    }
    jsonschema::options()
        .with_retriever(RefuseExternal)
        .build(schema)
        .map(|_| ())
        .map_err(|error| {
            path.fail(format!(
                "invalid JSON Schema: {}",
                one_line(&error.to_string())
            ))
        })
}

fn looks_like_zod(object: &Map<String, Json>) -> bool {
    ["_def", "_zod", "safeParse", "~standard"]
        .iter()
        .any(|key| object.contains_key(*key))
}

/// The path of the first function marker in a schema, and whether the object holding
/// it looks like a zod schema.
fn find_function(value: &Json, path: &str) -> Option<(String, bool)> {
    // Schemas almost never hold one: look first, build paths only when there is one.
    if !holds_function(value) {
        return None;
    }
    find_function_path(value, path)
}

fn holds_function(value: &Json) -> bool {
    if ExportSnapshot::is_function_marker(value) {
        return true;
    }
    match value {
        Json::Object(map) => map.values().any(holds_function),
        Json::Array(items) => items.iter().any(holds_function),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => false,
    }
}

fn find_function_path(value: &Json, path: &str) -> Option<(String, bool)> {
    match value {
        Json::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if ExportSnapshot::is_function_marker(child) {
                    return Some((child_path, looks_like_zod(map)));
                }
                if let Some(found) = find_function_path(child, &child_path) {
                    return Some(found);
                }
            }
            None
        }
        Json::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            if ExportSnapshot::is_function_marker(item) {
                return Some((format!("{path}[{index}]"), false));
            }
            find_function_path(item, &format!("{path}[{index}]"))
        }),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => None,
    }
}

/// The first `$ref`-like keyword whose target is not `#...`. Values of keywords that
/// hold data rather than schemas (`const`, `enum`, `default`, `examples`) are skipped.
fn find_external_ref(value: &Json) -> Option<String> {
    match value {
        Json::Object(map) => map
            .iter()
            .find_map(|(key, child)| match (key.as_str(), child) {
                ("$ref" | "$dynamicRef" | "$recursiveRef", Json::String(target))
                    if !target.starts_with('#') =>
                {
                    Some(target.clone())
                }
                ("const" | "enum" | "default" | "examples", _) => None,
                _ => find_external_ref(child),
            }),
        Json::Array(items) => items.iter().find_map(find_external_ref),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => None,
    }
}

/// Refuses every external resource: `$ref` may only point inside the schema (spec 30
/// §2.3), and validation never touches the network or the filesystem.
pub(crate) struct RefuseExternal;

impl jsonschema::Retrieve for RefuseExternal {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Json, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("external reference {} is not allowed", uri.as_str()).into())
    }
}

/// `canonical(value).to_string()` without building the sorted copy: objects are
/// written with their keys sorted at every level.
fn canonical_text(value: &Json) -> String {
    serde_json::to_string(&Canonical(value)).expect("JSON values with string keys always serialize")
}

/// Serializes a JSON value with the keys of every object sorted.
struct Canonical<'v>(&'v Json);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Json::Object(map) => {
                let mut entries: Vec<(&String, &Json)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, child) in entries {
                    out.serialize_entry(key, &Canonical(child))?;
                }
                out.end()
            }
            Json::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Canonical(item))?;
                }
                out.end()
            }
            Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => {
                self.0.serialize(serializer)
            }
        }
    }
}

/// Sorts keys at every level (independent of serde_json's `preserve_order`).
#[cfg(test)]
fn canonical(value: &Json) -> Json {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<(&String, &Json)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(key, child)| (key.clone(), canonical(child)))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(canonical).collect()),
        Json::Null | Json::Bool(_) | Json::Number(_) | Json::String(_) => value.clone(),
    }
}

/// Which field holds the type.
fn type_field(kind: Kind) -> &'static str {
    match kind {
        Kind::Report => "name",
        Kind::Model | Kind::Extension | Kind::Vault | Kind::Driver | Kind::Datastore => "type",
    }
}

fn fail(path: &str, message: impl Display) -> ExportValidationError {
    ExportValidationError(format!("{path}: {message}"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests;

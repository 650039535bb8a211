//! Model definitions and argument checks (spec 30 §6.1–§6.2): `YamlModelDefinitions`
//! reads and creates `models/<name>.yaml`; `JsonSchemaValidator` checks values against
//! the JSON Schemas of a type (formats asserted, no external `$ref`).

mod definitions;
mod schema;

pub use definitions::YamlModelDefinitions;
pub use schema::JsonSchemaValidator;

/// Reads `--args-file`: JSON for `*.json`, YAML otherwise (`*.yaml`, `*.yml`).
pub fn read_args_file(path: &std::path::Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --args-file {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| format!("--args-file {}: invalid JSON: {e}", path.display()))
    } else {
        serde_norway::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            format!("--args-file {}{at}: invalid YAML: {e}", path.display())
        })
    }
}

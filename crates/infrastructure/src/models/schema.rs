//! `JsonSchemaValidator`: every violation of a value, as `<pointer>: <message>` items.

use serde_json::Value;

use fen_domain::model::Violation;
use fen_domain::ports::SchemaValidator;

use crate::runtime::RefuseExternal;

/// Validates with the `jsonschema` crate; formats are asserted and every external
/// `$ref` is refused (the schemas were checked when the type was indexed).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSchemaValidator;

impl SchemaValidator for JsonSchemaValidator {
    fn validate(&self, schema: &Value, value: &Value) -> Result<Vec<Violation>, String> {
        let validator = jsonschema::options()
            .with_retriever(RefuseExternal)
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(validator
            .iter_errors(value)
            .map(|error| {
                let pointer = match error.instance_path().as_str() {
                    "" => "/".to_owned(),
                    path => path.to_owned(),
                };
                let message = match error.kind() {
                    jsonschema::error::ValidationErrorKind::Required { property } => {
                        format!("missing required property {property}")
                    }
                    _ => error.to_string(),
                };
                Violation { pointer, message }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_pointer_and_problem() {
        let schema = json!({
            "type": "object",
            "properties": {"url": {"type": "string"}, "expectStatus": {"type": "integer"}},
            "required": ["url"],
            "additionalProperties": false,
        });
        let violations = JsonSchemaValidator
            .validate(&schema, &json!({"expectStatus": "two hundred"}))
            .expect("compiles");
        let texts: Vec<String> = violations.iter().map(ToString::to_string).collect();
        assert!(
            texts.contains(&"/: missing required property \"url\"".to_owned()),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"/expectStatus: \"two hundred\" is not of type \"integer\"".to_owned()),
            "{texts:?}"
        );
        assert!(JsonSchemaValidator
            .validate(&schema, &json!({"url": "x"}))
            .expect("compiles")
            .is_empty());
    }

    #[test]
    fn formats_are_asserted() {
        let schema = json!({"type": "string", "format": "email"});
        assert_eq!(
            JsonSchemaValidator
                .validate(&schema, &json!("not an address"))
                .expect("compiles")
                .len(),
            1
        );
    }
}

//! Models (spec 30 §2.2, §2.10, §6): the names of models and their members, the
//! definition of one model (`models/<name>.yaml`), the pure rules of argument input
//! (merging `--arg` / `--args-json` / `--args-file`, coercion by the schema's
//! top-level property types, top-level defaults), the one-line violation list, and the
//! run record with its data handles. No I/O: parsing YAML, validating JSON Schemas and
//! writing files are adapters' work.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ports::datastore::ModelName;

/// At most this many violations are listed in one message (spec 30 §6.2).
pub const MAX_LISTED_VIOLATIONS: usize = 20;

impl ModelName {
    /// A model name: `[a-z0-9][a-z0-9._-]{0,62}` (it is a path segment).
    ///
    /// ```
    /// use fen_domain::ports::ModelName;
    /// assert!(ModelName::parse("web-health").is_ok());
    /// assert!(ModelName::parse("Web").is_err());
    /// assert!(ModelName::parse("../x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<ModelName, String> {
        let bytes = text.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
        if first_ok && rest_ok && bytes.len() <= 63 {
            Ok(ModelName(text.to_owned()))
        } else {
            Err(format!(
                "invalid model name {text:?}: use 1 to 63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
            ))
        }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A method or resource spec name: `[A-Za-z][A-Za-z0-9_]{0,63}`.
pub fn is_member_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// A resource instance name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}` (a path segment).
pub fn is_instance_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One model definition, `models/<name>.yaml` (spec 30 §6.1).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDefinition {
    /// The model's name; equals the file stem.
    pub name: ModelName,
    /// The type as written (normalised before any lookup).
    pub type_name: String,
    /// The type's version when the model was created; informational.
    pub type_version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// The global arguments as written (no defaults filled in).
    pub global_arguments: Map<String, Value>,
}

/// One schema violation: a JSON pointer into the validated value and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// `/` for the root, else `/key/0/...`.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

/// The violation list of one message: `<pointer>: <message>` joined by `; `, at most
/// [`MAX_LISTED_VIOLATIONS`], then `; ... and N more`.
///
/// ```
/// use fen_domain::model::{format_violations, Violation};
/// let v = |p: &str| Violation { pointer: p.into(), message: "bad".into() };
/// assert_eq!(format_violations(&[v("/"), v("/a")]), "/: bad; /a: bad");
/// let many: Vec<Violation> = (0..23).map(|i| v(&format!("/{i}"))).collect();
/// assert!(format_violations(&many).ends_with("/19: bad; ... and 3 more"));
/// ```
pub fn format_violations(violations: &[Violation]) -> String {
    let mut out = violations
        .iter()
        .take(MAX_LISTED_VIOLATIONS)
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > MAX_LISTED_VIOLATIONS {
        out.push_str(&format!(
            "; ... and {} more",
            violations.len() - MAX_LISTED_VIOLATIONS
        ));
    }
    out
}

/// The argument input of one command line (spec 30 §6.2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArgInput {
    /// `--arg key=value`, in order.
    pub pairs: Vec<String>,
    /// `--args-json`, parsed.
    pub json: Option<Value>,
    /// `--args-file`, parsed, with the file name for messages.
    pub file: Option<(String, Value)>,
}

/// Why argument input could not be merged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArgInputError(pub String);

impl ArgInput {
    /// Merges the forms into one object: `--arg` pairs first, then `--args-json`, then
    /// `--args-file`; a later form overrides the keys of an earlier one. `--arg`
    /// values are coerced by the type of that top-level property in `schema` (see
    /// [`coerce_arg`]). A key given twice with `--arg`, a pair without `=`, or a JSON
    /// form that is not an object is an error.
    pub fn merge(&self, schema: &Value) -> Result<Map<String, Value>, ArgInputError> {
        let mut out = Map::new();
        for pair in &self.pairs {
            let Some((key, raw)) = pair.split_once('=') else {
                return Err(ArgInputError(format!(
                    "--arg {pair:?} is not of the form key=value"
                )));
            };
            if key.is_empty() {
                return Err(ArgInputError(format!("--arg {pair:?} has an empty key")));
            }
            if out.contains_key(key) {
                return Err(ArgInputError(format!(
                    "--arg {key} is given more than once"
                )));
            }
            out.insert(key.to_owned(), coerce_arg(schema, key, raw));
        }
        let forms = [
            self.json.as_ref().map(|v| ("--args-json", v)),
            self.file.as_ref().map(|(_, v)| ("--args-file", v)),
        ];
        for (what, value) in forms.into_iter().flatten() {
            let Value::Object(map) = value else {
                return Err(ArgInputError(format!("{what} must hold a JSON object")));
            };
            for (key, value) in map {
                out.insert(key.clone(), value.clone());
            }
        }
        Ok(out)
    }

    /// True when no form was given.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.json.is_none() && self.file.is_none()
    }
}

/// The value of `--arg key=raw`: kept as text when the top-level property `key` of
/// `schema` has `type: string` (or a type list containing `string`); parsed as JSON for
/// any other declared type (`port=8080` gives `8080`); for a property without a type,
/// or not in the schema, parsed as JSON when that works, else kept as text. A declared
/// non-string type whose text is not JSON stays text, so validation reports it.
///
/// ```
/// use fen_domain::model::coerce_arg;
/// use serde_json::json;
/// let schema = json!({"type": "object", "properties": {
///     "port": {"type": "integer"}, "tag": {"type": "string"}}});
/// assert_eq!(coerce_arg(&schema, "port", "8080"), json!(8080));
/// assert_eq!(coerce_arg(&schema, "tag", "8080"), json!("8080"));
/// assert_eq!(coerce_arg(&schema, "other", "true"), json!(true));
/// assert_eq!(coerce_arg(&schema, "other", "x y"), json!("x y"));
/// ```
pub fn coerce_arg(schema: &Value, key: &str, raw: &str) -> Value {
    let declared = schema
        .get("properties")
        .and_then(|p| p.get(key))
        .and_then(|p| p.get("type"));
    let is_string = match declared {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    };
    if is_string {
        return Value::String(raw.to_owned());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// `args` with the top-level `default`s of `schema` filled in for absent keys.
pub fn with_defaults(schema: &Value, args: &Map<String, Value>) -> Map<String, Value> {
    let mut out = args.clone();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (key, property) in properties {
            if let Some(default) = property.get("default") {
                if !out.contains_key(key) {
                    out.insert(key.clone(), default.clone());
                }
            }
        }
    }
    out
}

/// One version of one artifact written by a run (spec 30 §2.7, §2.10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHandle {
    /// The model.
    pub model: String,
    /// The resource spec.
    pub spec: String,
    /// The instance.
    pub instance: String,
    /// The version, from 1.
    pub version: u64,
    /// Bytes of `data.json`.
    pub size: u64,
    /// SHA-256 of `data.json`, lower-case hex.
    pub sha256: String,
}

/// How a run ended (spec 30 §2.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// `run` returned.
    Succeeded,
    /// `run` threw or returned something unusable.
    Failed,
    /// A time or memory limit was hit.
    LimitExceeded,
    /// Interrupted by a signal.
    Cancelled,
}

impl RunStatus {
    /// The snake_case word.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::LimitExceeded => "limit_exceeded",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The error of a failed run, with the CLI error code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The CLI error code (`method_threw`, `sandbox_time_limit`, ...).
    pub code: String,
    /// The one-line message.
    pub message: String,
}

/// The record of one method run, `.fen/data/<model>/runs/<run-id>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// `<yyyymmddThhmmssZ>-<8 hex>`.
    pub run_id: String,
    /// The model.
    pub model: String,
    /// The type as declared.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The loaded type's version.
    pub type_version: String,
    /// The method.
    pub method: String,
    /// The method arguments, validated, defaults applied.
    pub args: Value,
    /// How it ended.
    pub status: RunStatus,
    /// The error, when it failed.
    pub error: Option<RunError>,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC.
    pub finished_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Every artifact version written, in order.
    pub handles: Vec<DataHandle>,
    /// What `run` returned (`null` for `undefined` or a failure).
    pub result: Value,
    /// The JS stack of a non-`FenError` throw, when there was one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stack: Option<String>,
}

/// The timestamp part of a run id, `yyyymmddThhmmssZ`, from an RFC 3339 UTC time
/// (`2026-03-01T12:00:05.123Z`); `None` when the text is not of that shape.
pub fn run_id_stamp(rfc3339: &str) -> Option<String> {
    let digits: String = rfc3339
        .chars()
        .take(19)
        .filter(char::is_ascii_digit)
        .collect();
    (digits.len() == 14).then(|| format!("{}T{}Z", &digits[..8], &digits[8..]))
}

/// True for a run id `<yyyymmddThhmmssZ>-<8 lowercase hex>`.
pub fn is_run_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 25
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
        && bytes[17..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "port": {"type": "integer", "default": 80},
            "tag": {"type": "string"},
            "maybe": {"type": ["string", "null"]},
            "flags": {"type": "array"},
        }})
    }

    #[test]
    fn pairs_are_coerced_by_property_type() {
        let input = ArgInput {
            pairs: vec![
                "port=8080".into(),
                "tag=8080".into(),
                "maybe=null".into(),
                "flags=[1,2]".into(),
                "url=https://x/?a=b".into(),
            ],
            ..ArgInput::default()
        };
        let merged = input.merge(&schema()).expect("merges");
        assert_eq!(merged["port"], json!(8080));
        assert_eq!(merged["tag"], json!("8080"));
        assert_eq!(merged["maybe"], json!("null"));
        assert_eq!(merged["flags"], json!([1, 2]));
        // Only the first `=` splits.
        assert_eq!(merged["url"], json!("https://x/?a=b"));
    }

    #[test]
    fn a_declared_number_that_is_not_json_stays_text_for_validation() {
        assert_eq!(
            coerce_arg(&schema(), "port", "two hundred"),
            json!("two hundred")
        );
    }

    #[test]
    fn later_forms_override_earlier_keys() {
        let input = ArgInput {
            pairs: vec!["port=1".into(), "tag=a".into()],
            json: Some(json!({"port": 2, "x": 1})),
            file: Some(("a.json".into(), json!({"port": 3}))),
        };
        let merged = input.merge(&schema()).expect("merges");
        assert_eq!(
            Value::Object(merged),
            json!({"port": 3, "tag": "a", "x": 1})
        );
    }

    #[test]
    fn malformed_input_is_refused() {
        let twice = ArgInput {
            pairs: vec!["a=1".into(), "a=2".into()],
            ..ArgInput::default()
        };
        assert!(twice
            .merge(&schema())
            .unwrap_err()
            .0
            .contains("more than once"));
        let no_eq = ArgInput {
            pairs: vec!["a".into()],
            ..ArgInput::default()
        };
        assert!(no_eq.merge(&schema()).unwrap_err().0.contains("key=value"));
        let array = ArgInput {
            json: Some(json!([1])),
            ..ArgInput::default()
        };
        assert!(array
            .merge(&schema())
            .unwrap_err()
            .0
            .contains("JSON object"));
    }

    #[test]
    fn defaults_fill_absent_keys_only() {
        let args = Map::from_iter([("tag".to_owned(), json!("x"))]);
        let filled = with_defaults(&schema(), &args);
        assert_eq!(filled["port"], json!(80));
        let given = Map::from_iter([("port".to_owned(), json!(1))]);
        assert_eq!(with_defaults(&schema(), &given)["port"], json!(1));
    }

    #[test]
    fn violation_list_is_capped_at_twenty() {
        let many: Vec<Violation> = (0..25)
            .map(|i| Violation {
                pointer: format!("/k{i}"),
                message: "is wrong".into(),
            })
            .collect();
        let text = format_violations(&many);
        assert_eq!(text.matches("is wrong").count(), 20);
        assert!(text.starts_with("/k0: is wrong; /k1: is wrong"));
        assert!(text.ends_with("/k19: is wrong; ... and 5 more"), "{text}");
        assert_eq!(format_violations(&many[..20]).matches("more").count(), 0);
    }

    #[test]
    fn names_follow_the_rules() {
        assert!(ModelName::parse("a").is_ok());
        assert!(ModelName::parse(&"a".repeat(63)).is_ok());
        assert!(ModelName::parse(&"a".repeat(64)).is_err());
        assert!(ModelName::parse("").is_err());
        assert!(ModelName::parse(".hidden").is_err());
        assert!(is_member_name("verdict_2"));
        assert!(!is_member_name("2verdict"));
        assert!(!is_member_name("a-b"));
        assert!(is_instance_name("current.v1"));
        assert!(!is_instance_name(".."));
        assert!(!is_instance_name("a/b"));
    }

    #[test]
    fn run_ids() {
        assert_eq!(
            run_id_stamp("2026-03-01T12:00:05.123Z").as_deref(),
            Some("20260301T120005Z")
        );
        assert!(is_run_id("20260301T120005Z-0a1b2c3d"));
        assert!(!is_run_id("20260301T120005Z-0A1B2C3D"));
        assert!(!is_run_id("x.json"));
    }
}

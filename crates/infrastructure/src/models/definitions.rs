//! `YamlModelDefinitions`: `models/<name>.yaml` (spec 30 §6.1).
//!
//! Reading is strict: unknown keys, a wrong shape or a `name` that differs from the
//! file stem are `DefinitionError::Invalid` naming `file:line:col`. Creating is
//! create-new and crash-safe: the YAML is written to a `.fen-tmp-*` file in `models/`,
//! fsynced, `hard_link`ed to the target (which fails if the target exists, leaving it
//! untouched) and the temp file removed; a crash leaves at most a temp file that no
//! reader looks at.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use fen_domain::model::ModelDefinition;
use fen_domain::ports::{DefinitionError, ModelDefinitions, ModelName};

use crate::datastore::local::create_new_file;

/// Definitions under `<repo>/models/`.
#[derive(Clone, Debug)]
pub struct YamlModelDefinitions {
    dir: PathBuf,
    /// How file names are shown in messages (`models/web.yaml`).
    display_prefix: String,
}

/// The file's shape.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DefinitionFile {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    type_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    global_arguments: Option<Map<String, Value>>,
}

impl YamlModelDefinitions {
    /// Definitions in `dir` (`<repo>/models`), shown as `models/<file>`.
    pub fn new(dir: PathBuf) -> YamlModelDefinitions {
        YamlModelDefinitions {
            dir,
            display_prefix: "models/".to_owned(),
        }
    }

    fn path_of(&self, name: &ModelName) -> PathBuf {
        self.dir.join(format!("{name}.yaml"))
    }

    fn shown(&self, name: &str) -> String {
        format!("{}{name}.yaml", self.display_prefix)
    }

    /// Parses one file's text.
    fn parse(&self, stem: &str, text: &str) -> Result<ModelDefinition, DefinitionError> {
        let file = self.shown(stem);
        let parsed: DefinitionFile = serde_norway::from_str(text).map_err(|e| {
            let location = match e.location() {
                Some(at) => format!("{file}:{}:{}", at.line(), at.column()),
                None => file.clone(),
            };
            DefinitionError::Invalid {
                location,
                message: one_line(&e.to_string()),
            }
        })?;
        let at_key = |key: &str| key_location(&file, text, key);
        if parsed.name != stem {
            return Err(DefinitionError::Invalid {
                location: at_key("name"),
                message: format!(
                    "name \"{}\" must equal the file name \"{stem}\"",
                    parsed.name
                ),
            });
        }
        let name = ModelName::parse(&parsed.name).map_err(|message| DefinitionError::Invalid {
            location: at_key("name"),
            message,
        })?;
        let type_version = match parsed.type_version {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                return Err(DefinitionError::Invalid {
                    location: at_key("typeVersion"),
                    message: "typeVersion must be a version such as 2026.03.01.1".to_owned(),
                })
            }
        };
        Ok(ModelDefinition {
            name,
            type_name: parsed.type_name,
            type_version,
            description: parsed.description,
            global_arguments: parsed.global_arguments.unwrap_or_default(),
        })
    }
}

/// `file:line:col` of a top-level `key:`, or `file:1:1`.
fn key_location(file: &str, text: &str, key: &str) -> String {
    for (index, line) in text.lines().enumerate() {
        if line.starts_with(&format!("{key}:")) {
            return format!("{file}:{}:1", index + 1);
        }
    }
    format!("{file}:1:1")
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn io(path: &Path, error: std::io::Error) -> DefinitionError {
    DefinitionError::Io(format!("{}: {error}", path.display()))
}

impl ModelDefinitions for YamlModelDefinitions {
    fn read(&self, name: &ModelName) -> Result<Option<ModelDefinition>, DefinitionError> {
        let path = self.path_of(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        self.parse(name.as_str(), &text).map(Some)
    }

    fn names(&self) -> Result<Vec<String>, DefinitionError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| n.strip_suffix(".yaml").map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn create(&self, definition: &ModelDefinition) -> Result<String, DefinitionError> {
        let path = self.path_of(&definition.name);
        let file = DefinitionFile {
            name: definition.name.to_string(),
            type_name: definition.type_name.clone(),
            type_version: definition.type_version.clone().map(Value::String),
            description: definition.description.clone(),
            global_arguments: (!definition.global_arguments.is_empty())
                .then(|| definition.global_arguments.clone()),
        };
        let text = serde_norway::to_string(&file)
            .map_err(|e| DefinitionError::Io(format!("cannot write YAML: {e}")))?;
        let shown = self.shown(definition.name.as_str());
        match create_new_file(&path, text.as_bytes()) {
            Ok(()) => Ok(shown),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(DefinitionError::Exists { path: shown })
            }
            Err(e) => Err(io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defs(dir: &Path) -> YamlModelDefinitions {
        YamlModelDefinitions::new(dir.join("models"))
    }

    fn definition(name: &str, args: Value) -> ModelDefinition {
        ModelDefinition {
            name: ModelName::parse(name).expect("name"),
            type_name: "@acme/net/endpoint".to_owned(),
            type_version: Some("2026.03.01.1".to_owned()),
            description: None,
            global_arguments: args.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn create_then_read_round_trips_with_types_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let defs = defs(dir.path());
        let def = definition("web", json!({"port": 8080, "tag": "8080", "url": "x"}));
        assert_eq!(defs.create(&def).expect("created"), "models/web.yaml");
        let read = defs
            .read(&ModelName::parse("web").expect("name"))
            .expect("reads")
            .expect("exists");
        assert_eq!(read, def);
        assert_eq!(defs.names().expect("names"), ["web"]);
        let leftovers = std::fs::read_dir(dir.path().join("models"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1, "no temp file is left");
    }

    #[test]
    fn create_never_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let defs = defs(dir.path());
        std::fs::create_dir_all(dir.path().join("models")).expect("mkdir");
        std::fs::write(dir.path().join("models/web.yaml"), "hand written").expect("write");
        let error = defs
            .create(&definition("web", json!({})))
            .expect_err("exists");
        assert_eq!(
            error,
            DefinitionError::Exists {
                path: "models/web.yaml".to_owned()
            }
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("models/web.yaml")).expect("read"),
            "hand written"
        );
    }

    #[test]
    fn invalid_files_name_file_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let defs = defs(dir.path());
        std::fs::create_dir_all(dir.path().join("models")).expect("mkdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(format!("models/{name}.yaml")), text).expect("write")
        };
        let read = |name: &str| defs.read(&ModelName::parse(name).expect("name"));
        write("a", "name: a\ntype: x/y\ncolour: red\n");
        let error = read("a").expect_err("unknown key").to_string();
        assert!(error.starts_with("models/a.yaml:3:"), "{error}");
        assert!(error.contains("colour"), "{error}");
        write("b", "name: other\ntype: x/y\n");
        let error = read("b").expect_err("wrong name").to_string();
        assert!(error.starts_with("models/b.yaml:1:1"), "{error}");
        write("c", "name: c\ntype: [unclosed\n");
        assert!(read("c")
            .expect_err("bad yaml")
            .to_string()
            .starts_with("models/c.yaml:"));
        assert_eq!(read("absent").expect("ok"), None);
    }
}

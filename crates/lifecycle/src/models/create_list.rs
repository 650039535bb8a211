//! `fen model create` and `fen model list` (spec 30 §6.3, §6.4).

use serde_json::{json, Value};

use fen_domain::model::{ArgInput, ModelDefinition};
use fen_domain::ports::{DefinitionError, ModelName, TypeIndex};
use fen_domain::{Kind, TypeName};

use super::{ModelError, ModelListing, Models};
use crate::registry::declared_type;

impl Models {
    /// `fen model create <type> <name> [args]` (spec 30 §6.3): loads the type
    /// (1 + E bundles), validates the global arguments with defaults applied, and
    /// writes `models/<name>.yaml` create-new, without the defaults.
    ///
    /// Crash safety: the file is created by temp file + `hard_link` (see the
    /// definitions adapter); an existing file is never touched, and nothing is written
    /// when any check fails.
    pub async fn create(
        &self,
        type_raw: &str,
        name_raw: &str,
        args: &ArgInput,
    ) -> Result<String, ModelError> {
        let name = self.parse_name(name_raw)?;
        let name_text = name.to_string();
        let exists = |path: String| ModelError::ModelExists {
            name: name_text.clone(),
            path,
        };
        if self
            .ports
            .definitions
            .names()
            .map_err(Self::definition_error)?
            .iter()
            .any(|n| n == name.as_str())
        {
            return Err(exists(format!("models/{name}.yaml")));
        }
        let loaded = self.load_type(type_raw).await?;
        let declared = declared_type(&loaded.entry);
        let descriptor: Value =
            serde_json::from_str(&loaded.entry.meta.descriptor).unwrap_or(Value::Null);
        let schema = descriptor
            .get("globalArguments")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "additionalProperties": false}));
        let message = format!("invalid global arguments for model \"{name}\" (type {declared})");
        // Defaults are applied to check the value but not written (spec 30 §6.3).
        let given = self.checked_args(args, &schema, message)?.given;
        let definition = ModelDefinition {
            name,
            type_name: declared,
            type_version: Some(loaded.entry.meta.declared_version.clone())
                .filter(|v| !v.is_empty()),
            description: None,
            global_arguments: given,
        };
        match self.ports.definitions.create(&definition) {
            Ok(path) => Ok(path),
            Err(DefinitionError::Exists { path }) => Err(exists(path)),
            Err(other) => Err(Self::definition_error(other)),
        }
    }

    /// `fen model list` (spec 30 §6.4): every definition with its type's status and
    /// its newest run id; evaluates nothing.
    pub async fn list(&self, types: &dyn TypeIndex) -> Result<Vec<ModelListing>, ModelError> {
        let mut out = Vec::new();
        for stem in self
            .ports
            .definitions
            .names()
            .map_err(Self::definition_error)?
        {
            let Ok(name) = ModelName::parse(&stem) else {
                out.push(ModelListing {
                    name: stem.clone(),
                    type_name: None,
                    status: "invalid_definition",
                    detail: Some(format!(
                        "models/{stem}.yaml: the file name is not a valid model name"
                    )),
                    latest_run: None,
                });
                continue;
            };
            let latest_run = self
                .ports
                .data
                .latest_run(&name)
                .map_err(|e| ModelError::Data(e.to_string()))?;
            match self.ports.definitions.read(&name) {
                Ok(Some(definition)) => {
                    let known = match TypeName::parse(&definition.type_name) {
                        Ok(ty) => types
                            .find_type(Kind::Model, &ty)
                            .await
                            .map_err(|e| ModelError::Data(e.to_string()))?
                            .is_some(),
                        Err(_) => false,
                    };
                    out.push(ModelListing {
                        name: stem,
                        type_name: Some(definition.type_name),
                        status: if known { "ok" } else { "unknown_type" },
                        detail: None,
                        latest_run,
                    });
                }
                Ok(None) => {}
                Err(error) => out.push(ModelListing {
                    name: stem,
                    type_name: None,
                    status: "invalid_definition",
                    detail: Some(error.to_string()),
                    latest_run,
                }),
            }
        }
        Ok(out)
    }
}

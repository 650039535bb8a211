//! Definition and argument checks shared by `create` and method runs (spec 30 §6.2).

use serde_json::{Map, Value};

use fen_domain::model::{with_defaults, ArgInput, Violation};

use super::{ModelError, Models};

impl Models {
    /// Merges the argument forms of `input` by `schema` (spec 30 §6.2), applies the
    /// top-level defaults and validates the result; returns the arguments as given and
    /// with the defaults.
    pub(super) fn checked_args(
        &self,
        input: &ArgInput,
        schema: &Value,
        message: String,
    ) -> Result<CheckedArgs, ModelError> {
        let given = input
            .merge(schema)
            .map_err(|e| ModelError::InvalidArguments {
                message: message.clone(),
                violations: vec![Violation {
                    pointer: "/".to_owned(),
                    message: e.0,
                }],
            })?;
        let with_defaults = with_defaults(schema, &given);
        self.validate(schema, &with_defaults, message)?;
        Ok(CheckedArgs {
            given,
            with_defaults,
        })
    }

    pub(super) fn validate(
        &self,
        schema: &Value,
        value: &Map<String, Value>,
        message: String,
    ) -> Result<(), ModelError> {
        let violations = self
            .ports
            .schemas
            .validate(schema, &Value::Object(value.clone()))
            .map_err(|e| ModelError::InvalidArguments {
                message: message.clone(),
                violations: vec![Violation {
                    pointer: "/".to_owned(),
                    message: format!("the schema does not compile: {e}"),
                }],
            })?;
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ModelError::InvalidArguments {
                message,
                violations,
            })
        }
    }
}

/// Arguments that passed their schema.
pub(super) struct CheckedArgs {
    /// As given (what `model create` writes).
    pub(super) given: Map<String, Value>,
    /// With the schema's top-level defaults applied (what a method receives).
    pub(super) with_defaults: Map<String, Value>,
}

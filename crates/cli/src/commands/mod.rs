//! One module per command; each returns its result as human text plus a JSON value.

pub mod init;

use serde_json::Value;

/// What a successful command prints.
pub struct Outcome {
    /// Human text.
    pub human: String,
    /// The JSON document.
    pub json: Value,
}

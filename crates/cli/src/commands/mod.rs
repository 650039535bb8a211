//! One module per command; each returns its result as human text plus a JSON value.

pub mod completions;
pub mod datastore;
pub mod doctor;
pub mod extension_list;
pub mod init;
pub mod lifecycle;
pub mod models;
pub mod pack;
pub mod registry;
pub mod source;
pub mod types;
pub mod version;
pub mod why;

use serde_json::Value;

/// What a successful command prints.
pub struct Outcome {
    /// Human text.
    pub human: String,
    /// The JSON document.
    pub json: Value,
    /// 0, or 7 for doctor's `fail` (the report is still the result).
    pub exit_code: u8,
}

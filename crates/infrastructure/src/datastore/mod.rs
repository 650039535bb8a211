//! Datastores (spec 30 §7): the `local` datastore's data store (`local.rs`: artifacts,
//! run records and the `ctx` host of a run) and the file-based `DistributedLock`
//! (`lock.rs`). The `filesystem` and extension datastores with their sync services are
//! a later milestone.

pub mod local;
pub mod lock;

pub use local::{LocalModelData, RunLogSink};
pub use lock::{FileDistributedLock, LockIdentity};

/// The configured datastore type, from `.fen/datastore.yaml` (absent: `local`).
/// Only `local` is supported in this version; any other type, an unparsable file or
/// an unknown shape is an error naming the file (`config_invalid`).
pub fn configured_type(path: &std::path::Path) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(rename = "type")]
        kind: String,
        #[serde(flatten)]
        _rest: std::collections::BTreeMap<String, serde_json::Value>,
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("local".to_owned()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let config: Config = serde_norway::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        format!("{}{at}: {}", path.display(), e)
    })?;
    match config.kind.as_str() {
        "local" => Ok(config.kind),
        other => Err(format!(
            "{}: datastore type \"{other}\" is not supported by this version of fen (only \"local\")",
            path.display()
        )),
    }
}

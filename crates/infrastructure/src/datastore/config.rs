//! `.fen/datastore.yaml` (spec 30 §7.1): which datastore a repo uses.
//!
//! Absent ⇒ `local`. A file that does not parse, has a field the type does not know,
//! lacks one it needs or names a relative path is `config_invalid` (the caller maps
//! the message). Written atomically: temp file, fsync, rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::random;

/// The configured datastore.
#[derive(Clone, Debug, PartialEq)]
pub enum DatastoreConfig {
    /// `.fen/data/`, locks under `.fen/locks/`.
    Local,
    /// `.fen/data/` as a cache of `<path>/data/`, locks under `<path>/.fen-locks/`.
    Filesystem {
        /// The shared directory (absolute).
        path: PathBuf,
    },
    /// A datastore extension type syncing with `remote`.
    Extension {
        /// The type as written.
        type_name: String,
        /// The remote directory (absolute).
        remote: PathBuf,
        /// The extension's `config:` object.
        config: serde_json::Value,
    },
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<serde_json::Value>,
}

impl DatastoreConfig {
    /// Reads the file at `path` (absent: `Local`).
    pub fn read(path: &Path) -> Result<DatastoreConfig, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(DatastoreConfig::Local)
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let raw: Raw = serde_norway::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            format!("{}{at}: {e}", path.display())
        })?;
        let shape = |message: &str| format!("{}: {message}", path.display());
        let absolute = |field: &str, value: Option<String>| -> Result<PathBuf, String> {
            let value = value.ok_or_else(|| {
                shape(&format!(
                    "datastore type \"{}\" needs '{field}: <absolute directory>'",
                    raw.kind
                ))
            })?;
            let dir = PathBuf::from(&value);
            if value.is_empty() || !dir.is_absolute() {
                return Err(shape(&format!(
                    "'{field}: {value}' must be an absolute directory"
                )));
            }
            Ok(dir)
        };
        let unexpected = |field: &str| {
            Err(shape(&format!(
                "datastore type \"{}\" has no '{field}' field",
                raw.kind
            )))
        };
        match raw.kind.as_str() {
            "local" => {
                if raw.path.is_some() {
                    return unexpected("path");
                }
                if raw.remote.is_some() {
                    return unexpected("remote");
                }
                if raw.config.is_some() {
                    return unexpected("config");
                }
                Ok(DatastoreConfig::Local)
            }
            "filesystem" => {
                if raw.remote.is_some() {
                    return unexpected("remote");
                }
                if raw.config.is_some() {
                    return unexpected("config");
                }
                Ok(DatastoreConfig::Filesystem {
                    path: absolute("path", raw.path.clone())?,
                })
            }
            other if other.contains('/') => {
                if raw.path.is_some() {
                    return unexpected("path");
                }
                let config = raw.config.clone().unwrap_or(serde_json::json!({}));
                if !config.is_object() {
                    return Err(shape("'config' must be a mapping"));
                }
                Ok(DatastoreConfig::Extension {
                    type_name: other.to_owned(),
                    remote: absolute("remote", raw.remote.clone())?,
                    config,
                })
            }
            other => Err(shape(&format!(
                "unknown datastore type \"{other}\" (expected local, filesystem or an extension type such as @acme/store)"
            ))),
        }
    }

    /// The type as shown: `local`, `filesystem` or the extension type.
    pub fn type_name(&self) -> &str {
        match self {
            DatastoreConfig::Local => "local",
            DatastoreConfig::Filesystem { .. } => "filesystem",
            DatastoreConfig::Extension { type_name, .. } => type_name,
        }
    }

    /// Where the data is shared: the directory, or `None` for `local`.
    pub fn location(&self) -> Option<&Path> {
        match self {
            DatastoreConfig::Local => None,
            DatastoreConfig::Filesystem { path } => Some(path),
            DatastoreConfig::Extension { remote, .. } => Some(remote),
        }
    }

    /// Writes the file at `path` atomically (temp file in `.fen/`, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let show = |p: &Path| p.to_string_lossy().into_owned();
        let raw = match self {
            DatastoreConfig::Local => Raw {
                kind: "local".to_owned(),
                path: None,
                remote: None,
                config: None,
            },
            DatastoreConfig::Filesystem { path } => Raw {
                kind: "filesystem".to_owned(),
                path: Some(show(path)),
                remote: None,
                config: None,
            },
            DatastoreConfig::Extension {
                type_name,
                remote,
                config,
            } => Raw {
                kind: type_name.clone(),
                path: None,
                remote: Some(show(remote)),
                config: Some(config.clone()),
            },
        };
        let text = serde_norway::to_string(&raw).map_err(|e| e.to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let temp = dir.join(format!(
            ".fen-tmp-datastore-{}",
            random::hex(&random::bytes::<8>())
        ));
        let written = std::fs::File::create(&temp)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        Ok(())
    }
}

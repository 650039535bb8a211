//! `.fen/datastore.yaml` (spec 30 §7.1): which datastore a repo uses.
//!
//! Absent ⇒ `local`. A file that does not parse, has a field the type does not know,
//! lacks one it needs or names a relative path is `config_invalid` (the caller maps
//! the message). Written atomically: temp file, fsync, rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::s3::S3Location;
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
    /// `.fen/data/` as a cache of `<prefix>/data/` in an S3 bucket, locks under
    /// `<prefix>/.fen-locks/`.
    S3 {
        /// Bucket, prefix, endpoint and region (never credentials).
        location: S3Location,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
}

impl Raw {
    fn of(kind: &str) -> Raw {
        Raw {
            kind: kind.to_owned(),
            path: None,
            remote: None,
            config: None,
            bucket: None,
            prefix: None,
            endpoint: None,
            region: None,
        }
    }
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
        if raw.kind != "s3" {
            for (field, value) in [
                ("bucket", &raw.bucket),
                ("prefix", &raw.prefix),
                ("endpoint", &raw.endpoint),
                ("region", &raw.region),
            ] {
                if value.is_some() {
                    return unexpected(field);
                }
            }
        }
        match raw.kind.as_str() {
            "s3" => {
                for (field, present) in [
                    ("path", raw.path.is_some()),
                    ("remote", raw.remote.is_some()),
                    ("config", raw.config.is_some()),
                ] {
                    if present {
                        return unexpected(field);
                    }
                }
                let bucket = raw
                    .bucket
                    .as_deref()
                    .ok_or_else(|| shape("datastore type \"s3\" needs 'bucket: <name>'"))?;
                let location = S3Location::new(
                    bucket,
                    raw.prefix.as_deref(),
                    raw.endpoint.as_deref(),
                    raw.region.as_deref(),
                )
                .map_err(|message| shape(&message))?;
                Ok(DatastoreConfig::S3 { location })
            }
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
                "unknown datastore type \"{other}\" (expected local, filesystem, s3 or an extension type such as @acme/store)"
            ))),
        }
    }

    /// The type as shown: `local`, `filesystem` or the extension type.
    pub fn type_name(&self) -> &str {
        match self {
            DatastoreConfig::Local => "local",
            DatastoreConfig::Filesystem { .. } => "filesystem",
            DatastoreConfig::S3 { .. } => "s3",
            DatastoreConfig::Extension { type_name, .. } => type_name,
        }
    }

    /// Where the data is shared, as shown: the directory, `s3://bucket/prefix`, or
    /// `None` for `local`.
    pub fn shown_location(&self) -> Option<String> {
        match self {
            DatastoreConfig::S3 { location } => Some(location.url()),
            other => other.location().map(|p| p.display().to_string()),
        }
    }

    /// Where the data is shared: the directory, or `None` for `local` and `s3`.
    pub fn location(&self) -> Option<&Path> {
        match self {
            DatastoreConfig::Local => None,
            DatastoreConfig::Filesystem { path } => Some(path),
            DatastoreConfig::S3 { .. } => None,
            DatastoreConfig::Extension { remote, .. } => Some(remote),
        }
    }

    /// Writes the file at `path` atomically (temp file in `.fen/`, fsync, rename).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let show = |p: &Path| p.to_string_lossy().into_owned();
        let raw = match self {
            DatastoreConfig::Local => Raw::of("local"),
            DatastoreConfig::Filesystem { path } => Raw {
                path: Some(show(path)),
                ..Raw::of("filesystem")
            },
            DatastoreConfig::S3 { location } => Raw {
                bucket: Some(location.bucket.clone()),
                prefix: (!location.prefix.is_empty()).then(|| location.prefix.clone()),
                endpoint: location.endpoint.clone(),
                region: Some(location.region.clone()),
                ..Raw::of("s3")
            },
            DatastoreConfig::Extension {
                type_name,
                remote,
                config,
            } => Raw {
                remote: Some(show(remote)),
                config: Some(config.clone()),
                ..Raw::of(type_name)
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

//! The lockfile `extensions/upstream_extensions.json` (spec 20 §7): reading, with the
//! strict rules of §7.2 — a missing or blank file is empty, anything else that does
//! not parse or breaks the §7.1 types is `lockfile_invalid`, never "empty".

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use fen_domain::ports::{LockedExtension, LockfileError, LockfileReader};
use fen_domain::{ExtensionName, ExtensionVersion};
use serde::Deserialize;

/// The highest `formatVersion` this fen reads.
pub const FORMAT_VERSION: u64 = 1;

/// Reads the lockfile of one repo.
pub struct FsLockfileReader {
    path: PathBuf,
}

impl FsLockfileReader {
    /// The lockfile at `path` (normally `<root>/extensions/upstream_extensions.json`).
    pub fn new(path: PathBuf) -> FsLockfileReader {
        FsLockfileReader { path }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    format_version: u64,
    #[serde(default)]
    extensions: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    version: String,
    #[serde(default)]
    files: Vec<String>,
}

/// Parses lockfile text (spec 20 §7.1–§7.2).
pub fn parse(text: &str) -> Result<Vec<LockedExtension>, LockfileError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let document: Document = serde_json::from_str(text).map_err(|e| LockfileError {
        detail: format!("line {}, column {}: {e}", e.line(), e.column()),
    })?;
    if document.format_version > FORMAT_VERSION {
        return Err(LockfileError {
            detail: format!(
                "formatVersion {} was written by a newer fen (this fen reads {FORMAT_VERSION})",
                document.format_version
            ),
        });
    }
    let mut out = Vec::new();
    for (name, entry) in document.extensions {
        let parsed_name = ExtensionName::parse_publishable(&name).map_err(|e| LockfileError {
            detail: format!("extension {name:?}: {e}"),
        })?;
        let version = ExtensionVersion::parse(&entry.version).map_err(|e| LockfileError {
            detail: format!("extension {name}: version {:?}: {e}", entry.version),
        })?;
        out.push(LockedExtension {
            name: parsed_name,
            version,
            files: entry.files,
        });
    }
    out.sort();
    Ok(out)
}

#[async_trait]
impl LockfileReader for FsLockfileReader {
    async fn snapshot(&self) -> Result<Vec<LockedExtension>, LockfileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(LockfileError {
                detail: format!("cannot read it: {error}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_are_empty() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("  \n").unwrap().is_empty());
    }

    #[test]
    fn entries_parse_sorted() {
        let text = r#"{"formatVersion":1,"extensions":{
            "@b/x":{"version":"2026.01.02.1","files":[".fen/pulled-extensions/@b/x/models/a.ts"]},
            "@a/y":{"version":"2026.01.01.0","pulledAt":"2026-01-01T00:00:00.000Z","extra":1}}}"#;
        let got = parse(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_str(), "@a/y");
        assert_eq!(got[1].files.len(), 1);
    }

    #[test]
    fn invalid_documents_are_errors_with_a_position() {
        let error = parse("{\"formatVersion\": 1,\n \"extensions\": [}").unwrap_err();
        assert!(
            error.detail.starts_with("line 2, column"),
            "{}",
            error.detail
        );
        assert!(error
            .to_string()
            .contains("fix it or restore it from version control"));
        assert!(parse(r#"{"formatVersion":2,"extensions":{}}"#)
            .unwrap_err()
            .detail
            .contains("newer fen"));
        assert!(parse(
            r#"{"formatVersion":1,"extensions":{"@local/x":{"version":"2026.01.01.0"}}}"#
        )
        .is_err());
        assert!(parse(r#"{"formatVersion":1,"extensions":{"@a/x":{"version":"1.0"}}}"#).is_err());
    }
}

//! The lockfile `extensions/upstream_extensions.json` (spec 20 §7): reading, with the
//! strict rules of §7.2 — a missing or blank file is empty, anything else that does
//! not parse or breaks the §7.1 types is `lockfile_invalid`, never "empty" — and the
//! atomic write of §7.3 (temp file with `O_EXCL`, fsync, rename, fsync of the
//! directory). Writers hold the lifecycle lock; there is no lock of the lockfile's own.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use async_trait::async_trait;
use fen_domain::ports::{
    LockDocument, LockEntry, LockedExtension, LockfileError, LockfileReader, LockfileStore,
    LockfileWriteError,
};
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
        detail: json_position(&e),
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

/// `line L, column C: DETAIL`, without serde_json's own " at line L column C" suffix.
fn json_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let detail = match text.rfind(" at line ") {
        Some(index) => &text[..index],
        None => &text,
    };
    format!("line {}, column {}: {detail}", error.line(), error.column())
}

/// Parses the whole document (spec 20 §7.1–§7.2), keeping unknown fields.
pub fn parse_document(text: &str) -> Result<LockDocument, LockfileError> {
    if text.trim().is_empty() {
        return Ok(LockDocument::default());
    }
    let position = json_position;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| LockfileError {
        detail: position(&e),
    })?;
    let serde_json::Value::Object(mut top) = value else {
        return Err(LockfileError {
            detail: "line 1, column 1: expected a JSON object".to_owned(),
        });
    };
    let format_version = top
        .remove("formatVersion")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| LockfileError {
            detail: "formatVersion: missing or not a number".to_owned(),
        })?;
    if format_version > FORMAT_VERSION {
        return Err(LockfileError {
            detail: format!(
                "formatVersion {format_version} was written by a newer fen (this fen reads {FORMAT_VERSION})"
            ),
        });
    }
    let entries = match top.remove("extensions") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => {
            return Err(LockfileError {
                detail: "extensions: expected an object".to_owned(),
            })
        }
    };
    let mut document = LockDocument {
        extensions: BTreeMap::new(),
        extra: top,
    };
    for (name, entry) in entries {
        let parsed_name = ExtensionName::parse_publishable(&name).map_err(|e| LockfileError {
            detail: format!("extension {name:?}: {e}"),
        })?;
        let entry: LockEntry = serde_json::from_value(entry).map_err(|e| LockfileError {
            detail: format!("extension {name}: {e}"),
        })?;
        if entry.version.is_local() {
            return Err(LockfileError {
                detail: format!("extension {name}: version 0.0.0 is not a published version"),
            });
        }
        document.extensions.insert(parsed_name, entry);
    }
    Ok(document)
}

/// The document's bytes: UTF-8, 2-space indentation, `formatVersion` then
/// `extensions` (sorted by name; each entry's fields in the order of §7.1, unknown ones
/// after), then unknown top-level fields, trailing newline.
pub fn render_document(document: &LockDocument) -> Vec<u8> {
    let indent = |text: String, by: &str| text.replace('\n', &format!("\n{by}"));
    let mut text = format!("{{\n  \"formatVersion\": {FORMAT_VERSION},\n  \"extensions\": {{");
    for (index, (name, entry)) in document.extensions.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        let body = serde_json::to_string_pretty(entry).unwrap_or_else(|_| "{}".to_owned());
        text.push_str("\n    ");
        text.push_str(&serde_json::Value::String(name.as_str().to_owned()).to_string());
        text.push_str(": ");
        text.push_str(&indent(body, "    "));
    }
    if document.extensions.is_empty() {
        text.push('}');
    } else {
        text.push_str("\n  }");
    }
    for (key, value) in &document.extra {
        if key == "formatVersion" || key == "extensions" {
            continue;
        }
        let body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
        text.push_str(",\n  ");
        text.push_str(&serde_json::Value::String(key.clone()).to_string());
        text.push_str(": ");
        text.push_str(&indent(body, "  "));
    }
    text.push_str("\n}\n");
    text.into_bytes()
}

#[async_trait]
impl LockfileStore for FsLockfileReader {
    async fn read(&self) -> Result<LockDocument, LockfileError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => parse_document(&text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(LockDocument::default())
            }
            Err(error) => Err(LockfileError {
                detail: format!("cannot read it: {error}"),
            }),
        }
    }

    async fn write(&self, document: &LockDocument) -> Result<(), LockfileWriteError> {
        write_atomically(&self.path, &render_document(document))
            .map_err(|e| LockfileWriteError(e.to_string()))
    }
}

/// temp file (`O_EXCL`, 0644) → write → fsync → rename → fsync of the directory; the
/// temp file is removed on any error.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("lockfile path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        "{}{file_name}.{}.{}",
        fen_domain::layout::TEMP_PREFIX,
        std::process::id(),
        crate::random::hex(&crate::random::bytes::<4>())
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o644);
        }
        let mut file = options.open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)?;
        if let Ok(handle) = std::fs::File::open(dir) {
            let _ = handle.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
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
    fn documents_round_trip_with_unknown_fields() {
        let text = r#"{"formatVersion":1,"note":"keep","extensions":{
            "@b/x":{"version":"2026.01.02.1","pulledAt":"2026-01-02T00:00:00.000Z","checksum":"ab","files":["f"],"filesDigest":"cd","registry":"http://r","future":{"a":1}}}}"#;
        let document = parse_document(text).unwrap();
        let bytes = render_document(&document);
        let again = parse_document(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(document, again);
        let rendered = String::from_utf8(bytes).unwrap();
        assert!(rendered.starts_with("{\n  \"formatVersion\": 1,\n  \"extensions\": {\n    \"@b/x\": {\n      \"version\""), "{rendered}");
        assert!(rendered.ends_with("}\n"));
        assert!(rendered.contains("\"future\""));
        assert!(rendered.contains("\"note\": \"keep\""));
        serde_json::from_str::<serde_json::Value>(&rendered).unwrap();
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extensions/upstream_extensions.json");
        write_atomically(&path, b"{}\n").unwrap();
        write_atomically(&path, b"{\"formatVersion\":1}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"formatVersion\":1}\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

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
        assert!(!error.to_string().contains(" at line "), "{error}");
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

//! `manifest.yaml` (spec 20 §5.3): `parse_manifest` checks the text on its own,
//! `check_file_set` checks it against the files of an archive (or of a directory being
//! packed), so the packer and the extractor apply one set of rules.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fen_domain::permissions::Permissions;
use fen_domain::{ExtensionName, ExtensionRef, ExtensionVersion, LoaderKind, Manifest};
use serde_norway::{Mapping, Value};

use super::limits::MAX_MANIFEST_BYTES;
use super::paths::{check_path, entry_point_kind, why_not_entry_point, FILES_DIR, MANIFEST_FILE};
use crate::sources::export_mask;

/// The longest `description`, in characters.
const MAX_DESCRIPTION_CHARS: usize = 1000;
/// The only `manifestVersion` this fen reads.
const MANIFEST_VERSION: u64 = 1;
/// Characters that start a version range (`^1`, `~1`, `>=1`, `*`), which refs may not use.
const RANGE_MARKERS: [char; 7] = ['^', '~', '>', '<', '=', '*', ' '];

/// One field of the manifest is wrong (`manifest_invalid`): `FIELD: PROBLEM`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ManifestProblem {
    /// The field, as written in the YAML (`version`, `models`, `dependencies[1]`), or
    /// `manifest.yaml` for the file as a whole.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ManifestProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> ManifestProblem {
        ManifestProblem {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The manifest and the archive's files disagree.
#[derive(Debug, thiserror::Error)]
pub enum FileSetProblem {
    /// A listed path is missing or not an entry point of its kind (`manifest_invalid`).
    #[error(transparent)]
    Manifest(ManifestProblem),
    /// An entry point of the archive is not listed (`archive_invalid`); the path is
    /// relative to the extension root.
    #[error("entry point \"{0}\" is not listed in manifest.yaml")]
    UnlistedEntryPoint(String),
    /// A file could not be read for the export pre-check (`io`).
    #[error("cannot read {path}: {error}")]
    Unreadable {
        /// The path relative to the extension root.
        path: String,
        /// Why (printed in the message, so not a `source`).
        error: std::io::Error,
    },
}

/// Parses and checks `manifest.yaml` on its own (everything of spec 20 §5.3 that does
/// not need the archive's files). Returns the manifest and one warning per unknown
/// top-level key.
pub fn parse_manifest(text: &str) -> Result<(Manifest, Vec<String>), ManifestProblem> {
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ManifestProblem::new(
            MANIFEST_FILE,
            format!("is {} bytes long, at most {MAX_MANIFEST_BYTES}", text.len()),
        ));
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        ManifestProblem::new(MANIFEST_FILE, format!("not valid YAML: {}", one_line(&e)))
    })?;
    let Value::Mapping(mapping) = value else {
        return Err(ManifestProblem::new(
            MANIFEST_FILE,
            "must be a YAML mapping of keys to values",
        ));
    };
    let fields = Fields::new(&mapping)?;

    match fields.get("manifestVersion") {
        Some(Value::Number(n)) if n.as_u64() == Some(MANIFEST_VERSION) => {}
        None => return Err(missing("manifestVersion")),
        Some(_) => return Err(ManifestProblem::new("manifestVersion", "must be 1")),
    }
    let name_text = fields.required_string("name")?;
    let name = ExtensionName::parse_publishable(name_text)
        .map_err(|e| ManifestProblem::new("name", e.to_string()))?;
    let version_text = fields.required_string("version")?;
    let version = ExtensionVersion::parse(version_text)
        .map_err(|e| ManifestProblem::new("version", e.to_string()))?;
    if version.is_local() {
        return Err(ManifestProblem::new(
            "version",
            "0.0.0 is not a publishable version",
        ));
    }
    let description = match fields.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let chars = text.chars().count();
            if chars > MAX_DESCRIPTION_CHARS {
                return Err(ManifestProblem::new(
                    "description",
                    format!("is {chars} characters long, at most {MAX_DESCRIPTION_CHARS}"),
                ));
            }
            Some(text.clone())
        }
        Some(_) => return Err(ManifestProblem::new("description", "must be a string")),
    };
    let mut entry_points = BTreeMap::new();
    for kind in LoaderKind::ALL {
        let paths = fields.path_list(kind.kind_dir())?;
        if !paths.is_empty() {
            entry_points.insert(kind, paths);
        }
    }
    if entry_points.is_empty() {
        return Err(ManifestProblem::new(
            "models",
            "at least one of models, vaults, drivers, datastores and reports must list an entry point",
        ));
    }
    let files = fields.path_list(FILES_DIR)?;
    let dependencies = dependencies(&fields, &name)?;
    let permissions = permissions(&fields)?;
    let manifest = Manifest {
        name,
        version,
        description,
        entry_points,
        files,
        dependencies,
        permissions,
    };
    Ok((manifest, fields.warnings()))
}

/// Checks a parsed manifest against the files of an archive: `files` holds every
/// regular file relative to the extension root (`/`-separated), and `read` returns a
/// file's bytes for the export pre-check. Every listed path must exist, every listed
/// entry point must be an entry point of its kind that passes the pre-check (spec 30
/// §3.1), and every entry point present must be listed.
pub fn check_file_set(
    manifest: &Manifest,
    files: &BTreeSet<String>,
    read: &mut dyn FnMut(&str) -> std::io::Result<Vec<u8>>,
) -> Result<(), FileSetProblem> {
    let mut exports = |path: &str, kind: LoaderKind| -> Result<bool, FileSetProblem> {
        let bytes = read(path).map_err(|error| FileSetProblem::Unreadable {
            path: path.to_owned(),
            error,
        })?;
        Ok(export_mask(&String::from_utf8_lossy(&bytes)).matches_any(kind.kinds()))
    };
    let mut listed = BTreeSet::new();
    for (kind, paths) in &manifest.entry_points {
        let field = kind.kind_dir();
        for path in paths {
            let full = format!("{field}/{path}");
            if !files.contains(&full) {
                return Err(listed_problem(field, path, "is not in the archive"));
            }
            if entry_point_kind(&full) != Some(*kind) {
                return Err(listed_problem(field, path, why_not_entry_point(&full)));
            }
            if !exports(&full, *kind)? {
                let keys: Vec<String> = kind
                    .kinds()
                    .iter()
                    .map(|k| format!("`export const {}`", k.export_key()))
                    .collect();
                let problem = format!("has no {}", keys.join(" or "));
                return Err(listed_problem(field, path, &problem));
            }
            listed.insert(full);
        }
    }
    for path in &manifest.files {
        if !files.contains(&format!("{FILES_DIR}/{path}")) {
            return Err(listed_problem(FILES_DIR, path, "is not in the archive"));
        }
    }
    for path in files {
        let Some(kind) = entry_point_kind(path) else {
            continue;
        };
        if !listed.contains(path) && exports(path, kind)? {
            return Err(FileSetProblem::UnlistedEntryPoint(path.clone()));
        }
    }
    Ok(())
}

fn listed_problem(field: &str, path: &str, problem: &str) -> FileSetProblem {
    FileSetProblem::Manifest(ManifestProblem::new(
        field,
        format!("\"{}\" {problem}", path.escape_debug()),
    ))
}

fn missing(field: &str) -> ManifestProblem {
    ManifestProblem::new(field, "is required")
}

/// The top-level keys of the manifest.
struct Fields<'m> {
    by_key: BTreeMap<&'m str, &'m Value>,
}

/// The keys fen reads; others draw a warning.
const KNOWN_KEYS: [&str; 12] = [
    "manifestVersion",
    "name",
    "version",
    "description",
    "models",
    "vaults",
    "drivers",
    "datastores",
    "reports",
    "files",
    "dependencies",
    "permissions",
];

impl<'m> Fields<'m> {
    fn new(mapping: &'m Mapping) -> Result<Fields<'m>, ManifestProblem> {
        let mut by_key = BTreeMap::new();
        for (key, value) in mapping {
            let Value::String(key) = key else {
                return Err(ManifestProblem::new(
                    MANIFEST_FILE,
                    "every top-level key must be a string",
                ));
            };
            by_key.insert(key.as_str(), value);
        }
        Ok(Fields { by_key })
    }

    fn get(&self, key: &str) -> Option<&'m Value> {
        self.by_key.get(key).copied()
    }

    fn required_string(&self, key: &str) -> Result<&'m str, ManifestProblem> {
        match self.get(key) {
            Some(Value::String(text)) => Ok(text),
            None | Some(Value::Null) => Err(missing(key)),
            Some(_) => Err(ManifestProblem::new(key, "must be a string")),
        }
    }

    /// A list of strings, absent or null meaning empty.
    fn string_list(&self, key: &str) -> Result<Vec<&'m str>, ManifestProblem> {
        let items = match self.get(key) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(_) => return Err(ManifestProblem::new(key, "must be a list of strings")),
        };
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) => Ok(text.as_str()),
                _ => Err(ManifestProblem::new(
                    format!("{key}[{index}]"),
                    "must be a string",
                )),
            })
            .collect()
    }

    /// A list of relative paths (S2/S3, `/`-separated), sorted, each once.
    fn path_list(&self, key: &str) -> Result<Vec<String>, ManifestProblem> {
        let mut out = BTreeSet::new();
        for (index, path) in self.string_list(key)?.into_iter().enumerate() {
            let field = || format!("{key}[{index}]");
            check_path(path).map_err(|problem| {
                ManifestProblem::new(
                    field(),
                    format!(
                        "\"{}\" is not a relative '/'-separated path ({problem})",
                        path.escape_debug()
                    ),
                )
            })?;
            if !out.insert(path.to_owned()) {
                return Err(ManifestProblem::new(
                    field(),
                    format!("\"{}\" is listed twice", path.escape_debug()),
                ));
            }
        }
        Ok(out.into_iter().collect())
    }

    fn warnings(&self) -> Vec<String> {
        self.by_key
            .keys()
            .filter(|key| !KNOWN_KEYS.contains(key))
            .map(|key| {
                format!(
                    "manifest.yaml: unknown key \"{}\" is ignored",
                    key.escape_debug()
                )
            })
            .collect()
    }
}

/// `permissions` (spec 40 §2): every rule of the value object; absent = none. The
/// problem names the refused entry and the rule (or the canonical form to write).
fn permissions(fields: &Fields<'_>) -> Result<Permissions, ManifestProblem> {
    let Some(value) = fields.get("permissions") else {
        return Ok(Permissions::none());
    };
    let json = serde_json::to_value(value).map_err(|e| {
        ManifestProblem::new("permissions", format!("cannot be read: {}", one_line(&e)))
    })?;
    Permissions::from_json(&json).map_err(|e| ManifestProblem::new("permissions", e.to_string()))
}

/// `dependencies`: refs without ranges, not the extension itself, each name once.
fn dependencies(
    fields: &Fields<'_>,
    own_name: &ExtensionName,
) -> Result<Vec<ExtensionRef>, ManifestProblem> {
    let mut out: Vec<ExtensionRef> = Vec::new();
    for (index, text) in fields.string_list("dependencies")?.into_iter().enumerate() {
        let field = format!("dependencies[{index}]");
        let version_part = text.get(1..).and_then(|rest| rest.split_once('@'));
        if version_part.is_some_and(|(_, version)| version.contains(RANGE_MARKERS))
            || text.contains("||")
        {
            return Err(ManifestProblem::new(
                field,
                format!(
                    "\"{}\" uses a version range; pin an exact version (@scope/name@YYYY.MM.DD.MICRO) or none",
                    text.escape_debug()
                ),
            ));
        }
        let reference =
            ExtensionRef::parse(text).map_err(|e| ManifestProblem::new(&field, e.to_string()))?;
        if reference.name == *own_name {
            return Err(ManifestProblem::new(
                field,
                "an extension cannot depend on itself",
            ));
        }
        if out.iter().any(|earlier| earlier.name == reference.name) {
            return Err(ManifestProblem::new(
                field,
                format!("{} is listed twice", reference.name),
            ));
        }
        out.push(reference);
    }
    Ok(out)
}

fn one_line(text: &dyn fmt::Display) -> String {
    text.to_string()
        .split(['\n', '\r'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests;

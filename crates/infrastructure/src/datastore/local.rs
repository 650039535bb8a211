//! `LocalModelData`: the local data store `.fen/data/` (spec 30 §2.10) and the `ctx`
//! host of a method run (`LocalRunHost`, spec 30 §2.7).
//!
//! Layout per model: `resources/<spec>/<instance>/<version>/{data.json,meta.json}`,
//! `resources/<spec>/<instance>/latest` (`"<version>\n"`) and `runs/<run-id>.json`.
//!
//! Crash safety: a version is written into a `.fen-tmp-*` directory beside its final
//! place (both files fsynced), then renamed into place, then `latest` is replaced by a
//! temp file + rename; a reader never sees a partial version, and a crash leaves at
//! worst a temp directory that walkers ignore, or a `latest` one version behind (the
//! next allocation takes the highest version directory into account). Version
//! numbers are allocated while the caller holds the model's datastore lock. Run
//! records are created with temp file + `hard_link`, so an existing record is never
//! replaced. The temp directory is fsynced before its rename and the instance
//! directory after it, before `latest` moves (and again after), so after a crash
//! `latest` never names a version whose directory entry was lost.
//!
//! Paths: model, spec and instance names are checked before any I/O (they are single
//! path segments of a restricted alphabet). Symlinks under `.fen/data/<model>/` are
//! never followed: every directory from the model's down to the version, and every
//! file read, is checked with `symlink_metadata` first, and a symlink (or a file where
//! a directory belongs) fails the operation with `path_denied`, so a link planted in
//! the store cannot redirect a write or a read outside it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use fen_domain::model::{
    format_violations, is_instance_name, is_member_name, is_run_id, run_id_stamp, DataHandle,
    RunRecord,
};
use fen_domain::ports::runtime::{CtxError, HostApi};
use fen_domain::ports::{DataError, ModelData, ModelName, RunHost, RunScope, SchemaValidator};

use crate::models::JsonSchemaValidator;
use crate::random;
use crate::time::rfc3339;

/// Receives `ctx.log` lines: `(model, level, message)`.
pub type RunLogSink = Arc<dyn Fn(&str, &str, &str) + Send + Sync>;

/// The local store under `.fen/data/`.
#[derive(Clone)]
pub struct LocalModelData {
    root: PathBuf,
    log: RunLogSink,
}

impl LocalModelData {
    /// The store at `root` (`<repo>/.fen/data`); `ctx.log` lines go to `log`.
    pub fn new(root: PathBuf, log: RunLogSink) -> LocalModelData {
        LocalModelData { root, log }
    }
}

impl ModelData for LocalModelData {
    fn begin_run(&self, scope: RunScope) -> Arc<dyn RunHost> {
        Arc::new(LocalRunHost {
            model_dir: self.root.join(scope.model.as_str()),
            scope,
            handles: Mutex::new(Vec::new()),
            validator: JsonSchemaValidator,
            log: Arc::clone(&self.log),
        })
    }

    fn write_run_record(&self, record: &RunRecord) -> Result<String, DataError> {
        if !is_run_id(&record.run_id) {
            return Err(DataError(format!("invalid run id {:?}", record.run_id)));
        }
        ModelName::parse(&record.model).map_err(DataError)?;
        let model_dir = self.root.join(&record.model);
        let dir = real_dirs(&model_dir, &["runs"], Create::Yes)
            .map_err(|e| DataError(format!("cannot write the run record: {e}")))?;
        let path = dir.join(format!("{}.json", record.run_id));
        let mut text = serde_json::to_string_pretty(record)
            .map_err(|e| DataError(format!("cannot serialize the run record: {e}")))?;
        text.push('\n');
        create_new_file(&path, text.as_bytes()).map_err(|e| {
            DataError(format!(
                "cannot write the run record {}: {e}",
                path.display()
            ))
        })?;
        Ok(path.display().to_string())
    }

    fn latest_run(&self, model: &ModelName) -> Result<Option<String>, DataError> {
        let dir = self.root.join(model.as_str()).join("runs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DataError(format!("{}: {e}", dir.display()))),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .filter(|n| is_run_id(n))
            .max())
    }

    fn new_run_id(&self, started_at: &str) -> String {
        let stamp = run_id_stamp(started_at).unwrap_or_else(|| "19700101T000000Z".to_owned());
        format!("{stamp}-{}", random::hex(&random::bytes::<4>()))
    }

    fn now(&self) -> String {
        rfc3339(SystemTime::now())
    }
}

/// The `ctx` host of one run: resource reads and writes of its own model only.
struct LocalRunHost {
    model_dir: PathBuf,
    scope: RunScope,
    handles: Mutex<Vec<DataHandle>>,
    validator: JsonSchemaValidator,
    log: RunLogSink,
}

fn invalid(message: String) -> CtxError {
    CtxError::new("invalid_argument", message)
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> CtxError {
    CtxError::new("io", format!("{what} {}: {error}", path.display()))
}

impl LocalRunHost {
    /// Checks `spec` and `instance` before any I/O; returns the spec's schema.
    fn check(&self, op: &str, spec: &str, instance: Option<&str>) -> Result<&Value, CtxError> {
        if !is_member_name(spec) {
            return Err(invalid(format!(
                "{op}: invalid resource spec name {spec:?}"
            )));
        }
        if let Some(instance) = instance {
            if !is_instance_name(instance) {
                return Err(invalid(format!(
                    "{op}: invalid instance name {instance:?} (1 to 128 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit)"
                )));
            }
        }
        self.scope.resources.get(spec).ok_or_else(|| {
            let declared: Vec<&str> = self.scope.resources.keys().map(String::as_str).collect();
            invalid(format!(
                "{op}: model type {} declares no resource \"{spec}\" (declared: {})",
                self.scope.type_name,
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ))
        })
    }

    fn instance_dir(&self, spec: &str, instance: &str) -> PathBuf {
        self.model_dir.join("resources").join(spec).join(instance)
    }

    /// True when the model directory and `segments` below it are real directories;
    /// false when one is missing; `path_denied` for a symlink or a non-directory.
    fn real_dir_exists(&self, segments: &[&str]) -> Result<bool, CtxError> {
        match real_dirs(&self.model_dir, segments, Create::No) {
            Ok(_) => Ok(true),
            Err(error) if error.code == "not_found" => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Largest `data.json` read back: what `writeResource` accepts (spec 30 §2.7).
const MAX_DATA_BYTES: u64 = 8 * 1024 * 1024;

/// Whether [`real_dirs`] creates missing directories.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    Yes,
    No,
}

fn denied(path: &Path, what: &str) -> CtxError {
    CtxError::new(
        "path_denied",
        format!("{} is {what}; fen does not follow it", path.display()),
    )
}

/// `base/seg1/.../segN`, checking `base` and every segment is a real directory (not a
/// symlink), creating missing ones when asked; a missing one without `Create::Yes`
/// is the error code `not_found`.
fn real_dirs(base: &Path, segments: &[&str], create: Create) -> Result<PathBuf, CtxError> {
    if let Some(parent) = base.parent() {
        if create == Create::Yes {
            std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
        }
    }
    let mut path = base.to_path_buf();
    for segment in std::iter::once("").chain(segments.iter().copied()) {
        if !segment.is_empty() {
            path.push(segment);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(denied(&path, "a symlink")),
            Ok(meta) if !meta.is_dir() => return Err(denied(&path, "not a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create == Create::No {
                    return Err(CtxError::new("not_found", path.display().to_string()));
                }
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    // Raced with another creator: check what is there now.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let meta = std::fs::symlink_metadata(&path)
                            .map_err(|e| io_error("cannot inspect", &path, e))?;
                        if meta.file_type().is_symlink() || !meta.is_dir() {
                            return Err(denied(&path, "not a directory"));
                        }
                    }
                    Err(e) => return Err(io_error("cannot create", &path, e)),
                }
            }
            Err(e) => return Err(io_error("cannot inspect", &path, e)),
        }
    }
    Ok(path)
}

/// True for a real directory, false when missing; `path_denied` otherwise.
fn real_dir_exists(path: &Path) -> Result<bool, CtxError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(denied(path, "a symlink")),
        Ok(meta) if !meta.is_dir() => Err(denied(path, "not a directory")),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("cannot inspect", path, e)),
    }
}

/// The text of a regular file (never through a symlink) of at most `max` bytes;
/// `None` when it does not exist.
fn read_regular(path: &Path, max: u64) -> Result<Option<String>, CtxError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Err(denied(path, "a symlink")),
        Ok(meta) if !meta.is_file() => return Err(denied(path, "not a regular file")),
        Ok(meta) if meta.len() > max => {
            return Err(CtxError::new(
                "io",
                format!(
                    "{} is {} bytes, more than any resource fen writes ({max})",
                    path.display(),
                    meta.len()
                ),
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot inspect", path, e)),
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read", path, e)),
    }
}

/// The version in a `latest` file (`None` when absent or unreadable as a number);
/// a `latest` that is a symlink is `path_denied`.
fn read_latest(dir: &Path) -> Result<Option<u64>, CtxError> {
    Ok(read_regular(&dir.join("latest"), 64)?.and_then(|t| t.trim().parse().ok()))
}

/// The highest numeric name in an instance directory, whatever the entry is: a
/// version is never allocated over a name that is taken.
fn highest_version(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.parse::<u64>().ok())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Makes a directory's entries durable (a no-op where directories cannot be opened).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        std::fs::File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to a temp file beside `path`, then renames it over `path`.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(".fen-tmp-{}", random::hex(&random::bytes::<8>())));
    let result = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `path` with `bytes`, failing if it exists: temp file + `hard_link`.
pub(crate) fn create_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".fen-tmp-{}", random::hex(&random::bytes::<8>())));
    let result = write_synced(&temp, bytes).and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    result.and_then(|()| sync_dir(dir))
}

impl HostApi for LocalRunHost {
    fn write_resource(
        &self,
        spec: &str,
        instance: &str,
        data_json: &str,
    ) -> Result<Value, CtxError> {
        let op = "writeResource";
        let schema = self.check(op, spec, Some(instance))?;
        let data: Value = serde_json::from_str(data_json)
            .map_err(|e| invalid(format!("{op}: data is not JSON: {e}")))?;
        let violations = self.validator.validate(schema, &data).map_err(|e| {
            invalid(format!(
                "{op}: the schema of \"{spec}\" does not compile: {e}"
            ))
        })?;
        if !violations.is_empty() {
            return Err(CtxError::new(
                "resource_schema_violation",
                format!(
                    "{op}(\"{spec}\", \"{instance}\"): data does not match the resource schema: {}",
                    format_violations(&violations)
                ),
            ));
        }
        let dir = real_dirs(&self.model_dir, &["resources", spec, instance], Create::Yes)?;
        // The caller holds the model's lock: no other writer allocates here.
        let version = read_latest(&dir)?
            .unwrap_or(0)
            .max(highest_version(&dir))
            .checked_add(1)
            .ok_or_else(|| {
                CtxError::new(
                    "io",
                    format!("{}: no version number is left", dir.display()),
                )
            })?;
        let bytes = data_json.as_bytes();
        let sha256 = random::hex(&Sha256::digest(bytes));
        let handle = DataHandle {
            model: self.scope.model.to_string(),
            spec: spec.to_owned(),
            instance: instance.to_owned(),
            version,
            size: bytes.len() as u64,
            sha256: sha256.clone(),
        };
        let meta = json!({
            "model": handle.model,
            "type": self.scope.type_name,
            "typeVersion": self.scope.type_version,
            "spec": spec,
            "instance": instance,
            "version": version,
            "size": handle.size,
            "sha256": sha256,
            "runId": self.scope.run_id,
            "method": self.scope.method,
            "writtenAt": rfc3339(SystemTime::now()),
            "contentType": "application/json",
        });
        let temp = dir.join(format!(
            ".fen-tmp-v{version}-{}",
            random::hex(&random::bytes::<4>())
        ));
        let target = dir.join(version.to_string());
        let written = std::fs::create_dir(&temp)
            .and_then(|()| write_synced(&temp.join("data.json"), bytes))
            .and_then(|()| {
                let mut text = serde_json::to_string_pretty(&meta).unwrap_or_default();
                text.push('\n');
                write_synced(&temp.join("meta.json"), text.as_bytes())
            })
            .and_then(|()| sync_dir(&temp))
            .and_then(|()| std::fs::rename(&temp, &target))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&temp);
            return Err(io_error("cannot write version", &target, e));
        }
        replace_file(&dir.join("latest"), format!("{version}\n").as_bytes())
            .and_then(|()| sync_dir(&dir))
            .map_err(|e| io_error("cannot update", &dir.join("latest"), e))?;
        if let Ok(mut handles) = self.handles.lock() {
            handles.push(handle.clone());
        }
        serde_json::to_value(&handle).map_err(|e| CtxError::new("io", e.to_string()))
    }

    fn read_resource(
        &self,
        spec: &str,
        instance: &str,
        version: Option<u64>,
    ) -> Result<Option<String>, CtxError> {
        self.check("readResource", spec, Some(instance))?;
        let dir = self.instance_dir(spec, instance);
        if !self.real_dir_exists(&["resources", spec, instance])? {
            return Ok(None);
        }
        let version = match version {
            Some(version) => version,
            None => match read_latest(&dir)? {
                Some(version) => version,
                None => return Ok(None),
            },
        };
        let version_dir = dir.join(version.to_string());
        if !real_dir_exists(&version_dir)? {
            return Ok(None);
        }
        let path = version_dir.join("data.json");
        let Some(text) = read_regular(&path, MAX_DATA_BYTES)? else {
            return Ok(None);
        };
        // The text is spliced into the sandbox's answer: it must be one JSON value.
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| {
            CtxError::new("io", format!("{} is not valid JSON: {e}", path.display()))
        })?;
        Ok(Some(text))
    }

    fn list_resources(&self, spec: Option<&str>) -> Result<Value, CtxError> {
        let specs: Vec<&String> = match spec {
            Some(spec) => {
                self.check("listResources", spec, None)?;
                self.scope.resources.keys().filter(|s| *s == spec).collect()
            }
            None => self.scope.resources.keys().collect(),
        };
        let mut out: BTreeMap<(String, String), u64> = BTreeMap::new();
        for spec in specs {
            if !self.real_dir_exists(&["resources", spec])? {
                continue;
            }
            let spec_dir = self.model_dir.join("resources").join(spec);
            let Ok(entries) = std::fs::read_dir(&spec_dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let Ok(instance) = entry.file_name().into_string() else {
                    continue;
                };
                // Not a real directory (a symlink, say): not an instance of ours.
                if !is_instance_name(&instance) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if let Some(latest) = read_latest(&entry.path())? {
                    out.insert((spec.clone(), instance), latest);
                }
            }
        }
        Ok(Value::Array(
            out.into_iter()
                .map(|((spec, instance), latest)| {
                    json!({ "spec": spec, "instance": instance, "latest": latest })
                })
                .collect(),
        ))
    }

    fn log(&self, level: &str, message: &str) {
        (self.log)(self.scope.model.as_str(), level, message);
    }
}

impl RunHost for LocalRunHost {
    fn handles(&self) -> Vec<DataHandle> {
        self.handles.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;

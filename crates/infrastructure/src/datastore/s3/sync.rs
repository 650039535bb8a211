//! `S3SyncService`: the built-in sync of the `s3` datastore between `.fen/data/` and
//! `<prefix>/data/` of a bucket, the `filesystem` algorithm (spec 30 §7.5) on objects.
//!
//! A call plans first: for each model of a scoped call it lists only
//! `<prefix>/data/<m>/` (so its cost does not depend on the other models in the
//! bucket) and walks only `.fen/data/<m>/`; then it copies what is missing with at most
//! 8 transfers at once; then it merges the `latest` markers by maximum.
//!
//! Crash safety, per step. Pull: a missing version is downloaded into a `.fen-tmp-*`
//! directory, `data.json` is checked against the `sha256` of the downloaded
//! `meta.json`, files and directory are fsynced and the directory is renamed into
//! place; a missing immutable file goes through a fsynced temp file and `hard_link`
//! (never replacing a file); `latest` is raised with temp + rename after every version
//! of the call is in place. Push: objects are created only if absent
//! (`If-None-Match: *`), a version's `meta.json` last, so a reader never takes a version
//! without its `meta.json` as complete (pull skips versions whose `meta.json` is not
//! there yet); the remote `latest` is raised with a conditional replace (`If-Match`)
//! after the versions are up, retried when another writer moved it meanwhile.
//! Conflicts (an immutable object whose two copies differ in size, or two `meta.json`
//! disagreeing on `sha256`) are never overwritten: both sides are kept and the call
//! fails with `SyncConflict`. Objects over 16 MiB are uploaded in parts; a multipart
//! upload cannot be conditional, so it is preceded by an existence check (under the
//! model's lock, which every writer of that model holds).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use sha2::{Digest, Sha256};

use fen_domain::ports::{
    DatastoreSyncService, ModelName, SyncCapabilities, SyncError, SyncOptions, SyncOutcome,
};

use super::{short, S3Bucket};
use crate::random;

/// Transfers in flight at once (spec 30 §7.5).
const MAX_CONCURRENT_OPS: usize = 8;

/// Objects larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;

/// Prefix of every temp entry fen writes locally; walkers skip it.
const TEMP_PREFIX: &str = ".fen-tmp-";

/// Sync between `.fen/data/` and a bucket.
#[derive(Clone, Debug)]
pub struct S3SyncService {
    local: PathBuf,
    bucket: S3Bucket,
    timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Pull,
    Push,
}

/// A remote object of one model: size and ETag.
#[derive(Clone, Debug)]
struct Remote {
    size: u64,
    e_tag: Option<String>,
}

/// One model's objects and local files, by relative path.
type Listed = (String, BTreeMap<String, Remote>, BTreeMap<String, u64>);

/// What one call will do.
#[derive(Default)]
struct Plan {
    /// Whole versions: `(model, version dir, files)`.
    versions: Vec<(String, String, Vec<String>)>,
    /// Single immutable files: `(model, rel)`.
    files: Vec<(String, String)>,
    /// `latest` markers: `(model, rel)`.
    latests: Vec<(String, String)>,
    conflicts: Vec<String>,
}

impl S3SyncService {
    /// Sync of `local_data` (`.fen/data`) with `<prefix>/data/` of `bucket`, each call
    /// bounded by `timeout` (`FEN_DATASTORE_SYNC_TIMEOUT_MS`).
    pub fn new(local_data: PathBuf, bucket: S3Bucket, timeout: Duration) -> S3SyncService {
        S3SyncService {
            local: local_data,
            bucket,
            timeout,
        }
    }

    async fn sync(
        &self,
        direction: Direction,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, SyncError> {
        match tokio::time::timeout(self.timeout, self.sync_untimed(direction, options)).await {
            Ok(result) => result,
            Err(_) => Err(SyncError::SyncTimeout),
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        &*self.bucket.store
    }

    fn key(&self, model: &str, rel: &str) -> ObjectPath {
        self.bucket.location.key(&format!("data/{model}/{rel}"))
    }

    fn shown(&self, model: &str, rel: &str) -> String {
        format!("{}/data/{model}/{rel}", self.bucket.location.url())
    }

    fn unavailable(&self, what: &str, error: &object_store::Error) -> SyncError {
        SyncError::Unavailable(format!("{what}: {}", short(error)))
    }

    async fn sync_untimed(
        &self,
        direction: Direction,
        options: Option<SyncOptions>,
    ) -> Result<SyncOutcome, SyncError> {
        let models: Vec<String> = match options {
            Some(options) => options
                .context
                .models
                .iter()
                .map(|m| m.name.to_string())
                .collect(),
            None => match direction {
                Direction::Pull => self.remote_models().await?,
                Direction::Push => {
                    let local = self.local.clone();
                    blocking(move || local_models(&local)).await?
                }
            },
        };
        // Plan every model (listing at most 8 prefixes at once).
        let listed: Vec<Listed> = stream::iter(models)
            .map(|model| async move {
                let remote = self.list_model(&model).await?;
                let dir = self.local.join(&model);
                let local = blocking(move || walk_files(&dir)).await?;
                Ok::<_, SyncError>((model, remote, local))
            })
            .buffer_unordered(MAX_CONCURRENT_OPS)
            .try_collect()
            .await?;
        let mut plan = Plan::default();
        for (model, remote, local) in &listed {
            self.plan(model, remote, local, direction, &mut plan)
                .await?;
        }

        // Copies.
        let mut ops: Vec<Op> = Vec::new();
        for (model, dir, files) in &plan.versions {
            ops.push(Op::Version(model.clone(), dir.clone(), files.clone()));
        }
        for (model, rel) in &plan.files {
            ops.push(Op::File(model.clone(), rel.clone()));
        }
        let results: Vec<Result<u64, SyncError>> = stream::iter(ops)
            .map(|op| self.run(direction, op))
            .buffer_unordered(MAX_CONCURRENT_OPS)
            .collect()
            .await;
        let mut transferred = 0;
        let mut conflicts = plan.conflicts;
        for result in results {
            match result {
                Ok(n) => transferred += n,
                Err(SyncError::SyncConflict { path }) => conflicts.push(path),
                Err(e) => return Err(e),
            }
        }
        // `latest` only after every version of the call is in place.
        let latests: Vec<Result<u64, SyncError>> = stream::iter(plan.latests)
            .map(|(model, rel)| async move {
                match direction {
                    Direction::Pull => self.pull_latest(&model, &rel).await,
                    Direction::Push => self.push_latest(&model, &rel).await,
                }
            })
            .buffer_unordered(MAX_CONCURRENT_OPS)
            .collect()
            .await;
        for result in latests {
            transferred += result?;
        }
        if let Some(first) = conflicts.first() {
            let more = conflicts.len() - 1;
            let path = if more == 0 {
                first.clone()
            } else {
                format!("{first} (and {more} more)")
            };
            return Err(SyncError::SyncConflict { path });
        }
        Ok(SyncOutcome {
            files_transferred: Some(transferred),
        })
    }

    /// Model names under `<prefix>/data/` (one delimited listing).
    async fn remote_models(&self) -> Result<Vec<String>, SyncError> {
        let root = self.bucket.location.key("data");
        let listed = self
            .store()
            .list_with_delimiter(Some(&root))
            .await
            .map_err(|e| self.unavailable(&format!("{}/data", self.bucket.location.url()), &e))?;
        let mut models: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .filter(|name| ModelName::parse(name).is_ok())
            .collect();
        models.sort();
        Ok(models)
    }

    /// Every object under `<prefix>/data/<model>/`, by path relative to it.
    async fn list_model(&self, model: &str) -> Result<BTreeMap<String, Remote>, SyncError> {
        let root = self.bucket.location.key(&format!("data/{model}"));
        let objects: Vec<ObjectMeta> = self
            .store()
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| self.unavailable(&self.shown(model, ""), &e))?;
        let mut out = BTreeMap::new();
        for object in objects {
            let Some(rel) = object.location.as_ref().strip_prefix(root.as_ref()) else {
                continue;
            };
            let rel = rel.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|s| s.starts_with(TEMP_PREFIX)) {
                continue;
            }
            out.insert(
                rel.to_owned(),
                Remote {
                    size: object.size,
                    e_tag: object.e_tag,
                },
            );
        }
        Ok(out)
    }

    /// Plans one model in one direction.
    async fn plan(
        &self,
        model: &str,
        remote: &BTreeMap<String, Remote>,
        local: &BTreeMap<String, u64>,
        direction: Direction,
        plan: &mut Plan,
    ) -> Result<(), SyncError> {
        // Sources and destinations as sets of (rel → size).
        let remote_sizes: BTreeMap<&str, u64> =
            remote.iter().map(|(k, v)| (k.as_str(), v.size)).collect();
        let local_sizes: BTreeMap<&str, u64> =
            local.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (from, to) = match direction {
            Direction::Pull => (&remote_sizes, &local_sizes),
            Direction::Push => (&local_sizes, &remote_sizes),
        };
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut latests = BTreeSet::new();
        for (&rel, &size) in from {
            match Shape::of(rel) {
                Some(Shape::VersionFile { dir, .. }) => {
                    versions
                        .entry(dir.to_owned())
                        .or_default()
                        .push(rel.to_owned());
                }
                Some(Shape::Latest) => {
                    latests.insert(rel.to_owned());
                }
                Some(Shape::Run) => match to.get(rel) {
                    None => plan.files.push((model.to_owned(), rel.to_owned())),
                    Some(&other) if other != size => plan.conflicts.push(self.shown(model, rel)),
                    Some(_) => {}
                },
                None => {}
            }
        }
        for (dir, files) in versions {
            let meta = format!("{dir}/meta.json");
            if !files.contains(&meta) {
                // Not complete on the source side (an upload in flight or cut short).
                continue;
            }
            let dest_has_meta = to.contains_key(meta.as_str());
            let dest_has_any = to
                .range(format!("{dir}/").as_str()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&format!("{dir}/")));
            // A partial local version (pull) is completed file by file, not replaced.
            let partial_here = direction == Direction::Pull && dest_has_any;
            if !dest_has_meta && !partial_here {
                plan.versions.push((model.to_owned(), dir, files));
                continue;
            }
            if dest_has_meta && !self.same_meta(model, &meta, remote).await? {
                plan.conflicts.push(self.shown(model, &meta));
                continue;
            }
            for rel in files {
                match to.get(rel.as_str()) {
                    None => plan.files.push((model.to_owned(), rel)),
                    Some(&other) if other != from[rel.as_str()] => {
                        plan.conflicts.push(self.shown(model, &rel));
                    }
                    Some(_) => {}
                }
            }
        }
        for rel in latests {
            plan.latests.push((model.to_owned(), rel));
        }
        Ok(())
    }

    /// Whether the local and remote `meta.json` of a version agree on `sha256`: equal
    /// when the remote ETag is the MD5 of the local bytes (no request), else both
    /// records are read and compared.
    async fn same_meta(
        &self,
        model: &str,
        rel: &str,
        remote: &BTreeMap<String, Remote>,
    ) -> Result<bool, SyncError> {
        let path = self.local.join(model).join(rel);
        let local = blocking(move || std::fs::read(&path).map_err(|e| io(&path, e))).await?;
        if let Some(tag) = remote.get(rel).and_then(|r| r.e_tag.as_deref()) {
            let tag = tag.trim_matches('"');
            if !tag.contains('-') && tag.eq_ignore_ascii_case(&md5_hex(&local)) {
                return Ok(true);
            }
        }
        let theirs = self.get_bytes(model, rel).await?;
        Ok(sha256_field(&local) == sha256_field(&theirs))
    }

    async fn get_bytes(&self, model: &str, rel: &str) -> Result<Vec<u8>, SyncError> {
        let key = self.key(model, rel);
        let got = self
            .store()
            .get(&key)
            .await
            .map_err(|e| self.unavailable(&self.shown(model, rel), &e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.unavailable(&self.shown(model, rel), &e))?;
        Ok(bytes.to_vec())
    }

    async fn run(&self, direction: Direction, op: Op) -> Result<u64, SyncError> {
        match (direction, op) {
            (Direction::Pull, Op::Version(model, dir, files)) => {
                self.download_version(&model, &dir, &files).await
            }
            (Direction::Pull, Op::File(model, rel)) => {
                let bytes = self.get_bytes(&model, &rel).await?;
                let to = self.local.join(&model).join(&rel);
                blocking(move || write_new(&to, &bytes).map(u64::from)).await
            }
            (Direction::Push, Op::Version(model, dir, files)) => {
                let meta = format!("{dir}/meta.json");
                let mut n = 0;
                // Everything but meta.json first, then meta.json: the version is
                // complete for readers only once meta.json is there.
                let body: Vec<&String> = files.iter().filter(|f| **f != meta).collect();
                for rel in body {
                    n += self.upload(&model, rel).await?;
                }
                n += self.upload(&model, &meta).await?;
                Ok(n)
            }
            (Direction::Push, Op::File(model, rel)) => self.upload(&model, &rel).await,
        }
    }

    /// Downloads a version into a temp directory, checks `data.json` against
    /// `meta.json`, fsyncs and renames it into place.
    async fn download_version(
        &self,
        model: &str,
        dir: &str,
        files: &[String],
    ) -> Result<u64, SyncError> {
        let mut fetched = Vec::new();
        for rel in files {
            let name = rel.rsplit('/').next().unwrap_or(rel).to_owned();
            fetched.push((name, self.get_bytes(model, rel).await?));
        }
        let to = self.local.join(model).join(dir);
        let shown = self.shown(model, dir);
        blocking(move || place_version(&to, &fetched, &shown)).await
    }

    /// Creates the object of a local file if absent; an existing one of the same size
    /// is taken as the same immutable file, another size is a conflict.
    async fn upload(&self, model: &str, rel: &str) -> Result<u64, SyncError> {
        let path = self.local.join(model).join(rel);
        let key = self.key(model, rel);
        let shown = self.shown(model, rel);
        let size = {
            let path = path.clone();
            blocking(move || {
                std::fs::metadata(&path)
                    .map(|m| m.len())
                    .map_err(|e| io(&path, e))
            })
            .await?
        };
        if size > MULTIPART_THRESHOLD {
            match self.store().head(&key).await {
                Ok(meta) => return self.same_size(meta.size, size, shown),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.unavailable(&shown, &e)),
            }
            let upload = self
                .store()
                .put_multipart(&key)
                .await
                .map_err(|e| self.unavailable(&shown, &e))?;
            let mut writer = object_store::WriteMultipart::new(upload);
            let mut file = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
            let mut buffer = vec![0_u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut file, &mut buffer).map_err(|e| io(&path, e))?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(MAX_CONCURRENT_OPS)
                    .await
                    .map_err(|e| self.unavailable(&shown, &e))?;
                writer.write(&buffer[..n]);
            }
            writer
                .finish()
                .await
                .map_err(|e| self.unavailable(&shown, &e))?;
            return Ok(1);
        }
        let bytes = {
            let path = path.clone();
            blocking(move || std::fs::read(&path).map_err(|e| io(&path, e))).await?
        };
        match self
            .store()
            .put_opts(
                &key,
                PutPayload::from(bytes),
                PutOptions::from(PutMode::Create),
            )
            .await
        {
            Ok(_) => Ok(1),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => {
                let meta = self
                    .store()
                    .head(&key)
                    .await
                    .map_err(|e| self.unavailable(&shown, &e))?;
                self.same_size(meta.size, size, shown)
            }
            Err(e) => Err(self.unavailable(&shown, &e)),
        }
    }

    fn same_size(&self, theirs: u64, ours: u64, shown: String) -> Result<u64, SyncError> {
        if theirs == ours {
            Ok(0)
        } else {
            Err(SyncError::SyncConflict { path: shown })
        }
    }

    /// Raises the local `latest` to the remote one when higher (temp + rename).
    async fn pull_latest(&self, model: &str, rel: &str) -> Result<u64, SyncError> {
        let theirs = parse_latest(&self.get_bytes(model, rel).await?);
        let Some(theirs) = theirs else {
            return Ok(0);
        };
        let to = self.local.join(model).join(rel);
        blocking(move || {
            let ours = read_latest(&to)?;
            if ours.is_some_and(|o| o >= theirs) {
                return Ok(0);
            }
            replace(&to, format!("{theirs}\n").as_bytes())?;
            Ok(1)
        })
        .await
    }

    /// Raises the remote `latest` to the local one when higher, with a conditional
    /// write; retried when another writer changed it in between.
    async fn push_latest(&self, model: &str, rel: &str) -> Result<u64, SyncError> {
        let path = self.local.join(model).join(rel);
        let ours = blocking(move || read_latest(&path)).await?;
        let Some(ours) = ours else {
            return Ok(0);
        };
        let key = self.key(model, rel);
        let shown = self.shown(model, rel);
        for _ in 0..16 {
            let (theirs, mode) = match self.store().get(&key).await {
                Ok(got) => {
                    let version = UpdateVersion {
                        e_tag: got.meta.e_tag.clone(),
                        version: got.meta.version.clone(),
                    };
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| self.unavailable(&shown, &e))?;
                    (parse_latest(&bytes), PutMode::Update(version))
                }
                Err(object_store::Error::NotFound { .. }) => (None, PutMode::Create),
                Err(e) => return Err(self.unavailable(&shown, &e)),
            };
            if theirs.is_some_and(|t| t >= ours) {
                return Ok(0);
            }
            match self
                .store()
                .put_opts(
                    &key,
                    PutPayload::from(format!("{ours}\n").into_bytes()),
                    PutOptions::from(mode),
                )
                .await
            {
                Ok(_) => return Ok(1),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => continue,
                Err(e) => return Err(self.unavailable(&shown, &e)),
            }
        }
        Err(SyncError::Unavailable(format!(
            "{shown}: kept changing while fen raised it to {ours}; run 'fen datastore sync --push' again"
        )))
    }
}

#[async_trait]
impl DatastoreSyncService for S3SyncService {
    async fn capabilities(&self) -> Result<SyncCapabilities, SyncError> {
        Ok(SyncCapabilities {
            scoped_sync: true,
            lazy_hydration: false,
        })
    }

    async fn pull_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.sync(Direction::Pull, options).await
    }

    async fn push_changed(&self, options: Option<SyncOptions>) -> Result<SyncOutcome, SyncError> {
        self.sync(Direction::Push, options).await
    }
}

/// One copy.
enum Op {
    /// A whole version: model, version dir, its files.
    Version(String, String, Vec<String>),
    /// One immutable file: model, rel.
    File(String, String),
}

/// What a path under `data/<model>/` is.
enum Shape<'a> {
    /// `resources/<spec>/<instance>/<version>/<file>`.
    VersionFile { dir: &'a str },
    /// `resources/<spec>/<instance>/latest`.
    Latest,
    /// `runs/<file>`.
    Run,
}

impl<'a> Shape<'a> {
    fn of(rel: &'a str) -> Option<Shape<'a>> {
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            ["resources", _, _, "latest"] => Some(Shape::Latest),
            ["resources", _, _, version, _] if version.parse::<u64>().is_ok() => {
                let cut = rel.rfind('/')?;
                Some(Shape::VersionFile { dir: &rel[..cut] })
            }
            ["runs", _] => Some(Shape::Run),
            _ => None,
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SyncError::Unavailable(format!("sync task failed: {e}")))?
}

fn io(path: &Path, error: std::io::Error) -> SyncError {
    SyncError::Unavailable(format!("{}: {error}", path.display()))
}

/// Model directories under `.fen/data` (valid model names only).
fn local_models(data: &Path) -> Result<Vec<String>, SyncError> {
    let read = match std::fs::read_dir(data) {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(data, e)),
    };
    let mut out = Vec::new();
    for entry in read.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) && ModelName::parse(&name).is_ok() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Every regular file under `dir` (no symlinks, no temp entries), by relative path.
fn walk_files(dir: &Path) -> Result<BTreeMap<String, u64>, SyncError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let read = match std::fs::read_dir(&path) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path, e)),
        };
        for entry in read {
            let entry = entry.map_err(|e| io(&path, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if kind.is_dir() {
                stack.push((entry.path(), child));
            } else if kind.is_file() {
                let size = entry.metadata().map_err(|e| io(&entry.path(), e))?.len();
                out.insert(child, size);
            }
        }
    }
    Ok(out)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    random::hex(&md5::Md5::digest(bytes))
}

fn sha256_field(meta: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(meta)
        .ok()?
        .get("sha256")?
        .as_str()
        .map(str::to_owned)
}

fn parse_latest(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

fn read_latest(path: &Path) -> Result<Option<u64>, SyncError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_latest(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, e)),
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(format!(
        "{TEMP_PREFIX}sync-{}",
        random::hex(&random::bytes::<8>())
    ))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes a new immutable file through a fsynced temp file and `hard_link`; false when
/// it appeared meanwhile (an existing file is never replaced).
fn write_new(to: &Path, bytes: &[u8]) -> Result<bool, SyncError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let temp = temp_beside(to);
    let result = write_synced(&temp, bytes)
        .map_err(|e| io(&temp, e))
        .and_then(|()| match std::fs::hard_link(&temp, to) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(to, e)),
        });
    let _ = std::fs::remove_file(&temp);
    result
}

/// Replaces a file through a fsynced temp file and a rename.
fn replace(to: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let temp = temp_beside(to);
    let result = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, to));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(io(to, e));
    }
    Ok(())
}

/// Writes a downloaded version into a temp directory beside `to`, checks `data.json`
/// against `meta.json`, fsyncs and renames it into place.
fn place_version(to: &Path, files: &[(String, Vec<u8>)], shown: &str) -> Result<u64, SyncError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let expected = files
        .iter()
        .find(|(name, _)| name == "meta.json")
        .and_then(|(_, bytes)| sha256_field(bytes));
    if let (Some(expected), Some((_, data))) = (
        &expected,
        files.iter().find(|(name, _)| name == "data.json"),
    ) {
        let actual = random::hex(&Sha256::digest(data));
        if &actual != expected {
            return Err(SyncError::Unavailable(format!(
                "{shown}/data.json: sha256 {actual} does not match meta.json ({expected}); nothing was copied"
            )));
        }
    }
    let temp = temp_beside(to);
    let result = (|| {
        std::fs::create_dir(&temp).map_err(|e| io(&temp, e))?;
        for (name, bytes) in files {
            write_synced(&temp.join(name), bytes).map_err(|e| io(&temp.join(name), e))?;
        }
        std::fs::File::open(&temp)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&temp, e))?;
        match std::fs::rename(&temp, to) {
            Ok(()) => {}
            // Another writer put the same immutable version in place first.
            Err(_) if to.is_dir() => return Ok(0),
            Err(e) => return Err(io(to, e)),
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))?;
        Ok(files.len() as u64)
    })();
    if temp.exists() {
        let _ = std::fs::remove_dir_all(&temp);
    }
    result
}

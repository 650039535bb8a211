//! `S3DistributedLock`: datastore locks as objects (spec 30 §7.7) under
//! `<prefix>/.fen-locks/` (`global.lock`, `models/<name>.lock`).
//!
//! Every change of a lock object is a conditional write, so no step has the
//! read-compare-delete window of the file locks:
//! - acquire: create the object only if absent (`If-None-Match: *`); if it exists and is
//!   released or stale, replace it only if its ETag is still the one read (`If-Match`);
//! - heartbeat: every ttl/3 rewrite `acquiredAt` with `If-Match` of our last write; a
//!   refused write means the lock was taken over (it is *lost*);
//! - release and force release: replace the object, with `If-Match`, by a small
//!   *released* marker (`{"released":true}`) instead of deleting it, because a plain
//!   DELETE cannot be made conditional through the client; a marker counts as no lock.
//!
//! What stays: staleness compares `acquiredAt` with this host's clock, so hosts whose
//! clocks disagree by more than the ttl can take over a live lock (the file locks share
//! this); and released markers stay in the bucket, one small object per model.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use fen_domain::ports::{
    DistributedLock, HeldLock, LockError, LockGuard, LockInfo, LockLoss, LockOptions, LockState,
    ModelName,
};

use super::{short, S3Bucket};
use crate::datastore::lock::{drain_key, drain_models, jitter};
use crate::datastore::LockIdentity;
use crate::time::rfc3339;

/// What a released lock object holds.
const RELEASED: &[u8] = br#"{"released":true}"#;

/// Objects this small are released markers (a `LockInfo` is far larger): `list` skips
/// them without reading them.
const MARKER_MAX: u64 = 32;

/// Datastore locks in a bucket.
#[derive(Clone, Debug)]
pub struct S3DistributedLock {
    bucket: S3Bucket,
    identity: LockIdentity,
}

/// A lock object as read.
enum Record {
    Held(LockInfo),
    Released,
}

impl S3DistributedLock {
    /// Locks under `<prefix>/.fen-locks/` of `bucket`.
    pub fn new(bucket: S3Bucket, identity: LockIdentity) -> S3DistributedLock {
        S3DistributedLock { bucket, identity }
    }

    fn key_of(&self, key: &str) -> Result<object_store::path::Path, LockError> {
        Ok(self.bucket.location.key(&rel_of(key)?))
    }

    fn unavailable(&self, error: &object_store::Error) -> LockError {
        LockError::Unavailable(format!(
            "datastore locks at {}/.fen-locks: {}",
            self.bucket.location.url(),
            short(error)
        ))
    }

    /// The object at `key` with its ETag; `None` when absent.
    async fn read(&self, key: &str) -> Result<Option<(Record, UpdateVersion)>, LockError> {
        read_record(&*self.bucket.store, &self.key_of(key)?)
            .await
            .map_err(|e| self.unavailable(&e))?
            .map(|(bytes, version)| Ok((parse(key, &bytes)?, version)))
            .transpose()
    }

    /// Writes `bytes` at `key`: create when `version` is `None`, else replace that
    /// version. `Ok(Some(etag))` on success, `Ok(None)` when the condition failed.
    async fn write(
        &self,
        key: &str,
        bytes: Vec<u8>,
        version: Option<UpdateVersion>,
    ) -> Result<Option<UpdateVersion>, LockError> {
        write_conditional(&*self.bucket.store, &self.key_of(key)?, bytes, version)
            .await
            .map_err(|e| self.unavailable(&e))
    }
}

#[async_trait]
impl DistributedLock for S3DistributedLock {
    async fn acquire(&self, opts: &LockOptions) -> Result<LockGuard, LockError> {
        let started = Instant::now();
        let budget = Duration::from_millis(opts.max_wait_ms);
        let mut delay = Duration::from_millis(50);
        loop {
            let current = self.read(&opts.key).await?;
            let (replace, holder) = match current {
                None => (None, None),
                Some((Record::Released, version)) => (Some(version), None),
                Some((Record::Held(info), version)) => {
                    let state = self.identity.state_of(&opts.key, info);
                    if state.stale {
                        // Take over: replace exactly the stale record we read.
                        (Some(version), None)
                    } else {
                        (None, Some(state))
                    }
                }
            };
            if let Some(holder) = holder {
                let waited = started.elapsed();
                if waited >= budget {
                    return Err(LockError::Timeout {
                        key: opts.key.clone(),
                        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                        holder: Some(Box::new(holder)),
                    });
                }
                tokio::time::sleep(jitter(delay).min(budget - waited)).await;
                delay = (delay * 2).min(Duration::from_secs(1));
                continue;
            }
            let info = self.identity.new_info(opts.ttl_ms);
            let bytes = serde_json::to_vec(&info).map_err(|e| LockError::Storage(e.to_string()))?;
            // Refused: someone else wrote first; read again.
            if let Some(version) = self.write(&opts.key, bytes, replace).await? {
                let held = S3Held::start(
                    &self.bucket,
                    self.key_of(&opts.key)?,
                    info.clone(),
                    version,
                    opts.ttl_ms,
                );
                return Ok(LockGuard::new(opts.key.clone(), info, Box::new(held)));
            }
        }
    }

    async fn inspect(&self, key: &str) -> Result<Option<LockState>, LockError> {
        Ok(match self.read(key).await? {
            Some((Record::Held(info), _)) => Some(self.identity.state_of(key, info)),
            _ => None,
        })
    }

    async fn list(&self) -> Result<Vec<LockState>, LockError> {
        use futures::TryStreamExt;
        let root = self.bucket.location.key(".fen-locks");
        let objects: Vec<object_store::ObjectMeta> = self
            .bucket
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(|e| self.unavailable(&e))?;
        let mut keys: Vec<String> = objects
            .iter()
            .filter(|o| o.size > MARKER_MAX)
            .filter_map(|o| {
                let rel = o.location.as_ref().strip_prefix(root.as_ref())?;
                key_from_rel(rel.trim_start_matches('/'))
            })
            .collect();
        keys.sort();
        let mut out = Vec::new();
        for key in keys {
            if let Some(state) = self.inspect(&key).await? {
                out.push(state);
            }
        }
        Ok(out)
    }

    async fn force_release(&self, key: &str, expected_nonce: &str) -> Result<bool, LockError> {
        match self.read(key).await? {
            Some((Record::Held(info), version)) if info.nonce == expected_nonce => Ok(self
                .write(key, RELEASED.to_vec(), Some(version))
                .await?
                .is_some()),
            _ => Ok(false),
        }
    }

    async fn drain(&self, key: &str, max_wait_ms: u64) -> Result<(), LockError> {
        drain_key(self, key, max_wait_ms).await
    }

    async fn drain_models(&self, max_wait_ms: u64) -> Result<(), LockError> {
        drain_models(self, max_wait_ms).await
    }
}

/// `global` → `.fen-locks/global.lock`, `model/<name>` → `.fen-locks/models/<name>.lock`.
fn rel_of(key: &str) -> Result<String, LockError> {
    if key == "global" {
        return Ok(".fen-locks/global.lock".to_owned());
    }
    let name = key
        .strip_prefix("model/")
        .ok_or_else(|| LockError::Storage(format!("unknown lock key {key:?}")))?;
    let name = ModelName::parse(name).map_err(LockError::Storage)?;
    Ok(format!(".fen-locks/models/{name}.lock"))
}

/// The inverse of `rel_of` for a path under `.fen-locks/`.
fn key_from_rel(rel: &str) -> Option<String> {
    if rel == "global.lock" {
        return Some("global".to_owned());
    }
    let name = rel.strip_prefix("models/")?.strip_suffix(".lock")?;
    ModelName::parse(name).ok()?;
    Some(format!("model/{name}"))
}

fn parse(key: &str, bytes: &[u8]) -> Result<Record, LockError> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        if value.get("released") == Some(&serde_json::Value::Bool(true)) {
            return Ok(Record::Released);
        }
    }
    serde_json::from_slice(bytes).map(Record::Held).map_err(|e| {
        LockError::Storage(format!(
            "the lock object of {key} is not a valid lock record ({e}); remove it with 'fen datastore lock release --force'"
        ))
    })
}

async fn read_record(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
) -> Result<Option<(Vec<u8>, UpdateVersion)>, object_store::Error> {
    let got = match store.get(path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got.bytes().await?;
    Ok(Some((bytes.to_vec(), version)))
}

async fn write_conditional(
    store: &dyn ObjectStore,
    path: &object_store::path::Path,
    bytes: Vec<u8>,
    version: Option<UpdateVersion>,
) -> Result<Option<UpdateVersion>, object_store::Error> {
    let mode = match version {
        None => PutMode::Create,
        Some(version) => PutMode::Update(version),
    };
    match store
        .put_opts(path, PutPayload::from(bytes), PutOptions::from(mode))
        .await
    {
        Ok(done) => Ok(Some(UpdateVersion {
            e_tag: done.e_tag,
            version: done.version,
        })),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the heartbeat thread is told.
enum Beat {
    /// Write the released marker (if still ours), answer, and stop.
    Release(mpsc::Sender<Result<(), LockError>>),
}

/// A held lock object with its heartbeat thread, which owns a client and a runtime of
/// its own so that releasing from a `Drop` or a signal path never blocks an async one.
struct S3Held {
    lost: LockLoss,
    tell: Option<mpsc::Sender<Beat>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
    released: bool,
}

impl S3Held {
    fn start(
        bucket: &S3Bucket,
        path: object_store::path::Path,
        info: LockInfo,
        version: UpdateVersion,
        ttl_ms: u64,
    ) -> S3Held {
        let lost = LockLoss::default();
        let (tell, told) = mpsc::channel::<Beat>();
        let period = Duration::from_millis((ttl_ms / 3).max(10));
        let beat_lost = lost.clone();
        let bucket = bucket.clone();
        let current = Arc::new(Mutex::new(version));
        let heartbeat = std::thread::Builder::new()
            .name("fen-s3-lock-heartbeat".to_owned())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let Ok(own) = bucket.reconnect() else {
                    return;
                };
                let store = own.store;
                loop {
                    match told.recv_timeout(period) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if beat_lost.is_lost() {
                                continue;
                            }
                            let renewed = LockInfo {
                                acquired_at: rfc3339(SystemTime::now()),
                                ..info.clone()
                            };
                            let Ok(bytes) = serde_json::to_vec(&renewed) else {
                                continue;
                            };
                            let last = current.lock().map(|v| v.clone());
                            let Ok(last) = last else { continue };
                            match runtime.block_on(write_conditional(
                                &*store,
                                &path,
                                bytes,
                                Some(last),
                            )) {
                                Ok(Some(next)) => {
                                    if let Ok(mut slot) = current.lock() {
                                        *slot = next;
                                    }
                                }
                                // Someone replaced our record: the lock is lost.
                                Ok(None) => beat_lost.mark(),
                                // Unreachable for now: try again next period.
                                Err(_) => {}
                            }
                        }
                        Ok(Beat::Release(answer)) => {
                            let result = if beat_lost.is_lost() {
                                Ok(())
                            } else {
                                let last = current.lock().map(|v| v.clone());
                                match last {
                                    Ok(last) => runtime
                                        .block_on(write_conditional(
                                            &*store,
                                            &path,
                                            RELEASED.to_vec(),
                                            Some(last),
                                        ))
                                        .map(|_| ())
                                        .map_err(|e| {
                                            LockError::Unavailable(format!(
                                                "could not release the datastore lock {path}: {}",
                                                short(&e)
                                            ))
                                        }),
                                    Err(_) => Ok(()),
                                }
                            };
                            let _ = answer.send(result);
                            return;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .ok();
        S3Held {
            lost,
            tell: Some(tell),
            heartbeat,
            released: false,
        }
    }
}

impl HeldLock for S3Held {
    fn release(&mut self) -> Result<(), LockError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let (answer, answered) = mpsc::channel();
        let sent = self
            .tell
            .take()
            .is_some_and(|tell| tell.send(Beat::Release(answer)).is_ok());
        let result = if sent {
            answered.recv().unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        if let Some(heartbeat) = self.heartbeat.take() {
            let _ = heartbeat.join();
        }
        result
    }

    fn loss(&self) -> LockLoss {
        self.lost.clone()
    }
}

impl Drop for S3Held {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

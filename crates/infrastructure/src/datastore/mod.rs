//! Datastores (spec 30 §7): `.fen/datastore.yaml` (`config.rs`), the local data store
//! (`local.rs`: artifacts, run records and the `ctx` host of a run), the file-based
//! `DistributedLock` for any locks root (`lock.rs`: `.fen/locks/` for `local`,
//! `<path>/.fen-locks/` for `filesystem`) and the `filesystem` datastore's built-in
//! sync service (`filesystem.rs`), and extension datastores (`extension/`: the JS
//! adapter and the confined file roots of its `ctx`).

pub mod config;
pub mod extension;
pub mod filesystem;
pub mod local;
pub mod lock;
pub mod s3;

pub use config::DatastoreConfig;
pub use extension::{DatastoreLogSink, JsDatastoreSyncService, ReloadInstance};
pub use filesystem::{verify_remote, FilesystemSyncService};
pub use local::{LocalModelData, RunLogSink};
pub use lock::{FileDistributedLock, LockIdentity};

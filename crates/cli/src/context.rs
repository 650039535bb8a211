//! The composition root's per-process context: global flags, settings, and the
//! concrete adapters wired behind the fen-domain ports. This is the only place that
//! names infrastructure types.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use fen_domain::ports::runtime::InstantiateRequest;
use fen_domain::ports::runtime::RuntimeError;
use fen_domain::ports::{
    BundleRuntime, DatastoreSyncService, DistributedLock, LifecycleLock, SandboxLimits,
    SourceScanner, TypeInstance,
};
use fen_domain::{layout, CanonicalPath, PathPolicy, RepoRoot};
use fen_infrastructure::bundler::FsBundleStore;
use fen_infrastructure::catalog::{CatalogContext, CatalogOpener, OpenReport};
use fen_infrastructure::datastore::s3::{
    S3Bucket, S3Credentials, S3DistributedLock, S3Location, S3SyncService,
};
use fen_infrastructure::datastore::{
    DatastoreConfig, DatastoreLogSink, FileDistributedLock, FilesystemSyncService,
    JsDatastoreSyncService, LocalModelData, LockIdentity, ReloadInstance, RunLogSink,
};
use fen_infrastructure::faults::EnvFaults;
use fen_infrastructure::indexer::SandboxBundleIndexer;
use fen_infrastructure::lockfile::FsLockfileReader;
use fen_infrastructure::locking::FileLifecycleLock;
use fen_infrastructure::models::{JsonSchemaValidator, YamlModelDefinitions};
use fen_infrastructure::runtime::QuickJsBundleRuntime;
use fen_infrastructure::sources::{absolute_lexical, find_repo_root, read_mounts, FsSourceScanner};
use fen_infrastructure::time::SystemClock;
use fen_infrastructure::trees::FsExtensionTrees;
use fen_lifecycle::index::{build_index, IndexSummary};
use fen_lifecycle::loader::TypeLoader;
use fen_lifecycle::models::{ModelPorts, Models};
use fen_lifecycle::stats::Stats;
use fen_lifecycle::{Adapters, RepoLayout, ScannerFactory, WarmRebuilder};

use crate::env::Settings;
use crate::error::{CliError, ErrorCode};
use crate::output::Mode;

/// Everything a command needs from the process.
pub struct Context {
    /// `--repo-dir` / `FEN_REPO_DIR`.
    pub repo_dir: Option<PathBuf>,
    /// Output mode.
    pub mode: Mode,
    /// Validated environment.
    pub settings: Settings,
    /// Counters for `--stats`.
    pub stats: Arc<Stats>,
    /// When the process started.
    pub started: Instant,
    /// The command line, for the lock's owner record.
    pub command: String,
}

/// A repo's datastore, wired.
pub struct Datastore {
    /// `.fen/datastore.yaml` as read.
    pub config: DatastoreConfig,
    /// Its locks.
    pub locks: Arc<dyn DistributedLock>,
    /// Its sync service (`None` for `local`).
    pub sync: Option<Arc<dyn DatastoreSyncService>>,
    /// How messages name it.
    pub label: String,
}

/// An open repository with its adapters.
pub struct Repo {
    /// Where it is.
    pub root: RepoRoot,
    /// The wired ports.
    pub adapters: Adapters,
    /// The sandbox runtime shared by indexing and loading.
    pub runtime: Arc<dyn BundleRuntime>,
}

impl Context {
    /// The process's one lifecycle lock for a repo root.
    pub fn lifecycle_lock(&self, root: &Path) -> Arc<dyn LifecycleLock> {
        Arc::new(FileLifecycleLock::for_repo(
            root,
            self.settings.lock_timeout,
        ))
    }

    /// The repo root: `--repo-dir` as given, else discovery from the current directory.
    pub fn repo_root(&self) -> Result<RepoRoot, CliError> {
        let not_a_repo = |from: &Path| {
            CliError::new(
                ErrorCode::NotARepository,
                format!(
                    "not a fen repository (no .fen/ found from {} upward)",
                    from.display()
                ),
            )
            .with_hint("run 'fen init' first")
        };
        match &self.repo_dir {
            Some(dir) => {
                let root = absolute_lexical(dir).map_err(|e| {
                    CliError::new(
                        ErrorCode::Io,
                        format!("cannot resolve {}: {e}", dir.display()),
                    )
                })?;
                if !root.join(layout::MARKER_DIR).is_dir() {
                    return Err(CliError::new(
                        ErrorCode::NotARepository,
                        format!(
                            "not a fen repository: {} has no .fen/ directory",
                            root.display()
                        ),
                    )
                    .with_hint("run 'fen init' first"));
                }
                RepoRoot::new(root, PathPolicy::host())
                    .map_err(|e| CliError::new(ErrorCode::Io, e.to_string()))
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| {
                    CliError::new(
                        ErrorCode::Io,
                        format!("cannot read the current directory: {e}"),
                    )
                })?;
                find_repo_root(&cwd).map_err(|_| not_a_repo(&cwd))
            }
        }
    }

    /// Opens the repo: discovers the root, opens (creating or migrating under the
    /// lifecycle lock when needed) the catalog, and wires every adapter.
    pub async fn open_repo(&self) -> Result<Repo, CliError> {
        let root = self.repo_root()?;
        let policy = PathPolicy::host();
        let mounts = read_mounts(&root, policy).map_err(|e| {
            let code = if e.is_config_invalid() {
                ErrorCode::ConfigInvalid
            } else {
                ErrorCode::Io
            };
            CliError::new(code, e.to_string())
                .with_hint("fix .fen/mounts.json or use 'fen extension source rm'")
        })?;
        let lock = self.lifecycle_lock(&root.native);
        let ctx = CatalogContext::for_repo(&root, mounts.canonical_paths(), policy);
        let opened = CatalogOpener::open(ctx, Arc::clone(&lock))
            .await
            .map_err(CliError::from)?;
        if let Some(healed) = &opened.report.healed {
            self.warn(&format!(
                "the catalog was damaged ({}); it was moved to {} and rebuilt",
                healed.cause,
                healed.moved_to.display()
            ));
        }
        let repository = Arc::new(fen_lifecycle::counted::Counted::new(
            Arc::new(opened.repository),
            Arc::clone(&self.stats),
        ));
        let bundles_native = root.native.join(layout::BUNDLES_DIR);
        let scratch_native = root.native.join(layout::SCRATCH_DIR);
        let runtime: Arc<dyn BundleRuntime> = Arc::new(LazyRuntime::default());
        let limits = SandboxLimits {
            time: self.settings.eval_timeout,
            memory_bytes: self.settings.memory_bytes,
            stack_bytes: SandboxLimits::STACK_BYTES,
        };
        let scanner = FsSourceScanner::new(root.clone(), mounts, policy);
        let lockfile = Arc::new(FsLockfileReader::new(root.native.join(layout::LOCKFILE)));
        let adapters = Adapters {
            repo: repository.clone(),
            types: repository,
            lock,
            scanners: Arc::new(FsScannerFactory(scanner)),
            indexer: Arc::new(SandboxBundleIndexer::new(
                Arc::clone(&runtime),
                bundles_native.clone(),
                limits,
            )),
            store: Arc::new(FsBundleStore::new(
                bundles_native.clone(),
                scratch_native.clone(),
            )),
            lockfile: lockfile.clone(),
            lockfile_store: lockfile,
            trees: Arc::new(FsExtensionTrees::new(root.native.clone())),
            faults: Arc::new(EnvFaults),
            clock: Arc::new(SystemClock),
            layout: RepoLayout {
                root_native: root.native.clone(),
                root: root.canonical.clone(),
                bundles_dir: CanonicalPath::new(&bundles_native, policy)
                    .map_err(|e| CliError::new(ErrorCode::Io, e.to_string()))?,
                scratch_dir: scratch_native,
            },
            stats: Arc::clone(&self.stats),
            command: self.command.clone(),
        };
        Ok(Repo {
            root,
            adapters,
            runtime,
        })
    }

    /// The repo's datastore from `.fen/datastore.yaml` (spec 30 §7.1): its locks
    /// (`.fen/locks/` for `local`, `<path>/.fen-locks/` for `filesystem`) and sync
    /// service. A file of an unknown shape is `config_invalid`.
    pub async fn datastore(&self, root: &Path) -> Result<Datastore, CliError> {
        let config = read_datastore_config(root)?;
        self.datastore_for(root, config, self.settings.datastore_sync_timeout_ms, None)
            .await
    }

    /// The wiring of `config` for the repo at `root`. An extension datastore's type is
    /// loaded here, before any datastore lock is requested (spec 30 §7.8 step 0), with
    /// `loader` when the caller has one (else the repo is opened and indexed).
    pub async fn datastore_for(
        &self,
        root: &Path,
        config: DatastoreConfig,
        sync_timeout_ms: u64,
        loader: Option<&Arc<TypeLoader>>,
    ) -> Result<Datastore, CliError> {
        let identity = LockIdentity::current(env!("CARGO_PKG_VERSION"));
        match &config {
            DatastoreConfig::Local => Ok(Datastore {
                locks: Arc::new(FileDistributedLock::new(
                    root.join(layout::LOCKS_DIR),
                    identity,
                )),
                sync: None,
                label: "local datastore".to_owned(),
                config,
            }),
            DatastoreConfig::Filesystem { path } => Ok(Datastore {
                locks: Arc::new(FileDistributedLock::shared(
                    path.join(".fen-locks"),
                    identity,
                )),
                sync: Some(Arc::new(FilesystemSyncService::new(
                    root.join(layout::DATA_DIR),
                    path.clone(),
                    std::time::Duration::from_millis(sync_timeout_ms),
                ))),
                label: format!("filesystem datastore at {}", path.display()),
                config,
            }),
            DatastoreConfig::S3 { location } => {
                let bucket = s3_bucket(location, self.settings.http_timeout)?;
                Ok(Datastore {
                    locks: Arc::new(S3DistributedLock::new(bucket.clone(), identity)),
                    sync: Some(Arc::new(S3SyncService::new(
                        root.join(layout::DATA_DIR),
                        bucket,
                        std::time::Duration::from_millis(sync_timeout_ms),
                    ))),
                    label: format!("s3 datastore at {}", location.url()),
                    config,
                })
            }
            DatastoreConfig::Extension {
                type_name,
                remote,
                config: extension_config,
            } => {
                let own_loader;
                let loader = match loader {
                    Some(loader) => loader,
                    None => {
                        let repo = self.open_repo().await?;
                        self.index(&repo).await?;
                        own_loader = self.type_loader(&repo);
                        &own_loader
                    }
                };
                let instance = load_datastore_type(loader, type_name).await?;
                validate_extension_config(&instance, type_name, extension_config)?;
                let label = format!("datastore \"{type_name}\" at {}", remote.display());
                let log_label = type_name.clone();
                let log: DatastoreLogSink = Arc::new(move |level: &str, message: &str| {
                    eprintln!(
                        "[datastore {log_label}] {level}: {}",
                        crate::error::printable(message.to_owned())
                    );
                });
                Ok(Datastore {
                    locks: Arc::new(FileDistributedLock::shared(
                        remote.join(".fen-locks"),
                        identity,
                    )),
                    sync: Some(Arc::new(
                        JsDatastoreSyncService::new(
                            type_name.clone(),
                            instance,
                            extension_config.clone(),
                            root.join(layout::DATA_DIR),
                            remote.clone(),
                            SandboxLimits {
                                time: std::time::Duration::from_millis(sync_timeout_ms),
                                memory_bytes: self.settings.memory_bytes,
                                stack_bytes: SandboxLimits::STACK_BYTES,
                            },
                            log,
                        )
                        .with_reload(reload_datastore_type(loader, type_name)),
                    )),
                    label,
                    config,
                })
            }
        }
    }

    /// The lazy type loader over an indexed repo (spec 30 §5.3).
    pub fn type_loader(&self, repo: &Repo) -> Arc<TypeLoader> {
        let loader = TypeLoader::new(
            // The catalog itself: `build_index` kept only an outline (no descriptors),
            // and a loaded type needs its own and its extensions' descriptors. A miss
            // costs two indexed queries (the type, its extensions); a hit none.
            Arc::clone(&repo.adapters.types),
            Arc::clone(&repo.adapters.store),
            Arc::clone(&repo.runtime),
            SandboxLimits {
                time: self.settings.eval_timeout,
                memory_bytes: self.settings.memory_bytes,
                stack_bytes: SandboxLimits::STACK_BYTES,
            },
            self.settings.bundle_cache,
            Arc::clone(&self.stats),
        );
        loader.set_rebuilder(Arc::new(WarmRebuilder::new(repo.adapters.clone())));
        loader
    }

    /// The datastore locks of the repo's datastore.
    pub async fn datastore_locks(&self, root: &Path) -> Result<Arc<dyn DistributedLock>, CliError> {
        // An extension datastore's locks are fen's own: inspecting or force-releasing
        // them must work even when the extension's type cannot be loaded.
        if let DatastoreConfig::Extension { remote, .. } = read_datastore_config(root)? {
            return Ok(Arc::new(FileDistributedLock::shared(
                remote.join(".fen-locks"),
                LockIdentity::current(env!("CARGO_PKG_VERSION")),
            )));
        }
        Ok(self.datastore(root).await?.locks)
    }

    /// The model services over an indexed repo: a loader over the catalog (with the
    /// warm-pass rebuilder for step 4a), the definitions under
    /// `models/`, the local data store and its locks.
    pub async fn models(&self, repo: &Repo) -> Result<Models, CliError> {
        let root = &repo.root.native;
        let loader = self.type_loader(repo);
        let config = read_datastore_config(root)?;
        let datastore = self
            .datastore_for(
                root,
                config,
                self.settings.datastore_sync_timeout_ms,
                Some(&loader),
            )
            .await?;
        let show_debug = std::env::var("FEN_LOG").is_ok_and(|v| v == "debug");
        // One stderr line per `ctx.log` call: a newline or an escape sequence in the
        // message is shown escaped, so it cannot fake an `error:` line.
        let log: RunLogSink = Arc::new(move |model: &str, level: &str, message: &str| {
            if level != "debug" || show_debug {
                eprintln!(
                    "[{model}] {level}: {}",
                    crate::error::printable(message.to_owned())
                );
            }
        });
        let ports = ModelPorts {
            definitions: Arc::new(YamlModelDefinitions::new(root.join(layout::MODELS_DIR))),
            schemas: Arc::new(JsonSchemaValidator),
            data: Arc::new(LocalModelData::new(root.join(layout::DATA_DIR), log)),
            locks: datastore.locks,
            sync: datastore.sync,
            datastore: datastore.label,
            lock_wait_ms: self.settings.datastore_lock_wait_ms,
            lock_ttl_ms: self.settings.datastore_lock_ttl_ms,
            stats: Arc::clone(&self.stats),
            notices: Arc::new(|level: &str, message: &str| match level {
                "warning" => eprintln!("{} {message}", crate::colour::warning_prefix()),
                _ => eprintln!("{level}: {message}"),
            }),
            root: repo.root.canonical.as_str().to_owned(),
        };
        Ok(Models::new(ports, loader))
    }

    /// Opens (creating or migrating under the lifecycle lock when needed) the catalog
    /// of the repo at `root`; used by `fen init`.
    pub async fn open_catalog_at(&self, root: &Path) -> Result<OpenReport, CliError> {
        let repo_root = RepoRoot::new(root.to_path_buf(), PathPolicy::host())
            .map_err(|e| CliError::new(ErrorCode::Io, e.to_string()))?;
        let ctx = CatalogContext::for_repo(&repo_root, Vec::new(), PathPolicy::host());
        let opened = CatalogOpener::open(ctx, self.lifecycle_lock(root))
            .await
            .map_err(CliError::from)?;
        opened.repository.close().await;
        Ok(opened.report)
    }

    /// Brings the catalog up to date (warm pass or cold start) and reports new failures.
    pub async fn index(&self, repo: &Repo) -> Result<IndexSummary, CliError> {
        let spinner = crate::progress::IndexProgressBar::after_delay(
            self.mode == Mode::Human,
            Arc::clone(&self.stats),
        );
        let locks_before = self.stats.lifecycle_locks();
        let summary = build_index(&repo.adapters).await;
        drop(spinner);
        let summary = summary.map_err(CliError::from)?;
        // A pass that committed leaves its pages in the catalog's WAL; fold them into
        // the main file now (outside the lifecycle lock), so the next commands read it
        // directly.
        if self.stats.lifecycle_locks() > locks_before {
            repo.adapters.repo.checkpoint().await;
        }
        tracing::debug!(
            path = ?summary.path,
            transitions = summary.report.transitions.len(),
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "index ready"
        );
        for warning in &summary.report.warnings {
            self.warn(warning);
        }
        for t in &summary.report.transitions {
            if t.to == fen_domain::RowStateTag::Tombstoned && t.reason.starts_with("duplicate") {
                self.warn(&format!(
                    "{}: {}",
                    self.display_path(repo, t.source.as_str()),
                    t.reason
                ));
            }
        }
        // One warning per extension with failed sources (spec 30 §3.8), every command.
        for (ext, failed) in fen_lifecycle::registry::failures(&summary.loaded) {
            let first = &failed[0];
            let more = if failed.len() > 1 {
                format!(" and {} more", failed.len() - 1)
            } else {
                String::new()
            };
            let fix = match ext.origin() {
                fen_domain::ExtensionOrigin::Local => {
                    "edit the source and run the command again".to_owned()
                }
                fen_domain::ExtensionOrigin::Pulled => format!(
                    "run 'fen extension pull {}@{} --force'",
                    ext.id().name,
                    ext.id().version
                ),
            };
            self.warn(&format!(
                "{}: {} is {} ({}){more}; {fix}",
                ext.id(),
                self.display_path(repo, first.path.as_str()),
                first.state.as_str(),
                first.last_error,
            ));
        }
        if let Some(trip) = summary.report.aborted {
            self.warn(&format!(
                "the catalog rebuild would change {} of {} sources and was not applied; run 'fen doctor extensions' to review",
                trip.changed, trip.total
            ));
        }
        Ok(summary)
    }

    /// Prints a `warning:` line on stderr (both modes).
    pub fn warn(&self, message: &str) {
        eprintln!("{} {message}", crate::colour::warning_prefix());
    }

    /// Repo-relative in human mode, canonical absolute in JSON mode.
    pub fn display_path(&self, repo: &Repo, path: &str) -> String {
        if self.mode == Mode::Json {
            return path.to_owned();
        }
        let root = repo.root.canonical.as_str();
        match path
            .strip_prefix(root)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(rest) => rest.to_owned(),
            None => path.to_owned(),
        }
    }
}

/// One `FsSourceScanner` per pass, sharing the repo configuration.
struct FsScannerFactory(FsSourceScanner);

impl ScannerFactory for FsScannerFactory {
    fn new_pass(&self) -> Arc<dyn SourceScanner> {
        Arc::new(self.0.for_next_pass())
    }
}

/// Starts QuickJS worker threads only when a bundle is evaluated, so commands on an
/// unchanged tree never pay for them; with several (one per core, at most four),
/// indexing evaluates bundles in parallel. Each instance stays on the worker that
/// created it.
#[derive(Default)]
struct LazyRuntime {
    workers: OnceLock<Result<Vec<Worker>, String>>,
}

/// Counts an instantiation as answered when its future ends, or is dropped.
struct Answered<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One worker thread and the instantiations sent to it that have not answered yet.
struct Worker {
    runtime: QuickJsBundleRuntime,
    pending: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl BundleRuntime for LazyRuntime {
    async fn instantiate(
        &self,
        req: InstantiateRequest,
    ) -> Result<Arc<dyn TypeInstance>, RuntimeError> {
        let workers = self.workers.get_or_init(|| {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 4);
            (0..n)
                .map(|_| {
                    QuickJsBundleRuntime::new()
                        .map(|runtime| Worker {
                            runtime,
                            pending: Default::default(),
                        })
                        .map_err(|e| e.to_string())
                })
                .collect()
        });
        use std::sync::atomic::Ordering::Relaxed;
        // The worker with the fewest instantiations waiting (the first on a tie): a
        // fixed rotation queues behind a slow bundle while the other worker idles.
        let Some(worker) = workers
            .as_ref()
            .ok()
            .and_then(|workers| workers.iter().min_by_key(|w| w.pending.load(Relaxed)))
        else {
            return Err(RuntimeError::Unavailable);
        };
        worker.pending.fetch_add(1, Relaxed);
        let _answered = Answered(&worker.pending);
        worker.runtime.instantiate(req).await
    }
}

/// A client for an `s3` datastore, with credentials from the AWS environment variables
/// or a profile (never from the repository).
pub fn s3_bucket(
    location: &S3Location,
    request_timeout: std::time::Duration,
) -> Result<S3Bucket, CliError> {
    let credentials =
        S3Credentials::from_environment(&|name| std::env::var(name).ok()).map_err(|message| {
            CliError::new(
                ErrorCode::DatastoreUnavailable,
                format!(
                    "cannot use the s3 datastore at {}: {message}",
                    location.url()
                ),
            )
            .with_hint("export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set AWS_PROFILE")
        })?;
    S3Bucket::connect(location.clone(), credentials, request_timeout).map_err(|message| {
        CliError::new(ErrorCode::DatastoreUnavailable, message)
            .with_hint("check bucket, endpoint and region in .fen/datastore.yaml")
    })
}

/// `.fen/datastore.yaml`; a file of an unknown shape is `config_invalid`.
pub fn read_datastore_config(root: &Path) -> Result<DatastoreConfig, CliError> {
    DatastoreConfig::read(&root.join(layout::DATASTORE_CONFIG)).map_err(|message| {
        CliError::new(ErrorCode::ConfigInvalid, message).with_hint(
            "fix or remove .fen/datastore.yaml, or rewrite it with 'fen datastore setup local' or 'fen datastore setup filesystem --path <dir>'",
        )
    })
}

/// Loads an extension datastore's type (spec 30 §7.1): an unknown type is
/// `unknown_type` (exit 3), one that is not `Indexed` is `type_unavailable` (exit 7).
pub async fn load_datastore_type(
    loader: &Arc<TypeLoader>,
    type_name: &str,
) -> Result<Arc<dyn TypeInstance>, CliError> {
    let parsed = fen_domain::TypeName::parse(type_name).map_err(|e| {
        CliError::new(
            ErrorCode::ConfigInvalid,
            format!("datastore type \"{type_name}\" in .fen/datastore.yaml: {e}"),
        )
    })?;
    let loaded = loader
        .ensure_type_loaded(fen_domain::Kind::Datastore, &parsed)
        .await
        .map_err(|e| {
            let unknown = matches!(e, fen_lifecycle::loader::LoadError::UnknownType { .. });
            let error = crate::commands::models::load_error(e);
            let message = format!("datastore type \"{type_name}\": {}", error.message);
            let error = CliError { message, ..error };
            if unknown {
                // Also the answer for a source that no longer evaluates: its type row is
                // gone until the source is fixed.
                error.with_hint("run 'fen extension list' to see the datastore types and the state of their sources")
            } else {
                error
            }
        })?;
    Ok(Arc::clone(&loaded.instance))
}

/// Validates an extension datastore's `config` against its type's `configSchema`
/// (spec 30 §2.5); a violation is `config_invalid` (exit 3).
pub fn validate_extension_config(
    instance: &Arc<dyn TypeInstance>,
    type_name: &str,
    config: &serde_json::Value,
) -> Result<(), CliError> {
    use fen_domain::ports::models::SchemaValidator;
    let schema = fen_domain::ports::runtime::ExportSnapshot::of_bundle(instance.exports(), 0)
        .iter()
        .find(|s| s.key == "datastore")
        .and_then(|s| s.value.get("configSchema").cloned());
    let Some(schema) = schema else {
        return Ok(());
    };
    let invalid = |message: String| {
        CliError::new(
            ErrorCode::ConfigInvalid,
            format!("config of datastore type \"{type_name}\": {message}"),
        )
        .with_hint("fix 'config:' in .fen/datastore.yaml (or --config) to match the type's configSchema ('fen extension describe')")
    };
    let violations = JsonSchemaValidator
        .validate(&schema, config)
        .map_err(|e| invalid(format!("the type's configSchema is unusable: {e}")))?;
    if let Some(first) = violations.first() {
        return Err(invalid(first.to_string()));
    }
    Ok(())
}

/// Reloads a datastore type whose instance the sandbox discarded after a limit hit.
fn reload_datastore_type(loader: &Arc<TypeLoader>, type_name: &str) -> ReloadInstance {
    let loader = Arc::clone(loader);
    let type_name = type_name.to_owned();
    Arc::new(move || {
        let loader = Arc::clone(&loader);
        let type_name = type_name.clone();
        Box::pin(async move {
            let parsed = fen_domain::TypeName::parse(&type_name).map_err(|e| e.to_string())?;
            loader.invalidate_type(fen_domain::Kind::Datastore, &parsed);
            let loaded = loader
                .ensure_type_loaded(fen_domain::Kind::Datastore, &parsed)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Arc::clone(&loaded.instance))
        })
    })
}

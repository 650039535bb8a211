//! `SandboxBundleIndexer`: the `BundleIndexer` adapter that composes the bundler, the
//! QuickJS runtime and export validation (spec 10 §6.4, spec 30 §3.8).
//!
//! A new bundle is written into the entry's scratch directory (a fsynced `.fen-tmp-`
//! file renamed into place), never into `.fen/bundles/`: publishing is the caller's
//! job, under the lifecycle lock. Nothing here writes the catalog.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::runtime::{BundleFile, InstantiateRequest};
use fen_domain::ports::{
    BundleIndexer, BundleRuntime, EntryPoint, IndexError, IndexOutcome, Reuse, SandboxLimits,
};
use fen_domain::{CanonicalPath, PathPolicy, SourceFingerprint};

use crate::bundler::{self, BuildRequest, TranspileCache};
use crate::runtime::validate_export;
use crate::sources::export_mask;

/// Builds, evaluates and validates one entry point at a time.
pub struct SandboxBundleIndexer {
    runtime: Arc<dyn BundleRuntime>,
    bundles_dir: PathBuf,
    limits: SandboxLimits,
    /// Modules transpiled by earlier builds of this indexer: a helper many entries
    /// import is transpiled once (bundles stay byte-identical).
    transpiled: Arc<TranspileCache>,
}

impl SandboxBundleIndexer {
    /// An indexer publishing to `bundles_dir` (`.fen/bundles`) that evaluates with
    /// `limits` (top-level evaluation limits, spec 30 §4.3).
    pub fn new(
        runtime: Arc<dyn BundleRuntime>,
        bundles_dir: PathBuf,
        limits: SandboxLimits,
    ) -> SandboxBundleIndexer {
        SandboxBundleIndexer {
            runtime,
            bundles_dir,
            limits,
            transpiled: Arc::new(TranspileCache::new()),
        }
    }
}

#[async_trait]
impl BundleIndexer for SandboxBundleIndexer {
    async fn index_one(
        &self,
        entry: &EntryPoint,
        disk_fp: &SourceFingerprint,
        reuse: Reuse,
    ) -> Result<IndexOutcome, IndexError> {
        let build_error = |message: String| IndexError::Build(message);
        // The file may have changed since the walk: it must still export its key.
        let text = match std::fs::read(&entry.read_path) {
            Ok(bytes) => bytes,
            Err(error) => {
                return Err(IndexError::EntryUnreadable(format!(
                    "{}: {error}",
                    entry.read_path.display()
                )))
            }
        };
        let mask = export_mask(&String::from_utf8_lossy(&text));
        if !entry
            .root
            .loader_kind
            .kinds()
            .iter()
            .any(|k| mask.contains(*k))
        {
            return Err(IndexError::NotAnEntryPoint);
        }

        let scan_dir = CanonicalPath::new(&entry.root.dir, PathPolicy::host())
            .map_err(|e| build_error(format!("scan root: {e}")))?;
        let within_kind_dir = entry
            .location
            .canonical()
            .relative_to(&scan_dir)
            .filter(|rel| !rel.is_empty())
            .ok_or_else(|| {
                build_error(format!(
                    "{} is not under {}",
                    entry.location.canonical(),
                    scan_dir
                ))
            })?
            .to_owned();
        let final_path = bundler::bundle_path(
            &self.bundles_dir,
            &entry.root.bundle_prefix,
            entry.root.loader_kind.kind_dir(),
            &within_kind_dir,
        );
        let target = bundler::bundle_location(&final_path, *disk_fp)
            .map_err(|e| build_error(e.to_string()))?;

        let existing = match reuse {
            Reuse::IfUsable => std::fs::read(&final_path)
                .ok()
                .filter(|bytes| bundler::is_usable(bytes, disk_fp)),
            Reuse::Never => None,
        };
        let (bytes, staged, reused) = match existing {
            Some(bytes) => (bytes, None, true),
            None => {
                let request =
                    BuildRequest::for_entry(entry, *disk_fp).map_err(|e| e.into_index_error())?;
                let scratch = entry.scratch_dir.clone();
                let target_for_stage = target.clone();
                let transpiled = Arc::clone(&self.transpiled);
                // The error is boxed: IndexError is large and crosses the thread boundary.
                let built = tokio::task::spawn_blocking(move || {
                    let container = bundler::build_bundle_cached(&request, &transpiled)
                        .map_err(|e| Box::new(e.into_index_error()))?;
                    let write_failed = |e: std::io::Error| {
                        Box::new(IndexError::Build(format!("bundle write failed: {e}")))
                    };
                    std::fs::create_dir_all(&scratch).map_err(write_failed)?;
                    let bytes = container.to_json_bytes();
                    let staged =
                        bundler::write_staged_bytes(&container, &bytes, &scratch, target_for_stage)
                            .map_err(write_failed)?;
                    Ok::<_, Box<IndexError>>((bytes, staged))
                })
                .await
                .map_err(|e| IndexError::Build(format!("bundler crashed: {e}")))?
                .map_err(|e| *e)?;
                (built.0, Some(built.1), false)
            }
        };

        let contents =
            String::from_utf8(bytes).map_err(|_| build_error("bundle is not UTF-8".to_owned()))?;
        let file = BundleFile {
            path: target.path.to_string(),
            contents,
        };
        let validation = |message: String| IndexError::Validation {
            bundle: target.clone(),
            staged: staged.clone(),
            message,
        };
        let instance = self
            .runtime
            .instantiate(InstantiateRequest {
                bundles: vec![Arc::new(file)],
                limits: self.limits,
            })
            .await
            .map_err(|e| validation(first_line(&e.to_string())))?;
        let validated = validate_export(entry.root.loader_kind, instance.exports())
            .map_err(|e| validation(first_line(&e.to_string())))?;
        tracing::debug!(
            source = %entry.location.canonical(),
            bundle = %target.path,
            reused,
            r#type = %validated.type_name,
            "indexed"
        );
        Ok(IndexOutcome::Indexed {
            kind: validated.kind,
            type_name: validated.type_name,
            bundle: target,
            meta: validated.meta,
            reused,
            staged,
        })
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}

//! InstallExtensionService (spec 20 §9): `pull`, and the install step of `update` and
//! `install`.
//!
//! Phases 1–7 (resolve, download, verify, unpack, index, dependencies) run in
//! `.fen/scratch/stage-<id>/` without any lock. Phases 8–12 run under the lifecycle
//! lock: recovery, re-read of the lockfile and the catalog, the decision table of
//! §9.2, the journal, the swap (whole-root renames; the prior roots go into the txn),
//! ONE lockfile write (the commit point), ONE `save_all` with the tombstones of other
//! versions (§9.3), then the txn is deleted. A DuplicateType restores the exact prior
//! state (§9.4); any other catalog failure leaves the txn for the next locked section.

use std::collections::BTreeSet;

use fen_domain::journal::{Journal, JournalOp, JournalSource, JournalTarget};
use fen_domain::ports::lockfile::{files_digest, sha256_hex};
use fen_domain::ports::{
    EntryPoint, IndexError, IndexOutcome, LockDocument, LockEntry, RegistryUrl, RepoError, Reuse,
    ScanRoot, ScannedEntry, StageDir,
};
use fen_domain::{
    Extension, ExtensionId, ExtensionName, ExtensionOrigin, ExtensionRef, ExtensionVersion, Kind,
    LoaderKind, Observation, Origin, RowState, SourceLocation, TypeName,
};
use serde_json::{json, Value};

use super::{agrees, live, root_prefix, Failure, Session};
use crate::engine::LifecycleError;

/// Deepest dependency chain.
const MAX_DEPTH: usize = 10;

/// How an install was asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum InstallMode {
    /// `fen extension pull`.
    Pull {
        /// `--force`.
        force: bool,
    },
    /// `fen extension install`: only if the entry is still `pinned`.
    Restore {
        /// The lockfile entry being restored.
        pinned: LockEntry,
    },
    /// `fen extension update`: only if the entry is still at `from`.
    Upgrade {
        /// The version the plan saw.
        from: ExtensionVersion,
    },
}

/// One install.
#[derive(Clone, Debug)]
pub struct InstallRequest {
    /// What to install.
    pub reference: ExtensionRef,
    /// Where from.
    pub registry: RegistryUrl,
    /// `--allow-unverified`.
    pub allow_unverified: bool,
    /// Pull, restore or upgrade.
    pub mode: InstallMode,
}

/// What one installed extension looks like (spec 20 §9.6).
#[derive(Clone, Debug, PartialEq)]
pub struct InstallReport {
    /// Name.
    pub name: ExtensionName,
    /// Installed version.
    pub version: ExtensionVersion,
    /// `installed | reinstalled | upgraded | downgraded`.
    pub outcome: &'static str,
    /// The version replaced, if any.
    pub previous_version: Option<ExtensionVersion>,
    /// Archive checksum.
    pub checksum: String,
    /// `verified | unverified`.
    pub integrity: &'static str,
    /// Lockfile `files[]`.
    pub files: Vec<String>,
    /// `(kind, type, sourcePath)` of every indexed source.
    pub types: Vec<(Kind, String, String)>,
    /// `(sourcePath, state, error)` of every source that failed.
    pub failed_sources: Vec<(String, String, String)>,
    /// Indexed types of this extension that a local source shadows (spec 20 §9.3).
    pub shadowed_types: Vec<Shadowed>,
    /// Installed dependencies.
    pub dependencies: Vec<InstallReport>,
}

impl InstallReport {
    /// The JSON of spec 20 §9.6.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name.as_str(),
            "version": self.version.to_string(),
            "outcome": self.outcome,
            "previousVersion": self.previous_version.map(|v| v.to_string()),
            "checksum": self.checksum,
            "integrity": self.integrity,
            "files": self.files,
            "types": self.types.iter().map(|(k, t, p)| json!({"kind": k.as_str(), "type": t, "sourcePath": p})).collect::<Vec<_>>(),
            "failedSources": self.failed_sources.iter().map(|(p, s, e)| json!({"sourcePath": p, "state": s, "error": e})).collect::<Vec<_>>(),
            "shadowedTypes": self.shadowed_types.iter().map(|s| json!({
                "kind": s.kind.as_str(),
                "type": s.type_name,
                "sourcePath": s.source_path,
                "shadowedBy": s.shadowed_by,
            })).collect::<Vec<_>>(),
            "dependencies": self.dependencies.iter().map(InstallReport::to_json).collect::<Vec<_>>(),
        })
    }
}

/// A pulled type that a local source claiming the same `(kind, type)` hides: the local
/// row is the visible one (origin precedence, spec 10 §5.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shadowed {
    /// The kind.
    pub kind: Kind,
    /// The type.
    pub type_name: String,
    /// The pulled entry point.
    pub source_path: String,
    /// The local entry point that wins.
    pub shadowed_by: String,
}

/// How an install ended when it did not fail.
#[derive(Clone, Debug, PartialEq)]
pub enum InstallOutcome {
    /// Installed.
    Done(Box<InstallReport>),
    /// Upgrade/restore CAS lost: the entry changed under us.
    Skipped(&'static str),
    /// Upgrade found the target version already installed.
    UpToDate,
}

/// A target prepared in staging.
struct Staged {
    name: ExtensionName,
    key: String,
    version: ExtensionVersion,
    checksum: String,
    integrity: &'static str,
    registry: RegistryUrl,
    stage: StageDir,
    aggregate: Extension,
    files: Vec<String>,
    files_digest: String,
    dependency: bool,
    dependencies: Vec<ExtensionRef>,
}

impl Session {
    /// Runs an install end to end. Staging is deleted on every path.
    pub async fn install(&self, req: InstallRequest) -> Result<InstallOutcome, LifecycleError> {
        let snapshot = self.ad.lockfile_store.read().await?;
        let mut staged: Vec<Staged> = Vec::new();
        let result = async {
            let mut visited = BTreeSet::new();
            let mut chain = Vec::new();
            self.stage_tree(
                &req,
                &req.reference,
                &snapshot,
                0,
                &mut chain,
                &mut visited,
                &mut staged,
            )
            .await?;
            self.fault("install:after-stage")?;
            self.check_interrupted()?;
            self.commit(&req, &mut staged).await
        }
        .await;
        for target in &staged {
            self.ad.trees.remove_scratch(&target.stage.path);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn stage_tree(
        &self,
        req: &InstallRequest,
        reference: &ExtensionRef,
        snapshot: &LockDocument,
        depth: usize,
        chain: &mut Vec<String>,
        visited: &mut BTreeSet<ExtensionName>,
        staged: &mut Vec<Staged>,
    ) -> Result<(), LifecycleError> {
        chain.push(reference.name.to_string());
        if depth > MAX_DEPTH {
            let top = chain.first().cloned().unwrap_or_default();
            return Err(Failure::new(
                "dependency_error",
                format!(
                    "dependency chain of {top} exceeds depth {MAX_DEPTH} (possible cycle: {})",
                    chain.join(" -> ")
                ),
            )
            .into());
        }
        visited.insert(reference.name.clone());
        let target = self.stage_one(req, reference, depth > 0).await;
        let target = match target {
            Ok(target) => target,
            Err(error) => return Err(error),
        };
        let dependencies = target.dependencies.clone();
        staged.push(target);
        for dep in dependencies {
            if snapshot.extensions.contains_key(&dep.name) || visited.contains(&dep.name) {
                continue;
            }
            Box::pin(self.stage_tree(req, &dep, snapshot, depth + 1, chain, visited, staged))
                .await?;
        }
        chain.pop();
        Ok(())
    }

    /// Phases 2–6 for one extension.
    async fn stage_one(
        &self,
        req: &InstallRequest,
        reference: &ExtensionRef,
        dependency: bool,
    ) -> Result<Staged, LifecycleError> {
        let name = &reference.name;
        let registry = &req.registry;
        let version = match reference.version {
            Some(version) => version,
            None => {
                let meta = self.registry.metadata(registry, name).await?;
                if let Some(deprecated) = &meta.deprecated {
                    let by = deprecated
                        .superseded_by
                        .as_deref()
                        .map(|s| format!("; use {s} instead"))
                        .unwrap_or_default();
                    self.warn(format!("{name} is deprecated: {}{by}", deprecated.reason));
                }
                meta.latest_version.ok_or_else(|| {
                    Failure::new(
                        "registry_not_found",
                        format!("extension {name} has no published versions"),
                    )
                })?
            }
        };
        self.check_interrupted()?;
        let archive = self
            .registry
            .download(registry, name, &version, self.progress.as_ref())
            .await?;
        self.check_interrupted()?;
        let local = sha256_hex(&archive);
        let integrity = match self.registry.checksum(registry, name, &version).await? {
            Some(published) if published.eq_ignore_ascii_case(&local) => "verified",
            Some(published) => {
                return Err(Failure::new(
                    "checksum_mismatch",
                    format!("checksum mismatch for {name}@{version}: registry says {published}, downloaded archive is {local}; nothing was installed"),
                )
                .into())
            }
            None if req.allow_unverified => {
                self.warn(format!(
                    "{name}@{version} is not verified: the registry publishes no checksum"
                ));
                "unverified"
            }
            None => {
                return Err(Failure::new(
                    "checksum_unavailable",
                    format!("registry has no checksum for {name}@{version}; refusing unverified content"),
                )
                .hint("pass --allow-unverified to override")
                .into())
            }
        };
        if let InstallMode::Restore { pinned } = &req.mode {
            if !dependency {
                if let Some(pin) = &pinned.checksum {
                    if !pin.eq_ignore_ascii_case(&local) {
                        return Err(Failure::new(
                            "lockfile_checksum_mismatch",
                            format!("integrity check failed for {name}@{version}: lockfile pins sha256 {pin} but the registry now serves {local}"),
                        )
                        .hint(format!("run 'fen extension pull {name}@{version} --force' to accept the new bytes, or pin another version"))
                        .into());
                    }
                } else {
                    self.warn(format!(
                        "{name}@{version} has no pinned checksum; recording the current one"
                    ));
                }
            }
        }
        let stage = self.ad.trees.new_stage()?;
        let prepared = self
            .prepare_stage(&stage, name, version, &archive, dependency)
            .await;
        match prepared {
            Ok((aggregate, files, files_digest, dependencies)) => Ok(Staged {
                name: name.clone(),
                key: name.directory_key(),
                version,
                checksum: local,
                integrity,
                registry: registry.clone(),
                stage,
                aggregate,
                files,
                files_digest,
                dependency,
                dependencies,
            }),
            Err(error) => {
                self.ad.trees.remove_scratch(&stage.path);
                Err(error)
            }
        }
    }

    /// Phases 5–6: unpack, digest, index every entry point against its final location.
    async fn prepare_stage(
        &self,
        stage: &StageDir,
        name: &ExtensionName,
        version: ExtensionVersion,
        archive: &[u8],
        dependency: bool,
    ) -> Result<(Extension, Vec<String>, String, Vec<ExtensionRef>), LifecycleError> {
        let _ = dependency;
        let unpacked = self
            .unpacker
            .unpack(archive, &stage.ext_dir(), name, &version)
            .await?;
        for warning in &unpacked.warnings {
            self.warn(format!("{name}@{version}: {warning}"));
        }
        let prefix = root_prefix(name);
        let hashes = self
            .ad
            .trees
            .hash_files(&stage.ext_dir(), &unpacked.files)?;
        let files: Vec<String> = unpacked
            .files
            .iter()
            .map(|f| format!("{prefix}{f}"))
            .collect();
        let mut digests = Vec::new();
        for (path, hash) in files.iter().zip(&hashes) {
            let hash =
                hash.ok_or_else(|| LifecycleError::Io(format!("staged file {path} vanished")))?;
            digests.push((path.as_str(), hash));
        }
        let digest = files_digest(digests.into_iter());

        let final_root = self.ad.layout.pulled_root(name);
        let scanner = self.ad.scanners.new_pass();
        let pair = [(name.clone(), final_root.clone())];
        let roots: Vec<ScanRoot> = LoaderKind::ALL
            .into_iter()
            .flat_map(|lk| scanner.scan_roots(lk, &pair))
            .filter(|r| r.origin == Origin::Pulled)
            .collect();
        let mut aggregate = Extension::new(
            ExtensionId::new(name.clone(), version),
            ExtensionOrigin::Pulled,
            final_root.clone(),
            Vec::new(),
        )?;
        let key = name.directory_key();
        let entry_points = unpacked.manifest.entry_point_paths();
        self.ad.stats.plan_indexing(entry_points.len());
        for relative in entry_points {
            self.check_interrupted()?;
            let Some(loader_kind) = fen_domain::layout::entry_point_kind(&relative) else {
                continue;
            };
            let Some(root) = roots.iter().find(|r| r.loader_kind == loader_kind) else {
                continue;
            };
            let canonical = final_root.join(&relative);
            let location = SourceLocation::from_canonical(canonical.clone(), final_root.clone());
            let read_path = stage.ext_dir().join(&relative);
            let staged_root = ScanRoot {
                dir: stage.ext_dir().join(loader_kind.kind_dir()),
                boundary: stage.ext_dir(),
                ..root.clone()
            };
            let measured = scanner
                .fingerprint(
                    &ScannedEntry {
                        location: location.clone(),
                        root: staged_root,
                        native_path: read_path.clone(),
                        unreadable: None,
                    },
                    None,
                )
                .await;
            let fingerprint = measured.fingerprint;
            let entry = EntryPoint {
                location: location.clone(),
                root: root.clone(),
                read_path,
                scratch_dir: stage.build_dir(),
            };
            let result = self
                .ad
                .indexer
                .index_one(&entry, &fingerprint, Reuse::Never)
                .await;
            let default_kind = loader_kind.kinds()[0];
            let obs = |kind: Kind| Observation {
                location: location.clone(),
                kind,
                origin: Origin::Pulled,
                fingerprint,
                mtime: None,
            };
            aggregate = match result {
                Ok(IndexOutcome::Indexed {
                    kind,
                    type_name,
                    bundle,
                    meta,
                    staged,
                    ..
                }) => {
                    if let Some(staged) = &staged {
                        self.ad.trees.place_bundle(stage, &key, staged)?;
                    }
                    aggregate
                        .observe_fresh_source(&obs(kind), type_name, bundle)?
                        .record_indexed(&canonical, meta)?
                }
                Err(IndexError::Validation {
                    bundle,
                    staged,
                    message,
                }) => {
                    if let Some(staged) = &staged {
                        self.ad.trees.place_bundle(stage, &key, staged)?;
                    }
                    self.warn_failed(name, version, &relative, &message);
                    aggregate.record_validation_failed(&obs(default_kind), bundle, message)?
                }
                Err(IndexError::EntryUnreadable(message)) => {
                    self.warn_failed(name, version, &relative, &message);
                    aggregate.record_entry_point_unreadable(&obs(default_kind), message)?
                }
                Err(other) => {
                    let message = other.to_string();
                    self.warn_failed(name, version, &relative, &message);
                    aggregate.record_bundle_build_failed(&obs(default_kind), message)?
                }
            };
        }
        self.ad.trees.remove_scratch(&stage.build_dir());
        Ok((aggregate, files, digest, unpacked.manifest.dependencies))
    }

    fn warn_failed(&self, name: &ExtensionName, version: ExtensionVersion, rel: &str, why: &str) {
        self.warn(format!(
            "{name}@{version}: {rel} could not be indexed ({why}); its type is unavailable"
        ));
    }

    /// Phases 8–12.
    async fn commit(
        &self,
        req: &InstallRequest,
        staged: &mut Vec<Staged>,
    ) -> Result<InstallOutcome, LifecycleError> {
        let ad = &self.ad;
        let held = self.lock(Some("install:after-lock")).await?;
        let result = self.commit_locked(req, staged).await;
        self.unlock(held);
        if result.is_ok() {
            ad.repo.checkpoint().await;
        }
        result
    }

    async fn commit_locked(
        &self,
        req: &InstallRequest,
        staged: &mut Vec<Staged>,
    ) -> Result<InstallOutcome, LifecycleError> {
        let ad = &self.ad;
        let document = ad.lockfile_store.read().await?;
        let Some(top) = staged.first() else {
            return Err(LifecycleError::Io("nothing staged".to_owned()));
        };
        let top_name = top.name.clone();
        let top_version = top.version;
        let prior = document.extensions.get(&top_name).cloned();
        let current = live(ad.repo.load_by_name(&top_name).await?);
        let on_disk = ad.trees.roots(&top.key).any();

        // §9.2: the decision, on the state read under the lock.
        let outcome: &'static str = match &req.mode {
            InstallMode::Pull { force } => {
                let previous = prior.as_ref().map(|p| p.version);
                if !force && (prior.is_some() || !current.is_empty() || on_disk) {
                    return Err(self
                        .conflict(&top_name, top_version, prior.as_ref(), &current)
                        .into());
                }
                match previous {
                    None => "installed",
                    Some(v) if v == top_version => "reinstalled",
                    Some(v) if top_version > v => "upgraded",
                    Some(_) => "downgraded",
                }
            }
            InstallMode::Upgrade { from } => match &prior {
                None => return Ok(InstallOutcome::Skipped("removed concurrently")),
                Some(p) if p.version == top_version => return Ok(InstallOutcome::UpToDate),
                Some(p) if p.version != *from => {
                    return Ok(InstallOutcome::Skipped("changed concurrently"))
                }
                Some(_) => "upgraded",
            },
            InstallMode::Restore { pinned } => match &prior {
                Some(p) if p.version == pinned.version && p.checksum == pinned.checksum => {
                    "reinstalled"
                }
                _ => return Ok(InstallOutcome::Skipped("changed concurrently")),
            },
        };
        // Dependencies installed meanwhile are dropped; vanished ones warned about.
        let mut index = 1;
        while index < staged.len() {
            if document.extensions.contains_key(&staged[index].name) {
                let gone = staged.remove(index);
                ad.trees.remove_scratch(&gone.stage.path);
            } else {
                index += 1;
            }
        }
        let staged_names: BTreeSet<&ExtensionName> = staged.iter().map(|t| &t.name).collect();
        let mut vanished = BTreeSet::new();
        for target in staged.iter() {
            for dep in &target.dependencies {
                if !staged_names.contains(&dep.name) && !document.extensions.contains_key(&dep.name)
                {
                    vanished.insert(dep.name.clone());
                }
            }
        }
        for name in vanished {
            self.warn(format!("dependency {name} is no longer installed"));
        }

        let guards_fresh = self.guards_fresh(&document).await?;

        // Phase 9: journal, then swap.
        let journal = Journal {
            op: JournalOp::Install,
            pid: std::process::id(),
            host: ad.clock.host(),
            started_at: ad.clock.now_rfc3339_millis(),
            targets: staged
                .iter()
                .map(|t| JournalTarget {
                    name: t.name.clone(),
                    key: t.key.clone(),
                    new_version: Some(t.version),
                    new_checksum: Some(t.checksum.clone()),
                    sources: t
                        .aggregate
                        .sources()
                        .filter_map(JournalSource::from_source)
                        .collect(),
                    prior: document.extensions.get(&t.name).cloned(),
                })
                .collect(),
        };
        let txn = ad.trees.begin_txn(&journal)?;
        let swapped = (|| {
            self.fault("install:after-journal")?;
            for (i, target) in staged.iter().enumerate() {
                ad.trees.move_aside(&txn, i, &target.key)?;
                self.fault("install:after-move-aside")?;
                ad.trees.move_in(&target.stage, &target.key)?;
            }
            Ok::<(), LifecycleError>(())
        })();
        if let Err(error) = swapped {
            self.undo_swap(&txn, &journal)?;
            return Err(error);
        }
        if let Err(error) = self.fault("install:after-swap") {
            self.undo_swap(&txn, &journal)?;
            return Err(error);
        }

        // Phase 10: one lockfile write for every target. The commit point.
        let now = ad.clock.now_rfc3339_millis();
        let mut next = document.clone();
        for target in staged.iter() {
            let old = document.extensions.get(&target.name);
            let pulled_at = match old {
                Some(old) if old.version == target.version && !old.pulled_at.is_empty() => {
                    old.pulled_at.clone()
                }
                _ => now.clone(),
            };
            next.extensions.insert(
                target.name.clone(),
                LockEntry {
                    version: target.version,
                    pulled_at,
                    checksum: Some(target.checksum.clone()),
                    files: target.files.clone(),
                    files_digest: Some(target.files_digest.clone()),
                    registry: Some(target.registry.to_string()),
                    extra: old.map(|o| o.extra.clone()).unwrap_or_default(),
                },
            );
        }
        if let Err(error) = ad.lockfile_store.write(&next).await {
            self.undo_swap(&txn, &journal)?;
            return Err(error.into());
        }
        self.fault("install:after-lockfile-write")?;

        // Phase 11: one transaction, tombstones of other versions first.
        let mut batch: Vec<Extension> = Vec::new();
        for target in staged.iter() {
            for other in live(ad.repo.load_by_name(&target.name).await?) {
                if other.id().version != target.version {
                    batch.push(other.tombstone_all());
                }
            }
        }
        for target in staged.iter().skip(1) {
            batch.push(target.aggregate.clone());
        }
        batch.push(staged[0].aggregate.clone());
        let saved = match ad.faults.hit("install:before-catalog-commit") {
            Err(injected) => Err(RepoError::Storage(injected)),
            Ok(()) => ad.repo.save_all(&batch).await,
        };
        match saved {
            Ok(_) => {}
            Err(RepoError::DuplicateType(dup)) => {
                super::recovery::full_rollback(ad, &txn, &journal, document).await?;
                let conflicting = &dup.conflicting;
                let message = format!(
                    "type \"{}\" (kind {}) is already provided by {} at {}; cannot install {} ({}); changes were rolled back",
                    dup.type_name, dup.kind, dup.existing.extension, dup.existing.source_path,
                    conflicting.extension, conflicting.source_path
                );
                let mut failure = Failure::new("duplicate_type", message).hint(dup.hint());
                failure.duplicate = Some(*dup);
                return Err(failure.into());
            }
            Err(error) => {
                let cause = match &error {
                    RepoError::Busy => "busy",
                    RepoError::Storage(_) => "io",
                    _ => "other",
                };
                return Err(Failure::new(
                    "partially_applied",
                    format!("install of {top_name}@{top_version} partially applied: files and lockfile are in place but the catalog write failed ({error})"),
                )
                .hint(format!("run 'fen extension update' or 'fen extension pull {top_name}@{top_version} --force' to finish it"))
                .detail("cause", json!(cause))
                .into());
            }
        }
        self.fault("install:after-catalog-commit")?;
        if let Err(error) = ad.trees.delete_txn(&txn) {
            self.warn(format!("could not delete {}: {error}", txn.0));
        }
        if guards_fresh {
            self.mark_populated(&next).await?;
        }
        let mut report = self.report(staged, &document, outcome);
        self.find_shadowed(&mut report).await?;
        Ok(InstallOutcome::Done(Box::new(report)))
    }

    /// Fills `shadowed_types` of a report and its dependencies from the type index (one
    /// lookup per indexed type, after the commit: the visible row of a `(kind, type)` a
    /// local source also claims is the local one) and warns once per shadowed type.
    async fn find_shadowed(&self, report: &mut InstallReport) -> Result<(), LifecycleError> {
        report.shadowed_types = self.shadowed_in(report).await?;
        for dep in report.dependencies.iter_mut() {
            dep.shadowed_types = self.shadowed_in(dep).await?;
        }
        Ok(())
    }

    async fn shadowed_in(&self, report: &InstallReport) -> Result<Vec<Shadowed>, LifecycleError> {
        let mut out = Vec::new();
        for (kind, type_name, source_path) in &report.types {
            if *kind == Kind::Extension {
                continue;
            }
            let Ok(ty) = TypeName::parse(type_name) else {
                continue;
            };
            let Some(visible) = self.ad.types.find_type(*kind, &ty).await? else {
                continue;
            };
            if visible.source_path.as_str() != source_path {
                self.warn(format!(
                    "type {type_name} from {} is shadowed by local source {}",
                    report.name,
                    visible.source_path.as_str()
                ));
                out.push(Shadowed {
                    kind: *kind,
                    type_name: type_name.clone(),
                    source_path: source_path.clone(),
                    shadowed_by: visible.source_path.as_str().to_owned(),
                });
            }
        }
        Ok(out)
    }

    fn undo_swap(
        &self,
        txn: &fen_domain::ports::TxnId,
        journal: &Journal,
    ) -> Result<(), LifecycleError> {
        for (i, target) in journal.targets.iter().enumerate() {
            self.ad
                .trees
                .roll_back(txn, i, &target.key, target.prior.is_none())?;
            self.ad.trees.prune_parents(&target.key);
        }
        self.ad.trees.delete_txn(txn)?;
        Ok(())
    }

    fn conflict(
        &self,
        name: &ExtensionName,
        version: ExtensionVersion,
        prior: Option<&LockEntry>,
        current: &[Extension],
    ) -> Failure {
        let mut paths: Vec<String> = match prior {
            Some(p) => p.files.clone(),
            None => current
                .iter()
                .flat_map(|e| e.sources().map(|s| s.path().as_str().to_owned()))
                .collect(),
        };
        paths.truncate(50);
        let failure = match prior {
            Some(p) if p.version == version && agrees(&self.ad, name, current, p) => {
                Failure::new("conflict", format!("{name}@{version} is already installed"))
                    .hint("pass --force to reinstall")
            }
            Some(p) if p.version == version => Failure::new(
                "conflict",
                format!("{name}@{version} is installed but its catalog rows or files disagree with the lockfile"),
            )
            .hint("run 'fen extension install' to repair it, or pass --force to reinstall"),
            _ => {
                let at = prior
                    .map(|p| p.version.to_string())
                    .unwrap_or_else(|| "an unknown version".to_owned());
                Failure::new("conflict", format!("{name} is already installed at {at}"))
                    .hint(format!("run 'fen extension update {name}' or pass --force to replace it with {version}"))
            }
        };
        failure.detail("conflictingPaths", json!(paths))
    }

    fn report(
        &self,
        staged: &[Staged],
        before: &LockDocument,
        outcome: &'static str,
    ) -> InstallReport {
        let one = |t: &Staged, outcome: &'static str| {
            let mut types = Vec::new();
            let mut failed = Vec::new();
            for source in t.aggregate.sources() {
                match source.state() {
                    RowState::Indexed { type_name, .. } => types.push((
                        source.kind(),
                        type_name.as_str().to_owned(),
                        source.path().as_str().to_owned(),
                    )),
                    other => failed.push((
                        source.path().as_str().to_owned(),
                        other.tag().to_string(),
                        other.last_error().unwrap_or_default().to_owned(),
                    )),
                }
            }
            InstallReport {
                name: t.name.clone(),
                version: t.version,
                outcome,
                previous_version: before
                    .extensions
                    .get(&t.name)
                    .map(|p| p.version)
                    .filter(|v| *v != t.version),
                checksum: t.checksum.clone(),
                integrity: t.integrity,
                files: t.files.clone(),
                types,
                failed_sources: failed,
                shadowed_types: Vec::new(),
                dependencies: Vec::new(),
            }
        };
        let mut top = one(&staged[0], outcome);
        top.dependencies = staged
            .iter()
            .skip(1)
            .filter(|t| t.dependency)
            .map(|t| one(t, "installed"))
            .collect();
        top
    }
}

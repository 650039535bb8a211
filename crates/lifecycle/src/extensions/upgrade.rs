//! UpgradeExtensionService (spec 20 §11): `fen extension update [NAME] [--check]`.
//!
//! Bounded atomicity: each extension is its own lock acquisition and its own
//! transaction; a failure never undoes the extensions already updated, and other
//! processes may interleave between extensions.

use std::collections::BTreeSet;

use fen_domain::ports::{LockEntry, RegistryUrl};
use fen_domain::{ExtensionName, ExtensionOrigin, ExtensionRef, ExtensionVersion};

use super::install::{InstallMode, InstallOutcome, InstallRequest};
use super::{agrees, live, Failure, Session};
use crate::engine::LifecycleError;
use crate::reconcile::{
    reconcile, Guardrail, Rebuild, ReconcileMode, ReconcileOptions, ReconcileReport,
};

/// One extension's result in a bulk command.
#[derive(Debug)]
pub struct BulkItem {
    /// The name.
    pub name: ExtensionName,
    /// `updated`, `restored`, `up_to_date`, `reconciled`, `skipped`, `not_found`,
    /// `failed`, `update_available`.
    pub status: &'static str,
    /// Version before.
    pub from: Option<ExtensionVersion>,
    /// Version after (or offered).
    pub to: Option<ExtensionVersion>,
    /// Why it was skipped.
    pub reason: Option<&'static str>,
    /// Why it failed.
    pub error: Option<LifecycleError>,
}

impl BulkItem {
    fn new(name: &ExtensionName, status: &'static str) -> BulkItem {
        BulkItem {
            name: name.clone(),
            status,
            from: None,
            to: None,
            reason: None,
            error: None,
        }
    }

    fn failed(
        name: &ExtensionName,
        from: Option<ExtensionVersion>,
        error: LifecycleError,
    ) -> BulkItem {
        BulkItem {
            from,
            error: Some(error),
            ..BulkItem::new(name, "failed")
        }
    }
}

/// `--check` or apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateMode {
    /// Registry queries only.
    Check,
    /// Upgrade and reconcile.
    Apply,
}

/// The registry of one entry: `--registry`/`FEN_REGISTRY_URL`, else the entry's own.
pub(crate) fn registry_for(
    configured: Option<&RegistryUrl>,
    entry: &LockEntry,
) -> Result<RegistryUrl, LifecycleError> {
    if let Some(url) = configured {
        return Ok(url.clone());
    }
    match entry.registry.as_deref() {
        Some(text) => Ok(RegistryUrl::parse(text)?),
        None => Err(Failure::new(
            "registry_not_configured",
            "no registry configured; set FEN_REGISTRY_URL or pass --registry <URL>",
        )
        .into()),
    }
}

impl Session {
    /// Runs `update`.
    pub async fn update(
        &self,
        name: Option<&ExtensionName>,
        mode: UpdateMode,
        registry: Option<&RegistryUrl>,
    ) -> Result<Vec<BulkItem>, LifecycleError> {
        if mode == UpdateMode::Apply {
            let held = self.lock(None).await?;
            self.unlock(held);
        }
        let document = self.ad.lockfile_store.read().await?;
        if let Some(name) = name {
            if !document.extensions.contains_key(name) {
                return Err(Failure::new(
                    "not_installed",
                    format!("extension {name} is not installed"),
                )
                .into());
            }
        }
        let mut items = Vec::new();
        for (entry_name, entry) in &document.extensions {
            if name.is_some_and(|n| n != entry_name) {
                continue;
            }
            self.check_interrupted()?;
            items.push(self.update_one(entry_name, entry, mode, registry).await);
        }
        if name.is_none() && mode == UpdateMode::Apply {
            // Catalog rows without a lockfile entry: tombstoned by a reconcile commit,
            // which re-reads the lockfile under the lock.
            let loaded = self.ad.repo.load_outline().await?;
            let orphans: Vec<_> = loaded
                .extensions
                .iter()
                .filter(|e| e.origin() == ExtensionOrigin::Pulled)
                .filter(|e| !document.extensions.contains_key(&e.id().name))
                .filter(|e| {
                    e.sources()
                        .any(|s| !matches!(s.state(), fen_domain::RowState::Tombstoned { .. }))
                })
                .map(|e| (e.id().name.clone(), e.id().version))
                .collect();
            if !orphans.is_empty() {
                // `document` was read before this step, without the lock: a name it
                // lacks may have been installed since. The commit re-reads the
                // lockfile under the lock; only what it retired was reconciled.
                let report = self.reconcile_all().await?;
                let retired = changed_names(&report);
                for (orphan, version) in orphans {
                    if retired.contains(&orphan) {
                        let mut item = BulkItem::new(&orphan, "reconciled");
                        item.from = Some(version);
                        items.push(item);
                    }
                }
            }
        }
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(items)
    }

    async fn update_one(
        &self,
        name: &ExtensionName,
        entry: &LockEntry,
        mode: UpdateMode,
        configured: Option<&RegistryUrl>,
    ) -> BulkItem {
        let from = Some(entry.version);
        let registry = match registry_for(configured, entry) {
            Ok(url) => url,
            Err(error) => return BulkItem::failed(name, from, error),
        };
        let latest = match self.registry.latest(&registry, name).await {
            Ok(Some(latest)) => latest,
            Ok(None) => {
                let mut item = BulkItem::new(name, "not_found");
                item.from = from;
                item.error = Some(
                    Failure::new(
                        "registry_not_found",
                        format!("extension {name} not found in registry {registry}"),
                    )
                    .into(),
                );
                return item;
            }
            Err(error) => return BulkItem::failed(name, from, error.into()),
        };
        let mut item = BulkItem::new(name, "up_to_date");
        item.from = from;
        item.to = Some(entry.version);
        if latest > entry.version {
            item.to = Some(latest);
            if mode == UpdateMode::Check {
                item.status = "update_available";
                return item;
            }
            let request = InstallRequest {
                reference: ExtensionRef {
                    name: name.clone(),
                    version: Some(latest),
                },
                registry,
                allow_unverified: false,
                mode: InstallMode::Upgrade {
                    from: entry.version,
                },
            };
            match self.install(request).await {
                Ok(InstallOutcome::Done(_)) => item.status = "updated",
                Ok(InstallOutcome::UpToDate) => item.status = "up_to_date",
                Ok(InstallOutcome::Skipped(reason)) => {
                    item.status = "skipped";
                    item.reason = Some(reason);
                }
                Err(error) => {
                    let mut failed = BulkItem::failed(name, from, error);
                    failed.to = Some(latest);
                    return failed;
                }
            }
            return item;
        }
        if mode == UpdateMode::Check {
            return item;
        }
        match self.reconcile_if_drifted(name, entry).await {
            Ok((status, reason)) => {
                item.status = status;
                item.reason = reason;
            }
            Err(error) => return BulkItem::failed(name, from, error),
        }
        item
    }

    /// §9.7 for one entry: `up_to_date` when catalog and lockfile agree; otherwise the
    /// files must match `filesDigest` (else `drift`) and a reconcile commit repairs the
    /// catalog from disk (`reconciled`).
    ///
    /// `entry` was read earlier without the lock, so a disagreement may be another
    /// writer's doing: an entry that was removed or replaced since is `skipped`
    /// (§9.7 step 2), never drift; files that do not match are re-checked under the
    /// lock, where no writer is between its swap and its lockfile write, before they
    /// are called drift; and an entry that agrees after the commit is `reconciled` only
    /// if this command's commit changed its rows (`up_to_date` when another writer
    /// finished the job).
    pub(crate) async fn reconcile_if_drifted(
        &self,
        name: &ExtensionName,
        entry: &LockEntry,
    ) -> Result<(&'static str, Option<&'static str>), LifecycleError> {
        let current = live(self.ad.repo.load_by_name(name).await?);
        if agrees(&self.ad, name, &current, entry) {
            return Ok(("up_to_date", None));
        }
        if let Some(reason) = self.entry_moved(name, entry).await? {
            return Ok(("skipped", Some(reason)));
        }
        if self.check_files(name, entry).is_err() {
            let held = self.lock(None).await?;
            let confirmed = match self.entry_moved(name, entry).await {
                Ok(None) => self.check_files(name, entry).map(|()| None),
                other => other,
            };
            self.unlock(held);
            if let Some(reason) = confirmed? {
                return Ok(("skipped", Some(reason)));
            }
        }
        let report = self.reconcile_all().await?;
        let after = live(self.ad.repo.load_by_name(name).await?);
        if let Some(reason) = self.entry_moved(name, entry).await? {
            return Ok(("skipped", Some(reason)));
        }
        if agrees(&self.ad, name, &after, entry) {
            return Ok(match changed_names(&report).contains(name) {
                true => ("reconciled", None),
                false => ("up_to_date", None),
            });
        }
        Err(Failure::new(
            "drift",
            format!(
                "{name}@{} could not be reconciled with the lockfile",
                entry.version
            ),
        )
        .hint("run 'fen doctor extensions' to see why")
        .into())
    }

    /// Why `entry`, read earlier, is no longer the lockfile's entry for `name`:
    /// `removed concurrently`, `changed concurrently`, or `None` when it still is.
    async fn entry_moved(
        &self,
        name: &ExtensionName,
        entry: &LockEntry,
    ) -> Result<Option<&'static str>, LifecycleError> {
        let document = self.ad.lockfile_store.read().await?;
        Ok(match document.extensions.get(name) {
            None => Some("removed concurrently"),
            Some(now) if now != entry => Some("changed concurrently"),
            Some(_) => None,
        })
    }

    /// Every `files[]` path exists and `filesDigest` matches, else `drift`.
    pub(crate) fn check_files(
        &self,
        name: &ExtensionName,
        entry: &LockEntry,
    ) -> Result<(), LifecycleError> {
        let state = super::files_state(&self.ad, entry)?;
        if state.intact() {
            return Ok(());
        }
        let missing = state.missing;
        let modified = if state.modified {
            "contents modified"
        } else {
            "0 modified"
        };
        Err(Failure::new(
            "drift",
            format!(
                "files of {name}@{} differ from the lockfile ({missing} missing, {modified})",
                entry.version
            ),
        )
        .hint("run 'fen extension install' to restore them")
        .into())
    }

    async fn reconcile_all(&self) -> Result<ReconcileReport, LifecycleError> {
        let report = reconcile(
            &self.ad,
            ReconcileOptions {
                mode: ReconcileMode::Apply,
                guardrail: Guardrail::Override,
                rebuild: Rebuild::Stale,
            },
        )
        .await?;
        for warning in &report.warnings {
            self.warn(warning.clone());
        }
        Ok(report)
    }
}

/// The names whose rows a reconcile commit changed (nothing when it saved nothing).
fn changed_names(report: &ReconcileReport) -> BTreeSet<ExtensionName> {
    match report.applied {
        true => report
            .transitions
            .iter()
            .map(|t| t.extension.name.clone())
            .collect(),
        false => BTreeSet::new(),
    }
}

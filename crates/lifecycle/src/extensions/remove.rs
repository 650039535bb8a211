//! RemoveExtensionService (spec 20 §10): catalog first, lockfile second, files last,
//! all under the lifecycle lock. The journal is the commit point of a removal: once
//! it exists, recovery always completes the removal (§13.2).

use fen_domain::journal::{Journal, JournalOp, JournalTarget};
use fen_domain::{ExtensionName, ExtensionOrigin, ExtensionVersion};
use serde_json::{json, Value};

use super::{live, Failure, Session};
use crate::engine::LifecycleError;

/// What `rm` did (spec 20 §10.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoveReport {
    /// The name.
    pub name: ExtensionName,
    /// The version removed, when one could be read.
    pub version: Option<ExtensionVersion>,
    /// `files[]` entries that existed.
    pub files_deleted: usize,
    /// `files[]` entries already gone.
    pub files_missing: usize,
    /// Empty parents removed.
    pub dirs_pruned: usize,
    /// Other installed extensions whose manifest depends on this one.
    pub dependents: Vec<String>,
}

impl RemoveReport {
    /// The JSON of spec 20 §10.3.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name.as_str(),
            "version": self.version.map(|v| v.to_string()),
            "filesDeleted": self.files_deleted,
            "filesMissing": self.files_missing,
            "dirsPruned": self.dirs_pruned,
            "dependents": self.dependents,
        })
    }
}

impl Session {
    /// Removes one extension, whatever partial state it is in.
    pub async fn remove(&self, name: &ExtensionName) -> Result<RemoveReport, LifecycleError> {
        let held = self.lock(None).await?;
        let result = self.remove_locked(name).await;
        self.unlock(held);
        if result.is_ok() {
            self.ad.repo.checkpoint().await;
        }
        result
    }

    async fn remove_locked(&self, name: &ExtensionName) -> Result<RemoveReport, LifecycleError> {
        let ad = &self.ad;
        let key = name.directory_key();
        let document = ad.lockfile_store.read().await?;
        let prior = document.extensions.get(name).cloned();
        let current: Vec<_> = live(ad.repo.load_by_name(name).await?)
            .into_iter()
            .filter(|e| e.origin() == ExtensionOrigin::Pulled)
            .collect();
        let roots = ad.trees.roots(&key);
        if prior.is_none() && current.is_empty() && !roots.any() {
            return Err(Failure::new(
                "not_installed",
                format!("extension {name} is not installed"),
            )
            .into());
        }
        let version = prior
            .as_ref()
            .map(|p| p.version)
            .or_else(|| current.first().map(|e| e.id().version));

        // Dependents: warn, never block.
        let mut dependents = Vec::new();
        for other in document.extensions.keys().filter(|n| *n != name) {
            if let Some(manifest) = ad.trees.installed_manifest(&other.directory_key()) {
                if manifest.dependencies.iter().any(|d| &d.name == name) {
                    dependents.push(other.as_str().to_owned());
                }
            }
        }
        if !dependents.is_empty() {
            self.warn(format!(
                "{name} is required by {}; they may stop working",
                dependents.join(", ")
            ));
        }
        // Only counted (spec 20 §10.1): existence, not contents, and one directory
        // listing per parent through the scanner's cache.
        let (files_deleted, files_missing) = match &prior {
            Some(p) => {
                let scanner = ad.scanners.new_pass();
                let mut present = 0;
                for file in &p.files {
                    if scanner.exists(&ad.layout.root.join(file)).await {
                        present += 1;
                    }
                }
                (present, p.files.len() - present)
            }
            None => (0, 0),
        };
        let guards_fresh = self.guards_fresh(&document).await?;

        let journal = Journal {
            op: JournalOp::Rm,
            pid: std::process::id(),
            host: ad.clock.host(),
            started_at: ad.clock.now_rfc3339_millis(),
            targets: vec![JournalTarget {
                name: name.clone(),
                key: key.clone(),
                new_version: None,
                new_checksum: None,
                sources: Vec::new(),
                prior: prior.clone(),
            }],
        };
        let txn = ad.trees.begin_txn(&journal)?;
        self.fault("rm:after-journal")?;

        // Catalog first.
        if !current.is_empty() {
            let tombstones: Vec<_> = current.iter().map(|e| e.tombstone_all()).collect();
            if let Err(error) = ad.repo.save_all(&tombstones).await {
                let _ = ad.trees.delete_txn(&txn);
                let busy = matches!(error, fen_domain::ports::RepoError::Busy);
                return Err(Failure::new(
                    if busy { "catalog_busy" } else { "catalog_error" },
                    format!("removing {name} failed while writing the catalog ({error}); nothing was changed"),
                )
                .hint(format!("retry 'fen extension rm {name}'"))
                .into());
            }
        }
        self.fault("rm:after-catalog")?;

        // Lockfile second.
        let mut next = document.clone();
        if next.extensions.remove(name).is_some() {
            if let Err(error) = ad.lockfile_store.write(&next).await {
                return Err(partially(name, &error.to_string()).into());
            }
        }
        self.fault("rm:after-lockfile")?;

        // Files last: whole roots into the txn, then the txn goes.
        if let Err(error) = ad.trees.move_out(&txn, 0, &key) {
            return Err(partially(name, &error.0).into());
        }
        if let Err(error) = ad.trees.delete_txn(&txn) {
            return Err(partially(name, &error.0).into());
        }
        let dirs_pruned = ad.trees.prune_parents(&key);
        if guards_fresh {
            self.mark_populated(&next).await?;
        }
        Ok(RemoveReport {
            name: name.clone(),
            version,
            files_deleted,
            files_missing,
            dirs_pruned,
            dependents,
        })
    }
}

fn partially(name: &ExtensionName, cause: &str) -> Failure {
    Failure::new(
        "partially_applied",
        format!("removal of {name} partially applied: catalog rows were removed but the lockfile update failed ({cause})"),
    )
    .hint(format!("retry 'fen extension rm {name}'"))
    .detail("cause", json!("io"))
}

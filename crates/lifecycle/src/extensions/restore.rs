//! RestoreExtensionsService (spec 20 §12): `fen extension install [--refresh]` brings
//! disk and catalog in line with the lockfile, like `npm ci`. It never removes
//! entries and never changes versions.

use fen_domain::ports::{LockEntry, RegistryUrl};
use fen_domain::{ExtensionName, ExtensionRef};

use super::install::{InstallMode, InstallOutcome, InstallRequest};
use super::upgrade::{registry_for, BulkItem};
use super::Session;
use crate::engine::LifecycleError;

/// Which entries are re-downloaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Only entries whose files differ.
    Changed,
    /// Every entry (`--refresh`).
    All,
}

impl Session {
    /// Runs `install`.
    pub async fn restore(
        &self,
        refresh: Refresh,
        registry: Option<&RegistryUrl>,
    ) -> Result<Vec<BulkItem>, LifecycleError> {
        let held = self.lock(None).await?;
        self.unlock(held);
        let document = self.ad.lockfile_store.read().await?;
        let mut items = Vec::new();
        for (name, entry) in &document.extensions {
            self.check_interrupted()?;
            items.push(self.restore_one(name, entry, refresh, registry).await);
        }
        Ok(items)
    }

    async fn restore_one(
        &self,
        name: &ExtensionName,
        entry: &LockEntry,
        refresh: Refresh,
        configured: Option<&RegistryUrl>,
    ) -> BulkItem {
        let mut item = BulkItem {
            name: name.clone(),
            status: "up_to_date",
            from: Some(entry.version),
            to: Some(entry.version),
            reason: None,
            error: None,
        };
        if refresh == Refresh::Changed && self.files_in_place(name, entry) {
            match self.reconcile_if_drifted(name, entry).await {
                Ok((status, reason)) => {
                    item.status = status;
                    item.reason = reason;
                }
                Err(error) => {
                    item.status = "failed";
                    item.error = Some(error);
                }
            }
            return item;
        }
        let registry = match registry_for(configured, entry) {
            Ok(url) => url,
            Err(error) => {
                item.status = "failed";
                item.error = Some(error);
                return item;
            }
        };
        let request = InstallRequest {
            reference: ExtensionRef {
                name: name.clone(),
                version: Some(entry.version),
            },
            registry,
            allow_unverified: entry.checksum.is_some(),
            mode: InstallMode::Restore {
                pinned: entry.clone(),
            },
        };
        match self.install(request).await {
            Ok(InstallOutcome::Done(_)) => item.status = "restored",
            Ok(InstallOutcome::UpToDate) => {}
            Ok(InstallOutcome::Skipped(reason)) => {
                item.status = "skipped";
                item.reason = Some(reason);
            }
            Err(error) => {
                item.status = "failed";
                item.error = Some(error);
            }
        }
        item
    }

    /// Every `files[]` path is a regular file, `filesDigest` matches, and the extension
    /// root holds nothing unlisted.
    fn files_in_place(&self, name: &ExtensionName, entry: &LockEntry) -> bool {
        if self.check_files(name, entry).is_err() {
            return false;
        }
        match self.ad.trees.list_root_files(&name.directory_key()) {
            Ok((files, odd)) => !odd && files == entry.files,
            Err(_) => false,
        }
    }
}

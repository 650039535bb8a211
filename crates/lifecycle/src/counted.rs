//! `Counted`: a decorator over the catalog ports that counts round trips for
//! `--stats` (`catalogStatements`): one per repository or type-index call; a
//! `save_all` counts once, being one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use fen_domain::ports::{
    ExtensionRepository, FileStatsUpdate, GuardInputs, GuardVerdict, InvalidateOutcome, Loaded,
    RepoError, SaveReport, TypeEntry, TypeIndex,
};
use fen_domain::{CanonicalPath, Extension, ExtensionName, Kind, TypeName};

use crate::stats::Stats;

/// Wraps a catalog adapter that implements both ports.
pub struct Counted<R> {
    inner: Arc<R>,
    stats: Arc<Stats>,
}

impl<R> Counted<R> {
    /// Counts the calls made through `inner`.
    pub fn new(inner: Arc<R>, stats: Arc<Stats>) -> Counted<R> {
        Counted { inner, stats }
    }
}

#[async_trait]
impl<R: ExtensionRepository + 'static> ExtensionRepository for Counted<R> {
    async fn load_all(&self) -> Result<Loaded, RepoError> {
        self.stats.catalog_statement();
        self.inner.load_all().await
    }
    async fn load_outline(&self) -> Result<Loaded, RepoError> {
        self.stats.catalog_statement();
        self.inner.load_outline().await
    }
    async fn load_warm_outline(&self) -> Result<Loaded, RepoError> {
        self.stats.catalog_statement();
        self.inner.load_warm_outline().await
    }
    async fn guards_and_outline(
        &self,
        expected: &GuardInputs,
    ) -> Result<(GuardVerdict, Option<Loaded>), RepoError> {
        self.stats.catalog_statement();
        self.inner.guards_and_outline(expected).await
    }
    async fn load_by_name(&self, name: &ExtensionName) -> Result<Vec<Extension>, RepoError> {
        self.stats.catalog_statement();
        self.inner.load_by_name(name).await
    }
    async fn save_all(&self, exts: &[Extension]) -> Result<SaveReport, RepoError> {
        self.stats.catalog_statement();
        self.inner.save_all(exts).await
    }
    async fn invalidation_guards(&self, expected: &GuardInputs) -> Result<GuardVerdict, RepoError> {
        self.stats.catalog_statement();
        self.inner.invalidation_guards(expected).await
    }
    async fn mark_populated(&self, inputs: &GuardInputs) -> Result<(), RepoError> {
        self.stats.catalog_statement();
        self.inner.mark_populated(inputs).await
    }
    async fn record_file_stats(&self, stats: &[FileStatsUpdate]) -> Result<usize, RepoError> {
        self.stats.catalog_statement();
        self.inner.record_file_stats(stats).await
    }
    async fn prune_retired_rows(&self, paths: &[CanonicalPath]) -> Result<usize, RepoError> {
        self.stats.catalog_statement();
        self.inner.prune_retired_rows(paths).await
    }
    async fn checkpoint(&self) {
        self.stats.catalog_statement();
        self.inner.checkpoint().await
    }
    async fn invalidate_all(&self) -> InvalidateOutcome {
        self.stats.catalog_statement();
        self.inner.invalidate_all().await
    }
}

#[async_trait]
impl<R: TypeIndex + 'static> TypeIndex for Counted<R> {
    async fn find_type(&self, kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        self.stats.catalog_statement();
        self.inner.find_type(kind, ty).await
    }
    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        self.stats.catalog_statement();
        self.inner.list_types(kind).await
    }
    async fn extensions_for(&self, base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        self.stats.catalog_statement();
        self.inner.extensions_for(base).await
    }
    async fn entries_at(&self, paths: &[CanonicalPath]) -> Result<Vec<TypeEntry>, RepoError> {
        self.stats.catalog_statement();
        self.inner.entries_at(paths).await
    }
}

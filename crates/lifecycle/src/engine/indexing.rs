//! Indexing the stale entry points of a plan into scratch, without the lock.

use super::*;

/// Indexes every stale entry of a plan into `scratch` (no lock held).
pub(super) async fn index_stale(
    ad: &Adapters,
    plan: &Plan<'_>,
    rebuild: Rebuild,
    scratch: &std::path::Path,
) -> Prepared {
    use futures::stream::{self, StreamExt};

    let reuse = match rebuild {
        Rebuild::All => Reuse::Never,
        Rebuild::Stale => Reuse::IfUsable,
    };
    let mut seen = BTreeSet::new();
    // Owned items: a stream of references makes the future's `Send` proof fail
    // (higher-ranked closure lifetimes), and the loader boxes this future as `Send`.
    let items: Vec<StaleItem> = plan
        .stale
        .iter()
        .filter(|item| seen.insert((item.entry.location.canonical().clone(), item.fingerprint)))
        .cloned()
        .collect();
    ad.stats.plan_indexing(items.len());
    // A few entries in flight at once, so bundling (blocking pool) overlaps with
    // evaluation (the sandbox's worker threads). Unordered: results are keyed, and a
    // slow entry must not hold back the start of the next ones.
    stream::iter(items)
        .map(|item| index_item(ad, item, scratch, reuse))
        .buffer_unordered(4)
        .collect()
        .await
}

/// Indexes one stale entry.
pub(super) async fn index_item(
    ad: &Adapters,
    item: StaleItem,
    scratch: &std::path::Path,
    reuse: Reuse,
) -> (
    (CanonicalPath, SourceFingerprint),
    Result<IndexOutcome, IndexError>,
) {
    let key = (item.entry.location.canonical().clone(), item.fingerprint);
    let result = match &item.entry.unreadable {
        Some(reason) => Err(IndexError::EntryUnreadable(reason.clone())),
        None => {
            let entry = EntryPoint {
                location: item.entry.location.clone(),
                root: item.entry.root.clone(),
                read_path: item.entry.native_path.clone(),
                scratch_dir: scratch.to_path_buf(),
            };
            let result = ad.indexer.index_one(&entry, &item.fingerprint, reuse).await;
            count(ad, &result);
            result
        }
    };
    ad.stats.indexed_one();
    (key, result)
}

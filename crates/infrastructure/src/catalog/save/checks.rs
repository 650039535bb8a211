//! Preconditions P1–P5 of `save_all` (spec 10 §5.4), checked before any SQL. P0 (the
//! lifecycle lock) is checked by the repository before it calls these.

use std::collections::{BTreeMap, BTreeSet};

use fen_domain::ports::RepoError;
use fen_domain::{CanonicalPath, Extension, ExtensionId, RowState};

use crate::catalog::placement::Placement;
use crate::catalog::rows::has_row;

/// Checks P1–P5 for a batch; the first violation is returned as `InvalidBatch`.
pub(crate) fn check_batch(batch: &[Extension], placement: &Placement) -> Result<(), RepoError> {
    let invalid = |reason: String| Err(RepoError::InvalidBatch(reason));
    let mut ids: BTreeSet<&ExtensionId> = BTreeSet::new();
    let mut live: BTreeMap<&CanonicalPath, &ExtensionId> = BTreeMap::new();
    for ext in batch {
        // P3: one aggregate per id.
        if !ids.insert(ext.id()) {
            return invalid(format!("{} appears twice in the batch", ext.id()));
        }
        // P5: I1 (and the other aggregate invariants) hold.
        if let Err(violation) = ext.check_invariants() {
            return invalid(format!("{}: {violation}", ext.id()));
        }
        for source in ext.sources() {
            let path = source.path();
            // P1: Bundled lives only inside one indexing step.
            if let RowState::Bundled { .. } = source.state() {
                return invalid(format!(
                    "source {path} of {} is Bundled; that state is never persisted",
                    ext.id()
                ));
            }
            // P2: a bundle always belongs to the source's own fingerprint.
            if let Some(bundle) = source.state().bundle() {
                if source.fingerprint() != Some(&bundle.fingerprint) {
                    return invalid(format!(
                        "source {path} of {}: bundle fingerprint differs from the source fingerprint",
                        ext.id()
                    ));
                }
            }
            if source.state().is_tombstoned() {
                continue;
            }
            // P4: a live path belongs to one aggregate of the batch.
            if let Some(other) = live.insert(path, ext.id()) {
                return invalid(format!(
                    "source {path} is live in both {other} and {}",
                    ext.id()
                ));
            }
        }
        check_placement(ext, placement)?;
    }
    Ok(())
}

/// Part of P5: every row the aggregate would write can be loaded back into this same
/// aggregate (reachable, with an origin that follows from its path, under the root its
/// id implies). A row that failed this would be skipped by `load_all` and pruned by the
/// next save, so writing it would silently lose it.
fn check_placement(ext: &Extension, placement: &Placement) -> Result<(), RepoError> {
    let identity = placement.identity(ext.id().name.as_str(), &ext.id().version.to_string());
    for source in ext.sources().filter(|source| has_row(source)) {
        let path = source.path();
        let (origin, extension_origin, root) =
            placement.fit(path.as_str(), &identity).map_err(|reason| {
                RepoError::InvalidBatch(format!(
                    "source {path} of {} would load back as {}",
                    ext.id(),
                    reason.as_str()
                ))
            })?;
        if origin != source.origin() || extension_origin != ext.origin() || root != ext.root() {
            return Err(RepoError::InvalidBatch(format!(
                "source {path} of {} does not belong to an aggregate rooted at {} ({} origin)",
                ext.id(),
                ext.root(),
                source.origin().as_str()
            )));
        }
    }
    Ok(())
}

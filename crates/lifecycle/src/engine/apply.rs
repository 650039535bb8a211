//! Applying prepared results that still match the disk, and deriving what changed:
//! the aggregates to save, the bundles referenced and the transitions reported.

use super::*;

/// Applies prepared results whose (path, fingerprint) still match; returns the staged
/// bundles of the applied results.
pub(super) fn apply_results(
    plan: &mut Plan,
    prepared: &Prepared,
    deferred: &mut Vec<CanonicalPath>,
) -> Result<Vec<StagedBundle>, DomainError> {
    let mut staged = Vec::new();
    // One batch per aggregate: one copy and one I2 pass, whatever the number of sources.
    let mut batches: BTreeMap<ExtensionId, Vec<Change>> = BTreeMap::new();
    for item in &plan.stale {
        let path = item.entry.location.canonical().clone();
        let Some(result) = prepared.get(&(path.clone(), item.fingerprint)) else {
            deferred.push(path);
            continue;
        };
        let Some(ext) = plan.working.get(&item.ext) else {
            continue;
        };
        let existing = ext.source(&path);
        let kind = existing
            .map(|s| s.kind())
            .unwrap_or(item.entry.root.loader_kind.kinds()[0]);
        let mut obs = Observation {
            location: item.entry.location.clone(),
            kind,
            origin: item.entry.root.origin,
            fingerprint: item.fingerprint,
            mtime: None,
        };
        let change = match result {
            Ok(IndexOutcome::Indexed {
                kind,
                type_name,
                bundle,
                meta,
                staged: stage,
                ..
            }) => {
                obs.kind = *kind;
                if let Some(stage) = stage {
                    staged.push(stage.clone());
                }
                Change::Indexed {
                    obs,
                    type_name: type_name.clone(),
                    bundle: bundle.clone(),
                    meta: meta.clone(),
                }
            }
            Err(IndexError::Validation {
                bundle,
                staged: stage,
                message,
            }) => {
                if let Some(stage) = stage {
                    staged.push(stage.clone());
                }
                plan.reasons
                    .insert(path.clone(), format!("validation failed: {message}"));
                Change::ValidationFailed {
                    obs,
                    bundle: bundle.clone(),
                    error: message.clone(),
                }
            }
            Err(IndexError::Build(message)) => {
                plan.reasons
                    .insert(path.clone(), format!("bundle build failed: {message}"));
                Change::BuildFailed {
                    obs,
                    error: message.clone(),
                }
            }
            Err(IndexError::EntryUnreadable(message)) => Change::EntryUnreadable {
                obs,
                error: message.clone(),
            },
            Err(IndexError::NotAnEntryPoint) => {
                if existing.is_none() {
                    continue;
                }
                plan.reasons
                    .insert(path.clone(), "source file deleted from disk".to_owned());
                Change::Retire {
                    path: path.clone(),
                    reason: RetireReason::SourceDeleted,
                }
            }
            Err(other) => {
                plan.reasons
                    .insert(path.clone(), format!("bundle build failed: {other}"));
                Change::BuildFailed {
                    obs,
                    error: other.to_string(),
                }
            }
        };
        batches.entry(item.ext.clone()).or_default().push(change);
    }
    for (id, changes) in batches {
        if let Some(ext) = plan.working.get(&id) {
            let next = ext.apply(changes)?;
            plan.working.insert(id, Cow::Owned(next));
        }
    }
    Ok(staged)
}

/// Aggregates that differ from their loaded form (new ones count when non-empty).
pub(super) fn changed(plan: &Plan<'_>) -> Vec<Extension> {
    plan.working
        .iter()
        .filter(|(id, ext)| match plan.originals.get(*id) {
            Some(original) => !unchanged(original, ext),
            None => ext.sources().len() > 0,
        })
        .map(|(_, ext)| Extension::clone(ext))
        .collect()
}

/// A working aggregate still equal to its loaded form (the same value when nothing
/// copied it).
pub(super) fn unchanged(original: &Extension, working: &Extension) -> bool {
    std::ptr::eq(original, working) || original == working
}

pub(super) fn bundle_paths<'a>(
    exts: impl Iterator<Item = &'a Extension>,
) -> BTreeSet<CanonicalPath> {
    exts.flat_map(|e| e.sources())
        .filter_map(|s| s.state().bundle().map(|b| b.path.clone()))
        .collect()
}

pub(super) fn transitions_of(plan: &Plan<'_>) -> Vec<Transition> {
    let mut out = Vec::new();
    let ids: BTreeSet<&ExtensionId> = plan.originals.keys().chain(plan.working.keys()).collect();
    for id in ids {
        let original = plan.originals.get(id).copied();
        let Some(after_ext) = plan.working.get(id) else {
            continue;
        };
        if original.is_some_and(|o| std::ptr::eq(o, &**after_ext)) {
            continue; // the loaded value itself: no transition
        }
        let before = original.map(Extension::tags).unwrap_or_default();
        let after = after_ext.tags();
        for (path, to) in &after {
            let from = before.get(path).copied();
            if from == Some(*to) {
                continue;
            }
            if from.is_none() && *to == RowStateTag::Tombstoned && !is_renamed(after_ext, path) {
                continue;
            }
            let reason = plan
                .reasons
                .get(path)
                .cloned()
                .unwrap_or_else(|| match (from, to) {
                    (_, RowStateTag::Tombstoned) if is_renamed(after_ext, path) => {
                        let winner = renamed_winner(after_ext, path)
                            .map(|w| w.to_string())
                            .unwrap_or_else(|| "none".into());
                        format!("duplicate type within extension; winner {winner}")
                    }
                    (None, _) => "new source discovered on disk".to_owned(),
                    (Some(from), _) => format!("re-indexed from {from}"),
                });
            out.push(Transition {
                source: path.clone(),
                extension: id.clone(),
                from,
                to: *to,
                reason,
            });
        }
    }
    out
}

pub(super) fn is_renamed(ext: &Extension, path: &CanonicalPath) -> bool {
    matches!(
        ext.source(path).map(Source::state),
        Some(RowState::Tombstoned {
            reason: TombstoneReason::Renamed { .. }
        })
    )
}

pub(super) fn renamed_winner<'a>(
    ext: &'a Extension,
    path: &CanonicalPath,
) -> Option<&'a CanonicalPath> {
    match ext.source(path).map(Source::state) {
        Some(RowState::Tombstoned {
            reason: TombstoneReason::Renamed { winner },
        }) => winner.as_ref(),
        _ => None,
    }
}

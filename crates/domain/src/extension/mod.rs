//! The `Extension` aggregate (spec 10 §3.3–§3.7).
//!
//! An Extension owns its Sources and enforces their invariants:
//!
//! - **I1 ownership**: every source lies under the aggregate's root, and is `Pulled`
//!   iff the aggregate is pulled. Checked by the constructor and every method that
//!   adds a source.
//! - **I2 slot uniqueness**: no two sources claim one `(kind, type)` slot. This is a
//!   transform, never an error: the claimant with the smallest
//!   `(origin rank, canonical path)` wins, every other becomes
//!   `Tombstoned(Renamed { winner })`.
//! - **I3**: a `ValidationFailed` source keeps its bundle and fingerprint, and they
//!   agree.
//! - **I4**: tombstones claim nothing and are never visible.
//!
//! Every method takes `&self` and returns a new aggregate; the receiver never changes.
//! State changes are not returned: services diff [`Extension::tags`] before and after.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::DomainError;
use crate::id::ExtensionId;
use crate::kind::Kind;
use crate::location::BundleLocation;
use crate::name::ExtensionName;
use crate::path::CanonicalPath;
use crate::row_state::{
    truncate_error, RetireReason, RowState, RowStateTag, TombstoneReason, TypeMeta,
};
use crate::source::{ExtensionOrigin, Observation, Origin, Source};
use crate::type_name::TypeName;
use crate::version::ExtensionVersion;

/// One extension: the repo's local aggregate or one pulled `name@version`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    id: ExtensionId,
    origin: ExtensionOrigin,
    root: CanonicalPath,
    sources: BTreeMap<CanonicalPath, Source>,
}

/// One transition of a batch applied by [`Extension::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `observe_fresh_source` then `record_indexed`.
    Indexed {
        /// The observation.
        obs: Observation,
        /// The declared type.
        type_name: TypeName,
        /// The new bundle.
        bundle: BundleLocation,
        /// What listing needs.
        meta: TypeMeta,
    },
    /// `record_validation_failed`.
    ValidationFailed {
        /// The observation.
        obs: Observation,
        /// The evaluated bundle.
        bundle: BundleLocation,
        /// Why.
        error: String,
    },
    /// `record_bundle_build_failed`.
    BuildFailed {
        /// The observation.
        obs: Observation,
        /// Why.
        error: String,
    },
    /// `record_entry_point_unreadable`.
    EntryUnreadable {
        /// The observation.
        obs: Observation,
        /// Why.
        error: String,
    },
    /// `mark_source_missing`.
    SourceMissing {
        /// The source.
        path: CanonicalPath,
        /// Its bundle, if the file is still on disk.
        bundle_on_disk: Option<BundleLocation>,
    },
    /// `record_source_missing`.
    Retire {
        /// The source.
        path: CanonicalPath,
        /// Why.
        reason: RetireReason,
    },
}

/// A broken invariant found by [`Extension::check_invariants`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant {invariant} broken at {path}: {detail}")]
pub struct InvariantViolation {
    /// `I1`..`I4`.
    pub invariant: &'static str,
    /// The offending source.
    pub path: CanonicalPath,
    /// What is wrong.
    pub detail: String,
}

type Slot = (Kind, TypeName);

impl Extension {
    /// Builds an aggregate from sources (for example rows loaded from the catalog).
    /// Checks I1 and duplicate paths, then applies the I2 transform.
    pub fn new(
        id: ExtensionId,
        origin: ExtensionOrigin,
        root: CanonicalPath,
        sources: Vec<Source>,
    ) -> Result<Extension, DomainError> {
        let mut ext = Extension {
            id,
            origin,
            root,
            sources: BTreeMap::new(),
        };
        for source in sources {
            ext.check_membership(
                source.location().extension_root(),
                source.path(),
                source.origin(),
            )?;
            let path = source.path().clone();
            if ext.sources.insert(path.clone(), source).is_some() {
                return Err(DomainError::DuplicateLocation { path });
            }
        }
        let before = ext.slot_map();
        ext.settle(&before);
        Ok(ext)
    }

    /// The empty local aggregate `@local/<slug>@0.0.0` of a repo.
    pub fn local(repo_root: &CanonicalPath) -> Extension {
        Extension {
            id: ExtensionId::new(ExtensionName::local(repo_root), ExtensionVersion::Local),
            origin: ExtensionOrigin::Local,
            root: repo_root.clone(),
            sources: BTreeMap::new(),
        }
    }

    /// The identity.
    pub fn id(&self) -> &ExtensionId {
        &self.id
    }
    /// Local or pulled.
    pub fn origin(&self) -> ExtensionOrigin {
        self.origin
    }
    /// The repo root (local) or `.fen/pulled-extensions/<key>` (pulled).
    pub fn root(&self) -> &CanonicalPath {
        &self.root
    }
    /// Every source, ordered by canonical path.
    pub fn sources(&self) -> impl ExactSizeIterator<Item = &Source> {
        self.sources.values()
    }
    /// The source at `path`.
    pub fn source(&self, path: &CanonicalPath) -> Option<&Source> {
        self.sources.get(path)
    }
    /// Sources visible to type resolution.
    pub fn visible_sources(&self) -> impl Iterator<Item = &Source> {
        self.sources.values().filter(|s| s.is_visible())
    }
    /// Every claimed slot with its claimant, ordered by path.
    pub fn claims(&self) -> Vec<(Kind, &TypeName, &CanonicalPath)> {
        self.sources
            .values()
            .filter_map(|s| s.claim().map(|(kind, ty)| (kind, ty, s.path())))
            .collect()
    }
    /// The tag of every source.
    pub fn tags(&self) -> BTreeMap<CanonicalPath, RowStateTag> {
        self.sources
            .iter()
            .map(|(path, s)| (path.clone(), s.state().tag()))
            .collect()
    }

    /// A freshly built, not yet validated source replaces whatever was at its path.
    pub fn observe_fresh_source(
        &self,
        obs: &Observation,
        type_name: TypeName,
        bundle: BundleLocation,
    ) -> Result<Extension, DomainError> {
        self.check_observation(obs)?;
        if bundle.fingerprint != obs.fingerprint {
            return Err(DomainError::FingerprintMismatch {
                path: obs.location.canonical().clone(),
            });
        }
        Ok(self.replace(Source::observed(
            obs,
            RowState::Bundled { type_name, bundle },
        )))
    }

    /// A `Bundled` source passed validation.
    pub fn record_indexed(
        &self,
        path: &CanonicalPath,
        meta: TypeMeta,
    ) -> Result<Extension, DomainError> {
        let source = self.existing(path)?;
        let RowState::Bundled { type_name, bundle } = source.state() else {
            return Err(DomainError::NotBundled {
                path: path.clone(),
                state: source.state().tag(),
            });
        };
        let state = RowState::Indexed {
            type_name: type_name.clone(),
            bundle: bundle.clone(),
            meta,
        };
        Ok(self.replace(source.with_state(state)))
    }

    /// The bundle built, but its export was rejected. Keeps bundle and fingerprint (I3).
    pub fn record_validation_failed(
        &self,
        obs: &Observation,
        bundle: BundleLocation,
        error: impl Into<String>,
    ) -> Result<Extension, DomainError> {
        self.check_observation(obs)?;
        if bundle.fingerprint != obs.fingerprint {
            return Err(DomainError::FingerprintMismatch {
                path: obs.location.canonical().clone(),
            });
        }
        let state = RowState::ValidationFailed {
            bundle,
            last_error: truncate_error(error),
        };
        Ok(self.replace(Source::observed(obs, state)))
    }

    /// The build failed.
    pub fn record_bundle_build_failed(
        &self,
        obs: &Observation,
        error: impl Into<String>,
    ) -> Result<Extension, DomainError> {
        self.check_observation(obs)?;
        let state = RowState::BundleBuildFailed {
            last_error: truncate_error(error),
        };
        Ok(self.replace(Source::observed(obs, state)))
    }

    /// The entry point cannot be read.
    pub fn record_entry_point_unreadable(
        &self,
        obs: &Observation,
        error: impl Into<String>,
    ) -> Result<Extension, DomainError> {
        self.check_observation(obs)?;
        let state = RowState::EntryPointUnreadable {
            last_error: truncate_error(error),
        };
        Ok(self.replace(Source::observed(obs, state)))
    }

    /// The source file is gone. `bundle_on_disk` is the source's last bundle if that
    /// file still exists (the caller checks; the aggregate never touches the disk).
    pub fn mark_source_missing(
        &self,
        path: &CanonicalPath,
        bundle_on_disk: Option<BundleLocation>,
    ) -> Result<Extension, DomainError> {
        let source = self.existing(path)?;
        let next = match bundle_on_disk {
            Some(bundle) => {
                let fingerprint = bundle.fingerprint;
                Source::restore(
                    source.location().clone(),
                    source.kind(),
                    source.origin(),
                    Some(fingerprint),
                    RowState::OrphanedBundleOnly { bundle },
                    source.mtime().map(str::to_owned),
                    None,
                )
            }
            None => source.with_state(RowState::Tombstoned {
                reason: TombstoneReason::SourceDeleted,
            }),
        };
        Ok(self.replace(next))
    }

    /// Retires one source whatever its state.
    pub fn record_source_missing(
        &self,
        path: &CanonicalPath,
        reason: RetireReason,
    ) -> Result<Extension, DomainError> {
        let source = self.existing(path)?;
        let reason = match reason {
            RetireReason::SourceDeleted => TombstoneReason::SourceDeleted,
            RetireReason::ExtensionRemoved => TombstoneReason::ExtensionRemoved,
        };
        Ok(self.replace(source.with_state(RowState::Tombstoned { reason })))
    }

    /// Applies a batch of transitions with one copy of the aggregate and one I2 pass.
    ///
    /// For changes to distinct paths, the states equal those of applying the changes
    /// one by one with the methods above (the I2 transform is a pure function of the
    /// final claims); winner pointers are kept up against the state before the batch as
    /// a whole. Services that index many sources use it so that a pass costs O(n), not
    /// O(n²).
    pub fn apply(
        &self,
        changes: impl IntoIterator<Item = Change>,
    ) -> Result<Extension, DomainError> {
        let before = self.slot_map();
        let mut next = self.clone();
        for change in changes {
            let source = match change {
                Change::Indexed {
                    obs,
                    type_name,
                    bundle,
                    meta,
                } => {
                    next.check_observation(&obs)?;
                    if bundle.fingerprint != obs.fingerprint {
                        return Err(DomainError::FingerprintMismatch {
                            path: obs.location.canonical().clone(),
                        });
                    }
                    Source::observed(
                        &obs,
                        RowState::Indexed {
                            type_name,
                            bundle,
                            meta,
                        },
                    )
                }
                Change::ValidationFailed { obs, bundle, error } => {
                    next.check_observation(&obs)?;
                    if bundle.fingerprint != obs.fingerprint {
                        return Err(DomainError::FingerprintMismatch {
                            path: obs.location.canonical().clone(),
                        });
                    }
                    let last_error = truncate_error(error);
                    Source::observed(&obs, RowState::ValidationFailed { bundle, last_error })
                }
                Change::BuildFailed { obs, error } => {
                    next.check_observation(&obs)?;
                    Source::observed(
                        &obs,
                        RowState::BundleBuildFailed {
                            last_error: truncate_error(error),
                        },
                    )
                }
                Change::EntryUnreadable { obs, error } => {
                    next.check_observation(&obs)?;
                    Source::observed(
                        &obs,
                        RowState::EntryPointUnreadable {
                            last_error: truncate_error(error),
                        },
                    )
                }
                Change::SourceMissing {
                    path,
                    bundle_on_disk,
                } => {
                    let source = next.existing(&path)?;
                    match bundle_on_disk {
                        Some(bundle) => Source::restore(
                            source.location().clone(),
                            source.kind(),
                            source.origin(),
                            Some(bundle.fingerprint),
                            RowState::OrphanedBundleOnly { bundle },
                            source.mtime().map(str::to_owned),
                            None,
                        ),
                        None => source.with_state(RowState::Tombstoned {
                            reason: TombstoneReason::SourceDeleted,
                        }),
                    }
                }
                Change::Retire { path, reason } => {
                    let source = next.existing(&path)?;
                    let reason = match reason {
                        RetireReason::SourceDeleted => TombstoneReason::SourceDeleted,
                        RetireReason::ExtensionRemoved => TombstoneReason::ExtensionRemoved,
                    };
                    source.with_state(RowState::Tombstoned { reason })
                }
            };
            next.sources.insert(source.path().clone(), source);
        }
        next.settle(&before);
        debug_assert_eq!(next.check_invariants(), Ok(()));
        Ok(next)
    }

    /// A copy of this aggregate in which every source is `Tombstoned(ExtensionRemoved)`.
    /// Saving it deletes every row the aggregate owns.
    pub fn tombstone_all(&self) -> Extension {
        let sources = self
            .sources
            .iter()
            .map(|(path, s)| {
                let state = RowState::Tombstoned {
                    reason: TombstoneReason::ExtensionRemoved,
                };
                (path.clone(), s.with_state(state))
            })
            .collect();
        Extension {
            id: self.id.clone(),
            origin: self.origin,
            root: self.root.clone(),
            sources,
        }
    }

    /// Checks I1–I4; used after every transition in debug builds and by tests.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let violation = |invariant, path: &CanonicalPath, detail: String| InvariantViolation {
            invariant,
            path: path.clone(),
            detail,
        };
        let mut seen: BTreeMap<Slot, &CanonicalPath> = BTreeMap::new();
        for (path, source) in &self.sources {
            if path != source.path() {
                return Err(violation("I1", path, "keyed under another path".into()));
            }
            if let Err(error) =
                self.check_membership(source.location().extension_root(), path, source.origin())
            {
                return Err(violation("I1", path, error.to_string()));
            }
            if let Some((kind, ty)) = source.claim() {
                if let Some(other) = seen.insert((kind, ty.clone()), path) {
                    return Err(violation(
                        "I2",
                        path,
                        format!("slot ({kind}, {ty}) also claimed by {other}"),
                    ));
                }
            }
            if let RowState::ValidationFailed { bundle, .. } = source.state() {
                if source.fingerprint() != Some(&bundle.fingerprint) {
                    return Err(violation("I3", path, "bundle fingerprint differs".into()));
                }
            }
            if source.state().is_tombstoned() && (source.claim().is_some() || source.is_visible()) {
                return Err(violation("I4", path, "tombstone claims a slot".into()));
            }
        }
        Ok(())
    }

    fn check_observation(&self, obs: &Observation) -> Result<(), DomainError> {
        self.check_membership(
            obs.location.extension_root(),
            obs.location.canonical(),
            obs.origin,
        )
    }

    fn check_membership(
        &self,
        source_root: &CanonicalPath,
        path: &CanonicalPath,
        origin: Origin,
    ) -> Result<(), DomainError> {
        if source_root != &self.root {
            return Err(DomainError::SourceRootMismatch {
                extension: self.id.clone(),
                expected: self.root.clone(),
                actual: source_root.clone(),
            });
        }
        let pulled_source = origin == Origin::Pulled;
        let pulled_aggregate = self.origin == ExtensionOrigin::Pulled;
        let under_root = path.starts_under(&self.root);
        if pulled_source != pulled_aggregate || (pulled_aggregate && !under_root) {
            return Err(DomainError::OriginMismatch {
                extension: self.id.clone(),
                path: path.clone(),
            });
        }
        Ok(())
    }

    fn existing(&self, path: &CanonicalPath) -> Result<&Source, DomainError> {
        self.sources
            .get(path)
            .ok_or_else(|| DomainError::UnknownSource {
                extension: self.id.clone(),
                path: path.clone(),
            })
    }

    /// A copy with `source` at its path, I2 and winner pointers settled.
    fn replace(&self, source: Source) -> Extension {
        let before = self.slot_map();
        let mut next = self.clone();
        next.sources.insert(source.path().clone(), source);
        next.settle(&before);
        debug_assert_eq!(next.check_invariants(), Ok(()));
        next
    }

    fn slot_map(&self) -> BTreeMap<CanonicalPath, Slot> {
        self.sources
            .values()
            .filter_map(|s| s.claim().map(|(k, t)| (s.path().clone(), (k, t.clone()))))
            .collect()
    }

    /// The I2 transform and the winner-pointer upkeep. `before` is the slot map of the
    /// aggregate before the current change.
    fn settle(&mut self, before: &BTreeMap<CanonicalPath, Slot>) {
        let mut groups: BTreeMap<Slot, Vec<(u8, CanonicalPath)>> = BTreeMap::new();
        for source in self.sources.values() {
            if let Some((kind, ty)) = source.claim() {
                groups
                    .entry((kind, ty.clone()))
                    .or_default()
                    .push((source.origin().rank(), source.path().clone()));
            }
        }
        let mut fresh_losers: BTreeSet<CanonicalPath> = BTreeSet::new();
        for mut claimants in groups.into_values().filter(|c| c.len() > 1) {
            // Smallest (origin rank, canonical path as bytes) wins.
            claimants.sort_by(|a, b| {
                (a.0, a.1.as_str().as_bytes()).cmp(&(b.0, b.1.as_str().as_bytes()))
            });
            let winner = claimants[0].1.clone();
            for (_, loser) in claimants.into_iter().skip(1) {
                if let Some(source) = self.sources.get(&loser) {
                    let state = RowState::Tombstoned {
                        reason: TombstoneReason::Renamed {
                            winner: Some(winner.clone()),
                        },
                    };
                    let next = source.with_state(state);
                    self.sources.insert(loser.clone(), next);
                    fresh_losers.insert(loser);
                }
            }
        }
        let after = self.slot_map();
        let stale_winner = |winner: &CanonicalPath| match after.get(winner) {
            None => true,
            Some(slot) => before.get(winner) != Some(slot),
        };
        let to_clear: Vec<CanonicalPath> = self
            .sources
            .values()
            .filter(|s| !fresh_losers.contains(s.path()))
            .filter(|s| {
                matches!(s.state(), RowState::Tombstoned { reason: TombstoneReason::Renamed { winner: Some(w) } } if stale_winner(w))
            })
            .map(|s| s.path().clone())
            .collect();
        for path in to_clear {
            if let Some(source) = self.sources.get(&path) {
                let next = source.with_state(RowState::Tombstoned {
                    reason: TombstoneReason::Renamed { winner: None },
                });
                self.sources.insert(path, next);
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! `fen extension why TYPE`: which source provides a type, and why every other
//! candidate does not, answered from catalog rows alone. Nothing here evaluates a
//! bundle, builds one or takes a lock; the only reads beyond the rows are the bundle
//! usability check of [`BundleStore::is_usable`] and the [`SourceProbe`] that asks
//! whether a failed source declares the type.
//!
//! A failed or tombstoned row records no type (spec 10 §4.3: `type_normalized` is
//! `''` unless `Indexed`), so its link to the type is found in this order: an I2
//! tombstone's winner claims the type; the row's last error names the type; the
//! entry point's text names it (a quoted string literal); the file stem equals the
//! type's last segment (`models/ec2_vpc.ts` for `@acme/ec2_vpc`).

use std::collections::BTreeSet;

use fen_domain::ports::{BundleStore, Loaded};
use fen_domain::{CanonicalPath, Extension, Kind, RowState, Source, TombstoneReason, TypeName};

use crate::registry::suggestions;

/// Looks at entry points on disk: whether one still exists, and its text for the "does
/// this failed source declare the type" test.
pub trait SourceProbe: Send + Sync {
    /// The entry point's text, when it exists and is readable (bounded by the adapter).
    fn text(&self, path: &CanonicalPath) -> Option<String>;
    /// True if a file (or a symlink, dangling or not) is at the path.
    fn exists(&self, path: &CanonicalPath) -> bool;
}

/// Why a candidate is not the winner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A pulled `Indexed` row hidden by a local or mounted source of the same slot
    /// (spec 10 §5.6).
    ShadowedByLocal,
    /// Lost the intra-extension duplicate rule I2 to another source of its extension.
    I2Loser,
    /// Retired (a `Renamed` tombstone whose winner left the slot; the next command that
    /// indexes revives it).
    Tombstoned,
    /// The bundle build failed.
    BundleBuildFailed,
    /// The bundle was built but its export was rejected.
    ValidationFailed,
    /// The entry point cannot be read (or a pulled file is missing).
    EntryPointUnreadable,
    /// The source file is gone; only its bundle is left.
    OrphanedBundleOnly,
}

impl Reason {
    /// snake_case text for `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ShadowedByLocal => "shadowed_by_local",
            Reason::I2Loser => "i2_loser",
            Reason::Tombstoned => "tombstoned",
            Reason::BundleBuildFailed => "bundle_build_failed",
            Reason::ValidationFailed => "validation_failed",
            Reason::EntryPointUnreadable => "entry_point_unreadable",
            Reason::OrphanedBundleOnly => "orphaned_bundle_only",
        }
    }
}

/// One row of the report: the winner or a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The entry point.
    pub source_path: CanonicalPath,
    /// `local`, `source_mounted` or `pulled`.
    pub origin: &'static str,
    /// The owning extension id (`@scope/name@version`).
    pub extension: String,
    /// The owning extension's version.
    pub extension_version: String,
    /// The version the export declares (`Indexed` rows only).
    pub declared_version: Option<String>,
    /// The catalog state tag.
    pub state: &'static str,
    /// The stored fingerprint.
    pub fingerprint: Option<String>,
    /// The bundle the row points at.
    pub bundle: Option<CanonicalPath>,
    /// Whether that bundle file exists and is usable for the row's fingerprint and this
    /// binary's layout (spec 30 §3.5); `None` when the row has no bundle.
    pub bundle_usable: Option<bool>,
    /// Why the row is not the winner (`None` for the winner and extension rows).
    pub reason: Option<Reason>,
    /// The stored error of a failure state.
    pub error: Option<String>,
    /// Whether the entry point is still on disk (a deleted winner is served from its
    /// bundle until the next indexing command retires it).
    pub source_exists: bool,
    /// The path this row lost to (shadowing or I2).
    pub lost_to: Option<CanonicalPath>,
}

/// The answer for one `(kind, type)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The kind.
    pub kind: Kind,
    /// The normalised type.
    pub type_name: TypeName,
    /// The visible row, if any.
    pub winner: Option<Row>,
    /// Every losing or failed candidate, ordered by path.
    pub candidates: Vec<Row>,
    /// `extension` rows targeting the type (model types only), visible or failed.
    pub extended_by: Vec<Row>,
    /// Close visible names, when there is no winner.
    pub suggestions: Vec<String>,
}

/// Why `explain` gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhyError {
    /// Nothing in the catalog is, or may be, this type.
    #[error("unknown type \"{name}\"")]
    UnknownType {
        /// The name asked for.
        name: String,
        /// Up to three close visible names.
        suggestions: Vec<String>,
    },
    /// The type has rows under several kinds; `--kind` must pick one.
    #[error("type \"{name}\" exists as several kinds: {}", kinds.join(", "))]
    Ambiguous {
        /// The name.
        name: String,
        /// The kinds.
        kinds: Vec<String>,
    },
}

/// Explains `raw` (normalised first) under `kind`, or under the one kind that has rows
/// for it.
pub async fn explain(
    loaded: &Loaded,
    kind: Option<Kind>,
    raw: &str,
    store: &dyn BundleStore,
    probe: &dyn SourceProbe,
) -> Result<Explanation, WhyError> {
    let unknown = |suggestions| WhyError::UnknownType {
        name: raw.trim().to_owned(),
        suggestions,
    };
    let Ok(name) = TypeName::parse(raw) else {
        return Err(unknown(Vec::new()));
    };
    let kinds: Vec<Kind> = match kind {
        Some(kind) => vec![kind],
        None => Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Extension)
            .collect(),
    };
    let mut found = Vec::new();
    for kind in &kinds {
        let explanation = explain_kind(loaded, *kind, &name, store, probe).await;
        if explanation.winner.is_some()
            || !explanation.candidates.is_empty()
            || (*kind == Kind::Extension && !explanation.extended_by.is_empty())
        {
            found.push(explanation);
        }
    }
    match found.len() {
        0 => {
            let known: BTreeSet<&str> = visible(loaded)
                .filter(|(s, _)| kinds.contains(&s.kind()))
                .map(|(_, t)| t.as_str())
                .collect();
            Err(unknown(suggestions(name.as_str(), known.into_iter())))
        }
        1 => {
            let mut one = found.remove(0);
            // `--kind extension` has no winner by nature: its rows are all listed.
            if one.winner.is_none() && one.kind != Kind::Extension {
                let known: BTreeSet<&str> = visible(loaded)
                    .filter(|(s, _)| s.kind() == one.kind)
                    .map(|(_, t)| t.as_str())
                    .collect();
                one.suggestions = suggestions(name.as_str(), known.into_iter());
            }
            Ok(one)
        }
        _ => {
            // A winner under exactly one kind decides; else `--kind` must.
            let with_winner: Vec<usize> = (0..found.len())
                .filter(|i| found[*i].winner.is_some())
                .collect();
            if let [only] = with_winner.as_slice() {
                return Ok(found.swap_remove(*only));
            }
            Err(WhyError::Ambiguous {
                name: name.to_string(),
                kinds: found.iter().map(|e| e.kind.as_str().to_owned()).collect(),
            })
        }
    }
}

/// Every visible `Indexed` source with its type.
fn visible(loaded: &Loaded) -> impl Iterator<Item = (&Source, &TypeName)> {
    loaded
        .extensions
        .iter()
        .flat_map(Extension::visible_sources)
        .filter_map(|s| match s.state() {
            RowState::Indexed { type_name, .. } => Some((s, type_name)),
            _ => None,
        })
}

async fn explain_kind(
    loaded: &Loaded,
    kind: Kind,
    name: &TypeName,
    store: &dyn BundleStore,
    probe: &dyn SourceProbe,
) -> Explanation {
    let mut winner = None;
    let mut candidates = Vec::new();
    let mut extended_by = Vec::new();
    // Paths that claim the type while `Indexed`: the winners that I2 tombstones point at.
    let claimants: BTreeSet<&CanonicalPath> = loaded
        .extensions
        .iter()
        .flat_map(Extension::sources)
        .filter(|s| s.kind() == kind && indexed_type(s) == Some(name))
        .map(Source::path)
        .collect();
    for ext in &loaded.extensions {
        for source in ext.sources() {
            let state = source.state();
            if kind != Kind::Extension && source.kind() == Kind::Extension {
                if kind == Kind::Model && indexed_type(source) == Some(name) {
                    extended_by.push(row(ext, source, None, None, store, probe).await);
                }
                continue;
            }
            if source.kind() != kind {
                continue;
            }
            match state {
                RowState::Indexed { type_name, .. } if type_name == name => {
                    if kind == Kind::Extension {
                        extended_by.push(row(ext, source, None, None, store, probe).await);
                    } else if let Some(by) = source.superseded_by() {
                        let lost = Some(by.clone());
                        let reason = Some(Reason::ShadowedByLocal);
                        candidates.push(row(ext, source, reason, lost, store, probe).await);
                    } else if winner.is_none() {
                        winner = Some(row(ext, source, None, None, store, probe).await);
                    } else {
                        // I-Repo-1 keeps this from happening; show it rather than hide it.
                        candidates.push(row(ext, source, None, None, store, probe).await);
                    }
                }
                RowState::Indexed { .. } | RowState::Bundled { .. } => {}
                RowState::Tombstoned {
                    reason: TombstoneReason::Renamed { winner: Some(w) },
                } => {
                    if claimants.contains(w) {
                        let reason = Some(Reason::I2Loser);
                        candidates
                            .push(row(ext, source, reason, Some(w.clone()), store, probe).await);
                    }
                }
                RowState::Tombstoned { .. } => {
                    if declares(source, name, probe) {
                        let reason = Some(Reason::Tombstoned);
                        candidates.push(row(ext, source, reason, None, store, probe).await);
                    }
                }
                RowState::BundleBuildFailed { .. }
                | RowState::ValidationFailed { .. }
                | RowState::EntryPointUnreadable { .. }
                | RowState::OrphanedBundleOnly { .. } => {
                    if declares(source, name, probe) {
                        let reason = Some(match state.tag() {
                            fen_domain::RowStateTag::BundleBuildFailed => Reason::BundleBuildFailed,
                            fen_domain::RowStateTag::ValidationFailed => Reason::ValidationFailed,
                            fen_domain::RowStateTag::EntryPointUnreadable => {
                                Reason::EntryPointUnreadable
                            }
                            _ => Reason::OrphanedBundleOnly,
                        });
                        candidates.push(row(ext, source, reason, None, store, probe).await);
                    }
                }
            }
        }
    }
    candidates.sort_by(|a, b| a.source_path.cmp(&b.source_path));
    extended_by.sort_by(|a, b| a.source_path.cmp(&b.source_path));
    Explanation {
        kind,
        type_name: name.clone(),
        winner,
        candidates,
        extended_by,
        suggestions: Vec::new(),
    }
}

fn indexed_type(source: &Source) -> Option<&TypeName> {
    match source.state() {
        RowState::Indexed { type_name, .. } => Some(type_name),
        _ => None,
    }
}

/// Whether a row without a recorded type (failed, orphaned, tombstoned) declares
/// `name`: its error names it, its text quotes it, or its file stem is its last segment.
fn declares(source: &Source, name: &TypeName, probe: &dyn SourceProbe) -> bool {
    let wanted = name.as_str().to_lowercase();
    if let Some(error) = source.state().last_error() {
        if error.to_lowercase().contains(&wanted) {
            return true;
        }
    }
    if let Some(text) = probe.text(source.path()) {
        let text = text.to_lowercase();
        if ['"', '\'', '`']
            .iter()
            .any(|q| text.contains(&format!("{q}{wanted}{q}")))
        {
            return true;
        }
    }
    let file = source
        .path()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default().to_lowercase();
    let last = wanted.rsplit('/').next().unwrap_or_default();
    !stem.is_empty() && stem == last
}

async fn row(
    ext: &Extension,
    source: &Source,
    reason: Option<Reason>,
    lost_to: Option<CanonicalPath>,
    store: &dyn BundleStore,
    probe: &dyn SourceProbe,
) -> Row {
    let state = source.state();
    let bundle = state.bundle();
    let bundle_usable = match bundle {
        Some(bundle) => Some(store.is_usable(bundle).await),
        None => None,
    };
    Row {
        source_path: source.path().clone(),
        origin: source.origin().as_str(),
        extension: ext.id().to_string(),
        extension_version: ext.id().version.to_string(),
        declared_version: match state {
            RowState::Indexed { meta, .. } => Some(meta.declared_version.clone()),
            _ => None,
        },
        state: state.tag().as_str(),
        fingerprint: source.fingerprint().map(ToString::to_string),
        bundle: bundle.map(|b| b.path.clone()),
        bundle_usable,
        reason,
        error: state.last_error().map(str::to_owned),
        source_exists: probe.exists(source.path()),
        lost_to,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use fen_domain::ports::{BundleStoreError, StagedBundle};
    use fen_domain::{
        BundleLocation, Change, ExtensionId, ExtensionName, ExtensionOrigin, ExtensionVersion,
        Observation, Origin, PathPolicy, SourceFingerprint, SourceLocation, TypeMeta,
    };

    use super::*;

    fn cp(text: &str) -> CanonicalPath {
        CanonicalPath::from_text(text, PathPolicy::Posix).unwrap()
    }

    fn obs(path: &str, root: &str, origin: Origin, n: u8) -> Observation {
        Observation {
            location: SourceLocation::from_canonical(cp(path), cp(root)),
            kind: Kind::Model,
            origin,
            fingerprint: SourceFingerprint::Content([n; 32]),
            mtime: None,
        }
    }

    fn indexed(o: &Observation, ty: &str) -> Change {
        Change::Indexed {
            obs: o.clone(),
            type_name: TypeName::parse(ty).unwrap(),
            bundle: BundleLocation {
                path: cp(&format!("{}.bundle.json", o.location.canonical())),
                fingerprint: o.fingerprint,
            },
            meta: TypeMeta::default(),
        }
    }

    /// Bundles are usable unless listed as broken; texts by path.
    struct Fake {
        broken: Vec<String>,
        texts: BTreeMap<String, String>,
    }

    #[async_trait]
    impl BundleStore for Fake {
        async fn is_usable(&self, bundle: &BundleLocation) -> bool {
            !self.broken.iter().any(|b| b == bundle.path.as_str())
        }
        async fn publish(&self, _: &StagedBundle) -> Result<(), BundleStoreError> {
            Ok(())
        }
        async fn evict(&self, _: &CanonicalPath) -> Result<(), BundleStoreError> {
            Ok(())
        }
        async fn list(&self) -> Result<Vec<CanonicalPath>, BundleStoreError> {
            Ok(Vec::new())
        }
        async fn open(&self, _: &BundleLocation) -> Option<String> {
            None
        }
        async fn clear(&self) -> Result<(), BundleStoreError> {
            Ok(())
        }
    }

    impl SourceProbe for Fake {
        fn text(&self, path: &CanonicalPath) -> Option<String> {
            self.texts.get(path.as_str()).cloned()
        }
        fn exists(&self, path: &CanonicalPath) -> bool {
            !path.as_str().ends_with("b.ts")
        }
    }

    /// Local: a.ts and b.ts claim @me/t (b loses I2), broken.ts failed to build and
    /// quotes @me/t, other.ts failed and does not. Pulled: t.ts claims @me/t, hidden by
    /// a.ts.
    fn catalog() -> (Loaded, Fake) {
        let a = obs("/r/extensions/models/a.ts", "/r", Origin::Local, 1);
        let b = obs("/r/extensions/models/b.ts", "/r", Origin::Local, 2);
        let broken = obs("/r/extensions/models/broken.ts", "/r", Origin::Local, 3);
        let other = obs("/r/extensions/models/other.ts", "/r", Origin::Local, 4);
        let local = Extension::local(&cp("/r"))
            .apply([
                indexed(&a, "@me/t"),
                indexed(&b, "@me/t"),
                Change::BuildFailed {
                    obs: broken,
                    error: "syntax error".into(),
                },
                Change::BuildFailed {
                    obs: other,
                    error: "syntax error".into(),
                },
            ])
            .unwrap();
        let root = "/r/.fen/pulled-extensions/@p/x";
        let t = obs(&format!("{root}/models/t.ts"), root, Origin::Pulled, 5);
        let pulled = Extension::new(
            ExtensionId::new(
                ExtensionName::parse("@p/x").unwrap(),
                ExtensionVersion::parse("2026.01.01.1").unwrap(),
            ),
            ExtensionOrigin::Pulled,
            cp(root),
            vec![],
        )
        .unwrap()
        .apply([indexed(&t, "@me/t")])
        .unwrap();
        // The repository marks the pulled claim as superseded (spec 10 §5.6).
        let hidden: Vec<Source> = pulled
            .sources()
            .map(|s| {
                Source::restore(
                    s.location().clone(),
                    s.kind(),
                    s.origin(),
                    s.fingerprint().copied(),
                    s.state().clone(),
                    None,
                    Some(a.location.canonical().clone()),
                )
            })
            .collect();
        let pulled = Extension::new(
            pulled.id().clone(),
            ExtensionOrigin::Pulled,
            cp(root),
            hidden,
        )
        .unwrap();
        let fake = Fake {
            broken: vec!["/r/extensions/models/a.ts.bundle.json".into()],
            texts: BTreeMap::from([(
                "/r/extensions/models/broken.ts".to_owned(),
                "export const model = { type: \"@me/t\",, };".to_owned(),
            )]),
        };
        let loaded = Loaded {
            extensions: vec![local, pulled],
            ..Loaded::default()
        };
        (loaded, fake)
    }

    #[tokio::test]
    async fn every_candidate_gets_its_reason_and_the_winner_its_bundle_verdict() {
        let (loaded, fake) = catalog();
        let e = explain(&loaded, None, "@me/t", &fake, &fake).await.unwrap();
        let winner = e.winner.unwrap();
        assert_eq!(winner.source_path.as_str(), "/r/extensions/models/a.ts");
        assert_eq!(winner.bundle_usable, Some(false));
        assert!(winner.source_exists);
        assert!(!e.candidates[1].source_exists);
        let got: Vec<(&str, Option<Reason>)> = e
            .candidates
            .iter()
            .map(|c| (c.source_path.as_str(), c.reason))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "/r/.fen/pulled-extensions/@p/x/models/t.ts",
                    Some(Reason::ShadowedByLocal)
                ),
                ("/r/extensions/models/b.ts", Some(Reason::I2Loser)),
                (
                    "/r/extensions/models/broken.ts",
                    Some(Reason::BundleBuildFailed)
                ),
            ]
        );
        assert_eq!(e.candidates[0].bundle_usable, Some(true));
        assert_eq!(e.candidates[2].error.as_deref(), Some("syntax error"));
        assert!(e.suggestions.is_empty());
    }

    #[tokio::test]
    async fn a_failed_source_named_after_the_type_is_a_candidate_of_an_otherwise_unknown_type() {
        let (loaded, fake) = catalog();
        let e = explain(&loaded, Some(Kind::Model), "@me/other", &fake, &fake)
            .await
            .unwrap();
        assert!(e.winner.is_none());
        assert_eq!(e.candidates.len(), 1);
        assert_eq!(e.candidates[0].reason, Some(Reason::BundleBuildFailed));
    }

    #[tokio::test]
    async fn an_unknown_type_gets_the_nearest_visible_names() {
        let (loaded, fake) = catalog();
        let error = explain(&loaded, None, "@me/u", &fake, &fake)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            WhyError::UnknownType {
                name: "@me/u".into(),
                suggestions: vec!["@me/t".into()],
            }
        );
        let error = explain(&loaded, Some(Kind::Vault), "@me/t", &fake, &fake)
            .await
            .unwrap_err();
        assert!(matches!(error, WhyError::UnknownType { .. }), "{error:?}");
    }
}

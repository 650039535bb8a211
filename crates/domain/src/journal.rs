//! The lifecycle journal `.fen/scratch/txn-<id>/journal.json` (spec 20 §13.1): what an
//! interrupted install or removal was doing, so that the next locked section can roll
//! it forward or back without evaluating a bundle.

use serde::{Deserialize, Serialize};

use crate::extension::Extension;
use crate::fingerprint::SourceFingerprint;
use crate::id::ExtensionId;
use crate::kind::Kind;
use crate::location::{BundleLocation, SourceLocation};
use crate::name::ExtensionName;
use crate::path::{CanonicalPath, PathPolicy};
use crate::ports::lockfile::LockEntry;
use crate::row_state::{RowState, TypeMeta};
use crate::source::{ExtensionOrigin, Origin, Source};
use crate::type_name::TypeName;
use crate::version::ExtensionVersion;
use crate::DomainError;

/// The journaled operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalOp {
    /// `pull`, `update`, `install` (one or more targets).
    Install,
    /// `rm`.
    Rm,
}

/// One journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// What was being done.
    pub op: JournalOp,
    /// The writer's pid.
    pub pid: u32,
    /// The writer's host.
    pub host: String,
    /// RFC 3339.
    pub started_at: String,
    /// One per extension.
    pub targets: Vec<JournalTarget>,
}

/// One extension of a journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalTarget {
    /// The name.
    pub name: ExtensionName,
    /// Its directory key (spec 20 §6.2).
    pub key: String,
    /// Install only: the version being installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_version: Option<ExtensionVersion>,
    /// Install only: its archive checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_checksum: Option<String>,
    /// Install only: the staged aggregate's sources, as catalog rows.
    #[serde(default)]
    pub sources: Vec<JournalSource>,
    /// The lockfile entry before the operation, verbatim.
    pub prior: Option<LockEntry>,
}

/// A Source of a staged aggregate, in a form that survives a crash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalSource {
    /// Canonical path of the entry point (final location).
    pub source_path: String,
    /// The declared (or kind-dir) kind.
    pub kind: Kind,
    /// Its fingerprint.
    pub fingerprint: SourceFingerprint,
    /// `Indexed`, `BundleBuildFailed`, `ValidationFailed` or `EntryPointUnreadable`.
    pub state: String,
    /// `Indexed`: the claimed type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<TypeName>,
    /// `Indexed`, `ValidationFailed`: the bundle file (final location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_path: Option<String>,
    /// `Indexed`: listing metadata and descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<TypeMeta>,
    /// Failure states: the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl JournalSource {
    /// The journal form of a source of a staged (pulled) aggregate; `None` for states
    /// a staged aggregate never holds.
    pub fn from_source(source: &Source) -> Option<JournalSource> {
        let fingerprint = *source.fingerprint()?;
        let mut out = JournalSource {
            source_path: source.path().as_str().to_owned(),
            kind: source.kind(),
            fingerprint,
            state: source.state().tag().to_string(),
            type_name: None,
            bundle_path: None,
            meta: None,
            last_error: None,
        };
        match source.state() {
            RowState::Indexed {
                type_name,
                bundle,
                meta,
            } => {
                out.type_name = Some(type_name.clone());
                out.bundle_path = Some(bundle.path.as_str().to_owned());
                out.meta = Some(meta.clone());
            }
            RowState::ValidationFailed { bundle, last_error } => {
                out.bundle_path = Some(bundle.path.as_str().to_owned());
                out.last_error = Some(last_error.clone());
            }
            RowState::BundleBuildFailed { last_error }
            | RowState::EntryPointUnreadable { last_error } => {
                out.last_error = Some(last_error.clone());
            }
            _ => return None,
        }
        Some(out)
    }

    fn to_source(&self, root: &CanonicalPath) -> Result<Source, String> {
        let path = CanonicalPath::new(&self.source_path, PathPolicy::host())
            .map_err(|e| format!("{}: {e}", self.source_path))?;
        let bundle = || -> Result<BundleLocation, String> {
            let text = self.bundle_path.as_deref().ok_or("bundle path missing")?;
            let path = CanonicalPath::new(text, PathPolicy::host()).map_err(|e| e.to_string())?;
            Ok(BundleLocation {
                path,
                fingerprint: self.fingerprint,
            })
        };
        let error = || self.last_error.clone().unwrap_or_default();
        let state = match self.state.as_str() {
            "Indexed" => RowState::Indexed {
                type_name: self.type_name.clone().ok_or("type missing")?,
                bundle: bundle()?,
                meta: self.meta.clone().ok_or("meta missing")?,
            },
            "ValidationFailed" => RowState::ValidationFailed {
                bundle: bundle()?,
                last_error: error(),
            },
            "BundleBuildFailed" => RowState::BundleBuildFailed {
                last_error: error(),
            },
            "EntryPointUnreadable" => RowState::EntryPointUnreadable {
                last_error: error(),
            },
            other => return Err(format!("unexpected state {other:?}")),
        };
        Ok(Source::restore(
            SourceLocation::from_canonical(path, root.clone()),
            self.kind,
            Origin::Pulled,
            Some(self.fingerprint),
            state,
            None,
            None,
        ))
    }
}

impl JournalTarget {
    /// Rebuilds the staged aggregate of an install target (extension root `root`).
    pub fn aggregate(&self, root: &CanonicalPath) -> Result<Extension, String> {
        let version = self
            .new_version
            .ok_or("journal target has no new version")?;
        let sources = self
            .sources
            .iter()
            .map(|s| s.to_source(root))
            .collect::<Result<Vec<_>, _>>()?;
        Extension::new(
            ExtensionId::new(self.name.clone(), version),
            ExtensionOrigin::Pulled,
            root.clone(),
            sources,
        )
        .map_err(|e: DomainError| e.to_string())
    }
}

//! `Manifest`: what `extension/manifest.yaml` of a published archive declares
//! (spec 20 §5.3). The YAML is parsed and checked in `fen_infrastructure::archive::manifest`;
//! this is the validated value the lifecycle services work with.

use std::collections::BTreeMap;

use crate::kind::LoaderKind;
use crate::name::ExtensionName;
use crate::reference::ExtensionRef;
use crate::version::ExtensionVersion;

/// The first line of the read-only manifest copy in an extension root (spec 20 §6.1).
pub const READ_ONLY_HEADER: &str = "# Read-only; regenerate with 'fen extension pull'";

/// A validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// `name`.
    pub name: ExtensionName,
    /// `version`.
    pub version: ExtensionVersion,
    /// `description`, at most 1000 characters.
    pub description: Option<String>,
    /// Entry points per loader kind, relative to the kind directory, `/`-separated,
    /// sorted. Only kinds with at least one entry point are present.
    pub entry_points: BTreeMap<LoaderKind, Vec<String>>,
    /// `files`, relative to `files/`.
    pub files: Vec<String>,
    /// `dependencies`, in the order written.
    pub dependencies: Vec<ExtensionRef>,
    /// `permissions` (spec 40 §2), canonical; empty when absent. It covers every entry
    /// point of the extension.
    pub permissions: crate::permissions::Permissions,
}

impl Manifest {
    /// Every entry point as `<kind-dir>/<path>`, relative to the extension root, sorted.
    pub fn entry_point_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .entry_points
            .iter()
            .flat_map(|(kind, paths)| {
                paths
                    .iter()
                    .map(move |p| format!("{}/{p}", kind.kind_dir()))
            })
            .collect();
        out.sort();
        out
    }
}

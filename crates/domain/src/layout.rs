//! Layout constants of a fen repository, relative to the repo root (spec 10 §0).

/// Marks a repo root and holds fen's state.
pub const MARKER_DIR: &str = ".fen";
/// The SQLite catalog.
pub const CATALOG_FILE: &str = ".fen/_extension_catalog.db";
/// Built bundles: `local/`, `mounted/<mount-id>/` and `pulled/<key>/` subtrees.
pub const BUNDLES_DIR: &str = ".fen/bundles";
/// Files of pulled extensions, one subtree `<key>` per name.
pub const PULLED_DIR: &str = ".fen/pulled-extensions";
/// Local sources, `extensions/<kind-dir>/...`.
pub const LOCAL_DIR: &str = "extensions";
/// The pulled-extension lockfile. It has no lock file of its own.
pub const LOCKFILE: &str = "extensions/upstream_extensions.json";
/// The one repo-wide advisory lock around every mutation.
pub const LIFECYCLE_LOCK: &str = ".fen/lifecycle.lock";
/// Private build and staging directories of writers.
pub const SCRATCH_DIR: &str = ".fen/scratch";
/// Source mounts.
pub const MOUNTS_FILE: &str = ".fen/mounts.json";
/// Model data.
pub const DATA_DIR: &str = ".fen/data";
/// Lock files of the `local` datastore.
pub const LOCKS_DIR: &str = ".fen/locks";
/// Datastore configuration; absent means `local`.
pub const DATASTORE_CONFIG: &str = ".fen/datastore.yaml";
/// Model definitions, `models/<name>.yaml`.
pub const MODELS_DIR: &str = "models";
/// Bumped whenever existing bundles become unusable.
pub const BUNDLE_LAYOUT_VERSION: &str = "fen-bundle-1";
/// Prefix of every temp file fen writes.
pub const TEMP_PREFIX: &str = ".fen-tmp-";

/// Suffixes of source files (spec 10 §1.11).
pub const SOURCE_SUFFIXES: [&str; 4] = [".ts", ".mts", ".js", ".mjs"];

/// True if a file name may be an entry point: a `.ts`, `.mts`, `.js` or `.mjs` file
/// that is not hidden, not `*.d.ts`, `*_test.*`, `*.test.*` or `*.spec.*`.
pub fn is_candidate_name(name: &str) -> bool {
    !name.starts_with('.')
        && SOURCE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        && !name.ends_with(".d.ts")
        && !has_test_marker(name)
}

/// True if `name` contains `_test.`, `.test.` or `.spec.`: some `.` is preceded by
/// one of `_test`, `.test`, `.spec`.
fn has_test_marker(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.iter().enumerate().any(|(dot, byte)| {
        *byte == b'.' && dot >= 5 && matches!(&bytes[dot - 5..dot], b"_test" | b".test" | b".spec")
    })
}

/// The loader kind of a path relative to an extension root when it names an entry
/// point by the naming rules (`<kind-dir>/…/<candidate>`, no directory below the kind
/// directory starting with `_` or equal to `node_modules`, as the loader's walk); the export pre-check is not
/// applied.
///
/// ```
/// use fen_domain::layout::entry_point_kind;
/// assert!(entry_point_kind("models/noop.ts").is_some());
/// assert!(entry_point_kind("models/_lib/shared.ts").is_none());
/// assert!(entry_point_kind("files/x.ts").is_none());
/// ```
pub fn entry_point_kind(relative: &str) -> Option<crate::kind::LoaderKind> {
    let mut segments = relative.split('/');
    let kind = crate::kind::LoaderKind::from_kind_dir(segments.next()?)?;
    let rest: Vec<&str> = segments.collect();
    let (name, dirs) = rest.split_last()?;
    if dirs
        .iter()
        .any(|d| d.starts_with('_') || *d == "node_modules")
    {
        return None;
    }
    is_candidate_name(name).then_some(kind)
}

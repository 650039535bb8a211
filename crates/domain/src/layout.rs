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

//! The bundler: builds one JSON bundle per entry point with oxc, and keeps the bundle
//! files under `.fen/bundles/` (spec 30 §3).
//!
//! - [`build_bundle`] walks an entry's relative imports inside its boundary,
//!   strips TypeScript, rewrites relative specifiers to module ids and returns a
//!   [`BundleContainer`]; it writes nothing.
//! - [`BundleContainer`] is the file format (spec 30 §3.5): serialize with
//!   [`BundleContainer::to_json_bytes`], parse with
//!   [`BundleContainer::from_json_bytes`], check with [`is_usable`].
//! - [`write_staged`] writes a container into a scratch directory;
//!   [`FsBundleStore`] (the `BundleStore` port) publishes it by atomic rename,
//!   evicts, lists and clears.
//!
//! Output is deterministic (G4): identical sources, boundary-relative layout,
//! bundle prefix and fingerprint give byte-identical bundle files on any checkout.

mod build;
mod container;
pub(crate) mod npm;
mod resolve;
mod store;
mod transpile;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

pub use build::{
    build_bundle, build_bundle_cached, BuildError, BuildRequest, TranspileCache, MAX_CODE_BYTES,
    MAX_MODULES,
};
pub use container::{
    is_usable, module_id, package_module_id, BundleContainer, BundleFileError, BundleModule,
    BUNDLE_FORMAT,
};
pub use resolve::HOST_MODULES;
pub use store::{
    bundle_location, bundle_path, write_staged, write_staged_bytes, FsBundleStore, BUNDLE_SUFFIX,
};

//! The library half of `cargo xtask`: the tasks other crates drive in-process.
//! `stress` is here (not in the binary) so that `fen-integration` can run the harness
//! against its debug `fen` without a nested `cargo` (which would wait on the build
//! directory lock of the `cargo test` that runs it); `fen_build` is shared with `bench`.
//!
//! ```
//! // Every task resolves paths from the workspace root.
//! let root = xtask::fen_build::workspace_root();
//! assert!(root.join("crates/cli/Cargo.toml").is_file());
//! ```

#![deny(missing_docs)]

pub mod fen_build;
pub mod s3_server;
pub mod stress;

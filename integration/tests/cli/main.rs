//! Tests that drive the built `fen` binary: one test binary, one module per area.

// This whole crate is test code: a failing unwrap is a failing test (clippy.toml). Clippy's
// `allow-unwrap-in-tests` covers only `#[test]` functions, not the helpers they share.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod caps;
mod catalog;
mod colour;
mod completions;
mod datastores;
mod datastores_ext;
mod datastores_s3;
mod fixture;
mod freshness;
mod init;
mod lifecycle;
mod loading;
mod lock;
mod models;
mod npm;
mod output;
mod reconcile;
mod stress;
mod util;
mod why;

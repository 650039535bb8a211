//! fen-lifecycle: application services over the fen-domain ports.
//!
//! Services receive their adapters as `Arc<dyn Port>` ([`Adapters`]) and never name
//! an infrastructure type, so every service runs against in-memory doubles in tests.
//! This crate holds the freshness machinery of spec 10 §6 (the warm pass, the cold
//! start and ReconcileFromDisk, which share one prepare/commit engine), doctor
//! (spec 10 §7), the lazy type registry with its loader (spec 30 §5) and the model
//! services (`models`: create, list, method runs, spec 30 §6), and `why`, the
//! catalog-only explanation behind `fen extension why`.
//!
//! Most services need a full set of [`Adapters`]; the pure helpers work alone:
//!
//! ```
//! use fen_lifecycle::registry::suggestions;
//!
//! // The "did you mean" of an unknown type: close names only, closest first.
//! let known = ["@acme/net/endpoint", "@acme/net/probe", "@other/thing"];
//! let close = suggestions("@acme/net/endpont", known.into_iter());
//! assert_eq!(close, vec!["@acme/net/endpoint".to_owned()]);
//! ```

#![deny(missing_docs)]

mod adapters;
pub mod builtin;
pub mod counted;
pub mod datastore;
pub mod doctor;
mod engine;
pub mod extensions;
pub mod index;
pub mod loader;
pub mod models;
mod rebuild;
pub mod reconcile;
pub mod registry;
pub mod stats;
pub mod why;

pub use adapters::{Adapters, RepoLayout, ScannerFactory};
pub use engine::LifecycleError;
pub use rebuild::WarmRebuilder;

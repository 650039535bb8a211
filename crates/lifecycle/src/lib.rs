//! fen-lifecycle: application services over the fen-domain ports.
//!
//! Services receive their adapters as `Arc<dyn Port>` ([`Adapters`]) and never name
//! an infrastructure type, so every service runs against in-memory doubles in tests.
//! This crate holds the freshness machinery of spec 10 §6 (the warm pass, the cold
//! start and ReconcileFromDisk, which share one prepare/commit engine), doctor
//! (spec 10 §7), the lazy type registry with its loader (spec 30 §5) and the model
//! services (`models`: create, list, method runs, spec 30 §6).

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

pub use adapters::{Adapters, RepoLayout, ScannerFactory};
pub use engine::LifecycleError;
pub use rebuild::WarmRebuilder;

//! fen-lifecycle: application services over the fen-domain ports.
//!
//! Services receive their adapters as `Arc<dyn Port>` ([`Adapters`]) and never name
//! an infrastructure type, so every service runs against in-memory doubles in tests.
//! This crate holds the freshness machinery of spec 10 §6 (the warm pass, the cold
//! start and ReconcileFromDisk, which share one prepare/commit engine), doctor
//! (spec 10 §7) and the read side of the lazy type registry (spec 30 §5).

mod adapters;
pub mod builtin;
pub mod counted;
pub mod doctor;
mod engine;
pub mod index;
pub mod loader;
pub mod reconcile;
pub mod registry;
pub mod stats;

pub use adapters::{Adapters, RepoLayout, ScannerFactory};
pub use engine::LifecycleError;

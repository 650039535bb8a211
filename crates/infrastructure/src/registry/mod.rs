//! The registry (spec 20 §2–§3): the HTTP client behind `RegistryClient` and the
//! static server of `fen registry serve`.

pub mod client;
pub mod server;

pub use client::{ClientConfig, HttpRegistryClient};
pub use server::{RegistryServer, ServeConfig, ServeError};

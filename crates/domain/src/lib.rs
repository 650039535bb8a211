//! fen-domain: the pure model of fen's extension catalog.
//!
//! This crate holds the value objects ([`ExtensionName`], [`ExtensionVersion`],
//! [`TypeName`], [`CanonicalPath`], [`SourceLocation`], ...), the [`RowState`] state
//! machine, the [`Extension`] aggregate with its [`Source`] entities, and the port
//! traits ([`ports`]) that the adapters of `fen-infrastructure` implement and the
//! services of `fen-lifecycle` call.
//!
//! It does no I/O and depends on no runtime: library users can embed it to read,
//! validate and transform catalog state without pulling in SQLite, tokio or a JS
//! engine. `examples/embed_domain.rs` goes further (transitions, I2, tombstones,
//! in-memory ports): `cargo run -p fen-domain --example embed_domain`.
//!
//! ```
//! use fen_domain::{CanonicalPath, Extension, PathPolicy, TypeName};
//!
//! // The repo's local aggregate: every source under <repo>/extensions/ belongs to it.
//! let root = CanonicalPath::from_text("/work/shop", PathPolicy::Posix)?;
//! let local = Extension::local(&root);
//! assert_eq!(local.id().to_string(), "@local/shop@0.0.0");
//! assert_eq!(local.sources().len(), 0);
//!
//! // Type names are validated and normalised before any lookup.
//! let ty = TypeName::parse("@acme/net/endpoint")?;
//! assert_eq!(ty.as_str(), "@acme/net/endpoint");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod extension;
pub mod fingerprint;
pub mod id;
pub mod journal;
pub mod kind;
pub mod layout;
pub mod location;
pub mod manifest;
pub mod model;
pub mod name;
pub mod packages;
pub mod path;
pub mod permissions;
pub mod ports;
pub mod reference;
pub mod repo_root;
pub mod row_state;
pub mod source;
pub mod text;
pub mod type_name;
pub mod version;

mod hex;

pub use error::DomainError;
pub use extension::{Change, Extension, InvariantViolation};
pub use fingerprint::{FingerprintLine, SourceFingerprint};
pub use id::ExtensionId;
pub use kind::{Kind, LoaderKind};
pub use location::{BundleLocation, SourceLocation};
pub use manifest::Manifest;
pub use name::{ExtensionName, NameError};
pub use path::{CanonicalPath, PathError, PathPolicy};
pub use permissions::{Permissions, PermissionsError};
pub use reference::{ExtensionRef, RefError};
pub use repo_root::{find_repo_root_with, RepoRoot, RepoRootNotFound};
pub use row_state::{RetireReason, RowState, RowStateTag, TombstoneReason, TypeMeta};
pub use source::{ExtensionOrigin, Observation, Origin, Source};
pub use type_name::{TypeName, TypeNameError};
pub use version::{ExtensionVersion, VersionError};

//! Source walking, fingerprints, source mounts and repo-root discovery (spec 10
//! §1.9–§1.12, §6.2 stat fast path; spec 30 §3.1, §3.4).
//!
//! `FsSourceScanner` implements the `SourceScanner` port on top of the pieces here:
//! `walk` (entry-point discovery), `fingerprint` (closure hashing with stat records),
//! `cache` (the per-pass `FreshnessCache`), `stats` (the `FileStats` text format),
//! `scan_text` (import and export scanning without a parser) and `mounts`
//! (`.fen/mounts.json`).

mod cache;
mod fingerprint;
mod mounts;
mod repo_root;
mod scan_text;
mod scanner;
mod stats;
mod walk;

pub use cache::FreshnessCache;
pub use fingerprint::{fingerprint, import_closure};
pub use mounts::{
    add_mount, mount_id, read_mounts, remove_mount, MountChange, MountsError, SourceMount,
    SourceMounts,
};
pub use repo_root::{absolute_lexical, find_repo_root};
pub use scan_text::{export_mask, local_import_specifiers, module_import_specifiers, ExportMask};
pub use scanner::{all_scan_root_dirs, FsSourceScanner};
pub use walk::{is_candidate_name, walk_scan_root};

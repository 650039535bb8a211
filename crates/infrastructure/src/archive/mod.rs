//! Extension archives (spec 20 §4–§5): the manifest, deterministic packing and
//! streaming extraction under the safety rules of §5.2.
//!
//! `manifest` parses `manifest.yaml` and checks it against an archive's file set;
//! `pack` builds the byte-identical `.tar.gz` of `fen extension pack`; `extract` is the
//! `TarGzUnpacker` behind the `Unpacker` port. The rules both directions share live in
//! `paths` (S2, S3, S5, S6 and the §5.1 layout), `limits` (S7) and `messages` (the
//! one-line messages of spec 20 §15.4), so a tree that packs is a tree that unpacks.

pub mod extract;
pub mod manifest;
pub mod pack;

mod limits;
mod messages;
mod paths;
#[cfg(test)]
mod test_support;

pub use extract::{unpack_archive, TarGzUnpacker};
pub use manifest::{check_file_set, parse_manifest, FileSetProblem, ManifestProblem};
pub use pack::{
    default_archive_file_name, pack, write_packed, PackDestination, PackedArchive, WrittenArchive,
};

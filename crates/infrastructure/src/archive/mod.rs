//! Extension archives (spec 20 §4–§5): the manifest, deterministic packing and
//! streaming extraction under the safety rules of §5.2.

pub mod extract;
pub mod manifest;
pub mod pack;

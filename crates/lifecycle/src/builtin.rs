//! The built-in datastore types, `local` and `filesystem` (spec 30 §5.2, §7.1): always
//! loaded, described from static descriptors, never backed by a bundle or a catalog row.
//!
//! They are listed by `fen model type search --kind datastore` and described by
//! `fen extension describe local|filesystem` beside the extension datastores. Their
//! names are not `TypeName`s (no scope), which is also why no extension can declare
//! them.

use serde_json::{json, Value};

/// One built-in type.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltinType {
    /// The name used in `.fen/datastore.yaml` (`type: filesystem`).
    pub name: &'static str,
    /// One line for listings.
    pub description: &'static str,
    /// The descriptor shown by `describe`.
    pub descriptor: Value,
}

/// The built-in datastore types, sorted by name.
pub fn datastores() -> Vec<BuiltinType> {
    vec![
        BuiltinType {
            name: "filesystem",
            description:
                "Model data in .fen/data/, synced with a shared directory (NFS, another disk)",
            descriptor: json!({
                "type": "filesystem",
                "description": "Model data in .fen/data/, synced with a shared directory (NFS, another disk)",
                "builtin": true,
                "configSchema": {
                    "type": "object",
                    "required": ["path"],
                    "properties": {
                        "path": {
                            "type": "string",
                            "description": "the shared directory; fen writes only data/ and .fen-locks/ under it"
                        }
                    },
                    "additionalProperties": false
                },
                "capabilities": { "scopedSync": true, "lazyHydration": false },
                "locks": "<path>/.fen-locks/"
            }),
        },
        BuiltinType {
            name: "local",
            description: "Model data in .fen/data/ of this repository only (the default)",
            descriptor: json!({
                "type": "local",
                "description": "Model data in .fen/data/ of this repository only (the default)",
                "builtin": true,
                "configSchema": { "type": "object", "additionalProperties": false },
                "capabilities": { "scopedSync": false, "lazyHydration": false },
                "locks": ".fen/locks/"
            }),
        },
    ]
}

/// The built-in datastore named `name`, if any (exact, lower-case).
pub fn datastore(name: &str) -> Option<BuiltinType> {
    datastores().into_iter().find(|b| b.name == name)
}

/// The built-in datastores whose name or description contains `query` (lower-cased),
/// as `search` matches catalog types.
pub fn search_datastores(query: &str) -> Vec<BuiltinType> {
    let query = query.to_lowercase();
    datastores()
        .into_iter()
        .filter(|b| b.name.contains(&query) || b.description.to_lowercase().contains(&query))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_builtins_are_sorted_and_self_describing() {
        let all = datastores();
        let names: Vec<_> = all.iter().map(|b| b.name).collect();
        assert_eq!(names, ["filesystem", "local"]);
        for b in &all {
            assert_eq!(b.descriptor["type"], b.name);
            assert_eq!(b.descriptor["description"], b.description);
        }
        assert!(datastore("local").is_some());
        assert!(datastore("@acme/local").is_none());
    }

    #[test]
    fn search_matches_name_and_description() {
        assert_eq!(search_datastores("").len(), 2);
        assert_eq!(search_datastores("NFS")[0].name, "filesystem");
        assert_eq!(search_datastores("loc")[0].name, "local");
        assert!(search_datastores("s3").is_empty());
    }
}

//! `ExtensionId`: the identity of the Extension aggregate, `name@version` (spec 10 §1.3).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::name::ExtensionName;
use crate::version::ExtensionVersion;

/// `name@version`; ordered by name, then version.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExtensionId {
    /// The extension's name.
    pub name: ExtensionName,
    /// The extension's version.
    pub version: ExtensionVersion,
}

impl ExtensionId {
    /// Builds an id.
    pub fn new(name: ExtensionName, version: ExtensionVersion) -> ExtensionId {
        ExtensionId { name, version }
    }
}

impl fmt::Display for ExtensionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl fmt::Debug for ExtensionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_order() {
        let a = ExtensionId::new(
            ExtensionName::parse("@a/x").unwrap(),
            ExtensionVersion::parse("2026.01.01.0").unwrap(),
        );
        let b = ExtensionId::new(
            ExtensionName::parse("@a/x").unwrap(),
            ExtensionVersion::Local,
        );
        assert_eq!(a.to_string(), "@a/x@2026.01.01.0");
        assert!(b < a);
    }
}

//! `Kind` and `LoaderKind`: what an entry point declares, and the unit of loading
//! (spec 10 §1.4).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What an entry point exports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A model type.
    Model,
    /// Adds members to a base model type; lives in `models/`.
    Extension,
    /// A vault type.
    Vault,
    /// A driver type.
    Driver,
    /// A datastore type.
    Datastore,
    /// A report type.
    Report,
}

/// The five loader kinds: one walk and one warm pass each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoaderKind {
    /// Loads `model` and `extension` rows from `models/`.
    Model,
    /// `vaults/`.
    Vault,
    /// `drivers/`.
    Driver,
    /// `datastores/`.
    Datastore,
    /// `reports/`.
    Report,
}

/// Text is not one of the six kind names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind {0:?} (expected model, extension, vault, driver, datastore or report)")]
pub struct UnknownKind(pub String);

impl Kind {
    /// Every kind, in catalog order.
    pub const ALL: [Kind; 6] = [
        Kind::Model,
        Kind::Extension,
        Kind::Vault,
        Kind::Driver,
        Kind::Datastore,
        Kind::Report,
    ];

    /// The catalog text, which is also the export key.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Extension => "extension",
            Kind::Vault => "vault",
            Kind::Driver => "driver",
            Kind::Datastore => "datastore",
            Kind::Report => "report",
        }
    }

    /// The export key an entry point uses for this kind.
    pub fn export_key(self) -> &'static str {
        self.as_str()
    }

    /// The loader kind that owns rows of this kind.
    pub fn loader_kind(self) -> LoaderKind {
        match self {
            Kind::Model | Kind::Extension => LoaderKind::Model,
            Kind::Vault => LoaderKind::Vault,
            Kind::Driver => LoaderKind::Driver,
            Kind::Datastore => LoaderKind::Datastore,
            Kind::Report => LoaderKind::Report,
        }
    }

    /// The directory under `extensions/` (or a pulled root) that holds this kind.
    pub fn kind_dir(self) -> &'static str {
        self.loader_kind().kind_dir()
    }

    /// Whether one `(kind, type)` may be claimed by one source only. `extension` is
    /// exempt: many files may extend one base type.
    pub fn is_unique_per_type(self) -> bool {
        !matches!(self, Kind::Extension)
    }
}

impl LoaderKind {
    /// Every loader kind.
    pub const ALL: [LoaderKind; 5] = [
        LoaderKind::Model,
        LoaderKind::Vault,
        LoaderKind::Driver,
        LoaderKind::Datastore,
        LoaderKind::Report,
    ];

    /// The kind directory.
    pub fn kind_dir(self) -> &'static str {
        match self {
            LoaderKind::Model => "models",
            LoaderKind::Vault => "vaults",
            LoaderKind::Driver => "drivers",
            LoaderKind::Datastore => "datastores",
            LoaderKind::Report => "reports",
        }
    }

    /// The kinds whose rows this loader owns; the first is the default for an
    /// unreadable entry point without a row (spec 10 §1.11).
    pub fn kinds(self) -> &'static [Kind] {
        match self {
            LoaderKind::Model => &[Kind::Model, Kind::Extension],
            LoaderKind::Vault => &[Kind::Vault],
            LoaderKind::Driver => &[Kind::Driver],
            LoaderKind::Datastore => &[Kind::Datastore],
            LoaderKind::Report => &[Kind::Report],
        }
    }

    /// The loader kind for a kind directory name.
    pub fn from_kind_dir(dir: &str) -> Option<LoaderKind> {
        LoaderKind::ALL.into_iter().find(|k| k.kind_dir() == dir)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(text: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| UnknownKind(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_spec_10_1_4() {
        let rows = [
            (Kind::Model, "model", "models", LoaderKind::Model, true),
            (
                Kind::Extension,
                "extension",
                "models",
                LoaderKind::Model,
                false,
            ),
            (Kind::Vault, "vault", "vaults", LoaderKind::Vault, true),
            (Kind::Driver, "driver", "drivers", LoaderKind::Driver, true),
            (
                Kind::Datastore,
                "datastore",
                "datastores",
                LoaderKind::Datastore,
                true,
            ),
            (Kind::Report, "report", "reports", LoaderKind::Report, true),
        ];
        for (kind, text, dir, loader, unique) in rows {
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.export_key(), text);
            assert_eq!(kind.kind_dir(), dir);
            assert_eq!(kind.loader_kind(), loader);
            assert_eq!(kind.is_unique_per_type(), unique);
            assert_eq!(text.parse::<Kind>().unwrap(), kind);
            assert!(loader.kinds().contains(&kind));
            assert_eq!(LoaderKind::from_kind_dir(dir), Some(loader));
        }
        assert!("models".parse::<Kind>().is_err());
        assert_eq!(LoaderKind::Model.kinds()[0], Kind::Model);
    }
}

//! The lazy loader's read side (spec 10 §5.9): visible rows only, one statement each
//! (one read transaction for `list_types`), no lock. By I-Repo-1 `find_type` matches at
//! most one row.

use async_trait::async_trait;
use fen_domain::ports::{RepoError, TypeEntry, TypeIndex};
use fen_domain::{
    BundleLocation, CanonicalPath, Kind, PathPolicy, SourceFingerprint, TypeMeta, TypeName,
};

use super::bulk::FIRST_CHUNK_ROWS;
use super::log_warning;
use super::repository::SqliteExtensionRepository;

#[async_trait]
impl TypeIndex for SqliteExtensionRepository {
    async fn find_type(&self, kind: Kind, ty: &TypeName) -> Result<Option<TypeEntry>, RepoError> {
        // By I-Repo-1 at most one row matches; the path order makes a violation
        // (possible only through a foreign edit) deterministic.
        let entries = self
            .fetch_types(
                "type_normalized = ?1 AND kind = ?2",
                &[ty.as_str(), kind.as_str()],
                true,
            )
            .await?;
        Ok(entries.into_iter().next())
    }

    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        let mut entries = self
            .fetch_types("kind = ?1", &[kind.as_str()], false)
            .await?;
        entries.sort_by(|a, b| a.type_name.cmp(&b.type_name)); // stable: paths stay ordered
        Ok(entries)
    }

    async fn extensions_for(&self, base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        self.fetch_types(
            "kind = 'extension' AND extends_type = ?1",
            &[base.as_str()],
            true,
        )
        .await
    }

    async fn entries_at(&self, paths: &[CanonicalPath]) -> Result<Vec<TypeEntry>, RepoError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<&str> = paths.iter().map(CanonicalPath::as_str).collect();
        let paths =
            serde_json::to_string(&paths).map_err(|error| RepoError::Storage(error.to_string()))?;
        // Primary-key lookups, one statement (one read transaction when many).
        let few = paths.len() <= FIRST_CHUNK_ROWS;
        self.fetch_types(
            "source_path IN (SELECT value FROM json_each(?1))",
            &[paths.as_str()],
            few,
        )
        .await
    }
}

/// Columns of a [`TypeRow`].
pub(crate) const TYPE_COLUMNS: [&str; 8] = [
    "source_path",
    "kind",
    "type_normalized",
    "bundle_path",
    "fingerprint",
    "type_version",
    "description",
    "descriptor",
];

/// The visibility filter every query applies (spec 10 §2.4).
pub(crate) const VISIBLE: &str = "state = 'Indexed' AND superseded_by = ''";

/// One visible row as read: its entry, or its stored path when it cannot be read back
/// (only a foreign edit makes one). Built straight from the fetched text, so the fields
/// that are only parsed are never copied.
pub(crate) enum TypeRow {
    Entry {
        /// The stored path when it differs from the entry's canonical one.
        stored: Option<String>,
        entry: TypeEntry,
    },
    Unreadable(String),
}

impl TypeRow {
    /// The row from the fields in [`TYPE_COLUMNS`] order.
    pub(crate) fn read(fields: [&str; 8], policy: PathPolicy) -> TypeRow {
        match entry(fields, policy) {
            Some(entry) => TypeRow::Entry {
                stored: (entry.source_path.as_str() != fields[0]).then(|| fields[0].to_owned()),
                entry,
            },
            None => TypeRow::Unreadable(fields[0].to_owned()),
        }
    }

    /// The stored path.
    fn stored_path(&self) -> &str {
        match self {
            TypeRow::Entry {
                stored: Some(stored),
                ..
            }
            | TypeRow::Unreadable(stored) => stored,
            TypeRow::Entry { entry, .. } => entry.source_path.as_str(),
        }
    }
}

/// The entries, ordered by stored path; an unreadable row is left out and logged,
/// since it could not be loaded anyway.
pub(crate) fn entries(mut rows: Vec<TypeRow>) -> Vec<TypeEntry> {
    rows.sort_unstable_by(|a, b| a.stored_path().cmp(b.stored_path()));
    rows.into_iter()
        .filter_map(|row| match row {
            TypeRow::Entry { entry, .. } => Some(entry),
            TypeRow::Unreadable(path) => {
                log_warning(&format!("catalog row {path} is unreadable; ignored"));
                None
            }
        })
        .collect()
}

fn entry(fields: [&str; 8], policy: PathPolicy) -> Option<TypeEntry> {
    let [source_path, kind, type_normalized, bundle_path, fingerprint, type_version, description, descriptor] =
        fields;
    Some(TypeEntry {
        source_path: CanonicalPath::from_text(source_path, policy).ok()?,
        kind: kind.parse::<Kind>().ok()?,
        type_name: TypeName::parse(type_normalized).ok()?,
        bundle: BundleLocation {
            path: CanonicalPath::from_text(bundle_path, policy).ok()?,
            fingerprint: SourceFingerprint::parse_stored(fingerprint)?,
        },
        meta: TypeMeta {
            declared_version: type_version.to_owned(),
            description: description.to_owned(),
            descriptor: descriptor.to_owned(),
        },
    })
}

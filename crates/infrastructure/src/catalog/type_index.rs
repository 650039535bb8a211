//! The lazy loader's read side (spec 10 §5.9): visible rows only, one statement each,
//! no lock. By I-Repo-1 `find_type` matches at most one row.

use async_trait::async_trait;
use fen_domain::ports::{RepoError, TypeEntry, TypeIndex};
use fen_domain::{
    BundleLocation, CanonicalPath, Kind, PathPolicy, SourceFingerprint, TypeMeta, TypeName,
};

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
            )
            .await?;
        Ok(entries.into_iter().next())
    }

    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, RepoError> {
        let mut entries = self.fetch_types("kind = ?1", &[kind.as_str()]).await?;
        entries.sort_by(|a, b| a.type_name.cmp(&b.type_name)); // stable: paths stay ordered
        Ok(entries)
    }

    async fn extensions_for(&self, base: &TypeName) -> Result<Vec<TypeEntry>, RepoError> {
        self.fetch_types("kind = 'extension' AND extends_type = ?1", &[base.as_str()])
            .await
    }
}

/// Columns of a [`TypeRow`].
pub(crate) const TYPE_COLUMNS: &str = "source_path, kind, type_normalized, bundle_path, \
     fingerprint, type_version, description, descriptor";

/// The visibility filter every query applies (spec 10 §2.4).
pub(crate) const VISIBLE: &str = "state = 'Indexed' AND superseded_by = ''";

/// One visible row, as stored.
#[derive(Clone, Debug)]
pub(crate) struct TypeRow {
    source_path: String,
    kind: String,
    type_normalized: String,
    bundle_path: String,
    fingerprint: String,
    type_version: String,
    description: String,
    descriptor: String,
}

impl From<[String; 8]> for TypeRow {
    /// The fields in [`TYPE_COLUMNS`] order.
    fn from(fields: [String; 8]) -> TypeRow {
        let [source_path, kind, type_normalized, bundle_path, fingerprint, type_version, description, descriptor] =
            fields;
        TypeRow {
            source_path,
            kind,
            type_normalized,
            bundle_path,
            fingerprint,
            type_version,
            description,
            descriptor,
        }
    }
}

/// Converts rows, ordered by path; a row that cannot be read back (only a foreign edit
/// makes one) is left out and logged, since it could not be loaded anyway.
pub(crate) fn entries(mut rows: Vec<TypeRow>, policy: PathPolicy) -> Vec<TypeEntry> {
    rows.sort_unstable_by(|a, b| a.source_path.cmp(&b.source_path));
    rows.into_iter()
        .filter_map(|row| {
            let path = row.source_path.clone();
            let entry = entry(row, policy);
            if entry.is_none() {
                log_warning(&format!("catalog row {path} is unreadable; ignored"));
            }
            entry
        })
        .collect()
}

fn entry(row: TypeRow, policy: PathPolicy) -> Option<TypeEntry> {
    Some(TypeEntry {
        source_path: CanonicalPath::from_text(&row.source_path, policy).ok()?,
        kind: row.kind.parse::<Kind>().ok()?,
        type_name: TypeName::parse(&row.type_normalized).ok()?,
        bundle: BundleLocation {
            path: CanonicalPath::from_text(&row.bundle_path, policy).ok()?,
            fingerprint: SourceFingerprint::parse_stored(&row.fingerprint)?,
        },
        meta: TypeMeta {
            declared_version: row.type_version,
            description: row.description,
            descriptor: row.descriptor,
        },
    })
}

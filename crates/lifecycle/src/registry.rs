//! The read side of the lazy type registry (spec 30 §5.2, §5.7): searching, listing
//! and describing types from catalog rows and stored descriptors. Nothing here
//! evaluates a bundle or takes a lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use fen_domain::ports::{TypeEntry, TypeIndex};
use fen_domain::{CanonicalPath, Kind, TypeName};
use serde_json::{json, Value};

use crate::engine::LifecycleError;

/// One searchable type.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSummary {
    /// The row.
    pub entry: TypeEntry,
    /// The declared spelling, from the descriptor.
    pub declared_type: String,
    /// Number of visible extensions targeting it.
    pub extension_count: usize,
}

/// A type's descriptor with its merged methods.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeDescription {
    /// The row.
    pub entry: TypeEntry,
    /// The stored descriptor, parsed.
    pub descriptor: Value,
    /// Every method: `(name, description, arguments schema, origin)`; origin is `base`
    /// or the extension's source path.
    pub methods: Vec<MethodInfo>,
    /// Members of extensions that could not attach (name already taken).
    pub warnings: Vec<String>,
}

/// One method of a merged type.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodInfo {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its argument schema.
    pub arguments: Value,
    /// `base` or the extension source path.
    pub origin: String,
}

/// A describe lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    /// No visible type of that name.
    #[error("unknown type \"{name}\"")]
    UnknownType {
        /// The normalised name asked for.
        name: String,
        /// Up to three close names.
        suggestions: Vec<String>,
    },
    /// The type exists under several kinds; `--kind` must pick one.
    #[error("type \"{name}\" exists as several kinds: {}", kinds.join(", "))]
    Ambiguous {
        /// The name.
        name: String,
        /// The kinds.
        kinds: Vec<String>,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] LifecycleError),
}

/// Visible types of `kind` whose normalised type or description contains `query`
/// (case-insensitive; empty matches all), sorted by type. The rows are filtered as
/// `list_types` gives them (an outline has no descriptors); the descriptors of the
/// matches, which give the declared spelling, come from one `entries_at`.
pub async fn search(
    types: &dyn TypeIndex,
    kind: Kind,
    query: &str,
) -> Result<Vec<TypeSummary>, LifecycleError> {
    let query = query.to_lowercase();
    let mut found = Vec::new();
    for entry in types.list_types(kind).await? {
        if matches(&query, &entry.type_name, &entry.meta.description) {
            found.push(entry);
        }
    }
    summarize(types, kind, found).await
}

/// [`search`] over rows `build_index` read: only the matching rows are copied.
pub async fn search_loaded(
    types: &LoadedTypeIndex<'_>,
    kind: Kind,
    query: &str,
) -> Result<Vec<TypeSummary>, LifecycleError> {
    let query = query.to_lowercase();
    let mut found = Vec::new();
    for source in types.sources_of_kind(kind) {
        if let fen_domain::RowState::Indexed {
            type_name, meta, ..
        } = source.state()
        {
            if matches(&query, type_name, &meta.description) {
                found.extend(entry_of(source));
            }
        }
    }
    summarize(types, kind, found).await
}

/// Whether a type matches a lower-cased query (spec 30 §5.7).
fn matches(query: &str, type_name: &TypeName, description: &str) -> bool {
    query.is_empty()
        || type_name.as_str().contains(query)
        || description.to_lowercase().contains(query)
}

/// The summaries of the matching rows, sorted by type: extension counts, and the
/// declared spelling from the descriptors of the matches, read in one `entries_at`.
async fn summarize(
    types: &dyn TypeIndex,
    kind: Kind,
    found: Vec<TypeEntry>,
) -> Result<Vec<TypeSummary>, LifecycleError> {
    let mut counted = Vec::with_capacity(found.len());
    for entry in found {
        let extension_count = if kind == Kind::Model {
            types.extensions_for(&entry.type_name).await?.len()
        } else {
            0
        };
        counted.push((entry, extension_count));
    }
    let paths: Vec<CanonicalPath> = counted.iter().map(|(e, _)| e.source_path.clone()).collect();
    let mut full: BTreeMap<CanonicalPath, TypeEntry> = match paths.is_empty() {
        true => BTreeMap::new(),
        false => types
            .entries_at(&paths)
            .await?
            .into_iter()
            .map(|e| (e.source_path.clone(), e))
            .collect(),
    };
    let mut out: Vec<TypeSummary> = counted
        .into_iter()
        .map(|(entry, extension_count)| {
            // A row rewritten since the listing keeps what the listing read.
            let entry = full.remove(&entry.source_path).unwrap_or(entry);
            TypeSummary {
                declared_type: declared_type(&entry),
                entry,
                extension_count,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.entry.type_name, &a.entry.source_path).cmp(&(&b.entry.type_name, &b.entry.source_path))
    });
    Ok(out)
}

/// Describes a type: of `kind` when given, else of the one kind that has it.
pub async fn describe(
    types: &dyn TypeIndex,
    kind: Option<Kind>,
    raw: &str,
) -> Result<TypeDescription, DescribeError> {
    let name = TypeName::parse(raw).map_err(|_| DescribeError::UnknownType {
        name: raw.to_owned(),
        suggestions: Vec::new(),
    })?;
    let kinds: Vec<Kind> = match kind {
        Some(kind) => vec![kind],
        None => Kind::ALL
            .into_iter()
            .filter(|k| *k != Kind::Extension)
            .collect(),
    };
    let mut found = Vec::new();
    for kind in &kinds {
        if let Some(entry) = types
            .find_type(*kind, &name)
            .await
            .map_err(LifecycleError::from)?
        {
            found.push(entry);
        }
    }
    let entry = match found.len() {
        0 => {
            let mut known = Vec::new();
            for kind in &kinds {
                known.extend(
                    types
                        .list_types(*kind)
                        .await
                        .map_err(LifecycleError::from)?,
                );
            }
            return Err(DescribeError::UnknownType {
                name: name.to_string(),
                suggestions: suggestions(name.as_str(), known.iter().map(|e| e.type_name.as_str())),
            });
        }
        1 => found.remove(0),
        _ => {
            return Err(DescribeError::Ambiguous {
                name: name.to_string(),
                kinds: found.iter().map(|e| e.kind.as_str().to_owned()).collect(),
            })
        }
    };
    let extensions = match entry.kind {
        Kind::Model => types
            .extensions_for(&entry.type_name)
            .await
            .map_err(LifecycleError::from)?,
        _ => Vec::new(),
    };
    // The descriptors of the type and its extensions, in one read.
    let paths: Vec<CanonicalPath> = std::iter::once(&entry)
        .chain(&extensions)
        .map(|e| e.source_path.clone())
        .collect();
    let mut full: BTreeMap<CanonicalPath, TypeEntry> = types
        .entries_at(&paths)
        .await
        .map_err(LifecycleError::from)?
        .into_iter()
        .map(|e| (e.source_path.clone(), e))
        .collect();
    let mut fill = |e: TypeEntry| full.remove(&e.source_path).unwrap_or(e);
    let entry = fill(entry);
    let extensions: Vec<TypeEntry> = extensions.into_iter().map(&mut fill).collect();
    let descriptor: Value = serde_json::from_str(&entry.meta.descriptor).unwrap_or(Value::Null);
    let MergedType {
        methods, warnings, ..
    } = merge_members(&entry, &extensions);
    Ok(TypeDescription {
        entry,
        descriptor,
        methods,
        warnings,
    })
}

/// The members of a model type with its extensions attached (spec 30 §2.4).
#[derive(Clone, Debug, PartialEq)]
pub struct MergedType {
    /// Every method, base first, then extensions in ascending source path.
    pub methods: Vec<MethodInfo>,
    /// Every resource spec: name → schema.
    pub resources: BTreeMap<String, Value>,
    /// One line per member of an extension that could not attach.
    pub warnings: Vec<String>,
}

/// Merges `extensions` (ascending source path) into `base` from their descriptors: a
/// method or resource name already present is not attached, and a warning names the
/// extension source, the member and its existing owner.
pub fn merge_members(base: &TypeEntry, extensions: &[TypeEntry]) -> MergedType {
    let descriptor: Value = serde_json::from_str(&base.meta.descriptor).unwrap_or(Value::Null);
    let mut methods = methods_of(&descriptor, "base");
    let mut resources: BTreeMap<String, Value> = BTreeMap::new();
    let mut resource_owner: BTreeMap<String, String> = BTreeMap::new();
    for (name, schema) in resources_of(&descriptor) {
        resource_owner.insert(name.clone(), "base".to_owned());
        resources.insert(name, schema);
    }
    let mut warnings = Vec::new();
    for ext in extensions {
        let ext_descriptor: Value =
            serde_json::from_str(&ext.meta.descriptor).unwrap_or(Value::Null);
        let origin = ext.source_path.as_str();
        for method in methods_of(&ext_descriptor, origin) {
            match methods.iter().find(|m| m.name == method.name) {
                None => methods.push(method),
                Some(owner) => warnings.push(format!(
                    "extension {origin} does not attach method \"{}\": the type already has one (from {})",
                    method.name, owner.origin
                )),
            }
        }
        for (name, schema) in resources_of(&ext_descriptor) {
            match resource_owner.get(&name) {
                None => {
                    resource_owner.insert(name.clone(), origin.to_owned());
                    resources.insert(name, schema);
                }
                Some(owner) => warnings.push(format!(
                    "extension {origin} does not attach resource \"{name}\": the type already has one (from {owner})"
                )),
            }
        }
    }
    MergedType {
        methods,
        resources,
        warnings,
    }
}

fn resources_of(descriptor: &Value) -> Vec<(String, Value)> {
    descriptor
        .get("resources")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(name, spec)| {
                    let schema = spec.get("schema").cloned().unwrap_or(Value::Bool(true));
                    (name.clone(), schema)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The declared spelling of a type, from its descriptor (`type`, or `name` for reports).
pub fn declared_type(entry: &TypeEntry) -> String {
    let text = &entry.meta.descriptor;
    // Only the two top-level fields are built; the rest of the descriptor (schemas,
    // methods: most of its bytes) is skipped, not turned into a `Value` tree. A
    // descriptor that is not a plain object, or repeats a key, takes the full parse.
    let fields = match text.trim_start().starts_with('{') {
        true => serde_json::from_str::<DeclaredFields>(text).ok(),
        false => None,
    };
    let declared = match fields {
        Some(fields) => fields.ty.or(fields.name),
        None => {
            let descriptor: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            descriptor
                .get("type")
                .or_else(|| descriptor.get("name"))
                .cloned()
        }
    };
    match declared {
        Some(Value::String(declared)) => declared,
        _ => entry.type_name.to_string(),
    }
}

/// The top-level `type` and `name` of a descriptor. A present field is `Some` whatever
/// its value (`null` included), as `Value::get` would find it.
#[derive(serde::Deserialize)]
struct DeclaredFields {
    #[serde(rename = "type", default, deserialize_with = "present")]
    ty: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    name: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

fn methods_of(descriptor: &Value, origin: &str) -> Vec<MethodInfo> {
    let Some(methods) = descriptor.get("methods").and_then(Value::as_object) else {
        return Vec::new();
    };
    methods
        .iter()
        .map(|(name, method)| MethodInfo {
            name: name.clone(),
            description: method
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            arguments: method
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
            origin: origin.to_owned(),
        })
        .collect()
}

/// Up to three known names within a small edit distance, closest first.
pub fn suggestions<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = known
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|(d, k)| *d <= (wanted.len().max(k.len()) / 3).max(2))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, k)| k.to_owned())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            row[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_descriptor(descriptor: &str) -> TypeEntry {
        let path = CanonicalPath::from_text("/r/m.ts", fen_domain::PathPolicy::Posix).unwrap();
        TypeEntry {
            source_path: path.clone(),
            kind: Kind::Model,
            type_name: TypeName::parse("acme/t").unwrap(),
            bundle: fen_domain::BundleLocation {
                path,
                fingerprint: fen_domain::SourceFingerprint::Content([0; 32]),
            },
            meta: fen_domain::TypeMeta {
                declared_version: "1".into(),
                description: String::new(),
                descriptor: descriptor.into(),
            },
        }
    }

    #[test]
    fn declared_type_reads_type_then_name_like_a_full_parse() {
        let cases = [
            (
                r#"{"methods":{"a":{"type":"x"}},"type":"@Acme/T"}"#,
                "@Acme/T",
            ),
            (r#"{"name":"Report One"}"#, "Report One"),
            (r#"{"type":"A","name":"B"}"#, "A"),
            (r#"{"type":null,"name":"B"}"#, "acme/t"),
            (r#"{"type":7}"#, "acme/t"),
            (r#"{"type":"A","type":"B"}"#, "B"),
            (r#"["A"]"#, "acme/t"),
            ("not json", "acme/t"),
            ("", "acme/t"),
        ];
        for (descriptor, want) in cases {
            assert_eq!(
                declared_type(&with_descriptor(descriptor)),
                want,
                "{descriptor}"
            );
        }
    }

    #[test]
    fn suggestions_are_close_and_few() {
        let known = [
            "acme/net/endpoint",
            "acme/net/endpoints",
            "acme/db/table",
            "zzz/other/thing",
        ];
        let got = suggestions("acme/net/endpont", known.into_iter());
        assert_eq!(got, ["acme/net/endpoint", "acme/net/endpoints"]);
        assert!(suggestions("totally/different", known.into_iter()).is_empty());
    }
}

/// A [`TypeIndex`] over rows already read by `build_index`, so listing, searching and
/// describing cost no further catalog statement on the warm path beyond the one
/// `entries_at` that fetches the descriptors of the rows shown (spec 30 §5.1). Sees
/// the visible `Indexed` rows only, exactly what the SQL queries would return. It
/// borrows the rows (an outline: no descriptors), copies only what a query returns,
/// and asks `descriptors` for `entries_at`.
pub struct LoadedTypeIndex<'a> {
    /// Visible `Indexed` sources of every kind but `extension`.
    types: Vec<&'a fen_domain::Source>,
    /// Visible `Indexed` extension sources by base type, ordered by path.
    extensions: BTreeMap<&'a TypeName, Vec<&'a fen_domain::Source>>,
    descriptors: Arc<dyn TypeIndex>,
}

impl<'a> LoadedTypeIndex<'a> {
    /// The visible `Indexed` sources of a kind, in catalog order.
    fn sources_of_kind(&self, kind: Kind) -> impl Iterator<Item = &'a fen_domain::Source> + '_ {
        let extensions = self.extensions.values().flatten().copied();
        let types = self.types.iter().copied().filter(move |s| s.kind() == kind);
        let (a, b) = match kind {
            Kind::Extension => (None, Some(extensions)),
            _ => (Some(types), None),
        };
        a.into_iter().flatten().chain(b.into_iter().flatten())
    }

    /// Indexes the visible rows of `loaded`; `descriptors` answers `entries_at`.
    pub fn new(
        loaded: &'a fen_domain::ports::Loaded,
        descriptors: Arc<dyn TypeIndex>,
    ) -> LoadedTypeIndex<'a> {
        let mut types = Vec::new();
        let mut extensions: BTreeMap<&'a TypeName, Vec<&'a fen_domain::Source>> = BTreeMap::new();
        for source in loaded.extensions.iter().flat_map(|e| e.visible_sources()) {
            let fen_domain::RowState::Indexed { type_name, .. } = source.state() else {
                continue;
            };
            match source.kind() {
                Kind::Extension => extensions.entry(type_name).or_default().push(source),
                _ => types.push(source),
            }
        }
        for list in extensions.values_mut() {
            list.sort_by(|a, b| a.path().cmp(b.path()));
        }
        LoadedTypeIndex {
            types,
            extensions,
            descriptors,
        }
    }
}

/// The entry of a visible `Indexed` source.
fn entry_of(source: &fen_domain::Source) -> Option<TypeEntry> {
    match source.state() {
        fen_domain::RowState::Indexed {
            type_name,
            bundle,
            meta,
        } => Some(TypeEntry {
            source_path: source.path().clone(),
            kind: source.kind(),
            type_name: type_name.clone(),
            bundle: bundle.clone(),
            meta: meta.clone(),
        }),
        _ => None,
    }
}

/// The type a visible `Indexed` source claims.
fn type_of(source: &fen_domain::Source) -> Option<&TypeName> {
    match source.state() {
        fen_domain::RowState::Indexed { type_name, .. } => Some(type_name),
        _ => None,
    }
}

#[async_trait::async_trait]
impl TypeIndex for LoadedTypeIndex<'_> {
    async fn find_type(
        &self,
        kind: Kind,
        ty: &TypeName,
    ) -> Result<Option<TypeEntry>, fen_domain::ports::RepoError> {
        if kind == Kind::Extension {
            let first = self.extensions.get(ty).and_then(|list| list.first());
            return Ok(first.and_then(|s| entry_of(s)));
        }
        // By I-Repo-1 at most one visible row matches; the smallest path if not.
        Ok(self
            .types
            .iter()
            .filter(|s| s.kind() == kind && type_of(s) == Some(ty))
            .min_by(|a, b| a.path().cmp(b.path()))
            .and_then(|s| entry_of(s)))
    }

    async fn list_types(&self, kind: Kind) -> Result<Vec<TypeEntry>, fen_domain::ports::RepoError> {
        let mut out: Vec<TypeEntry> = match kind {
            Kind::Extension => self
                .extensions
                .values()
                .flatten()
                .filter_map(|s| entry_of(s))
                .collect(),
            _ => self
                .types
                .iter()
                .filter(|s| s.kind() == kind)
                .filter_map(|s| entry_of(s))
                .collect(),
        };
        out.sort_by(|a, b| (&a.type_name, &a.source_path).cmp(&(&b.type_name, &b.source_path)));
        Ok(out)
    }

    async fn extensions_for(
        &self,
        base: &TypeName,
    ) -> Result<Vec<TypeEntry>, fen_domain::ports::RepoError> {
        Ok(self
            .extensions
            .get(base)
            .map(|list| list.iter().filter_map(|s| entry_of(s)).collect())
            .unwrap_or_default())
    }

    async fn entries_at(
        &self,
        paths: &[CanonicalPath],
    ) -> Result<Vec<TypeEntry>, fen_domain::ports::RepoError> {
        self.descriptors.entries_at(paths).await
    }
}

/// One failed source, for the per-extension warnings of spec 30 §3.8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedSource {
    /// The source.
    pub path: fen_domain::CanonicalPath,
    /// Its failure state.
    pub state: fen_domain::RowStateTag,
    /// Its error.
    pub last_error: String,
}

/// Sources in failure states, grouped by extension (ids in order).
pub fn failures(
    loaded: &fen_domain::ports::Loaded,
) -> Vec<(&fen_domain::Extension, Vec<FailedSource>)> {
    loaded
        .extensions
        .iter()
        .map(|ext| {
            let failed: Vec<FailedSource> = ext
                .sources()
                .filter(|s| s.state().tag().is_failure())
                .map(|s| FailedSource {
                    path: s.path().clone(),
                    state: s.state().tag(),
                    last_error: s.state().last_error().unwrap_or("").to_owned(),
                })
                .collect();
            (ext, failed)
        })
        .filter(|(_, failed)| !failed.is_empty())
        .collect()
}

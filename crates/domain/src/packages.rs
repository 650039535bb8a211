//! The npm packages a bundle contains (issue 17): read from its module ids
//! `npm:<name>@<version>/<path>#<digits>` (spec 30 §3.5 as amended), so a user can
//! answer "which zod does this model run?" from `describe` and `--stats`.

use std::collections::BTreeSet;

/// One package inside a bundle.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct BundledPackage {
    /// `zod` or `@scope/pkg`.
    pub name: String,
    /// The installed `package.json` version.
    pub version: String,
}

/// The packages whose modules a bundle file's JSON text holds, sorted, without
/// parsing the JSON: a module record starts with `{"id":"npm:`, which cannot occur
/// inside a JSON string (its quotes would be escaped).
///
/// ```
/// use fen_domain::packages::{bundled_packages, BundledPackage};
/// let text = r#"{"modules":[{"id":"npm:@s/p@1.0.0/a.js#0a","code":""},{"id":"npm:zod@4.6.7/index.js#0a","code":"\"{\"id\":\"npm:x@1.0.0/\""}]}"#;
/// assert_eq!(
///     bundled_packages(text),
///     vec![
///         BundledPackage { name: "@s/p".into(), version: "1.0.0".into() },
///         BundledPackage { name: "zod".into(), version: "4.6.7".into() },
///     ]
/// );
/// ```
pub fn bundled_packages(bundle_json: &str) -> Vec<BundledPackage> {
    const MARK: &str = "{\"id\":\"npm:";
    let mut found = BTreeSet::new();
    for (at, _) in bundle_json.match_indices(MARK) {
        let rest = &bundle_json[at + MARK.len()..];
        let id = rest.split('"').next().unwrap_or_default();
        if let Some(package) = parse_package_id(id) {
            found.insert(package);
        }
    }
    found.into_iter().collect()
}

/// `<name>@<version>/<path>...` → the package.
fn parse_package_id(id: &str) -> Option<BundledPackage> {
    let (name_end, rest) = if let Some(scoped) = id.strip_prefix('@') {
        let slash = scoped.find('/')?;
        let at = scoped[slash..].find('@')? + slash;
        (at + 1, &scoped[at + 1..])
    } else {
        let at = id.find('@')?;
        (at, &id[at + 1..])
    };
    let version = rest.split('/').next()?;
    let name = &id[..name_end];
    (!name.is_empty() && !version.is_empty()).then(|| BundledPackage {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

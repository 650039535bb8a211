//! The bundle container: the JSON file format of one built entry point (spec 30 §3.5).
//!
//! A bundle is compact JSON with a fixed field order and a trailing newline:
//! `format, layout, kind, entry, fingerprint, contentSha256, hostModules, modules`.
//! Serialization is deterministic (G4): serde emits struct fields in declaration
//! order, modules are kept sorted by id and the host modules sorted by name.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use fen_domain::layout::BUNDLE_LAYOUT_VERSION;
use fen_domain::{Kind, SourceFingerprint};

/// The `format` field of every bundle file.
pub const BUNDLE_FORMAT: &str = "fen-bundle";

/// Number of fingerprint hex digits in a module id.
pub(crate) const ID_FINGERPRINT_DIGITS: usize = 12;

/// One parsed bundle file. Built by [`BundleContainer::new`], which sorts the modules
/// and computes `contentSha256`; read back by [`BundleContainer::from_json_bytes`],
/// which checks them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleContainer {
    format: String,
    layout: String,
    kind: Kind,
    entry: String,
    fingerprint: SourceFingerprint,
    content_sha256: String,
    host_modules: Vec<String>,
    modules: Vec<BundleModule>,
}

/// One module of a bundle: its id, generated code and an optional source map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleModule {
    /// `<origin>:/<boundary-relative path>#<first 12 hex of the fingerprint>`.
    pub id: String,
    /// The generated ES module code; relative specifiers are rewritten to module ids.
    pub code: String,
    /// Source map v3 JSON text whose `sources` names the module id, or `None`.
    pub map: Option<String>,
}

/// Why bytes are not a usable bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleFileError {
    /// Not JSON of the container's shape.
    #[error("bundle is not valid JSON of the bundle format")]
    Malformed(#[source] serde_json::Error),
    /// `format` is not [`BUNDLE_FORMAT`].
    #[error("bundle format is `{0}`, expected `{BUNDLE_FORMAT}`")]
    WrongFormat(String),
    /// `layout` is not this binary's [`BUNDLE_LAYOUT_VERSION`].
    #[error("bundle layout is `{0}`, expected `{BUNDLE_LAYOUT_VERSION}`")]
    WrongLayout(String),
    /// Modules are not strictly sorted by id, or the entry is not one of them.
    #[error("bundle module table is inconsistent")]
    InconsistentModules,
    /// `contentSha256` does not match the modules.
    #[error("bundle contentSha256 does not match its modules")]
    ContentMismatch,
}

impl BundleContainer {
    /// Assembles a container: sorts `modules` by id and `host_modules` by name, and
    /// computes `contentSha256`. `entry` must be the id of one of the modules.
    pub fn new(
        kind: Kind,
        entry: String,
        fingerprint: SourceFingerprint,
        mut host_modules: Vec<String>,
        mut modules: Vec<BundleModule>,
    ) -> BundleContainer {
        modules.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
        host_modules.sort_unstable();
        host_modules.dedup();
        let content_sha256 = content_sha256(&modules);
        BundleContainer {
            format: BUNDLE_FORMAT.to_owned(),
            layout: BUNDLE_LAYOUT_VERSION.to_owned(),
            kind,
            entry,
            fingerprint,
            content_sha256,
            host_modules,
            modules,
        }
    }

    /// Parses bundle bytes and checks format, layout, module order and
    /// `contentSha256`. The fingerprint is not compared here; see [`is_usable`].
    pub fn from_json_bytes(bytes: &[u8]) -> Result<BundleContainer, BundleFileError> {
        let container: BundleContainer =
            serde_json::from_slice(bytes).map_err(BundleFileError::Malformed)?;
        container.verify()?;
        Ok(container)
    }

    /// Compact JSON in the fixed field order, plus a trailing newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(self)
            .expect("a container of strings and a fingerprint always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// The declared kind (`model` or `extension` in `models/`, else the kind dir's).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The entry module's id.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The fingerprint of the sources the bundle was built from.
    pub fn fingerprint(&self) -> &SourceFingerprint {
        &self.fingerprint
    }

    /// `sha256` hex over `id "\n" code "\n"` of every module in order.
    pub fn content_sha256(&self) -> &str {
        &self.content_sha256
    }

    /// The `fen:*` host modules imported anywhere in the bundle, sorted.
    pub fn host_modules(&self) -> &[String] {
        &self.host_modules
    }

    /// The modules, sorted by id, entry included.
    pub fn modules(&self) -> &[BundleModule] {
        &self.modules
    }

    /// The module with this id.
    pub fn module(&self, id: &str) -> Option<&BundleModule> {
        self.modules
            .binary_search_by(|module| module.id.as_bytes().cmp(id.as_bytes()))
            .ok()
            .map(|index| &self.modules[index])
    }

    fn verify(&self) -> Result<(), BundleFileError> {
        if self.format != BUNDLE_FORMAT {
            return Err(BundleFileError::WrongFormat(self.format.clone()));
        }
        if self.layout != BUNDLE_LAYOUT_VERSION {
            return Err(BundleFileError::WrongLayout(self.layout.clone()));
        }
        let sorted = self
            .modules
            .windows(2)
            .all(|pair| pair[0].id.as_bytes() < pair[1].id.as_bytes());
        if !sorted || self.module(&self.entry).is_none() {
            return Err(BundleFileError::InconsistentModules);
        }
        if content_sha256(&self.modules) != self.content_sha256 {
            return Err(BundleFileError::ContentMismatch);
        }
        Ok(())
    }
}

/// True iff `bytes` parse as a bundle of this binary's format and layout, built for
/// `expected` and with a verifying `contentSha256` (spec 30 §3.5 "usable").
pub fn is_usable(bytes: &[u8], expected: &SourceFingerprint) -> bool {
    BundleContainer::from_json_bytes(bytes)
        .is_ok_and(|container| container.fingerprint == *expected)
}

/// The id of the module at `relative` (boundary-relative, `/`-separated) in a bundle
/// of `bundle_prefix` (`local`, `mounted/<id>`, `pulled/<key>`) built for
/// `fingerprint`.
///
/// ```
/// use fen_domain::SourceFingerprint;
/// use fen_infrastructure::bundler::module_id;
/// let fp: SourceFingerprint = format!("3f9a1c2077b4{}", "0".repeat(52)).parse().unwrap();
/// assert_eq!(
///     module_id("local", "models/net/endpoint.ts", &fp),
///     "local:/models/net/endpoint.ts#3f9a1c2077b4",
/// );
/// ```
pub fn module_id(bundle_prefix: &str, relative: &str, fingerprint: &SourceFingerprint) -> String {
    let mut short = String::with_capacity(ID_FINGERPRINT_DIGITS);
    for byte in &fingerprint.digest()[..ID_FINGERPRINT_DIGITS / 2] {
        short.push_str(&format!("{byte:02x}"));
    }
    format!("{bundle_prefix}:/{relative}#{short}")
}

/// The module id of a file inside an npm package: `npm:<name>@<version>/<path in the
/// package>#<first 12 hex of the fingerprint>`. Host-path free, so a bundle is the same
/// on every checkout.
///
/// ```
/// use fen_domain::SourceFingerprint;
/// use fen_infrastructure::bundler::package_module_id;
/// let fp: SourceFingerprint = format!("3f9a1c2077b4{}", "0".repeat(52)).parse().unwrap();
/// assert_eq!(
///     package_module_id("zod", "4.6.7", "index.js", &fp),
///     "npm:zod@4.6.7/index.js#3f9a1c2077b4",
/// );
/// ```
pub fn package_module_id(
    name: &str,
    version: &str,
    path: &str,
    fingerprint: &SourceFingerprint,
) -> String {
    let local = module_id("npm", "", fingerprint);
    let short = local.rsplit('#').next().unwrap_or_default();
    format!("npm:{name}@{version}/{path}#{short}")
}

fn content_sha256(modules: &[BundleModule]) -> String {
    let mut hasher = Sha256::new();
    for module in modules {
        hasher.update(module.id.as_bytes());
        hasher.update(b"\n");
        hasher.update(module.code.as_bytes());
        hasher.update(b"\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    fn fingerprint(fill: char) -> SourceFingerprint {
        fill.to_string().repeat(64).parse().unwrap()
    }

    fn sample() -> BundleContainer {
        let fp = fingerprint('a');
        let entry = module_id("local", "models/a.ts", &fp);
        let helper = module_id("local", "_lib/h.ts", &fp);
        BundleContainer::new(
            Kind::Model,
            entry.clone(),
            fp,
            vec!["fen:sdk".into()],
            vec![
                BundleModule {
                    id: entry,
                    code: format!("import {{ h }} from \"{helper}\";\nexport const model = h;\n"),
                    map: None,
                },
                BundleModule {
                    id: helper,
                    code: "export const h = 1;\n".into(),
                    map: None,
                },
            ],
        )
    }

    #[test]
    fn field_order_sorting_and_trailing_newline() {
        let bytes = sample().to_json_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.ends_with("}\n"));
        assert_eq!(text.matches('\n').count(), 1);
        let keys = [
            "\"format\":\"fen-bundle\"",
            "\"layout\":\"fen-bundle-1\"",
            "\"kind\":\"model\"",
            "\"entry\":\"local:/models/a.ts#aaaaaaaaaaaa\"",
            "\"fingerprint\":",
            "\"contentSha256\":",
            "\"hostModules\":[\"fen:sdk\"]",
            "\"modules\":[{\"id\":\"local:/_lib/h.ts#aaaaaaaaaaaa\"",
        ];
        let positions: Vec<usize> = keys.iter().map(|key| text.find(key).unwrap()).collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{text}");
    }

    #[test]
    fn content_hash_matches_hand_computation() {
        let container = sample();
        let mut concatenated = String::new();
        for module in container.modules() {
            concatenated.push_str(&format!("{}\n{}\n", module.id, module.code));
        }
        let expected: String = Sha256::digest(concatenated.as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(container.content_sha256(), expected);
    }

    #[test]
    fn round_trip_and_usable() {
        let container = sample();
        let bytes = container.to_json_bytes();
        assert_eq!(BundleContainer::from_json_bytes(&bytes).unwrap(), container);
        assert!(is_usable(&bytes, &fingerprint('a')));
    }

    #[test]
    fn unusable_variants() {
        let bytes = sample().to_json_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();

        assert!(!is_usable(&bytes, &fingerprint('b')), "wrong fingerprint");

        let tampered = text.replace("export const h = 1;", "export const h = 2;");
        assert_ne!(tampered, text);
        assert!(matches!(
            BundleContainer::from_json_bytes(tampered.as_bytes()),
            Err(BundleFileError::ContentMismatch)
        ));
        assert!(!is_usable(tampered.as_bytes(), &fingerprint('a')));

        let old_layout = text.replace("\"layout\":\"fen-bundle-1\"", "\"layout\":\"fen-bundle-0\"");
        assert!(matches!(
            BundleContainer::from_json_bytes(old_layout.as_bytes()),
            Err(BundleFileError::WrongLayout(layout)) if layout == "fen-bundle-0"
        ));
        assert!(!is_usable(old_layout.as_bytes(), &fingerprint('a')));

        let other_format = text.replace("\"format\":\"fen-bundle\"", "\"format\":\"other\"");
        assert!(!is_usable(other_format.as_bytes(), &fingerprint('a')));

        assert!(!is_usable(b"", &fingerprint('a')));
        assert!(!is_usable(&bytes[..bytes.len() / 2], &fingerprint('a')));

        let missing_entry = text.replace(
            "\"entry\":\"local:/models/a.ts",
            "\"entry\":\"local:/models/b.ts",
        );
        assert!(matches!(
            BundleContainer::from_json_bytes(missing_entry.as_bytes()),
            Err(BundleFileError::InconsistentModules)
        ));
    }

    #[test]
    fn module_id_uses_the_digest_of_unreadable_fingerprints_too() {
        let fp: SourceFingerprint =
            format!("MISSING:{}", "0123456789ab".repeat(6).get(..64).unwrap())
                .parse()
                .unwrap();
        assert_eq!(
            module_id("pulled/@s/n", "models/x.ts", &fp),
            "pulled/@s/n:/models/x.ts#0123456789ab"
        );
    }
}

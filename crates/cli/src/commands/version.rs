//! `fen --version`: the binary's version and the on-disk formats it reads and writes,
//! so a bug report names them (the catalog schema is the newest embedded migration).

use serde_json::json;

use crate::output::{self, Mode};

/// The newest catalog schema version this binary applies.
fn catalog_schema_version() -> i64 {
    fen_infrastructure::catalog::embedded_versions()
        .last()
        .copied()
        .unwrap_or(0)
}

/// Prints the version text, or with `--json` one document
/// `{"version", "catalogSchemaVersion", "bundleLayoutVersion"}`.
pub fn print(mode: Mode) {
    let version = env!("CARGO_PKG_VERSION");
    let schema = catalog_schema_version();
    let layout = fen_domain::layout::BUNDLE_LAYOUT_VERSION;
    let human = format!("fen {version}\ncatalog schema {schema}\nbundle layout {layout}");
    let json = json!({
        "version": version,
        "catalogSchemaVersion": schema,
        "bundleLayoutVersion": layout,
    });
    output::print_result(mode, &human, &json);
}

//! The runtime's reading of a bundle container (spec 30 §3.5): only what evaluation
//! needs (format, layout, entry and the modules' ids and code). Fingerprint and
//! `contentSha256` are checked by whoever decides that a bundle file is usable before
//! handing it to the runtime.

use std::collections::HashMap;

use serde::Deserialize;

use fen_domain::layout::BUNDLE_LAYOUT_VERSION;

const BUNDLE_FORMAT: &str = "fen-bundle";

/// The modules of one bundle, by id.
#[derive(Debug)]
pub(crate) struct ParsedBundle {
    /// The entry module's id.
    pub(crate) entry: String,
    /// Module id → code.
    pub(crate) modules: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Container {
    format: String,
    layout: String,
    entry: String,
    modules: Vec<ContainerModule>,
}

#[derive(Deserialize)]
struct ContainerModule {
    id: String,
    code: String,
}

/// Parses container text; the error is a one-line reason.
pub(crate) fn parse_bundle(text: &str) -> Result<ParsedBundle, String> {
    let container: Container =
        serde_json::from_str(text).map_err(|e| format!("not a bundle container: {e}"))?;
    if container.format != BUNDLE_FORMAT {
        return Err(format!(
            "format is {:?}, expected {BUNDLE_FORMAT:?}",
            container.format
        ));
    }
    if container.layout != BUNDLE_LAYOUT_VERSION {
        return Err(format!(
            "layout is {:?}, expected {BUNDLE_LAYOUT_VERSION:?}",
            container.layout
        ));
    }
    let mut modules = HashMap::with_capacity(container.modules.len());
    for module in container.modules {
        if module.id.starts_with("fen:") {
            return Err(format!(
                "module id {:?} uses the host scheme fen:",
                module.id
            ));
        }
        if module.id.contains('\0') || module.code.contains('\0') {
            return Err(format!("module {:?} contains a NUL character", module.id));
        }
        if modules.insert(module.id.clone(), module.code).is_some() {
            return Err(format!("module id {:?} appears twice", module.id));
        }
    }
    if !modules.contains_key(&container.entry) {
        return Err(format!(
            "entry {:?} is not one of the modules",
            container.entry
        ));
    }
    Ok(ParsedBundle {
        entry: container.entry,
        modules,
    })
}

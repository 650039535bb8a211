//! `fen model type search|describe` and `fen extension describe` (spec 30 §5.7): answers
//! from catalog rows and stored descriptors; evaluates nothing.

use fen_domain::Kind;
use fen_lifecycle::registry::{self, DescribeError, TypeDescription};
use serde_json::{json, Value};

use super::Outcome;
use crate::context::Context;
use crate::error::{CliError, ErrorCode};

/// `fen model type search [QUERY] [--kind K]`.
pub async fn search(ctx: &Context, query: &str, kind: Kind) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let summary = ctx.index(&repo).await?;
    let index = registry::LoadedTypeIndex::new(&summary.loaded, repo.adapters.types.clone());
    let found = registry::search_loaded(&index, kind, query)
        .await
        .map_err(CliError::from)?;
    drop(index);
    // One command per process: freeing every row of the catalog one by one would only
    // delay the exit.
    std::mem::forget(summary);
    let mut human = String::new();
    let mut rows = Vec::new();
    for summary in &found {
        let meta = &summary.entry.meta;
        human.push_str(&format!(
            "{}  {}  {}\n",
            summary.declared_type, meta.declared_version, meta.description
        ));
        rows.push(json!({
            "type": summary.entry.type_name.as_str(),
            "declaredType": summary.declared_type,
            "kind": summary.entry.kind.as_str(),
            "version": meta.declared_version,
            "description": meta.description,
            "sourcePath": summary.entry.source_path.as_str(),
            "extensionCount": summary.extension_count,
        }));
    }
    // The built-in datastores (spec 30 §5.2) sort after every scoped `@...` type.
    if kind == Kind::Datastore {
        for builtin in fen_lifecycle::builtin::search_datastores(query) {
            human.push_str(&format!(
                "{}  (built-in)  {}\n",
                builtin.name, builtin.description
            ));
            rows.push(json!({
                "type": builtin.name,
                "declaredType": builtin.name,
                "kind": "datastore",
                "version": env!("CARGO_PKG_VERSION"),
                "description": builtin.description,
                "sourcePath": null,
                "extensionCount": 0,
                "builtin": true,
            }));
        }
    }
    if rows.is_empty() {
        human = match query {
            "" => format!("no {} types are installed", kind.as_str()),
            q => format!("no {} type matches \"{q}\"", kind.as_str()),
        };
    }
    Ok(Outcome {
        human: human.trim_end().to_owned(),
        json: json!({ "types": rows }),
        exit_code: 0,
    })
}

/// `fen model type describe TYPE` (kind model) and `fen extension describe TYPE`.
pub async fn describe(ctx: &Context, raw: &str, kind: Option<Kind>) -> Result<Outcome, CliError> {
    if matches!(kind, None | Some(Kind::Datastore)) {
        if let Some(builtin) = fen_lifecycle::builtin::datastore(raw.trim()) {
            // Still a repo command: the same errors outside a repository.
            ctx.repo_root()?;
            return Ok(render_builtin(&builtin));
        }
    }
    let repo = ctx.open_repo().await?;
    let summary = ctx.index(&repo).await?;
    let index = registry::LoadedTypeIndex::new(&summary.loaded, repo.adapters.types.clone());
    let description = registry::describe(&index, kind, raw)
        .await
        .map_err(describe_error)?;
    drop(index);
    // One command per process (see `search`).
    std::mem::forget(summary);
    for warning in &description.warnings {
        ctx.warn(warning);
    }
    Ok(render(&description))
}

fn describe_error(error: DescribeError) -> CliError {
    match error {
        DescribeError::UnknownType { name, suggestions } => {
            CliError::unknown_type(&name, &suggestions)
        }
        DescribeError::Ambiguous { ref kinds, .. } => {
            let first = kinds.first().cloned().unwrap_or_default();
            CliError::new(ErrorCode::InvalidInput, error.to_string())
                .with_hint(format!("pass --kind, e.g. --kind {first}"))
        }
        DescribeError::Catalog(inner) => CliError::from(inner),
    }
}

fn render(description: &TypeDescription) -> Outcome {
    let entry = &description.entry;
    let descriptor = &description.descriptor;
    let declared = descriptor
        .get("type")
        .or_else(|| descriptor.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(entry.type_name.as_str());
    let mut human = format!(
        "{declared}  ({} {})\n{}\nsource: {}\n",
        entry.kind.as_str(),
        entry.meta.declared_version,
        entry.meta.description,
        entry.source_path
    );
    if let Some(args) = descriptor.get("globalArguments") {
        human.push_str(&format!("global arguments: {args}\n"));
    }
    if let Some(resources) = descriptor.get("resources").and_then(Value::as_object) {
        let names: Vec<&str> = resources.keys().map(String::as_str).collect();
        if !names.is_empty() {
            human.push_str(&format!("resources: {}\n", names.join(", ")));
        }
    }
    let packages = bundle_packages(entry.bundle.path.as_str());
    if !packages.is_empty() {
        let list: Vec<String> = packages
            .iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect();
        human.push_str(&format!("packages: {}\n", list.join(", ")));
    }
    if !description.methods.is_empty() {
        human.push_str("methods:\n");
        for method in &description.methods {
            human.push_str(&format!(
                "  {}  {}  [{}]\n",
                method.name, method.description, method.origin
            ));
        }
    }
    let mut json = match descriptor {
        Value::Object(map) => Value::Object(map.clone()),
        _ => json!({}),
    };
    json["kind"] = json!(entry.kind.as_str());
    json["normalizedType"] = json!(entry.type_name.as_str());
    json["sourcePath"] = json!(entry.source_path.as_str());
    json["packages"] = json!(packages);
    json["methods"] = Value::Array(
        description
            .methods
            .iter()
            .map(|m| json!({"name": m.name, "description": m.description, "arguments": m.arguments, "origin": m.origin}))
            .collect(),
    );
    Outcome {
        human: human.trim_end().to_owned(),
        json,
        exit_code: 0,
    }
}

/// The npm packages inside the bundle file at `path` (issue 17), from its module ids;
/// none when the file cannot be read (describe then still shows the catalog's view).
pub(crate) fn bundle_packages(path: &str) -> Vec<fen_domain::packages::BundledPackage> {
    std::fs::read_to_string(path)
        .map(|text| fen_domain::packages::bundled_packages(&text))
        .unwrap_or_default()
}

fn render_builtin(builtin: &fen_lifecycle::builtin::BuiltinType) -> Outcome {
    let descriptor = &builtin.descriptor;
    let mut human = format!(
        "{}  (datastore, built-in)\n{}\n",
        builtin.name, builtin.description
    );
    if let Some(schema) = descriptor.get("configSchema") {
        human.push_str(&format!("config: {schema}\n"));
    }
    if let Some(locks) = descriptor.get("locks").and_then(Value::as_str) {
        human.push_str(&format!("locks: {locks}\n"));
    }
    let mut json = descriptor.clone();
    json["kind"] = json!("datastore");
    json["normalizedType"] = json!(builtin.name);
    json["sourcePath"] = Value::Null;
    json["packages"] = json!([]);
    json["methods"] = json!([]);
    Outcome {
        human: human.trim_end().to_owned(),
        json,
        exit_code: 0,
    }
}

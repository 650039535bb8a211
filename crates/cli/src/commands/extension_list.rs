//! `fen extension list [--kind K]` (spec 30 §5.7): every catalog row with its state,
//! sorted by kind then source path. Evaluates nothing.

use std::collections::BTreeSet;

use fen_domain::{Kind, RowState, RowStateTag, TombstoneReason};
use serde_json::{json, Value};

use super::Outcome;
use crate::colour;
use crate::context::Context;
use crate::error::CliError;

/// Runs the listing.
pub async fn run(ctx: &Context, kind: Option<Kind>) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let loaded = ctx.index(&repo).await?.loaded;
    let visible_models: BTreeSet<String> = loaded
        .extensions
        .iter()
        .flat_map(|e| e.visible_sources())
        .filter(|s| s.kind() == Kind::Model)
        .filter_map(|s| match s.state() {
            RowState::Indexed { type_name, .. } => Some(type_name.to_string()),
            _ => None,
        })
        .collect();
    let mut rows: Vec<(Kind, String, Value, Line)> = Vec::new();
    for ext in &loaded.extensions {
        for source in ext.sources() {
            if kind.is_some_and(|k| k != source.kind()) {
                continue;
            }
            let state = source.state();
            let type_name = match state {
                RowState::Indexed { type_name, .. } => Some(type_name.to_string()),
                _ => None,
            };
            let mut row = json!({
                "extension": ext.id().to_string(),
                "origin": source.origin().as_str(),
                "kind": source.kind().as_str(),
                "sourcePath": source.path().as_str(),
                "state": state.tag().as_str(),
                "type": type_name,
                "lastError": state.last_error(),
                "supersededBy": source.superseded_by().map(|p| p.as_str()),
            });
            if let RowState::Tombstoned {
                reason: TombstoneReason::Renamed { winner },
            } = state
            {
                row["supersededBy"] = json!(winner.as_ref().map(|w| w.as_str()));
            }
            let mut note = String::new();
            if source.kind() == Kind::Extension {
                if let Some(target) = &type_name {
                    let dormant = !visible_models.contains(target);
                    row["targets"] = json!(target);
                    row["dormant"] = json!(dormant);
                    note = if dormant {
                        format!("  targets unknown type {target}")
                    } else {
                        format!("  extends {target}")
                    };
                }
            }
            let shown = ctx.display_path(&repo, source.path().as_str());
            let detail = match (&type_name, state.last_error()) {
                (Some(t), _) if source.kind() != Kind::Extension => format!("  {t}"),
                (_, Some(error)) => format!("  {error}"),
                _ => String::new(),
            };
            let superseded = source
                .superseded_by()
                .map(|p| format!("  (superseded by {})", ctx.display_path(&repo, p.as_str())))
                .unwrap_or_default();
            let human = Line {
                kind: source.kind().as_str(),
                state: state.tag(),
                shown,
                rest: format!("{detail}{note}{superseded}"),
            };
            rows.push((source.kind(), source.path().to_string(), row, human));
        }
    }
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let human = if rows.is_empty() {
        "no extension sources found".to_owned()
    } else {
        let state_width = rows
            .iter()
            .map(|r| r.3.state.as_str().len())
            .max()
            .unwrap_or(0);
        let path_width = rows
            .iter()
            .map(|r| r.3.shown.chars().count())
            .max()
            .unwrap_or(0);
        rows.iter()
            .map(|r| {
                let line = &r.3;
                // Padded first, then coloured: escapes take no columns.
                let state = colour::out(
                    colour::of_state(line.state),
                    &format!("{:<state_width$}", line.state.as_str()),
                );
                format!(
                    "{:<9} {state}  {:<path_width$}{}",
                    line.kind, line.shown, line.rest
                )
                .trim_end()
                .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome {
        human,
        json: json!({ "sources": rows.into_iter().map(|r| r.2).collect::<Vec<_>>() }),
        exit_code: 0,
    })
}

/// One human output line, aligned in columns once every row is known.
struct Line {
    kind: &'static str,
    state: RowStateTag,
    shown: String,
    rest: String,
}

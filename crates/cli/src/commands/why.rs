//! `fen extension why TYPE [--kind K]`: the source that provides a type and why every
//! other candidate does not (ARCHITECTURE "extension why"). Reads the catalog as it
//! was last indexed, once, without `build_index`: it evaluates, builds and locks
//! nothing, so it shows what the last command saw, stale rows included.

use std::io::Read;

use fen_domain::Kind;
use fen_lifecycle::why::{self, Explanation, Reason, Row, SourceProbe, WhyError};
use serde_json::{json, Value};

use super::Outcome;
use crate::colour::{self, Colour};
use crate::context::{Context, Repo};
use crate::error::{printable, CliError, ErrorCode};

/// Most bytes of an entry point read to see whether a failed source names the type.
const PROBE_BYTES: u64 = 1 << 20;

/// Runs `fen extension why`.
pub async fn run(ctx: &Context, raw: &str, kind: Option<Kind>) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let loaded = repo
        .adapters
        .repo
        .load_outline()
        .await
        .map_err(CliError::from)?;
    let empty = loaded.extensions.iter().all(|e| e.sources().len() == 0);
    let explanation = why::explain(&loaded, kind, raw, repo.adapters.store.as_ref(), &FileProbe)
        .await
        .map_err(|error| match error {
            WhyError::UnknownType { name, suggestions } if empty => {
                CliError::unknown_type(&name, &suggestions).with_hint(
                    "the catalog has no sources yet: run 'fen extension list' to index extensions/",
                )
            }
            WhyError::UnknownType { name, suggestions } => {
                CliError::unknown_type(&name, &suggestions)
            }
            WhyError::Ambiguous { ref kinds, .. } => {
                let first = kinds.first().cloned().unwrap_or_default();
                CliError::new(ErrorCode::InvalidInput, error.to_string())
                    .with_hint(format!("pass --kind, e.g. --kind {first}"))
            }
        })?;
    Ok(Outcome {
        human: human(ctx, &repo, &explanation),
        json: to_json(&explanation),
        exit_code: 0,
    })
}

/// Reads the first MiB of an entry point (lossy UTF-8); nothing when unreadable.
struct FileProbe;

impl SourceProbe for FileProbe {
    fn text(&self, path: &fen_domain::CanonicalPath) -> Option<String> {
        let file = std::fs::File::open(path.as_str()).ok()?;
        let mut bytes = Vec::new();
        file.take(PROBE_BYTES).read_to_end(&mut bytes).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn exists(&self, path: &fen_domain::CanonicalPath) -> bool {
        std::fs::symlink_metadata(path.as_str()).is_ok()
    }
}

fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::ShadowedByLocal => "shadowed by a local source",
        Reason::I2Loser => "lost the duplicate rule (I2) of its extension",
        Reason::Tombstoned => "tombstoned (its winner left; the next indexing command revives it)",
        Reason::BundleBuildFailed => "BundleBuildFailed",
        Reason::ValidationFailed => "ValidationFailed",
        Reason::EntryPointUnreadable => "EntryPointUnreadable",
        Reason::OrphanedBundleOnly => "source deleted, only its bundle is left",
    }
}

fn human(ctx: &Context, repo: &Repo, e: &Explanation) -> String {
    let path = |p: &fen_domain::CanonicalPath| ctx.display_path(repo, p.as_str());
    let mut out = format!("{} ({})\n", e.type_name, e.kind.as_str());
    let details = |row: &Row| {
        let mut parts = vec![
            format!("origin {}", row.origin),
            format!("extension {}", row.extension),
        ];
        if let Some(version) = &row.declared_version {
            parts.push(format!("version {version}"));
        }
        let tag = row
            .state
            .parse()
            .unwrap_or(fen_domain::RowStateTag::Indexed);
        parts.push(format!(
            "state {}",
            colour::out(colour::of_state(tag), row.state)
        ));
        let mut lines = vec![parts.join(", ")];
        if !row.source_exists {
            lines.push(colour::out(
                Colour::Yellow,
                "the source file is gone from disk; the next indexing command retires this row",
            ));
        }
        if let Some(fp) = &row.fingerprint {
            lines.push(format!("fingerprint {fp}"));
        }
        if let (Some(bundle), Some(usable)) = (&row.bundle, row.bundle_usable) {
            let verdict = if usable {
                colour::out(Colour::Green, "usable")
            } else {
                colour::out(
                    Colour::Red,
                    "not usable: missing, stale or damaged; the next command rebuilds it",
                )
            };
            lines.push(format!("bundle {} ({verdict})", path(bundle)));
        }
        lines
    };
    match &e.winner {
        Some(winner) => {
            out.push_str(&format!(
                "{} {}\n",
                colour::out(Colour::Green, "winner:"),
                path(&winner.source_path)
            ));
            for line in details(winner) {
                out.push_str(&format!("  {line}\n"));
            }
        }
        None => out.push_str(&format!(
            "{} no visible source provides this type\n",
            colour::out(Colour::Red, "winner:")
        )),
    }
    if !e.candidates.is_empty() {
        out.push_str("not chosen:\n");
        for row in &e.candidates {
            let reason = row
                .reason
                .map(reason_text)
                .unwrap_or("also claims the slot");
            let mut line = format!("  {}  {reason}", path(&row.source_path));
            if let Some(lost_to) = &row.lost_to {
                line.push_str(&format!(" ({})", path(lost_to)));
            }
            if let Some(error) = &row.error {
                line.push_str(&format!(": {}", printable(error.clone())));
            }
            out.push_str(&line);
            out.push('\n');
            for detail in details(row) {
                out.push_str(&format!("    {detail}\n"));
            }
        }
    }
    if !e.extended_by.is_empty() {
        out.push_str("extended by:\n");
        for row in &e.extended_by {
            out.push_str(&format!(
                "  {}  {} ({})\n",
                path(&row.source_path),
                row.extension,
                row.state
            ));
        }
    }
    if !e.suggestions.is_empty() {
        out.push_str(&format!("did you mean: {}\n", e.suggestions.join(", ")));
    }
    out.trim_end().to_owned()
}

fn row_json(row: &Row) -> Value {
    json!({
        "sourcePath": row.source_path.as_str(),
        "origin": row.origin,
        "extension": row.extension,
        "extensionVersion": row.extension_version,
        "version": row.declared_version,
        "state": row.state,
        "fingerprint": row.fingerprint,
        "bundle": row.bundle.as_ref().map(|b| b.as_str()),
        "bundleUsable": row.bundle_usable,
        "reason": row.reason.map(Reason::as_str),
        "error": row.error,
        "sourceExists": row.source_exists,
        "lostTo": row.lost_to.as_ref().map(|p| p.as_str()),
    })
}

fn to_json(e: &Explanation) -> Value {
    json!({
        "type": e.type_name.as_str(),
        "kind": e.kind.as_str(),
        "winner": e.winner.as_ref().map(row_json),
        "candidates": e.candidates.iter().map(row_json).collect::<Vec<_>>(),
        "extendedBy": e.extended_by.iter().map(row_json).collect::<Vec<_>>(),
        "suggestions": e.suggestions,
    })
}

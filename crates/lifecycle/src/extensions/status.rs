//! `fen extension status` (spec 20 §15.5): lockfile, catalog rows of pulled
//! extensions, drift, and pending transactions. Read-only; takes no lock.

use std::collections::BTreeSet;

use fen_domain::layout::PULLED_DIR;
use fen_domain::{ExtensionName, ExtensionOrigin, RowState};
use serde_json::{json, Value};

use super::{listed_entry_points, live};
use crate::adapters::Adapters;
use crate::engine::LifecycleError;

/// One drift finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The extension.
    pub name: String,
    /// `lockfile_without_catalog`, `catalog_without_lockfile`, `version_skew`,
    /// `rows_mismatch`, `missing_files`, `modified_files`, `orphan_files`, `orphan_root`.
    pub problem: &'static str,
    /// Details.
    pub detail: String,
}

/// The status report.
#[derive(Clone, Debug)]
pub struct StatusReport {
    /// The JSON of §15.5.
    pub json: Value,
    /// Drift found.
    pub drift: Vec<Drift>,
    /// `txn-*` ids.
    pub pending: Vec<String>,
}

/// Reads the state and reports drift.
pub async fn status(ad: &Adapters) -> Result<StatusReport, LifecycleError> {
    let document = ad.lockfile_store.read().await?;
    let loaded = ad.repo.load_outline().await?;
    let pulled: Vec<_> = live(
        loaded
            .extensions
            .into_iter()
            .filter(|e| e.origin() == ExtensionOrigin::Pulled)
            .collect(),
    );
    let mut drift = Vec::new();
    let mut push = |name: &str, problem: &'static str, detail: String| {
        drift.push(Drift {
            name: name.to_owned(),
            problem,
            detail,
        })
    };

    let mut names: BTreeSet<ExtensionName> = document.extensions.keys().cloned().collect();
    names.extend(pulled.iter().map(|e| e.id().name.clone()));
    for name in &names {
        let entry = document.extensions.get(name);
        let rows: Vec<_> = pulled
            .iter()
            .filter(|e| &e.id().name == name)
            .cloned()
            .collect();
        let key = name.directory_key();
        match (entry, rows.is_empty()) {
            (Some(_), true) => push(
                name.as_str(),
                "lockfile_without_catalog",
                "the lockfile pins it but the catalog has no rows".to_owned(),
            ),
            (None, false) => push(
                name.as_str(),
                "catalog_without_lockfile",
                "catalog rows exist without a lockfile entry".to_owned(),
            ),
            _ => {}
        }
        let Some(entry) = entry else {
            if rows.is_empty() && ad.trees.roots(&key).any() {
                push(
                    name.as_str(),
                    "orphan_root",
                    format!("{PULLED_DIR}/{key} exists without a lockfile entry"),
                );
            }
            continue;
        };
        if rows.iter().any(|e| e.id().version != entry.version) {
            push(
                name.as_str(),
                "version_skew",
                format!(
                    "the lockfile pins {} but the catalog holds another version",
                    entry.version
                ),
            );
        } else if !rows.is_empty() {
            let mut paths: Vec<_> = rows
                .iter()
                .flat_map(|e| e.sources())
                .filter(|s| !matches!(s.state(), RowState::Tombstoned { .. }))
                .map(|s| s.path().clone())
                .collect();
            paths.sort();
            if paths != listed_entry_points(ad, name, entry) {
                push(
                    name.as_str(),
                    "rows_mismatch",
                    "catalog rows differ from the entry points the lockfile lists".to_owned(),
                );
            }
        }
        let files = super::files_state(ad, entry)?;
        if files.missing > 0 {
            push(
                name.as_str(),
                "missing_files",
                format!(
                    "{} of {} files are missing",
                    files.missing,
                    entry.files.len()
                ),
            );
        } else if files.modified {
            push(
                name.as_str(),
                "modified_files",
                "file contents differ from filesDigest".to_owned(),
            );
        }
        let (on_disk, odd) = ad.trees.list_root_files(&key)?;
        let listed: BTreeSet<&String> = entry.files.iter().collect();
        let unlisted: Vec<&String> = on_disk.iter().filter(|f| !listed.contains(f)).collect();
        if !unlisted.is_empty() || odd {
            push(
                name.as_str(),
                "orphan_files",
                format!("{} unlisted file(s) in the extension root", unlisted.len()),
            );
        }
        let root = ad.layout.pulled_root(name);
        let expected_bundles: BTreeSet<String> = listed_entry_points(ad, name, entry)
            .iter()
            .filter_map(|p| p.relative_to(&root).map(|rel| format!("{rel}.bundle.json")))
            .collect();
        let stray: Vec<String> = ad
            .trees
            .list_bundle_files(&key)?
            .into_iter()
            .filter(|f| !expected_bundles.contains(f))
            .collect();
        if !stray.is_empty() {
            push(
                name.as_str(),
                "orphan_files",
                format!("{} stray file(s) in the bundle root", stray.len()),
            );
        }
    }
    let pending: Vec<String> = ad.trees.txns()?.into_iter().map(|(id, _)| id.0).collect();

    let lockfile: serde_json::Map<String, Value> = document
        .extensions
        .iter()
        .map(|(name, e)| {
            (
                name.as_str().to_owned(),
                json!({"version": e.version.to_string(), "checksum": e.checksum, "files": e.files}),
            )
        })
        .collect();
    let catalog: Vec<Value> = pulled
        .iter()
        .map(|e| {
            json!({
                "name": e.id().name.as_str(),
                "version": e.id().version.to_string(),
                "origin": "pulled",
                "sources": e.sources().map(|s| json!({
                    "sourcePath": s.path().as_str(),
                    "kind": s.kind().as_str(),
                    "type": s.claim().map(|(_, t)| t.as_str().to_owned()),
                    "state": s.state().tag().to_string(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let json = json!({
        "lockfile": lockfile,
        "catalog": catalog,
        "drift": drift.iter().map(|d| json!({"name": d.name, "problem": d.problem, "detail": d.detail})).collect::<Vec<_>>(),
        "pendingTransactions": pending,
    });
    Ok(StatusReport {
        json,
        drift,
        pending,
    })
}

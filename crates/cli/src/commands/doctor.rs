//! `fen doctor extensions` (spec 10 §7): reconcile, report, optional repair. Exits 7
//! when the overall status is `fail`.

use fen_domain::RowStateTag;
use fen_lifecycle::doctor::{self, state_distribution, DoctorOptions, OverallStatus};
use fen_lifecycle::reconcile::{Guardrail, Rebuild, ReconcileMode};
use serde_json::{json, Value};

use super::Outcome;
use crate::args::DoctorArgs;
use crate::context::Context;
use crate::error::{duplicate_type, CliError};

/// Runs doctor.
pub async fn run(ctx: &Context, args: &DoctorArgs) -> Result<Outcome, CliError> {
    let repo = ctx.open_repo().await?;
    let opts = DoctorOptions {
        rebuild: if args.rescan {
            Rebuild::All
        } else {
            Rebuild::Stale
        },
        guardrail: if args.force_reconcile {
            Guardrail::Override
        } else {
            Guardrail::Enforce
        },
        repair: args.repair.then_some(if args.apply {
            ReconcileMode::Apply
        } else {
            ReconcileMode::DryRun
        }),
    };
    let report = doctor::doctor(&repo.adapters, opts)
        .await
        .map_err(CliError::from)?;
    for warning in &report.warnings {
        ctx.warn(warning);
    }

    let mut aggregates = Vec::new();
    let mut details = Vec::new();
    let mut total = 0;
    let mut healthy = 0;
    for ext in &report.extensions {
        let distribution: serde_json::Map<String, Value> = state_distribution(ext)
            .into_iter()
            .map(|(tag, n)| (tag.as_str().to_owned(), json!(n)))
            .collect();
        total += ext.sources().len();
        healthy += ext.visible_sources().count();
        aggregates.push(json!({
            "id": ext.id().to_string(),
            "origin": ext.origin().as_str(),
            "sourceCount": ext.sources().len(),
            "stateDistribution": distribution,
        }));
        for source in ext.sources() {
            details.push(json!({
                "extension": ext.id().to_string(),
                "sourcePath": source.path().as_str(),
                "kind": source.kind().as_str(),
                "state": source.state().tag().as_str(),
                "fingerprint": source.fingerprint().map(|f| f.to_string()),
                "bundlePath": source.state().bundle().map(|b| b.path.as_str()),
                "lastError": source.state().last_error(),
                "supersededBy": source.superseded_by().map(|p| p.as_str()),
            }));
        }
    }
    let transitions: Vec<Value> = report
        .recent_transitions
        .iter()
        .map(|t| json!({"sourcePath": t.source.as_str(), "from": t.from.map(RowStateTag::as_str), "to": t.to.as_str(), "reason": t.reason}))
        .collect();
    let mut json = json!({
        "overallStatus": report.overall_status.as_str(),
        "aggregates": aggregates,
        "totalSources": total,
        "healthySources": healthy,
        "sourceDetails": details,
        "catalogOrphans": report.catalog_orphans.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "skippedRows": report.skipped_rows.iter().map(|s| json!({"sourcePath": s.source_path, "reason": s.reason.as_str()})).collect::<Vec<_>>(),
        "bundleOrphans": report.bundle_orphans.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "recentTransitions": transitions,
    });
    if let Some(trip) = report.guardrail {
        json["guardrail"] = json!({"changed": trip.changed, "total": trip.total});
    }
    if let Some(dup) = &report.reconcile_error {
        json["reconcileError"] = duplicate_type(dup).to_json()["error"].clone();
    }
    if let Some(repair) = &report.repair {
        json["repair"] = json!({
            "mode": match repair.mode { ReconcileMode::DryRun => "dry_run", ReconcileMode::Apply => "applied" },
            "operations": repair.operations.iter().map(|op| json!({"kind": op.kind, "path": op.path, "reason": op.reason})).collect::<Vec<_>>(),
            "prunedRowCount": repair.pruned_row_count,
            "evictedFileCount": repair.evicted_file_count,
        });
    }

    let mut human = format!("overall status: {}\n", report.overall_status.as_str());
    for ext in &report.extensions {
        let counts: Vec<String> = state_distribution(ext)
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(tag, n)| format!("{tag} {n}"))
            .collect();
        human.push_str(&format!(
            "{} ({}): {}\n",
            ext.id(),
            ext.origin().as_str(),
            counts.join(", ")
        ));
        if args.verbose {
            for source in ext.sources() {
                let error = source
                    .state()
                    .last_error()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default();
                human.push_str(&format!(
                    "  {:<20} {}{error}\n",
                    source.state().tag().as_str(),
                    ctx.display_path(&repo, source.path().as_str())
                ));
            }
        }
    }
    human.push_str(&format!("sources: {total}, healthy: {healthy}\n"));
    for t in &report.recent_transitions {
        let from = t.from.map(RowStateTag::as_str).unwrap_or("new");
        human.push_str(&format!(
            "transition: {} {from} -> {}: {}\n",
            ctx.display_path(&repo, t.source.as_str()),
            t.to.as_str(),
            t.reason
        ));
    }
    for path in &report.catalog_orphans {
        human.push_str(&format!("catalog orphan: {path}\n"));
    }
    for row in &report.skipped_rows {
        human.push_str(&format!(
            "skipped row ({}): {}\n",
            row.reason.as_str(),
            row.source_path
        ));
    }
    for path in &report.bundle_orphans {
        human.push_str(&format!("bundle orphan: {path}\n"));
    }
    if let Some(trip) = report.guardrail {
        human.push_str(&format!(
            "guardrail: reconcile would change {} of {} sources and was not applied; rerun with --force-reconcile if that is intended\n",
            trip.changed, trip.total
        ));
    }
    if let Some(dup) = &report.reconcile_error {
        human.push_str(&format!("reconcile error: {dup}\n"));
    }
    if let Some(repair) = &report.repair {
        for op in &repair.operations {
            human.push_str(&format!(
                "repair: {} {} ({})\n",
                op.kind, op.path, op.reason
            ));
        }
        match repair.mode {
            ReconcileMode::DryRun => human.push_str(&format!(
                "{} repair operation(s) planned; rerun with --repair --apply to carry them out\n",
                repair.operations.len()
            )),
            ReconcileMode::Apply => human.push_str(&format!(
                "pruned {} row(s), evicted {} file(s)\n",
                repair.pruned_row_count, repair.evicted_file_count
            )),
        }
    }
    // `fail` is an extension failure (exit 7), but the report is still the result.
    let exit_code = if report.overall_status == OverallStatus::Fail {
        7
    } else {
        0
    };
    Ok(Outcome {
        human: human.trim_end().to_owned(),
        json,
        exit_code,
    })
}

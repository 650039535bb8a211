//! `save_all`: diff-based persistence of a batch of aggregates in one `BEGIN IMMEDIATE`
//! transaction (spec 10 §5.4).
//!
//! The caller holds the lifecycle lock (checked by the repository as P0), so no other
//! fen process writes between our reads and our writes; `BEGIN IMMEDIATE` takes
//! SQLite's write lock up front, so the transaction never fails half-way with an
//! instant busy error on a read→write upgrade. Any error after `BEGIN` rolls the whole
//! transaction back, leaving the catalog's content exactly as it was.

mod checks;
mod plan;
mod slots;

use std::collections::{BTreeMap, HashSet};

use fen_domain::ports::{DuplicateType, RepoError, SaveReport, SkipReason};
use fen_domain::Extension;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

use super::bulk;
use super::error::repo_error;
use super::placement::Placement;
use super::rows::{CatalogRow, RowValues, CONTENT_COLUMNS, ROW_COLUMNS};

pub(crate) use checks::check_batch;

/// Runs steps 1–6 of spec 10 §5.4. Preconditions P0–P5 are already checked.
pub(crate) async fn save_all(
    conn: &mut SqliteConnection,
    batch: &[Extension],
    placement: &Placement,
) -> Result<SaveReport, RepoError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(repo_error)?;
    match apply(&mut tx, batch, placement).await {
        Ok(Applied::Saved(report)) => {
            tx.commit().await.map_err(repo_error)?;
            Ok(report)
        }
        Ok(Applied::Duplicate(mut duplicate)) => {
            tx.rollback().await.map_err(repo_error)?;
            duplicate.existing_is_ghost = is_ghost(&duplicate);
            Err(RepoError::DuplicateType(Box::new(duplicate)))
        }
        Err(error) => {
            // Dropping the transaction would roll back too; doing it here keeps the
            // connection free of a pending rollback for the next caller.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

enum Applied {
    Saved(SaveReport),
    Duplicate(DuplicateType),
}

async fn apply(
    conn: &mut SqliteConnection,
    batch: &[Extension],
    placement: &Placement,
) -> Result<Applied, RepoError> {
    let mut report = SaveReport::default();
    let stored = bulk::fetch::<3>(conn, plan::STORED_COLUMNS, "", &[]).await?;
    let survey = plan::survey(
        stored.into_iter().map(plan::StoredRow::from),
        batch,
        placement,
    );

    // Step 1: pre-flight prune, before I-Repo-1, so that leftovers from another mount
    // path never block an unrelated save.
    for (path, reason) in &survey.prunes {
        delete_row(conn, path).await?;
        match reason {
            SkipReason::Unreachable => report.pruned_unreachable += 1,
            SkipReason::Unowned | SkipReason::Misfiled => report.pruned_unowned += 1,
        }
    }

    // Steps 2–3: target rows, then only the differences.
    let targets = plan::targets(batch, &survey.owners);
    let stored_targets: Vec<&String> = targets
        .keys()
        .filter(|path| survey.owners.contains_key(path.as_str()))
        .collect();
    let current = read_rows(conn, &stored_targets).await?;
    let mut written: HashSet<String> = HashSet::new();
    for (path, target) in &targets {
        match current.get(path) {
            None => {
                insert_row(conn, path, target).await?;
                report.inserted += 1;
                written.insert(path.clone());
            }
            Some(row) => {
                let changes = plan::changed_columns(row, target);
                if changes.is_empty() {
                    report.unchanged += 1;
                } else {
                    update_row(conn, path, &changes).await?;
                    report.updated += 1;
                    written.insert(path.clone());
                }
            }
        }
    }
    for path in survey
        .owned
        .iter()
        .filter(|path| !targets.contains_key(*path))
    {
        delete_row(conn, path).await?;
        report.deleted += 1;
    }

    // Steps 4–5: supersession, then I-Repo-1, over the whole post-save table.
    match slots::settle(conn, placement, &written).await? {
        slots::Settled::Ok(changes) => {
            report.supersession_changes = changes;
            Ok(Applied::Saved(report))
        }
        slots::Settled::Duplicate(duplicate) => Ok(Applied::Duplicate(duplicate)),
    }
}

/// Full rows at `paths`, in one statement.
async fn read_rows(
    conn: &mut SqliteConnection,
    paths: &[&String],
) -> Result<BTreeMap<String, CatalogRow>, RepoError> {
    if paths.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list = serde_json::to_string(&paths)
        .map_err(|e| RepoError::Storage(format!("cannot encode paths: {e}")))?;
    let rows = bulk::fetch::<16>(
        conn,
        ROW_COLUMNS,
        "WHERE source_path IN (SELECT value FROM json_each(?1))",
        &[&list],
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|fields| {
            let row = CatalogRow::from(fields);
            (row.source_path.clone(), row)
        })
        .collect())
}

async fn insert_row(
    conn: &mut SqliteConnection,
    path: &str,
    target: &RowValues,
) -> Result<(), RepoError> {
    let placeholders: Vec<String> = (1..=CONTENT_COLUMNS.len() + 2)
        .map(|n| format!("?{n}"))
        .collect();
    let sql = format!(
        "INSERT INTO bundle_types (source_path, {}, superseded_by) VALUES ({})",
        CONTENT_COLUMNS.join(", "),
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql).bind(path);
    for value in &target.content {
        query = query.bind(value.as_str());
    }
    query
        .bind(target.superseded_by.as_deref().unwrap_or(""))
        .execute(&mut *conn)
        .await
        .map_err(repo_error)?;
    Ok(())
}

/// `UPDATE` of the changed columns only.
async fn update_row(
    conn: &mut SqliteConnection,
    path: &str,
    changes: &[(&'static str, String)],
) -> Result<(), RepoError> {
    let assignments: Vec<String> = changes
        .iter()
        .enumerate()
        .map(|(index, (column, _))| format!("{column} = ?{}", index + 1))
        .collect();
    let sql = format!(
        "UPDATE bundle_types SET {} WHERE source_path = ?{}",
        assignments.join(", "),
        changes.len() + 1
    );
    let mut query = sqlx::query(&sql);
    for (_, value) in changes {
        query = query.bind(value.as_str());
    }
    query
        .bind(path)
        .execute(&mut *conn)
        .await
        .map_err(repo_error)?;
    Ok(())
}

async fn delete_row(conn: &mut SqliteConnection, path: &str) -> Result<(), RepoError> {
    sqlx::query("DELETE FROM bundle_types WHERE source_path = ?1")
        .bind(path)
        .execute(&mut *conn)
        .await
        .map_err(repo_error)?;
    Ok(())
}

/// Spec 10 §5.5 ghost detection: the existing row's source file is gone from disk.
fn is_ghost(duplicate: &DuplicateType) -> bool {
    std::fs::symlink_metadata(duplicate.existing.source_path.as_str()).is_err()
}

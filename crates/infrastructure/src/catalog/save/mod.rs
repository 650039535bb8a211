//! `save_all`: diff-based persistence of a batch of aggregates in one `BEGIN IMMEDIATE`
//! transaction (spec 10 §5.4).
//!
//! The caller holds the lifecycle lock (checked by the repository as P0), so no other
//! fen process writes between our reads and our writes; `BEGIN IMMEDIATE` takes
//! SQLite's write lock up front, so the transaction never fails half-way with an
//! instant busy error on a read→write upgrade. Any error after `BEGIN` rolls the whole
//! transaction back, leaving the catalog's content exactly as it was.
//!
//! What a save reads, so that its cost follows the batch rather than the table: the
//! path and owner of every row from two indexes (never the table, whose owner columns
//! lie in overflow pages once descriptors are large), the stored content of the rows
//! at the batch's paths only, compared where read, and for supersession and I-Repo-1
//! the claimants of contested slots through `idx_bundle_types_type` plus one `UPDATE`
//! that clears stray markers inside SQLite (`slots`).

mod checks;
mod plan;
mod slots;

use std::collections::{BTreeMap, HashMap, HashSet};

use fen_domain::ports::{DuplicateType, RepoError, SaveReport, SkipReason};
use fen_domain::Extension;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

use super::bulk;
use super::error::repo_error;
use super::placement::Placement;
use super::rows::{RowValues, CONTENT_COLUMNS};

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
    let stored = stored_rows(conn).await?;
    let survey = plan::survey(stored, batch, placement);

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
    let targets = plan::targets(batch, &survey);
    let stored_targets: Vec<&str> = targets
        .keys()
        .copied()
        .filter(|path| survey.owner_at(path).is_some())
        .collect();
    let current = diff_rows(conn, &targets, &stored_targets).await?;
    let mut written: HashSet<&str> = HashSet::new();
    for (path, target) in &targets {
        match current.get(path) {
            None => {
                insert_row(conn, path, target).await?;
                report.inserted += 1;
                written.insert(path);
            }
            Some(changes) if changes.is_empty() => report.unchanged += 1,
            Some(changes) => {
                update_row(conn, path, changes).await?;
                report.updated += 1;
                written.insert(path);
            }
        }
    }
    for path in survey.owned().filter(|path| !targets.contains_key(path)) {
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

/// Path and owner of every stored row, without reading the table: the primary-key
/// index gives `rowid, source_path`, `idx_bundle_types_identity` the rowids of each
/// owner; they are joined on `rowid`, which cannot change inside this write
/// transaction. The owner columns follow `descriptor` in the record, so a table scan
/// would walk every row's overflow pages to reach them.
async fn stored_rows(conn: &mut SqliteConnection) -> Result<plan::Stored, RepoError> {
    let (mut paths, owners): (Vec<(i64, String)>, Vec<OwnedRowids>) =
        bulk::fetch_json_pair(conn, STORED_PATHS, STORED_OWNERS).await?;
    let mut stored = plan::Stored::default();
    let mut owner_of_row: Vec<(i64, usize)> = Vec::with_capacity(paths.len());
    for (index, (name, version, rowids)) in owners.into_iter().enumerate() {
        owner_of_row.extend(rowids.into_iter().map(|rowid| (rowid, index)));
        stored.owners.push((name, version));
    }
    paths.sort_unstable_by_key(|(rowid, _)| *rowid);
    owner_of_row.sort_unstable_by_key(|(rowid, _)| *rowid);
    if paths.len() != owner_of_row.len() || paths.iter().zip(&owner_of_row).any(|(p, o)| p.0 != o.0)
    {
        return Err(RepoError::Corrupt(
            "the indexes of bundle_types disagree with each other".to_owned(),
        ));
    }
    stored.rows = paths
        .into_iter()
        .zip(owner_of_row)
        .map(|((_, path), (_, owner))| (path, owner))
        .collect();
    Ok(stored)
}

/// One element of [`STORED_OWNERS`]: an owner and the rowids of its rows.
type OwnedRowids = (String, String, Vec<i64>);

/// `[[rowid, source_path], …]` from the primary-key index alone.
const STORED_PATHS: &str =
    "SELECT json_group_array(json_array(rowid, source_path)) FROM bundle_types";

/// `[[extension_name, extension_version, [rowid, …]], …]` from
/// `idx_bundle_types_identity` alone. (`json` restores the array that the subquery
/// passes on as text.)
const STORED_OWNERS: &str = "SELECT json_group_array(json_array(n, v, json(ids))) FROM \
     (SELECT extension_name AS n, extension_version AS v, json_group_array(rowid) AS ids \
        FROM bundle_types GROUP BY extension_name, extension_version)";

/// Step 3's comparison: for each stored row at `paths` (all of them targets), the
/// columns its target changes, empty when equal. Read in chunks of paths sized like
/// [`bulk::fetch_chunked`]'s, all inside this write transaction; stored values are
/// compared where they were read, never copied.
async fn diff_rows<'a>(
    conn: &mut SqliteConnection,
    targets: &'a BTreeMap<&'a str, RowValues<'a>>,
    paths: &[&str],
) -> Result<HashMap<&'a str, Vec<(&'static str, &'a str)>>, RepoError> {
    let mut diffs = HashMap::with_capacity(paths.len());
    let mut rest = paths;
    let mut size = bulk::FIRST_CHUNK_ROWS;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let encode = |paths: &[&str]| {
            serde_json::to_string(paths)
                .map_err(|e| RepoError::Storage(format!("cannot encode paths: {e}")))
        };
        let list = encode(chunk)?;
        // Rows whose target keeps the stored descriptor (an outline's `Indexed` source)
        // read it as `''`, so it is neither copied nor changed.
        let kept: Vec<&str> = chunk
            .iter()
            .copied()
            .filter(|path| targets.get(path).is_some_and(RowValues::keeps_descriptor))
            .collect();
        let kept = encode(&kept)?;
        let mut columns = plan::STORED_CONTENT_COLUMNS;
        columns[plan::STORED_DESCRIPTOR] =
            "CASE WHEN source_path IN (SELECT value FROM json_each(?2)) THEN '' ELSE descriptor END";
        let mut bytes = 0;
        let rows = bulk::fetch_packed(
            conn,
            columns,
            Some("source_path IN (SELECT value FROM json_each(?1))"),
            &[&list, &kept],
            |_, fields| {
                bytes += fields.iter().map(|field| field.len()).sum::<usize>();
                let stored = plan::StoredContent::from_fields(fields);
                if let Some((path, target)) = targets.get_key_value(stored.source_path) {
                    diffs.insert(*path, plan::changed_columns(&stored, target));
                }
            },
        )
        .await?;
        if !rows.is_empty() {
            size = bulk::next_chunk_rows(bytes, rows.len());
        }
    }
    Ok(diffs)
}

async fn insert_row(
    conn: &mut SqliteConnection,
    path: &str,
    target: &RowValues<'_>,
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
        query = query.bind(value.as_ref());
    }
    query
        .bind(target.superseded_by.unwrap_or(""))
        .execute(&mut *conn)
        .await
        .map_err(repo_error)?;
    Ok(())
}

/// `UPDATE` of the changed columns only.
async fn update_row(
    conn: &mut SqliteConnection,
    path: &str,
    changes: &[(&'static str, &str)],
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
        query = query.bind(*value);
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

#[cfg(test)]
mod tests {
    use super::{STORED_OWNERS, STORED_PATHS};
    use crate::catalog::tests::{raw, Fixture};

    /// The survey must never read the table: its owner columns lie in the overflow
    /// pages of every row with a real descriptor.
    #[tokio::test]
    async fn the_survey_reads_indexes_only() {
        let fx = Fixture::new();
        let repo = fx.open().await;
        repo.close().await;
        let mut conn = raw(&fx.db()).await;
        for (sql, index) in [
            (STORED_PATHS, "sqlite_autoindex_bundle_types_1"),
            (STORED_OWNERS, "idx_bundle_types_identity"),
        ] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&mut conn)
                    .await
                    .expect("plan");
            let scans: Vec<&str> = plan
                .iter()
                .map(|row| row.3.as_str())
                .filter(|step| step.contains("bundle_types"))
                .collect();
            assert_eq!(
                scans,
                vec![format!("SCAN bundle_types USING COVERING INDEX {index}")],
                "{sql}"
            );
        }
        crate::catalog::connection::close(conn).await;
    }
}

//! Supersession (spec 10 §5.6) and I-Repo-1 (§5.5), evaluated over the whole post-save
//! table inside the save's `BEGIN IMMEDIATE` transaction.
//!
//! Only slots with more than one claimant matter to either rule, so one indexed query
//! returns just those rows with their markers; every other marker of an `Indexed` row
//! is cleared by one `UPDATE` that SQLite evaluates without returning rows.

use std::collections::{BTreeMap, HashSet};

use fen_domain::ports::{DuplicateType, Occupant, RepoError};
use fen_domain::{CanonicalPath, ExtensionId, ExtensionName, ExtensionVersion, Kind, TypeName};
use sqlx::sqlite::SqliteConnection;

use crate::catalog::error::repo_error;
use crate::catalog::placement::Placement;

/// Claiming rows (spec 10 §2.4) of every slot with at least two claimants. The inner
/// query needs no `state` test (only `Indexed` rows have a type, spec 10 §4.3), so it
/// reads `idx_bundle_types_type` alone; the outer one applies the exact rule, and the
/// caller counts claimants again.
///
/// Usually no two rows share a type at all, which two counts over the same index
/// prove in half the time of the grouping; the one-row gate `g` skips the rest then
/// (a `WHERE` term would not: SQLite builds the `IN` list before testing it).
const CONTESTED_CLAIMS: &str = "SELECT b.source_path, b.kind, b.type_normalized, \
            b.extension_name, b.extension_version, b.superseded_by
       FROM (SELECT 1 WHERE
               (SELECT count(*) FROM bundle_types WHERE type_normalized > '')
             > (SELECT count(DISTINCT type_normalized) FROM bundle_types
                 WHERE type_normalized > '')) AS g
      CROSS JOIN bundle_types AS b
      WHERE b.state = 'Indexed' AND b.kind <> 'extension' AND b.type_normalized <> ''
        AND (b.type_normalized, b.kind) IN (
              SELECT type_normalized, kind FROM bundle_types
               WHERE kind <> 'extension' AND type_normalized <> ''
               GROUP BY type_normalized, kind
              HAVING count(*) > 1)
      ORDER BY b.source_path";

/// Clears the marker of every `Indexed` row outside the contested slots (`?1`, a JSON
/// array of their paths): no marker is wanted there (spec 10 §5.6 step 1). This scans
/// the table, but `superseded_by <> ''` comes first and needs no content when the
/// value is empty (SQLite takes the length from the record header), so rows without a
/// marker cost no read of their overflow pages, where `state` and the later columns
/// live once a descriptor is large.
const CLEAR_STRAY_MARKERS: &str = "UPDATE bundle_types SET superseded_by = '' \
     WHERE superseded_by <> '' AND state = 'Indexed' \
       AND source_path NOT IN (SELECT value FROM json_each(?1)) \
     RETURNING source_path";

#[derive(Clone, Debug, sqlx::FromRow)]
struct Claim {
    source_path: String,
    kind: String,
    type_normalized: String,
    extension_name: String,
    extension_version: String,
    superseded_by: String,
}

/// What settling the slots found.
pub(crate) enum Settled {
    /// Supersession markers were brought up to date: `(row, new winner)`.
    Ok(Vec<(CanonicalPath, Option<CanonicalPath>)>),
    /// I-Repo-1 is violated; the caller rolls back. Ghost detection is still to do.
    Duplicate(DuplicateType),
}

/// Recomputes supersession, then checks I-Repo-1. `written` holds the paths this
/// transaction inserted or updated (it decides which occupant is `existing`).
pub(crate) async fn settle(
    conn: &mut SqliteConnection,
    placement: &Placement,
    written: &HashSet<&str>,
) -> Result<Settled, RepoError> {
    let claims: Vec<Claim> = sqlx::query_as(CONTESTED_CLAIMS)
        .fetch_all(&mut *conn)
        .await
        .map_err(repo_error)?;
    let mut groups: BTreeMap<(Kind, TypeName), Vec<&Claim>> = BTreeMap::new();
    for claim in &claims {
        let kind = claim
            .kind
            .parse::<Kind>()
            .map_err(|e| RepoError::Corrupt(format!("row {}: {e}", claim.source_path)))?;
        let type_name = TypeName::parse(&claim.type_normalized)
            .map_err(|e| RepoError::Corrupt(format!("row {}: {e}", claim.source_path)))?;
        groups.entry((kind, type_name)).or_default().push(claim);
    }

    // Spec 10 §5.6: one local-class claim hides every pulled claim of its slot.
    let mut desired: BTreeMap<&str, &str> = BTreeMap::new();
    for rows in groups.values() {
        let (pulled, local): (Vec<&Claim>, Vec<&Claim>) = rows
            .iter()
            .partition(|c| placement.is_pulled_path(&c.source_path));
        if let [winner] = local.as_slice() {
            for row in pulled {
                desired.insert(&row.source_path, &winner.source_path);
            }
        }
    }
    // Markers outside the contested slots: cleared by SQLite.
    let contested =
        serde_json::to_string(&claims.iter().map(|c| &c.source_path).collect::<Vec<_>>())
            .map_err(|e| RepoError::Storage(format!("cannot encode paths: {e}")))?;
    let cleared: Vec<String> = sqlx::query_scalar(CLEAR_STRAY_MARKERS)
        .bind(contested)
        .fetch_all(&mut *conn)
        .await
        .map_err(repo_error)?;
    let mut updates: BTreeMap<&str, &str> = cleared.iter().map(|p| (p.as_str(), "")).collect();
    // Markers inside: each claim gets its winner, or none.
    let mut writes = Vec::new();
    for claim in &claims {
        let winner = desired
            .get(claim.source_path.as_str())
            .copied()
            .unwrap_or("");
        if claim.superseded_by != winner {
            updates.insert(&claim.source_path, winner);
            writes.push((&claim.source_path, winner));
        }
    }
    for (path, winner) in writes {
        sqlx::query("UPDATE bundle_types SET superseded_by = ?1 WHERE source_path = ?2")
            .bind(winner)
            .bind(path)
            .execute(&mut *conn)
            .await
            .map_err(repo_error)?;
    }
    let mut changes = Vec::with_capacity(updates.len());
    for (path, winner) in updates {
        changes.push((path_of(path, placement)?, optional_path(winner, placement)?));
    }

    // Spec 10 §5.5: at most one local-class and at most one pulled claim per slot.
    for ((kind, type_name), rows) in &groups {
        let (pulled, local): (Vec<&Claim>, Vec<&Claim>) = rows
            .iter()
            .partition(|c| placement.is_pulled_path(&c.source_path));
        let violators = if local.len() >= 2 {
            local
        } else if pulled.len() >= 2 {
            pulled
        } else {
            continue;
        };
        let (existing, conflicting) = pick_pair(&violators, written);
        return Ok(Settled::Duplicate(DuplicateType {
            kind: *kind,
            type_name: type_name.clone(),
            existing: occupant(existing, placement)?,
            conflicting: occupant(conflicting, placement)?,
            existing_is_ghost: false,
        }));
    }
    Ok(Settled::Ok(changes))
}

/// `existing` is a row this transaction did not write, `conflicting` one it wrote; if
/// all or none were written here, the two smallest paths in order. `rows` is sorted by
/// path and has at least two entries.
fn pick_pair<'a>(rows: &[&'a Claim], written: &HashSet<&str>) -> (&'a Claim, &'a Claim) {
    let untouched = rows
        .iter()
        .find(|c| !written.contains(c.source_path.as_str()));
    let fresh = rows
        .iter()
        .find(|c| written.contains(c.source_path.as_str()));
    match (untouched, fresh) {
        (Some(existing), Some(conflicting)) => (existing, conflicting),
        _ => (rows[0], rows[1]),
    }
}

fn occupant(claim: &Claim, placement: &Placement) -> Result<Occupant, RepoError> {
    let unreadable = |what: &str| RepoError::Corrupt(format!("row {}: {what}", claim.source_path));
    let name =
        ExtensionName::parse(&claim.extension_name).map_err(|e| unreadable(&e.to_string()))?;
    let version = ExtensionVersion::parse(&claim.extension_version)
        .map_err(|e| unreadable(&e.to_string()))?;
    Ok(Occupant {
        extension: ExtensionId::new(name, version),
        source_path: path_of(&claim.source_path, placement)?,
    })
}

fn path_of(text: &str, placement: &Placement) -> Result<CanonicalPath, RepoError> {
    CanonicalPath::from_text(text, placement.policy())
        .map_err(|e| RepoError::Corrupt(format!("stored path {text:?}: {e}")))
}

fn optional_path(text: &str, placement: &Placement) -> Result<Option<CanonicalPath>, RepoError> {
    if text.is_empty() {
        Ok(None)
    } else {
        path_of(text, placement).map(Some)
    }
}

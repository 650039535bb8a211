//! Supersession (spec 10 §5.6) and I-Repo-1 (§5.5), evaluated over the whole post-save
//! table inside the save's `BEGIN IMMEDIATE` transaction.
//!
//! Only slots with more than one claimant matter to either rule, so one indexed query
//! returns just those rows; a second returns the rows whose marker is set now.

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
const CONTESTED_CLAIMS: &str = "SELECT source_path, kind, type_normalized, \
            extension_name, extension_version
       FROM bundle_types
      WHERE state = 'Indexed' AND kind <> 'extension' AND type_normalized <> ''
        AND (type_normalized, kind) IN (
              SELECT type_normalized, kind FROM bundle_types
               WHERE kind <> 'extension' AND type_normalized <> ''
               GROUP BY type_normalized, kind
              HAVING count(*) > 1)
      ORDER BY source_path";

/// `Indexed` rows whose supersession marker is set.
const MARKED: &str = "SELECT source_path, superseded_by FROM bundle_types \
     WHERE state = 'Indexed' AND superseded_by <> ''";

#[derive(Clone, Debug, sqlx::FromRow)]
struct Claim {
    source_path: String,
    kind: String,
    type_normalized: String,
    extension_name: String,
    extension_version: String,
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
    written: &HashSet<String>,
) -> Result<Settled, RepoError> {
    let claims: Vec<Claim> = sqlx::query_as(CONTESTED_CLAIMS)
        .fetch_all(&mut *conn)
        .await
        .map_err(repo_error)?;
    let marked: Vec<(String, String)> = sqlx::query_as(MARKED)
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
    let mut updates: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, current) in &marked {
        match desired.get(path.as_str()) {
            Some(winner) if winner == current => {}
            Some(winner) => {
                updates.insert(path, winner);
            }
            None => {
                updates.insert(path, "");
            }
        }
    }
    for (path, winner) in &desired {
        if !marked.iter().any(|(p, _)| p == path) {
            updates.insert(path, winner);
        }
    }
    let mut changes = Vec::with_capacity(updates.len());
    for (path, winner) in updates {
        sqlx::query("UPDATE bundle_types SET superseded_by = ?1 WHERE source_path = ?2")
            .bind(winner)
            .bind(path)
            .execute(&mut *conn)
            .await
            .map_err(repo_error)?;
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
fn pick_pair<'a>(rows: &[&'a Claim], written: &HashSet<String>) -> (&'a Claim, &'a Claim) {
    let untouched = rows.iter().find(|c| !written.contains(&c.source_path));
    let fresh = rows.iter().find(|c| written.contains(&c.source_path));
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

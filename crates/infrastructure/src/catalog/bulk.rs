//! Reading many rows as one JSON document.
//!
//! sqlx's SQLite driver copies every value of every row on its worker thread and hands
//! rows over one by one, which dominates reads of a few thousand rows. Aggregating the
//! rows inside SQLite (`json_group_array`) moves one string instead; serde then decodes
//! it positionally into the row struct. One statement is still one WAL snapshot.

use fen_domain::ports::RepoError;
use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteConnection;

use super::error::repo_error;

/// `SELECT <columns> FROM bundle_types <filter> ORDER BY <order>` decoded into `T`,
/// whose fields follow `columns` in order. Every column must be `TEXT`.
pub(crate) async fn fetch<T: DeserializeOwned>(
    conn: &mut SqliteConnection,
    columns: &str,
    filter: &str,
    order: &str,
    binds: &[&str],
) -> Result<Vec<T>, RepoError> {
    let sql = format!(
        "SELECT json_group_array(json_array({columns}) ORDER BY {order}) FROM bundle_types {filter}"
    );
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for value in binds {
        query = query.bind(*value);
    }
    let document = query.fetch_one(&mut *conn).await.map_err(repo_error)?;
    serde_json::from_str(&document)
        .map_err(|error| RepoError::Corrupt(format!("unreadable catalog rows: {error}")))
}

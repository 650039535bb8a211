//! Reading many rows in one value.
//!
//! sqlx's SQLite driver copies every value of every row on its worker thread and hands
//! rows over one by one, which dominates reads of a few thousand rows. Here SQLite
//! aggregates the rows into one JSON document (`json_group_array`), which costs less
//! than the per-row hand-over, and serde decodes it. One statement is still one WAL
//! snapshot.

use fen_domain::ports::RepoError;
use sqlx::sqlite::SqliteConnection;

use super::error::repo_error;

/// `SELECT <columns> FROM bundle_types <filter>` as rows of `N` fields, in the order of
/// `columns` (comma-separated `TEXT NOT NULL` columns). The order of the rows is
/// unspecified: callers sort in Rust, which is cheaper than SQLite's sorter here.
pub(crate) async fn fetch<const N: usize>(
    conn: &mut SqliteConnection,
    columns: &str,
    filter: &str,
    binds: &[&str],
) -> Result<Vec<[String; N]>, RepoError>
where
    [String; N]: serde::de::DeserializeOwned,
{
    let sql = format!("SELECT json_group_array(json_array({columns})) FROM bundle_types {filter}");
    let mut query = sqlx::query_scalar::<_, String>(&sql);
    for value in binds {
        query = query.bind(*value);
    }
    let document = query.fetch_one(&mut *conn).await.map_err(repo_error)?;
    decode(&document)
}

/// Decodes a JSON array of `N`-string arrays.
fn decode<const N: usize>(document: &str) -> Result<Vec<[String; N]>, RepoError>
where
    [String; N]: serde::de::DeserializeOwned,
{
    serde_json::from_str(document)
        .map_err(|error| RepoError::Corrupt(format!("unreadable catalog rows: {error}")))
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn rows_decode_positionally_and_reject_wrong_widths() {
        let rows: Vec<[String; 2]> = decode(r#"[["a:b","\"q\""],["",""]]"#).expect("decodes");
        assert_eq!(
            rows,
            vec![
                ["a:b".to_owned(), "\"q\"".to_owned()],
                [String::new(), String::new()],
            ]
        );
        assert!(decode::<2>("[]").expect("empty").is_empty());
        assert!(decode::<2>(r#"[["a"]]"#).is_err());
        assert!(decode::<1>(r#"[[1]]"#).is_err());
    }
}

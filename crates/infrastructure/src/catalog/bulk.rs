//! Reading many rows of `bundle_types` at once.
//!
//! sqlx's SQLite driver copies every value of every row on its worker thread
//! (`sqlite3_value_dup`, an `Arc` per value, a channel message per row) and frees it on
//! the caller's thread under SQLite's allocator mutex. For a few thousand rows that
//! hand-over costs more than SQLite's own work, so bulk reads return few, large values
//! instead: SQLite concatenates many rows into one text (`group_concat`), each row
//! *packed* as
//!
//! ```text
//! [<rowid>,<len 1>,…,<len N>]<column 1>…<column N>
//! ```
//!
//! with byte lengths (`octet_length`) and the column texts verbatim. Packing escapes
//! nothing: a 5 KB descriptor (itself JSON, full of quotes) is copied, never escaped
//! into and parsed back out of a JSON document. Measured on 2 000 rows of real size
//! (5 KB descriptor, 0.75 KB stat records), against one `json_group_array` document of
//! the whole table: `load_all` 185 → 27 ms and peak RSS 64 → 25 MB (10 MB of which is
//! the test process, 11 MB the rows returned); on 200-byte descriptors 18 → 9 ms.
//!
//! - [`fetch_packed`]: one statement, all rows in one value; for few rows (a type
//!   lookup, the rows a save compares, in batches).
//! - [`fetch_chunked`]: rows in chunks of about [`CHUNK_BYTES`] (by `rowid`), one
//!   statement each, inside one read transaction, so they share one WAL snapshot. A
//!   chunk is sent to SQLite before the previous one is decoded, so both threads work.
//! - [`fetch_json_pair`]: short columns of many rows (the paths and owners a save
//!   surveys), where JSON costs SQLite less than packing.
//!
//! Row order is unspecified: callers sort in Rust, which is cheaper than SQLite's sorter.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use fen_domain::ports::RepoError;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Row};

use super::error::repo_error;

/// Text per statement of [`fetch_chunked`]. A chunk is held about three times at once
/// (SQLite builds it by doubling, sqlx copies it), so this bounds a read's transient
/// memory, while each chunk costs a round trip to sqlx's worker thread (measured on
/// 2 000 rows of real size: chunks of 1 024 rows, 6 MB, peaked 16 MB above chunks of
/// 64 rows).
const CHUNK_BYTES: usize = 256 * 1024;

/// Rows of the first chunk, before the row size is known.
pub(crate) const FIRST_CHUNK_ROWS: usize = 64;
/// Bounds of the rows per chunk.
const MIN_CHUNK_ROWS: usize = 16;
const MAX_CHUNK_ROWS: usize = 1024;

/// `SELECT <columns> FROM bundle_types [WHERE <condition>]` in one statement; `build`
/// turns each row's `rowid` and fields into a `T`.
pub(crate) async fn fetch_packed<const N: usize, T>(
    conn: &mut SqliteConnection,
    columns: [&str; N],
    condition: Option<&str>,
    binds: &[&str],
    mut build: impl FnMut(i64, [&str; N]) -> T,
) -> Result<Vec<T>, RepoError> {
    let filter = condition.map(|c| format!("WHERE {c}")).unwrap_or_default();
    let sql = format!(
        "SELECT group_concat({}, '') FROM bundle_types {filter}",
        pack(&columns)
    );
    let mut query = sqlx::query(&sql);
    for value in binds {
        query = query.bind(*value);
    }
    let row = query.fetch_one(&mut *conn).await.map_err(repo_error)?;
    let mut rows = Vec::new();
    unpack(text_of(&row)?, |rowid, fields| {
        rows.push(build(rowid, fields));
    })?;
    Ok(rows)
}

/// `SELECT <columns> FROM bundle_types [WHERE <condition>]` in chunks of about
/// [`CHUNK_BYTES`] in `rowid` order, all inside one read transaction (one WAL
/// snapshot); `build` turns each row's `rowid` and fields into a `T`. `binds` are `?1`,
/// `?2`, … of `condition`. The connection must not be inside a transaction.
///
/// Each chunk also reports its last `rowid` and its row count, so the statement for
/// the next chunk is sent to sqlx's worker thread before this one is decoded: SQLite
/// builds chunk k + 1 while this thread turns chunk k into `T`s.
pub(crate) async fn fetch_chunked<const N: usize, T>(
    conn: &mut SqliteConnection,
    columns: [&str; N],
    condition: Option<&str>,
    binds: &[&str],
    mut build: impl FnMut(i64, [&str; N]) -> T,
) -> Result<Vec<T>, RepoError> {
    let sql = format!(
        "SELECT group_concat(x, ''), max(r), count(*) FROM (SELECT rowid AS r, {} AS x \
         FROM bundle_types WHERE ({}) AND rowid >= ?{} ORDER BY rowid LIMIT ?{})",
        pack(&columns),
        condition.unwrap_or("TRUE"),
        binds.len() + 1,
        binds.len() + 2
    );
    let chunk = |from: i64, limit: usize| {
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(*value);
        }
        query
            .bind(from)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    };
    let mut tx = conn.begin().await.map_err(repo_error)?;
    let mut rows = Vec::new();
    let mut limit = FIRST_CHUNK_ROWS;
    let mut current = chunk(i64::MIN, limit)
        .fetch_one(&mut *tx)
        .await
        .map_err(repo_error)?;
    loop {
        let text = text_of(&current)?;
        let (last, count) = chunk_end(&current)?;
        let next = match last.checked_add(1) {
            Some(from) if count >= limit => Some((from, next_chunk_rows(text.len(), count))),
            _ => None,
        };
        let Some((from, next_limit)) = next else {
            unpack(text, |rowid, fields| rows.push(build(rowid, fields)))?;
            break;
        };
        let mut pending = std::pin::pin!(chunk(from, next_limit).fetch_one(&mut *tx));
        let started = start(pending.as_mut()).await;
        unpack(text, |rowid, fields| rows.push(build(rowid, fields)))?;
        current = finish(started, pending).await.map_err(repo_error)?;
        limit = next_limit;
    }
    tx.commit().await.map_err(repo_error)?;
    Ok(rows)
}

/// The last `rowid` and the row count of a chunk of [`fetch_chunked`].
fn chunk_end(row: &SqliteRow) -> Result<(i64, usize), RepoError> {
    let unreadable =
        |error: sqlx::Error| RepoError::Corrupt(format!("unreadable catalog rows: {error}"));
    let last: Option<i64> = row.try_get(1).map_err(unreadable)?;
    let count: i64 = row.try_get(2).map_err(unreadable)?;
    Ok((
        last.unwrap_or(i64::MAX),
        usize::try_from(count).unwrap_or(0),
    ))
}

/// Rows for the next chunk after one of `rows` rows and `bytes` of text: rows of about
/// the same size follow, so aim at [`CHUNK_BYTES`].
pub(crate) fn next_chunk_rows(bytes: usize, rows: usize) -> usize {
    let per_row = bytes.div_ceil(rows.max(1)).max(1);
    (CHUNK_BYTES / per_row).clamp(MIN_CHUNK_ROWS, MAX_CHUNK_ROWS)
}

/// The JSON documents (`json_group_array(…)`) of two independent statements, decoded
/// as an `A` and a `B`; the second statement runs on sqlx's worker thread while the
/// first document is decoded. For short columns of many rows JSON costs SQLite less
/// than packing (`json_array` of a few short texts is cheaper than `concat` of a header
/// and the texts).
pub(crate) async fn fetch_json_pair<A: DeserializeOwned, B: DeserializeOwned>(
    conn: &mut SqliteConnection,
    first: &str,
    second: &str,
) -> Result<(A, B), RepoError> {
    let row = sqlx::query(first)
        .fetch_one(&mut *conn)
        .await
        .map_err(repo_error)?;
    let mut pending = std::pin::pin!(sqlx::query(second).fetch_one(&mut *conn));
    let started = start(pending.as_mut()).await;
    let a = decode_json(text_of(&row)?)?;
    let row = finish(started, pending).await.map_err(repo_error)?;
    let b = decode_json(text_of(&row)?)?;
    Ok((a, b))
}

fn decode_json<T: DeserializeOwned>(document: &str) -> Result<T, RepoError> {
    serde_json::from_str(document)
        .map_err(|error| RepoError::Corrupt(format!("unreadable catalog rows: {error}")))
}

/// Polls `pending` once: a sqlx query hands its statement to the worker thread on its
/// first poll, so the statement runs while the caller does other work.
async fn start<F: Future>(mut pending: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(pending.as_mut().poll(cx))).await
}

/// The output of a future [`start`]ed earlier.
async fn finish<F: Future>(started: Poll<F::Output>, pending: Pin<&mut F>) -> F::Output {
    match started {
        Poll::Ready(output) => output,
        Poll::Pending => pending.await,
    }
}

/// The text of a `group_concat` result, borrowed from the row (no copy of what may be a
/// megabyte); `NULL` (no rows) is empty.
fn text_of(row: &SqliteRow) -> Result<&str, RepoError> {
    let text: Option<&str> = row
        .try_get(0)
        .map_err(|error| RepoError::Corrupt(format!("unreadable catalog rows: {error}")))?;
    Ok(text.unwrap_or(""))
}

/// The SQL expression that packs `rowid` and `columns` of one row: a JSON array of the
/// `rowid` and the byte lengths, then the column texts verbatim. `concat` builds the
/// whole row in one allocation (`||` would copy the row once per column, `printf`
/// formats long text byte by byte).
fn pack(columns: &[&str]) -> String {
    let lengths: Vec<String> = columns
        .iter()
        .map(|c| format!("octet_length({c})"))
        .collect();
    format!(
        "concat(json_array(rowid, {}), {})",
        lengths.join(", "),
        columns.join(", ")
    )
}

/// Splits packed rows and hands each row's `rowid` and fields to `row`. Text that does
/// not follow the format (a foreign edit could store a non-UTF-8 blob) is `Corrupt`.
fn unpack<'t, const N: usize>(
    mut text: &'t str,
    mut row: impl FnMut(i64, [&'t str; N]),
) -> Result<(), RepoError> {
    let corrupt = |what: &str| RepoError::Corrupt(format!("unreadable catalog rows: {what}"));
    while !text.is_empty() {
        let (header, mut rest) = text
            .strip_prefix('[')
            .and_then(|text| text.split_once(']'))
            .ok_or_else(|| corrupt("a row without a header"))?;
        let mut numbers = header.split(',');
        let rowid = numbers
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| corrupt("a row without a rowid"))?;
        let mut fields = [""; N];
        for field in &mut fields {
            let length = numbers
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|length| rest.is_char_boundary(*length))
                .ok_or_else(|| corrupt("a field that does not have its stated length"))?;
            let (value, tail) = rest.split_at(length);
            *field = value;
            rest = tail;
        }
        if numbers.next().is_some() {
            return Err(corrupt("a row with more fields than expected"));
        }
        row(rowid, fields);
        text = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    fn rows<const N: usize>(text: &str) -> Result<Vec<(i64, [String; N])>, String> {
        let mut rows = Vec::new();
        unpack::<N>(text, |rowid, fields| {
            rows.push((rowid, fields.map(str::to_owned)));
        })
        .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    #[test]
    fn packed_rows_split_at_their_byte_lengths() {
        let text = "[7,3,4]é]x|[\"[-2,0,1]]";
        assert_eq!(
            rows::<2>(text).expect("splits"),
            vec![
                (7, ["é]".to_owned(), "x|[\"".to_owned()]),
                (-2, [String::new(), "]".to_owned()]),
            ]
        );
        assert_eq!(rows::<2>("").expect("empty"), Vec::new());
        for bad in [
            "[7,3,5]é]x|[\"",
            "[7,1,2]é]",
            "[7,3]é]",
            "[7,3,0,0]é]",
            "[x,0,0]",
            "7,0,0]",
            "[7,0,0",
        ] {
            assert!(rows::<2>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_packing_expression_names_every_column_twice() {
        assert_eq!(
            pack(&["a", "b"]),
            "concat(json_array(rowid, octet_length(a), octet_length(b)), a, b)"
        );
    }
}

//! One SQLite connection with fen's settings, in the order of spec 10 §4.1.
//!
//! sqlx applies `busy_timeout` through `sqlite3_busy_timeout` while it establishes the
//! connection, before it sends any PRAGMA, so every later statement (the journal-mode
//! read included) waits for locks instead of failing at once. `journal_mode` is never
//! put in the options: sqlx would send it on every connect, and switching needs an
//! exclusive lock. It is read instead, and switched only by a process that holds the
//! lifecycle lock (creation and migration, spec 10 §4.6).

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::error::SqlFailure;

/// How long SQLite waits for a lock before a statement fails with busy.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows sqlx's worker thread may buffer before it waits for the reader. The default
/// (50) makes a 2 000-row read hop between threads forty times.
const ROW_BUFFER: usize = 1024;

/// SQLite's page cache per connection, in KiB (negative = KiB; SQLite's default is
/// 2 000 KiB). Reads stream each page once (bulk reads walk the table in `rowid` order,
/// and `save_all` reads two small indexes and the rows it compares), so a larger
/// cache buys no speed, while every cached page stays in the process's resident
/// memory: on 2 000 real-size rows (12 MB file) 512 KiB lowered peak RSS of a
/// `load_all` by 1.7 MB and of a `list_types` by 1.3 MB with no slower measure.
/// (`mmap_size` was measured too: it speeds large reads by up to a third, but maps the
/// whole file into resident memory, +12 MB on the same catalog.)
const CACHE_SIZE: &str = "-512";

/// Largest catalog file that is memory-mapped (`mmap_size`), in bytes. A mapped page
/// is read without a `pread` and a copy into SQLite's page cache, which is most of what an
/// up-to-date command spends in SQLite on a small catalog (116 types of real size:
/// about 1-2 MB; `type search` 6.0 -> 5.1 ms); but every mapped page it touches stays
/// in the process's resident memory, so a larger catalog is not mapped at all and
/// keeps the page-cache reads above (2 000 types: +3.4 MB of RSS for no measurable
/// gain when the first 2 MiB were mapped). The database file never shrinks under a
/// reader (no auto-vacuum, fen never runs VACUUM), and a catalog that grows past the
/// map while open is read beyond it as usual.
const MMAP_MAX_BYTES: u64 = 2 * 1024 * 1024;

/// How a connection opens the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read-write on an existing file; a lock-free opener never creates the file.
    Existing,
    /// Read-write, creating the file if missing: only under the lifecycle lock.
    CreateUnderLock,
    /// SQLite `mode=ro`: never creates, never writes.
    ReadOnly,
}

/// Opens one connection (step 1 of spec 10 §4.1).
pub(crate) async fn connect(db: &Path, access: Access) -> Result<SqliteConnection, SqlFailure> {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", CACHE_SIZE)
        .pragma("mmap_size", mmap_size(db))
        .row_buffer_size(ROW_BUFFER);
    let options = match access {
        Access::Existing => options.create_if_missing(false),
        Access::CreateUnderLock => options.create_if_missing(true),
        Access::ReadOnly => options.read_only(true),
    };
    Ok(options.connect().await?)
}

/// `mmap_size` for the file at `db`: all of it when small, else nothing.
fn mmap_size(db: &Path) -> String {
    match std::fs::metadata(db) {
        Ok(meta) if meta.len() <= MMAP_MAX_BYTES => MMAP_MAX_BYTES.to_string(),
        _ => "0".to_owned(),
    }
}

/// Reads `PRAGMA journal_mode` (step 2 of spec 10 §4.1).
pub(crate) async fn is_wal(conn: &mut SqliteConnection) -> Result<bool, SqlFailure> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// Switches to WAL. The caller holds the lifecycle lock, so no other fen process
/// competes for the exclusive lock the switch needs.
pub(crate) async fn switch_to_wal(conn: &mut SqliteConnection) -> Result<(), SqlFailure> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode=WAL")
        .fetch_one(&mut *conn)
        .await?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(SqlFailure::Other(format!(
            "cannot switch the catalog to WAL (journal mode stays {mode})"
        )))
    }
}

/// Closes a connection and waits for SQLite to release the file. Errors are ignored:
/// the connection is being given up anyway, and SQLite rolls back any open
/// transaction when the handle closes.
pub(crate) async fn close(conn: SqliteConnection) {
    let _ = conn.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_catalogs_are_mapped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("catalog.db");
        assert_eq!(mmap_size(&db), "0", "no file yet");
        let file = std::fs::File::create(&db).expect("create");
        file.set_len(MMAP_MAX_BYTES).expect("grow");
        assert_eq!(mmap_size(&db), MMAP_MAX_BYTES.to_string());
        file.set_len(MMAP_MAX_BYTES + 1).expect("grow");
        assert_eq!(mmap_size(&db), "0");
    }
}

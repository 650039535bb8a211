//! `cargo xtask migrate --db <path> [--dry-run]` (spec 10 §4.6): applies the pending
//! catalog migrations while holding the lifecycle lock beside the catalog
//! (`<dir of path>/lifecycle.lock`), then verifies the result: every version recorded
//! and successful with an unchanged checksum, exactly the 16 columns of spec 10 §4.2,
//! the four indexes of §4.4. It touches the catalog file only (no txn recovery).
//! `--dry-run` prints the pending versions and changes nothing.

use std::path::Path;
use std::time::Duration;

use fen_domain::ports::LifecycleLock;
use fen_infrastructure::catalog::{migrate_with_guard, migration_status, verify_schema};
use fen_infrastructure::locking::FileLifecycleLock;

/// How long `migrate` waits for a running fen command to release the lock.
const LOCK_BUDGET: Duration = Duration::from_secs(30);

/// Runs the task; `Err` carries the one-line reason for a non-zero exit.
pub fn run(db: &Path, dry_run: bool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(migrate(db, dry_run))
}

async fn migrate(db: &Path, dry_run: bool) -> Result<(), String> {
    let dir = match db.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let status = migration_status(db)
        .await
        .map_err(|e| format!("{}: {e}", db.display()))?;
    println!("catalog:  {}", db.display());
    println!("embedded: {}", list(&status.embedded));
    println!("applied:  {}", list(&status.applied));
    println!("pending:  {}", list(&status.pending));
    if dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }

    let lock_path = dir.join("lifecycle.lock");
    let lock = FileLifecycleLock::new(
        lock_path.clone(),
        lock_path.display().to_string(),
        LOCK_BUDGET,
    );
    println!("locking:  {}", lock_path.display());
    let guard = lock
        .acquire("cargo xtask migrate")
        .await
        .map_err(|e| e.to_string())?;
    let applied = migrate_with_guard(db, &guard)
        .await
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let check = verify_schema(db)
        .await
        .map_err(|e| format!("{}: {e}", db.display()))?;
    drop(guard);
    println!("migrated: {}", list(&applied));
    if !check.problems.is_empty() {
        for problem in &check.problems {
            eprintln!("{problem}");
        }
        return Err(format!(
            "{} failed verification ({} problem(s))",
            db.display(),
            check.problems.len()
        ));
    }
    println!("verified: versions, columns and indexes match the embedded migrations");
    Ok(())
}

fn list(versions: &[i64]) -> String {
    if versions.is_empty() {
        return "none".to_owned();
    }
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

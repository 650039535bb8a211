//! Scratch directories: time-ordered ids, owner records, and the collection of what
//! dead writers left behind (spec 20 §9.5, §13.3).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fen_domain::ports::Collected;

/// A scratch directory older than this is removed whatever its owner.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// A lockfile temp file (or an ownerless scratch dir) older than this is removed.
const TEMP_AGE: Duration = Duration::from_secs(60);

/// A 26-character ULID: 48 bits of milliseconds, 80 random bits, Crockford base 32.
pub fn new_id() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let random = crate::random::bytes::<10>();
    let mut value: u128 = (millis & 0xFFFF_FFFF_FFFF) << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= u128::from(*byte) << (8 * (9 - i));
    }
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// Writes `dir/owner.json` = `{"pid","host","startedAt"}`.
pub fn write_owner_record(dir: &Path) -> std::io::Result<()> {
    let record = serde_json::json!({
        "pid": std::process::id(),
        "host": crate::locking::hostname(),
        "startedAt": crate::time::rfc3339_now(),
    });
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("owner.json"))?;
    file.write_all(record.to_string().as_bytes())
}

/// Creates `scratch/<kind>-<id>/` with its owner record inside and returns its path.
///
/// The directory is filled under `scratch/.fen-tmp-<kind>-<id>.<pid>` and renamed to
/// its final name, so a process killed at any instant leaves either a temp directory
/// whose name carries its pid or a `stage-*` / `build-*` with a whole record: recovery
/// can always tell a dead owner's leftovers at once (spec 20 §9.5). Created in place,
/// a kill between `mkdir` and the record's write left a directory without a readable
/// record that waited 60 s for collection (issue 9, `cargo xtask stress --random-kill`).
pub fn new_owned_dir(scratch: &Path, kind: &str) -> std::io::Result<PathBuf> {
    let id = new_id();
    let path = scratch.join(format!("{kind}-{id}"));
    let temp = scratch.join(format!(
        "{}{kind}-{id}.{}",
        fen_domain::layout::TEMP_PREFIX,
        std::process::id()
    ));
    fs::create_dir_all(&temp)?;
    let filled = write_owner_record(&temp).and_then(|()| fs::rename(&temp, &path));
    if let Err(error) = filled {
        let _ = fs::remove_dir_all(&temp);
        return Err(error);
    }
    Ok(path)
}

/// The pid in a `.fen-tmp-stage-<id>.<pid>` / `.fen-tmp-build-<id>.<pid>` name.
fn temp_dir_pid(name: &str) -> Option<Option<u32>> {
    let rest = name.strip_prefix(fen_domain::layout::TEMP_PREFIX)?;
    if let Some(doomed) = rest.strip_prefix("bundles-") {
        // A bundles tree renamed aside by `FsBundleStore::clear_blocking` and killed
        // while deleting it: `bundles-<pid>-<nanos>-<n>`.
        return Some(doomed.split('-').next().and_then(|pid| pid.parse().ok()));
    }
    if !(rest.starts_with("stage-") || rest.starts_with("build-")) {
        return None;
    }
    Some(rest.rsplit_once('.').and_then(|(_, pid)| pid.parse().ok()))
}

/// True when a process with this pid exists (Linux: `/proc/<pid>`; elsewhere assumed).
fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn age(path: &Path) -> Duration {
    fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Whether a `stage-*` / `build-*` directory is abandoned: its owner is dead on this
/// host, it is older than 24 h, or it has no readable owner record and is older than
/// 60 s (a writer creates the record right after the directory).
fn abandoned(dir: &Path, host: &str) -> bool {
    if age(dir) > MAX_AGE {
        return true;
    }
    let record = fs::read(dir.join("owner.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    match record {
        Some(record) => {
            let pid = record["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
            let same_host = record["host"].as_str() == Some(host);
            match pid {
                Some(pid) if same_host => pid != std::process::id() && !pid_alive(pid),
                _ => false,
            }
        }
        None => age(dir) > TEMP_AGE,
    }
}

/// Removes abandoned scratch directories (and the temp directories they are filled in)
/// and stray lockfile temp files.
pub(crate) fn collect(scratch: &Path, extensions_dir: &Path) -> Collected {
    let mut out = Collected::default();
    let host = crate::locking::hostname();
    if let Ok(entries) = fs::read_dir(scratch) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let abandoned = if let Some(pid) = temp_dir_pid(&name) {
                // Killed while filling it (see `new_owned_dir`), like the lockfile's
                // temp files: its pid is dead, or it is older than 60 s.
                pid.is_some_and(|p| p != std::process::id() && !pid_alive(p))
                    || age(&path) > TEMP_AGE
            } else if name.starts_with("stage-") || name.starts_with("build-") {
                abandoned(&path, &host)
            } else {
                continue;
            };
            if abandoned && fs::remove_dir_all(&path).is_ok() {
                out.removed.push(name);
            }
        }
    }
    let temp_prefix = format!(
        "{}upstream_extensions.json.",
        fen_domain::layout::TEMP_PREFIX
    );
    if let Ok(entries) = fs::read_dir(extensions_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&temp_prefix) else {
                continue;
            };
            let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
            let dead = pid.is_some_and(|p| p != std::process::id() && !pid_alive(p));
            if (dead || age(&entry.path()) > TEMP_AGE) && fs::remove_file(entry.path()).is_ok() {
                out.removed.push(name);
            }
        }
    }
    out.removed.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_26_chars_and_time_ordered() {
        let a = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_id();
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn dead_owners_are_collected_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let live = scratch.join("stage-live");
        let dead = scratch.join("build-dead");
        fs::create_dir_all(&live).unwrap();
        fs::create_dir_all(&dead).unwrap();
        write_owner_record(&live).unwrap();
        let host = crate::locking::hostname();
        // pid 0x7ffffff0 does not exist.
        fs::write(
            dead.join("owner.json"),
            format!(r#"{{"pid":2147483632,"host":"{host}","startedAt":"x"}}"#),
        )
        .unwrap();
        let ext = dir.path().join("extensions");
        fs::create_dir_all(&ext).unwrap();
        fs::write(
            ext.join(".fen-tmp-upstream_extensions.json.2147483632.abcd"),
            b"x",
        )
        .unwrap();
        // What a process killed inside `new_owned_dir` leaves, and one still filling.
        let killed = scratch.join(".fen-tmp-stage-01KILLED.2147483632");
        fs::create_dir_all(&killed).unwrap();
        let filling = scratch.join(format!(".fen-tmp-build-01LIVE.{}", std::process::id()));
        fs::create_dir_all(&filling).unwrap();
        // A bundles tree renamed aside by a clear that was killed, and one being deleted.
        let doomed = scratch.join(".fen-tmp-bundles-2147483632-17-0");
        fs::create_dir_all(doomed.join("local")).unwrap();
        let deleting = scratch.join(format!(".fen-tmp-bundles-{}-18-1", std::process::id()));
        fs::create_dir_all(&deleting).unwrap();
        let collected = collect(&scratch, &ext);
        assert_eq!(
            collected.removed,
            [
                ".fen-tmp-bundles-2147483632-17-0",
                ".fen-tmp-stage-01KILLED.2147483632",
                ".fen-tmp-upstream_extensions.json.2147483632.abcd",
                "build-dead"
            ]
        );
        assert!(live.exists());
        assert!(filling.exists());
        assert!(deleting.exists());
    }

    #[test]
    fn owned_dirs_appear_with_their_record() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("scratch");
        let stage = new_owned_dir(&scratch, "stage").unwrap();
        let name = stage.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("stage-") && name.len() == "stage-".len() + 26,
            "{name}"
        );
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(stage.join("owner.json")).unwrap()).unwrap();
        assert_eq!(record["pid"], std::process::id());
        // Nothing else: the temp name is gone.
        assert_eq!(fs::read_dir(&scratch).unwrap().count(), 1);
    }
}

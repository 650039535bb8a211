//! The five invariants of spec 20 §16.4, checked on a [`Snapshot`] the harness read
//! itself, plus the parts of I2 and I3 that are about the children's reports.
//!
//! | # | Invariant |
//! | --- | --- |
//! | I1 | catalog ↔ lockfile bijection: `(name, version)` of live pulled `@stress/*` rows = lockfile entries; each entry's rows are exactly the entry points its `files[]` lists, all that version and `Indexed` |
//! | I2 | no DuplicateType leakage: no child reported `duplicate_type`/`conflict`; no two `Indexed` rows share `(kind, type)` |
//! | I3 | no lock exhaustion, busy or partial apply in any child; the children's `lockSpans` never overlap |
//! | I4 | lockfile well-formed, `filesDigest` matches the disk, alpha ∈ {absent, V1, V2}, beta = V1, no `extensions/.fen-tmp-*` |
//! | I5 | no orphan files: every file under the owned roots is listed (or is the bundle of a listed entry point), every listed file and bundle exists and is usable, no symlinks, no `txn-*`/`stage-*`/`build-*` |
//!
//! [`Level`] says how strict: after a round every invariant holds in full (empty
//! directories tolerated); after the final pass empty directories are not tolerated
//! either; right after a process was killed on purpose, only what no crash can break
//! is demanded (see [`Level::AfterCrash`]) until the next locked section recovers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use fen_domain::layout::entry_point_kind;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fixtures::{Fixtures, ALPHA, BETA, SCOPE, V1, V2};
use super::procs::ChildRun;
use super::snapshot::{NodeKind, Row, Snapshot, BUNDLES_ROOT, PULLED_ROOT};

/// How strict a check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// After seeding and after every round: everything, empty directories tolerated.
    Round,
    /// After the final pass (§16.3 step 5): also no empty directories.
    Final,
    /// Right after a child was killed (random-kill mode, crash sweep) and before the
    /// next locked section: the lockfile is whole (atomic rename), no two rows share a
    /// type and no name has rows of two versions (one SQLite transaction), no
    /// symlinks; per-name agreement (I1, the digest of I4, I5's files) is owed only by
    /// names that no pending `txn-*` journal names; `txn-*`, `stage-*`, temp files
    /// and empty directories may be left. The next mutating command must then
    /// bring back the strict form.
    AfterCrash,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

fn violation(invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        invariant,
        detail: detail.into(),
    }
}

/// A lockfile entry as the harness parsed it.
#[derive(Clone, Debug)]
struct Entry {
    version: String,
    files: Vec<String>,
}

/// Checks I1, I2 (catalog part), I4 and I5 on `snapshot` of `repo`.
pub fn check(
    repo: &Path,
    snapshot: &Snapshot,
    fixtures: &Fixtures,
    level: Level,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let excused: BTreeSet<String> = match level {
        Level::AfterCrash => snapshot.pending_names().into_iter().collect(),
        Level::Round | Level::Final => BTreeSet::new(),
    };
    let Some(entries) = check_lockfile(repo, snapshot, fixtures, level, &excused, &mut found)
    else {
        return found;
    };
    match &snapshot.catalog {
        Err(why) => found.push(violation("I1", format!("cannot read the catalog: {why}"))),
        Ok(catalog) => {
            for skipped in &catalog.skipped {
                found.push(violation(
                    "I1",
                    format!("catalog row not attributable: {skipped}"),
                ));
            }
            check_bijection(&entries, &catalog.rows, &excused, &mut found);
            check_types(&catalog.rows, &mut found);
        }
    }
    check_files(snapshot, &entries, &excused, level, &mut found);
    found
}

/// Where an extension's owned roots live: `@scope/a/b` → `@scope/a+b` (§6.2).
pub fn directory_key(name: &str) -> String {
    match name.split_once('/') {
        Some((scope, rest)) => format!("{scope}/{}", rest.replace('/', "+")),
        None => name.to_owned(),
    }
}

/// The entry points an entry's `files[]` lists, relative to the extension root.
fn entry_points(name: &str, entry: &Entry) -> BTreeSet<String> {
    let prefix = format!("{PULLED_ROOT}/{}/", directory_key(name));
    entry
        .files
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix))
        .filter(|rel| entry_point_kind(rel).is_some())
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------
// I4.

fn check_lockfile(
    repo: &Path,
    snapshot: &Snapshot,
    fixtures: &Fixtures,
    level: Level,
    excused: &BTreeSet<String>,
    found: &mut Vec<Violation>,
) -> Option<BTreeMap<String, Entry>> {
    if level != Level::AfterCrash {
        for temp in &snapshot.lockfile_temps {
            found.push(violation(
                "I4",
                format!("temp file extensions/{temp} remains"),
            ));
        }
    }
    let Some(bytes) = &snapshot.lockfile else {
        found.push(violation(
            "I4",
            "the lockfile does not exist (beta must be installed)",
        ));
        return None;
    };
    let document: Value = match serde_json::from_slice(bytes) {
        Ok(document) => document,
        Err(e) => {
            found.push(violation("I4", format!("the lockfile is not JSON: {e}")));
            return None;
        }
    };
    if document["formatVersion"] != 1 {
        found.push(violation(
            "I4",
            format!("formatVersion is {}, not 1", document["formatVersion"]),
        ));
    }
    let Some(map) = document["extensions"].as_object() else {
        found.push(violation("I4", "`extensions` is not an object"));
        return None;
    };
    let mut entries = BTreeMap::new();
    for (name, value) in map {
        let problems = entry_problems(repo, name, value, fixtures, excused.contains(name));
        found.extend(
            problems
                .into_iter()
                .map(|p| violation("I4", format!("{name}: {p}"))),
        );
        let files = value["files"]
            .as_array()
            .map(|files| {
                files
                    .iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let version = value["version"].as_str().unwrap_or("").to_owned();
        entries.insert(name.clone(), Entry { version, files });
    }
    match entries.get(BETA).map(|e| e.version.as_str()) {
        Some(V1) => {}
        Some(other) => found.push(violation("I4", format!("{BETA} is at {other}, not {V1}"))),
        None => found.push(violation("I4", format!("{BETA} is not in the lockfile"))),
    }
    Some(entries)
}

/// What is wrong with one lockfile entry; the disk digest only when not excused.
fn entry_problems(
    repo: &Path,
    name: &str,
    value: &Value,
    fixtures: &Fixtures,
    excused: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let version = value["version"].as_str().unwrap_or("");
    let allowed: &[&str] = match name {
        ALPHA => &[V1, V2],
        BETA => &[V1],
        _ => {
            problems.push("unexpected entry".to_owned());
            &[]
        }
    };
    if fen_domain::ExtensionVersion::parse(version).is_err() {
        problems.push(format!("version {version:?} is not CalVer"));
    } else if !allowed.is_empty() && !allowed.contains(&version) {
        problems.push(format!("version {version} is not one of {allowed:?}"));
    }
    let pulled_at = value["pulledAt"].as_str().unwrap_or("");
    if !is_rfc3339_millis(pulled_at) {
        problems.push(format!(
            "pulledAt {pulled_at:?} is not RFC 3339 UTC with milliseconds"
        ));
    }
    let checksum = value["checksum"].as_str().unwrap_or("");
    if !is_hex64(checksum) {
        problems.push(format!("checksum {checksum:?} is not 64 lowercase hex"));
    } else if let Some(served) = fixtures.checksum(name, version) {
        if served != checksum {
            problems.push(format!(
                "checksum {checksum} is not the served archive's {served}"
            ));
        }
    }
    let Some(files) = value["files"].as_array() else {
        problems.push("files is not an array".to_owned());
        return problems;
    };
    let files: Vec<&str> = files.iter().filter_map(Value::as_str).collect();
    if files.len() != value["files"].as_array().map_or(0, Vec::len) {
        problems.push("files holds a non-string".to_owned());
    }
    if !files
        .windows(2)
        .all(|pair| pair[0].as_bytes() < pair[1].as_bytes())
    {
        problems.push("files is not sorted by bytes and unique".to_owned());
    }
    let prefix = format!("{PULLED_ROOT}/{}/", directory_key(name));
    for file in &files {
        if !file.starts_with(&prefix) {
            problems.push(format!("files lists {file}, outside {prefix}"));
        }
    }
    let recorded = value["filesDigest"].as_str().unwrap_or("");
    if !is_hex64(recorded) {
        problems.push(format!("filesDigest {recorded:?} is not 64 lowercase hex"));
    } else if !excused {
        match disk_digest(repo, &files) {
            Ok(digest) if digest == recorded => {}
            Ok(digest) => problems.push(format!(
                "filesDigest {recorded} does not match the disk ({digest})"
            )),
            Err(why) => problems.push(format!("filesDigest cannot match the disk: {why}")),
        }
    }
    problems
}

/// The shell formula of §7.1: `sha256sum` of each listed file, then of that text.
fn disk_digest(repo: &Path, files: &[&str]) -> Result<String, String> {
    let mut text = String::new();
    for file in files {
        let bytes = std::fs::read(repo.join(file)).map_err(|e| format!("{file}: {e}"))?;
        text.push_str(&format!("{}  {file}\n", hex(&Sha256::digest(&bytes))));
    }
    Ok(hex(&Sha256::digest(text.as_bytes())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_rfc3339_millis(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    bytes.len() == shape.len()
        && bytes.iter().zip(shape).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            other => b == other,
        })
}

// ---------------------------------------------------------------------------------------
// I1 and the catalog half of I2.

fn check_bijection(
    entries: &BTreeMap<String, Entry>,
    rows: &[Row],
    excused: &BTreeSet<String>,
    found: &mut Vec<Violation>,
) {
    let mut by_name: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.is_live()) {
        if row.origin != "pulled" || !row.name.starts_with(&format!("{SCOPE}/")) {
            found.push(violation(
                "I1",
                format!(
                    "unexpected {} row {}@{} at {}",
                    row.origin, row.name, row.version, row.path
                ),
            ));
            continue;
        }
        by_name.entry(row.name.as_str()).or_default().push(row);
    }
    let names: BTreeSet<&str> = entries
        .keys()
        .map(String::as_str)
        .chain(by_name.keys().copied())
        .collect();
    for name in names {
        let rows = by_name.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let versions: BTreeSet<&str> = rows.iter().map(|r| r.version.as_str()).collect();
        // One SQLite transaction saves a version and tombstones the others: owed even
        // right after a crash.
        if versions.len() > 1 {
            found.push(violation(
                "I1",
                format!("{name} has rows of versions {versions:?}"),
            ));
        }
        if excused.contains(name) {
            continue;
        }
        let Some(entry) = entries.get(name) else {
            found.push(violation(
                "I1",
                format!(
                    "the catalog has rows of {name}@{versions:?} but the lockfile has no entry"
                ),
            ));
            continue;
        };
        if rows.is_empty() {
            found.push(violation(
                "I1",
                format!(
                    "the lockfile has {name}@{} but the catalog has no rows",
                    entry.version
                ),
            ));
            continue;
        }
        if versions.iter().any(|v| *v != entry.version) {
            found.push(violation(
                "I1",
                format!(
                    "the lockfile has {name}@{} but the catalog rows are {versions:?}",
                    entry.version
                ),
            ));
        }
        let root = format!("{PULLED_ROOT}/{}/", directory_key(name));
        let paths: BTreeSet<String> = rows
            .iter()
            .map(|r| r.path.strip_prefix(&root).unwrap_or(&r.path).to_owned())
            .collect();
        let expected = entry_points(name, entry);
        if paths != expected {
            found.push(violation(
                "I1",
                format!(
                    "{name}: the catalog rows are {paths:?}, the entry points of files[] are {expected:?}"
                ),
            ));
        }
        for row in rows.iter().filter(|r| r.state != "Indexed") {
            found.push(violation(
                "I1",
                format!("{name}: row {} is {}", row.path, row.state),
            ));
        }
    }
}

fn check_types(rows: &[Row], found: &mut Vec<Violation>) {
    let mut claims: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.state == "Indexed") {
        if let Some((kind, ty)) = &row.claim {
            claims.entry((kind, ty.as_str())).or_default().push(row);
        }
    }
    for ((kind, ty), owners) in claims {
        if owners.len() > 1 {
            let owners: Vec<String> = owners
                .iter()
                .map(|r| format!("{}@{} {}", r.name, r.version, r.path))
                .collect();
            found.push(violation(
                "I2",
                format!(
                    "{kind} type {ty} is Indexed {} times: {owners:?}",
                    owners.len()
                ),
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// I5.

fn check_files(
    snapshot: &Snapshot,
    entries: &BTreeMap<String, Entry>,
    excused: &BTreeSet<String>,
    level: Level,
    found: &mut Vec<Violation>,
) {
    let excused_prefixes: Vec<(String, String)> = excused
        .iter()
        .map(|name| {
            let key = directory_key(name);
            (
                format!("{PULLED_ROOT}/{key}/"),
                format!("{BUNDLES_ROOT}/{key}/"),
            )
        })
        .collect();
    let is_excused = |rel: &str| {
        excused_prefixes
            .iter()
            .any(|(ext, bundles)| rel.starts_with(ext) || rel.starts_with(bundles))
    };
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in entries.values() {
        for file in &entry.files {
            *listed.entry(file.as_str()).or_default() += 1;
        }
    }
    // Expected bundle files, from the entry points of each entry.
    let mut expected_bundles: BTreeMap<String, (&str, String)> = BTreeMap::new();
    for (name, entry) in entries {
        let key = directory_key(name);
        for point in entry_points(name, entry) {
            let bundle = format!("{BUNDLES_ROOT}/{key}/{point}.bundle.json");
            let source = format!("{PULLED_ROOT}/{key}/{point}");
            expected_bundles.insert(bundle, (name.as_str(), source));
        }
    }
    for node in snapshot.pulled.iter().chain(&snapshot.bundles) {
        match node.kind {
            NodeKind::Symlink => found.push(violation("I5", format!("{} is a symlink", node.rel))),
            NodeKind::Other => found.push(violation(
                "I5",
                format!("{} is not a file or directory", node.rel),
            )),
            NodeKind::Dir { empty: true } if level == Level::Final => found.push(violation(
                "I5",
                format!("empty directory {} remains", node.rel),
            )),
            NodeKind::Dir { .. } => {}
            NodeKind::File { .. } if is_excused(&node.rel) => {}
            NodeKind::File { .. } if node.rel.starts_with(&format!("{PULLED_ROOT}/")) => {
                match listed.get(node.rel.as_str()) {
                    Some(1) => {}
                    Some(n) => found.push(violation(
                        "I5",
                        format!("{} is listed by {n} lockfile entries", node.rel),
                    )),
                    None => found.push(violation(
                        "I5",
                        format!("orphan file {} (in no entry's files[])", node.rel),
                    )),
                }
            }
            NodeKind::File { .. } => {
                if !expected_bundles.contains_key(&node.rel) {
                    found.push(violation(
                        "I5",
                        format!(
                            "orphan bundle file {} (no listed entry point builds it)",
                            node.rel
                        ),
                    ));
                }
            }
        }
    }
    let files: BTreeMap<&str, NodeKind> = snapshot
        .pulled
        .iter()
        .chain(&snapshot.bundles)
        .map(|node| (node.rel.as_str(), node.kind))
        .collect();
    for (name, entry) in entries.iter().filter(|(name, _)| !excused.contains(*name)) {
        for file in &entry.files {
            if !matches!(files.get(file.as_str()), Some(NodeKind::File { .. })) {
                found.push(violation(
                    "I5",
                    format!("{name}: listed file {file} is not on disk"),
                ));
            }
        }
    }
    let rows: BTreeMap<&str, &Row> = match &snapshot.catalog {
        Ok(catalog) => catalog
            .rows
            .iter()
            .filter(|r| r.state == "Indexed")
            .map(|r| (r.path.as_str(), r))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    for (bundle, (name, source)) in &expected_bundles {
        if excused.contains(*name) {
            continue;
        }
        let usable = match rows.get(source.as_str()).and_then(|r| r.bundle.as_ref()) {
            Some(b) if b.path == *bundle => b.usable,
            Some(b) => {
                found.push(violation(
                    "I5",
                    format!(
                        "{name}: the row of {source} points at bundle {}, not {bundle}",
                        b.path
                    ),
                ));
                continue;
            }
            // No Indexed row: I1 says so; the file must still be there.
            None => matches!(files.get(bundle.as_str()), Some(NodeKind::File { .. })),
        };
        if !usable {
            found.push(violation(
                "I5",
                format!("{name}: no usable bundle {bundle}"),
            ));
        }
    }
    if level != Level::AfterCrash {
        for dir in snapshot.scratch_dirs() {
            found.push(violation("I5", format!(".fen/scratch/{dir} remains")));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The children's half of I2 and I3.

/// I2 and I3 as the children reported them: codes, exits, and overlapping lock holds.
pub fn check_children(runs: &[ChildRun]) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for run in runs {
        let who = format!("child {} ({})", run.slot, run.op.label());
        let doc = run.json();
        let mut errors = vec![&doc["error"]];
        if let Some(items) = doc["extensions"].as_array() {
            errors.extend(items.iter().map(|item| &item["error"]));
        }
        for error in errors.into_iter().filter(|e| e.is_object()) {
            let code = error["code"].as_str().unwrap_or("");
            if matches!(code, "duplicate_type" | "conflict") {
                found.push(violation(
                    "I2",
                    format!("{who} reported {code}: {}", error["message"]),
                ));
            }
            if matches!(code, "lock_timeout" | "catalog_busy" | "partially_applied")
                || error["cause"] == "busy"
            {
                found.push(violation(
                    "I3",
                    format!(
                        "{who} reported {code} (cause {}): {}",
                        error["cause"], error["message"]
                    ),
                ));
            }
        }
        match run.code() {
            Some(4) => found.push(violation("I2", format!("{who} exited 4 (conflict)"))),
            Some(code @ (6 | 75)) => found.push(violation("I3", format!("{who} exited {code}"))),
            _ => {}
        }
        for span in doc["timings"]["lockSpans"].as_array().into_iter().flatten() {
            match (span[0].as_u64(), span[1].as_u64()) {
                (Some(from), Some(to)) if from <= to => spans.push((from, to, run.slot)),
                _ => found.push(violation(
                    "I3",
                    format!("{who} reported a malformed lock span {span}"),
                )),
            }
        }
    }
    spans.sort();
    let mut latest: Option<(u64, usize)> = None;
    for (from, to, slot) in spans {
        if let Some((end, holder)) = latest {
            if from < end && holder != slot {
                found.push(violation(
                    "I3",
                    format!(
                        "lock holds overlap: child {slot} acquired at {from} µs while child {holder} held it until {end} µs"
                    ),
                ));
            }
        }
        if latest.is_none_or(|(end, _)| to > end) {
            latest = Some((to, slot));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_timestamps() {
        assert_eq!(directory_key("@stress/alpha"), "@stress/alpha");
        assert_eq!(directory_key("@swamp/aws/ec2"), "@swamp/aws+ec2");
        assert!(is_rfc3339_millis("2026-05-05T10:30:00.000Z"));
        assert!(!is_rfc3339_millis("2026-05-05T10:30:00Z"));
        assert!(is_hex64(&"a".repeat(64)));
        assert!(!is_hex64(&"A".repeat(64)));
    }

    #[test]
    fn entry_points_skip_helpers_and_files() {
        let entry = Entry {
            version: V1.to_owned(),
            files: [
                "files/README.md",
                "manifest.yaml",
                "models/_lib/shared.ts",
                "models/noop.ts",
            ]
            .iter()
            .map(|f| format!("{PULLED_ROOT}/@stress/alpha/{f}"))
            .collect(),
        };
        assert_eq!(
            entry_points(ALPHA, &entry).into_iter().collect::<Vec<_>>(),
            ["models/noop.ts"]
        );
    }
}

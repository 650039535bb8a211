//! Bad input through the binary: hostile archives served by the registry, hostile
//! servers and broken local state. Every refusal ends in its exit code and error code,
//! one `error:` line (plus the spec's `hint:`), and changes nothing outside
//! `.fen/scratch`, which is cleaned.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{assert_same, gzip, Ext, RawTar, World, V1, V2};

fn a1() -> Ext {
    Ext::model("@t/a", V1, "noop", "@t/a-model").with_file("files/readme.txt", "v1")
}

/// Serves `archive` as `@t/a@V1` (with a matching sidecar) and checks that pulling it
/// is refused with `code` (exit 3) and leaves the repo as it was. Returns the error.
fn refused_archive(archive: &[u8], code: &str) -> Value {
    let world = World::new(&[]);
    world.plant("@t/a", V1, archive);
    let before = world.snapshot();
    let error = world.refused(&[], &["extension", "pull", &format!("@t/a@{V1}")], 3, code);
    world.assert_untouched(&before);
    error
}

fn message(error: &Value) -> &str {
    error["message"].as_str().unwrap()
}

/// The message names the unsafe entry and the rule it breaks.
fn assert_unsafe(error: &Value, entry: &str, reason: &str) {
    let expected = format!(
        "archive for @t/a@{V1} rejected: unsafe entry \"{entry}\" ({reason}); nothing was installed"
    );
    assert_eq!(message(error), expected);
}

// --- Hostile archives --------------------------------------------------------------

#[test]
fn an_absolute_entry_path_is_unsafe() {
    let archive = RawTar::of(&a1())
        .file("/extension/models/evil.ts", b"evil")
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(&error, "/extension/models/evil.ts", "absolute path");
}

#[test]
fn a_symlink_entry_is_unsafe() {
    let archive = RawTar::of(&a1())
        .special(
            "extension/files/passwd",
            b'2',
            "../../../../../../etc/passwd",
        )
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(&error, "extension/files/passwd", "symbolic link");
}

#[test]
fn a_hard_link_entry_is_unsafe() {
    let archive = RawTar::of(&a1())
        .special(
            "extension/files/copy.txt",
            b'1',
            "extension/files/readme.txt",
        )
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(&error, "extension/files/copy.txt", "hard link");
}

#[test]
fn a_fifo_entry_is_unsafe() {
    let archive = RawTar::of(&a1())
        .special("extension/files/pipe", b'6', "")
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(&error, "extension/files/pipe", "FIFO");
}

#[test]
fn a_duplicate_entry_is_unsafe() {
    let archive = RawTar::of(&a1())
        .file("extension/files/readme.txt", b"second copy")
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(&error, "extension/files/readme.txt", "duplicate entry");
}

#[test]
fn a_path_that_is_both_file_and_directory_is_unsafe() {
    let archive = RawTar::of(&a1())
        .file("extension/files/readme.txt/inner.txt", b"below a file")
        .gz();
    let error = refused_archive(&archive, "archive_unsafe");
    assert_unsafe(
        &error,
        "extension/files/readme.txt/inner.txt",
        "\"extension/files/readme.txt\" is both a file and a directory",
    );
}

#[test]
fn a_truncated_gzip_stream_is_corrupt() {
    // Enough incompressible-ish text that the cut lands inside the deflate stream.
    let text: String = (0..4000).map(|i| format!("{i:x}-{}\n", i * 7919)).collect();
    let full = RawTar::of(&a1().with_file("files/big.txt", &text)).gz();
    let archive = &full[..full.len() / 2];
    let error = refused_archive(archive, "archive_corrupt");
    assert!(
        message(&error).starts_with(&format!("archive for @t/a@{V1} is corrupt: ")),
        "{error}"
    );
}

#[test]
fn a_corrupt_tar_header_is_corrupt() {
    let mut tar = RawTar::of(&a1()).tar();
    // The first header's name, changed without fixing its checksum.
    tar[10] ^= 0x01;
    let error = refused_archive(&gzip(&tar), "archive_corrupt");
    assert!(
        message(&error).starts_with(&format!("archive for @t/a@{V1} is corrupt: tar stream")),
        "{error}"
    );
}

#[test]
fn a_gzip_bomb_is_too_large() {
    let size: u64 = 70 * 1024 * 1024;
    let archive = RawTar::of(&a1())
        .zeros("extension/files/zeros.bin", size)
        .gz();
    assert!(archive.len() < 1024 * 1024, "{} bytes", archive.len());
    let error = refused_archive(&archive, "archive_too_large");
    assert_eq!(
        message(&error),
        format!(
            "archive for @t/a@{V1} exceeds the file size limit ({size} > {}); nothing was installed",
            16 * 1024 * 1024
        )
    );
}

#[test]
fn five_thousand_entries_are_too_many() {
    let mut tar = RawTar::of(&a1());
    for i in 0..5000 {
        tar = tar.file(&format!("extension/files/many/f{i:04}.txt"), b"");
    }
    let error = refused_archive(&tar.gz(), "archive_too_large");
    assert!(
        message(&error).contains("exceeds the entry count limit (4097 > 4096)"),
        "{error}"
    );
}

// --- Hostile servers ---------------------------------------------------------------

/// A served, valid `@t/a` V1 and `_faults.json` holding `rules`.
fn world_with_faults(rules: &str) -> World {
    let world = World::new(&[a1()]);
    std::fs::write(world.registry_dir.join("_faults.json"), rules).unwrap();
    world
}

#[test]
fn a_body_cut_short_forever_is_unavailable() {
    let world = world_with_faults(r#"[{"match":"/files/","truncateAfterBytes":100}]"#);
    let before = world.snapshot();
    let error = world.refused(
        &[],
        &["extension", "pull", "@t/a"],
        3,
        "registry_unavailable",
    );
    assert!(message(&error).ends_with("(after 3 attempts)"), "{error}");
    world.assert_untouched(&before);
}

#[test]
fn a_503_forever_is_unavailable_after_three_attempts() {
    let world = world_with_faults(r#"[{"match":"/download","status":503}]"#);
    let before = world.snapshot();
    let error = world.refused(
        &[],
        &["extension", "pull", "@t/a"],
        3,
        "registry_unavailable",
    );
    let text = message(&error);
    assert!(
        text.starts_with(&format!("registry {} answered HTTP 503 for ", world.url)),
        "{error}"
    );
    assert!(text.contains("after 3 attempts"), "{error}");
    world.assert_untouched(&before);
}

#[test]
fn a_wrong_checksum_sidecar_is_a_mismatch() {
    // The sidecar of V1 names the checksum of V2: a real checksum, of other bytes.
    let world = World::new(&[a1(), Ext::model("@t/a", V2, "noop", "@t/a-model")]);
    let v2 = super::sha256_hex(&std::fs::read(world.archive("@t/a", V2)).unwrap());
    let v1 = super::sha256_hex(&std::fs::read(world.archive("@t/a", V1)).unwrap());
    std::fs::write(
        world.registry_dir.join(format!("@t/a/{V1}.tar.gz.sha256")),
        format!("{v2}  {V1}.tar.gz\n"),
    )
    .unwrap();
    let before = world.snapshot();
    let error = world.refused(
        &[],
        &["extension", "pull", &format!("@t/a@{V1}")],
        5,
        "checksum_mismatch",
    );
    assert_eq!(
        message(&error),
        format!(
            "checksum mismatch for @t/a@{V1}: registry says {v2}, downloaded archive is {v1}; nothing was installed"
        )
    );
    world.assert_untouched(&before);
}

/// A raw HTTP/1.1 server on 127.0.0.1, port 0: for each connection it reads the request
/// head and writes `answer(path)`, then closes; `None` keeps the connection open
/// without a word until the server stops. It records the request paths.
struct RawServer {
    url: String,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl RawServer {
    fn start(answer: fn(&str) -> Option<Vec<u8>>) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut paths = Vec::new();
            let mut silent = Vec::new();
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let Some(path) = request_path(&mut stream) else {
                    continue;
                };
                paths.push(path.clone());
                match answer(&path) {
                    Some(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    None => silent.push(stream),
                }
            }
            paths
        });
        RawServer {
            url: format!("http://{addr}"),
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server; returns the paths it was asked for.
    fn stop(mut self) -> Vec<String> {
        self.halt().unwrap_or_default()
    }

    fn halt(&mut self) -> Option<Vec<String>> {
        let thread = self.thread.take()?;
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        thread.join().ok()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Reads a request head; returns the path of its request line.
fn request_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head);
    head.split(' ').nth(1).map(str::to_owned)
}

const R1: &str = "/api/v1/extensions/%40t%2Fa";

fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn a_content_length_over_the_cap_is_too_large_before_reading() {
    const OVER: u64 = 32 * 1024 * 1024 + 1;
    fn answer(path: &str) -> Option<Vec<u8>> {
        if path == R1 {
            return Some(json_response(&format!(
                r#"{{"name":"@t/a","latestVersion":"{V1}","versions":["{V1}"],"deprecated":null}}"#
            )));
        }
        if path.ends_with("/download") {
            // Headers only: a client that read the body would find it cut short.
            return Some(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {OVER}\r\nConnection: close\r\n\r\n"
                )
                .into_bytes(),
            );
        }
        Some(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec())
    }
    let world = World::new(&[]);
    let server = RawServer::start(answer);
    let env = [("FEN_REGISTRY_URL", server.url.as_str())];
    let before = world.snapshot();
    let error = world.refused(&env, &["extension", "pull", "@t/a"], 3, "archive_too_large");
    assert!(
        message(&error).contains(&format!("({OVER} > {})", 32 * 1024 * 1024)),
        "{error}"
    );
    world.assert_untouched(&before);
    let paths = server.stop();
    let download = format!("{R1}@{V1}/download");
    // One R1 and one R3 per run (two runs): the size fails at once, without a retry
    // and without asking for the checksum.
    assert_eq!(paths, [R1, &download, R1, &download], "{paths:?}");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let world = World::new(&[]);
    let server = RawServer::start(|_| None);
    let env = [
        ("FEN_REGISTRY_URL", server.url.as_str()),
        ("FEN_HTTP_TIMEOUT_MS", "300"),
    ];
    let before = world.snapshot();
    let started = Instant::now();
    let error = world.refused(
        &env,
        &["extension", "pull", "@t/a"],
        3,
        "registry_unavailable",
    );
    // Two runs of 3 x 300 ms plus 250 + 500 ms of backoff: far below one default
    // 15 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message(&error).starts_with(&format!("could not reach registry {}: ", server.url)),
        "{error}"
    );
    assert!(message(&error).ends_with("(after 3 attempts)"), "{error}");
    world.assert_untouched(&before);
    assert_eq!(server.stop(), vec![R1; 6]);
}

// --- Broken local state ------------------------------------------------------------

const BROKEN_LOCKFILE: &str = "{\"formatVersion\": 1, \"extensions\": {\"@t/a\": ";

/// `@t/a` V1 installed, V2 and `@t/b` served, then the lockfile cut in the middle.
fn world_with_broken_lockfile() -> World {
    let world = World::new(&[a1(), Ext::model("@t/b", V1, "noop", "@t/b-model")]);
    world.json(0, &["extension", "pull", "@t/a"]);
    world.publish(&Ext::model("@t/a", V2, "noop", "@t/a-model"));
    std::fs::write(
        world.path("extensions/upstream_extensions.json"),
        BROKEN_LOCKFILE,
    )
    .unwrap();
    world
}

#[test]
fn an_unparsable_lockfile_stops_every_command_and_is_kept() {
    let world = world_with_broken_lockfile();
    let before = world.snapshot();
    for args in [
        &["extension", "pull", "@t/b"][..],
        &["extension", "update"],
        &["extension", "install"],
        &["extension", "status"],
    ] {
        let error = world.refused(&[], args, 3, "lockfile_invalid");
        assert!(
            message(&error)
                .starts_with("extensions/upstream_extensions.json is not valid (line 1, column "),
            "{args:?}: {error}"
        );
        assert_eq!(
            world.lockfile_bytes(),
            BROKEN_LOCKFILE.as_bytes(),
            "{args:?}"
        );
    }
    // The catalog is not the lockfile's business here (a reader may checkpoint it).
    assert_same(&before, &world.snapshot(), &|path| {
        path.starts_with(".fen/_extension_catalog.db")
    });
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn an_unparsable_lockfile_has_the_fix_it_hint() {
    let world = world_with_broken_lockfile();
    let error = world.refused(&[], &["extension", "status"], 3, "lockfile_invalid");
    assert_eq!(error["hint"], "fix it or restore it from version control");
    assert!(
        !message(&error).contains("fix it"),
        "the hint is not part of the message: {error}"
    );
}

fn drift_problems(world: &World, name: &str) -> Vec<String> {
    world.status()["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"] == name)
        .map(|d| d["problem"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn deleted_files_are_missing_then_restored() {
    let world = World::new(&[a1()]);
    world.json(0, &["extension", "pull", "@t/a"]);
    let lock = world.lockfile_bytes();
    for file in world.lockfile()["extensions"]["@t/a"]["files"]
        .as_array()
        .unwrap()
    {
        std::fs::remove_file(world.path(file.as_str().unwrap())).unwrap();
    }
    assert!(
        drift_problems(&world, "@t/a").contains(&"missing_files".to_owned()),
        "{}",
        world.status()
    );
    let doc = world.json(0, &["extension", "install"]);
    assert_eq!(doc["extensions"][0]["name"], "@t/a", "{doc}");
    assert_eq!(doc["extensions"][0]["status"], "restored", "{doc}");
    assert_eq!(world.status()["drift"], serde_json::json!([]));
    assert_eq!(
        world.lockfile()["extensions"]["@t/a"]["filesDigest"],
        world.disk_digest("@t/a").as_str()
    );
    assert_eq!(world.lockfile_bytes(), lock, "a restore keeps the entry");
    assert!(world.scratch().is_empty(), "{:?}", world.scratch());
}

#[test]
fn a_deleted_catalog_is_rebuilt_under_a_pulled_extension() {
    let world = World::new(&[a1()]);
    world.json(0, &["extension", "pull", "@t/a"]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(world.path(&format!(".fen/_extension_catalog.db{suffix}")));
    }
    let search = world.json(0, &["model", "type", "search", "a-model"]);
    assert!(search.to_string().contains("@t/a-model"), "{search}");
    let doc = world.json(0, &["extension", "update"]);
    let status = &doc["extensions"][0]["status"];
    assert!(status == "up_to_date" || status == "reconciled", "{doc}");
    let status = world.status();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    assert_eq!(status["catalog"][0]["name"], "@t/a", "{status}");
    assert_eq!(status["catalog"][0]["sources"][0]["state"], "Indexed");
}

//! The extension lifecycle against a real `fen registry serve` on 127.0.0.1, port 0
//! (spec 20 §18): a packed registry directory, a fresh `fen init` repo, and the
//! `pull | rm | update | install | status` commands, including crashes at the fault
//! points of spec 20 §15.6 (the process really aborts), hand-built hostile archives
//! ([`RawTar`]) and hostile servers.

mod crash;
mod hostile;
mod more_scenarios;
mod races;
mod scenarios;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::Value;

use crate::fixture::model_source;
use crate::util::{fen, Run, TempDir};

pub const V1: &str = "2026.01.01.1";
pub const V2: &str = "2026.01.02.1";

/// A source tree for one extension version, packed into the registry directory.
pub struct Ext {
    pub name: &'static str,
    pub version: &'static str,
    /// `(path under the extension dir, contents)`.
    pub files: Vec<(String, String)>,
    pub models: Vec<String>,
    pub dependencies: Vec<String>,
}

impl Ext {
    /// `@t/x` at `version` with one model `models/<stem>.ts` declaring `ty`.
    pub fn model(name: &'static str, version: &'static str, stem: &str, ty: &str) -> Ext {
        Ext {
            name,
            version,
            files: vec![(
                format!("models/{stem}.ts"),
                model_source(ty, "from the registry"),
            )],
            models: vec![format!("{stem}.ts")],
            dependencies: Vec::new(),
        }
    }

    pub fn with_model(mut self, stem: &str, ty: &str) -> Ext {
        self.files
            .push((format!("models/{stem}.ts"), model_source(ty, "more")));
        self.models.push(format!("{stem}.ts"));
        self
    }

    pub fn with_file(mut self, rel: &str, text: &str) -> Ext {
        self.files.push((rel.to_owned(), text.to_owned()));
        self
    }

    pub fn depends_on(mut self, dep: &str) -> Ext {
        self.dependencies.push(dep.to_owned());
        self
    }

    fn manifest(&self) -> String {
        let list = |items: &[String]| {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|i| format!("\"{i}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let files: Vec<String> = self
            .files
            .iter()
            .filter_map(|(p, _)| p.strip_prefix("files/").map(str::to_owned))
            .collect();
        format!(
            "manifestVersion: 1\nname: \"{}\"\nversion: \"{}\"\nmodels: {}\nfiles: {}\ndependencies: {}\n",
            self.name,
            self.version,
            list(&self.models),
            list(&files),
            list(&self.dependencies)
        )
    }
}

/// A registry directory served by `fen registry serve`, and a fresh repo.
pub struct World {
    _dir: TempDir,
    pub registry_dir: PathBuf,
    pub repo: PathBuf,
    pub url: String,
    server: Child,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl World {
    /// Packs every extension, starts the server, runs `fen init`.
    pub fn new(exts: &[Ext]) -> World {
        let dir = TempDir::new();
        let registry_dir = dir.path().join("registry");
        std::fs::create_dir_all(&registry_dir).unwrap();
        for ext in exts {
            pack(dir.path(), &registry_dir, ext);
        }
        let mut server = fen(dir.path())
            .args(["registry", "serve", "--dir"])
            .arg(&registry_dir)
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("fen registry listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let repo = dir.path().join("repo");
        let init: Run = fen(dir.path())
            .args(["init"])
            .arg(&repo)
            .output()
            .unwrap()
            .into();
        assert_eq!(init.code, 0, "{}", init.stderr);
        World {
            _dir: dir,
            registry_dir,
            repo,
            url,
            server,
        }
    }

    /// Packs another version into the served directory.
    pub fn publish(&self, ext: &Ext) {
        pack(self.registry_dir.parent().unwrap(), &self.registry_dir, ext);
    }

    pub fn fen_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        fen(&self.repo)
            .env("FEN_REGISTRY_URL", &self.url)
            .envs(env.iter().copied())
            .args(args)
            .output()
            .unwrap()
            .into()
    }

    pub fn fen(&self, args: &[&str]) -> Run {
        self.fen_env(&[], args)
    }

    /// `fen --json args...`, asserting the exit code; returns the document.
    pub fn json(&self, expect: i32, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.fen(&all);
        assert_eq!(
            run.code, expect,
            "fen {args:?}\nstdout {}\nstderr {}",
            run.stdout, run.stderr
        );
        run.json()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.repo.join(rel)
    }

    pub fn lockfile_bytes(&self) -> Vec<u8> {
        std::fs::read(self.path("extensions/upstream_extensions.json")).unwrap_or_default()
    }

    pub fn lockfile(&self) -> Value {
        serde_json::from_slice(&self.lockfile_bytes()).unwrap_or(Value::Null)
    }

    pub fn status(&self) -> Value {
        self.json(0, &["extension", "status"])
    }

    /// `txn-*`, `stage-*` and `build-*` under `.fen/scratch`.
    pub fn scratch(&self) -> Vec<String> {
        std::fs::read_dir(self.path(".fen/scratch"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        n.starts_with("txn-") || n.starts_with("stage-") || n.starts_with("build-")
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The served archive of `name@version`.
    pub fn archive(&self, name: &str, version: &str) -> PathBuf {
        self.registry_dir
            .join(name)
            .join(format!("{version}.tar.gz"))
    }

    /// Recomputes `filesDigest` of an entry from disk (the shell formula of §7.1).
    pub fn disk_digest(&self, name: &str) -> String {
        let lock = self.lockfile();
        let mut text = String::new();
        for file in lock["extensions"][name]["files"].as_array().unwrap() {
            let path = file.as_str().unwrap();
            let bytes = std::fs::read(self.path(path)).unwrap();
            text.push_str(&format!("{}  {path}\n", sha256_hex(&bytes)));
        }
        sha256_hex(text.as_bytes())
    }

    /// Places a hand-made archive in the served directory as `name@version`, with a
    /// sidecar holding its real checksum (so only the archive itself can be refused).
    pub fn plant(&self, name: &str, version: &str, archive: &[u8]) {
        let dir = self.registry_dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{version}.tar.gz")), archive).unwrap();
        std::fs::write(
            dir.join(format!("{version}.tar.gz.sha256")),
            format!("{}  {version}.tar.gz\n", sha256_hex(archive)),
        )
        .unwrap();
    }

    /// Starts `fen args...` in the repo with piped stdout and stderr. Its `argv[0]` is
    /// `fen`, as when run from `PATH`, so the lock's owner record reads
    /// `fen extension ...` as the spec's messages show.
    pub fn spawn(&self, env: &[(&str, &str)], args: &[&str]) -> Child {
        let mut cmd = fen(&self.repo);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.arg0("fen");
        }
        cmd.env("FEN_REGISTRY_URL", &self.url)
            .envs(env.iter().copied())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs `fen --json args...` and then `fen args...` (the same failure twice),
    /// expecting exit `exit` and error code `code` from both. In JSON mode stdout is the
    /// error envelope and stderr is empty; in human mode stdout is empty and stderr is
    /// exactly the JSON `message` on one `error:` line, then the JSON `hint` on one
    /// `hint:` line when there is one. Returns the JSON `error` object.
    pub fn refused(&self, env: &[(&str, &str)], args: &[&str], exit: i32, code: &str) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.fen_env(env, &all);
        assert_eq!(
            run.code, exit,
            "fen {all:?}\nstdout {}\nstderr {}",
            run.stdout, run.stderr
        );
        let error = run.json()["error"].clone();
        assert_eq!(error["code"], code, "{}", run.stdout);
        assert_eq!(run.stderr, "", "stderr of fen {all:?}");
        let human = self.fen_env(env, args);
        assert_eq!(human.code, exit, "fen {args:?}\nstderr {}", human.stderr);
        assert_eq!(human.stdout, "", "stdout of fen {args:?}");
        let mut expected = format!("error: {}\n", error["message"].as_str().unwrap());
        if let Some(hint) = error["hint"].as_str() {
            expected.push_str(&format!("hint: {hint}\n"));
        }
        assert_eq!(human.stderr, expected, "stderr of fen {args:?}");
        error
    }

    /// Nothing outside `.fen/scratch` differs from `before`, `.fen/scratch` holds no
    /// `txn-*`, `stage-*` or `build-*`, and no `@t/...` owned root exists.
    pub fn assert_untouched(&self, before: &Snapshot) {
        assert_same(before, &self.snapshot(), &|_| false);
        assert!(self.scratch().is_empty(), "{:?}", self.scratch());
        assert!(!self.path(".fen/pulled-extensions/@t").exists());
        assert!(!self.path(".fen/bundles/pulled/@t").exists());
    }

    /// Every file (contents) and directory (`None`) of the repo, `.fen/scratch`, the
    /// lifecycle lock file and SQLite's dataless side files aside.
    pub fn snapshot(&self) -> Snapshot {
        let mut out = BTreeMap::new();
        walk(&self.repo, &mut |path, is_dir| {
            let rel = path
                .strip_prefix(&self.repo)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".fen/scratch" || rel.starts_with(".fen/scratch/") {
                return;
            }
            // The lock's owner record is rewritten by every acquisition (diagnostics);
            // SQLite's shared-memory index and a WAL without frames (a process that
            // exits with the catalog open leaves them) hold no data.
            let bytes = (!is_dir).then(|| std::fs::read(path).unwrap());
            let no_data = rel == ".fen/lifecycle.lock"
                || rel.ends_with(".db-shm")
                || (rel.ends_with(".db-wal") && bytes.as_ref().is_some_and(|b| b.len() <= 32));
            if !no_data {
                out.insert(rel, bytes);
            }
        });
        out
    }
}

/// Repo-relative path → file contents, or `None` for a directory.
pub type Snapshot = BTreeMap<String, Option<Vec<u8>>>;

/// `before` and `after` agree on every path but those `skip` accepts.
pub fn assert_same(before: &Snapshot, after: &Snapshot, skip: &dyn Fn(&str) -> bool) {
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys().filter(|k| !before.contains_key(*k)))
        .filter(|k| !skip(k) && before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "changed outside .fen/scratch: {changed:?}"
    );
}

/// Calls `visit(path, is_dir)` for everything below `dir` (symlinks are not followed).
pub fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, bool)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().unwrap().is_dir();
        visit(&path, is_dir);
        if is_dir {
            walk(&path, visit);
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads `reader` line by line until a line satisfies `wanted`, and returns it; panics
/// with everything read when the stream ends first. `who` names the process.
pub fn read_until(reader: &mut dyn BufRead, who: &str, wanted: &dyn Fn(&str) -> bool) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "{who} closed its output before the awaited line; it wrote:\n{seen}"
        );
        seen.push_str(&line);
        let line = line.trim_end_matches(['\n', '\r']);
        if wanted(line) {
            return line.to_owned();
        }
    }
}

/// Reads what is left of a child's pipe.
pub fn rest(reader: &mut dyn Read) -> String {
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    text
}

/// A tar stream written header by header, so a test can build what `tar::Builder`
/// refuses to write: `..` and absolute paths, links, FIFOs, duplicates, bad checksums.
/// Headers are ustar with mode 0644, uid/gid 0 and mtime 0, like `fen extension pack`.
#[derive(Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar::default()
    }

    /// The entries `fen extension pack` writes for `ext`: the manifest and every file
    /// under `extension/`, sorted.
    pub fn of(ext: &Ext) -> RawTar {
        let mut entries: Vec<(String, String)> = ext
            .files
            .iter()
            .map(|(rel, text)| (format!("extension/{rel}"), text.clone()))
            .collect();
        entries.push(("extension/manifest.yaml".to_owned(), ext.manifest()));
        entries.sort();
        let mut tar = RawTar::new();
        for (path, text) in entries {
            tar = tar.file(&path, text.as_bytes());
        }
        tar
    }

    /// A regular file.
    pub fn file(mut self, path: &str, data: &[u8]) -> RawTar {
        self.header(path, b'0', data.len() as u64, "");
        self.bytes.extend_from_slice(data);
        self.pad();
        self
    }

    /// A file of `size` zero bytes.
    pub fn zeros(mut self, path: &str, size: u64) -> RawTar {
        self.header(path, b'0', size, "");
        self.bytes
            .resize(self.bytes.len() + usize::try_from(size).unwrap(), 0);
        self.pad();
        self
    }

    /// An entry without data: `kind` is the typeflag (`b'1'` hard link, `b'2'`
    /// symlink, `b'5'` directory, `b'6'` FIFO), `link` the link target.
    pub fn special(mut self, path: &str, kind: u8, link: &str) -> RawTar {
        self.header(path, kind, 0, link);
        self
    }

    /// The tar stream with its two end-of-archive blocks.
    pub fn tar(mut self) -> Vec<u8> {
        self.bytes.resize(self.bytes.len() + 1024, 0);
        self.bytes
    }

    /// [`RawTar::tar`], gzip-compressed.
    pub fn gz(self) -> Vec<u8> {
        gzip(&self.tar())
    }

    fn header(&mut self, path: &str, kind: u8, size: u64, link: &str) {
        assert!(path.len() <= 100 && link.len() <= 100, "{path} {link}");
        let mut h = [0u8; 512];
        h[..path.len()].copy_from_slice(path.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 0);
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let len = self.bytes.len().div_ceil(512) * 512;
        self.bytes.resize(len, 0);
    }
}

/// Writes `value` as zero-padded octal with a trailing NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}\0");
    assert_eq!(text.len(), field.len(), "{value} does not fit");
    field.copy_from_slice(text.as_bytes());
}

/// gzip at the default level.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Writes the source tree of `ext` (`manifest.yaml` and its files) under
/// `work/src/<scope>-<name>/<version>/`, replacing an earlier one; returns that dir.
pub fn write_source(work: &Path, ext: &Ext) -> PathBuf {
    let src = work
        .join("src")
        .join(ext.name.trim_start_matches('@').replace('/', "-"))
        .join(ext.version);
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("manifest.yaml"), ext.manifest()).unwrap();
    for (rel, text) in &ext.files {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    src
}

fn pack(work: &Path, registry_dir: &Path, ext: &Ext) {
    let src = write_source(work, ext);
    let run: Run = fen(work)
        .args(["extension", "pack"])
        .arg(&src)
        .arg("--registry-dir")
        .arg(registry_dir)
        .output()
        .unwrap()
        .into();
    assert_eq!(
        run.code, 0,
        "pack {}: {} {}",
        ext.name, run.stdout, run.stderr
    );
}

//! The extension lifecycle against a real `fen registry serve` on 127.0.0.1, port 0
//! (spec 20 §18): a packed registry directory, a fresh `fen init` repo, and the
//! `pull | rm | update | install | status` commands, including crashes at the fault
//! points of spec 20 §15.6 (the process really aborts).

mod crash;
mod races;
mod scenarios;

use std::io::{BufRead, BufReader};
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
        use sha2::{Digest, Sha256};
        let lock = self.lockfile();
        let mut text = String::new();
        for file in lock["extensions"][name]["files"].as_array().unwrap() {
            let path = file.as_str().unwrap();
            let bytes = std::fs::read(self.path(path)).unwrap();
            let hex: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            text.push_str(&format!("{hex}  {path}\n"));
        }
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn pack(work: &Path, registry_dir: &Path, ext: &Ext) {
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

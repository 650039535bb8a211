//! Repo fixtures for the loading, freshness and catalog tests: a temp repo that writes
//! model sources, a generated set of 12 model types sharing `_lib` helpers, file-time
//! control (never sleep: old mtimes keep stat records from being racy), and parsers
//! for the `--stats` line and the `--json` documents the tests read.

use std::collections::BTreeMap;
use std::fs::{File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::util::{fen, Run, TempDir};

/// The generated fixture: `(file stem, declared type)`. The first three import
/// `_lib/network.ts` as well as `_lib/common.ts`, which every entry imports.
pub const GENERATED: [(&str, &str); 12] = [
    ("ec2_vpc", "@fixture/aws/ec2/vpc"),
    ("ec2_subnet", "@fixture/aws/ec2/subnet"),
    ("ec2_instance", "@fixture/aws/ec2/instance"),
    ("s3_bucket", "@fixture/aws/s3/bucket"),
    ("iam_role", "@fixture/aws/iam/role"),
    ("iam_user", "@fixture/aws/iam/user"),
    ("lambda_function", "@fixture/aws/lambda/function"),
    ("sqs_queue", "@fixture/aws/sqs/queue"),
    ("sns_topic", "@fixture/aws/sns/topic"),
    ("dynamodb_table", "@fixture/aws/dynamodb/table"),
    ("route53_zone", "@fixture/aws/route53/zone"),
    ("rds_cluster", "@fixture/aws/rds/cluster"),
];

/// Entries of [`GENERATED`] that import `_lib/network.ts`.
pub const NETWORK_IMPORTERS: [&str; 3] = ["ec2_vpc", "ec2_subnet", "ec2_instance"];

/// A temp repo with `.fen/` and `extensions/models/`, and no catalog yet.
pub struct Repo {
    dir: TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.path().join(".fen")).unwrap();
        std::fs::create_dir_all(dir.path().join("extensions/models")).unwrap();
        Repo { dir }
    }

    /// A repo holding the 12 generated types, with every file's mtime an hour old.
    pub fn generated() -> Repo {
        let repo = Repo::new();
        repo.write_generated();
        repo.age_all();
        repo
    }

    /// Writes the generated sources into this repo (see [`GENERATED`]).
    pub fn write_generated(&self) {
        self.write(
            "extensions/models/_lib/common.ts",
            r#"export function describe(name: string): string {
  return "Generated fixture type " + name;
}
export function objectSchema(): Record<string, unknown> {
  return { type: "object", properties: { id: { type: "string" } } };
}
"#,
        );
        self.write(
            "extensions/models/_lib/network.ts",
            "export const DEFAULT_CIDR: string = \"10.0.0.0/16\";\n",
        );
        for (stem, ty) in GENERATED {
            let network = NETWORK_IMPORTERS.contains(&stem);
            self.write(
                &format!("extensions/models/{stem}.ts"),
                &generated_source(stem, ty, network),
            );
        }
    }

    /// The repo root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes `text` to `rel`, creating parent directories.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes a minimal valid model source declaring `ty` to `rel`.
    pub fn model(&self, rel: &str, ty: &str, description: &str) {
        self.write(rel, &model_source(ty, description));
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path(rel)).unwrap();
    }

    /// Sets the mtime of every regular file under `extensions/` and
    /// `.fen/pulled-extensions/` to an hour ago, so stat records taken from now on are
    /// not racy (spec 30 §3.4) and an unchanged tree really reads nothing.
    pub fn age_all(&self) {
        for dir in ["extensions", ".fen/pulled-extensions"] {
            for file in files_under(&self.path(dir)) {
                set_mtime_ago(&file, Duration::from_secs(3600));
            }
        }
    }

    /// Runs `fen args...` in the repo.
    pub fn fen(&self, args: &[&str]) -> Run {
        self.fen_env(&[], args)
    }

    /// Runs `fen args...` in the repo with extra environment variables.
    pub fn fen_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        fen(self.root())
            .envs(env.iter().copied())
            .args(args)
            .output()
            .expect("run fen")
            .into()
    }

    /// `fen args...`, asserting exit 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        ok(self.fen(args))
    }

    /// `fen --stats model type search`, asserting exit 0; returns the counters.
    pub fn search_stats(&self) -> Stats {
        Stats::of(&self.ok(&["--stats", "model", "type", "search"]))
    }

    /// The normalized types `fen model type search --json` lists.
    pub fn search_types(&self) -> Vec<String> {
        let doc = self.ok(&["--json", "model", "type", "search"]).json();
        doc["types"]
            .as_array()
            .expect("types array")
            .iter()
            .map(|t| t["type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The rows of `fen extension list --json` (this runs `build_index` too), keyed by
    /// repo-relative source path.
    pub fn rows(&self) -> BTreeMap<String, Value> {
        let doc = self.ok(&["--json", "extension", "list"]).json();
        self.rows_by_path(&doc["sources"])
    }

    /// Keys the entries of a JSON array that carry `sourcePath` by repo-relative path.
    pub fn rows_by_path(&self, rows: &Value) -> BTreeMap<String, Value> {
        rows.as_array()
            .expect("an array of rows")
            .iter()
            .map(|row| (self.rel(row["sourcePath"].as_str().unwrap()), row.clone()))
            .collect()
    }

    /// The catalog row of `rel` from `fen extension list --json`.
    pub fn row(&self, rel: &str) -> Value {
        let rows = self.rows();
        rows.get(rel)
            .unwrap_or_else(|| panic!("no row for {rel}; rows: {:?}", rows.keys()))
            .clone()
    }

    /// `fen --json doctor extensions <extra...>` (exit 0 or 7), as a JSON document.
    pub fn doctor(&self, extra: &[&str]) -> (Run, Value) {
        let mut args = vec!["--json", "--stats", "doctor", "extensions"];
        args.extend_from_slice(extra);
        let out = self.fen(&args);
        assert!(
            out.code == 0 || out.code == 7,
            "doctor exit {}: {}",
            out.code,
            out.stderr
        );
        let doc = out.json();
        (out, doc)
    }

    /// Makes a canonical absolute path repo-relative (paths outside stay as they are).
    pub fn rel(&self, path: &str) -> String {
        let root = self.canonical_root();
        match Path::new(path).strip_prefix(&root) {
            Ok(rest) => rest.to_string_lossy().into_owned(),
            Err(_) => path.to_owned(),
        }
    }

    pub fn canonical_root(&self) -> PathBuf {
        std::fs::canonicalize(self.root()).unwrap()
    }

    /// Every `*.bundle.json` under `.fen/bundles/`: repo-relative path → (bytes, mtime).
    pub fn bundles(&self) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
        files_under(&self.path(".fen/bundles"))
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".bundle.json"))
            .map(|p| {
                let rel = p.strip_prefix(self.root()).unwrap().to_string_lossy();
                let bytes = std::fs::read(&p).unwrap();
                let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
                (rel.into_owned(), (bytes, mtime))
            })
            .collect()
    }

    /// Deletes the catalog and its SQLite side files.
    pub fn delete_catalog(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = self.path(&format!(".fen/_extension_catalog.db{suffix}"));
            if path.exists() {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    /// Runs SQL on the catalog (only while no fen runs) and returns the rows as
    /// `a|b` lines, like the `sqlite3` shell; `.dump` prints every table's rows.
    /// Uses sqlx, so the tests need no `sqlite3` program.
    pub fn sqlite(&self, sql: &str) -> String {
        use sqlx::{Connection, Row};
        let db = self.path(".fen/_extension_catalog.db");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let url = format!("sqlite://{}", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let statements: Vec<String> = if sql == ".dump" {
                ["bundle_types", "bundle_meta", "_sqlx_migrations"]
                    .iter()
                    .map(|t| format!("select '{t}', * from {t} order by 2"))
                    .collect()
            } else {
                vec![sql.to_owned()]
            };
            let mut lines = Vec::new();
            for statement in statements {
                for row in sqlx::query(&statement).fetch_all(&mut conn).await.unwrap() {
                    let cells: Vec<String> = (0..row.len())
                        .map(|i| {
                            if let Ok(text) = row.try_get::<String, _>(i) {
                                text
                            } else if let Ok(n) = row.try_get::<i64, _>(i) {
                                n.to_string()
                            } else if let Ok(bytes) = row.try_get::<Vec<u8>, _>(i) {
                                format!("{bytes:?}")
                            } else {
                                String::new()
                            }
                        })
                        .collect();
                    lines.push(cells.join("|"));
                }
            }
            conn.close().await.unwrap();
            let mut out = lines.join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        })
    }
}

/// Asserts exit 0 and returns the run.
pub fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "exit {}\nstdout: {}\nstderr: {}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// A minimal valid model source declaring `ty`.
pub fn model_source(ty: &str, description: &str) -> String {
    format!(
        r#"export const model = {{
  type: "{ty}",
  version: "2026.01.01.0",
  description: "{description}",
  methods: {{
    go: {{ description: "g", arguments: {{ type: "object" }}, run() {{ return 1; }} }},
  }},
}};
"#
    )
}

/// A generated entry: arguments, one resource and one method, built from helpers.
fn generated_source(stem: &str, ty: &str, network: bool) -> String {
    let (import, cidr) = if network {
        (
            "import { DEFAULT_CIDR } from \"./_lib/network.ts\";\n",
            "      cidr: { type: \"string\", default: DEFAULT_CIDR },\n",
        )
    } else {
        ("", "")
    };
    let name = stem.replace('_', " ");
    format!(
        r#"import {{ describe, objectSchema }} from "./_lib/common.ts";
{import}
export const model = {{
  type: "{ty}",
  version: "2026.01.01.0",
  description: describe("{name}"),
  globalArguments: {{
    type: "object",
    properties: {{
      region: {{ type: "string" }},
{cidr}    }},
    required: ["region"],
  }},
  resources: {{
    state: {{ description: "Last known state", schema: objectSchema() }},
  }},
  methods: {{
    refresh: {{
      description: "Refresh the state",
      arguments: {{ type: "object", properties: {{ force: {{ type: "boolean" }} }} }},
      run(args: {{ force?: boolean }}, ctx: any) {{
        ctx.writeResource("state", "current", {{ id: String(args.force) }});
      }},
    }},
  }},
}};
"#
    )
}

/// Sets `path`'s mtime (and atime) to `ago` before now.
pub fn set_mtime_ago(path: &Path, ago: Duration) {
    let when = SystemTime::now() - ago;
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

/// Sets `path`'s mtime (and atime) to `when`.
pub fn set_mtime(path: &Path, when: SystemTime) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

/// Regular files under `dir` (recursively, symlinks skipped), sorted; none if absent.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

/// The `fenStats` object of a run's `--stats` line on stderr.
pub fn stats(run: &Run) -> Value {
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("{\"fenStats\""))
        .unwrap_or_else(|| panic!("no fenStats line on stderr: {}", run.stderr));
    let doc: Value = serde_json::from_str(line).expect("the fenStats line is JSON");
    doc["fenStats"].clone()
}

/// The counters of a `--stats` line that the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub built: u64,
    pub evaluated: u64,
    /// Evaluated bundle paths, repo-relative when under the repo.
    pub evaluated_paths: Vec<String>,
    pub hashed: u64,
    pub locks: u64,
}

impl Stats {
    pub fn of(run: &Run) -> Stats {
        let s = stats(run);
        let count = |key: &str| {
            s[key]
                .as_u64()
                .unwrap_or_else(|| panic!("fenStats.{key} missing: {s}"))
        };
        let mut evaluated_paths: Vec<String> = s["evaluated"]
            .as_array()
            .expect("fenStats.evaluated")
            .iter()
            .map(|p| {
                let p = p.as_str().unwrap();
                match p.find("/.fen/") {
                    Some(at) => p[at + 1..].to_owned(),
                    None => p.to_owned(),
                }
            })
            .collect();
        evaluated_paths.sort();
        Stats {
            built: count("bundlesBuilt"),
            evaluated: count("bundlesEvaluated"),
            evaluated_paths,
            hashed: count("sourcesHashed"),
            locks: count("lifecycleLockAcquired"),
        }
    }
}

/// The `.fen/bundles/local/models/<stem>.ts.bundle.json` path of a generated entry.
pub fn local_bundle(stem: &str) -> String {
    format!(".fen/bundles/local/models/{stem}.ts.bundle.json")
}

/// `warning:` lines of stderr.
pub fn warnings(run: &Run) -> Vec<&str> {
    run.stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

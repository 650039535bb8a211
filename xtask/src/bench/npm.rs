//! Bench rows for package imports from `node_modules` (issue 17), each side by side with
//! the same code imported by relative path, in the same run:
//!
//! - first index of one model importing a generated 120-module ES package by name vs
//!   the same files imported by relative path (<= 1.2 x);
//! - warm `model type search` in the 116-type local fixture plus 8 models importing the
//!   package by name, next to 2 000 files of unrelated packages in `node_modules`, vs the
//!   same repo with the package vendored by relative path and no `node_modules`
//!   (<= 1.05 x): the warm pass stats only the recorded graph, never `node_modules`.

use std::path::Path;

use super::{fixture, remove_if_present, Bench, Expect, FixtureSpec, Limit, Placement, Repo};

/// Modules of the generated package, `index.js` included.
const PACKAGE_MODULES: usize = 120;
/// Models importing the package in the warm-search repos.
const IMPORTERS: usize = 8;
/// Unrelated files in the warm repo's `node_modules`.
const UNRELATED_FILES: usize = 2_000;

/// Where the package lives and how models import it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Import {
    /// `extensions/node_modules/bench-lib`, `import ... from "bench-lib"`.
    ByName,
    /// `extensions/models/_vendor/bench-lib`, `import ... from "./_vendor/bench-lib/index.js"`.
    ByPath,
}

impl Import {
    fn package_dir(self) -> &'static str {
        match self {
            Import::ByName => "extensions/node_modules/bench-lib",
            Import::ByPath => "extensions/models/_vendor/bench-lib",
        }
    }

    fn specifier(self) -> &'static str {
        match self {
            Import::ByName => "bench-lib",
            Import::ByPath => "./_vendor/bench-lib/index.js",
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes the package (package.json, `index.js` re-exporting 119 modules) under `dir`.
fn write_package(repo: &Path, import: Import) -> Result<(), String> {
    let dir = repo.join(import.package_dir());
    write(
        &dir.join("package.json"),
        "{\"name\": \"bench-lib\", \"version\": \"1.0.0\", \"type\": \"module\", \"exports\": {\".\": {\"import\": \"./index.js\"}}}\n",
    )?;
    let mut index = String::new();
    let mut sum = Vec::new();
    for i in 1..PACKAGE_MODULES {
        index.push_str(&format!("import {{ f{i} }} from \"./lib/m{i}.js\";\n"));
        sum.push(format!("f{i}(x)"));
        write(
            &dir.join(format!("lib/m{i}.js")),
            &format!(
                "export function f{i}(x) {{\n  const table = [{}];\n  return table[x % table.length] + {i};\n}}\n",
                (0..16).map(|n| (n * i).to_string()).collect::<Vec<_>>().join(", ")
            ),
        )?;
    }
    index.push_str(&format!(
        "export function total(x) {{ return {}; }}\n",
        sum.join(" + ")
    ));
    write(&dir.join("index.js"), &index)
}

fn importer_source(import: Import, n: usize) -> String {
    format!(
        r#"import {{ total }} from "{}";
export const model = {{
  type: "@bench/npm/user{n}",
  version: "2026.01.01.0",
  description: "uses bench-lib: " + total(3),
  methods: {{
    go: {{ description: "g", arguments: {{ type: "object" }}, run() {{ return total(1); }} }},
  }},
}};
"#,
        import.specifier()
    )
}

/// A repo with only `.fen/` and one importing model.
fn small_repo(scratch: &Path, import: Import) -> Result<Repo, String> {
    let name = match import {
        Import::ByName => "npm-by-name",
        Import::ByPath => "npm-by-path",
    };
    let dir = scratch.join(name);
    std::fs::create_dir_all(dir.join(".fen"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write_package(&dir, import)?;
    write(
        &dir.join("extensions/models/user0.ts"),
        &importer_source(import, 0),
    )?;
    Ok(Repo {
        name: name.to_owned(),
        dir,
        fixture: fixture::Fixture {
            types: vec!["@bench/npm/user0".to_owned()],
            entry_files: vec!["extensions/models/user0.ts".to_owned()],
            n_files: PACKAGE_MODULES + 2,
            n_bytes: 0,
        },
    })
}

/// The 116-type local fixture plus [`IMPORTERS`] models importing the package; by name
/// also with [`UNRELATED_FILES`] files of other packages in `node_modules`.
fn fixture_repo(scratch: &Path, import: Import) -> Result<Repo, String> {
    let name = match import {
        Import::ByName => "npm-116-with-node-modules",
        Import::ByPath => "npm-116-without-node-modules",
    };
    let dir = scratch.join(name);
    let spec = FixtureSpec {
        n_types: 116,
        placement: Placement::Local,
        extensions_per_type: 0,
    };
    let fixture = fixture::generate(&dir, &spec)?;
    write_package(&dir, import)?;
    for n in 0..IMPORTERS {
        write(
            &dir.join(format!("extensions/models/npm_user{n}.ts")),
            &importer_source(import, n),
        )?;
    }
    if import == Import::ByName {
        for i in 0..UNRELATED_FILES {
            let package = i / 50;
            write(
                &dir.join(format!(
                    "extensions/node_modules/unrelated-{package}/f{i}.js"
                )),
                &format!("export const v{i} = {i};\n"),
            )?;
        }
    }
    Ok(Repo {
        name: name.to_owned(),
        dir,
        fixture,
    })
}

impl Bench {
    /// The two npm rows (see the module doc).
    pub(super) fn npm(&mut self, scratch: &Path) -> Result<(), String> {
        let by_path = small_repo(scratch, Import::ByPath)?;
        let by_name = small_repo(scratch, Import::ByName)?;
        let base = self.first_index(
            &by_path,
            "first index, 120-module package by relative path",
            None,
        )?;
        self.first_index(
            &by_name,
            "first index, 120-module package by name (node_modules)",
            Some(base),
        )?;

        let without = fixture_repo(scratch, Import::ByPath)?;
        let with = fixture_repo(scratch, Import::ByName)?;
        for repo in [&without, &with] {
            super::index_and_settle(&self.fen, repo)?;
        }
        let search = ["model", "type", "search", "vpc"];
        let base = self.warm(
            "search vpc, warm, 116 local + 8 importing a package by path",
            &without,
            &search,
            // The baseline of the ratio below; the absolute goal is that of the
            // 2 000-local warm search (the 116-local one is not a spec target).
            Limit::ms(15.0, 30.0),
            "-",
        )?;
        self.warm(
            "search vpc, warm, same by name + 2000 files in node_modules",
            &with,
            &search,
            Limit::relative(base, 1.05, "by-path p50"),
            "-",
        )?;
        Ok(())
    }

    /// First index of a one-model repo: each iteration deletes the catalog and bundles.
    fn first_index(
        &mut self,
        repo: &Repo,
        metric: &str,
        base: Option<std::time::Duration>,
    ) -> Result<std::time::Duration, String> {
        let args = ["model", "type", "search"];
        let samples = self.series(repo, &args, |_| {
            for file in [
                "_extension_catalog.db",
                "_extension_catalog.db-wal",
                "_extension_catalog.db-shm",
            ] {
                remove_if_present(&repo.dir.join(".fen").join(file))?;
            }
            remove_if_present(&repo.dir.join(".fen/bundles"))
        })?;
        let expect = Expect {
            bundles_built: 1,
            bundles_evaluated: 1,
        };
        let limit = match base {
            None => Limit::ms(150.0, 400.0),
            Some(base) => Limit::relative(base, 1.2, "by-path p50"),
        };
        Ok(self.record_timing(metric, &samples, expect, limit, "-"))
    }
}

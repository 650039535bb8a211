//! Hostile or broken extension sources (spec 30 §2.1, §2.3, §3.8, G5, G6): each one
//! ends in the right failure state with a message that says what to fix, and the other
//! types of the repo keep working.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::{model_source, warnings, Repo};
use crate::util::Run;

/// One broken source next to two good types.
struct Case<'a> {
    /// File name under `extensions/models/`.
    file: &'a str,
    text: String,
    env: &'a [(&'a str, &'a str)],
    state: &'a str,
    /// Substrings the row's `lastError` must contain.
    message: &'a [&'a str],
}

/// Writes the case, runs `fen model type search` and checks that it exits 0, lists the
/// good types, omits the broken one and warns naming the file; then checks the row.
/// Returns the search run and the row.
fn check(case: Case) -> (Run, Value) {
    let repo = Repo::new();
    repo.model("extensions/models/good_a.ts", "@fx/good/a", "first");
    repo.model("extensions/models/good_b.ts", "@fx/good/b", "second");
    let rel = format!("extensions/models/{}", case.file);
    repo.write(&rel, &case.text);

    let search = repo.fen_env(case.env, &["model", "type", "search"]);
    assert_eq!(search.code, 0, "stderr: {}", search.stderr);
    let listed: Vec<&str> = search
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, ["@fx/good/a", "@fx/good/b"], "{}", search.stdout);
    let named: Vec<&str> = warnings(&search)
        .into_iter()
        .filter(|l| l.contains(&rel))
        .collect();
    assert_eq!(named.len(), 1, "stderr: {}", search.stderr);
    assert!(named[0].contains(case.state), "{}", named[0]);

    let list = repo.fen_env(case.env, &["--json", "extension", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let rows = repo.rows_by_path(&list.json()["sources"]);
    let row = rows[&rel].clone();
    assert_eq!(row["state"], case.state, "{row}");
    assert!(row["type"].is_null(), "{row}");
    let error = row["lastError"].as_str().unwrap();
    assert!(!error.contains('\n'), "one line: {error:?}");
    for needle in case.message {
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
    for good in ["extensions/models/good_a.ts", "extensions/models/good_b.ts"] {
        assert_eq!(rows[good]["state"], "Indexed", "{good}");
    }
    (search, row)
}

/// `prefix` followed by a valid model export declaring `ty`.
fn after(prefix: &str, ty: &str) -> String {
    format!("{prefix}\n{}", model_source(ty, "d"))
}

#[test]
fn an_infinite_loop_at_top_level_hits_the_time_limit() {
    let started = Instant::now();
    let (search, _) = check(Case {
        file: "spin.ts",
        text: after("while (true) {}", "@fx/bad/spin"),
        env: &[("FEN_SANDBOX_EVAL_TIMEOUT_MS", "300")],
        state: "ValidationFailed",
        message: &["time limit", "300 ms"],
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let line = warnings(&search)
        .into_iter()
        .find(|l| l.contains("spin.ts"))
        .unwrap();
    assert!(line.contains("300 ms"), "{line}");
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let (search, _) = check(Case {
        file: "bomb.ts",
        text: after(
            "const hoard: number[][] = [];\nwhile (true) { hoard.push(new Array(100000).fill(7)); }",
            "@fx/bad/bomb",
        ),
        env: &[("FEN_SANDBOX_MEMORY_MB", "16")],
        state: "ValidationFailed",
        message: &["memory limit", "16 MiB"],
    });
    let line = warnings(&search)
        .into_iter()
        .find(|l| l.contains("bomb.ts"))
        .unwrap();
    assert!(line.contains("16 MiB"), "{line}");
}

#[test]
fn the_environment_is_out_of_reach() {
    check(Case {
        file: "env.ts",
        text: after("const home = process.env.HOME;", "@fx/bad/env"),
        env: &[],
        state: "ValidationFailed",
        message: &["process is not defined"],
    });
}

#[test]
fn the_filesystem_is_out_of_reach() {
    check(Case {
        file: "fs.ts",
        text: after(
            "const passwd = require(\"fs\").readFileSync(\"/etc/passwd\");",
            "@fx/bad/fs",
        ),
        env: &[],
        state: "ValidationFailed",
        message: &["require is not defined"],
    });
    check(Case {
        file: "deno.ts",
        text: after(
            "const passwd = Deno.readTextFileSync(\"/etc/passwd\");",
            "@fx/bad/deno",
        ),
        env: &[],
        state: "ValidationFailed",
        message: &["Deno is not defined"],
    });
}

#[test]
fn the_network_is_out_of_reach() {
    check(Case {
        file: "net.ts",
        text: after(
            "const reply = fetch(\"http://127.0.0.1:9/\");",
            "@fx/bad/net",
        ),
        env: &[],
        state: "ValidationFailed",
        message: &["fetch is not defined"],
    });
}

#[test]
fn no_host_object_is_visible_to_typeof() {
    let probe = r#"const seen = [typeof process, typeof require, typeof fetch, typeof Deno,
  typeof setTimeout, typeof setInterval, typeof WebAssembly, typeof std, typeof os].join(",");
throw new Error("host objects: " + seen);"#;
    check(Case {
        file: "probe.ts",
        text: after(probe, "@fx/bad/probe"),
        env: &[],
        state: "ValidationFailed",
        message: &[
            "host objects: undefined,undefined,undefined,undefined,undefined,undefined,undefined,undefined,undefined",
        ],
    });
}

#[test]
fn a_dynamic_import_inside_a_method_fails_the_build() {
    let text = r#"export const model = {
  type: "@fx/bad/dyn",
  version: "2026.01.01.0",
  description: "d",
  methods: {
    go: { description: "g", arguments: { type: "object" }, async run() { return import("./good_a.ts"); } },
  },
};
"#;
    check(Case {
        file: "dyn.ts",
        text: text.to_owned(),
        env: &[],
        state: "BundleBuildFailed",
        message: &["dynamic import", "models/dyn.ts:6:"],
    });
}

#[test]
fn a_bare_side_effect_import_fails_the_build_with_its_position() {
    let (_, row) = check(Case {
        file: "bare.ts",
        text: after(
            "// one line of comment first\nimport \"zod\";",
            "@fx/bad/bare",
        ),
        env: &[],
        state: "BundleBuildFailed",
        message: &["`zod`", "not installed", "npm install zod"],
    });
    assert_position(&row, "models/bare.ts", 2);
}

#[test]
fn an_unknown_host_module_fails_the_build() {
    check(Case {
        file: "host.ts",
        text: after(
            "import { readFile } from \"fen:fs\";\nconst r = readFile;",
            "@fx/bad/host",
        ),
        env: &[],
        state: "BundleBuildFailed",
        message: &["fen:fs"],
    });
}

#[test]
fn a_syntax_error_fails_the_build_with_its_position() {
    let text =
        "export const model = {\n  type: \"@fx/bad/syntax\",\n  version: \"2026.01.01.0\",,\n};\n";
    let (_, row) = check(Case {
        file: "syntax.ts",
        text: text.to_owned(),
        env: &[],
        state: "BundleBuildFailed",
        message: &["syntax"],
    });
    assert_position(&row, "models/syntax.ts", 3);
}

#[test]
fn a_zod_looking_method_schema_gets_the_json_schema_hint() {
    let text = r#"const z = { object(shape: unknown) { return { _def: { shape }, safeParse(v: unknown) { return v; } }; } };
export const model = {
  type: "@fx/bad/zodargs",
  version: "2026.01.01.0",
  description: "d",
  methods: {
    go: { description: "g", arguments: z.object({}), run() { return 1; } },
  },
};
"#;
    check(Case {
        file: "zodargs.ts",
        text: text.to_owned(),
        env: &[],
        state: "ValidationFailed",
        message: &["fen uses JSON Schema, not zod", "methods.go.arguments"],
    });
}

#[test]
fn a_method_without_run_is_rejected() {
    let text = r#"export const model = {
  type: "@fx/bad/norun",
  version: "2026.01.01.0",
  description: "d",
  methods: { go: { description: "g", arguments: { type: "object" } } },
};
"#;
    check(Case {
        file: "norun.ts",
        text: text.to_owned(),
        env: &[],
        state: "ValidationFailed",
        message: &["methods.go.run"],
    });
}

#[test]
fn a_method_named_execute_gets_the_run_hint() {
    let text = r#"export const model = {
  type: "@fx/bad/execute",
  version: "2026.01.01.0",
  description: "d",
  methods: { go: { description: "g", arguments: { type: "object" }, execute() { return 1; } } },
};
"#;
    check(Case {
        file: "execute.ts",
        text: text.to_owned(),
        env: &[],
        state: "ValidationFailed",
        message: &["fen calls this function `run`"],
    });
}

#[test]
fn an_unknown_export_field_is_rejected_but_x_fields_are_not() {
    let text = r#"export const model = {
  type: "@fx/bad/typo",
  version: "2026.01.01.0",
  description: "d",
  "x-owner": "team",
  method: {},
  methods: { go: { description: "g", arguments: { type: "object" }, run() { return 1; } } },
};
"#;
    let (_, row) = check(Case {
        file: "typo.ts",
        text: text.to_owned(),
        env: &[],
        state: "ValidationFailed",
        message: &["method"],
    });
    assert!(
        !row["lastError"].as_str().unwrap().contains("x-owner"),
        "{row}"
    );
}

#[test]
fn a_polluted_object_prototype_cannot_supply_descriptor_fields() {
    let repo = Repo::new();
    // Sorted first, so a shared heap would be polluted before the victim is read.
    repo.write(
        "extensions/models/a_polluter.ts",
        &after(
            r#"const proto = Object.prototype as any;
proto.globalArguments = { type: "object", properties: { stolen: { type: "string" } } };
proto.resources = { stolen: { schema: { type: "object" } } };
proto.methods = { stolen: { description: "s", arguments: { type: "object" }, run() { return 1; } } };
proto.description = "stolen";"#,
            "@fx/proto/polluter",
        ),
    );
    repo.write(
        "extensions/models/z_victim.ts",
        r#"export const model = {
  type: "@fx/proto/victim",
  version: "2026.01.01.0",
  description: "victim",
  methods: { go: { description: "g", arguments: { type: "object" }, run() { return 1; } } },
};
"#,
    );
    assert_eq!(
        repo.search_types(),
        ["@fx/proto/polluter", "@fx/proto/victim"]
    );
    for ty in ["@fx/proto/victim", "@fx/proto/polluter"] {
        let doc = repo.ok(&["--json", "model", "type", "describe", ty]).json();
        let text = doc.to_string();
        assert!(!text.contains("stolen"), "{ty}: {text}");
        assert_eq!(
            doc["globalArguments"],
            serde_json::json!({"type": "object", "additionalProperties": false}),
            "{ty}"
        );
        assert_eq!(doc["resources"], serde_json::json!({}), "{ty}");
        let methods: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["go"], "{ty}");
    }
}

/// Asserts that `lastError` holds `<file>:<line>:<col>` with a numeric column.
fn assert_position(row: &Value, file: &str, line: u32) {
    let error = row["lastError"].as_str().unwrap();
    let needle = format!("{file}:{line}:");
    let at = error
        .find(&needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {error:?}"));
    let column: String = error[at + needle.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(
        !column.is_empty(),
        "no column after {needle:?} in {error:?}"
    );
}

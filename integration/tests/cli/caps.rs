//! Hostile sizes through the binary: a model whose descriptor holds a 40 MiB string
//! is `ValidationFailed` naming the 1 MiB limit and leaves the catalog small; a method
//! that throws a 30 MiB message fails with `method_threw` and a cut message, in the
//! JSON error and in the run record.

use serde_json::Value;

use crate::fixture::Repo;

const HUGE_DEFAULT: &str = r#"export const model = {
  type: "@acme/huge/default",
  version: "2026.03.01.0",
  description: "A schema default of 40 MiB",
  globalArguments: {
    type: "object",
    properties: { blob: { type: "string", default: "x".repeat(40 * 1024 * 1024) } },
  },
  methods: { go: { description: "g", arguments: { type: "object" }, run() { return 1; } } },
};
"#;

const THROWER: &str = r#"import { FenError } from "fen:sdk";

export const model = {
  type: "@acme/huge/thrower",
  version: "2026.03.01.0",
  description: "Throws 30 MiB messages",
  methods: {
    boom: {
      description: "Throws an Error",
      arguments: { type: "object" },
      run() { throw new Error("y".repeat(30 * 1024 * 1024)); },
    },
    refuse: {
      description: "Throws a FenError",
      arguments: { type: "object" },
      run() { throw new FenError("f".repeat(30 * 1024 * 1024), { code: "too_long" }); },
    },
  },
};
"#;

const CUT_NOTE: &str = " … [cut: 31457280 characters in all]";

#[test]
fn a_40_mib_descriptor_string_is_validation_failed_and_stays_out_of_the_catalog() {
    let repo = Repo::new();
    repo.write("extensions/models/huge.ts", HUGE_DEFAULT);
    repo.model("extensions/models/fine.ts", "@acme/huge/fine", "fine");
    repo.age_all();
    let row = repo.row("extensions/models/huge.ts");
    assert_eq!(row["state"], "ValidationFailed", "{row}");
    let error = row["lastError"].as_str().unwrap();
    assert!(
        error.contains(
            "model.globalArguments.properties.blob.default: the descriptor would be at least"
        ) && error.ends_with("bytes, over the 1 MiB limit"),
        "{error}"
    );
    assert_eq!(repo.row("extensions/models/fine.ts")["state"], "Indexed");
    let catalog_bytes: u64 = [
        ".fen/_extension_catalog.db",
        ".fen/_extension_catalog.db-wal",
    ]
    .iter()
    .filter_map(|rel| std::fs::metadata(repo.path(rel)).ok())
    .map(|meta| meta.len())
    .sum();
    assert!(catalog_bytes < 2 << 20, "catalog is {catalog_bytes} bytes");
    let bundle = std::fs::metadata(repo.path(".fen/bundles/local/models/huge.ts.bundle.json"));
    assert!(bundle.is_ok_and(|meta| meta.len() < 64 << 10));
}

/// Runs `method` of model `t`: exit 7 `method_threw`, stdout a small JSON document.
fn run_huge_throw(repo: &Repo, method: &str) -> Value {
    let out = repo.fen(&["--json", "model", "method", "run", "t", method]);
    assert_eq!(out.code, 7, "{}", out.stderr);
    assert!(
        out.stdout.len() < 64 << 10,
        "stdout is {} bytes",
        out.stdout.len()
    );
    let doc = out.json();
    assert_eq!(doc["error"]["code"], "method_threw", "{}", out.stdout);
    doc
}

#[test]
fn a_30_mib_thrown_message_is_cut_in_the_output_and_the_run_record() {
    let repo = Repo::new();
    repo.write("extensions/models/thrower.ts", THROWER);
    repo.age_all();
    repo.ok(&["model", "create", "@acme/huge/thrower", "t"]);

    let doc = run_huge_throw(&repo, "boom");
    let error = &doc["error"];
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("method \"boom\" of model \"t\" threw: Error: yyyy"),
        "{}",
        &message[..80]
    );
    assert!(message.ends_with(&format!("y{CUT_NOTE}")), "{message}");
    assert!(message.len() < 4096 + 200, "{}", message.len());
    assert!(error["stack"].as_str().is_some_and(|s| s.len() <= 4096));
    let record = &error["run"];
    assert_eq!(record["error"]["message"], error["message"]);

    let doc = run_huge_throw(&repo, "refuse");
    let error = &doc["error"];
    assert_eq!(error["extensionCode"], "too_long");
    let message = error["message"].as_str().unwrap();
    assert!(message.len() <= 4096, "{}", message.len());
    assert!(message.ends_with(&format!("f{CUT_NOTE}")), "{message}");

    // The records on disk hold the cut text too.
    let runs = repo.path(".fen/data/t/runs");
    let records: Vec<_> = std::fs::read_dir(runs)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(records.len(), 2);
    for path in records {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() < 16 << 10,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        assert!(text.contains(CUT_NOTE), "{text}");
    }

    // Human mode prints the cut message as the one error line.
    let out = repo.fen(&["model", "method", "run", "t", "boom"]);
    assert_eq!(out.code, 7);
    assert!(out.stderr.len() < 16 << 10, "{} bytes", out.stderr.len());
    assert!(out.stderr.contains(CUT_NOTE), "{}", out.stderr);
}

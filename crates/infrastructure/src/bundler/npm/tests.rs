//! Unit tests of package specifier parsing and `exports` resolution.

use super::*;

fn package(name: &str, version: Option<&str>, subpath: Option<&str>) -> Foreign {
    Foreign::Package(PackageSpec {
        name: name.to_owned(),
        version: version.map(str::to_owned),
        subpath: subpath.map(str::to_owned),
    })
}

#[test]
fn classification_of_foreign_specifiers() {
    let cases = [
        ("zod", package("zod", None, None)),
        ("zod/v4", package("zod", None, Some("v4"))),
        ("@scope/pkg", package("@scope/pkg", None, None)),
        (
            "@scope/pkg/a/b.js",
            package("@scope/pkg", None, Some("a/b.js")),
        ),
        ("npm:zod@4.6.7", package("zod", Some("4.6.7"), None)),
        (
            "npm:@scope/pkg@1.0.0-rc.1/x",
            package("@scope/pkg", Some("1.0.0-rc.1"), Some("x")),
        ),
        ("npm:zod", package("zod", None, None)),
        (
            "npm:zod@^4.0.0",
            Foreign::VersionRange {
                name: "zod".to_owned(),
                version: "^4.0.0".to_owned(),
            },
        ),
        (
            "npm:zod@4",
            Foreign::VersionRange {
                name: "zod".to_owned(),
                version: "4".to_owned(),
            },
        ),
        ("node:fs", Foreign::NodeBuiltin),
        ("fs", Foreign::NodeBuiltin),
        ("fs/promises", Foreign::NodeBuiltin),
        ("jsr:@std/path", Foreign::Jsr),
        ("https://x.test/a.js", Foreign::Url),
        ("/abs/a.js", Foreign::Other),
        (".", Foreign::Other),
        ("..", Foreign::Other),
        ("@scope", Foreign::Other),
        ("zod/../x", Foreign::Other),
        ("zod//x", Foreign::Other),
        (".hidden", Foreign::Other),
    ];
    for (specifier, expected) in cases {
        assert_eq!(classify_foreign(specifier), expected, "{specifier}");
    }
}

fn exports(json: &str, key: &str) -> Result<String, NpmProblem> {
    resolve_exports(&serde_json::from_str(json).unwrap(), key)
}

#[test]
fn exports_resolution() {
    assert_eq!(exports(r#""./i.js""#, ".").unwrap(), "./i.js");
    assert_eq!(
        exports(r#"{"import":"./i.mjs","require":"./i.cjs"}"#, ".").unwrap(),
        "./i.mjs"
    );
    assert_eq!(
        exports(
            r#"{"require":"./r.cjs","default":"./d.js","fen":"./f.js"}"#,
            "."
        )
        .unwrap(),
        "./f.js"
    );
    assert_eq!(
        exports(
            r#"{".":{"import":{"types":"./t.d.ts","default":"./i.js"}}}"#,
            "."
        )
        .unwrap(),
        "./i.js"
    );
    assert_eq!(
        exports(
            r#"{"./v4/*":"./dist/v4/*.js","./*":"./dist/*.js"}"#,
            "./v4/core"
        )
        .unwrap(),
        "./dist/v4/core.js"
    );
    assert_eq!(
        exports(r#"{"./*":{"import":"./esm/*"}}"#, "./a/b.js").unwrap(),
        "./esm/a/b.js"
    );
    assert_eq!(
        exports(r#"{".":"./i.js"}"#, "./x"),
        Err(NpmProblem::NotExported {
            subpath: "./x".to_owned()
        })
    );
    assert_eq!(
        exports(r#"{".":{"require":"./i.cjs"}}"#, "."),
        Err(NpmProblem::NoImportCondition {
            subpath: ".".to_owned(),
            offered: vec!["require".to_owned()]
        })
    );
    assert!(matches!(
        exports(r#"{"./x":"../../secret.js"}"#, "./x"),
        Err(NpmProblem::TargetEscapes { .. })
    ));
    assert!(matches!(
        exports(r#"{"./x":"./a/../../secret.js"}"#, "./x"),
        Err(NpmProblem::TargetEscapes { .. })
    ));
    assert!(matches!(
        exports(r#"{"./*":"./*"}"#, "./../x.js"),
        Err(NpmProblem::TargetEscapes { .. })
    ));
}

#[test]
fn exact_versions() {
    for ok in ["1.2.3", "4.6.7", "1.0.0-rc.1", "1.0.0+build.5"] {
        assert!(is_exact_version(ok), "{ok}");
    }
    for range in [
        "^1.2.3", "~1.2.3", "1.x", "1", "1.2", ">=1.0.0", "*", "latest", "",
    ] {
        assert!(!is_exact_version(range), "{range}");
    }
}

#[test]
fn owning_package_is_the_nearest() {
    let dirs = vec![
        "node_modules/a".to_owned(),
        "node_modules/a/node_modules/b".to_owned(),
        "node_modules/ab".to_owned(),
    ];
    assert_eq!(
        owning_package("node_modules/a/x.js", &dirs),
        Some("node_modules/a")
    );
    assert_eq!(
        owning_package("node_modules/a/node_modules/b/y.js", &dirs),
        Some("node_modules/a/node_modules/b")
    );
    assert_eq!(owning_package("node_modules/abc/y.js", &dirs), None);
    assert_eq!(owning_package("models/a.ts", &dirs), None);
}

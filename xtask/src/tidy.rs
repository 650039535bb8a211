//! `cargo xtask tidy`: the layer rules that `cargo test` must catch (STYLE §1, §7).
//!
//! - fen-domain's manifest names no tokio, sqlx, clap, rquickjs, reqwest or oxc;
//! - fen-lifecycle does not depend on fen-infrastructure;
//! - every Rust module starts with a `//!` line.

use std::path::{Path, PathBuf};

/// Crates the domain may never depend on (it does no I/O and has no runtime).
pub const FORBIDDEN_IN_DOMAIN: [&str; 6] = ["tokio", "sqlx", "clap", "rquickjs", "reqwest", "oxc"];

/// Runs every check on the workspace at `root`; returns the violations.
pub fn check(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
    };
    problems.extend(check_domain_manifest(&read("crates/domain/Cargo.toml")?)?);
    problems.extend(check_lifecycle_manifest(&read(
        "crates/lifecycle/Cargo.toml",
    )?)?);
    for dir in ["crates", "xtask", "integration"] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if !starts_with_module_doc(&text) {
                let rel = file.strip_prefix(root).unwrap_or(&file);
                problems.push(format!(
                    "{}: module does not start with a `//!` line",
                    rel.display()
                ));
            }
        }
    }
    Ok(problems)
}

/// Violations of the domain's dependency rule in a manifest text.
pub fn check_domain_manifest(manifest: &str) -> Result<Vec<String>, String> {
    let names = dependency_names(manifest)?;
    Ok(names
        .iter()
        .filter(|name| FORBIDDEN_IN_DOMAIN.iter().any(|f| name == f || name.starts_with(&format!("{f}_")) || name.starts_with(&format!("{f}-"))))
        .map(|name| format!("crates/domain/Cargo.toml: fen-domain must not depend on {name} (the domain does no I/O)"))
        .collect())
}

/// Violations of the lifecycle's dependency rule in a manifest text.
pub fn check_lifecycle_manifest(manifest: &str) -> Result<Vec<String>, String> {
    let names = dependency_names(manifest)?;
    Ok(names
        .iter()
        .filter(|name| *name == "fen-infrastructure")
        .map(|_| "crates/lifecycle/Cargo.toml: fen-lifecycle must not depend on fen-infrastructure (services see ports only)".to_owned())
        .collect())
}

/// Every dependency name (and renamed `package`) in normal, dev, build and target
/// dependency tables.
fn dependency_names(manifest: &str) -> Result<Vec<String>, String> {
    let value: toml::Value = manifest
        .parse()
        .map_err(|e| format!("invalid manifest: {e}"))?;
    let mut names = Vec::new();
    let mut collect = |table: &toml::Value| {
        for key in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(key).and_then(|d| d.as_table()) {
                for (name, spec) in deps {
                    names.push(name.clone());
                    if let Some(package) = spec.get("package").and_then(|p| p.as_str()) {
                        names.push(package.to_owned());
                    }
                }
            }
        }
    };
    collect(&value);
    if let Some(targets) = value.get("target").and_then(|t| t.as_table()) {
        for target in targets.values() {
            collect(target);
        }
    }
    Ok(names)
}

fn starts_with_module_doc(text: &str) -> bool {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .is_some_and(|line| line.trim_start().starts_with("//!"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn the_workspace_is_tidy() {
        let problems = check(&workspace_root()).unwrap();
        assert!(
            problems.is_empty(),
            "tidy found problems:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn a_forbidden_domain_dependency_is_caught() {
        let real =
            std::fs::read_to_string(workspace_root().join("crates/domain/Cargo.toml")).unwrap();
        assert!(check_domain_manifest(&real).unwrap().is_empty());
        for forbidden in FORBIDDEN_IN_DOMAIN {
            let tainted = real.replace(
                "[dependencies]\n",
                &format!("[dependencies]\n{forbidden} = \"1\"\n"),
            );
            let problems = check_domain_manifest(&tainted).unwrap();
            assert_eq!(problems.len(), 1, "{forbidden}: {problems:?}");
            assert!(problems[0].contains(forbidden));
        }
        let renamed = format!("{real}\n[target.'cfg(unix)'.dependencies]\nrt = {{ package = \"tokio\", version = \"1\" }}\n");
        assert_eq!(check_domain_manifest(&renamed).unwrap().len(), 1);
        let oxc_part = real.replace("[dependencies]\n", "[dependencies]\noxc_parser = \"0.1\"\n");
        assert_eq!(check_domain_manifest(&oxc_part).unwrap().len(), 1);
    }

    #[test]
    fn lifecycle_must_not_see_infrastructure() {
        let real =
            std::fs::read_to_string(workspace_root().join("crates/lifecycle/Cargo.toml")).unwrap();
        assert!(check_lifecycle_manifest(&real).unwrap().is_empty());
        let tainted = real.replace(
            "[dependencies]\n",
            "[dependencies]\nfen-infrastructure.workspace = true\n",
        );
        assert_eq!(check_lifecycle_manifest(&tainted).unwrap().len(), 1);
    }

    #[test]
    fn module_docs() {
        assert!(starts_with_module_doc("\n//! Doc.\nfn x() {}"));
        assert!(!starts_with_module_doc("// plain\n//! late"));
        assert!(!starts_with_module_doc("use x;"));
    }
}

//! `cargo xtask bench fixture`: generates the benchmark repo of spec 30 §8.3 and the
//! fixture F116 of §9 (`--types 116`).
//!
//! Each model type is three files, about 15 KB together once bundled with the shared
//! helper: the entry `models/<provider>/<service>/<resource>.ts` and two per-type
//! helpers under `models/<provider>/<service>/_<resource>/` (`schema.ts`, `plan.ts`).
//! Every entry imports `models/_lib/shared.ts` with an exact relative specifier. Type 0
//! is always `@fixture/aws/ec2/vpc`, the type the scenarios of spec 30 §9 use.
//!
//! With [`Placement::Local`] the types are local sources under `extensions/`; with
//! [`Placement::Pulled`] the same files sit in pulled extensions, one
//! `@fixture/pack-NNN` per ten types, each with its own `_lib/shared.ts`, a
//! `manifest.yaml` and its lockfile entry (spec 20 §5.3, §7.1).
//!
//! The output is a pure function of the arguments (no clock, no randomness), so two
//! fixtures of the same size are byte-identical.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

mod typescript;

use typescript::{extension_entry, model_entry, plan_helper, schema_helper, shared_helper};

/// The CalVer every fixture type and pack declares.
pub const VERSION: &str = "2026.01.01.0";
/// The type the spec's scenarios describe and run (type 0).
pub const VPC_TYPE: &str = "@fixture/aws/ec2/vpc";
/// Types per pulled extension.
pub const TYPES_PER_PACK: usize = 10;

/// Where the generated types live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Local sources under `extensions/models/`.
    Local,
    /// Pulled extensions under `.fen/pulled-extensions/`, with a lockfile.
    Pulled,
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct FixtureSpec {
    /// Number of model types.
    pub n_types: usize,
    /// Local or pulled.
    pub placement: Placement,
    /// Extension sources (`export const extension`) per model type.
    pub extensions_per_type: usize,
}

/// What was generated.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Declared model types, in generation order (index 0 is [`VPC_TYPE`]).
    pub types: Vec<String>,
    /// The model entry of each type, repo-relative, in the order of `types`.
    pub entry_files: Vec<String>,
    /// Files written, lockfile included.
    pub n_files: usize,
    /// Bytes written.
    pub n_bytes: usize,
}

/// Writes the fixture into `dir`, which must be absent, empty, or a fresh `fen init`
/// repo (no files under `extensions/`, no pulled extensions).
pub fn generate(dir: &Path, spec: &FixtureSpec) -> Result<Fixture, String> {
    ensure_fresh(dir)?;
    for sub in [
        ".fen",
        "extensions/models",
        "extensions/vaults",
        "extensions/drivers",
        "extensions/datastores",
        "extensions/reports",
    ] {
        create_dir(&dir.join(sub))?;
    }
    let files = render(spec)?;
    let mut n_bytes = 0;
    for (rel, text) in &files.text {
        write_file(&dir.join(rel), text)?;
        n_bytes += text.len();
    }
    #[cfg(unix)]
    for rel in &files.read_only {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(rel);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
            .map_err(|e| format!("cannot make {} read-only: {e}", path.display()))?;
    }
    Ok(Fixture {
        types: files.types,
        entry_files: files.entries,
        n_files: files.text.len(),
        n_bytes,
    })
}

/// Runs `cargo xtask bench fixture`.
pub fn run(dir: &Path, spec: &FixtureSpec) -> Result<(), String> {
    let fixture = generate(dir, spec)?;
    let placement = match spec.placement {
        Placement::Local => "local sources",
        Placement::Pulled => "pulled extensions",
    };
    println!(
        "fixture: {} model types ({} extension sources each) as {placement} in {}: {} files, {} KiB",
        fixture.types.len(),
        spec.extensions_per_type,
        dir.display(),
        fixture.n_files,
        fixture.n_bytes / 1024
    );
    Ok(())
}

/// One type's place in the vocabulary.
#[derive(Clone, Debug)]
struct TypeSpec {
    index: usize,
    provider: &'static str,
    service: &'static str,
    resource: String,
}

impl TypeSpec {
    fn nth(index: usize) -> TypeSpec {
        let (provider, service, resource) = BASES[index % BASES.len()];
        let round = index / BASES.len();
        let resource = match round {
            0 => resource.to_owned(),
            _ => format!("{resource}-{}", round + 1),
        };
        TypeSpec {
            index,
            provider,
            service,
            resource,
        }
    }

    fn declared(&self) -> String {
        format!("@fixture/{}", self.kind_path())
    }

    fn kind_path(&self) -> String {
        format!("{}/{}/{}", self.provider, self.service, self.resource)
    }

    /// The directory of the entry, relative to the kind dir `models/`.
    fn dir(&self) -> String {
        format!("{}/{}", self.provider, self.service)
    }
}

/// Every generated file, keyed by repo-relative path (sorted by bytes).
struct Files {
    text: BTreeMap<String, String>,
    read_only: Vec<String>,
    types: Vec<String>,
    entries: Vec<String>,
}

fn render(spec: &FixtureSpec) -> Result<Files, String> {
    let mut files = Files {
        text: BTreeMap::new(),
        read_only: Vec::new(),
        types: Vec::new(),
        entries: Vec::new(),
    };
    let all: Vec<TypeSpec> = (0..spec.n_types).map(TypeSpec::nth).collect();
    match spec.placement {
        Placement::Local => {
            let models = "extensions/models";
            files
                .text
                .insert(format!("{models}/_lib/shared.ts"), shared_helper());
            for ty in &all {
                render_type(&mut files, models, ty, spec.extensions_per_type);
            }
        }
        Placement::Pulled => {
            let mut lock_entries = BTreeMap::new();
            for (pack, types) in all.chunks(TYPES_PER_PACK).enumerate() {
                let name = format!("@fixture/pack-{pack:03}");
                // Single-segment names: the directory key equals the name (spec 20 §6.2).
                let root = format!(".fen/pulled-extensions/{name}");
                let models = format!("{root}/models");
                files
                    .text
                    .insert(format!("{models}/_lib/shared.ts"), shared_helper());
                let mut entry_points = Vec::new();
                for ty in types {
                    entry_points.extend(render_type(
                        &mut files,
                        &models,
                        ty,
                        spec.extensions_per_type,
                    ));
                }
                let manifest = format!("{root}/manifest.yaml");
                files.text.insert(
                    manifest.clone(),
                    manifest_yaml(&name, pack, types, &entry_points),
                );
                files.read_only.push(manifest);
                let prefix = format!("{root}/");
                let pack_files: Vec<&String> = files
                    .text
                    .range(prefix.clone()..)
                    .map(|(path, _)| path)
                    .take_while(|path| path.starts_with(&prefix))
                    .collect();
                lock_entries.insert(name, lock_entry(&files.text, &pack_files));
            }
            files.text.insert(
                "extensions/upstream_extensions.json".to_owned(),
                lockfile_json(lock_entries)?,
            );
        }
    }
    Ok(files)
}

/// Adds one type's files under `models` (a kind dir); returns its entry points relative
/// to `models`.
fn render_type(files: &mut Files, models: &str, ty: &TypeSpec, n_extensions: usize) -> Vec<String> {
    let dir = ty.dir();
    let res = &ty.resource;
    let entry = format!("{dir}/{res}.ts");
    files.text.insert(
        format!("{models}/{dir}/_{res}/schema.ts"),
        schema_helper(ty),
    );
    files
        .text
        .insert(format!("{models}/{dir}/_{res}/plan.ts"), plan_helper(ty));
    files
        .text
        .insert(format!("{models}/{entry}"), model_entry(ty));
    files.types.push(ty.declared());
    files.entries.push(format!("{models}/{entry}"));
    let mut entry_points = vec![entry];
    for k in 1..=n_extensions {
        let ext = format!("{dir}/{res}_ext{k}.ts");
        files
            .text
            .insert(format!("{models}/{ext}"), extension_entry(ty, k));
        entry_points.push(ext);
    }
    entry_points
}

fn manifest_yaml(name: &str, pack: usize, types: &[TypeSpec], entry_points: &[String]) -> String {
    let first = pack * TYPES_PER_PACK;
    let last = first + types.len().saturating_sub(1);
    let mut sorted = entry_points.to_vec();
    sorted.sort();
    let mut text = format!(
        "# Read-only; regenerate with 'fen extension pull'\n\
         manifestVersion: 1\n\
         name: \"{name}\"\n\
         version: \"{VERSION}\"\n\
         description: \"fixture pack {pack}: model types {first} to {last}\"\n\
         models:\n"
    );
    for path in sorted {
        text.push_str(&format!("  - {path}\n"));
    }
    text.push_str("vaults: []\ndrivers: []\ndatastores: []\nreports: []\nfiles: []\n");
    text
}

/// One lockfile entry (spec 20 §7.1). There is no archive, so no `checksum` (optional in
/// hand-edited files) and no `registry`.
fn lock_entry(text: &BTreeMap<String, String>, pack_files: &[&String]) -> Value {
    // `files` sorted by bytes, and the digest over exactly that order.
    let mut digest_input = String::new();
    for path in pack_files {
        let content = text.get(*path).map(String::as_bytes).unwrap_or_default();
        digest_input.push_str(&format!("{}  {path}\n", hex(&Sha256::digest(content))));
    }
    // Keys inserted in sorted order so the output is sorted whether or not serde_json's
    // `preserve_order` is enabled in this build.
    let mut entry = Map::new();
    entry.insert("files".to_owned(), json!(pack_files));
    entry.insert(
        "filesDigest".to_owned(),
        json!(hex(&Sha256::digest(digest_input.as_bytes()))),
    );
    entry.insert("pulledAt".to_owned(), json!("2026-01-01T00:00:00.000Z"));
    entry.insert("version".to_owned(), json!(VERSION));
    Value::Object(entry)
}

fn lockfile_json(entries: BTreeMap<String, Value>) -> Result<String, String> {
    let mut extensions = Map::new();
    for (name, entry) in entries {
        extensions.insert(name, entry);
    }
    let mut document = Map::new();
    document.insert("extensions".to_owned(), Value::Object(extensions));
    document.insert("formatVersion".to_owned(), json!(1));
    let mut text = serde_json::to_string_pretty(&Value::Object(document))
        .map_err(|e| format!("cannot serialize the lockfile: {e}"))?;
    text.push('\n');
    Ok(text)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (provider, service, resource). Index 0 must stay `aws/ec2/vpc` ([`VPC_TYPE`]); later
/// rounds through the list append `-2`, `-3`, ... to the resource.
const BASES: [(&str, &str, &str); 52] = [
    ("aws", "ec2", "vpc"),
    ("aws", "ec2", "subnet"),
    ("aws", "ec2", "security-group"),
    ("aws", "ec2", "instance"),
    ("aws", "ec2", "route-table"),
    ("aws", "ec2", "internet-gateway"),
    ("aws", "ec2", "nat-gateway"),
    ("aws", "ec2", "vpc-endpoint"),
    ("aws", "s3", "bucket"),
    ("aws", "s3", "bucket-policy"),
    ("aws", "iam", "role"),
    ("aws", "iam", "policy"),
    ("aws", "iam", "user"),
    ("aws", "rds", "db-instance"),
    ("aws", "rds", "db-cluster"),
    ("aws", "route53", "hosted-zone"),
    ("aws", "route53", "record-set"),
    ("aws", "lambda", "function"),
    ("aws", "elb", "load-balancer"),
    ("aws", "elb", "target-group"),
    ("aws", "sqs", "queue"),
    ("aws", "sns", "topic"),
    ("gcp", "compute", "network"),
    ("gcp", "compute", "subnetwork"),
    ("gcp", "compute", "firewall"),
    ("gcp", "compute", "instance"),
    ("gcp", "compute", "router"),
    ("gcp", "storage", "bucket"),
    ("gcp", "dns", "managed-zone"),
    ("gcp", "vpcaccess", "connector"),
    ("azure", "network", "vnet"),
    ("azure", "network", "subnet"),
    ("azure", "network", "security-group"),
    ("azure", "compute", "virtual-machine"),
    ("azure", "storage", "account"),
    ("cloudflare", "dns", "record"),
    ("cloudflare", "zone", "settings"),
    ("k8s", "core", "namespace"),
    ("k8s", "core", "config-map"),
    ("k8s", "core", "secret"),
    ("k8s", "core", "service"),
    ("k8s", "apps", "deployment"),
    ("k8s", "apps", "stateful-set"),
    ("github", "repo", "repository"),
    ("github", "repo", "branch-protection"),
    ("github", "org", "team"),
    ("net", "http", "endpoint"),
    ("net", "tls", "certificate"),
    ("net", "dns", "resolver"),
    ("digitalocean", "vpc", "network"),
    ("digitalocean", "droplet", "instance"),
    ("digitalocean", "spaces", "bucket"),
];

// ---------------------------------------------------------------------------------------
// File system helpers.

/// Refuses a directory that already holds sources or pulled extensions: stale files would
/// make the fixture differ from its arguments.
fn ensure_fresh(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(format!("{} exists and is not a directory", dir.display()));
    }
    let pulled = dir.join(".fen/pulled-extensions");
    if pulled.exists() {
        return Err(format!(
            "{} already has pulled extensions; pass a new or empty directory",
            dir.display()
        ));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let allowed = name == ".fen" || name == "extensions";
        if !allowed || (name == "extensions" && has_files(&entry.path())?) {
            return Err(format!(
                "{} is not empty (found {}); pass a new or empty directory, or a fresh `fen init` repo",
                dir.display(),
                PathBuf::from(&name).display()
            ));
        }
    }
    Ok(())
}

fn has_files(dir: &Path) -> Result<bool, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if !path.is_dir() || has_files(&path)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn create_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n_types: usize, placement: Placement, n_extensions: usize) -> Files {
        render(&FixtureSpec {
            n_types,
            placement,
            extensions_per_type: n_extensions,
        })
        .unwrap()
    }

    #[test]
    fn type_zero_is_the_vpc_and_names_are_unique() {
        let files = check(2000, Placement::Local, 0);
        assert_eq!(files.types[0], VPC_TYPE);
        let mut unique = files.types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 2000);
        // Entry + two helpers per type, plus the shared helper.
        assert_eq!(files.text.len(), 3 * 2000 + 1);
        assert!(files.types.iter().all(|t| t.split('/').count() >= 3));
    }

    #[test]
    fn every_entry_imports_the_shared_helper_with_its_extension() {
        let files = check(116, Placement::Local, 2);
        assert!(files.text.contains_key("extensions/models/_lib/shared.ts"));
        let entries: Vec<_> = files
            .text
            .iter()
            .filter(|(path, _)| !path.contains("/_"))
            .collect();
        assert_eq!(entries.len(), 116 * 3);
        for (path, text) in entries {
            assert!(text.contains("from \"../../_lib/shared.ts\";"), "{path}");
        }
        let vpc = &files.text["extensions/models/aws/ec2/vpc.ts"];
        assert!(vpc.contains("type: \"@fixture/aws/ec2/vpc\""));
        assert!(vpc.contains("version: \"2026.01.01.0\""));
        assert!(
            files.text["extensions/models/aws/ec2/vpc_ext2.ts"].contains("export const extension")
        );
    }

    #[test]
    fn a_bundle_is_about_fifteen_kilobytes() {
        let files = check(116, Placement::Local, 0);
        let bundle: usize = [
            "extensions/models/_lib/shared.ts",
            "extensions/models/aws/ec2/vpc.ts",
            "extensions/models/aws/ec2/_vpc/schema.ts",
            "extensions/models/aws/ec2/_vpc/plan.ts",
        ]
        .iter()
        .map(|p| files.text[*p].len())
        .sum();
        assert!((10_000..25_000).contains(&bundle), "{bundle} bytes");
    }

    #[test]
    fn pulled_packs_have_a_lockfile_listing_every_file_with_a_digest() {
        let files = check(25, Placement::Pulled, 1);
        let lockfile: Value =
            serde_json::from_str(&files.text["extensions/upstream_extensions.json"]).unwrap();
        assert_eq!(lockfile["formatVersion"], 1);
        let extensions = lockfile["extensions"].as_object().unwrap();
        let names: Vec<&String> = extensions.keys().collect();
        assert_eq!(
            names,
            [
                "@fixture/pack-000",
                "@fixture/pack-001",
                "@fixture/pack-002"
            ]
        );
        let pack = &extensions["@fixture/pack-002"];
        assert_eq!(pack["version"], VERSION);
        let listed: Vec<&str> = pack["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        // 5 types x (entry + 2 helpers + 1 extension) + shared helper + manifest.
        assert_eq!(listed.len(), 5 * 4 + 2);
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        let on_disk: Vec<&str> = files
            .text
            .keys()
            .map(String::as_str)
            .filter(|p| p.starts_with(".fen/pulled-extensions/@fixture/pack-002/"))
            .collect();
        assert_eq!(listed, on_disk);
        let mut input = String::new();
        for path in &listed {
            input.push_str(&format!(
                "{}  {path}\n",
                hex(&Sha256::digest(files.text[*path].as_bytes()))
            ));
        }
        assert_eq!(pack["filesDigest"], hex(&Sha256::digest(input.as_bytes())));
        let manifest = &files.text[".fen/pulled-extensions/@fixture/pack-000/manifest.yaml"];
        assert!(manifest.starts_with("# Read-only;"));
        assert!(manifest.contains("  - aws/ec2/vpc.ts\n  - aws/ec2/vpc_ext1.ts\n"));
        assert!(!files
            .text
            .keys()
            .any(|p| p.starts_with("extensions/models/")));
    }

    #[test]
    fn output_is_deterministic() {
        let a = check(60, Placement::Pulled, 1);
        let b = check(60, Placement::Pulled, 1);
        assert_eq!(a.text, b.text);
    }

    #[test]
    fn generate_refuses_a_used_directory_and_accepts_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".fen")).unwrap();
        std::fs::create_dir_all(dir.path().join("extensions/models")).unwrap();
        let spec = FixtureSpec {
            n_types: 3,
            placement: Placement::Local,
            extensions_per_type: 0,
        };
        let fixture = generate(dir.path(), &spec).unwrap();
        assert_eq!(fixture.entry_files[0], "extensions/models/aws/ec2/vpc.ts");
        assert!(dir.path().join(&fixture.entry_files[2]).is_file());
        let again = generate(dir.path(), &spec).unwrap_err();
        assert!(again.contains("not empty"), "{again}");
    }
}

//! Package imports from the extension's own `node_modules` (issue 17; amends spec 30
//! §2.1 and §3.2 step 4).
//!
//! A bare specifier (`zod`, `@scope/pkg`, either with a `/subpath`) or an `npm:`
//! specifier (`npm:pkg@1.2.3[/subpath]`) names a package directory
//! `node_modules/<pkg>` found by walking up from the importing file's directory to the
//! boundary, never above it. Inside it, `package.json` decides the file: `exports`
//! with the conditions `fen`, `import`, `default` (in that priority; subpath patterns
//! with one `*` included), else `module`, else `main` when it names an ES module file.
//! Nothing is probed: targets name exact files. Every file is checked with the symlink
//! and boundary rule of spec 10 §1.9.
//!
//! The same resolution serves the bundler and the fingerprint (which records the
//! package's `package.json` and the resolved file as transitive imports), so a
//! resolution failure here fails the build and a change of `package.json` or of a
//! resolved file makes the importing bundles stale.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::resolve::{self, FileProblem};

/// The `exports` conditions fen applies, highest priority first.
pub(crate) const CONDITIONS: [&str; 3] = ["fen", "import", "default"];

/// Largest `package.json` read (a real one is a few KiB).
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Node.js built-in module names (bare imports of these are refused, not resolved).
const NODE_BUILTINS: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// A package specifier, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PackageSpec {
    /// `zod` or `@scope/pkg`.
    pub name: String,
    /// The exact version of an `npm:` specifier.
    pub version: Option<String>,
    /// The subpath after the name, without the leading `/`; `None` for the package root.
    pub subpath: Option<String>,
}

/// What a non-relative, non-`fen:` specifier is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Foreign {
    /// A package import.
    Package(PackageSpec),
    /// `npm:pkg@<range>`: only exact versions are accepted.
    VersionRange { name: String, version: String },
    /// `node:x` or the bare name of a Node.js built-in.
    NodeBuiltin,
    /// `jsr:...`.
    Jsr,
    /// `http:`, `https:`, `file:`, `data:` URLs.
    Url,
    /// Anything else (absolute paths, `.`, malformed names).
    Other,
}

/// Classifies a specifier that is neither relative nor `fen:`.
pub(crate) fn classify_foreign(specifier: &str) -> Foreign {
    if specifier.starts_with("node:") {
        return Foreign::NodeBuiltin;
    }
    if specifier.starts_with("jsr:") {
        return Foreign::Jsr;
    }
    if let Some(rest) = specifier.strip_prefix("npm:") {
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let Some((name, after)) = split_name(rest) else {
            return Foreign::Other;
        };
        let (version, subpath) = match after.split_once('/') {
            Some((version, subpath)) => (version, Some(subpath)),
            None => (after, None),
        };
        let version = match version.strip_prefix('@') {
            Some(version) => Some(version),
            None if version.is_empty() => None,
            None => return Foreign::Other,
        };
        if !subpath.is_none_or(valid_subpath) {
            return Foreign::Other;
        }
        if let Some(version) = version {
            if !is_exact_version(version) {
                return Foreign::VersionRange {
                    name: name.to_owned(),
                    version: version.to_owned(),
                };
            }
        }
        return Foreign::Package(PackageSpec {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            subpath: subpath.map(str::to_owned),
        });
    }
    if specifier.contains(':') {
        let scheme = specifier.split(':').next().unwrap_or_default();
        return match scheme {
            "http" | "https" | "file" | "data" | "blob" => Foreign::Url,
            _ => Foreign::Other,
        };
    }
    let Some((name, after)) = split_name(specifier) else {
        return Foreign::Other;
    };
    if NODE_BUILTINS.contains(&name) {
        return Foreign::NodeBuiltin;
    }
    let subpath = match after.strip_prefix('/') {
        Some(subpath) if valid_subpath(subpath) => Some(subpath),
        Some(_) => return Foreign::Other,
        None if after.is_empty() => None,
        None => return Foreign::Other,
    };
    Foreign::Package(PackageSpec {
        name: name.to_owned(),
        version: None,
        subpath: subpath.map(str::to_owned),
    })
}

/// True for a specifier the fingerprint follows into `node_modules` (a package
/// import that [`classify_foreign`] accepts).
pub(crate) fn is_package_specifier(specifier: &str) -> bool {
    !specifier.starts_with("./")
        && !specifier.starts_with("../")
        && !specifier.starts_with("fen:")
        && matches!(classify_foreign(specifier), Foreign::Package(_))
}

/// Splits `name[rest]` where name is `pkg` or `@scope/pkg`; `rest` is what follows
/// the name (empty, `/subpath` or `@version...`).
fn split_name(text: &str) -> Option<(&str, &str)> {
    let name_end = if let Some(scoped) = text.strip_prefix('@') {
        let slash = scoped.find('/')?;
        let scope = &scoped[..slash];
        if !valid_name_part(scope) {
            return None;
        }
        let after_scope = &scoped[slash + 1..];
        let end = after_scope.find(['/', '@']).unwrap_or(after_scope.len());
        if !valid_name_part(&after_scope[..end]) {
            return None;
        }
        1 + slash + 1 + end
    } else {
        let end = text.find(['/', '@']).unwrap_or(text.len());
        if !valid_name_part(&text[..end]) {
            return None;
        }
        end
    };
    Some((&text[..name_end], &text[name_end..]))
}

/// A package name part: URL-safe characters, not starting with `.` or `_`.
fn valid_name_part(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 214
        && !part.starts_with('.')
        && !part.starts_with('_')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn valid_subpath(subpath: &str) -> bool {
    !subpath.is_empty()
        && subpath
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | "..") && !segment.contains('\\'))
}

/// `MAJOR.MINOR.PATCH` with an optional `-prerelease` and `+build`: an exact version,
/// not a range.
fn is_exact_version(version: &str) -> bool {
    let core_end = version.find(['-', '+']).unwrap_or(version.len());
    let core: Vec<&str> = version[..core_end].split('.').collect();
    let core_ok = core.len() == 3
        && core
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    let tail_ok = version[core_end..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'));
    core_ok && tail_ok
}

/// A package import, resolved. Paths are boundary-relative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The package name.
    pub name: String,
    /// Its `package.json` `version`.
    pub version: String,
    /// `.../node_modules/<name>`.
    pub package_dir: String,
    /// `<package_dir>/package.json`.
    pub manifest: String,
    /// The module file.
    pub target: String,
}

/// Why a package import cannot be used. Each renders as one line with its fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NpmProblem {
    /// No `node_modules/<pkg>` between the importer and the boundary.
    NotInstalled { install_dir: String },
    /// `npm:pkg@X` against another installed version.
    VersionMismatch { wanted: String, installed: String },
    /// The package directory, or a file in it, is a symlink leaving the boundary.
    SymlinkEscapes,
    /// `package.json` missing, unreadable, not JSON, or without a usable `version`.
    BadManifest { reason: String },
    /// `exports` does not export the subpath.
    NotExported { subpath: String },
    /// `exports` matches the subpath but offers none of the conditions fen applies.
    NoImportCondition {
        subpath: String,
        offered: Vec<String>,
    },
    /// An `exports` target that leaves the package directory or is not `./...`.
    TargetEscapes { target: String },
    /// No ES module entry (no `exports`, `module` or ESM `main`).
    NoEntry,
    /// The resolved file is CommonJS.
    CommonJs { file: String },
    /// The resolved file is not a JavaScript module fen bundles.
    NotJavaScript { file: String },
    /// The resolved file does not exist.
    TargetMissing { file: String },
    /// The resolved file cannot be read.
    Unreadable { file: String, reason: String },
}

impl NpmProblem {
    /// The message for `package` (with the specifier's context added by the caller).
    pub(crate) fn describe(&self, package: &str) -> String {
        match self {
            NpmProblem::NotInstalled { install_dir } => format!(
                "package `{package}` is not installed: no node_modules/{package} between the importing file and {install_dir}; hint: run 'npm install {package}' in {install_dir}"
            ),
            NpmProblem::VersionMismatch { wanted, installed } => format!(
                "package `{package}` is version {installed} but the import asks for npm:{package}@{wanted}; hint: run 'npm install {package}@{wanted}' or import version {installed}"
            ),
            NpmProblem::SymlinkEscapes => format!(
                "package `{package}` is a symlink leaving the extension root (a pnpm-style store?); hint: use a flat node_modules (npm install, or pnpm with node-linker=hoisted)"
            ),
            NpmProblem::BadManifest { reason } => {
                format!("package `{package}` has an unusable package.json: {reason}")
            }
            NpmProblem::NotExported { subpath } => format!(
                "package `{package}` does not export `{subpath}` (its package.json `exports` has no such entry)"
            ),
            NpmProblem::NoImportCondition { subpath, offered } => format!(
                "package `{package}` exports `{subpath}` without an ES module condition (fen applies fen, import, default; it offers {}); hint: use the package's ESM build",
                if offered.is_empty() { "none".to_owned() } else { offered.join(", ") }
            ),
            NpmProblem::TargetEscapes { target } => format!(
                "package `{package}` exports target `{target}`, which escapes the package directory"
            ),
            NpmProblem::NoEntry => format!(
                "package `{package}` names no ES module entry (no `exports`, `module`, or ES module `main`); hint: use the package's ESM build"
            ),
            NpmProblem::CommonJs { file } => format!(
                "package `{package}` resolves to `{file}`, a CommonJS module: fen bundles ES modules only; hint: use the package's ESM build (an `import` export, `module`, or an .mjs file)"
            ),
            NpmProblem::NotJavaScript { file } => format!(
                "package `{package}` resolves to `{file}`, which is not a .js or .mjs module"
            ),
            NpmProblem::TargetMissing { file } => format!(
                "package `{package}` resolves to `{file}`, which does not exist; hint: reinstall it (npm install)"
            ),
            NpmProblem::Unreadable { file, reason } => {
                format!("package `{package}`: cannot read `{file}`: {reason}")
            }
        }
    }
}

/// Resolves `spec`, imported by the boundary-relative `importer`, within `boundary`.
/// `install_hint` names the directory the "npm install" hint points at.
pub(crate) fn resolve_package(
    boundary: &Path,
    importer: &str,
    spec: &PackageSpec,
    install_hint: &Path,
) -> Result<Resolved, NpmProblem> {
    let package_dir = find_package_dir(boundary, importer, &spec.name).ok_or_else(|| {
        NpmProblem::NotInstalled {
            install_dir: install_hint.display().to_string(),
        }
    })?;
    let package_native = resolve::native_path(boundary, &package_dir);
    check_inside(&package_native, boundary)?;
    let manifest_rel = format!("{package_dir}/package.json");
    let manifest = read_manifest(&resolve::native_path(boundary, &manifest_rel), boundary)?;
    let version = manifest
        .get("version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| NpmProblem::BadManifest {
            reason: "it has no `version` string".to_owned(),
        })?
        .to_owned();
    if !version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
    {
        return Err(NpmProblem::BadManifest {
            reason: format!("its version `{version}` is not a plain version"),
        });
    }
    if let Some(wanted) = &spec.version {
        if *wanted != version {
            return Err(NpmProblem::VersionMismatch {
                wanted: wanted.clone(),
                installed: version,
            });
        }
    }
    let is_module_type = manifest.get("type").and_then(Value::as_str) == Some("module");
    let (in_package, esm_by_field) = entry_in_package(&manifest, spec.subpath.as_deref())?;
    let target = format!("{package_dir}/{in_package}");
    let file_name = in_package.rsplit('/').next().unwrap_or(&in_package);
    if file_name.ends_with(".cjs") || file_name.ends_with(".cts") {
        return Err(NpmProblem::CommonJs { file: target });
    }
    if !(file_name.ends_with(".js") || file_name.ends_with(".mjs")) {
        return Err(NpmProblem::NotJavaScript { file: target });
    }
    if file_name.ends_with(".js") && !is_module_type && !esm_by_field {
        return Err(NpmProblem::CommonJs { file: target });
    }
    match resolve::check_file(&resolve::native_path(boundary, &target), boundary) {
        Ok(()) => {}
        Err(FileProblem::Missing) => return Err(NpmProblem::TargetMissing { file: target }),
        Err(FileProblem::Escapes) => return Err(NpmProblem::SymlinkEscapes),
        Err(FileProblem::Unreadable(reason)) => {
            return Err(NpmProblem::Unreadable {
                file: target,
                reason,
            })
        }
    }
    Ok(Resolved {
        name: spec.name.clone(),
        version,
        package_dir,
        manifest: manifest_rel,
        target,
    })
}

/// `<dir>/node_modules/<name>` for the importer's directory and each ancestor up to the
/// boundary itself, nearest first: the first that exists (as a directory, possibly
/// through a symlink).
fn find_package_dir(boundary: &Path, importer: &str, name: &str) -> Option<String> {
    let mut dirs: Vec<&str> = importer.split('/').collect();
    dirs.pop();
    loop {
        let mut candidate = dirs.join("/");
        if !candidate.is_empty() {
            candidate.push('/');
        }
        candidate.push_str("node_modules/");
        candidate.push_str(name);
        let native = resolve::native_path(boundary, &candidate);
        if fs::symlink_metadata(&native).is_ok() {
            return Some(candidate);
        }
        dirs.pop()?;
    }
}

/// The package directory (or `node_modules` on the way) must not be a symlink leading
/// out of the boundary.
fn check_inside(package: &Path, boundary: &Path) -> Result<(), NpmProblem> {
    let target = fs::canonicalize(package).map_err(|_| NpmProblem::SymlinkEscapes)?;
    let boundary = fs::canonicalize(boundary).map_err(|e| NpmProblem::BadManifest {
        reason: format!("the extension root is unreadable: {e}"),
    })?;
    if target.starts_with(boundary) {
        Ok(())
    } else {
        Err(NpmProblem::SymlinkEscapes)
    }
}

fn read_manifest(path: &Path, boundary: &Path) -> Result<Value, NpmProblem> {
    match resolve::check_file(path, boundary) {
        Ok(()) => {}
        Err(FileProblem::Missing) => {
            return Err(NpmProblem::BadManifest {
                reason: "there is no package.json".to_owned(),
            })
        }
        Err(FileProblem::Escapes) => return Err(NpmProblem::SymlinkEscapes),
        Err(FileProblem::Unreadable(reason)) => return Err(NpmProblem::BadManifest { reason }),
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|file| file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| NpmProblem::BadManifest {
            reason: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(NpmProblem::BadManifest {
            reason: format!("it is larger than {MAX_MANIFEST_BYTES} bytes"),
        });
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| NpmProblem::BadManifest {
        reason: format!("it is not valid JSON ({e})"),
    })?;
    if !value.is_object() {
        return Err(NpmProblem::BadManifest {
            reason: "it is not a JSON object".to_owned(),
        });
    }
    Ok(value)
}

/// The module's path inside the package, and whether the `module` field chose it (a
/// `.js` file there is ESM by convention).
fn entry_in_package(manifest: &Value, subpath: Option<&str>) -> Result<(String, bool), NpmProblem> {
    let key = match subpath {
        Some(subpath) => format!("./{subpath}"),
        None => ".".to_owned(),
    };
    if let Some(exports) = manifest.get("exports").filter(|e| !e.is_null()) {
        let target = resolve_exports(exports, &key)?;
        return Ok((in_package_path(&target)?, false));
    }
    if let Some(subpath) = subpath {
        return Ok((subpath.to_owned(), false));
    }
    if let Some(module) = manifest.get("module").and_then(Value::as_str) {
        return Ok((in_package_path(&dot_slash(module))?, true));
    }
    if let Some(main) = manifest.get("main").and_then(Value::as_str) {
        return Ok((in_package_path(&dot_slash(main))?, false));
    }
    Err(NpmProblem::NoEntry)
}

/// `module`/`main` may be written without `./`.
fn dot_slash(path: &str) -> String {
    if path.starts_with("./") || path.starts_with("../") || path.starts_with('/') {
        path.to_owned()
    } else {
        format!("./{path}")
    }
}

/// A `./...` target as a path inside the package; refuses `..`, absolute paths and
/// anything else that could leave it.
fn in_package_path(target: &str) -> Result<String, NpmProblem> {
    let escapes = || NpmProblem::TargetEscapes {
        target: target.to_owned(),
    };
    let rest = target.strip_prefix("./").ok_or_else(escapes)?;
    let mut segments = Vec::new();
    for segment in rest.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(escapes()),
            s if s.contains('\\') || s.contains(':') => return Err(escapes()),
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        return Err(escapes());
    }
    Ok(segments.join("/"))
}

/// Applies `exports` to the subpath key (`.` or `./x`).
fn resolve_exports(exports: &Value, key: &str) -> Result<String, NpmProblem> {
    let subpath_map = exports
        .as_object()
        .filter(|map| map.keys().next().is_some_and(|k| k.starts_with('.')));
    let not_exported = || NpmProblem::NotExported {
        subpath: key.to_owned(),
    };
    let Some(map) = subpath_map else {
        // Sugar: a string, array or condition object stands for ".".
        if key != "." {
            return Err(not_exported());
        }
        return apply_conditions(exports, None, key);
    };
    if let Some(value) = map.get(key) {
        return apply_conditions(value, None, key);
    }
    // Subpath patterns: the key with the longest prefix before its single `*` wins.
    let mut best: Option<(&str, &Value, String)> = None;
    for (pattern, value) in map {
        let Some((prefix, suffix)) = pattern.split_once('*') else {
            continue;
        };
        if suffix.contains('*') {
            continue;
        }
        if key.len() >= prefix.len() + suffix.len()
            && key.starts_with(prefix)
            && key.ends_with(suffix)
        {
            let matched = &key[prefix.len()..key.len() - suffix.len()];
            if best.as_ref().is_none_or(|(p, _, _)| prefix.len() > p.len()) {
                best = Some((prefix, value, matched.to_owned()));
            }
        }
    }
    match best {
        Some((_, value, matched)) => apply_conditions(value, Some(&matched), key),
        None => Err(not_exported()),
    }
}

/// Applies the conditions to one `exports` value; `star` replaces `*` in targets.
fn apply_conditions(value: &Value, star: Option<&str>, key: &str) -> Result<String, NpmProblem> {
    match resolve_value(value, star)? {
        Some(target) => Ok(target),
        None if value.is_null() => Err(NpmProblem::NotExported {
            subpath: key.to_owned(),
        }),
        None => Err(NpmProblem::NoImportCondition {
            subpath: key.to_owned(),
            offered: offered_conditions(value),
        }),
    }
}

fn resolve_value(value: &Value, star: Option<&str>) -> Result<Option<String>, NpmProblem> {
    match value {
        Value::String(target) => {
            let target = match star {
                Some(star) => target.replace('*', star),
                None => target.clone(),
            };
            if !target.starts_with("./") {
                return Err(NpmProblem::TargetEscapes { target });
            }
            in_package_path(&target)?;
            Ok(Some(target))
        }
        Value::Array(items) => {
            for item in items {
                if let Ok(Some(target)) = resolve_value(item, star) {
                    return Ok(Some(target));
                }
            }
            match items.first() {
                Some(first) => resolve_value(first, star),
                None => Ok(None),
            }
        }
        Value::Object(map) => {
            for condition in CONDITIONS {
                if let Some(inner) = map.get(condition) {
                    if let Some(target) = resolve_value(inner, star)? {
                        return Ok(Some(target));
                    }
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn offered_conditions(value: &Value) -> Vec<String> {
    match value {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The boundary-relative package directory containing `relative` among `dirs`
/// (the nearest, i.e. longest, one).
pub(crate) fn owning_package<'d, I>(relative: &str, dirs: I) -> Option<&'d str>
where
    I: IntoIterator<Item = &'d String>,
{
    dirs.into_iter()
        .map(String::as_str)
        .filter(|dir| {
            relative.len() > dir.len()
                && relative.starts_with(dir)
                && relative.as_bytes()[dir.len()] == b'/'
        })
        .max_by_key(|dir| dir.len())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests;

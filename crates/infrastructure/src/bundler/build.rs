//! `build_bundle`: the module graph walk from one entry point to a
//! [`BundleContainer`] (spec 30 §3.2, §3.8).
//!
//! Nothing here writes files: the caller stages the container (see
//! [`super::write_staged`]) and the lifecycle commit publishes it. The result
//! depends only on the bytes of the graph's files, their boundary-relative paths,
//! the bundle prefix and the fingerprint, never on where the checkout lives (G4).

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use fen_domain::ports::indexing::{EntryPoint, IndexError};
use fen_domain::{CanonicalPath, Kind, LoaderKind, PathPolicy, SourceFingerprint};

use super::container::{
    module_id, package_module_id, BundleContainer, BundleModule, ID_FINGERPRINT_DIGITS,
};
use super::npm::{self, Foreign};
use super::resolve::{self, FileProblem, Specifier};
use super::transpile::{self, ImportSite, Language, ModuleSource, Rewrite, Transpiled};

/// Most modules one bundle may hold (spec 30 §3.2).
pub const MAX_MODULES: usize = 2_000;
/// Most bytes of emitted code one bundle may hold (spec 30 §3.2).
pub const MAX_CODE_BYTES: usize = 16 * 1024 * 1024;

/// What to build: one entry point, read from `entry_read_path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRequest {
    /// Native path the entry is read from. Must lie under `read_boundary`.
    pub entry_read_path: PathBuf,
    /// Native directory the graph may not leave, as seen from `entry_read_path`
    /// (the boundary itself, or its staged copy while installing). Module ids use
    /// paths relative to it.
    pub read_boundary: PathBuf,
    /// `local`, `mounted/<mount-id>` or `pulled/<key>`: the module id origin.
    pub bundle_prefix: String,
    /// The loader kind of the entry's kind dir; decides the bundle's `kind`.
    pub loader_kind: LoaderKind,
    /// The entry's source fingerprint; its first 12 hex digits end every module id.
    pub fingerprint: SourceFingerprint,
}

/// Why a bundle could not be built. [`BuildError::EntryUnreadable`] maps to
/// `EntryPointUnreadable`, every other variant to `BundleBuildFailed` (spec 30 §3.8).
/// `file` fields are boundary-relative paths.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The entry itself cannot be read, or is a symlink leaving the boundary.
    #[error("cannot read entry point `{file}`: {reason}")]
    EntryUnreadable {
        /// The entry.
        file: String,
        /// Why.
        reason: String,
    },
    /// The entry path is not under the boundary, or not UTF-8.
    #[error("entry point `{path}` is not a UTF-8 path under its boundary `{boundary}`")]
    EntryOutsideBoundary {
        /// The entry's read path.
        path: String,
        /// The boundary.
        boundary: String,
    },
    /// An imported file cannot be read.
    #[error("cannot read `{file}`: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A module is not UTF-8 text.
    #[error("`{file}` is not valid UTF-8")]
    NotUtf8 {
        /// The file.
        file: String,
    },
    /// A module does not parse.
    #[error("syntax error in `{file}:{line}:{column}`: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The TypeScript transform rejected a construct (`import x = require()`, ...).
    #[error("cannot transpile `{file}:{line}:{column}`: {message}")]
    Transform {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// oxc's message.
        message: String,
    },
    /// A specifier that is neither relative, a host module nor a package import.
    #[error(
        "unsupported import `{specifier}` in `{file}:{line}:{column}`: fen bundles relative imports, fen:* host modules and packages from node_modules"
    )]
    UnsupportedImport {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A `fen:` name outside the host module set.
    #[error("unknown host module `{specifier}` in `{file}:{line}:{column}` (available: fen:sdk)")]
    UnknownHostModule {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An `import()` expression.
    #[error("dynamic import() in `{file}:{line}:{column}` is not supported: use a static import")]
    DynamicImport {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A relative import leaving the boundary, lexically or through a symlink.
    #[error("import `{specifier}` escapes extension root in `{file}:{line}:{column}`")]
    EscapesBoundary {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A relative import naming a file that does not exist.
    #[error(
        "import `{specifier}` in `{file}:{line}:{column}` not found: no file `{target}`{}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
    )]
    MissingImport {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The boundary-relative path it resolved to.
        target: String,
        /// A sibling differing only by a TS/JS extension, as a specifier.
        suggestion: Option<String>,
    },
    /// A relative import of a file fen does not bundle (`.json`, `.tsx`, `.cjs`, ...).
    #[error(
        "import `{specifier}` in `{file}:{line}:{column}` names an unsupported file type: fen bundles .ts, .mts, .js and .mjs"
    )]
    UnsupportedFileType {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A package import (`zod`, `@scope/pkg/sub`, `npm:pkg@1.2.3`) that cannot be
    /// resolved from `node_modules`; `reason` names the package and the fix.
    #[error("import `{specifier}` in `{file}:{line}:{column}`: {reason}")]
    PackageImport {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Why, with the hint.
        reason: String,
    },
    /// `node:x` or the bare name of a Node.js built-in.
    #[error(
        "import `{specifier}` in `{file}:{line}:{column}` names a Node.js built-in module: the fen sandbox has no Node.js APIs; hint: use ctx (spec 30 §2.7) or a package that does not need Node.js"
    )]
    NodeBuiltin {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A `jsr:` specifier.
    #[error(
        "import `{specifier}` in `{file}:{line}:{column}`: jsr: imports are not supported; hint: install the package's npm build into node_modules and import it by name"
    )]
    JsrImport {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An `https:` (or other URL) specifier.
    #[error(
        "import `{specifier}` in `{file}:{line}:{column}`: URL imports are not supported, fen never fetches code; hint: npm install the package next to the extension and import it by name"
    )]
    UrlImport {
        /// The specifier as written.
        specifier: String,
        /// The importing file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// More than [`MAX_MODULES`] modules.
    #[error("bundle graph exceeds {MAX_MODULES} modules")]
    TooManyModules,
    /// More than [`MAX_CODE_BYTES`] of emitted code.
    #[error("bundle exceeds {MAX_CODE_BYTES} bytes of emitted code")]
    CodeTooLarge,
}

impl BuildRequest {
    /// The request for an indexer's entry point. While installing, `read_path` lies
    /// in a staging copy: the read boundary is then the ancestor of `read_path` that
    /// corresponds to `root.boundary`, so module ids name the final layout.
    pub fn for_entry(
        entry: &EntryPoint,
        fingerprint: SourceFingerprint,
    ) -> Result<BuildRequest, BuildError> {
        let outside = || BuildError::EntryOutsideBoundary {
            path: entry.read_path.display().to_string(),
            boundary: entry.root.boundary.display().to_string(),
        };
        let boundary =
            CanonicalPath::new(&entry.root.boundary, PathPolicy::host()).map_err(|_| outside())?;
        let relative = entry
            .location
            .canonical()
            .relative_to(&boundary)
            .filter(|relative| !relative.is_empty())
            .ok_or_else(outside)?;
        let read_path = resolve::lexical(&entry.read_path);
        let mut read_boundary = read_path.clone();
        for _ in relative.split('/') {
            if !read_boundary.pop() {
                return Err(outside());
            }
        }
        Ok(BuildRequest {
            entry_read_path: read_path,
            read_boundary,
            bundle_prefix: entry.root.bundle_prefix.clone(),
            loader_kind: entry.root.loader_kind,
            fingerprint,
        })
    }
}

impl BuildError {
    /// The indexer's view: `EntryUnreadable` for the entry, `Build` for the rest,
    /// carrying this error's one-line message.
    pub fn into_index_error(self) -> IndexError {
        let message = self.to_string();
        match self {
            BuildError::EntryUnreadable { .. } => IndexError::EntryUnreadable(message),
            BuildError::EntryOutsideBoundary { .. }
            | BuildError::Unreadable { .. }
            | BuildError::NotUtf8 { .. }
            | BuildError::Syntax { .. }
            | BuildError::Transform { .. }
            | BuildError::UnsupportedImport { .. }
            | BuildError::UnknownHostModule { .. }
            | BuildError::DynamicImport { .. }
            | BuildError::EscapesBoundary { .. }
            | BuildError::MissingImport { .. }
            | BuildError::UnsupportedFileType { .. }
            | BuildError::PackageImport { .. }
            | BuildError::NodeBuiltin { .. }
            | BuildError::JsrImport { .. }
            | BuildError::UrlImport { .. }
            | BuildError::TooManyModules
            | BuildError::CodeTooLarge => IndexError::Build(message),
        }
    }
}

/// Builds the bundle of one entry point: walks its relative imports, transpiles
/// every module, rewrites relative specifiers to module ids and assembles the
/// container. Same files and request give byte-identical output.
pub fn build_bundle(request: &BuildRequest) -> Result<BundleContainer, BuildError> {
    build(request, None)
}

/// [`build_bundle`], reusing the transpiled text of modules that `cache` already
/// holds (a helper imported by many entries is transpiled once). The container is
/// byte-identical to what [`build_bundle`] returns for the same request.
pub fn build_bundle_cached(
    request: &BuildRequest,
    cache: &TranspileCache,
) -> Result<BundleContainer, BuildError> {
    build(request, Some(cache))
}

fn build(
    request: &BuildRequest,
    cache: Option<&TranspileCache>,
) -> Result<BundleContainer, BuildError> {
    let entry_relative = resolve::relative_to(&request.entry_read_path, &request.read_boundary)
        .ok_or_else(|| BuildError::EntryOutsideBoundary {
            path: request.entry_read_path.display().to_string(),
            boundary: request.read_boundary.display().to_string(),
        })?;
    let mut walk = Walk {
        request,
        ids: BTreeMap::new(),
        id_owners: BTreeMap::new(),
        packages: BTreeMap::new(),
        queue: VecDeque::new(),
        modules: Vec::new(),
        host_modules: BTreeSet::new(),
        code_bytes: 0,
        cache,
    };
    if let Err(problem) = resolve::check_file(&request.entry_read_path, &request.read_boundary) {
        let reason = match problem {
            FileProblem::Missing => "no such file".to_owned(),
            FileProblem::Escapes => "symlink target lies outside the boundary".to_owned(),
            FileProblem::Unreadable(reason) => reason,
        };
        return Err(BuildError::EntryUnreadable {
            file: entry_relative,
            reason,
        });
    }
    let entry_id = walk.enqueue(&entry_relative)?;
    let mut entry_exports = None;
    while let Some(relative) = walk.queue.pop_front() {
        let is_entry = relative == entry_relative;
        let exports = walk.build_module(&relative, is_entry)?;
        if is_entry {
            entry_exports = Some(exports);
        }
    }
    let kind = decide_kind(request.loader_kind, entry_exports.unwrap_or_default());
    Ok(BundleContainer::new(
        kind,
        entry_id,
        request.fingerprint,
        walk.host_modules.into_iter().collect(),
        walk.modules,
    ))
}

/// The graph walk's state.
struct Walk<'r> {
    request: &'r BuildRequest,
    /// Boundary-relative path → module id, for every module seen.
    ids: BTreeMap<String, String>,
    /// Module id → the boundary-relative path that got it first (two installed copies
    /// of one package version share their ids: the first copy is bundled).
    id_owners: BTreeMap<String, String>,
    /// Boundary-relative package directory → (name, version), for every package a
    /// package import resolved to.
    packages: BTreeMap<String, (String, String)>,
    queue: VecDeque<String>,
    modules: Vec<BundleModule>,
    host_modules: BTreeSet<String>,
    code_bytes: usize,
    cache: Option<&'r TranspileCache>,
}

impl Walk<'_> {
    /// Registers a module; returns its id. Queues it the first time.
    fn enqueue(&mut self, relative: &str) -> Result<String, BuildError> {
        if let Some(id) = self.ids.get(relative) {
            return Ok(id.clone());
        }
        let id = self.id_of(relative);
        if let Some(owner) = self.id_owners.get(&id) {
            let owner = owner.clone();
            self.ids.insert(relative.to_owned(), id.clone());
            return Ok(self.ids.get(&owner).cloned().unwrap_or(id));
        }
        if self.id_owners.len() >= MAX_MODULES {
            return Err(BuildError::TooManyModules);
        }
        self.ids.insert(relative.to_owned(), id.clone());
        self.id_owners.insert(id.clone(), relative.to_owned());
        self.queue.push_back(relative.to_owned());
        Ok(id)
    }

    /// The module id of a boundary-relative path: `npm:<pkg>@<version>/<path>#…` inside
    /// a resolved package, `<prefix>:/<path>#…` elsewhere; never a host path.
    fn id_of(&self, relative: &str) -> String {
        if let Some(dir) = npm::owning_package(relative, self.packages.keys()) {
            if let Some((name, version)) = self.packages.get(dir) {
                return package_module_id(
                    name,
                    version,
                    &relative[dir.len() + 1..],
                    &self.request.fingerprint,
                );
            }
        }
        module_id(
            &self.request.bundle_prefix,
            relative,
            &self.request.fingerprint,
        )
    }

    /// Reads, transpiles and records one module; returns its export names.
    fn build_module(
        &mut self,
        relative: &str,
        is_entry: bool,
    ) -> Result<BTreeSet<String>, BuildError> {
        let path = resolve::native_path(&self.request.read_boundary, relative);
        let bytes = fs::read(&path).map_err(|error| {
            let reason = error.to_string();
            if is_entry {
                BuildError::EntryUnreadable {
                    file: relative.to_owned(),
                    reason,
                }
            } else {
                BuildError::Unreadable {
                    file: relative.to_owned(),
                    reason,
                }
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| BuildError::NotUtf8 {
            file: relative.to_owned(),
        })?;
        let language =
            Language::from_file_name(relative).ok_or_else(|| BuildError::Unreadable {
                file: relative.to_owned(),
                reason: "not a .ts, .mts, .js or .mjs file".to_owned(),
            })?;
        let id = self
            .ids
            .get(relative)
            .cloned()
            .unwrap_or_else(|| self.id_of(relative));
        let source = ModuleSource {
            text: &text,
            language,
            display: relative,
            module_id: &id,
        };
        let transpiled = self.transpile(&source, relative)?;
        self.code_bytes = self.code_bytes.saturating_add(transpiled.code.len());
        if self.code_bytes > MAX_CODE_BYTES {
            return Err(BuildError::CodeTooLarge);
        }
        self.modules.push(BundleModule {
            id,
            code: transpiled.code,
            map: transpiled.map,
        });
        Ok(transpiled.exports)
    }

    /// Transpiles one module, through the cache when there is one.
    fn transpile(
        &mut self,
        source: &ModuleSource<'_>,
        relative: &str,
    ) -> Result<Transpiled, BuildError> {
        let Some(cache) = self.cache else {
            return transpile::transpile(source, &mut |site| self.resolve_site(relative, site));
        };
        let suffix = id_suffix(&self.request.fingerprint);
        let key = CacheKey {
            text: source.text.to_owned(),
            language: source.language,
            relative: relative.to_owned(),
            prefix: self.request.bundle_prefix.clone(),
        };
        if let Some(cached) = cache.get(&key) {
            // Every site is still resolved, in order, for its checks and its place in
            // the walk; the text is reused only if every rewrite is the cached one
            // with this bundle's id suffix.
            let mut same = true;
            for (site, cached_rewrite) in cached.sites.iter().zip(&cached.rewrites) {
                let rewrite = self.resolve_site(relative, site)?;
                same &= rewrite == with_suffix(cached_rewrite, &cached.suffix, &suffix);
            }
            if same {
                return Ok(Transpiled {
                    code: cached.code.replace(&cached.suffix, &suffix),
                    map: cached
                        .map
                        .as_ref()
                        .map(|m| m.replace(&cached.suffix, &suffix)),
                    exports: cached.exports.clone(),
                });
            }
        }
        let mut sites = Vec::new();
        let mut rewrites = Vec::new();
        let transpiled = transpile::transpile(source, &mut |site| {
            let rewrite = self.resolve_site(relative, site)?;
            sites.push(site.clone());
            rewrites.push(rewrite.clone());
            Ok(rewrite)
        })?;
        // The suffix may be substituted only where this bundle put it: once per
        // rewritten specifier in the code, once (the module id) in the map.
        let n_rewritten = rewrites
            .iter()
            .filter(|rewrite| matches!(rewrite, Rewrite::To(_)))
            .count();
        let substitutable = transpiled.code.matches(&suffix).count() == n_rewritten
            && transpiled
                .map
                .as_ref()
                .is_none_or(|map| map.matches(&suffix).count() == 1);
        if substitutable {
            cache.insert(
                key,
                CachedModule {
                    suffix,
                    code: transpiled.code.clone(),
                    map: transpiled.map.clone(),
                    exports: transpiled.exports.clone(),
                    sites,
                    rewrites,
                },
            );
        }
        Ok(transpiled)
    }

    /// Decides one import site of `importer`: relative imports are resolved,
    /// queued and rewritten to module ids; `fen:sdk` stays external.
    fn resolve_site(&mut self, importer: &str, site: &ImportSite) -> Result<Rewrite, BuildError> {
        let file = importer.to_owned();
        let (line, column) = (site.line, site.column);
        let specifier = site.specifier.clone();
        match resolve::classify(&site.specifier) {
            Specifier::Host => {
                self.host_modules.insert(specifier);
                return Ok(Rewrite::Keep);
            }
            Specifier::UnknownHost => {
                return Err(BuildError::UnknownHostModule {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
            Specifier::Unsupported => {
                return self.resolve_foreign(importer, site);
            }
            Specifier::Relative => {}
        }
        let Some(target) =
            resolve::join_relative(&self.request.read_boundary, importer, &site.specifier)
        else {
            return Err(BuildError::EscapesBoundary {
                specifier,
                file,
                line,
                column,
            });
        };
        let path = resolve::native_path(&self.request.read_boundary, &target);
        match resolve::check_file(&path, &self.request.read_boundary) {
            Ok(()) => {}
            Err(FileProblem::Missing) => {
                let suggestion = resolve::suggest_sibling(&site.specifier, &path);
                return Err(BuildError::MissingImport {
                    specifier,
                    file,
                    line,
                    column,
                    target,
                    suggestion,
                });
            }
            Err(FileProblem::Escapes) => {
                return Err(BuildError::EscapesBoundary {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
            Err(FileProblem::Unreadable(reason)) => {
                return Err(BuildError::Unreadable {
                    file: target,
                    reason,
                })
            }
        }
        if Language::from_file_name(&target).is_none() {
            return Err(BuildError::UnsupportedFileType {
                specifier,
                file,
                line,
                column,
            });
        }
        self.enqueue(&target).map(Rewrite::To)
    }

    /// Decides a specifier that is neither relative nor `fen:`: a package import is
    /// resolved from `node_modules` and rewritten to the module id of its file;
    /// Node.js built-ins, `jsr:`, URLs and the rest are refused, each with its message.
    fn resolve_foreign(
        &mut self,
        importer: &str,
        site: &ImportSite,
    ) -> Result<Rewrite, BuildError> {
        let specifier = site.specifier.clone();
        let file = importer.to_owned();
        let (line, column) = (site.line, site.column);
        let spec = match npm::classify_foreign(&site.specifier) {
            Foreign::Package(spec) => spec,
            Foreign::VersionRange { name, version } => {
                return Err(BuildError::PackageImport {
                    specifier,
                    file,
                    line,
                    column,
                    reason: format!(
                        "npm: imports need an exact version, not `{version}`; hint: import npm:{name}@<the installed version>, or plain `{name}`"
                    ),
                })
            }
            Foreign::NodeBuiltin => {
                return Err(BuildError::NodeBuiltin {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
            Foreign::Jsr => {
                return Err(BuildError::JsrImport {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
            Foreign::Url => {
                return Err(BuildError::UrlImport {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
            Foreign::Other => {
                return Err(BuildError::UnsupportedImport {
                    specifier,
                    file,
                    line,
                    column,
                })
            }
        };
        let boundary = &self.request.read_boundary;
        let resolved =
            npm::resolve_package(boundary, importer, &spec, boundary).map_err(|problem| {
                BuildError::PackageImport {
                    specifier: specifier.clone(),
                    file: file.clone(),
                    line,
                    column,
                    reason: problem.describe(&spec.name),
                }
            })?;
        self.packages
            .entry(resolved.package_dir.clone())
            .or_insert_with(|| (resolved.name.clone(), resolved.version.clone()));
        self.enqueue(&resolved.target).map(Rewrite::To)
    }
}

/// The bundle's kind: in `models/`, `model` or `extension` by the entry's exports
/// (`model` when both or neither; validation reports the conflict); elsewhere the
/// kind dir's only kind.
fn decide_kind(loader_kind: LoaderKind, exports: BTreeSet<String>) -> Kind {
    let kinds = loader_kind.kinds();
    let declared = kinds
        .iter()
        .find(|kind| exports.contains(kind.export_key()));
    match declared {
        Some(kind) => *kind,
        None => kinds.first().copied().unwrap_or(Kind::Model),
    }
}

/// Transpiled modules of earlier builds, by file text, language, boundary-relative
/// path and bundle prefix: everything a module's output depends on except the id
/// suffix (`#` and the first fingerprint digits of the bundle being built), which is
/// substituted. Shared by the builds of one indexer; bounded in bytes.
#[derive(Debug, Default)]
pub struct TranspileCache {
    inner: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    modules: HashMap<CacheKey, Arc<CachedModule>>,
    bytes: usize,
}

/// Most bytes of code and maps the cache keeps; beyond it, new modules are not kept.
const CACHE_MAX_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    /// The module's text itself: hashing it is cheaper than a SHA-256, and equal
    /// keys are equal contents, not just equal digests.
    text: String,
    language: Language,
    relative: String,
    prefix: String,
}

#[derive(Debug)]
struct CachedModule {
    /// The id suffix the text was generated with.
    suffix: String,
    code: String,
    map: Option<String>,
    exports: BTreeSet<String>,
    /// The import sites, in source order, and what they were rewritten to.
    sites: Vec<ImportSite>,
    rewrites: Vec<Rewrite>,
}

impl TranspileCache {
    /// An empty cache.
    pub fn new() -> TranspileCache {
        TranspileCache::default()
    }

    /// Number of modules held.
    pub fn len(&self) -> usize {
        self.state().modules.len()
    }

    /// True when it holds no module.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A panic while holding it leaves a consistent map (inserts are single calls).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<CachedModule>> {
        self.state().modules.get(key).cloned()
    }

    fn insert(&self, key: CacheKey, module: CachedModule) {
        let size = key.text.len() + module.code.len() + module.map.as_ref().map_or(0, String::len);
        let mut state = self.state();
        if state.bytes + size > CACHE_MAX_BYTES || state.modules.contains_key(&key) {
            return;
        }
        state.bytes += size;
        state.modules.insert(key, Arc::new(module));
    }
}

/// `#` and the fingerprint digits that end every module id of a bundle.
fn id_suffix(fingerprint: &SourceFingerprint) -> String {
    let id = module_id("", "", fingerprint);
    let digits = id.len().saturating_sub(ID_FINGERPRINT_DIGITS + 1);
    id[digits..].to_owned()
}

/// `rewrite` with the id suffix `from` at its end replaced by `to`.
fn with_suffix(rewrite: &Rewrite, from: &str, to: &str) -> Rewrite {
    match rewrite {
        Rewrite::Keep => Rewrite::Keep,
        Rewrite::To(id) => match id.strip_suffix(from) {
            Some(stem) => Rewrite::To(format!("{stem}{to}")),
            None => Rewrite::To(id.clone()),
        },
    }
}

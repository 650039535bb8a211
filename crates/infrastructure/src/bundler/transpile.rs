//! One module through oxc: parse, strip TypeScript, collect and rewrite static import
//! specifiers, generate code (spec 30 §3.2 steps 2–5, §3.3).
//!
//! Every option below is a fixed constant: a change to any of them changes emitted
//! code and therefore needs a `BUNDLE_LAYOUT_VERSION` bump (spec 30 §3.6).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oxc::allocator::Allocator;
use oxc::ast::ast::{
    BindingPattern, Declaration, ModuleExportName, Program, Statement, StringLiteral,
};
use oxc::codegen::{Codegen, CodegenOptions, CommentOptions, IndentChar};
use oxc::diagnostics::OxcDiagnostic;
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::str::Str;
use oxc::transformer::{
    DecoratorOptions, EnvOptions, HelperLoaderMode, HelperLoaderOptions, JsxOptions, Module,
    TransformOptions, Transformer, TypeScriptOptions,
};

use super::BuildError;

/// Source language of a module file, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Language {
    /// `.ts`, `.mts`: parsed as TypeScript, types stripped.
    TypeScript,
    /// `.js`, `.mjs`: parse and codegen only.
    JavaScript,
}

impl Language {
    /// The language for a file name, or `None` for an unsupported extension
    /// (`.tsx`, `.jsx`, `.cts`, `.cjs`, `.json`, ...).
    pub(crate) fn from_file_name(name: &str) -> Option<Language> {
        let extension = name.rsplit_once('.').map(|(_, extension)| extension)?;
        match extension {
            "ts" | "mts" => Some(Language::TypeScript),
            "js" | "mjs" => Some(Language::JavaScript),
            _ => None,
        }
    }
}

/// One module to transpile.
pub(crate) struct ModuleSource<'s> {
    /// The module's text.
    pub text: &'s str,
    /// How to parse it.
    pub language: Language,
    /// The file as named in error messages (boundary-relative path).
    pub display: &'s str,
    /// The module id; names the source map's only source.
    pub module_id: &'s str,
}

/// A static import or export-from specifier that survived type erasure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportSite {
    /// The specifier as written (unescaped).
    pub specifier: String,
    /// 1-based line of the specifier in the module's text.
    pub line: usize,
    /// 1-based column (in characters) of the specifier.
    pub column: usize,
}

/// What to do with one import site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// Keep the specifier as written (host modules).
    Keep,
    /// Replace it (relative imports become module ids).
    To(String),
}

/// A transpiled module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transpiled {
    /// The generated code.
    pub code: String,
    /// Source map v3 JSON without `sourcesContent`.
    pub map: Option<String>,
    /// Names the module exports (after type erasure), for the kind decision.
    pub exports: BTreeSet<String>,
}

/// Parses, strips and generates one module. `resolve` is called once per static
/// import site, in source order, and decides its rewrite; its error aborts the build.
pub(crate) fn transpile(
    source: &ModuleSource<'_>,
    resolve: &mut dyn FnMut(&ImportSite) -> Result<Rewrite, BuildError>,
) -> Result<Transpiled, BuildError> {
    let allocator = Allocator::default();
    let source_type = match source.language {
        Language::TypeScript => SourceType::ts().with_module(true),
        Language::JavaScript => SourceType::mjs(),
    };
    let parsed = Parser::new(&allocator, source.text, source_type).parse();
    if let Some(diagnostic) = parsed.diagnostics.errors().next() {
        return Err(syntax_error(source, diagnostic));
    }
    if parsed.panicked {
        return Err(BuildError::Syntax {
            file: source.display.to_owned(),
            line: 1,
            column: 1,
            message: "the parser gave up".to_owned(),
        });
    }
    // `import()` is rejected wherever it appears; the parser records every one.
    if let Some(dynamic) = parsed.module_record.dynamic_imports.first() {
        let (line, column) = line_column(source.text, dynamic.span.start);
        return Err(BuildError::DynamicImport {
            file: source.display.to_owned(),
            line,
            column,
        });
    }
    let mut program = parsed.program;

    let semantic = SemanticBuilder::new()
        .with_check_syntax_error(true)
        .with_excess_capacity(2.0)
        .with_enum_eval(true)
        .build(&program);
    if let Some(diagnostic) = semantic.diagnostics.errors().next() {
        return Err(syntax_error(source, diagnostic));
    }
    if source.language == Language::TypeScript {
        let scoping = semantic.semantic.into_scoping();
        // The path only names the module in diagnostics and helper names; a
        // boundary-relative name keeps host paths out of the output (G4).
        let transformed =
            Transformer::new(&allocator, Path::new(source.display), &transform_options())
                .build_with_scoping(scoping, &mut program);
        // The TypeScript transform reports constructs it cannot emit correctly for
        // ES modules (`import x = require()`, `export =`, non-const namespace
        // exports) as warnings; fen fails the build on them instead of emitting
        // code that breaks at evaluation.
        let mut diagnostics = transformed.diagnostics.errors();
        let mut warnings = transformed.diagnostics.warnings();
        let first = diagnostics.next().or_else(|| warnings.next());
        let first_error = first.map(|diagnostic| {
            let (line, column) = diagnostic_position(source.text, diagnostic);
            BuildError::Transform {
                file: source.display.to_owned(),
                line,
                column,
                message: diagnostic.message.to_string(),
            }
        });
        if let Some(error) = first_error {
            return Err(error);
        }
    }

    rewrite_specifiers(&mut program, source, &allocator, resolve)?;
    let exports = exported_names(&program);

    let generated = Codegen::new()
        .with_options(codegen_options(source.module_id))
        .build(&program);
    let map = generated.map.map(|mut map| {
        // Stack mapping needs positions only; the original text would double the size.
        map.set_source_contents(vec![None]);
        map.to_json_string()
    });
    Ok(Transpiled {
        code: generated.code,
        map,
        exports,
    })
}

/// TypeScript stripping only: no JSX, no decorator or syntax lowering (QuickJS runs
/// ES2023), ES module output. `import x = require()` and `export =` are errors.
fn transform_options() -> TransformOptions {
    TransformOptions {
        typescript: TypeScriptOptions::default(),
        decorator: DecoratorOptions::default(),
        jsx: JsxOptions::disable(),
        env: EnvOptions {
            module: Module::Esm,
            ..EnvOptions::default()
        },
        helper_loader: HelperLoaderOptions {
            mode: HelperLoaderMode::Runtime,
            ..HelperLoaderOptions::default()
        },
        ..TransformOptions::default()
    }
}

fn codegen_options(module_id: &str) -> CodegenOptions {
    CodegenOptions {
        single_quote: false,
        minify: false,
        comments: CommentOptions::disabled(),
        source_map_path: Some(PathBuf::from(module_id)),
        indent_char: IndentChar::Space,
        indent_width: 2,
        initial_indent: 0,
    }
}

/// Calls `resolve` for every remaining static import and export-from and applies its
/// rewrite. Imports are top-level statements only, so no full traversal is needed.
fn rewrite_specifiers<'a>(
    program: &mut Program<'a>,
    source: &ModuleSource<'_>,
    allocator: &'a Allocator,
    resolve: &mut dyn FnMut(&ImportSite) -> Result<Rewrite, BuildError>,
) -> Result<(), BuildError> {
    for statement in program.body.iter_mut() {
        let literal: &mut StringLiteral<'a> = match statement {
            Statement::ImportDeclaration(declaration) => &mut declaration.source,
            Statement::ExportAllDeclaration(declaration) => &mut declaration.source,
            Statement::ExportFromDeclaration(declaration) => &mut declaration.source,
            _ => continue,
        };
        let (line, column) = line_column(source.text, literal.span.start);
        let site = ImportSite {
            specifier: literal.value.as_str().to_owned(),
            line,
            column,
        };
        if literal.lone_surrogates {
            // The value holds oxc's lossy escapes, never a file name fen can resolve.
            return Err(BuildError::UnsupportedImport {
                specifier: site.specifier,
                file: source.display.to_owned(),
                line,
                column,
            });
        }
        match resolve(&site)? {
            Rewrite::Keep => {}
            Rewrite::To(replacement) => {
                literal.value = Str::from_str_in(&replacement, &allocator);
                literal.raw = None;
            }
        }
    }
    Ok(())
}

/// Top-level export names of the stripped program.
fn exported_names(program: &Program<'_>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for statement in &program.body {
        match statement {
            Statement::ExportDeclaration(export) => match &export.declaration {
                Declaration::VariableDeclaration(variables) => {
                    for declarator in &variables.declarations {
                        add_bindings(&declarator.id, &mut names);
                    }
                }
                Declaration::FunctionDeclaration(function) => {
                    if let Some(id) = &function.id {
                        names.insert(id.name.as_str().to_owned());
                    }
                }
                Declaration::ClassDeclaration(class) => {
                    if let Some(id) = &class.id {
                        names.insert(id.name.as_str().to_owned());
                    }
                }
                _ => {}
            },
            Statement::ExportNamedDeclaration(export) => {
                for specifier in &export.specifiers {
                    names.insert(export_name(&specifier.exported));
                }
            }
            Statement::ExportFromDeclaration(export) => {
                for specifier in &export.specifiers {
                    names.insert(export_name(&specifier.exported));
                }
            }
            Statement::ExportAllDeclaration(export) => {
                if let Some(exported) = &export.exported {
                    names.insert(export_name(exported));
                }
            }
            _ => {}
        }
    }
    names
}

fn add_bindings(pattern: &BindingPattern<'_>, names: &mut BTreeSet<String>) {
    for identifier in pattern.get_binding_identifiers() {
        names.insert(identifier.name.as_str().to_owned());
    }
}

fn export_name(name: &ModuleExportName<'_>) -> String {
    name.name().as_str().to_owned()
}

fn syntax_error(source: &ModuleSource<'_>, diagnostic: &OxcDiagnostic) -> BuildError {
    let (line, column) = diagnostic_position(source.text, diagnostic);
    BuildError::Syntax {
        file: source.display.to_owned(),
        line,
        column,
        message: diagnostic.message.to_string(),
    }
}

fn diagnostic_position(text: &str, diagnostic: &OxcDiagnostic) -> (usize, usize) {
    let offset = diagnostic
        .labels
        .iter()
        .map(|label| label.offset())
        .min()
        .unwrap_or(0);
    line_column(text, offset)
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_column(text: &str, offset: u32) -> (usize, usize) {
    let offset = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(text.len());
    let mut boundary = offset;
    while !text.is_char_boundary(boundary) {
        boundary -= 1;
    }
    let before = &text[..boundary];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    fn run(text: &str, language: Language) -> Result<(Transpiled, Vec<ImportSite>), BuildError> {
        let mut sites = Vec::new();
        let transpiled = transpile(
            &ModuleSource {
                text,
                language,
                display: "models/a.ts",
                module_id: "local:/models/a.ts#000000000000",
            },
            &mut |site| {
                sites.push(site.clone());
                Ok(Rewrite::Keep)
            },
        )?;
        Ok((transpiled, sites))
    }

    #[test]
    fn strips_types_and_emits_enums() {
        let source = "import type { Z } from \"zod\";\n\
                      import { T } from \"./types.ts\";\n\
                      interface Shape { size: number }\n\
                      type Alias = string;\n\
                      export enum Color { Red, Green = \"g\" }\n\
                      export const model: Shape = { size: 1 } as Shape;\n\
                      export function f(x: T): Alias { return String(x as unknown); }\n";
        let (transpiled, sites) = run(source, Language::TypeScript).unwrap();
        let code = &transpiled.code;
        assert!(!code.contains("interface"), "{code}");
        assert!(!code.contains("Alias"), "{code}");
        assert!(!code.contains("zod"), "{code}");
        assert!(!code.contains("types.ts"), "{code}");
        assert!(code.contains("Color"), "{code}");
        assert!(code.contains("\"Red\""), "{code}");
        assert!(sites.is_empty(), "{sites:?}");
        assert_eq!(
            transpiled
                .exports
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["Color", "f", "model"]
        );
    }

    #[test]
    fn reports_sites_with_positions() {
        let source = "// header\nimport { x } from \"./x.ts\";\nexport * from '../y.js';\nexport { z } from \"fen:sdk\";\nexport const model = x;\n";
        let (_, sites) = run(source, Language::TypeScript).unwrap();
        let found: Vec<(&str, usize, usize)> = sites
            .iter()
            .map(|site| (site.specifier.as_str(), site.line, site.column))
            .collect();
        assert_eq!(
            found,
            [("./x.ts", 2, 19), ("../y.js", 3, 15), ("fen:sdk", 4, 19)]
        );
    }

    #[test]
    fn rewrites_specifiers() {
        let transpiled = transpile(
            &ModuleSource {
                text: "import { x } from './x.js';\nexport const model = x;\n",
                language: Language::JavaScript,
                display: "models/a.js",
                module_id: "local:/models/a.js#000000000000",
            },
            &mut |_| Ok(Rewrite::To("local:/models/x.js#000000000000".into())),
        )
        .unwrap();
        assert!(
            transpiled
                .code
                .contains("from \"local:/models/x.js#000000000000\""),
            "{}",
            transpiled.code
        );
        let map = transpiled.map.unwrap();
        assert!(
            map.contains("\"sources\":[\"local:/models/a.js#000000000000\"]"),
            "{map}"
        );
        assert!(!map.contains("sourcesContent\":[\""), "{map}");
    }

    #[test]
    fn line_columns() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("é\nxé", 4), (2, 2));
        assert_eq!(line_column("é\nxé", 5), (2, 2));
        assert_eq!(line_column("é\nxé", 6), (2, 3));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}

//! Text scanning of JS/TS sources without a parser: the local import specifiers that
//! the fingerprint follows (spec 10 §1.9) and the export pre-check of the walk
//! (spec 30 §3.1).
//!
//! Both scans work on raw text. Comments are skipped only inside an import clause or an
//! export list (where a parser would skip them too); a commented-out import is still
//! followed, which is harmless: the fingerprint then covers one file more than the bundle.

use fen_domain::Kind;

/// The export keys a file's text matches, one bit per [`Kind`] (in `Kind::ALL` order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExportMask(u8);

impl ExportMask {
    /// No key matched.
    pub const NONE: ExportMask = ExportMask(0);

    /// The mask with one kind's key.
    pub fn of(kind: Kind) -> ExportMask {
        ExportMask(1 << kind_bit(kind))
    }

    /// True when the text exports `kind`'s key.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind_bit(kind)) != 0
    }

    /// True when the text exports any of `kinds`' keys.
    pub fn matches_any(self, kinds: &[Kind]) -> bool {
        kinds.iter().any(|kind| self.contains(*kind))
    }

    /// The stored form.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// From the stored form; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> ExportMask {
        ExportMask(bits & 0b0011_1111)
    }

    fn insert_key(&mut self, key: &str) {
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.export_key() == key) {
            self.0 |= 1 << kind_bit(kind);
        }
    }
}

/// The quoted specifiers of `import "<s>"`, `import ... from "<s>"` and
/// `export ... from "<s>"` (clauses may span lines; `import type` and `export *`
/// included) that start with `./` or `../`, in order of appearance. Dynamic
/// `import()` is not followed.
pub fn local_import_specifiers(text: &str) -> Vec<&str> {
    import_specifiers_where(text, |spec| {
        spec.starts_with("./") || spec.starts_with("../")
    })
}

/// [`local_import_specifiers`] plus the package imports the bundler resolves from
/// `node_modules` (`zod`, `@scope/pkg/sub`, `npm:pkg@1.2.3`): every specifier the
/// fingerprint follows (issue 17).
pub fn module_import_specifiers(text: &str) -> Vec<&str> {
    import_specifiers_where(text, |spec| {
        spec.starts_with("./")
            || spec.starts_with("../")
            || crate::bundler::npm::is_package_specifier(spec)
    })
}

fn import_specifiers_where(text: &str, keep: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut found: Vec<(&str, usize)> = keywords(text, &["import", "export"]).collect();
    found.sort_by_key(|(_, after)| *after);
    let mut out = Vec::new();
    for (keyword, after) in found {
        let side_effect_allowed = keyword == "import";
        if let Some(spec) = specifier_after(text, after, side_effect_allowed) {
            if keep(spec) && !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    out
}

/// The export pre-check for every kind key at once: `export (const|let|var) <key>`
/// followed by a non-identifier character, or `<key>` as an exported name in an
/// `export { ... }` list (`<key>` or `<local> as <key>`; also a re-export list).
pub fn export_mask(text: &str) -> ExportMask {
    let mut mask = ExportMask::NONE;
    let bytes = text.as_bytes();
    for (_, after) in keywords(text, &["export"]) {
        let mut i = skip_trivia(bytes, after);
        let (word, end) = read_word(text, i);
        match word {
            "const" | "let" | "var" => {
                i = skip_trivia(bytes, end);
                let (name, _) = read_word(text, i);
                mask.insert_key(name);
            }
            "" if bytes.get(i) == Some(&b'{') => {
                for name in exported_names(text, i + 1) {
                    mask.insert_key(name);
                }
            }
            _ => {}
        }
    }
    mask
}

fn kind_bit(kind: Kind) -> u8 {
    match kind {
        Kind::Model => 0,
        Kind::Extension => 1,
        Kind::Vault => 2,
        Kind::Driver => 3,
        Kind::Datastore => 4,
        Kind::Report => 5,
    }
}

/// Every standalone occurrence of one of `words` (not part of a longer identifier,
/// not a property access such as `x.import`), with the offset just after it.
fn keywords<'t>(
    text: &'t str,
    words: &'t [&'t str],
) -> impl Iterator<Item = (&'t str, usize)> + 't {
    let bytes = text.as_bytes();
    words
        .iter()
        .flat_map(move |word| text.match_indices(word))
        .filter(move |(start, word)| {
            let before_ok = *start == 0 || {
                let prev = bytes[start - 1];
                !is_ident_byte(prev) && prev != b'.'
            };
            let end = start + word.len();
            let after_ok = end >= bytes.len() || !is_ident_byte(bytes[end]);
            before_ok && after_ok
        })
        .map(|(start, word)| (word, start + word.len()))
}

/// Parses the clause after `import`/`export` up to its quoted specifier. The clause
/// may hold identifiers, `{ } , *`, comments and (inside braces) string names; the
/// specifier counts only right after `from`, or right after the keyword for a
/// side-effect import.
fn specifier_after(text: &str, after: usize, side_effect_allowed: bool) -> Option<&str> {
    let bytes = text.as_bytes();
    let mut i = after;
    let mut any_token = false;
    let mut after_from = false;
    let mut brace_depth = 0usize;
    loop {
        i = skip_trivia(bytes, i);
        let byte = *bytes.get(i)?;
        match byte {
            b'"' | b'\'' => {
                let (value, end) = read_string(text, i)?;
                if brace_depth > 0 {
                    i = end;
                    after_from = false;
                    continue;
                }
                let allowed = after_from || (side_effect_allowed && !any_token);
                return allowed.then_some(value);
            }
            b'{' => brace_depth += 1,
            b'}' => brace_depth = brace_depth.checked_sub(1)?,
            b',' | b'*' => {}
            _ if is_ident_byte(byte) => {
                let (word, end) = read_word(text, i);
                any_token = true;
                after_from = word == "from";
                i = end;
                continue;
            }
            _ => return None,
        }
        any_token = true;
        after_from = false;
        i += 1;
    }
}

/// The exported names of an `export { ... }` list starting after `{`. Type-only items
/// (`type X`) export no value and are left out.
fn exported_names(text: &str, start: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut item: Vec<&str> = Vec::new();
    let mut i = start;
    loop {
        i = skip_trivia(bytes, i);
        let Some(&byte) = bytes.get(i) else {
            return Vec::new();
        };
        match byte {
            b'}' | b',' => {
                if let Some(name) = item_export_name(&item) {
                    names.push(name);
                }
                item.clear();
                if byte == b'}' {
                    return names;
                }
                i += 1;
            }
            b'"' | b'\'' => match read_string(text, i) {
                Some((value, end)) => {
                    item.push(value);
                    i = end;
                }
                None => return Vec::new(),
            },
            _ if is_ident_byte(byte) => {
                let (word, end) = read_word(text, i);
                item.push(word);
                i = end;
            }
            _ => return Vec::new(),
        }
    }
}

fn item_export_name<'t>(item: &[&'t str]) -> Option<&'t str> {
    match item {
        [name] => Some(name),
        [_, "as", alias] => Some(alias),
        _ => None,
    }
}

/// Skips whitespace and `//` / `/* */` comments.
fn skip_trivia(bytes: &[u8], mut i: usize) -> usize {
    loop {
        match bytes.get(i) {
            Some(b) if b.is_ascii_whitespace() => i += 1,
            Some(b'/') if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            Some(b'/') if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
            }
            _ => return i,
        }
    }
}

/// The identifier starting at `i` (empty when there is none) and the offset after it.
fn read_word(text: &str, i: usize) -> (&str, usize) {
    let bytes = text.as_bytes();
    let mut end = i;
    while end < bytes.len() && is_ident_byte(bytes[end]) {
        end += 1;
    }
    // Identifier bytes never split a UTF-8 sequence: every byte >= 0x80 counts.
    (text.get(i..end).unwrap_or(""), end)
}

/// The contents of the string literal opening at `i` and the offset after its closing
/// quote; `None` when it is not closed on the same line.
fn read_string(text: &str, i: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let quote = bytes[i];
    let mut end = i + 1;
    while end < bytes.len() && bytes[end] != quote {
        if bytes[end] == b'\n' {
            return None;
        }
        end += 1;
    }
    if end >= bytes.len() {
        return None;
    }
    Some((text.get(i + 1..end)?, end + 1))
}

/// ASCII letters, digits, `_`, `$` and every non-ASCII byte (identifiers may hold
/// Unicode letters; treating all of them as identifier bytes keeps slices on char
/// boundaries).
fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly on purpose.
mod tests {
    use super::*;

    fn imports(text: &str) -> Vec<&str> {
        local_import_specifiers(text)
    }

    #[test]
    fn import_forms() {
        let cases: &[(&str, &[&str])] = &[
            (r#"import "./side.ts";"#, &["./side.ts"]),
            ("import './single.js'", &["./single.js"]),
            (r#"import x from "./def.ts""#, &["./def.ts"]),
            (r#"import { a, b as c } from "../up.ts""#, &["../up.ts"]),
            (r#"import * as ns from "./ns.ts""#, &["./ns.ts"]),
            (r#"import type { T } from "./types.ts""#, &["./types.ts"]),
            (r#"import d, { e } from "./mixed.ts""#, &["./mixed.ts"]),
            (
                "import {\n  a,\n  // b,\n  c,\n} from './multi.ts';",
                &["./multi.ts"],
            ),
            (
                "import { a /* x */ } from\n  \"./spaced.ts\"",
                &["./spaced.ts"],
            ),
            (r#"export * from "./star.ts""#, &["./star.ts"]),
            (r#"export * as ns from "./star-ns.ts""#, &["./star-ns.ts"]),
            (
                r#"export { a, "b-c" as d } from "./reexport.ts""#,
                &["./reexport.ts"],
            ),
            (r#"export type { T } from "./t.ts""#, &["./t.ts"]),
            (r#"// import "./commented.ts""#, &["./commented.ts"]),
            (
                r#"import x from "./a.ts"; import y from "./a.ts";"#,
                &["./a.ts"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&imports(text), expected, "{text}");
        }
    }

    #[test]
    fn forms_that_are_not_followed() {
        let cases = [
            r#"import { z } from "zod""#,
            r#"import { z } from "npm:zod@4""#,
            r#"import y from "https://example.org/y.ts""#,
            r#"import a from "/abs/a.ts""#,
            r#"const m = await import("./dynamic.ts")"#,
            r#"const u = import.meta.url; "./x.ts""#,
            r#"export const path = "./not-an-import.ts""#,
            r#"export default "./x.ts""#,
            r#"import x = require("./cjs.ts")"#,
            r#"foo.import "./prop.ts""#,
            r#"reimport "./x.ts""#,
            r#"export "./x.ts""#,
            r#"import x "./no-from.ts""#,
        ];
        for text in cases {
            assert_eq!(imports(text), Vec::<&str>::new(), "{text}");
        }
    }

    fn check_export(text: &str, kind: Kind, expected: bool) {
        assert_eq!(
            export_mask(text).contains(kind),
            expected,
            "{text} / {kind}"
        );
    }

    #[test]
    fn export_pre_check() {
        use Kind::*;
        let cases = [
            ("export const model = defineModel({})", Model, true),
            ("export let vault = {}", Vault, true),
            ("export var driver = {}", Driver, true),
            ("export\n  const\n  report = {}", Report, true),
            ("export const model: ModelType = {}", Model, true),
            ("export const models = {}", Model, false),
            ("export const model$ = {}", Model, false),
            ("export const modelX = {}", Model, false),
            ("const model = {}; export { model };", Model, true),
            ("export { a as model }", Model, true),
            ("export { a as extension, b }", Extension, true),
            (
                "export {\n  x,\n  // comment\n  y as datastore,\n}",
                Datastore,
                true,
            ),
            ("export { model as other }", Model, false),
            ("export { type as model }", Model, true),
            ("export { type X as model }", Model, false),
            ("export { model } from \"./m.ts\"", Model, true),
            ("export { x as \"vault\" }", Vault, true),
            ("export type { model }", Model, false),
            ("export { type model }", Model, false),
            ("export function model() {}", Model, false),
            ("const model = {}", Model, false),
            ("// export const model = {}", Model, true),
            ("export default model", Model, false),
        ];
        for (text, kind, expected) in cases {
            check_export(text, kind, expected);
        }
    }

    #[test]
    fn mask_bits_round_trip() {
        let mask = export_mask("export const model = 1; export { e as extension }");
        assert!(mask.matches_any(&[Kind::Model]));
        assert!(mask.matches_any(&[Kind::Extension]));
        assert!(!mask.matches_any(&[Kind::Vault, Kind::Report]));
        assert_eq!(ExportMask::from_bits(mask.bits()), mask);
        assert_eq!(ExportMask::of(Kind::Report).bits(), 0b10_0000);
    }
}

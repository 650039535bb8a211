//! `ExtensionName`: `@scope/segment[/segment...]` (spec 10 §1.1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::path::CanonicalPath;

/// Segments that may not follow the scope: they read like kind or state directories.
pub const RESERVED_SEGMENTS: [&str; 9] = [
    "models",
    "vaults",
    "drivers",
    "datastores",
    "reports",
    "workflows",
    "skills",
    "files",
    "bundles",
];
/// Scopes that `parse` accepts and `parse_publishable` rejects.
pub const RESERVED_SCOPES: [&str; 2] = ["local", "fen"];

const MAX_PART: usize = 64;
const MAX_NAME: usize = 128;

/// A validated extension name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExtensionName(String);

/// Why text is not an extension name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The text is empty.
    #[error("extension name is empty")]
    Empty,
    /// The text does not start with `@`.
    #[error("extension name must start with '@' (e.g. @acme/deploy)")]
    MissingAt,
    /// The scope has no `/segment` after it.
    #[error("extension name needs a segment after the scope (e.g. @acme/deploy)")]
    MissingSegment,
    /// A scope or segment is empty (`@/x`, `@a//b`, `@a/b/`).
    #[error("extension name has an empty part at byte {index}")]
    EmptyPart {
        /// Byte offset of the empty part.
        index: usize,
    },
    /// A character outside `a-z 0-9 - _`, or a leading `-`/`_`.
    #[error("extension name has an invalid character {ch:?} at byte {index} (allowed: a-z, 0-9, '-', '_'; first character a-z or 0-9)")]
    BadChar {
        /// Byte offset of the character.
        index: usize,
        /// The character.
        ch: char,
    },
    /// A scope or segment is longer than 64 characters.
    #[error("extension name part {part:?} is longer than 64 characters")]
    PartTooLong {
        /// The part.
        part: String,
    },
    /// The whole name is longer than 128 characters.
    #[error("extension name is {len} characters long (at most 128)")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A segment after the scope is a reserved directory name.
    #[error("extension name segment {0:?} is reserved")]
    ReservedSegment(String),
    /// The scope is reserved (`local`, `fen`).
    #[error("scope @{0} is reserved and cannot be published or pulled")]
    ReservedScope(String),
}

impl ExtensionName {
    /// Parses any valid name, reserved scopes included.
    ///
    /// ```
    /// use fen_domain::ExtensionName;
    /// let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
    /// assert_eq!(name.scope(), "acme");
    /// assert_eq!(name.segments().collect::<Vec<_>>(), ["aws", "ec2"]);
    /// assert_eq!(name.directory_key(), "@acme/aws+ec2");
    /// ```
    pub fn parse(text: &str) -> Result<ExtensionName, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        let body = text.strip_prefix('@').ok_or(NameError::MissingAt)?;
        if !body.contains('/') {
            // Check the scope's characters first so `@Acme` reports the real problem.
            check_part(body, 1)?;
            return Err(NameError::MissingSegment);
        }
        let mut offset = 1;
        for (position, part) in body.split('/').enumerate() {
            check_part(part, offset)?;
            if position > 0 && RESERVED_SEGMENTS.contains(&part) {
                return Err(NameError::ReservedSegment(part.to_owned()));
            }
            offset += part.len() + 1;
        }
        if text.len() > MAX_NAME {
            return Err(NameError::TooLong { len: text.len() });
        }
        Ok(ExtensionName(text.to_owned()))
    }

    /// Parses a name that may be published and pulled: no reserved scope.
    pub fn parse_publishable(text: &str) -> Result<ExtensionName, NameError> {
        let name = ExtensionName::parse(text)?;
        if RESERVED_SCOPES.contains(&name.scope()) {
            return Err(NameError::ReservedScope(name.scope().to_owned()));
        }
        Ok(name)
    }

    /// `@local/<slug>` for a repo root (spec 10 §1.1, "Local slug").
    pub fn local(root: &CanonicalPath) -> ExtensionName {
        let last = root.file_name();
        let mut slug = String::with_capacity(last.len());
        for ch in last.chars().map(|c| c.to_ascii_lowercase()) {
            let ch = if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-' {
                ch
            } else {
                '-'
            };
            if ch == '-' && slug.ends_with('-') {
                continue;
            }
            slug.push(ch);
        }
        let mut slug = slug.trim_matches('-').to_owned();
        if slug.is_empty() {
            slug = "repo".to_owned();
        }
        slug.truncate(MAX_PART);
        // A slug may start with `_` or equal a reserved segment; the name is built
        // directly because the local scope is never published and never a path key.
        ExtensionName(format!("@local/{slug}"))
    }

    /// The scope without `@`.
    pub fn scope(&self) -> &str {
        let body = &self.0[1..];
        body.split('/').next().unwrap_or(body)
    }

    /// The segments after the scope.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/').skip(1)
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the reserved `local` scope.
    pub fn is_local(&self) -> bool {
        self.scope() == "local"
    }

    /// The two-component directory key: `@scope/seg+seg` (spec 20 §6.2).
    pub fn directory_key(&self) -> String {
        let segments: Vec<&str> = self.segments().collect();
        format!("@{}/{}", self.scope(), segments.join("+"))
    }

    /// Parses a directory key (`@scope/a+b`) back into a name.
    pub fn from_directory_key(key: &str) -> Result<ExtensionName, NameError> {
        ExtensionName::parse(&key.replace('+', "/"))
    }
}

fn check_part(part: &str, offset: usize) -> Result<(), NameError> {
    if part.is_empty() {
        return Err(NameError::EmptyPart { index: offset });
    }
    for (index, ch) in part.char_indices() {
        let ok = ch.is_ascii_lowercase()
            || ch.is_ascii_digit()
            || (index > 0 && (ch == '-' || ch == '_'));
        if !ok {
            return Err(NameError::BadChar {
                index: offset + index,
                ch,
            });
        }
    }
    if part.len() > MAX_PART {
        return Err(NameError::PartTooLong {
            part: part.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Display for ExtensionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ExtensionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for ExtensionName {
    type Err = NameError;
    fn from_str(text: &str) -> Result<ExtensionName, NameError> {
        ExtensionName::parse(text)
    }
}

impl TryFrom<String> for ExtensionName {
    type Error = NameError;
    fn try_from(text: String) -> Result<ExtensionName, NameError> {
        ExtensionName::parse(&text)
    }
}

impl From<ExtensionName> for String {
    fn from(name: ExtensionName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::PathPolicy;
    use proptest::prelude::*;

    fn check(text: &str, expected: Result<(), NameError>) {
        assert_eq!(ExtensionName::parse(text).map(|_| ()), expected, "{text}");
    }

    #[test]
    fn scenario_1_accept_and_reject() {
        check("@acme/deploy", Ok(()));
        check("@acme/aws/ec2", Ok(()));
        check("@a_b/c-d", Ok(()));
        check("acme/x", Err(NameError::MissingAt));
        check("@acme", Err(NameError::MissingSegment));
        check("@Acme/x", Err(NameError::BadChar { index: 1, ch: 'A' }));
        check("@acme/-x", Err(NameError::BadChar { index: 6, ch: '-' }));
        check("", Err(NameError::Empty));
        check("@acme/", Err(NameError::EmptyPart { index: 6 }));
        check("@acme//x", Err(NameError::EmptyPart { index: 6 }));
        check(
            "@acme/tools/models",
            Err(NameError::ReservedSegment("models".into())),
        );
        check("@files/x", Ok(()));
    }

    #[test]
    fn lengths() {
        let part = "a".repeat(65);
        check(
            &format!("@acme/{part}"),
            Err(NameError::PartTooLong { part: part.clone() }),
        );
        let long = format!("@{}/{}/{}", "a".repeat(40), "b".repeat(44), "c".repeat(44));
        check(&long, Err(NameError::TooLong { len: long.len() }));
        check(&format!("@{}/{}", "a".repeat(64), "b".repeat(62)), Ok(()));
    }

    #[test]
    fn scenario_2_reserved_scopes() {
        let local = ExtensionName::parse("@local/x").unwrap();
        assert!(local.is_local());
        assert_eq!(
            ExtensionName::parse_publishable("@local/x"),
            Err(NameError::ReservedScope("local".into()))
        );
        assert_eq!(
            ExtensionName::parse_publishable("@fen/x"),
            Err(NameError::ReservedScope("fen".into()))
        );
        assert!(ExtensionName::parse_publishable("@acme/x").is_ok());
    }

    #[test]
    fn local_slugs() {
        let cases = [
            ("/home/u/My Project.v2", "@local/my-project-v2"),
            ("/home/u/--x--", "@local/x"),
            ("/home/u/ÄÖ", "@local/repo"),
            ("/", "@local/repo"),
            ("/srv/a__b", "@local/a__b"),
        ];
        for (root, expected) in cases {
            let root = CanonicalPath::from_text(root, PathPolicy::Posix).unwrap();
            assert_eq!(ExtensionName::local(&root).as_str(), expected);
        }
        let long =
            CanonicalPath::from_text(&format!("/{}", "z".repeat(90)), PathPolicy::Posix).unwrap();
        assert_eq!(
            ExtensionName::local(&long).segments().next().unwrap().len(),
            64
        );
    }

    #[test]
    fn directory_keys() {
        let name = ExtensionName::parse("@acme/aws/ec2").unwrap();
        assert_eq!(name.directory_key(), "@acme/aws+ec2");
        assert_eq!(
            ExtensionName::from_directory_key("@acme/aws+ec2").unwrap(),
            name
        );
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(
            scope in "[a-z0-9][a-z0-9_-]{0,10}",
            segments in proptest::collection::vec("[a-z0-9][a-z0-9_-]{0,10}", 1..4),
        ) {
            let text = format!("@{scope}/{}", segments.join("/"));
            prop_assume!(!segments.iter().any(|s| RESERVED_SEGMENTS.contains(&s.as_str())));
            let name = ExtensionName::parse(&text).unwrap();
            prop_assert_eq!(name.to_string(), text);
            prop_assert_eq!(ExtensionName::parse(&name.to_string()).unwrap(), name.clone());
            prop_assert_eq!(ExtensionName::from_directory_key(&name.directory_key()).unwrap(), name);
        }
    }
}

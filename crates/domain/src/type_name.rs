//! `TypeName`: the normalised declared type of an entry point (spec 10 §1.5).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

const MAX_BYTES: usize = 256;

/// A normalised type name such as `aws/ec2/vpc`. Equality is equality of the
/// normalised text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TypeName(String);

/// Why a declared type cannot be normalised.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TypeNameError {
    /// Nothing is left after normalisation.
    #[error("type name is empty")]
    Empty,
    /// A control character (U+0000–U+001F, U+007F) that is not whitespace.
    #[error("type name contains a control character")]
    ControlCharacter,
    /// More than 256 bytes after normalisation.
    #[error("type name is {0} bytes long (at most 256)")]
    TooLong(usize),
}

impl TypeName {
    /// Normalises a declared type.
    ///
    /// ```
    /// use fen_domain::TypeName;
    /// assert_eq!(TypeName::parse("AWS::EC2::VPC").unwrap().as_str(), "aws/ec2/vpc");
    /// assert_eq!(TypeName::parse("  Docker   Run ").unwrap().as_str(), "docker/run");
    /// ```
    pub fn parse(text: &str) -> Result<TypeName, TypeNameError> {
        if is_normal_ascii(text) {
            // Already in normal form, as every stored type is: the steps below would
            // return it unchanged, and they cost a microsecond or two per call.
            return Ok(TypeName(text.to_owned()));
        }
        normalize(text)
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// True for text that normalisation leaves unchanged and that contains only lower-case
/// ASCII letters, digits, `@`, `-`, `_` and single inner `/` separators.
fn is_normal_ascii(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_BYTES
        && !text.starts_with('/')
        && !text.ends_with('/')
        && !text.contains("//")
        && text.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'@' | b'-' | b'_')
        })
}

/// The five steps of spec 10 §1.5.
fn normalize(text: &str) -> Result<TypeName, TypeNameError> {
    let step1: String = text.nfc().collect();
    let step2: String = step1.trim().to_lowercase().nfc().collect();
    let step3 = step2.replace("::", "/");
    let mut replaced = String::with_capacity(step3.len());
    let mut in_space = false;
    for ch in step3.chars() {
        if ch.is_whitespace() {
            if !in_space {
                replaced.push('/');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        replaced.push(if ch == '.' { '/' } else { ch });
    }
    let mut collapsed = String::with_capacity(replaced.len());
    for ch in replaced.chars() {
        if ch == '/' && collapsed.ends_with('/') {
            continue;
        }
        collapsed.push(ch);
    }
    let result = collapsed.trim_matches('/');
    if result.is_empty() {
        return Err(TypeNameError::Empty);
    }
    if result.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}') {
        return Err(TypeNameError::ControlCharacter);
    }
    if result.len() > MAX_BYTES {
        return Err(TypeNameError::TooLong(result.len()));
    }
    Ok(TypeName(result.to_owned()))
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl FromStr for TypeName {
    type Err = TypeNameError;
    fn from_str(text: &str) -> Result<TypeName, TypeNameError> {
        TypeName::parse(text)
    }
}

impl TryFrom<String> for TypeName {
    type Error = TypeNameError;
    fn try_from(text: String) -> Result<TypeName, TypeNameError> {
        TypeName::parse(&text)
    }
}

impl From<TypeName> for String {
    fn from(name: TypeName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, expected: Result<&str, TypeNameError>) {
        let got = TypeName::parse(text).map(|t| t.0);
        assert_eq!(got, expected.map(str::to_owned), "{text:?}");
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_full_normalisation() {
        for text in ["aws/ec2/vpc", "@acme/deploy/step", "a", "x-1/y_2", "@t/a"] {
            assert_eq!(TypeName::parse(text), normalize(text), "{text:?}");
            assert!(is_normal_ascii(text));
        }
        for text in ["a//b", "/a", "a/", "A", "a.b", "a b", "a::b", ""] {
            assert!(!is_normal_ascii(text), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn fast_path_inputs_are_fixed_points(text in "[a-z0-9@_/-]{1,40}") {
            if is_normal_ascii(&text) {
                prop_assert_eq!(normalize(&text).map(|t| t.0), Ok(text.clone()));
            }
        }
    }

    #[test]
    fn scenario_4() {
        check("AWS::EC2::VPC", Ok("aws/ec2/vpc"));
        check("  Docker   Run ", Ok("docker/run"));
        check(
            "Microsoft.Resources/resourceGroup",
            Ok("microsoft/resources/resourcegroup"),
        );
        check("@Acme/Deploy.Step", Ok("@acme/deploy/step"));
        check("a..b//c/", Ok("a/b/c"));
        check("::", Err(TypeNameError::Empty));
        check("", Err(TypeNameError::Empty));
        check("a\u{0}b", Err(TypeNameError::ControlCharacter));
        check("a\u{7f}", Err(TypeNameError::ControlCharacter));
        check("a\tb", Ok("a/b"));
        check(&"x".repeat(257), Err(TypeNameError::TooLong(257)));
        check(&"x".repeat(256), Ok(&"x".repeat(256)));
        check("Cafe\u{301}", Ok("caf\u{e9}"));
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(text in "\\PC{0,40}") {
            if let Ok(once) = TypeName::parse(&text) {
                let twice = TypeName::parse(once.as_str()).unwrap();
                prop_assert_eq!(once, twice);
            }
        }

        #[test]
        fn normalisation_is_idempotent_on_type_like_text(text in "[A-Za-z:. /_@-]{0,30}") {
            if let Ok(once) = TypeName::parse(&text) {
                prop_assert_eq!(TypeName::parse(&once.to_string()).unwrap(), once);
            }
        }
    }
}

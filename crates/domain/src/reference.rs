//! `ExtensionRef`: what a user types to name a published extension, `@scope/name` or
//! `@scope/name@VERSION` (spec 20 §5.4).

use std::fmt;

use crate::name::ExtensionName;
use crate::version::ExtensionVersion;

/// A publishable name with an optional exact version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtensionRef {
    /// The name (never a reserved scope).
    pub name: ExtensionName,
    /// The pinned version, if one was given.
    pub version: Option<ExtensionVersion>,
}

/// The text is not a valid reference (`invalid_name`, exit 3).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid extension name \"{text}\": expected @scope/name (lowercase letters, digits, '-' and '_'; extra /segments allowed){detail}")]
pub struct RefError {
    /// The text as given.
    pub text: String,
    /// Extra detail after the standard message (`""`, or `; <why>`).
    pub detail: String,
}

impl RefError {
    fn new(text: &str, detail: impl fmt::Display) -> RefError {
        let detail = detail.to_string();
        RefError {
            text: text.to_owned(),
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!("; {detail}")
            },
        }
    }
}

impl ExtensionRef {
    /// Parses `@s/n` or `@s/n@V`: the first `@` after position 0 separates name and
    /// version; an empty version, a reserved scope (`@local`, `@fen`) or a version that
    /// is not a publishable CalVer is an error.
    ///
    /// ```
    /// use fen_domain::ExtensionRef;
    /// let r = ExtensionRef::parse("@acme/aws/ec2@2026.05.05.1").unwrap();
    /// assert_eq!(r.name.as_str(), "@acme/aws/ec2");
    /// assert_eq!(r.version.unwrap().to_string(), "2026.05.05.1");
    /// assert!(ExtensionRef::parse("@acme/x@").is_err());
    /// assert!(ExtensionRef::parse("@local/x").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<ExtensionRef, RefError> {
        let split = text
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '@')
            .map(|(i, _)| i);
        let (name_text, version_text) = match split {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let name =
            ExtensionName::parse_publishable(name_text).map_err(|e| RefError::new(text, e))?;
        let version = match version_text {
            None => None,
            Some("") => return Err(RefError::new(text, "the version after '@' is empty")),
            Some(v) => {
                let version = ExtensionVersion::parse(v).map_err(|e| RefError::new(text, e))?;
                if version.is_local() {
                    return Err(RefError::new(text, "0.0.0 is not a publishable version"));
                }
                Some(version)
            }
        };
        Ok(ExtensionRef { name, version })
    }

    /// Parses a bare name (`rm`, `update`): a `@VERSION` suffix is an error.
    pub fn parse_bare(text: &str) -> Result<ExtensionName, RefError> {
        let parsed = ExtensionRef::parse(text)?;
        if parsed.version.is_some() {
            return Err(RefError::new(
                text,
                "this command takes a name without @VERSION",
            ));
        }
        Ok(parsed.name)
    }
}

impl fmt::Display for ExtensionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(ExtensionRef::parse("@t/a").unwrap().version, None);
        assert!(ExtensionRef::parse("@t/a@2026.1.1.0").is_err());
        assert!(ExtensionRef::parse("@fen/a").is_err());
        assert!(ExtensionRef::parse("t/a").is_err());
        assert!(ExtensionRef::parse("@t/a@0.0.0").is_err());
        assert!(ExtensionRef::parse_bare("@t/a@2026.01.01.1").is_err());
        let message = ExtensionRef::parse("@T/a").unwrap_err().to_string();
        assert!(message.starts_with("invalid extension name \"@T/a\": expected @scope/name"));
    }
}

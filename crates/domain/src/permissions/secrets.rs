//! `secrets` entries (spec 40 §2): `[vault ":"] key`, vault `[a-z0-9][a-z0-9-]*`, key
//! segments `[a-z0-9][a-z0-9._-]*` joined by `/`, optionally ending in `/*` (any key below).
//! A ref without a vault means the `default` vault at call time.

use std::fmt;

/// One validated secret reference or grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    vault: Option<String>,
    /// The key; for a `/*` entry, the prefix including its trailing `/`.
    key: String,
    below: bool,
}

/// Why a `secrets` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretRule {
    /// The vault name is outside `[a-z0-9][a-z0-9-]*`.
    #[error("has an invalid vault name (`[a-z0-9][a-z0-9-]*`)")]
    Vault,
    /// An empty, `.` or `..` segment.
    #[error("has an empty, `.` or `..` key segment")]
    Segment,
    /// A segment outside `[a-z0-9][a-z0-9._-]*`, or `*` other than a final `/*`.
    #[error("has an invalid key (segments `[a-z0-9][a-z0-9._-]*` joined by `/`, optionally ending in `/*`)")]
    Key,
}

impl SecretRef {
    /// Parses one entry (`github-token`, `team:db/*`).
    pub fn parse(input: &str) -> Result<SecretRef, SecretRule> {
        let (vault, rest) = match input.split_once(':') {
            Some((vault, rest)) => {
                let mut bytes = vault.bytes();
                let ok = bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(SecretRule::Vault);
                }
                (Some(vault.to_owned()), rest)
            }
            None => (None, input),
        };
        let (key, below) = match rest.strip_suffix("/*") {
            Some(prefix) => (prefix, true),
            None => (rest, false),
        };
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(SecretRule::Segment);
            }
            let mut bytes = segment.bytes();
            let ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && bytes.all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                });
            if !ok {
                return Err(SecretRule::Key);
            }
        }
        let key = if below {
            format!("{key}/")
        } else {
            key.to_owned()
        };
        Ok(SecretRef { vault, key, below })
    }

    /// The vault named, or `None` for the default vault at call time.
    pub fn vault(&self) -> Option<&str> {
        self.vault.as_deref()
    }

    /// The key, or for a `/*` entry the prefix it grants (ending in `/`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether this is a `/*` entry (any key below the prefix).
    pub fn is_prefix(&self) -> bool {
        self.below
    }

    /// Coverage of spec 40 §2 between two entries, with the vaults as written (an entry
    /// without a vault matches only another without one; call-time defaulting is
    /// [`SecretRef::covers_key`]'s job).
    pub fn covers(&self, other: &SecretRef) -> bool {
        self.vault == other.vault && self.key_covers(&other.key, other.below)
    }

    /// Whether this entry covers the key `key` of vault `vault`, with `default_vault` the
    /// name a ref without a vault means at call time.
    pub fn covers_key(&self, default_vault: &str, vault: &str, key: &str) -> bool {
        self.vault.as_deref().unwrap_or(default_vault) == vault && self.key_covers(key, false)
    }

    fn key_covers(&self, key: &str, other_below: bool) -> bool {
        if self.below {
            key.starts_with(&self.key) && key.len() > self.key.len()
                || (other_below && key == self.key)
        } else {
            !other_below && key == self.key
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(vault) = &self.vault {
            write!(f, "{vault}:")?;
        }
        if self.below {
            write!(f, "{}*", self.key)
        } else {
            f.write_str(&self.key)
        }
    }
}

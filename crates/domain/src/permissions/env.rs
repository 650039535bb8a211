//! `env` entries (spec 40 §2): exact variable names `[A-Z_][A-Z0-9_]*`, never `FEN_*`.

use std::fmt;

/// One validated environment variable name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

/// Why an `env` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvRule {
    /// Outside `[A-Z_][A-Z0-9_]*`.
    #[error("is not a variable name `[A-Z_][A-Z0-9_]*`")]
    Grammar,
    /// Starts with `FEN_`: fen's own configuration is not for extensions.
    #[error(
        "starts with FEN_; fen's own variables cannot be granted (a secret belongs in a vault)"
    )]
    Reserved,
}

impl EnvName {
    /// Parses one name.
    pub fn parse(input: &str) -> Result<EnvName, EnvRule> {
        let mut bytes = input.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
        if !first_ok || !bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return Err(EnvRule::Grammar);
        }
        if input.starts_with("FEN_") {
            return Err(EnvRule::Reserved);
        }
        Ok(EnvName(input.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

//! `SourceFingerprint`: the content identity of an entry point and its local imports
//! (spec 10 §1.9). This module holds the pure part: the value, its text form and the
//! line format. Reading files belongs to `fen_infrastructure::sources`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;

/// The placeholder hashed for a file of the closure that cannot be read.
pub const MISSING: &str = "MISSING";

/// A fingerprint: 64 hex digits, or `MISSING:` + 64 hex digits when the entry itself
/// could not be read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceFingerprint {
    /// The entry was readable.
    Content([u8; 32]),
    /// The entry could not be read.
    EntryUnreadable([u8; 32]),
}

/// The text is neither form of fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a fingerprint: {0:?}")]
pub struct BadFingerprint(pub String);

/// One file of an entry's import closure: its path relative to the boundary, with `/`
/// separators, and the SHA-256 of its bytes (`None` when unreadable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintLine {
    /// Path relative to the boundary, spelled as resolution produced it.
    pub relative: String,
    /// Digest of the file's bytes; `None` hashes as the `MISSING` placeholder.
    pub digest: Option<[u8; 32]>,
}

impl SourceFingerprint {
    /// Combines the closure's lines: sort by byte order, join with `\n`, hash.
    /// `entry_readable` picks the variant.
    ///
    /// ```
    /// use fen_domain::{FingerprintLine, SourceFingerprint};
    /// let fp = SourceFingerprint::from_lines(
    ///     vec![FingerprintLine { relative: "models/a.ts".into(), digest: Some([0; 32]) }],
    ///     true,
    /// );
    /// assert_eq!(fp.to_string().len(), 64);
    /// ```
    pub fn from_lines(lines: Vec<FingerprintLine>, entry_readable: bool) -> SourceFingerprint {
        let mut texts: Vec<String> = lines
            .into_iter()
            .map(|line| match line.digest {
                Some(digest) => format!("{}:{}", line.relative, hex::encode(&digest)),
                None => format!("{}:{MISSING}", line.relative),
            })
            .collect();
        texts.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        texts.dedup();
        let digest: [u8; 32] = Sha256::digest(texts.join("\n").as_bytes()).into();
        if entry_readable {
            SourceFingerprint::Content(digest)
        } else {
            SourceFingerprint::EntryUnreadable(digest)
        }
    }

    /// Parses stored text; `None` for `''` or anything unparsable ("unknown", always
    /// stale).
    pub fn parse_stored(text: &str) -> Option<SourceFingerprint> {
        text.parse().ok()
    }

    /// The digest bytes.
    pub fn digest(&self) -> &[u8; 32] {
        match self {
            SourceFingerprint::Content(d) | SourceFingerprint::EntryUnreadable(d) => d,
        }
    }

    /// True for the `MISSING:` form.
    pub fn is_entry_unreadable(&self) -> bool {
        matches!(self, SourceFingerprint::EntryUnreadable(_))
    }
}

impl fmt::Display for SourceFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceFingerprint::Content(d) => f.write_str(&hex::encode(d)),
            SourceFingerprint::EntryUnreadable(d) => write!(f, "{MISSING}:{}", hex::encode(d)),
        }
    }
}

impl fmt::Debug for SourceFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for SourceFingerprint {
    type Err = BadFingerprint;
    fn from_str(text: &str) -> Result<SourceFingerprint, BadFingerprint> {
        let bad = || BadFingerprint(text.to_owned());
        match text.strip_prefix("MISSING:") {
            Some(rest) => hex::decode32(rest)
                .map(SourceFingerprint::EntryUnreadable)
                .ok_or_else(bad),
            None => hex::decode32(text)
                .map(SourceFingerprint::Content)
                .ok_or_else(bad),
        }
    }
}

impl TryFrom<String> for SourceFingerprint {
    type Error = BadFingerprint;
    fn try_from(text: String) -> Result<SourceFingerprint, BadFingerprint> {
        text.parse()
    }
}

impl From<SourceFingerprint> for String {
    fn from(fp: SourceFingerprint) -> String {
        fp.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_line_closure_matches_hand_computation() {
        let entry: [u8; 32] = Sha256::digest(b"export const model = {};").into();
        let fp = SourceFingerprint::from_lines(
            vec![FingerprintLine {
                relative: "models/a.ts".into(),
                digest: Some(entry),
            }],
            true,
        );
        let line = format!("models/a.ts:{}", hex::encode(&entry));
        let expected: [u8; 32] = Sha256::digest(line.as_bytes()).into();
        assert_eq!(fp, SourceFingerprint::Content(expected));
    }

    #[test]
    fn order_does_not_matter_and_missing_differs() {
        let a = FingerprintLine {
            relative: "a.ts".into(),
            digest: Some([1; 32]),
        };
        let b = FingerprintLine {
            relative: "b.ts".into(),
            digest: Some([2; 32]),
        };
        let b_missing = FingerprintLine {
            relative: "b.ts".into(),
            digest: None,
        };
        let ab = SourceFingerprint::from_lines(vec![a.clone(), b.clone()], true);
        let ba = SourceFingerprint::from_lines(vec![b, a.clone()], true);
        assert_eq!(ab, ba);
        let with_missing = SourceFingerprint::from_lines(vec![a, b_missing], true);
        assert_ne!(ab, with_missing);
    }

    #[test]
    fn stored_text() {
        assert_eq!(SourceFingerprint::parse_stored(""), None);
        assert_eq!(SourceFingerprint::parse_stored("xyz"), None);
        assert_eq!(SourceFingerprint::parse_stored(&"A".repeat(64)), None);
        let missing = format!("MISSING:{}", "0".repeat(64));
        assert!(SourceFingerprint::parse_stored(&missing)
            .unwrap()
            .is_entry_unreadable());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::array::uniform32(any::<u8>()), readable in any::<bool>()) {
            let fp = if readable { SourceFingerprint::Content(bytes) } else { SourceFingerprint::EntryUnreadable(bytes) };
            prop_assert_eq!(fp.to_string().parse::<SourceFingerprint>().unwrap(), fp);
        }
    }
}

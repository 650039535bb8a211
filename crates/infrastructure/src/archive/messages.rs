//! The one-line messages of spec 20 §15.4 for a rejected archive, and their wording
//! when `fen extension pack` refuses a directory (same codes, no "nothing was
//! installed": nothing was being installed).

use std::fmt;

use fen_domain::ports::{ArchiveError, ArchiveErrorCode};
use fen_domain::{ExtensionName, ExtensionVersion};

use super::limits::LimitExceeded;
use super::manifest::{FileSetProblem, ManifestProblem};

/// Whose archive a message is about.
#[derive(Clone, Debug)]
pub(crate) enum Subject {
    /// An archive being installed as `@s/n@V`.
    Unpack { label: String },
    /// A directory being packed: its path until the manifest names it, then `@s/n@V`.
    Pack { label: String },
}

impl Subject {
    pub(crate) fn unpack(name: &ExtensionName, version: &ExtensionVersion) -> Subject {
        Subject::Unpack {
            label: format!("{name}@{version}"),
        }
    }

    pub(crate) fn pack(label: impl Into<String>) -> Subject {
        Subject::Pack {
            label: label.into(),
        }
    }

    /// S1: `archive_corrupt`.
    pub(crate) fn corrupt(&self, detail: impl fmt::Display) -> ArchiveError {
        let message = match self {
            Subject::Unpack { label } => {
                format!("archive for {label} is corrupt: {detail}; nothing was installed")
            }
            Subject::Pack { label } => format!("cannot pack {label}: {detail}"),
        };
        error(ArchiveErrorCode::Corrupt, message)
    }

    /// S2–S6: `archive_unsafe`, naming the entry.
    pub(crate) fn unsafe_entry(&self, path: &str, reason: impl fmt::Display) -> ArchiveError {
        let path = path.escape_debug();
        let message = match self {
            Subject::Unpack { label } => format!(
                "archive for {label} rejected: unsafe entry \"{path}\" ({reason}); nothing was installed"
            ),
            Subject::Pack { label } => format!(
                "cannot pack {label}: unsafe entry \"{path}\" ({reason}); no archive was written"
            ),
        };
        error(ArchiveErrorCode::Unsafe, message)
    }

    /// S8 and unlisted entry points: `archive_invalid`.
    pub(crate) fn invalid(&self, detail: impl fmt::Display) -> ArchiveError {
        let message = match self {
            Subject::Unpack { label } => format!(
                "archive for {label} is not a valid fen extension: {detail}; nothing was installed"
            ),
            Subject::Pack { label } => format!(
                "cannot pack {label}: not a valid fen extension: {detail}; no archive was written"
            ),
        };
        error(ArchiveErrorCode::Invalid, message)
    }

    /// S7: `archive_too_large`.
    pub(crate) fn too_large(&self, over: &LimitExceeded) -> ArchiveError {
        let LimitExceeded { limit, value, max } = over;
        let message = match self {
            Subject::Unpack { label } => format!(
                "archive for {label} exceeds the {limit} limit ({value} > {max}); nothing was installed"
            ),
            Subject::Pack { label } => format!(
                "cannot pack {label}: it exceeds the {limit} limit ({value} > {max}); no archive was written"
            ),
        };
        error(ArchiveErrorCode::TooLarge, message)
    }

    /// §5.3: `manifest_invalid`.
    pub(crate) fn manifest_invalid(&self, problem: &ManifestProblem) -> ArchiveError {
        let label = match self {
            Subject::Unpack { label } | Subject::Pack { label } => label,
        };
        error(
            ArchiveErrorCode::ManifestInvalid,
            format!("manifest of {label} is invalid: {problem}"),
        )
    }

    /// The manifest and the files disagree: `manifest_invalid`, `archive_invalid`
    /// (an unlisted entry point) or `io`.
    pub(crate) fn file_set(&self, problem: FileSetProblem) -> ArchiveError {
        match problem {
            FileSetProblem::Manifest(problem) => self.manifest_invalid(&problem),
            unlisted @ FileSetProblem::UnlistedEntryPoint(_) => self.invalid(unlisted),
            unreadable @ FileSetProblem::Unreadable { .. } => self.io(unreadable),
        }
    }

    /// The manifest names another extension: `manifest_mismatch`.
    pub(crate) fn mismatch(&self, found: &str) -> ArchiveError {
        let message = match self {
            Subject::Unpack { label } => {
                format!("archive for {label} carries a manifest for {found}; refusing to install")
            }
            Subject::Pack { label } => format!("cannot pack {label}: its manifest names {found}"),
        };
        error(ArchiveErrorCode::ManifestMismatch, message)
    }

    /// The file system failed: `io`.
    pub(crate) fn io(&self, detail: impl fmt::Display) -> ArchiveError {
        let message = match self {
            Subject::Unpack { label } => {
                format!("cannot unpack the archive for {label}: {detail}; nothing was installed")
            }
            Subject::Pack { label } => format!("cannot pack {label}: {detail}"),
        };
        error(ArchiveErrorCode::Io, message)
    }
}

fn error(code: ArchiveErrorCode, message: String) -> ArchiveError {
    ArchiveError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject::unpack(
            &ExtensionName::parse("@s/n").unwrap(),
            &ExtensionVersion::parse("2026.05.05.1").unwrap(),
        )
    }

    #[test]
    fn unpack_messages_are_those_of_spec_20_15_4() {
        let s = subject();
        assert_eq!(
            s.corrupt("gzip stream: unexpected end of file").message,
            "archive for @s/n@2026.05.05.1 is corrupt: gzip stream: unexpected end of file; nothing was installed"
        );
        assert_eq!(
            s.unsafe_entry("extension/../x", "'..' segment").message,
            "archive for @s/n@2026.05.05.1 rejected: unsafe entry \"extension/../x\" ('..' segment); nothing was installed"
        );
        assert_eq!(
            s.invalid("missing extension/manifest.yaml").message,
            "archive for @s/n@2026.05.05.1 is not a valid fen extension: missing extension/manifest.yaml; nothing was installed"
        );
        let over = LimitExceeded {
            limit: "entry count",
            value: 4097,
            max: 4096,
        };
        assert_eq!(
            s.too_large(&over).message,
            "archive for @s/n@2026.05.05.1 exceeds the entry count limit (4097 > 4096); nothing was installed"
        );
        let problem = ManifestProblem::new("version", "must be a string");
        assert_eq!(
            s.manifest_invalid(&problem).message,
            "manifest of @s/n@2026.05.05.1 is invalid: version: must be a string"
        );
        assert_eq!(
            s.mismatch("@x/y@2026.01.01.1").message,
            "archive for @s/n@2026.05.05.1 carries a manifest for @x/y@2026.01.01.1; refusing to install"
        );
        assert_eq!(
            s.mismatch("@x/y@2026.01.01.1").code.as_str(),
            "manifest_mismatch"
        );
    }

    #[test]
    fn entry_paths_are_escaped_inside_their_quotes() {
        let message = subject()
            .unsafe_entry("a\"b\n", "control character")
            .message;
        assert!(
            message.contains(r#"unsafe entry "a\"b\n" (control character)"#),
            "{message}"
        );
    }
}

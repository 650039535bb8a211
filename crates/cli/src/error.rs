//! Errors as the user sees them: a stable snake_case code, one-line message, optional
//! hint, detail fields, and the exit code of the overview's table (spec 00 §6).
//!
//! With `--json`, a failure is printed on stdout as the envelope
//!
//! ```json
//! {"error": {"code": "duplicate_type", "message": "...", "hint": "..." | null, ...details}}
//! ```
//!
//! where `code` is [`ErrorCode::as_str`], `message` is one line, `hint` is a string or
//! null, and detail fields (`duplicateType`, `cause`, ...) follow in camelCase.

use fen_domain::ports::{DuplicateType, LifecycleLockError, RepoError};
use fen_infrastructure::catalog::CatalogOpenError;
use fen_lifecycle::LifecycleError;
use serde_json::{json, Map, Value};

/// Every error code fen reports, with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// A bug (exit 1).
    InternalError,
    /// clap rejected the command line (exit 2).
    Usage,
    /// No `.fen/` found (exit 3).
    NotARepository,
    /// Bad input (exit 3).
    InvalidInput,
    /// A config file such as `.fen/mounts.json` is invalid (exit 3).
    ConfigInvalid,
    /// The lockfile is invalid (exit 3).
    LockfileInvalid,
    /// No such type (exit 3).
    UnknownType,
    /// A `FEN_*` variable is out of range (exit 3).
    InvalidEnvironment,
    /// File system failure (exit 3).
    Io,
    /// The catalog failed (exit 3).
    CatalogError,
    /// The catalog was written by a newer fen (exit 3).
    CatalogTooNew,
    /// `models/<name>.yaml` does not parse or has the wrong shape (exit 3).
    DefinitionInvalid,
    /// No such model (exit 3).
    ModelNotFound,
    /// The model's type has no such method (exit 3).
    UnknownMethod,
    /// Arguments fail their schema or are malformed (exit 3).
    InvalidArguments,
    /// Two sources claim one type (exit 4).
    DuplicateType,
    /// `fen model create` found the model already defined (exit 4).
    ModelExists,
    /// State changed under the command; nothing was done (exit 4).
    Conflict,
    /// A bundle stays unusable after a rebuild (exit 5).
    BundleTampered,
    /// The model's datastore lock was taken over during the run (exit 6).
    LockLost,
    /// The method threw (exit 7).
    MethodThrew,
    /// The method returned a value that cannot be stored (exit 7).
    InvalidReturn,
    /// The method returned a promise that cannot settle (exit 7).
    DidNotSettle,
    /// The method hit its time limit (exit 7).
    SandboxTimeLimit,
    /// The method hit its memory limit (exit 7).
    SandboxMemoryLimit,
    /// The type cannot be loaded (exit 7).
    TypeUnavailable,
    /// A datastore lock stayed held beyond the wait budget (exit 75).
    DatastoreLockTimeout,
    /// The datastore's remote cannot be used, or a pull or sync failed (exit 3).
    DatastoreUnavailable,
    /// Two sides of a datastore disagree on an immutable file; both kept (exit 4).
    SyncConflict,
    /// The run's data is committed locally but was not pushed (exit 6).
    DatastorePushFailed,
    /// A datastore extension failed (exit 7).
    DatastoreExtensionFailed,
    /// Interrupted by a signal (exit 130).
    Interrupted,
    /// The lifecycle lock budget ran out (exit 75).
    LockTimeout,
    /// SQLite stayed busy (exit 75).
    CatalogBusy,
    /// An extension name or ref is malformed (exit 3).
    InvalidName,
    /// The extension is not installed (exit 3).
    NotInstalled,
    /// No registry URL (exit 3).
    RegistryNotConfigured,
    /// The registry has no such name or version (exit 3).
    RegistryNotFound,
    /// The registry refused access (exit 3).
    RegistryAuth,
    /// The registry could not be reached (exit 3).
    RegistryUnavailable,
    /// The registry answered something unusable (exit 3).
    RegistryProtocol,
    /// The archive does not decode (exit 3).
    ArchiveCorrupt,
    /// The archive has an unsafe entry (exit 3).
    ArchiveUnsafe,
    /// The archive is not a fen extension (exit 3).
    ArchiveInvalid,
    /// The archive exceeds a size limit (exit 3).
    ArchiveTooLarge,
    /// The manifest is invalid (exit 3).
    ManifestInvalid,
    /// The dependency chain is too deep (exit 3).
    DependencyError,
    /// The archive does not hash to the registry's checksum (exit 5).
    ChecksumMismatch,
    /// The registry has no checksum (exit 5).
    ChecksumUnavailable,
    /// The archive does not hash to the lockfile's pin (exit 5).
    LockfileChecksumMismatch,
    /// The archive's manifest names another extension (exit 5).
    ManifestMismatch,
    /// Files differ from the lockfile (exit 5).
    Drift,
    /// Files and lockfile changed but the catalog did not (exit 6).
    PartiallyApplied,
}

impl ErrorCode {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Usage => "usage",
            ErrorCode::NotARepository => "not_a_repository",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::ConfigInvalid => "config_invalid",
            ErrorCode::LockfileInvalid => "lockfile_invalid",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidEnvironment => "invalid_environment",
            ErrorCode::Io => "io",
            ErrorCode::CatalogError => "catalog_error",
            ErrorCode::CatalogTooNew => "catalog_too_new",
            ErrorCode::DefinitionInvalid => "definition_invalid",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::DuplicateType => "duplicate_type",
            ErrorCode::ModelExists => "model_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BundleTampered => "bundle_tampered",
            ErrorCode::LockLost => "lock_lost",
            ErrorCode::MethodThrew => "method_threw",
            ErrorCode::InvalidReturn => "invalid_return",
            ErrorCode::DidNotSettle => "did_not_settle",
            ErrorCode::SandboxTimeLimit => "sandbox_time_limit",
            ErrorCode::SandboxMemoryLimit => "sandbox_memory_limit",
            ErrorCode::TypeUnavailable => "type_unavailable",
            ErrorCode::DatastoreLockTimeout => "datastore_lock_timeout",
            ErrorCode::DatastoreUnavailable => "datastore_unavailable",
            ErrorCode::SyncConflict => "sync_conflict",
            ErrorCode::DatastorePushFailed => "datastore_push_failed",
            ErrorCode::DatastoreExtensionFailed => "datastore_extension_failed",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::LockTimeout => "lock_timeout",
            ErrorCode::CatalogBusy => "catalog_busy",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NotInstalled => "not_installed",
            ErrorCode::RegistryNotConfigured => "registry_not_configured",
            ErrorCode::RegistryNotFound => "registry_not_found",
            ErrorCode::RegistryAuth => "registry_auth",
            ErrorCode::RegistryUnavailable => "registry_unavailable",
            ErrorCode::RegistryProtocol => "registry_protocol",
            ErrorCode::ArchiveCorrupt => "archive_corrupt",
            ErrorCode::ArchiveUnsafe => "archive_unsafe",
            ErrorCode::ArchiveInvalid => "archive_invalid",
            ErrorCode::ArchiveTooLarge => "archive_too_large",
            ErrorCode::ManifestInvalid => "manifest_invalid",
            ErrorCode::DependencyError => "dependency_error",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::ChecksumUnavailable => "checksum_unavailable",
            ErrorCode::LockfileChecksumMismatch => "lockfile_checksum_mismatch",
            ErrorCode::ManifestMismatch => "manifest_mismatch",
            ErrorCode::Drift => "drift",
            ErrorCode::PartiallyApplied => "partially_applied",
        }
    }

    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::InternalError => 1,
            ErrorCode::Usage => 2,
            ErrorCode::NotARepository
            | ErrorCode::InvalidInput
            | ErrorCode::ConfigInvalid
            | ErrorCode::LockfileInvalid
            | ErrorCode::UnknownType
            | ErrorCode::InvalidEnvironment
            | ErrorCode::Io
            | ErrorCode::CatalogError
            | ErrorCode::CatalogTooNew
            | ErrorCode::DefinitionInvalid
            | ErrorCode::ModelNotFound
            | ErrorCode::UnknownMethod
            | ErrorCode::InvalidArguments
            | ErrorCode::InvalidName
            | ErrorCode::NotInstalled
            | ErrorCode::RegistryNotConfigured
            | ErrorCode::RegistryNotFound
            | ErrorCode::RegistryAuth
            | ErrorCode::RegistryUnavailable
            | ErrorCode::RegistryProtocol
            | ErrorCode::ArchiveCorrupt
            | ErrorCode::ArchiveUnsafe
            | ErrorCode::ArchiveInvalid
            | ErrorCode::ArchiveTooLarge
            | ErrorCode::ManifestInvalid
            | ErrorCode::DependencyError
            | ErrorCode::DatastoreUnavailable => 3,
            ErrorCode::DuplicateType
            | ErrorCode::ModelExists
            | ErrorCode::Conflict
            | ErrorCode::SyncConflict => 4,
            ErrorCode::BundleTampered
            | ErrorCode::ChecksumMismatch
            | ErrorCode::ChecksumUnavailable
            | ErrorCode::LockfileChecksumMismatch
            | ErrorCode::ManifestMismatch
            | ErrorCode::Drift => 5,
            ErrorCode::LockLost | ErrorCode::PartiallyApplied | ErrorCode::DatastorePushFailed => 6,
            ErrorCode::MethodThrew
            | ErrorCode::InvalidReturn
            | ErrorCode::DidNotSettle
            | ErrorCode::SandboxTimeLimit
            | ErrorCode::SandboxMemoryLimit
            | ErrorCode::TypeUnavailable
            | ErrorCode::DatastoreExtensionFailed => 7,
            ErrorCode::LockTimeout | ErrorCode::CatalogBusy | ErrorCode::DatastoreLockTimeout => 75,
            ErrorCode::Interrupted => 130,
        }
    }

    /// The code named by its snake_case text (lifecycle reports carry codes as text).
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ALL_CODES.iter().copied().find(|c| c.as_str() == code)
    }

    /// The code of a run record's `error.code` (spec 30 §6.7).
    pub fn from_run_code(code: &str) -> ErrorCode {
        match code {
            "method_threw" => ErrorCode::MethodThrew,
            "invalid_return" => ErrorCode::InvalidReturn,
            "did_not_settle" => ErrorCode::DidNotSettle,
            "sandbox_time_limit" => ErrorCode::SandboxTimeLimit,
            "sandbox_memory_limit" => ErrorCode::SandboxMemoryLimit,
            "type_unavailable" => ErrorCode::TypeUnavailable,
            "interrupted" => ErrorCode::Interrupted,
            _ => ErrorCode::InternalError,
        }
    }
}

/// Every code, for [`ErrorCode::from_code`].
const ALL_CODES: &[ErrorCode] = &[
    ErrorCode::InternalError,
    ErrorCode::Usage,
    ErrorCode::NotARepository,
    ErrorCode::InvalidInput,
    ErrorCode::ConfigInvalid,
    ErrorCode::LockfileInvalid,
    ErrorCode::UnknownType,
    ErrorCode::InvalidEnvironment,
    ErrorCode::Io,
    ErrorCode::CatalogError,
    ErrorCode::CatalogTooNew,
    ErrorCode::DefinitionInvalid,
    ErrorCode::ModelNotFound,
    ErrorCode::UnknownMethod,
    ErrorCode::InvalidArguments,
    ErrorCode::DuplicateType,
    ErrorCode::ModelExists,
    ErrorCode::Conflict,
    ErrorCode::BundleTampered,
    ErrorCode::LockLost,
    ErrorCode::MethodThrew,
    ErrorCode::InvalidReturn,
    ErrorCode::DidNotSettle,
    ErrorCode::SandboxTimeLimit,
    ErrorCode::SandboxMemoryLimit,
    ErrorCode::TypeUnavailable,
    ErrorCode::DatastoreLockTimeout,
    ErrorCode::DatastoreUnavailable,
    ErrorCode::SyncConflict,
    ErrorCode::DatastorePushFailed,
    ErrorCode::DatastoreExtensionFailed,
    ErrorCode::Interrupted,
    ErrorCode::LockTimeout,
    ErrorCode::CatalogBusy,
    ErrorCode::InvalidName,
    ErrorCode::NotInstalled,
    ErrorCode::RegistryNotConfigured,
    ErrorCode::RegistryNotFound,
    ErrorCode::RegistryAuth,
    ErrorCode::RegistryUnavailable,
    ErrorCode::RegistryProtocol,
    ErrorCode::ArchiveCorrupt,
    ErrorCode::ArchiveUnsafe,
    ErrorCode::ArchiveInvalid,
    ErrorCode::ArchiveTooLarge,
    ErrorCode::ManifestInvalid,
    ErrorCode::DependencyError,
    ErrorCode::ChecksumMismatch,
    ErrorCode::ChecksumUnavailable,
    ErrorCode::LockfileChecksumMismatch,
    ErrorCode::ManifestMismatch,
    ErrorCode::Drift,
    ErrorCode::PartiallyApplied,
];

/// A failure ready to print.
#[derive(Debug)]
pub struct CliError {
    /// The code.
    pub code: ErrorCode,
    /// One line.
    pub message: String,
    /// What to try.
    pub hint: Option<String>,
    /// Detail fields for the JSON envelope.
    pub details: Map<String, Value>,
    /// Top-level fields beside `error` (lifecycle commands: `warnings`, `recovered`,
    /// `timings`).
    pub beside: Map<String, Value>,
}

impl CliError {
    /// `unknown_type` (exit 3) with up to three close names as the hint and the
    /// `suggestions` detail, or a pointer to `fen model type search` when there are none.
    pub fn unknown_type(name: &str, suggestions: &[String]) -> CliError {
        let hint = if suggestions.is_empty() {
            "run 'fen model type search' to list the installed types".to_owned()
        } else {
            format!("did you mean {}?", suggestions.join(", "))
        };
        CliError::new(ErrorCode::UnknownType, format!("unknown type \"{name}\""))
            .with_hint(hint)
            .with_detail("suggestions", serde_json::json!(suggestions))
    }

    /// An error without hint or details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: one_line(message.into()),
            hint: None,
            details: Map::new(),
            beside: Map::new(),
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(one_line(hint.into()));
        self
    }

    /// Adds a detail field.
    pub fn with_detail(mut self, key: &str, value: Value) -> CliError {
        self.details.insert(key.to_owned(), value);
        self
    }

    /// The JSON envelope.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code.as_str()));
        error.insert("message".into(), json!(self.message));
        error.insert("hint".into(), json!(self.hint));
        for (key, value) in &self.details {
            error.insert(key.clone(), value.clone());
        }
        let mut document = self.beside.clone();
        document.insert("error".into(), Value::Object(error));
        Value::Object(document)
    }
}

/// Messages are one line: newlines become spaces, and other control characters
/// (escape sequences in a message an extension wrote, say) are shown escaped.
fn one_line(text: String) -> String {
    let text = if text.contains(['\n', '\r']) {
        text.split(['\n', '\r'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        text
    };
    printable(text)
}

/// `text` with every control character but tab shown as `\u{..}`, so text that
/// extension code chose can neither start a line nor drive the terminal.
pub fn printable(text: String) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

impl From<LifecycleLockError> for CliError {
    fn from(error: LifecycleLockError) -> CliError {
        match &error {
            LifecycleLockError::Timeout { holder, .. } => {
                let pid = holder.pid;
                CliError::new(ErrorCode::LockTimeout, error.to_string())
                    .with_hint(
                        "wait for that command to finish and retry, or raise FEN_LOCK_TIMEOUT_MS",
                    )
                    .with_detail("holderPid", json!(pid))
            }
            LifecycleLockError::AlreadyHeld => {
                CliError::new(ErrorCode::InternalError, error.to_string())
            }
            _ => CliError::new(ErrorCode::Io, error.to_string()),
        }
    }
}

impl From<RepoError> for CliError {
    fn from(error: RepoError) -> CliError {
        match error {
            RepoError::DuplicateType(dup) => duplicate_type(&dup),
            RepoError::Busy => CliError::new(ErrorCode::CatalogBusy, error.to_string())
                .with_hint("another process is using the catalog; retry in a moment"),
            RepoError::CatalogTooNew { .. } => {
                CliError::new(ErrorCode::CatalogTooNew, error.to_string()).with_hint(
                    "upgrade fen, or delete .fen/_extension_catalog.db to let this fen rebuild it",
                )
            }
            RepoError::LockNotHeld | RepoError::InvalidBatch(_) => {
                CliError::new(ErrorCode::InternalError, error.to_string())
            }
            other => CliError::new(ErrorCode::CatalogError, other.to_string())
                .with_hint("run 'fen doctor extensions' to check the catalog"),
        }
    }
}

impl From<CatalogOpenError> for CliError {
    fn from(error: CatalogOpenError) -> CliError {
        match error {
            CatalogOpenError::Repo(inner) => inner.into(),
            CatalogOpenError::Lock(inner) => inner.into(),
            other => CliError::new(ErrorCode::CatalogError, other.to_string()),
        }
    }
}

impl From<LifecycleError> for CliError {
    fn from(error: LifecycleError) -> CliError {
        match error {
            LifecycleError::Repo(inner) => inner.into(),
            LifecycleError::Lock(inner) => inner.into(),
            LifecycleError::Lockfile(inner) => {
                CliError::new(ErrorCode::LockfileInvalid, inner.to_string())
                    .with_hint(fen_domain::ports::lockfile::LOCKFILE_INVALID_HINT)
            }
            LifecycleError::Failed(failure) => {
                let code = ErrorCode::from_code(failure.code).unwrap_or(ErrorCode::InternalError);
                let mut error = match &failure.duplicate {
                    Some(dup) => duplicate_type(dup),
                    None => CliError::new(code, ""),
                };
                error.code = code;
                let failure = *failure;
                error.message = one_line(failure.message);
                error.hint = failure.hint.map(one_line);
                error.details.extend(failure.details);
                error
            }
            LifecycleError::Domain(inner) => {
                CliError::new(ErrorCode::InternalError, inner.to_string())
                    .with_hint("this is a bug in fen; please report it with the command you ran")
            }
            other => CliError::new(ErrorCode::Io, other.to_string()),
        }
    }
}

/// The `duplicate_type` error with its `duplicateType` detail.
pub fn duplicate_type(dup: &DuplicateType) -> CliError {
    let occupant = |o: &fen_domain::ports::Occupant| {
        json!({
            "extensionName": o.extension.name.as_str(),
            "extensionVersion": o.extension.version.to_string(),
            "sourcePath": o.source_path.as_str(),
        })
    };
    CliError::new(ErrorCode::DuplicateType, dup.to_string())
        .with_hint(dup.hint())
        .with_detail(
            "duplicateType",
            json!({
                "kind": dup.kind.as_str(),
                "type": dup.type_name.as_str(),
                "existingIsGhost": dup.existing_is_ghost,
                "existing": occupant(&dup.existing),
                "conflicting": occupant(&dup.conflicting),
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let error = CliError::new(ErrorCode::Io, "disk\nfull").with_hint("free space");
        let value = error.to_json();
        assert_eq!(value["error"]["code"], "io");
        assert_eq!(value["error"]["message"], "disk full");
        assert_eq!(value["error"]["hint"], "free space");
        let bare = CliError::new(ErrorCode::Usage, "x").to_json();
        assert!(bare["error"]["hint"].is_null());
    }

    #[test]
    fn control_characters_in_messages_are_escaped() {
        let error = CliError::new(ErrorCode::MethodThrew, "a\u{1b}[2Jb\u{7}\tc\u{85}d")
            .with_hint("x\u{1b}]0;title\u{7}");
        assert_eq!(error.message, "a\\u{1b}[2Jb\\u{7}\tc\\u{85}d");
        assert_eq!(error.hint.as_deref(), Some("x\\u{1b}]0;title\\u{7}"));
        assert_eq!(printable("plain é".to_owned()), "plain é");
    }

    #[test]
    fn exit_codes_follow_the_table() {
        let table = [
            (ErrorCode::InternalError, 1),
            (ErrorCode::Usage, 2),
            (ErrorCode::CatalogTooNew, 3),
            (ErrorCode::DuplicateType, 4),
            (ErrorCode::InvalidArguments, 3),
            (ErrorCode::ModelExists, 4),
            (ErrorCode::BundleTampered, 5),
            (ErrorCode::LockLost, 6),
            (ErrorCode::SandboxTimeLimit, 7),
            (ErrorCode::DatastoreLockTimeout, 75),
            (ErrorCode::Interrupted, 130),
            (ErrorCode::LockTimeout, 75),
            (ErrorCode::CatalogBusy, 75),
        ];
        for (code, exit) in table {
            assert_eq!(code.exit_code(), exit, "{}", code.as_str());
        }
    }
}

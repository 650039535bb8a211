//! The `FEN_*` environment variables this build reads, validated once at start-up
//! (spec 00 §7). An out-of-range value is `invalid_environment` (exit 3).

use std::time::Duration;

use crate::error::{CliError, ErrorCode};

/// Validated settings from the environment.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `FEN_LOCK_TIMEOUT_MS`.
    pub lock_timeout: Duration,
    /// `FEN_SANDBOX_EVAL_TIMEOUT_MS`: top-level evaluation limit.
    pub eval_timeout: Duration,
    /// `FEN_SANDBOX_MEMORY_MB`, in bytes.
    pub memory_bytes: usize,
    /// `FEN_SANDBOX_TIMEOUT_MS`: a model method's time limit.
    pub method_timeout: Duration,
    /// `FEN_DATASTORE_LOCK_TIMEOUT_MS`: the wait budget of a datastore lock.
    pub datastore_lock_wait_ms: u64,
    /// `FEN_DATASTORE_LOCK_TTL_MS`: the ttl written into datastore locks.
    pub datastore_lock_ttl_ms: u64,
    /// `FEN_DATASTORE_SYNC_TIMEOUT_MS`: one pull or push.
    pub datastore_sync_timeout_ms: u64,
    /// `FEN_BUNDLE_CACHE_BYTES` and `FEN_BUNDLE_CACHE_ENTRIES` (spec 30 §5.4).
    pub bundle_cache: fen_lifecycle::loader::CacheBudget,
    /// `FEN_HTTP_TIMEOUT_MS`: one registry request.
    pub http_timeout: Duration,
    /// `FEN_DOWNLOAD_TIMEOUT_MS`: one archive download.
    pub download_timeout: Duration,
    /// `FEN_HTTP_RETRIES`: attempts per registry request.
    pub http_attempts: u32,
}

impl Settings {
    /// Reads and validates the environment.
    pub fn from_env() -> Result<Settings, CliError> {
        fen_infrastructure::faults::init_from_env().map_err(|e| {
            CliError::new(ErrorCode::InvalidEnvironment, e.to_string())
                .with_hint("FEN_TEST_FAULT is test-only; unset it or fix the point/action name")
        })?;
        Ok(Settings {
            lock_timeout: Duration::from_millis(millis(
                "FEN_LOCK_TIMEOUT_MS",
                30_000,
                0,
                86_400_000,
            )?),
            eval_timeout: Duration::from_millis(millis(
                "FEN_SANDBOX_EVAL_TIMEOUT_MS",
                2_000,
                1,
                60_000,
            )?),
            memory_bytes: usize::try_from(millis("FEN_SANDBOX_MEMORY_MB", 64, 1, 1_024)?)
                .unwrap_or(64)
                << 20,
            method_timeout: Duration::from_millis(millis(
                "FEN_SANDBOX_TIMEOUT_MS",
                30_000,
                1,
                600_000,
            )?),
            datastore_lock_wait_ms: millis("FEN_DATASTORE_LOCK_TIMEOUT_MS", 60_000, 0, 86_400_000)?,
            datastore_lock_ttl_ms: millis("FEN_DATASTORE_LOCK_TTL_MS", 30_000, 100, 86_400_000)?,
            datastore_sync_timeout_ms: millis(
                "FEN_DATASTORE_SYNC_TIMEOUT_MS",
                300_000,
                1,
                21_600_000,
            )?,
            bundle_cache: fen_lifecycle::loader::CacheBudget {
                bytes: byte_size("FEN_BUNDLE_CACHE_BYTES", 64 << 20)?,
                entries: usize::try_from(millis("FEN_BUNDLE_CACHE_ENTRIES", 32, 1, 100_000)?)
                    .unwrap_or(32),
            },
            http_timeout: Duration::from_millis(millis(
                "FEN_HTTP_TIMEOUT_MS",
                15_000,
                1,
                3_600_000,
            )?),
            download_timeout: Duration::from_millis(millis(
                "FEN_DOWNLOAD_TIMEOUT_MS",
                120_000,
                1,
                3_600_000,
            )?),
            http_attempts: u32::try_from(millis("FEN_HTTP_RETRIES", 3, 1, 10)?).unwrap_or(3),
        })
    }
}

fn millis(var: &str, default: u64, min: u64, max: u64) -> Result<u64, CliError> {
    let Ok(text) = std::env::var(var) else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(CliError::new(
            ErrorCode::InvalidEnvironment,
            format!("{var}={text:?} is not a whole number in {min}..={max}"),
        )
        .with_hint(format!(
            "unset {var} or set it to a whole number such as {default}"
        ))),
    }
}

/// A byte size: a whole number of bytes, or one with a `KiB`, `MiB` or `GiB` suffix
/// (`16MiB`, `512 KiB`), between 1 MiB and 64 GiB.
fn byte_size(var: &str, default: usize) -> Result<usize, CliError> {
    let Ok(text) = std::env::var(var) else {
        return Ok(default);
    };
    parse_byte_size(&text)
        .filter(|n| (1 << 20..=64 << 30).contains(n))
        .ok_or_else(|| {
            CliError::new(
                ErrorCode::InvalidEnvironment,
                format!("{var}={text:?} is not a size between 1MiB and 64GiB"),
            )
            .with_hint(format!(
                "unset {var} or set it to bytes or a size such as 64MiB"
            ))
        })
}

fn parse_byte_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number.parse().ok()?;
    let shift = match unit.trim() {
        "" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::parse_byte_size;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_byte_size(" 512 KiB "), Some(512 << 10));
        assert_eq!(parse_byte_size("1048576"), Some(1 << 20));
        assert_eq!(parse_byte_size("2GiB"), Some(2 << 30));
        for bad in ["", "MiB", "16MB", "16 mib", "-1", "1.5MiB"] {
            assert_eq!(parse_byte_size(bad), None, "{bad}");
        }
    }
}

//! Test-only fault injection, `FEN_TEST_FAULT="<point>=<action>[,...]"` (spec 20 §15.6).
//!
//! Always compiled in. Actions: `abort` (no destructors, like SIGKILL), `error` (an
//! injected I/O error), `sleep:<ms>`. Before acting, a point prints
//! `fen-test-fault: <point> <action>` on stderr, so a test can wait for that line
//! instead of sleeping. Unknown points or actions are rejected when the variable is
//! parsed, so a typo cannot silently disable a test.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Every point fen knows, in the order an install passes them (then `rm`'s): those of
/// spec 20 §15.6 and two inside the swap (journal written, prior moved aside).
pub const POINTS: [&str; 12] = [
    "lock:acquired",
    "install:after-stage",
    "install:after-lock",
    "install:after-journal",
    "install:after-move-aside",
    "install:after-swap",
    "install:after-lockfile-write",
    "install:before-catalog-commit",
    "install:after-catalog-commit",
    "rm:after-journal",
    "rm:after-catalog",
    "rm:after-lockfile",
];

/// Points in datastore syncs (not part of the lifecycle crash sweep): `sync:after-plan`
/// is hit once a `filesystem` sync call has planned and before it copies anything, so a
/// test can take the remote away mid-sync.
pub const DATASTORE_POINTS: [&str; 1] = ["sync:after-plan"];

/// What a point does when hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// `std::process::abort()`.
    Abort,
    /// Return an injected I/O error.
    Error,
    /// Sleep, then continue.
    Sleep(Duration),
}

/// The variable names an unknown point or action.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("FEN_TEST_FAULT: {0}")]
pub struct FaultSpecError(pub String);

static FAULTS: OnceLock<BTreeMap<String, FaultAction>> = OnceLock::new();

/// Parses a fault specification.
pub fn parse(spec: &str) -> Result<BTreeMap<String, FaultAction>, FaultSpecError> {
    let mut out = BTreeMap::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (point, action) = item
            .split_once('=')
            .ok_or_else(|| FaultSpecError(format!("expected <point>=<action>, got {item:?}")))?;
        if !POINTS.contains(&point) && !DATASTORE_POINTS.contains(&point) {
            return Err(FaultSpecError(format!("unknown fault point {point:?}")));
        }
        let action = match action {
            "abort" => FaultAction::Abort,
            "error" => FaultAction::Error,
            other => match other
                .strip_prefix("sleep:")
                .and_then(|ms| ms.parse::<u64>().ok())
            {
                Some(ms) => FaultAction::Sleep(Duration::from_millis(ms)),
                None => return Err(FaultSpecError(format!("unknown fault action {other:?}"))),
            },
        };
        out.insert(point.to_owned(), action);
    }
    Ok(out)
}

/// Reads `FEN_TEST_FAULT` once for the process. Call early in `main`.
pub fn init_from_env() -> Result<(), FaultSpecError> {
    let spec = std::env::var("FEN_TEST_FAULT").unwrap_or_default();
    let parsed = parse(&spec)?;
    let _ = FAULTS.set(parsed);
    Ok(())
}

/// Fires `point` if configured.
pub fn hit(point: &str) -> std::io::Result<()> {
    let Some(action) = FAULTS.get().and_then(|f| f.get(point)).copied() else {
        return Ok(());
    };
    let label = match action {
        FaultAction::Abort => "abort".to_owned(),
        FaultAction::Error => "error".to_owned(),
        FaultAction::Sleep(d) => format!("sleep:{}", d.as_millis()),
    };
    eprintln!("fen-test-fault: {point} {label}");
    match action {
        FaultAction::Abort => std::process::abort(),
        FaultAction::Error => Err(std::io::Error::other(format!("injected fault at {point}"))),
        FaultAction::Sleep(duration) => {
            std::thread::sleep(duration);
            Ok(())
        }
    }
}

/// `FEN_TEST_FAULT` behind the `FaultPoints` port.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvFaults;

impl fen_domain::ports::FaultPoints for EnvFaults {
    fn hit(&self, point: &str) -> Result<(), String> {
        hit(point).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let parsed = parse("lock:acquired=sleep:50, rm:after-catalog=abort").unwrap();
        assert_eq!(
            parsed["lock:acquired"],
            FaultAction::Sleep(Duration::from_millis(50))
        );
        assert_eq!(parsed["rm:after-catalog"], FaultAction::Abort);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("lock:aquired=abort").is_err());
        assert!(parse("lock:acquired=explode").is_err());
        assert!(parse("lock:acquired").is_err());
    }
}

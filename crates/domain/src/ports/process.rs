//! `Clock` and `FaultPoints`: the two process facilities the lifecycle services need
//! besides storage (spec 20 §9, §15.6).

/// Wall-clock readings.
pub trait Clock: Send + Sync {
    /// RFC 3339 UTC with milliseconds and `Z` (lockfile `pulledAt`, journals).
    fn now_rfc3339_millis(&self) -> String;
    /// Microseconds since the Unix epoch (`lockSpans`).
    fn unix_micros(&self) -> u64;
    /// This host's name, for journals and owner records.
    fn host(&self) -> String;
}

/// Test-only fault points (`FEN_TEST_FAULT`). `hit` returns `Err` for the `error`
/// action, sleeps for `sleep:<ms>`, and never returns for `abort`.
pub trait FaultPoints: Send + Sync {
    /// Fires `point` if it is configured.
    fn hit(&self, point: &str) -> Result<(), String>;
}

/// No faults (library users, unit tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFaults;

impl FaultPoints for NoFaults {
    fn hit(&self, _point: &str) -> Result<(), String> {
        Ok(())
    }
}

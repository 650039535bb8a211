//! Test-only fault rules of the registry server (spec 20 §3.4): `DIR/_faults.json`,
//! re-read on every request, a JSON array of rules; the first rule whose `match` is a
//! substring of the raw path and whose `times` budget is not spent applies. Budgets
//! count since the server started, per rule (its position and its whole content, so
//! an edited rule starts afresh).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;

/// The file name below the served directory.
pub(crate) const FAULTS_FILE: &str = "_faults.json";

/// One rule as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FaultRule {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    truncate_after_bytes: Option<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    times: Option<u64>,
}

/// What the applying rule asks of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Answer this status with `{"error":"injected fault"}` instead.
    pub status: Option<u16>,
    /// Close the connection after this many body bytes.
    pub truncate_after_bytes: Option<u64>,
    /// Sleep this long before answering.
    pub delay_ms: Option<u64>,
}

/// The match counters of a running server.
#[derive(Debug, Default)]
pub(crate) struct FaultCounters {
    used: Mutex<HashMap<(usize, FaultRule), u64>>,
}

/// Why `_faults.json` was ignored.
#[derive(Debug)]
pub(crate) struct MalformedFaults(pub String);

impl FaultCounters {
    /// Reads the rules under `dir` and picks the one for `raw_path`, counting it.
    /// No file means no fault; a malformed file is reported and means no fault.
    pub(crate) fn select(&self, dir: &Path, raw_path: &str) -> Result<Fault, MalformedFaults> {
        let text = match std::fs::read(dir.join(FAULTS_FILE)) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Fault::default())
            }
            Err(error) => return Err(MalformedFaults(format!("cannot read it: {error}"))),
        };
        let rules = parse(&text)?;
        Ok(self.pick(&rules, raw_path))
    }

    fn pick(&self, rules: &[FaultRule], raw_path: &str) -> Fault {
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (index, rule) in rules.iter().enumerate() {
            if !raw_path.contains(&rule.pattern) {
                continue;
            }
            let count = used.entry((index, rule.clone())).or_insert(0);
            if rule.times.is_some_and(|times| *count >= times) {
                continue;
            }
            *count += 1;
            return Fault {
                status: rule.status,
                truncate_after_bytes: rule.truncate_after_bytes,
                delay_ms: rule.delay_ms,
            };
        }
        Fault::default()
    }
}

fn parse(text: &[u8]) -> Result<Vec<FaultRule>, MalformedFaults> {
    let rules: Vec<FaultRule> =
        serde_json::from_slice(text).map_err(|e| MalformedFaults(e.to_string()))?;
    for rule in &rules {
        if let Some(status) = rule.status.filter(|s| !(100..=999).contains(s)) {
            return Err(MalformedFaults(format!(
                "status {status} is not an HTTP status"
            )));
        }
    }
    Ok(rules)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_rule_with_budget_applies_and_budgets_count() {
        let rules = parse(
            br#"[{"match":"/download","status":503,"times":2},
                 {"match":"/download","delayMs":5},
                 {"match":"/files/","truncateAfterBytes":100,"times":1}]"#,
        )
        .unwrap();
        let counters = FaultCounters::default();
        let status = |path: &str| counters.pick(&rules, path);
        assert_eq!(status("/a/download").status, Some(503));
        assert_eq!(status("/a/download").status, Some(503));
        let third = status("/a/download");
        assert_eq!((third.status, third.delay_ms), (None, Some(5)));
        assert_eq!(status("/files/x").truncate_after_bytes, Some(100));
        assert_eq!(status("/files/x"), Fault::default());
        assert_eq!(status("/healthz"), Fault::default());
    }

    #[test]
    fn malformed_rules_are_refused() {
        assert!(parse(b"{").is_err());
        assert!(parse(br#"[{"match":"/x","stauts":503}]"#).is_err());
        assert!(parse(br#"[{"status":503}]"#).is_err());
        assert!(parse(br#"[{"match":"/x","status":7}]"#).is_err());
        assert_eq!(parse(b"[]").unwrap(), Vec::new());
    }
}

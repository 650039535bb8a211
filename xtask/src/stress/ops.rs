//! The OPS menu of spec 20 §16.3 and the outcome classification of §16.5.
//!
//! | Op | Accepted outcomes |
//! | --- | --- |
//! | `pull alpha@V1 --force` | exit 0, `outcome` ∈ installed, reinstalled, downgraded |
//! | `pull beta@V1 --force` | exit 0, `outcome` = reinstalled |
//! | `rm alpha --yes` | exit 0 `removed`; exit 3 `not_installed` (alpha absent then: a legal serial order) |
//! | `update` | exit 0; items ∈ updated, up_to_date, skipped |
//! | `install --refresh` (crash sweep only) | exit 0; items ∈ restored, up_to_date, skipped |
//!
//! For every child besides: stdout is exactly one JSON document, no signal death, no
//! `internal_error`, no timeout, and no `recovered` entry unless a crash happened
//! (the crash modes allow it where a dead process left a transaction behind).

use serde_json::Value;

use super::fixtures::{ALPHA, BETA, V1, V2};
use super::procs::{ChildRun, Exit};

/// One lifecycle command of the menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    PullAlpha,
    PullBeta,
    RmAlpha,
    Update,
    /// `fen extension install --refresh`: the restore path, swept by `--crash`.
    RestoreRefresh,
    /// Set-up and final-pass commands, never raced and never classified here.
    PullAlphaV2,
    RmBeta,
    Install,
    Status,
}

/// Round k uses `OPS[j % 4]` for child j.
pub const OPS: [Op; 4] = [Op::PullAlpha, Op::PullBeta, Op::RmAlpha, Op::Update];

impl Op {
    /// The report's name.
    pub fn label(self) -> &'static str {
        match self {
            Op::PullAlpha => "pull alpha@V1",
            Op::PullBeta => "pull beta@V1",
            Op::RmAlpha => "rm alpha",
            Op::Update => "update",
            Op::RestoreRefresh => "install --refresh",
            Op::PullAlphaV2 => "pull alpha@V2",
            Op::RmBeta => "rm beta",
            Op::Install => "install",
            Op::Status => "status",
        }
    }

    /// `fen` arguments after the global flags.
    pub fn args(self) -> Vec<String> {
        let alpha = format!("{ALPHA}@{V1}");
        let beta = format!("{BETA}@{V1}");
        let alpha_v2 = format!("{ALPHA}@{V2}");
        let args: Vec<&str> = match self {
            Op::PullAlpha => vec!["extension", "pull", &alpha, "--force"],
            Op::PullBeta => vec!["extension", "pull", &beta, "--force"],
            Op::RmAlpha => vec!["extension", "rm", ALPHA, "--yes"],
            Op::Update => vec!["extension", "update"],
            Op::RestoreRefresh => vec!["extension", "install", "--refresh"],
            Op::PullAlphaV2 => vec!["extension", "pull", &alpha_v2, "--force"],
            Op::RmBeta => vec!["extension", "rm", BETA, "--yes"],
            Op::Install => vec!["extension", "install"],
            Op::Status => vec!["extension", "status"],
        };
        args.into_iter().map(str::to_owned).collect()
    }
}

/// Whether a `recovered` entry is acceptable in a child's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// No crash happened: recovery must never be needed (§16.5).
    Forbidden,
    /// A process was killed in this round or the one before.
    Allowed,
}

/// The accepted outcomes of one child (one per update item), or why it failed.
pub fn classify(run: &ChildRun, recovery: Recovery) -> Result<Vec<String>, String> {
    if run.killed_on_purpose() {
        return Ok(vec!["killed".to_owned()]);
    }
    let code = match &run.exit {
        Exit::Code(code) => *code,
        other => return Err(format!("{other}")),
    };
    let doc = run
        .doc
        .as_ref()
        .map_err(|why| format!("exit {code}: {why}"))?;
    let error_code = doc["error"]["code"].as_str();
    if code == 1 || error_code == Some("internal_error") {
        return Err(format!(
            "exit {code}: internal_error: {}",
            doc["error"]["message"]
        ));
    }
    let recovered = doc["recovered"].as_array().map_or(0, Vec::len);
    if recovered > 0 && recovery == Recovery::Forbidden {
        return Err(format!(
            "exit {code}: recovered {} (no process crashed, so recovery must never be needed)",
            doc["recovered"]
        ));
    }
    let refuse = |why: &str| Err(format!("exit {code}: {why}: {}", one_line(doc)));
    match (run.op, code) {
        (Op::PullAlpha | Op::PullBeta, 0) => {
            let installed = &doc["installed"];
            let (name, accepted): (&str, &[&str]) = match run.op {
                Op::PullAlpha => (ALPHA, &["installed", "reinstalled", "downgraded"]),
                _ => (BETA, &["reinstalled"]),
            };
            let outcome = installed["outcome"].as_str().unwrap_or("");
            if installed["name"] != name || installed["version"] != V1 {
                return refuse("installed something else");
            }
            if !accepted.contains(&outcome) {
                return refuse(&format!("outcome {outcome:?} is not accepted"));
            }
            Ok(vec![outcome.to_owned()])
        }
        (Op::RmAlpha, 0) if doc["removed"]["name"] == ALPHA => Ok(vec!["removed".to_owned()]),
        (Op::RmAlpha, 3) if error_code == Some("not_installed") => {
            Ok(vec!["not_installed".to_owned()])
        }
        (Op::Update | Op::RestoreRefresh, 0) => {
            let accepted: &[&str] = match run.op {
                Op::Update => &["updated", "up_to_date", "skipped"],
                _ => &["restored", "up_to_date", "skipped"],
            };
            let items = doc["extensions"]
                .as_array()
                .ok_or_else(|| format!("exit 0 without an `extensions` list: {}", one_line(doc)))?;
            let mut outcomes = Vec::new();
            for item in items {
                let status = item["status"].as_str().unwrap_or("");
                if !accepted.contains(&status) {
                    return refuse(&format!(
                        "item {} is {status:?}",
                        item["name"].as_str().unwrap_or("?")
                    ));
                }
                outcomes.push(status.to_owned());
            }
            Ok(outcomes)
        }
        _ => refuse("not an accepted outcome"),
    }
}

/// A document on one line, cut to 600 bytes, for failure messages.
pub fn one_line(doc: &Value) -> String {
    let text = doc.to_string();
    match text.char_indices().nth(600) {
        Some((cut, _)) => format!("{} …", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::stress::procs::Kill;

    fn run(op: Op, exit: Exit, doc: Value) -> ChildRun {
        ChildRun {
            op,
            slot: 0,
            args: Vec::new(),
            fault: None,
            offset: Duration::ZERO,
            wall: Duration::ZERO,
            exit,
            kill: Kill::NotPlanned,
            stdout: doc.to_string(),
            stderr: String::new(),
            doc: Ok(doc),
        }
    }

    fn check(op: Op, code: i32, doc: Value) -> Result<Vec<String>, String> {
        classify(&run(op, Exit::Code(code), doc), Recovery::Forbidden)
    }

    #[test]
    fn accepted_outcomes() {
        let pulled = |name: &str, outcome: &str| json!({"installed": {"name": name, "version": V1, "outcome": outcome}, "recovered": []});
        assert_eq!(
            check(Op::PullAlpha, 0, pulled(ALPHA, "downgraded")).unwrap(),
            ["downgraded"]
        );
        assert!(check(Op::PullAlpha, 0, pulled(ALPHA, "upgraded")).is_err());
        assert_eq!(
            check(Op::PullBeta, 0, pulled(BETA, "reinstalled")).unwrap(),
            ["reinstalled"]
        );
        assert!(check(Op::PullBeta, 0, pulled(BETA, "installed")).is_err());
        assert_eq!(
            check(Op::RmAlpha, 3, json!({"error": {"code": "not_installed"}})).unwrap(),
            ["not_installed"]
        );
        assert!(check(Op::RmAlpha, 4, json!({"error": {"code": "conflict"}})).is_err());
        let update = |status: &str| json!({"extensions": [{"name": ALPHA, "status": status}, {"name": BETA, "status": "up_to_date"}], "recovered": []});
        assert_eq!(
            check(Op::Update, 0, update("skipped")).unwrap(),
            ["skipped", "up_to_date"]
        );
        assert!(check(Op::Update, 0, update("reconciled")).is_err());
        assert!(check(Op::Update, 0, update("failed")).is_err());
    }

    #[test]
    fn recovery_crashes_and_internal_errors_fail() {
        let recovered = json!({"removed": {"name": ALPHA}, "recovered": [{"op": "install"}]});
        assert!(check(Op::RmAlpha, 0, recovered.clone()).is_err());
        assert!(classify(
            &run(Op::RmAlpha, Exit::Code(0), recovered),
            Recovery::Allowed
        )
        .is_ok());
        assert!(check(Op::Update, 1, json!({"error": {"code": "internal_error"}})).is_err());
        assert!(classify(
            &run(Op::Update, Exit::Signal(6), json!({})),
            Recovery::Allowed
        )
        .is_err());
        let mut not_json = run(Op::Update, Exit::Code(0), json!({}));
        not_json.doc = Err("stdout is empty".to_owned());
        assert!(classify(&not_json, Recovery::Forbidden).is_err());
    }
}

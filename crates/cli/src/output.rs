//! Human and `--json` output. Results go to stdout; warnings, the error line and its
//! hint go to stderr. A closed stdout pipe is not an error.

use std::io::Write;

use serde_json::Value;

use crate::colour::{self, Colour};
use crate::error::CliError;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Lines for people.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Prints a command's result.
pub fn print_result(mode: Mode, human: &str, json: &Value) {
    let text = match mode {
        Mode::Human => human.to_owned(),
        Mode::Json => json.to_string(),
    };
    write_stdout(&text);
}

/// Prints a failure: the envelope on stdout in JSON mode, `error:`/`hint:` on stderr
/// otherwise.
pub fn print_error(mode: Mode, error: &CliError) {
    match mode {
        Mode::Json => write_stdout(&error.to_json().to_string()),
        Mode::Human => {
            let mut stderr = std::io::stderr().lock();
            let prefix = colour::err(Colour::Red, "error:");
            let _ = writeln!(stderr, "{prefix} {}", error.message);
            if let Some(hint) = &error.hint {
                let prefix = colour::err(Colour::Cyan, "hint:");
                let _ = writeln!(stderr, "{prefix} {hint}");
            }
        }
    }
}

fn write_stdout(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`fen ... | head`) ends output quietly.
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

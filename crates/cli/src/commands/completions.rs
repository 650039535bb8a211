//! `fen completions SHELL`: a completion script generated from the clap definition
//! (`clap_complete`), so it never lags behind the commands. Needs no repository.

use clap::CommandFactory;
use clap_complete::Shell;
use serde_json::json;

use super::Outcome;
use crate::args::Args;
use crate::output::Mode;

/// The script for `shell`; with `--json`, `{"shell", "script"}`.
pub fn run(mode: Mode, shell: Shell) -> Outcome {
    let script = script(shell);
    Outcome {
        human: match mode {
            // `print_result` ends the text with one newline.
            Mode::Human => script.trim_end_matches('\n').to_owned(),
            Mode::Json => String::new(),
        },
        json: json!({ "shell": shell.to_string(), "script": script }),
        exit_code: 0,
    }
}

/// The completion script of `shell` for the `fen` binary.
pub fn script(shell: Shell) -> String {
    let mut command = Args::command();
    let mut bytes = Vec::new();
    clap_complete::generate(shell, &mut command, "fen", &mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

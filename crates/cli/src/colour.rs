//! Colour policy (ARCHITECTURE "Colour"): ANSI colour on a stream only when nothing
//! disables it and the stream is a terminal, or `CLICOLOR_FORCE` forces it.
//!
//! Disabled, in this order: `--json` (never colour a document), `--no-color`, `NO_COLOR`
//! set to any non-empty value (no-color.org). Then `CLICOLOR_FORCE` set to a non-empty
//! value other than `0` enables it on both streams; otherwise a stream is coloured iff
//! it is a terminal. Only what a reader scans for is coloured: row states, the
//! `error:` / `warning:` / `hint:` prefixes and the winner of `extension why`.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// Whether stdout and stderr get colour; decided once per process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Colour on stdout.
    pub stdout: bool,
    /// Colour on stderr.
    pub stderr: bool,
}

static POLICY: OnceLock<Policy> = OnceLock::new();

impl Policy {
    /// The policy for these flags and environment values, given whether each stream is
    /// a terminal.
    pub fn decide(
        json: bool,
        no_color_flag: bool,
        no_color_env: Option<&str>,
        force_env: Option<&str>,
        terminals: (bool, bool),
    ) -> Policy {
        if json || no_color_flag || no_color_env.is_some_and(|v| !v.is_empty()) {
            return Policy::default();
        }
        if force_env.is_some_and(|v| !v.is_empty() && v != "0") {
            return Policy {
                stdout: true,
                stderr: true,
            };
        }
        Policy {
            stdout: terminals.0,
            stderr: terminals.1,
        }
    }
}

/// Decides the process's policy from the command line and the environment. Called
/// once in `main`, before anything is printed; later calls keep the first decision.
pub fn init(json: bool, no_color_flag: bool) {
    let env = |key: &str| std::env::var(key).ok();
    let policy = Policy::decide(
        json,
        no_color_flag,
        env("NO_COLOR").as_deref(),
        env("CLICOLOR_FORCE").as_deref(),
        (
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        ),
    );
    let _ = POLICY.set(policy);
}

fn policy() -> Policy {
    POLICY.get().copied().unwrap_or_default()
}

/// A colour (SGR parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    /// Success and healthy states.
    Green,
    /// Errors and failure states.
    Red,
    /// Warnings and hidden rows.
    Yellow,
    /// Hints.
    Cyan,
    /// Retired rows.
    Dim,
}

impl Colour {
    fn sgr(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "1;31",
            Colour::Yellow => "1;33",
            Colour::Cyan => "36",
            Colour::Dim => "2",
        }
    }
}

fn paint(on: bool, colour: Colour, text: &str) -> String {
    if on {
        format!("\x1b[{}m{text}\x1b[0m", colour.sgr())
    } else {
        text.to_owned()
    }
}

/// `text` coloured for stdout, if stdout gets colour.
pub fn out(colour: Colour, text: &str) -> String {
    paint(policy().stdout, colour, text)
}

/// `text` coloured for stderr, if stderr gets colour.
pub fn err(colour: Colour, text: &str) -> String {
    paint(policy().stderr, colour, text)
}

/// The colour of a row state tag.
pub fn of_state(tag: fen_domain::RowStateTag) -> Colour {
    use fen_domain::RowStateTag as T;
    match tag {
        T::Indexed => Colour::Green,
        T::BundleBuildFailed | T::ValidationFailed | T::EntryPointUnreadable => Colour::Red,
        T::Bundled | T::OrphanedBundleOnly => Colour::Yellow,
        T::Tombstoned => Colour::Dim,
    }
}

/// The `warning: ` prefix for stderr.
pub fn warning_prefix() -> String {
    err(Colour::Yellow, "warning:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTY: (bool, bool) = (true, true);
    const PIPE: (bool, bool) = (false, false);

    #[test]
    fn terminals_get_colour_and_pipes_do_not() {
        assert_eq!(
            Policy::decide(false, false, None, None, TTY),
            Policy {
                stdout: true,
                stderr: true
            }
        );
        assert_eq!(
            Policy::decide(false, false, None, None, PIPE),
            Policy::default()
        );
        assert_eq!(
            Policy::decide(false, false, None, None, (false, true)),
            Policy {
                stdout: false,
                stderr: true
            }
        );
    }

    #[test]
    fn no_color_flag_json_and_a_non_empty_no_color_win_over_force() {
        let on = Some("1");
        assert_eq!(
            Policy::decide(false, false, Some("1"), on, TTY),
            Policy::default()
        );
        assert_eq!(
            Policy::decide(false, true, None, on, TTY),
            Policy::default()
        );
        assert_eq!(
            Policy::decide(true, false, None, on, TTY),
            Policy::default()
        );
        // An empty NO_COLOR does not count (no-color.org).
        assert!(Policy::decide(false, false, Some(""), None, TTY).stdout);
    }

    #[test]
    fn clicolor_force_colours_pipes_unless_empty_or_zero() {
        assert!(Policy::decide(false, false, None, Some("1"), PIPE).stdout);
        assert!(!Policy::decide(false, false, None, Some("0"), PIPE).stdout);
        assert!(!Policy::decide(false, false, None, Some(""), PIPE).stderr);
    }
}

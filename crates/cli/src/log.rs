//! `FEN_LOG`: tracing lines on stderr, off by default (spec 00 §7, spec 20 §15.2).
//!
//! The value is a level (`error`, `warn`, `info`, `debug`, `trace`, or `off`) or a
//! comma-separated list of `target=level` directives with an optional bare default, e.g.
//! `fen_lifecycle=debug,warn`. Targets are the crate paths (`fen_infrastructure::catalog`,
//! `fen_lifecycle::engine`, ...). Lines go to stderr in both output modes, so stdout stays
//! one document in `--json` mode.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::error::{CliError, ErrorCode};

/// Parses `FEN_LOG`; `None` when it is unset, empty or `off`.
pub fn filter_from_env() -> Result<Option<Targets>, CliError> {
    match std::env::var("FEN_LOG") {
        Ok(text) => parse(&text),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(invalid("<not UTF-8>")),
    }
}

fn parse(text: &str) -> Result<Option<Targets>, CliError> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    // A bare level applies to fen's crates only; dependencies stay quiet unless named.
    if let Ok(level) = text.parse::<LevelFilter>() {
        let targets = [
            "fen",
            "fen_cli",
            "fen_domain",
            "fen_infrastructure",
            "fen_lifecycle",
        ]
        .into_iter()
        .fold(Targets::new(), |t, target| t.with_target(target, level));
        return Ok(Some(targets));
    }
    // `Targets::from_str` reads a bare word as a target at TRACE; a typo must not turn
    // logging fully on, so every directive is checked here.
    let mut targets = Targets::new();
    for directive in text.split(',').map(str::trim) {
        match directive.split_once('=') {
            None => {
                let level = directive
                    .parse::<LevelFilter>()
                    .map_err(|_| invalid(text))?;
                targets = targets.with_default(level);
            }
            Some((target, level)) => {
                let level = level.parse::<LevelFilter>().map_err(|_| invalid(text))?;
                let valid = !target.is_empty()
                    && target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
                if !valid {
                    return Err(invalid(text));
                }
                targets = targets.with_target(target, level);
            }
        }
    }
    Ok(Some(targets))
}

fn invalid(text: &str) -> CliError {
    CliError::new(
        ErrorCode::InvalidEnvironment,
        format!("FEN_LOG={text:?} is neither a level nor a list of target=level directives"),
    )
    .with_hint(
        "use e.g. FEN_LOG=debug or FEN_LOG=fen_lifecycle=debug,warn; unset it to turn logging off",
    )
}

/// Installs the stderr subscriber.
pub fn install(targets: Targets) {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(true)
        .without_time();
    // A second install (impossible in the binary) would only be refused.
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(targets)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_directives_and_off() {
        assert!(parse("").unwrap().is_none());
        assert!(parse("off").unwrap().is_none());
        let debug = parse("debug").unwrap().unwrap();
        assert!(debug.would_enable("fen_lifecycle::engine", &tracing::Level::DEBUG));
        assert!(!debug.would_enable("sqlx::query", &tracing::Level::DEBUG));
        let list = parse("fen_infrastructure::catalog=trace,warn")
            .unwrap()
            .unwrap();
        assert!(list.would_enable("fen_infrastructure::catalog::save", &tracing::Level::TRACE));
        assert!(list.would_enable("sqlx::query", &tracing::Level::WARN));
        assert!(!list.would_enable("sqlx::query", &tracing::Level::INFO));
    }

    #[test]
    fn garbage_is_invalid_environment() {
        for bad in [
            "loud please",
            "fen_lifecycle=chatty",
            "=debug",
            "debug,x y=info",
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment, "{bad}");
        }
    }
}

//! `cargo xtask man`: man pages for `fen` generated from its clap definition with
//! `clap_mangen`, into `target/man/` (never checked in): `fen.1` and one page per
//! subcommand (`fen-extension.1`, `fen-extension-why.1`, ...).

use std::path::Path;

use clap::CommandFactory;

/// The CLI's argument definitions, compiled here from the fen-cli source so the pages
/// always match the binary (fen-cli has no library target).
#[allow(dead_code)]
#[path = "../../crates/cli/src/args.rs"]
mod args;

/// Writes the pages under `<root>/target/man/` and returns how many were written.
pub fn run(root: &Path) -> Result<usize, String> {
    let dir = root.join("target").join("man");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let command = built();
    let mut written = 0;
    write_pages(&dir, command, "fen", &mut written)?;
    println!("man: wrote {written} pages to {}", dir.display());
    println!("man: read one with `man {}/fen.1`", dir.display());
    Ok(written)
}

/// The command with global flags propagated to every subcommand, so each page lists
/// `--json`, `--repo-dir`, ...
fn built() -> clap::Command {
    let mut command = args::Args::command();
    command.build();
    command
}

fn write_pages(
    dir: &Path,
    command: clap::Command,
    name: &str,
    written: &mut usize,
) -> Result<(), String> {
    // clap keeps command names as `&'static str` (without its `string` feature); these
    // few names live for the rest of the task anyway.
    let command = command.name(&*Box::leak(name.to_owned().into_boxed_str()));
    let mut bytes = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut bytes)
        .map_err(|e| format!("cannot render {name}: {e}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    *written += 1;
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        write_pages(dir, sub.clone(), &sub_name, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_gets_a_page_naming_its_flags() {
        let dir = tempfile::tempdir().unwrap();
        let mut written = 0;
        write_pages(dir.path(), built(), "fen", &mut written).unwrap();
        assert!(written > 20, "{written}");
        let why = std::fs::read_to_string(dir.path().join("fen-extension-why.1")).unwrap();
        assert!(why.contains("kind"), "{why}");
        assert!(
            why.contains("json"),
            "global flags reach subcommand pages: {why}"
        );
        assert!(!dir.path().join("fen-help.1").exists());
        let top = std::fs::read_to_string(dir.path().join("fen.1")).unwrap();
        assert!(top.contains("no\\-color"), "{top}");
    }
}

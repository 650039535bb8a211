//! The command line, defined with clap's derive API.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// fen: a crash-safe extension host and catalog.
#[derive(Debug, Parser)]
#[command(name = "fen", version, about, long_about = None)]
pub struct Args {
    /// Repository root (default: the innermost ancestor of the current directory with a .fen/ directory).
    #[arg(long, global = true, env = "FEN_REPO_DIR", value_name = "DIR")]
    pub repo_dir: Option<PathBuf>,
    /// Registry base URL.
    #[arg(long, global = true, env = "FEN_REGISTRY_URL", value_name = "URL")]
    pub registry: Option<String>,
    /// Print exactly one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Disable colours.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print one JSON line of counters on stderr.
    #[arg(long, global = true)]
    pub stats: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a fen repository (.fen/, the catalog and extensions/<kind>/ folders).
    Init {
        /// Directory to initialise (default: --repo-dir, FEN_REPO_DIR or the current directory).
        dir: Option<PathBuf>,
        /// Allow creating a repository inside another fen repository's tree.
        #[arg(long)]
        nested: bool,
    },
}

//! The command line, defined with clap's derive API.
//!
//! The doc comments here are the `--help` texts (and the man pages of `cargo xtask
//! man`), written for a terminal: `<NAME>` placeholders are meant literally, not as HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

/// fen: a crash-safe extension host and catalog.
#[derive(Debug, Parser)]
#[command(name = "fen", version, about, long_about = None)]
#[command(
    after_help = "Colour: on when the stream is a terminal; --no-color or NO_COLOR=1 turn it off, CLICOLOR_FORCE=1 forces it."
)]
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
    /// Inspect and manage extensions.
    Extension {
        #[command(subcommand)]
        command: ExtensionCommand,
    },
    /// Model types and models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The datastore: where model data lives (this version: `local`, .fen/data/).
    Datastore {
        #[command(subcommand)]
        command: DatastoreCommand,
    },
    /// Check and repair the repository's state.
    Doctor {
        #[command(subcommand)]
        command: DoctorCommand,
    },
    /// Serve a directory of packed extensions as a registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Print a shell completion script on stdout (see README "Shell completions").
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `fen registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve DIR (<scope>/<name>/<version>.tar.gz) over HTTP; the first stdout line is the URL.
    Serve {
        /// The registry directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
        addr: String,
        /// Do not log requests on stderr.
        #[arg(long)]
        quiet: bool,
        /// Allow listening on a non-loopback address.
        #[arg(long)]
        allow_non_loopback: bool,
    },
}

/// A kind, as typed on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Model types.
    Model,
    /// Extensions of model types.
    Extension,
    /// Vaults.
    Vault,
    /// Drivers.
    Driver,
    /// Datastores.
    Datastore,
    /// Reports.
    Report,
}

impl KindArg {
    /// The domain kind.
    pub fn kind(self) -> fen_domain::Kind {
        match self {
            KindArg::Model => fen_domain::Kind::Model,
            KindArg::Extension => fen_domain::Kind::Extension,
            KindArg::Vault => fen_domain::Kind::Vault,
            KindArg::Driver => fen_domain::Kind::Driver,
            KindArg::Datastore => fen_domain::Kind::Datastore,
            KindArg::Report => fen_domain::Kind::Report,
        }
    }
}

/// `fen extension ...`
#[derive(Debug, Subcommand)]
pub enum ExtensionCommand {
    /// List every catalog row with its state.
    List {
        /// Only rows of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Describe a type of any kind.
    Describe {
        /// The type.
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The kind, when the type exists under several.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Why a type comes from the source it does: the winner, every losing or failed
    /// candidate with its reason, its extensions. Reads the catalog only.
    Why {
        /// The type.
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The kind, when the type exists under several.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Source mounts: directories outside the repo whose extensions/ trees are local sources.
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Install or replace one extension (and its missing dependencies) from the registry.
    Pull {
        /// @scope/name or @scope/name@VERSION.
        #[arg(value_name = "REF")]
        reference: String,
        /// Replace an installed version.
        #[arg(long)]
        force: bool,
        /// Install even when the registry publishes no checksum.
        #[arg(long)]
        allow_unverified: bool,
    },
    /// Remove one pulled extension.
    #[command(alias = "remove")]
    Rm {
        /// @scope/name.
        name: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Upgrade pulled extensions to their latest versions and repair drift.
    Update {
        /// Only this extension.
        name: Option<String>,
        /// Only ask the registry; change nothing.
        #[arg(long)]
        check: bool,
    },
    /// Restore every extension pinned in the lockfile.
    Install {
        /// Re-download and verify every entry, not only the ones that differ.
        #[arg(long)]
        refresh: bool,
    },
    /// Lockfile, catalog and drift of pulled extensions (read-only).
    Status,
    /// Pack an extension directory into a deterministic .tar.gz archive.
    Pack {
        /// The directory holding manifest.yaml.
        dir: PathBuf,
        /// The archive to write.
        #[arg(long, value_name = "FILE", conflicts_with = "registry_dir")]
        out: Option<PathBuf>,
        /// Write <REGDIR>/<name path>/<version>.tar.gz and its .sha256 sidecar.
        #[arg(long, value_name = "REGDIR")]
        registry_dir: Option<PathBuf>,
    },
}

/// `fen extension source ...`
#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Add a mount.
    Add {
        /// Absolute directory that contains an extensions/ tree.
        dir: PathBuf,
    },
    /// Remove a mount.
    Rm {
        /// The mounted directory.
        dir: PathBuf,
    },
    /// List the mounts.
    List,
}

/// `fen model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Model types.
    Type {
        #[command(subcommand)]
        command: ModelTypeCommand,
    },
    /// Create models/<NAME>.yaml for a model of TYPE, validating its global arguments.
    Create {
        /// The model type.
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The model name (a-z, 0-9, '.', '_', '-').
        name: String,
        #[command(flatten)]
        args: ArgFlags,
    },
    /// List the models with their type's status and latest run.
    List,
    /// Run model methods.
    Method {
        #[command(subcommand)]
        command: MethodCommand,
    },
}

/// `--arg`, `--args-json`, `--args-file` (combinable; later forms override keys).
#[derive(Debug, ClapArgs)]
pub struct ArgFlags {
    /// One argument, KEY=VALUE (repeatable); VALUE is coerced by the schema's type for KEY.
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Arguments as one JSON object.
    #[arg(long, value_name = "JSON")]
    pub args_json: Option<String>,
    /// Arguments from a JSON or YAML file holding one object.
    #[arg(long, value_name = "FILE")]
    pub args_file: Option<PathBuf>,
}

/// `fen model method ...`
#[derive(Debug, Subcommand)]
pub enum MethodCommand {
    /// Run METHOD of model NAME under the model's datastore lock.
    Run {
        /// The model.
        name: String,
        /// The method.
        method: String,
        #[command(flatten)]
        args: ArgFlags,
        /// Time limit of the call in ms (default FEN_SANDBOX_TIMEOUT_MS or 30000).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
        timeout_ms: Option<u64>,
        /// Memory limit of the instance in MiB (default FEN_SANDBOX_MEMORY_MB or 64).
        #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1024))]
        memory_mb: Option<u64>,
    },
}

/// `fen datastore ...`
#[derive(Debug, Subcommand)]
pub enum DatastoreCommand {
    /// Configure where model data is shared (writes .fen/datastore.yaml last).
    Setup {
        #[command(subcommand)]
        command: SetupCommand,
    },
    /// Type, location, health, capabilities and locks of the datastore.
    Status,
    /// Pull then push model data (structural without --model).
    Sync {
        /// Only pull (remote to local).
        #[arg(long, conflicts_with = "push")]
        pull: bool,
        /// Only push (local to remote).
        #[arg(long)]
        push: bool,
        /// Sync only this model (repeatable); takes per-model locks.
        #[arg(long = "model", value_name = "NAME")]
        models: Vec<String>,
        /// Time limit of each pull or push in ms (default FEN_DATASTORE_SYNC_TIMEOUT_MS or 300000).
        #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=21_600_000))]
        timeout_ms: Option<u64>,
    },
    /// Datastore locks.
    Lock {
        #[command(subcommand)]
        command: LockCommand,
    },
}

/// `fen datastore setup ...`
#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Keep model data in .fen/data only (no migration).
    Local,
    /// Share model data through a directory (NFS, another disk).
    Filesystem {
        /// The shared directory (created if absent).
        #[arg(long, value_name = "DIR")]
        path: PathBuf,
        /// Do not push the local data to it first.
        #[arg(long)]
        skip_push: bool,
    },
    /// Share model data through an S3 bucket (credentials from AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY or AWS_PROFILE, never written to the repo).
    S3 {
        /// The bucket.
        #[arg(long, value_name = "NAME")]
        bucket: String,
        /// Key prefix inside the bucket (default: the bucket's root).
        #[arg(long, value_name = "PREFIX")]
        prefix: Option<String>,
        /// A custom endpoint, e.g. http://127.0.0.1:9000 (default: AWS).
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// The region (default us-east-1).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// Do not push the local data to it first.
        #[arg(long)]
        skip_push: bool,
    },
    /// Share model data through a datastore extension type.
    Extension {
        /// The datastore type, e.g. @acme/packed-store.
        #[arg(value_name = "TYPE")]
        type_name: String,
        /// The remote directory.
        #[arg(long, value_name = "DIR")]
        remote: PathBuf,
        /// The extension's config as a JSON object.
        #[arg(long, value_name = "JSON")]
        config: Option<String>,
        /// Do not push the local data to it first.
        #[arg(long)]
        skip_push: bool,
    },
}

/// `fen datastore lock ...`
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Every datastore lock: key, holder, pid, host, age, ttl, stale.
    Status,
    /// Delete a lock whoever holds it (the global lock, or --model's).
    Release {
        /// Required: releasing someone else's lock is deliberate.
        #[arg(long, required = true)]
        force: bool,
        /// The model whose lock to release (default: the global lock).
        #[arg(long, value_name = "NAME")]
        model: Option<String>,
    },
}

/// `fen model type ...`
#[derive(Debug, Subcommand)]
pub enum ModelTypeCommand {
    /// Search types by name or description (no argument lists every type).
    Search {
        /// Text to look for.
        #[arg(default_value = "")]
        query: String,
        /// Search this kind instead of model types.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Describe a model type with its merged methods.
    Describe {
        /// The type.
        #[arg(value_name = "TYPE")]
        type_name: String,
    },
}

/// `fen doctor ...`
#[derive(Debug, Subcommand)]
pub enum DoctorCommand {
    /// Reconcile the catalog with the disk and report.
    Extensions(DoctorArgs),
}

/// Flags of `fen doctor extensions`.
#[derive(Debug, ClapArgs)]
pub struct DoctorArgs {
    /// List every source.
    #[arg(long)]
    pub verbose: bool,
    /// Rebuild every bundle and re-validate every export.
    #[arg(long)]
    pub rescan: bool,
    /// Apply reconcile even when the guardrail would abort it.
    #[arg(long)]
    pub force_reconcile: bool,
    /// Plan repairs (prune retired rows, evict orphan bundles).
    #[arg(long)]
    pub repair: bool,
    /// With --repair: carry the plan out.
    #[arg(long, requires = "repair")]
    pub apply: bool,
}

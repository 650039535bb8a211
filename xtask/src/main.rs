//! `cargo xtask`: the project's maintenance tasks (STYLE §7): `tidy`, `migrate`,
//! `bench`, `stress`.

mod bench;
mod bench_catalog;
mod fixture;
mod man;
mod migrate;
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::fen_build::workspace_root;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "fen maintenance tasks")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Check the layer rules: domain and lifecycle dependencies, module docs.
    Tidy,
    /// Generate fen's man pages into target/man/ (clap_mangen).
    Man,
    /// Measure the performance targets of spec 30 §8.3 on a release build of fen.
    Bench(BenchArgs),
    /// The cross-process lifecycle stress harness of spec 20 §16 (and its crash modes).
    Stress(xtask::stress::StressArgs),
    /// Apply pending catalog migrations to a catalog file (under the lock beside it)
    /// and verify its schema.
    Migrate {
        /// The catalog file (e.g. `.fen/_extension_catalog.db`).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,
        /// Print the pending versions and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Exit non-zero when a goal is missed.
    #[arg(long)]
    check: bool,
    /// Fewer runs per measure (a smoke test of the bench, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Run only the catalog micro-benchmarks (no fen build, no CLI runs).
    #[arg(long)]
    catalog_only: bool,
    /// Run only the npm package rows (issue 17): first index by package name vs by
    /// relative path, warm search with vs without node_modules.
    #[arg(long, conflicts_with = "catalog_only")]
    npm_only: bool,
    /// Run only the datastore rows (issues 10 and 12): a trivial method run on local,
    /// filesystem and s3 (moto_server) stores holding 1 and 1 000 other models.
    #[arg(long, conflicts_with_all = ["catalog_only", "npm_only"])]
    datastore_only: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Generate a fen repo of N model types, each importing a shared helper (F116 is
    /// `--types 116`).
    Fixture {
        /// Number of model types.
        #[arg(long, value_name = "N")]
        types: usize,
        /// Put the types in pulled extensions (one per 10 types) with a lockfile,
        /// instead of local sources.
        #[arg(long)]
        pulled: bool,
        /// Extension sources adding a method to each type.
        #[arg(long, value_name = "K", default_value_t = 0)]
        extensions_per_type: usize,
        /// The repo to create: absent, empty, or fresh from `fen init`.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.task {
        Task::Tidy => run_tidy(),
        Task::Man => man::run(&workspace_root()).map(|_| ()),
        Task::Bench(args) => run_bench(args),
        Task::Migrate { db, dry_run } => migrate::run(&db, dry_run),
        Task::Stress(args) => xtask::stress::run(args).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_tidy() -> Result<(), String> {
    let problems = tidy::check(&workspace_root())?;
    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("{problem}");
    }
    Err(format!("tidy found {} problem(s)", problems.len()))
}

fn run_bench(args: BenchArgs) -> Result<(), String> {
    if let Some(BenchCommand::Fixture {
        types,
        pulled,
        extensions_per_type,
        dir,
    }) = args.command
    {
        let placement = match pulled {
            true => fixture::Placement::Pulled,
            false => fixture::Placement::Local,
        };
        let spec = fixture::FixtureSpec {
            n_types: types,
            placement,
            extensions_per_type,
        };
        return fixture::run(&dir, &spec);
    }
    let gate = match args.check {
        true => bench::Gate::Check,
        false => bench::Gate::Report,
    };
    let effort = match args.quick {
        true => bench::Effort::Quick,
        false => bench::Effort::Full,
    };
    if args.npm_only {
        return bench::run_npm(&workspace_root(), gate, effort);
    }
    if args.datastore_only {
        return bench::run_datastores(&workspace_root(), gate, effort);
    }
    let catalog = bench_catalog::run(args.check);
    if args.catalog_only {
        return catalog;
    }
    let cli = bench::run(&workspace_root(), gate, effort);
    catalog.and(cli)
}

//! Subcommands of `spore`, one module each: `record` (check, sign, export), `run`, and the
//! queries (`status`, `frontier`, `graph`). Every command honours `--data-dir`.

mod query;
mod record;
mod run;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "spore", version, about = "A Spore Mesh node")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--data-dir`, shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDir {
    /// Node data directory (identity, store, known peers).
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Check, sign and export experiment records.
    Record {
        #[command(subcommand)]
        command: record::RecordCommand,
    },
    /// Run a node in the foreground (Ctrl-C stops it cleanly).
    Run(run::RunArgs),
    /// The node's identity, store and (when it runs) peers.
    Status(query::StatusArgs),
    /// The best unbeaten results, best first.
    Frontier(query::FrontierArgs),
    /// The research DAG.
    Graph(query::GraphArgs),
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".spore")
}

/// Opens `FILE`, or standard input for `-`.
fn open_input(file: &str) -> anyhow::Result<Box<dyn BufRead>> {
    if file == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
    Ok(Box::new(BufReader::new(f)))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("spore {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Record { command } => record::run(command),
        Command::Run(args) => run::run(args),
        Command::Status(args) => query::status(args),
        Command::Frontier(args) => query::frontier(args),
        Command::Graph(args) => query::graph(args),
    }
}

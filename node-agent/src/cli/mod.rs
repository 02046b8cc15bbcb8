//! Subcommands of `spore`, the Python CLI's and ours: `run` and the daemon (`start`, `stop`,
//! `log`), queries (`status`, `frontier`, `graph`, `info`, `peer`), settings (`set`, `connect`,
//! `disconnect`, `init`, `clean`), `record` (check, sign, export), `import autoresearch`, `task list|show|use|create`. Every
//! command honours
//! `--data-dir`.

mod admin;
mod daemon;
mod data;
mod exec;
mod explorer;
mod import;
mod jail;
mod logging;
mod metric;
mod node_config;
mod peers;
mod query;
mod record;
mod run;
mod set;
mod task;

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
    /// How logs are written: text, or one JSON object per line.
    #[arg(long, global = true, env = "SPORE_LOG_FORMAT", value_enum, default_value_t)]
    log_format: logging::LogFormat,
}

/// `--data-dir`, shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDir {
    /// Node data directory (identity, store, known peers).
    #[arg(short = 'd', long, default_value_os_t = default_data_dir())]
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
    /// Run a node in the foreground: gossip and research (Ctrl-C stops it cleanly).
    Run(run::RunArgs),
    /// Run one training in a pod and report it through the termination message.
    Exec(exec::ExecArgs),
    /// Run a node in the background (same options as `run`).
    Start(daemon::StartArgs),
    /// Stop the background node.
    Stop(daemon::StopArgs),
    /// Print the background node's log.
    Log(daemon::LogArgs),
    /// Create the identity, store and config.
    Init(admin::InitArgs),
    /// Node id, listen address, peers, experiments, best result.
    Info(admin::InfoArgs),
    /// Delete the data directory (asks first).
    Clean(admin::CleanArgs),
    /// The web UI over this data directory's store (beside a running node, or alone).
    Explorer(explorer::ExplorerArgs),
    /// Configure the LLM that proposes experiments.
    Set(set::SetArgs),
    /// Add a peer to the configuration.
    Connect(peers::AddressArgs),
    /// Remove a peer from the configuration.
    Disconnect(peers::AddressArgs),
    /// Configured and discovered peers.
    Peer(peers::PeerArgs),
    /// The node's identity, store and (when it runs) peers.
    Status(query::StatusArgs),
    /// The best unbeaten results, best first.
    Frontier(query::FrontierArgs),
    /// The research DAG.
    Graph(query::GraphArgs),
    /// The task manifests this node keeps (sporemesh 0.5.0 and later).
    Task {
        #[command(subcommand)]
        command: task::TaskCommand,
    },
    /// The climbmix shards of this machine: fetch, export and import them (air-gapped labs).
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Bring experiments run elsewhere into the graph as this node's records.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
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

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    logging::choose(cli.log_format);
    match cli.command {
        Command::Version => {
            println!("spore {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Record { command } => record::run(command),
        Command::Run(args) => run::run(args),
        Command::Exec(args) => exec::exec(args),
        Command::Start(args) => daemon::start(args),
        Command::Stop(args) => daemon::stop(args),
        Command::Log(args) => daemon::log(args),
        Command::Init(args) => admin::init(args),
        Command::Info(args) => admin::info(args),
        Command::Clean(args) => admin::clean(args),
        Command::Explorer(args) => explorer::run(args),
        Command::Set(args) => set::set(args),
        Command::Connect(args) => peers::connect(args),
        Command::Disconnect(args) => peers::disconnect(args),
        Command::Peer(args) => peers::peer(args),
        Command::Status(args) => query::status(args),
        Command::Frontier(args) => query::frontier(args),
        Command::Graph(args) => query::graph(args),
        Command::Import { command } => import::run(command),
        Command::Data { command } => data::run(command),
        Command::Task { command } => task::run(command),
    }
}

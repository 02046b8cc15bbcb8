//! `spore init`, `spore info`, `spore clean`: the data directory itself.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::{DataDir, node_config};

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also delete the prepared training data (the data cache).
    #[arg(long)]
    all: bool,
    /// Do not ask.
    #[arg(short = 'y', long)]
    yes: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

/// Creates the identity, the store and artifact directories and a default config.
pub(super) fn ensure_initialized(data_dir: &Path) -> anyhow::Result<spore_spec::Identity> {
    std::fs::create_dir_all(data_dir.join("db"))?;
    std::fs::create_dir_all(data_dir.join("artifact"))?;
    let identity = spore_agent::identity_file::load_or_create(data_dir)?;
    if !node_config::path(data_dir).exists() {
        node_config::save(data_dir, &node_config::NodeFileConfig::default_for(data_dir))?;
    }
    Ok(identity)
}

pub fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir.data_dir;
    let identity = ensure_initialized(dir)?;
    println!("node {}… initialised in {}", &identity.node_id()[..16], dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn info(args: InfoArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir.data_dir;
    let identity = ensure_initialized(dir)?;
    let config = node_config::load(dir)?;
    let store = spore_agent::store::DagStore::open(&super::run::store_path(dir))?;
    let counts = store.counts()?;
    let best = store.frontier(None, 1)?.into_iter().next();
    if args.json {
        let best = best.map(|b| serde_json::json!({"id": b.id, "val_bpb": b.val_bpb}));
        println!(
            "{}",
            serde_json::json!({
                "node_id": identity.node_id(), "listen": format!("{}:{}", config.host, config.port),
                "data_dir": dir, "configured_peers": config.peer.len(), "experiments": counts.total, "best": best,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("node id:     {}", identity.node_id());
    println!("listen:      {}:{}", config.host, config.port);
    println!("data dir:    {}", dir.display());
    println!("peers:       {} configured", config.peer.len());
    println!("experiments: {}", counts.total);
    match best {
        Some(b) => println!("best:        {} val_bpb={:.6}", &b.id[..8.min(b.id.len())], b.val_bpb),
        None => println!("best:        -"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The prepared-data cache `prepare.py` uses.
fn data_cache() -> PathBuf {
    std::env::var_os("SPORE_DATA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/spore/data"))
}

pub fn clean(args: CleanArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir.data_dir;
    let mut targets: Vec<PathBuf> = vec![dir.clone()];
    if args.all {
        targets.push(data_cache());
    }
    let targets: Vec<PathBuf> = targets.into_iter().filter(|t| t.exists()).collect();
    if targets.is_empty() {
        println!("nothing to delete");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        println!("This deletes, with the node's identity and every record it holds:");
        for t in &targets {
            println!("  {}", t.display());
        }
        print!("Continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing deleted");
            return Ok(ExitCode::FAILURE);
        }
    }
    for t in &targets {
        std::fs::remove_dir_all(t).with_context(|| format!("delete {}", t.display()))?;
        println!("deleted {}", t.display());
    }
    Ok(ExitCode::SUCCESS)
}

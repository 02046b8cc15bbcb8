//! `spore connect`, `spore disconnect`, `spore peer`: the configured peer list in
//! `config.toml`, and the peers discovered through PEX (`known_peer`).

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use super::{DataDir, node_config};

#[derive(Debug, Args)]
pub struct AddressArgs {
    /// `host:port`
    address: String,
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct PeerArgs {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

fn checked(address: &str) -> anyhow::Result<String> {
    match spore_agent::protocol::parse_address(address) {
        Some(_) => Ok(address.trim().to_string()),
        None => bail!("{address:?} is not host:port"),
    }
}

pub fn connect(args: AddressArgs) -> anyhow::Result<ExitCode> {
    let address = checked(&args.address)?;
    let dir = &args.data_dir.data_dir;
    let mut config = node_config::load(dir)?;
    if config.peer.contains(&address) {
        println!("{address} is already a configured peer");
    } else {
        config.peer.push(address.clone());
        node_config::save(dir, &config)?;
        println!("added {address}; a running node dials it after a restart");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn disconnect(args: AddressArgs) -> anyhow::Result<ExitCode> {
    let address = args.address.trim().to_string();
    let dir = &args.data_dir.data_dir;
    let mut config = node_config::load(dir)?;
    let before = config.peer.len();
    config.peer.retain(|p| p != &address);
    if config.peer.len() == before {
        bail!("{address} is not a configured peer");
    }
    node_config::save(dir, &config)?;
    println!("removed {address}");
    Ok(ExitCode::SUCCESS)
}

pub fn peer(args: PeerArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.data_dir.data_dir;
    let configured = node_config::load(dir)?.peer;
    let known = std::fs::read_to_string(dir.join("known_peer")).unwrap_or_default();
    let discovered: Vec<&str> =
        known.lines().map(str::trim).filter(|l| !l.is_empty() && !configured.iter().any(|c| c == l)).collect();
    if args.json {
        println!("{}", serde_json::json!({"configured": configured, "discovered": discovered}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("Configured ({}):", configured.len());
    for p in &configured {
        println!("  {p}");
    }
    println!("Discovered (via PEX) ({}):", discovered.len());
    for p in &discovered {
        println!("  {p}");
    }
    Ok(ExitCode::SUCCESS)
}

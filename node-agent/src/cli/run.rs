//! `spore run`: a node in the foreground.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use spore_agent::node::{self, NodeConfig};
use tokio_util::sync::CancellationToken;

use super::DataDir;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Gossip port.
    #[arg(long, default_value_t = 7470)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// A peer to dial and keep dialing, `host:port` (repeatable).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Listen only; dial nobody.
    #[arg(long)]
    genesis: bool,
    /// Do not train: a pure gossip node.
    #[arg(long)]
    no_train: bool,
    /// Do not serve the explorer web UI.
    #[arg(long)]
    no_explorer: bool,
    /// Never dial the public bootstrap peer.
    #[arg(long)]
    no_bootstrap: bool,
    #[command(flatten)]
    data_dir: DataDir,
}

/// The store file under a data directory.
pub fn store_path(data_dir: &Path) -> PathBuf {
    NodeConfig::new(data_dir.to_path_buf()).store_path()
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if !args.no_train {
        bail!("the research loop is not built yet (issue 5): run a gossip node with --no-train");
    }
    for peer in &args.peers {
        if spore_agent::protocol::parse_address(peer).is_none() {
            bail!("--peer {peer:?} is not host:port");
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut config = NodeConfig::new(args.data_dir.data_dir);
    config.port = args.port;
    config.host = args.host;
    config.peers = args.peers;
    config.genesis = args.genesis;
    config.bootstrap = !args.no_bootstrap;
    std::fs::create_dir_all(&config.data_dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            on_signal.cancel();
        });
        node::run(config, shutdown, None).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

//! `spore explorer`: serves the explorer over a data directory's store. Beside a running node
//! (another process) it shows what the node stores as it stores it; without one it shows the
//! stored DAG. `spore run` serves the same explorer itself (unless `--no-explorer`).

use std::process::ExitCode;

use clap::Args;
use spore_agent::explorer::{self, ExplorerConfig};
use tokio_util::sync::CancellationToken;

use super::{DataDir, query};

/// Where the explorer listens (shared by `spore run` and `spore explorer`).
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Explorer port [default: 8470] (0 picks a free one). When left to the default and taken
    /// (another node on this machine), `spore run` goes on without its explorer.
    #[arg(short = 'w', long)]
    pub web_port: Option<u16>,
    /// Address the explorer listens on (loopback unless told otherwise; it has no login).
    #[arg(long, default_value = "127.0.0.1")]
    pub web_host: String,
}

#[derive(Debug, Args)]
pub struct ExplorerArgs {
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    data_dir: DataDir,
}

/// Binds the explorer and logs where it is; a non-loopback address gets a warning.
pub async fn bind(web: &WebArgs) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = explorer::bind(&web.web_host, web.web_port.unwrap_or(explorer::DEFAULT_PORT)).await?;
    let address = listener.local_addr()?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "the explorer listens beyond loopback: anyone who can reach it can read the DAG");
    }
    tracing::info!(url = %format!("http://{address}/"), "explorer listening");
    Ok(listener)
}

/// For `spore run`: the explorer's listener, or none when the default port is taken (the node
/// matters more than its web UI; a port given on the command line must be free).
pub async fn bind_for_node(web: &WebArgs) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match bind(web).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if web.web_port.is_none() => {
            tracing::warn!("no explorer for this node: {e:#} (pass --web-port to pick another port)");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

pub fn run(args: ExplorerArgs) -> anyhow::Result<ExitCode> {
    // Fail on a wrong --data-dir first, as the other read commands do.
    query::open_store(&args.data_dir)?;
    super::logging::init();
    let data_dir = args.data_dir.data_dir.clone();
    let config = ExplorerConfig::new(&data_dir, &super::run::store_path(&data_dir));
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = bind(&args.web).await?;
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            super::run::wait_for_signal().await;
            on_signal.cancel();
        });
        explorer::serve(listener, config, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

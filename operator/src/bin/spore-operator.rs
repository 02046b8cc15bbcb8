//! `spore-operator run`: the controllers, against the current kubeconfig or in-cluster config.
//! Today: the Experiment controller (issue 8 adds the SporeNode controller, leader election,
//! metrics and probes).

use std::sync::Arc;

use clap::{Parser, Subcommand};
use spore_operator::experiment::controller::{self, Context};
use spore_operator::experiment::pod::PodSettings;

#[derive(Debug, Parser)]
#[command(name = "spore-operator", version, about = "Kubernetes controllers for Spore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controllers in the foreground.
    Run {
        /// Image of the training pods (it must provide `spore exec`).
        #[arg(long, default_value = "ghcr.io/spore-mesh/spore:0.1.0")]
        trainer_image: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let Command::Run { trainer_image } = Cli::parse().command;
    let client = kube::Client::try_default().await?;
    let ctx = Arc::new(Context { client, settings: PodSettings { image: trainer_image } });
    tokio::select! {
        _ = controller::run(ctx) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(())
}

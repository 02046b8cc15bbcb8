//! `spore-testenv`: start, inspect and stop real test services from the shell.
//!
//! ```text
//! spore-testenv up --dir D [--k8s] [--gpus N] [--real-node] [--postgres]
//!                                                            start; writes D/env.sh
//! spore-testenv down --dir D                                 stop everything D started
//! spore-testenv stop --dir D SERVICE                         stop one service (fault tests)
//! spore-testenv start --dir D SERVICE                        start it again, same port
//! spore-testenv status --dir D                               list services and pids
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spore_tests::testenv::{TestEnv, TestEnvOptions};

#[derive(Debug, Parser)]
#[command(name = "spore-testenv", about = "Real Kubernetes and PostgreSQL for Spore's tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the requested services and write D/env.sh.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// etcd, apiserver, controller-manager, scheduler, kwok and fake GPU nodes.
        #[arg(long)]
        k8s: bool,
        /// GPUs on fake nodes, four per node.
        #[arg(long, default_value_t = 16)]
        gpus: u32,
        /// With --k8s: a real kubelet and containerd node running the project's images
        /// (scripts/images.sh build --profile dev; as root).
        #[arg(long, requires = "k8s")]
        real_node: bool,
        /// A fresh PostgreSQL cluster.
        #[arg(long)]
        postgres: bool,
    },
    /// Stop everything the environment in D started.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop one service.
    Stop {
        #[arg(long)]
        dir: PathBuf,
        service: String,
    },
    /// Start one stopped service again.
    Start {
        #[arg(long)]
        dir: PathBuf,
        service: String,
    },
    /// Show the services and whether they run.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn run(cli: Cli) -> Result<(), spore_tests::testenv::TestEnvError> {
    match cli.command {
        Command::Up { dir, k8s, gpus, real_node, postgres } => {
            let started = std::time::Instant::now();
            let options = TestEnvOptions { dir, kubernetes: k8s, gpus, real_node, postgres, postgres_tls: false };
            let env = TestEnv::up(&options)?;
            println!(
                "ready in {:.1} s; source {}",
                started.elapsed().as_secs_f64(),
                env.dir().join("env.sh").display()
            );
            // Keep the services running after this process exits.
            std::mem::forget(env);
        }
        Command::Down { dir } => TestEnv::load(&dir)?.down(),
        Command::Stop { dir, service } => TestEnv::load(&dir)?.stop_service(&service)?,
        Command::Start { dir, service } => TestEnv::load(&dir)?.start_service(&service)?,
        Command::Status { dir } => {
            for (name, running, pid) in TestEnv::load(&dir)?.status() {
                let pid = pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
                println!("{name:20} {:8} {pid}", if running { "running" } else { "stopped" });
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spore-testenv: {e}");
            ExitCode::FAILURE
        }
    }
}

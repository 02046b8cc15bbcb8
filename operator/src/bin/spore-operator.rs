//! `spore-operator run`: the controllers, against the current kubeconfig or in-cluster config,
//! with leader election on a Lease, `/healthz`, `/readyz` and `/metrics`, and a clean stop on
//! SIGTERM or Ctrl-C, and with `--mirror-database-url` the mirror of every SporeNode's agent
//! into Postgres (run by the leader only). `spore-operator mirror`: one agent's records into
//! Postgres, for standalone labs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use spore_operator::experiment::controller::Context;
use spore_operator::experiment::pod::PodSettings;
use spore_operator::leader::{LeaseLock, lead};
use spore_operator::mirror::fleet::{FleetConfig, run as mirror_fleet};
use spore_operator::serve::{Metrics, serve};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "spore-operator", version, about = "Kubernetes controllers for Spore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How logs are written: text, or one JSON object per line (for a cluster's log pipeline).
    #[arg(long, global = true, env = "SPORE_LOG_FORMAT", value_enum, default_value_t)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controllers in the foreground.
    Run(Box<RunArgs>),
    /// Mirror one node-agent's records into Postgres (for standalone labs).
    Mirror(MirrorArgs),
}

#[derive(Debug, clap::Args)]
struct MirrorArgs {
    /// The agent's gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:7471")]
    agent: String,
    /// Postgres connection URL (or the DATABASE_URL environment variable).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Records per transaction.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// The longest pause between retries, in seconds.
    #[arg(long, default_value_t = 10)]
    max_backoff_seconds: u64,
    /// Where `/metrics` (and `/healthz`) are served.
    #[arg(long, default_value = "127.0.0.1:8082")]
    metrics_address: SocketAddr,
    /// File with the agent's gRPC bearer token (its `--grpc-token-file`).
    #[arg(long)]
    agent_token_file: Option<std::path::PathBuf>,
    /// The lab's CA for the database's certificate (PEM), beside the system's roots.
    #[arg(long, env = "SPORE_DATABASE_CA_FILE")]
    database_ca_file: Option<std::path::PathBuf>,
    /// A backlog of at least this many records, and more than the table holds, is written with
    /// the table's secondary indexes dropped and built again at the end (0: never).
    #[arg(long, default_value_t = LEAN_BACKFILL_MIN)]
    lean_backfill_min: u64,
}

/// The smallest backlog written leanly by default: below it, building six indexes over the
/// table costs about what maintaining them saves.
const LEAN_BACKFILL_MIN: u64 = 100_000;

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Image of node-agents (`spore`), for SporeNodes that name none.
    #[arg(long, default_value = "ghcr.io/spore-mesh/spore:0.1.0")]
    agent_image: String,
    /// Image of training pods (`spore exec`, `spore-eval`, Python and torch).
    #[arg(long, default_value = "ghcr.io/spore-mesh/spore-trainer:0.1.0")]
    training_image: String,
    /// CPU of each training step where the Experiment names none (request and limit).
    #[arg(long, default_value = spore_operator::experiment::pod::TRAINING_CPU, value_parser = quantity_or_none)]
    training_cpu: String,
    /// Memory of each training step where the Experiment names none (request and limit; a
    /// candidate that takes more is killed).
    #[arg(long, default_value = spore_operator::experiment::pod::TRAINING_MEMORY, value_parser = quantity_or_none)]
    training_memory: String,
    /// Local disk of each training step where the Experiment names none (request and limit;
    /// empty: none, for nodes that report no ephemeral storage). The same for the two above.
    #[arg(long, default_value = spore_operator::experiment::pod::TRAINING_EPHEMERAL_STORAGE, value_parser = quantity_or_none)]
    training_ephemeral_storage: String,
    /// Seconds a training pod may run beyond its Experiment's budget: start-up, the evaluation
    /// (which the budget does not include) and reporting. The kubelet ends the pod then.
    #[arg(long, default_value_t = spore_operator::experiment::pod::DEADLINE_MARGIN_SECONDS,
          value_parser = clap::value_parser!(i64).range(30..=86_400))]
    training_deadline_margin: i64,
    /// A Secret (in the pod's namespace) for pulling those images (repeatable).
    #[arg(long = "image-pull-secret")]
    image_pull_secrets: Vec<String>,
    /// Where `/metrics` is served.
    #[arg(long, default_value = "127.0.0.1:8080")]
    metrics_address: SocketAddr,
    /// Where `/healthz` and `/readyz` are served.
    #[arg(long, default_value = "127.0.0.1:8081")]
    health_address: SocketAddr,
    /// Run only while holding the Lease `spore-operator` (for more than one replica).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (in a pod: its own namespace).
    #[arg(long, default_value = "default")]
    lease_namespace: String,
    /// How long a leader's claim lasts without renewal.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Mirror the records of every SporeNode's agent into this Postgres (URL or libpq string);
    /// no mirror when unset.
    #[arg(long, env = "SPORE_MIRROR_DATABASE_URL", hide_env_values = true)]
    mirror_database_url: Option<String>,
    /// The lab's CA for the mirror database's certificate (PEM), beside the system's roots.
    #[arg(long, env = "SPORE_MIRROR_DATABASE_CA_FILE")]
    mirror_database_ca_file: Option<std::path::PathBuf>,
    /// The agents' gRPC URL; `{name}` and `{namespace}` are the SporeNode's.
    #[arg(long, default_value_t = spore_operator::mirror::fleet::default_agent_url_template())]
    mirror_agent_url: String,
    /// Records per mirror transaction.
    #[arg(long, default_value_t = 5000)]
    mirror_batch: usize,
    /// A mirror backlog of at least this many records (and more than the table holds) is
    /// written with the secondary indexes deferred (0: never).
    #[arg(long, default_value_t = LEAN_BACKFILL_MIN)]
    mirror_lean_backfill_min: u64,
    /// Watch and act in this namespace only (a namespaced install, whose RBAC is a Role there);
    /// default: every namespace.
    #[arg(long)]
    watch_namespace: Option<String>,
    /// A SporeNode's `spec.image` must start with this (repeatable; none given: any image).
    #[arg(long = "allowed-image-prefix", value_name = "PREFIX")]
    allowed_image_prefixes: Vec<String>,
    /// Mirror only the SporeNodes of this namespace (repeatable; default: every namespace).
    #[arg(long = "mirror-namespace", value_name = "NAMESPACE")]
    mirror_namespaces: Vec<String>,
    /// Follow a SporeNode's `sporemesh.io/mirror-agent-url` annotation (an agent outside the
    /// cluster). Off by default: whoever may edit a SporeNode could point the database anywhere.
    #[arg(long)]
    mirror_agent_url_annotation: bool,
    /// Create a training pod only when the nodes it may run on have its GPUs free, by the
    /// operator's count of its own training pods; otherwise the Experiment waits `Queued` with no
    /// pod. Turn off where GPU nodes are added on demand (an autoscaler acts on pending pods).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    gpu_admission: bool,
}

/// A `--training-*` value: a Kubernetes quantity, or empty for none.
fn quantity_or_none(value: &str) -> Result<String, String> {
    if value.is_empty() || spore_operator::experiment::pod::is_quantity(value) {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a Kubernetes quantity (e.g. 4, 500m, 32Gi), nor empty for none"))
    }
}

fn identity() -> String {
    std::env::var("POD_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await.context("no Kubernetes configuration")?;
    let metrics = Arc::new(Metrics::default());
    for address in [args.metrics_address, args.health_address] {
        let listener =
            tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
        tokio::spawn(serve(listener, metrics.clone()));
    }
    let mut settings = PodSettings::new(args.agent_image).with_training_image(args.training_image);
    settings.image_pull_secrets = args.image_pull_secrets;
    settings.deadline_margin_seconds = args.training_deadline_margin;
    // An empty value asks for none (a cluster whose nodes report no ephemeral storage).
    let given = |value: String| (!value.is_empty()).then_some(value);
    settings.training_resources = spore_crds::common::TrainingResources {
        cpu: given(args.training_cpu),
        memory: given(args.training_memory),
        ephemeral_storage: given(args.training_ephemeral_storage),
    };
    let mut ctx = Context::new(client.clone(), settings, metrics.clone());
    ctx.gpu_admission = args.gpu_admission;
    ctx.watch_namespace = args.watch_namespace.clone();
    ctx.allowed_image_prefixes = args.allowed_image_prefixes;
    let ctx = Arc::new(ctx);
    // A namespaced install mirrors its own namespace's SporeNodes (it may list no others).
    let mirror_namespaces = match &args.watch_namespace {
        Some(namespace) if args.mirror_namespaces.is_empty() => vec![namespace.clone()],
        _ => args.mirror_namespaces,
    };
    let (client_for_fleet, metrics_for_fleet) = (client.clone(), metrics.clone());
    metrics.ready.store(true, Ordering::SeqCst);
    let fleet = args.mirror_database_url.map(|database_url| FleetConfig {
        database_url,
        agent_url_template: args.mirror_agent_url,
        batch: args.mirror_batch.max(1),
        max_backoff: Duration::from_secs(10),
        resync: Duration::from_secs(5),
        namespaces: mirror_namespaces,
        database_ca: args.mirror_database_ca_file,
        url_annotation: args.mirror_agent_url_annotation,
        lean_backfill_min: args.mirror_lean_backfill_min,
    });
    let work = async move {
        match fleet {
            Some(fleet) => {
                tokio::join!(
                    spore_operator::run_controllers(ctx),
                    mirror_fleet(client_for_fleet, fleet, metrics_for_fleet)
                );
            }
            None => spore_operator::run_controllers(ctx).await,
        }
    };
    let outcome = if args.leader_election {
        let leases = kube::Api::<Lease>::namespaced(client, &args.lease_namespace);
        let lock =
            LeaseLock::new(leases, "spore-operator", &identity(), Duration::from_secs(args.lease_duration_seconds));
        tokio::select! {
            result = lead(lock, metrics.leader.clone(), work) => result.map_err(anyhow::Error::from),
            _ = shutdown_signal() => Ok(()),
        }
    } else {
        metrics.leader.store(true, Ordering::SeqCst);
        tokio::select! {
            _ = work => Ok(()),
            _ = shutdown_signal() => Ok(()),
        }
    };
    tracing::info!("operator stopped");
    outcome
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    match cli.log_format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.init(),
    }
    match cli.command {
        Command::Run(args) => run(*args).await,
        Command::Mirror(args) => mirror(args).await,
    }
}

/// A token file's contents, trimmed; an empty file is an error (it would send `Bearer ` and be
/// refused forever).
fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "the token file {} is empty", path.display());
    Ok(token.to_string())
}

async fn mirror(args: MirrorArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_address))?;
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    metrics.ready.store(true, Ordering::SeqCst);
    tokio::spawn(serve(listener, metrics.clone()));
    let config = spore_operator::mirror::MirrorConfig {
        metrics: metrics.mirrors.get(&args.agent),
        agent: args.agent,
        database_url: args.database_url,
        batch: args.batch.max(1),
        max_backoff: Duration::from_secs(args.max_backoff_seconds.max(1)),
        agent_token: args.agent_token_file.as_deref().map(read_token).transpose()?,
        cursor_key: None,
        database_ca: args.database_ca_file,
        lean_backfill_min: args.lean_backfill_min,
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    spore_operator::mirror::run(config, shutdown).await?;
    tracing::info!("mirror stopped");
    Ok(())
}

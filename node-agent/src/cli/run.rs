//! `spore run`: a node in the foreground — gossip, and unless `--no-train` the research loop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use spore_agent::cluster::KubernetesExecutor;
use spore_agent::cluster::workspace as cluster_workspace;
use spore_agent::node::{self, NodeConfig};
use spore_agent::research::artifacts::ArtifactStore;
use spore_agent::research::executor::{Executor, ExecutorError, RunOutcome, RunSpec};
use spore_agent::research::local::{LocalExecutor, Measure};
use spore_agent::research::noise::NoiseBook;
use spore_agent::research::proposer::llm::LlmProposer;
use spore_agent::research::proposer::{Proposer, config as llm_config};
use spore_agent::research::research_loop::{Research, ResearchConfig};
use spore_agent::research::task_scope::check_fits;
use spore_agent::research::workspace::Workspace;
use spore_agent::store::MeasuredBy;
use spore_agent::verification::service::{Rerun, Verifier, VerifierConfig};
use tokio_util::sync::CancellationToken;

use super::jail::JailArgs;
use super::metric::MetricArgs;
use super::{DataDir, node_config};

/// How long an LLM request may take.
const LLM_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Gossip port (default: config.toml's, else 7470).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Address to listen on (default: config.toml's, else 0.0.0.0).
    #[arg(long)]
    host: Option<String>,
    /// A peer to dial and keep dialing, `host:port` (repeatable; replaces config.toml's list).
    #[arg(short = 'c', long = "peer")]
    peers: Vec<String>,
    /// Dial nobody, and start the research with a baseline of the workspace's train.py.
    #[arg(long)]
    genesis: bool,
    /// Do not train: a pure gossip node.
    #[arg(long)]
    no_train: bool,
    /// A public gossip peer, `host:port` (repeatable): this node becomes the lab's bridge, and
    /// only these connections are public (every other peer belongs to the lab).
    #[arg(long = "public-peer", value_name = "HOST:PORT")]
    public_peers: Vec<String>,
    /// Which records go to public peers: none, own (not imported from the public mesh), all.
    #[arg(long, default_value = "own", requires = "public_peers")]
    export: spore_agent::protocol::Export,
    /// Which public records come in: all, frontier (keeps only), none.
    #[arg(long, default_value = "all", requires = "public_peers")]
    import: spore_agent::protocol::Import,
    /// Records accepted per second from each public peer.
    #[arg(long, default_value_t = 100.0, requires = "public_peers")]
    public_records_per_second: f64,
    /// Largest record accepted from a public peer, in bytes.
    #[arg(long, default_value_t = 256 * 1024, requires = "public_peers")]
    public_record_bytes: usize,
    /// Past this size (MiB) the store takes no more records from peers; this node's own still
    /// go in. 0: no quota.
    #[arg(long, default_value_t = 16 * 1024)]
    store_max_mb: u64,
    /// Past this size (MiB) of the artifact directory, code fetched from peers is not stored.
    /// 0: no quota.
    #[arg(long, default_value_t = 4 * 1024)]
    artifacts_max_mb: u64,
    /// Publish the finished Experiments of this SporeNode (the operator's runs), in-cluster or
    /// through KUBECONFIG; unless --no-train, the research loop's runs are Experiments of it
    /// (the operator trains them on GPU nodes), so this machine needs no torch.
    #[arg(long, value_name = "SPORENODE")]
    kubernetes_node: Option<String>,
    /// Namespace of those Experiments (default: this pod's namespace, else `default`).
    #[arg(long, requires = "kubernetes_node")]
    kubernetes_namespace: Option<String>,
    /// Do not serve the explorer web UI.
    #[arg(long)]
    no_explorer: bool,
    #[command(flatten)]
    web: super::explorer::WebArgs,
    /// gRPC API port (AgentService, health, reflection; 0 picks a free port).
    #[arg(long, default_value_t = 7471)]
    grpc_port: u16,
    /// Address the gRPC API listens on (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    grpc_host: String,
    /// Do not serve the gRPC API.
    #[arg(long)]
    no_grpc: bool,
    /// Require `authorization: Bearer <token>` on gRPC calls, the token read from this file
    /// (use it whenever --grpc-host is not loopback).
    #[arg(long)]
    grpc_token_file: Option<PathBuf>,
    /// Prometheus `/metrics` port (0 picks a free port).
    #[arg(long, default_value_t = 7472)]
    metrics_port: u16,
    /// Address `/metrics` listens on.
    #[arg(long, default_value = "127.0.0.1")]
    metrics_host: String,
    /// Do not serve `/metrics`.
    #[arg(long)]
    no_metrics: bool,
    /// Never dial the public bootstrap peer.
    #[arg(long)]
    no_bootstrap: bool,
    /// Percent of the device a run may use (scales the micro-batch; always a valid batch).
    #[arg(short = 'r', long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    resource: u8,
    /// The task to work in, by id or unique prefix (`spore task list`); default: config.toml's
    /// `task_id` (`spore task use`), else the most active task this node can build on.
    #[arg(long)]
    task: Option<String>,
    /// Seconds of training per experiment.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    time_budget: u64,
    /// Stop after this many experiments (the baseline counts; re-measurements of the noise do
    /// not); the node stops with the loop.
    #[arg(long)]
    max_experiments: Option<u64>,
    /// Keep a child only when it beats its parent's val_bpb by more than this (bits per byte),
    /// instead of by more than the noise this node measured (t(0.95, ν)·√2·σ; measured by
    /// re-running the best parent's code when unknown). 0 keeps any improvement.
    #[arg(long, value_parser = keep_margin)]
    keep_margin: Option<f64>,
    /// Experiments in flight at once, when they run as Experiments of a SporeNode (a cluster
    /// has the GPUs); one machine runs one at a time.
    #[arg(long, default_value_t = 1, requires = "kubernetes_node", value_parser = clap::value_parser!(u16).range(1..=1024))]
    parallel: u16,
    /// Python interpreter with torch that runs train.py.
    #[arg(long, env = "SPORE_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Workspace with train.py and the harness (default: <data-dir>/workspace, created from the
    /// files built into spore).
    #[arg(long)]
    workspace: Option<PathBuf>,
    #[command(flatten)]
    data: super::data::DataArgs,
    /// Seconds a run may take beyond its time budget (start-up, compilation, evaluation) before
    /// it is killed.
    #[arg(long, default_value_t = 300)]
    deadline_margin: u64,
    #[command(flatten)]
    metric: MetricArgs,
    #[command(flatten)]
    jail: JailArgs,
    /// Train nothing of our own: only re-run other nodes' records (spot-checks, challenges).
    #[arg(long)]
    verify_only: bool,
    /// Base rate of spot-checks of incoming records (Python's 0.05; 1 re-runs all eligible).
    #[arg(long, default_value_t = 0.05, value_parser = rate)]
    spot_check_rate: f64,
    /// Seconds after which a dispute is decided with the responses it has.
    #[arg(long, default_value_t = 1800)]
    challenge_timeout: u64,
    /// A verifier the lab trusts (its node id; repeatable): its votes count in every dispute.
    /// Others vote only once this node or a trusted verifier has confirmed their work.
    #[arg(long = "trust-verifier", value_name = "NODE_ID", value_parser = node_id)]
    trusted_verifiers: Vec<String>,
    #[command(flatten)]
    data_dir: DataDir,
}

impl RunArgs {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir.data_dir
    }
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{text:?} is not a rate between 0 and 1")),
    }
}

fn node_id(text: &str) -> Result<String, String> {
    let ok = text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok { Ok(text.to_string()) } else { Err("a node id is 64 lowercase hex characters".into()) }
}

fn keep_margin(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(m) if m.is_finite() && (0.0..=10.0).contains(&m) => Ok(m),
        _ => Err(format!("{text:?} is not a margin in bits per byte between 0 and 10")),
    }
}

/// The store file under a data directory.
pub fn store_path(data_dir: &Path) -> PathBuf {
    NodeConfig::new(data_dir.to_path_buf()).store_path()
}

/// The proposer: the LLM the environment names, else the configured one, else the built-in
/// mutator.
fn proposer(data_dir: &Path) -> anyhow::Result<Proposer> {
    let from_env = llm_config::from_env(|name| std::env::var(name).ok())?;
    let configured = match from_env {
        Some(config) => Some(config),
        None => llm_config::load(data_dir)?,
    };
    match configured {
        Some(config) => {
            tracing::info!(provider = %config.provider, model = %config.model, "proposals from an LLM");
            Ok(Proposer::Llm(Box::new(LlmProposer::new(config, LLM_TIMEOUT)?)))
        }
        None => {
            tracing::info!("proposals from the built-in mutator (configure an LLM with `spore set`)");
            Ok(Proposer::Mutator)
        }
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    for peer in &args.peers {
        if spore_agent::protocol::parse_address(peer).is_none() {
            bail!("--peer {peer:?} is not host:port");
        }
    }
    let data_dir = args.data_dir.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    let file = node_config::load(&data_dir)?;
    super::logging::init();
    let mut config = NodeConfig::new(data_dir.clone());
    config.port = args.port.unwrap_or(file.port);
    config.host = args.host.clone().unwrap_or(file.host);
    config.peers = if args.peers.is_empty() { file.peer } else { args.peers.clone() };
    config.genesis = args.genesis;
    if args.genesis && !args.peers.is_empty() {
        tracing::warn!(peers = ?args.peers, "--genesis listens only and dials nobody (as Python's): --peer is ignored");
    }
    for peer in &args.public_peers {
        if spore_agent::protocol::parse_address(peer).is_none() {
            bail!("--public-peer {peer:?} is not host:port");
        }
    }
    if !args.public_peers.is_empty() {
        if args.public_records_per_second.is_nan() || args.public_records_per_second <= 0.0 {
            bail!("--public-records-per-second must be positive");
        }
        config.protocol.bridge = Some(spore_agent::protocol::BridgePolicy {
            public_peers: args.public_peers.clone(),
            export: args.export,
            import: args.import,
            records_per_second: args.public_records_per_second,
            max_record_bytes: args.public_record_bytes,
        });
    }
    let mib = |n: u64| (n > 0).then(|| n.saturating_mul(1024 * 1024));
    config.protocol.store_quota_bytes = mib(args.store_max_mb);
    config.protocol.artifact_quota_bytes = mib(args.artifacts_max_mb);
    // SPORE_BOOTSTRAP_PEER replaces the public bootstrap peer (a lab's own, or a test's).
    config.bootstrap = (!args.no_bootstrap).then(|| {
        std::env::var("SPORE_BOOTSTRAP_PEER")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| spore_agent::node::BOOTSTRAP_PEER.to_string())
    });
    let identity = spore_agent::identity_file::load_or_create(&data_dir)?;

    let task = super::task::chosen(&data_dir, args.task.as_deref(), &file.task_id)?;
    let mut rerun = None;
    let mut settings = ResearchConfig {
        // A cluster's runs are measured by the evaluation container; a local run as set below.
        measured_by: MeasuredBy::Evaluator,
        time_budget: args.time_budget,
        resource: args.resource,
        max_experiments: args.max_experiments,
        genesis: args.genesis,
        sync_wait: if config.peers.is_empty() { Duration::ZERO } else { Duration::from_secs(5) },
        retry_pause: Duration::from_secs(10),
        parallel: usize::from(args.parallel),
        task,
    };
    let (chosen_task, budget) = (settings.task.clone(), args.time_budget);
    let fits = move |prepare_cid: &str, dataset_cid: &str| match &chosen_task {
        Some(task) => check_fits(task, prepare_cid, dataset_cid, budget),
        None => Ok(()),
    };
    let research = if args.no_train {
        None
    } else if args.kubernetes_node.is_some() {
        tracing::info!("research runs as Experiments of the SporeNode");
        fits("", "")?;
        Some((Plan::Cluster, settings, proposer(&data_dir)?))
    } else {
        let dir = args.workspace.clone().unwrap_or_else(|| data_dir.join("workspace"));
        tracing::info!(workspace = %dir.display(), python = %args.python.display(), "preparing the workspace");
        let (program, dataset) = (args.metric.program(), args.data.dataset.as_deref());
        let ensure = |dataset: &str| super::data::ensure(dataset, args.data.data_shards, &args.data.mirror);
        let workspace = Workspace::prepare_with(&dir, &args.python, program.as_deref(), dataset, ensure)?;
        fits(&workspace.prepare_cid, &workspace.dataset_cid)?;
        let margin = Duration::from_secs(args.deadline_margin);
        let train_data = workspace.eval.iter().map(|plan| plan.train_dir.clone()).collect();
        let (python, jail) = args.jail.training_jail(&args.python, &[data_dir.as_path(), dir.as_path()], train_data)?;
        let env = workspace.eval.as_ref().map(|plan| plan.data_env()).unwrap_or_default();
        let measure = args.metric.measure(&workspace, margin, jail.clone())?;
        if !matches!(measure, Measure::Evaluator(_)) {
            settings.measured_by = MeasuredBy::TrainPy;
        }
        tracing::info!(
            gpu = %workspace.machine.gpu_model,
            class = %workspace.machine.gpu_class,
            torch = %workspace.machine.torch_version,
            cuda = %workspace.machine.cuda_version,
            evaluator = matches!(measure, Measure::Evaluator(_)),
            jail = jail.is_some(),
            dataset = &workspace.dataset_cid[..8],
            "workspace ready"
        );
        let executor = LocalExecutor {
            python,
            workspace: dir,
            runs_dir: data_dir.join("run"),
            margin,
            env,
            show_progress: true,
            measure,
            jail,
        };
        // Re-runs only mean something when measured here: re-running needs the evaluator.
        if matches!(executor.measure, Measure::Evaluator(_)) {
            let checks = LocalExecutor { runs_dir: data_dir.join("verify"), show_progress: false, ..executor.clone() };
            rerun = Some(Rerun { executor: AnyExecutor::Local(Box::new(checks)), workspace: workspace.clone() });
        }
        Some((Plan::Local(Box::new((workspace, executor))), settings, proposer(&data_dir)?))
    };
    tracing::info!(
        node_id = &identity.node_id()[..16],
        port = config.port,
        peers = config.peers.len(),
        resource = args.resource,
        mode = match (&research, args.verify_only) {
            (Some(_), true) => "verify-only",
            (Some(_), false) => "research",
            (None, _) => "sync-only",
        },
        "starting"
    );

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            on_signal.cancel();
            // A shutdown that hangs (a wedged task, a stuck store) must not keep the process:
            // a plain thread ends it after the grace period, and a second signal at once.
            std::thread::spawn(|| {
                std::thread::sleep(SHUTDOWN_GRACE);
                eprintln!("spore: shutdown took over {} s; exiting now", SHUTDOWN_GRACE.as_secs());
                std::process::exit(1);
            });
            wait_for_signal().await;
            eprintln!("spore: second signal; exiting now");
            std::process::exit(130);
        });
        let grpc = if args.no_grpc {
            None
        } else {
            let listener = spore_agent::grpc::bind("gRPC", &args.grpc_host, args.grpc_port).await?;
            if args.grpc_token_file.is_none() && !listener.local_addr()?.ip().is_loopback() {
                tracing::warn!("the gRPC API listens beyond loopback without --grpc-token-file: anyone can call it");
            }
            config.grpc = Some(listener.local_addr()?);
            tracing::info!(address = %listener.local_addr()?, "gRPC API listening");
            Some(listener)
        };
        let explorer_listener = if args.no_explorer { None } else { super::explorer::bind_for_node(&args.web).await? };
        let metrics_listener = if args.no_metrics {
            None
        } else {
            let listener = spore_agent::grpc::bind("metrics", &args.metrics_host, args.metrics_port).await?;
            tracing::info!(address = %listener.local_addr()?, "metrics listening");
            Some(listener)
        };
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let store_path = config.store_path();
        let node_task = tokio::spawn(node::run(config, shutdown.clone(), Some(ready_tx)));
        let Ok(handle) = ready.await else {
            // The node failed before it listened: its error says why.
            return node_task.await?.map(|()| ExitCode::FAILURE).map_err(|e| hint_port(e, args.port));
        };
        let metrics = std::sync::Arc::new(spore_agent::metrics::AgentMetrics::default());
        let mut services = Vec::new();
        if let Some(listener) = grpc {
            let api = spore_agent::grpc::AgentApi::new(store_path.clone(), handle.clone(), metrics.clone())?;
            let token = args.grpc_token_file.as_deref().map(spore_agent::grpc::read_token).transpose()?;
            services.push(tokio::spawn(spore_agent::grpc::serve(listener, api, token, shutdown.clone())));
        }
        if let Some(listener) = explorer_listener {
            let config = spore_agent::explorer::ExplorerConfig::new(&data_dir, &store_path);
            services.push(tokio::spawn(spore_agent::explorer::serve(listener, config, shutdown.clone())));
        }
        if let Some(listener) = metrics_listener {
            let serve = spore_agent::metrics::serve(
                listener,
                store_path.clone(),
                handle.snapshot.clone(),
                metrics.clone(),
                shutdown.clone(),
            );
            services.push(tokio::spawn(serve));
        }
        let gpu = spore_agent::research::executor::GpuLock::default();
        let noise = NoiseBook::shared(&data_dir, args.keep_margin);
        let namespace = args.kubernetes_namespace.clone().unwrap_or_else(pod_namespace);
        let mut cluster = None;
        let mut rerun = rerun;
        if let Some(node_name) = args.kubernetes_node.clone() {
            let client = kube::Client::try_default()
                .await
                .context("--kubernetes-node: no Kubernetes API (neither in-cluster nor KUBECONFIG)")?;
            let executor = KubernetesExecutor {
                client: client.clone(),
                namespace: namespace.clone(),
                node_name: node_name.clone(),
            };
            let dir = args.workspace.clone().unwrap_or_else(|| data_dir.join("workspace"));
            let workspace = cluster_workspace::discover(&client, &namespace, &node_name, &dir)
                .await
                .context("describing the cluster's runs")?;
            tracing::info!(
                class = %workspace.machine.gpu_class,
                dataset = %workspace.dataset_cid,
                prepare = &workspace.prepare_cid[..8],
                "comparing with records of this harness"
            );
            // Re-runs of other nodes' records are Experiments of `purpose: verify` on the
            // SporeNode's GPUs, measured by the evaluator in the training pod.
            rerun = Some(Rerun { executor: AnyExecutor::Kubernetes(executor.clone()), workspace: workspace.clone() });
            cluster = Some((executor, workspace));
            let (reporter_client, reporter_node) = (client.clone(), node_name.clone());
            let publisher = spore_agent::cluster::ClusterPublisher {
                client,
                namespace: namespace.clone(),
                node_name,
                identity: identity.clone(),
                node: handle.clone(),
                store_path: store_path.clone(),
                artifacts: ArtifactStore::new(&data_dir),
                noise: noise.clone(),
            };
            services.push(tokio::spawn(publisher.run(shutdown.clone())));
            let reporter = spore_agent::cluster::status::StatusReporter {
                client: reporter_client,
                namespace: namespace.clone(),
                node_name: reporter_node,
                node: handle.clone(),
                store_path: store_path.clone(),
                reputation_path: data_dir.join("reputation.json"),
                node_id: identity.node_id(),
            };
            services.push(tokio::spawn(reporter.run(shutdown.clone())));
        }
        // Every node judges disputes from the evidence it holds; one with the evaluator also re-runs.
        let verifier = Verifier {
            config: VerifierConfig {
                spot_check_rate: args.spot_check_rate,
                challenge_timeout: Duration::from_secs(args.challenge_timeout),
                resource: args.resource,
                trusted_verifiers: args.trusted_verifiers.clone(),
                ..VerifierConfig::default()
            },
            rerun,
            gpu: gpu.clone(),
            identity: identity.clone(),
            node: handle.clone(),
            store_path: store_path.clone(),
            artifacts: ArtifactStore::new(&data_dir),
            reputation_path: data_dir.join("reputation.json"),
            noise: noise.clone(),
        };
        services.push(tokio::spawn(verifier.run(shutdown.clone())));
        let mut outcome = Ok(ExitCode::SUCCESS);
        let research = research.filter(|_| !args.verify_only);
        if let Some((plan, settings, proposer)) = research {
            let (workspace, executor) = match (plan, cluster) {
                (Plan::Local(local), _) => {
                    let (workspace, executor) = *local;
                    (workspace, AnyExecutor::Local(Box::new(executor)))
                }
                (Plan::Cluster, Some((executor, workspace))) => (workspace, AnyExecutor::Kubernetes(executor)),
                (Plan::Cluster, None) => bail!("research in a cluster needs --kubernetes-node"),
            };
            let research = Research {
                config: settings,
                workspace,
                executor,
                proposer,
                identity,
                artifacts: ArtifactStore::new(&data_dir),
                store_path,
                node: handle,
                gpu,
                noise,
            };
            outcome = match research.run(shutdown.clone()).await {
                Ok(report) => {
                    tracing::info!(
                        experiments = report.experiments,
                        keep = report.keeps,
                        discard = report.discards,
                        crash = report.crashes,
                        remeasured = report.remeasures,
                        "research finished"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e),
            };
            shutdown.cancel();
        }
        node_task.await??;
        shutdown.cancel();
        for task in services {
            task.await??;
        }
        outcome
    })
}

/// Where the research loop's runs happen.
enum Plan {
    /// Child processes here, in a prepared workspace.
    Local(Box<(Workspace, LocalExecutor)>),
    /// Experiments of the SporeNode (`--kubernetes-node`).
    Cluster,
}

/// Either executor, chosen at start-up.
#[derive(Debug)]
enum AnyExecutor {
    Local(Box<LocalExecutor>),
    Kubernetes(KubernetesExecutor),
}

impl Executor for AnyExecutor {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, ExecutorError> {
        match self {
            AnyExecutor::Local(executor) => executor.run(spec).await,
            AnyExecutor::Kubernetes(executor) => executor.run(spec).await,
        }
    }

    fn uses_local_device(&self) -> bool {
        match self {
            AnyExecutor::Local(executor) => executor.uses_local_device(),
            AnyExecutor::Kubernetes(executor) => executor.uses_local_device(),
        }
    }
}

/// The namespace of the pod this runs in, else `default`.
fn pod_namespace() -> String {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .map(|ns| ns.trim().to_string())
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// An address-in-use error gets a hint.
fn hint_port(e: anyhow::Error, port: Option<u16>) -> anyhow::Error {
    let in_use = e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse);
    match (in_use, port) {
        (true, Some(p)) => e.context(format!("port {p} is taken: try --port {} or `spore stop`", p.saturating_add(1))),
        (true, None) => e.context("the gossip port is taken: pass another with --port, or `spore stop`"),
        _ => e,
    }
}

/// How long a clean shutdown may take after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(super) async fn wait_for_signal() {
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

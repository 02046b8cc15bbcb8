//! The explorer: a read-only web UI and JSON API over a node's store, served by `spore run`
//! (unless `--no-explorer`) and `spore explorer` on `--web-port` (default 8470), bound to
//! 127.0.0.1 unless `--web-host` says otherwise.
//!
//! It keeps the Python explorer's paths and response shapes (`/api/stat`, `/api/graph`,
//! `/api/frontier`, `/api/experiment/{cid}`…, `WS /ws`) and adds endpoints beside them (a graph
//! with level of detail, the frontier per GPU class, verification state, best `val_bpb` over
//! time); `GET /api/openapi.json` documents them all. Unlike Python's it has a limit on every
//! list, answers "not found" with 404, takes artifacts only by validated CID, sends a strict
//! Content-Security-Policy, and refuses requests whose `Host` is not the loopback name it was
//! bound to (DNS rebinding). Nothing here writes: every route is `GET`.
//!
//! The store is read on its own SQLite connection; the live feed polls the store for records
//! stored after its cursor, so it shows what gossip, sync and the research loop store, and
//! works the same when `spore explorer` runs beside a node in another process.

mod api;
mod assets;
mod feed;
mod guard;
mod tasks;
mod view;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::research::artifacts::ArtifactStore;
use crate::store::DagStore;

/// The explorer's default port.
pub const DEFAULT_PORT: u16 = 8470;

/// Bounds on what one request can ask for.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records in one graph page.
    pub graph_page: usize,
    /// Frontier records per GPU model whose lineages the default graph shows.
    pub lineage_per_class: usize,
    /// Records in `/api/recent`, `/api/frontier`, children and node lists.
    pub list: usize,
    /// Search results (Python's 20).
    pub search: usize,
    /// Longest search query, in bytes.
    pub query_bytes: usize,
    /// Largest artifact served, in bytes.
    pub artifact_bytes: usize,
    /// Keeps read for the best-over-time chart.
    pub progress_points: usize,
    /// Open WebSocket feeds.
    pub ws_clients: usize,
    /// Feed events buffered per client before it is told it lagged.
    pub feed_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            graph_page: 5_000,
            lineage_per_class: 25,
            list: 500,
            search: 20,
            query_bytes: 200,
            artifact_bytes: 1 << 20,
            progress_points: 200_000,
            ws_clients: 64,
            feed_buffer: 4_096,
        }
    }
}

/// What the explorer serves.
#[derive(Debug, Clone)]
pub struct ExplorerConfig {
    pub data_dir: PathBuf,
    pub store_path: PathBuf,
    pub limits: Limits,
}

impl ExplorerConfig {
    pub fn new(data_dir: &Path, store_path: &Path) -> Self {
        ExplorerConfig {
            data_dir: data_dir.to_path_buf(),
            store_path: store_path.to_path_buf(),
            limits: Limits::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub(crate) struct Explorer {
    store: Arc<Mutex<DagStore>>,
    data_dir: PathBuf,
    artifacts: ArtifactStore,
    limits: Limits,
    feed: broadcast::Sender<Arc<str>>,
    ws_clients: Arc<AtomicUsize>,
    shutdown: CancellationToken,
}

/// Binds the explorer's listener (port 0 picks a free one).
pub async fn bind(host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    crate::grpc::bind("explorer", host, port).await
}

/// The router over a store, with the feed started; the feed stops with `shutdown`.
pub fn router(config: &ExplorerConfig, local: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<Router> {
    let store = DagStore::open(&config.store_path)?;
    let (feed, _) = broadcast::channel(config.limits.feed_buffer);
    feed::start(DagStore::open(&config.store_path)?, feed.clone(), shutdown.clone())?;
    let state = Explorer {
        store: Arc::new(Mutex::new(store)),
        data_dir: config.data_dir.clone(),
        artifacts: ArtifactStore::new(&config.data_dir),
        limits: config.limits,
        feed,
        ws_clients: Arc::new(AtomicUsize::new(0)),
        shutdown,
    };
    let api = api::routes().route("/ws", get(feed::websocket));
    Ok(Router::new()
        .merge(api)
        .merge(assets::routes())
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(guard::Guard::new(local), guard::check)))
}

/// Serves until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ExplorerConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let app = router(&config, local, shutdown.clone())?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

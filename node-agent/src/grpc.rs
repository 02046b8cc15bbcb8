//! The gRPC `AgentService` (`spec/proto/spore/agent/v1/agent.proto`), with the standard health
//! service and reflection, on `spore run --grpc-port` (default 7471, loopback by default).
//!
//! `WatchRecords` streams from the store on its own SQLite connection in a thread of its own:
//! it pages through the records after the client's cursor, then polls for new ones. Its channel
//! is bounded, so a slow client only slows its own stream — never the node, which never waits
//! for any stream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spore_spec::grpc::agent_service_server::{AgentService, AgentServiceServer};
use spore_spec::grpc::{
    ConnectPeerRequest, ConnectPeerResponse, DisconnectPeerRequest, DisconnectPeerResponse, FrontierRequest,
    FrontierResponse, GetRecordRequest, Peer, PeersRequest, PeersResponse, StatusRequest, StatusResponse, StoredRecord,
    WatchRecordsRequest,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::metrics::AgentMetrics;
use crate::node::NodeHandle;
use crate::node::status::Snapshot;
use crate::store::DagStore;

/// Records buffered per stream before the reader waits for the client.
const STREAM_BUFFER: usize = 1024;
/// Records read from the store at a time.
const PAGE: usize = 2048;
/// How often an idle stream looks for new records.
const POLL: Duration = Duration::from_millis(50);
/// The most records one `Frontier` call returns.
const MAX_FRONTIER: u32 = 10_000;

/// The service.
#[derive(Debug, Clone)]
pub struct AgentApi {
    store_path: PathBuf,
    store: Arc<Mutex<DagStore>>,
    node: NodeHandle,
    snapshot: watch::Receiver<Snapshot>,
    metrics: Arc<AgentMetrics>,
}

impl AgentApi {
    pub fn new(store_path: PathBuf, node: NodeHandle, metrics: Arc<AgentMetrics>) -> anyhow::Result<Self> {
        let store = DagStore::open(&store_path)?;
        let snapshot = node.snapshot.clone();
        Ok(AgentApi { store_path, store: Arc::new(Mutex::new(store)), node, snapshot, metrics })
    }

    /// Runs `read` on the shared read connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&DagStore) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let store = store.lock().map_err(|_| Status::internal("store lock poisoned"))?;
            read(&store).map_err(|e| Status::internal(format!("store: {e}")))
        })
        .await
        .map_err(|e| Status::internal(format!("store task: {e}")))?
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let snapshot = self.snapshot.borrow().clone();
        let (records, last_seq) = self.read(|s| Ok((s.total()?, s.last_seq()?))).await?;
        Ok(Response::new(StatusResponse {
            node_id: snapshot.node_id,
            listen: snapshot.listen,
            records,
            last_seq,
            peers: snapshot.peers.len() as u32,
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    type WatchRecordsStream = ReceiverStream<Result<StoredRecord, Status>>;

    async fn watch_records(
        &self,
        request: Request<WatchRecordsRequest>,
    ) -> Result<Response<Self::WatchRecordsStream>, Status> {
        let since = request.into_inner().since_seq;
        if since < 0 {
            return Err(Status::invalid_argument("since_seq must be >= 0"));
        }
        let store = DagStore::open(&self.store_path).map_err(|e| Status::internal(format!("store: {e}")))?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        std::thread::Builder::new()
            .name("grpc-watch".into())
            .spawn({
                let metrics = self.metrics.clone();
                move || {
                    metrics.grpc_streams.fetch_add(1, Ordering::Relaxed);
                    stream_records(store, since, tx, &metrics);
                    metrics.grpc_streams.fetch_sub(1, Ordering::Relaxed);
                }
            })
            .map_err(|e| Status::internal(format!("cannot start the stream: {e}")))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_record(&self, request: Request<GetRecordRequest>) -> Result<Response<StoredRecord>, Status> {
        let id = request.into_inner().id;
        if !crate::research::artifacts::is_cid(&id) {
            return Err(Status::invalid_argument("id must be a CID (64 lowercase hex characters)"));
        }
        let lookup = id.clone();
        match self.read(move |s| s.payload(&lookup)).await? {
            Some(payload) => Ok(Response::new(StoredRecord { seq: 0, id, payload })),
            None => Err(Status::not_found(format!("no record {id}"))),
        }
    }

    async fn frontier(&self, request: Request<FrontierRequest>) -> Result<Response<FrontierResponse>, Status> {
        let request = request.into_inner();
        let limit = if request.limit == 0 { 100 } else { request.limit.min(MAX_FRONTIER) } as usize;
        let gpu = (!request.gpu_model.is_empty()).then_some(request.gpu_model);
        let entries = self.read(move |s| s.frontier(gpu.as_deref(), limit)).await?;
        let records = entries.into_iter().map(|e| StoredRecord { seq: 0, id: e.id, payload: e.payload }).collect();
        Ok(Response::new(FrontierResponse { records }))
    }

    async fn peers(&self, _: Request<PeersRequest>) -> Result<Response<PeersResponse>, Status> {
        let snapshot = self.snapshot.borrow().clone();
        let peers = snapshot
            .peers
            .into_iter()
            .map(|p| Peer {
                address: p.address,
                direction: p.direction.into(),
                node_id: p.node_id.unwrap_or_default(),
                accepted_records: p.accepted_records,
                rejected_records: p.rejected_records,
            })
            .collect();
        Ok(Response::new(PeersResponse { peers }))
    }

    async fn connect_peer(
        &self,
        request: Request<ConnectPeerRequest>,
    ) -> Result<Response<ConnectPeerResponse>, Status> {
        let address = peer_address(&request.into_inner().address)?;
        self.node.connect(address).await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(ConnectPeerResponse {}))
    }

    async fn disconnect_peer(
        &self,
        request: Request<DisconnectPeerRequest>,
    ) -> Result<Response<DisconnectPeerResponse>, Status> {
        let address = peer_address(&request.into_inner().address)?;
        let known = self.node.disconnect(address).await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(DisconnectPeerResponse { known }))
    }
}

/// The address of a Connect/Disconnect request, checked.
fn peer_address(address: &str) -> Result<String, Status> {
    let address = address.trim();
    match crate::protocol::parse_address(address) {
        Some(_) => Ok(address.to_string()),
        None => Err(Status::invalid_argument(format!("{address:?} is not host:port"))),
    }
}

/// Sends every record after `cursor`, then new ones, until the client goes away.
fn stream_records(
    store: DagStore,
    mut cursor: i64,
    tx: mpsc::Sender<Result<StoredRecord, Status>>,
    metrics: &AgentMetrics,
) {
    loop {
        let page = match store.records_after_seq(cursor, PAGE) {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.blocking_send(Err(Status::internal(format!("store: {e}"))));
                return;
            }
        };
        if page.is_empty() {
            if tx.is_closed() {
                return;
            }
            std::thread::sleep(POLL);
            continue;
        }
        for (seq, id, payload) in page {
            if tx.blocking_send(Ok(StoredRecord { seq, id, payload })).is_err() {
                return;
            }
            metrics.grpc_records_streamed.fetch_add(1, Ordering::Relaxed);
            cursor = seq;
        }
    }
}

/// Binds `host:port` for `what` (so a port of 0 resolves before the node starts).
pub async fn bind(what: &str, host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let address: SocketAddr =
        format!("{host}:{port}").parse().map_err(|_| anyhow::anyhow!("{what}: {host}:{port} is not an address"))?;
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {address}: {e}"))
}

/// Serves the API, health and reflection until `shutdown`. With a `token`, every AgentService
/// call must carry `authorization: Bearer <token>` (health stays open for probes).
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: AgentApi,
    token: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AgentServiceServer<AgentApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(spore_spec::grpc::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let expected = token.map(|t| format!("Bearer {t}"));
    let service = AgentServiceServer::with_interceptor(api, move |request: Request<()>| {
        let Some(expected) = &expected else { return Ok(request) };
        let given = request.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("a valid bearer token is required"))
        }
    });
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a token file (trimmed); an empty file is an error, not "no token".
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", path.display()))?
        .trim()
        .to_string();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}

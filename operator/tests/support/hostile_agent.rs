//! A hostile agent for the mirror's tests: a real gRPC server on 127.0.0.1 speaking the agent's
//! API, whose stream and status say whatever the test gave it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use spore_operator::mirror::MirrorConfig;
use spore_operator::mirror::metrics::MirrorMetrics;
use spore_spec::grpc::agent_service_server::{AgentService, AgentServiceServer};
use spore_spec::grpc::*;
use spore_spec::{ExperimentRecord, Identity};
use tonic::{Request, Response, Status};

/// What the agent streams and claims.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    /// Streamed after the mirror's cursor, in order.
    pub records: Vec<StoredRecord>,
    /// The newest sequence number it claims; `None`: its last record's.
    pub claimed_last_seq: Option<i64>,
    /// The pause before each streamed record.
    pub pace: Duration,
    /// The first stream ends after its records (the mirror starts a new session); later ones,
    /// and every one when false, stay open as an agent's does.
    pub end_first_stream: bool,
    /// Streams opened so far.
    pub streams: Arc<AtomicUsize>,
}

type Stream = Pin<Box<dyn futures_util::Stream<Item = Result<StoredRecord, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Hostile {
    type WatchRecordsStream = Stream;

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let last_seq = self.claimed_last_seq.unwrap_or(self.records.len() as i64);
        Ok(Response::new(StatusResponse { node_id: "ab".repeat(32), last_seq, ..Default::default() }))
    }

    async fn watch_records(&self, request: Request<WatchRecordsRequest>) -> Result<Response<Stream>, Status> {
        let since = request.into_inner().since_seq;
        let first = self.streams.fetch_add(1, Ordering::SeqCst) == 0;
        let items: Vec<Result<StoredRecord, Status>> =
            self.records.iter().filter(|r| r.seq > since).cloned().map(Ok).collect();
        let pace = self.pace;
        let paced = futures_util::stream::iter(items).then(move |item| async move {
            tokio::time::sleep(pace).await;
            item
        });
        let stream: Stream = match first && self.end_first_stream {
            true => Box::pin(paced),
            false => Box::pin(paced.chain(futures_util::stream::pending())),
        };
        Ok(Response::new(stream))
    }

    async fn get_record(&self, _: Request<GetRecordRequest>) -> Result<Response<StoredRecord>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn frontier(&self, _: Request<FrontierRequest>) -> Result<Response<FrontierResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn peers(&self, _: Request<PeersRequest>) -> Result<Response<PeersResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn connect_peer(&self, _: Request<ConnectPeerRequest>) -> Result<Response<ConnectPeerResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn disconnect_peer(
        &self,
        _: Request<DisconnectPeerRequest>,
    ) -> Result<Response<DisconnectPeerResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// Serves `agent` on a free port of 127.0.0.1; returns its URL and the server's task.
pub async fn serve(agent: Hostile) -> (String, tokio::task::JoinHandle<Result<(), tonic::transport::Error>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::new(agent))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (url, server)
}

/// A record's wire payload.
pub fn payload(record: &ExperimentRecord) -> String {
    let mut out = Vec::new();
    record.write_wire_payload(&mut out);
    String::from_utf8(out).unwrap()
}

/// Test record `n`, signed by a fixed identity.
pub fn signed(n: i64) -> ExperimentRecord {
    let mut record = spore_tests::records::record(n);
    Identity::from_seed([41; 32]).sign_record(&mut record);
    record
}

/// Stored records numbered from 1, from (id, payload) pairs.
pub fn numbered(stream: Vec<(String, String)>) -> Vec<StoredRecord> {
    stream.into_iter().enumerate().map(|(i, (id, payload))| StoredRecord { seq: i as i64 + 1, id, payload }).collect()
}

/// A mirror of `agent` into `url` in batches of 100, counting into `metrics`.
pub fn mirror_config(agent: &str, url: &str, metrics: &Arc<MirrorMetrics>, lean_backfill_min: u64) -> MirrorConfig {
    MirrorConfig {
        agent: agent.to_string(),
        database_url: url.to_string(),
        batch: 100,
        max_backoff: Duration::from_secs(1),
        metrics: metrics.clone(),
        agent_token: None,
        cursor_key: None,
        database_ca: None,
        lean_backfill_min,
    }
}

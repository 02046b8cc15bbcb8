#![allow(clippy::unwrap_used)]
//! The mirror trusts nothing it streams, for real: a hostile agent (a real gRPC server on
//! 127.0.0.1 speaking the agent's API) streams two honest records between forged ones — a
//! payload changed after signing, a record re-hashed under a signature that is not its own, a
//! record streamed under another id, a payload that is no record — into a real PostgreSQL.
//! Only the honest two are written; the rest are counted as refused, and the cursor moves past
//! them all.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use spore_spec::grpc::agent_service_server::{AgentService, AgentServiceServer};
use spore_spec::grpc::*;
use spore_spec::{ExperimentRecord, Identity, JsonNumber};
use spore_tests::testenv::{TestEnv, TestEnvOptions};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// An agent whose stream is whatever it was given.
struct Hostile {
    records: Vec<StoredRecord>,
}

type Stream = Pin<Box<dyn futures_util::Stream<Item = Result<StoredRecord, Status>> + Send>>;

#[tonic::async_trait]
impl AgentService for Hostile {
    type WatchRecordsStream = Stream;

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse {
            node_id: "ab".repeat(32),
            last_seq: self.records.len() as i64,
            ..Default::default()
        }))
    }

    async fn watch_records(&self, request: Request<WatchRecordsRequest>) -> Result<Response<Stream>, Status> {
        let since = request.into_inner().since_seq;
        let items: Vec<Result<StoredRecord, Status>> =
            self.records.iter().filter(|r| r.seq > since).cloned().map(Ok).collect();
        // Then the stream stays open, as an agent's does.
        let stream = futures_util::stream::iter(items).chain(futures_util::stream::pending());
        Ok(Response::new(Box::pin(stream)))
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

use futures_util::StreamExt as _;

fn payload(record: &ExperimentRecord) -> String {
    let mut out = Vec::new();
    record.write_wire_payload(&mut out);
    String::from_utf8(out).unwrap()
}

fn signed(n: i64) -> ExperimentRecord {
    let mut record = spore_tests::records::record(n);
    Identity::from_seed([41; 32]).sign_record(&mut record);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_records_from_a_hostile_agent_are_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let env = tokio::task::spawn_blocking(move || TestEnv::up(&options).expect("PostgreSQL")).await.unwrap();
    let url = env.database_url().unwrap().to_string();

    let (first, second) = (signed(1), signed(2));
    let mut rehashed = signed(3);
    rehashed.val_bpb = JsonNumber::Float(0.01);
    rehashed.id = spore_spec::cid_of(&rehashed.canonical_bytes());
    let victim = signed(4);
    let forged: Vec<(String, String)> = vec![
        (victim.id.clone(), payload(&victim).replace("\"record 4\"", "\"record 4, better\"")),
        (rehashed.id.clone(), payload(&rehashed)),
        ("0".repeat(64), payload(&victim)),
        ("1".repeat(64), "{\"not\":\"a record\"}".into()),
    ];
    let mut stream = vec![(first.id.clone(), payload(&first))];
    stream.extend(forged);
    stream.push((second.id.clone(), payload(&second)));
    let records: Vec<StoredRecord> = stream
        .into_iter()
        .enumerate()
        .map(|(i, (id, payload))| StoredRecord { seq: i as i64 + 1, id, payload })
        .collect();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::new(Hostile { records }))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let metrics = Arc::new(spore_operator::mirror::metrics::MirrorMetrics::default());
    let config = spore_operator::mirror::MirrorConfig {
        agent,
        database_url: url.clone(),
        batch: 100,
        max_backoff: Duration::from_secs(1),
        metrics: metrics.clone(),
        agent_token: None,
        cursor_key: None,
        database_ca: None,
        lean_backfill_min: 0,
    };
    let shutdown = CancellationToken::new();
    let mirror = tokio::spawn(spore_operator::mirror::run(config, shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cursor.load(Ordering::Relaxed) < 6 {
        assert!(tokio::time::Instant::now() < deadline, "the mirror never reached the stream's end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    mirror.await.unwrap().unwrap();
    server.abort();

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    let connection = tokio::spawn(connection);
    let rows: Vec<(String, String)> = client
        .query("SELECT id, payload FROM experiments ORDER BY source_seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(first.id.clone(), payload(&first)), (second.id.clone(), payload(&second))],
        "only the records that verify are written, byte for byte"
    );
    assert_eq!(metrics.rows_refused.load(Ordering::Relaxed), 4);
    assert_eq!(metrics.rows_written.load(Ordering::Relaxed), 2);
    connection.abort();
    drop(env);
}

#![allow(clippy::unwrap_used)]
//! The gRPC API of a running `spore` node: status, one record, the frontier, peers, health,
//! and `WatchRecords` replaying from a cursor and then following new records live.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use spore_spec::grpc::agent_service_client::AgentServiceClient;
use spore_spec::grpc::{
    ConnectPeerRequest, DisconnectPeerRequest, FrontierRequest, GetRecordRequest, PeersRequest, StatusRequest,
    StoredRecord, WatchRecordsRequest,
};
use spore_spec::{Identity, Message};
use spore_tests::nodes::{SporeNode, free_port, wait_until};
use spore_tests::records::record;

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn push(stream: &mut TcpStream, identity: &Identity, range: std::ops::Range<i64>, val: f64) -> Vec<String> {
    let mut ids = Vec::new();
    for n in range {
        let mut r = record(n);
        r.val_bpb = spore_spec::JsonNumber::from(val + n as f64 / 1000.0);
        identity.sign_record(&mut r);
        ids.push(r.id.clone());
        stream.write_all(&spore_spec::frame::frame_bytes(&Message::Experiment(Box::new(r)).encode_body())).unwrap();
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_api_answers_and_streams_from_a_cursor_then_live() {
    let dir = tempfile::tempdir().unwrap();
    let node = SporeNode::start(Path::new(SPORE), dir.path(), free_port().unwrap(), &[]);
    let identity = Identity::generate();
    let mut stream = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let first = push(&mut stream, &identity, 0..50, 1.0);
    wait_until(Duration::from_secs(20), "50 records stored", || node.record_count() >= 50);

    let mut client = AgentServiceClient::connect(format!("http://127.0.0.1:{}", node.grpc_port)).await.unwrap();
    let status = client.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.records, status.last_seq), (50, 50));
    assert_eq!(status.node_id.len(), 64);
    let got = client.get_record(GetRecordRequest { id: first[7].clone() }).await.unwrap().into_inner();
    assert_eq!(got.id, first[7]);
    assert!(node.export().contains(&got.payload), "the exact stored payload");
    let missing = client.get_record(GetRecordRequest { id: "0".repeat(64) }).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let bad = client.get_record(GetRecordRequest { id: "../x".into() }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let frontier = client.frontier(FrontierRequest { gpu_model: "cpu".into(), limit: 3 }).await.unwrap().into_inner();
    assert_eq!(frontier.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>(), first[..3]);
    let none = client.frontier(FrontierRequest { gpu_model: "H100".into(), limit: 0 }).await.unwrap().into_inner();
    assert!(none.records.is_empty());
    // The peer list is a snapshot refreshed every second.
    let mut peers = Default::default();
    for _ in 0..50 {
        peers = client.peers(PeersRequest {}).await.unwrap().into_inner();
        if !peers.peers.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(peers.peers.iter().any(|p| p.direction == "inbound" && p.accepted_records == 50), "{peers:?}");
    let bad_cursor = client.watch_records(WatchRecordsRequest { since_seq: -1 }).await.unwrap_err();
    assert_eq!(bad_cursor.code(), tonic::Code::InvalidArgument);

    // From a cursor: records 41..50, then the live ones, in order, none skipped or repeated.
    let mut watch = client.watch_records(WatchRecordsRequest { since_seq: 40 }).await.unwrap().into_inner();
    let mut seen: Vec<StoredRecord> = Vec::new();
    while seen.len() < 10 {
        seen.push(watch.message().await.unwrap().unwrap());
    }
    let live = push(&mut stream, &identity, 50..80, 2.0);
    while seen.len() < 40 {
        let next = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.unwrap().unwrap().unwrap();
        seen.push(next);
    }
    assert_eq!(seen.iter().map(|r| r.seq).collect::<Vec<_>>(), (41..=80).collect::<Vec<i64>>());
    let ids: Vec<String> = seen.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids[..10], first[40..]);
    assert_eq!(ids[10..], live[..]);

    // /metrics counts what happened: 80 records stored, accepted from one inbound peer, one open
    // stream that sent 40 of them.
    let url = format!("http://127.0.0.1:{}/metrics", node.metrics_port);
    let mut text = String::new();
    for _ in 0..50 {
        text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("spore_records_received_total{outcome=\"accepted\"} 80") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "spore_records_stored{status=\"keep\"} 80",
        "spore_records_received_total{outcome=\"accepted\"} 80",
        "spore_peers{direction=\"inbound\"} 1",
        "spore_grpc_watch_streams 1",
        "spore_grpc_records_streamed_total 40",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }

    // Standard gRPC health says the service is serving.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", node.grpc_port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest { service: "spore.agent.v1.AgentService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_and_disconnect_change_who_the_node_dials() {
    let dir = tempfile::tempdir().unwrap();
    let a = SporeNode::start(Path::new(SPORE), &dir.path().join("a"), free_port().unwrap(), &[]);
    let b = SporeNode::start(Path::new(SPORE), &dir.path().join("b"), free_port().unwrap(), &[]);
    let mut client = AgentServiceClient::connect(format!("http://127.0.0.1:{}", a.grpc_port)).await.unwrap();
    let target = format!("127.0.0.1:{}", b.port);
    let outbound_to_b = |peers: &spore_spec::grpc::PeersResponse| {
        peers.peers.iter().any(|p| p.direction == "outbound" && p.address == target)
    };
    let bad = client.connect_peer(ConnectPeerRequest { address: "no-port".into() }).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    client.connect_peer(ConnectPeerRequest { address: target.clone() }).await.unwrap();
    let mut connected = false;
    for _ in 0..100 {
        if outbound_to_b(&client.peers(PeersRequest {}).await.unwrap().into_inner()) {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected, "the node dialed the peer it was told to");
    let known =
        client.disconnect_peer(DisconnectPeerRequest { address: target.clone() }).await.unwrap().into_inner().known;
    assert!(known);
    // Gone, and not dialed again (the status snapshot is refreshed every second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!outbound_to_b(&client.peers(PeersRequest {}).await.unwrap().into_inner()));
    let unknown =
        client.disconnect_peer(DisconnectPeerRequest { address: "127.0.0.1:1".into() }).await.unwrap().into_inner();
    assert!(!unknown.known);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_guards_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let extra = ["--grpc-token-file".to_string(), token_file.display().to_string()];
    let node = SporeNode::start_with_args(Path::new(SPORE), &dir.path().join("n"), free_port().unwrap(), &[], &extra);
    let url = format!("http://127.0.0.1:{}", node.grpc_port);
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let with = |token: &'static str| {
        let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        AgentServiceClient::with_interceptor(channel.clone(), move |mut request: tonic::Request<()>| {
            request.metadata_mut().insert("authorization", value.clone());
            Ok(request)
        })
    };
    let denied = AgentServiceClient::new(channel.clone()).status(StatusRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let wrong = with("s3cret-tokeN").status(StatusRequest {}).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    let status = with("s3cret-token").status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.records, 0);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(reply.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
}

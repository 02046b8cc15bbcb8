//! Prometheus `/metrics` of a node (`spore run --metrics-port`, default 7472, loopback by
//! default): peers, the records it holds, the ingest counters by outcome and by reason of
//! refusal, dropped messages by reason, sync durations, gRPC streams.
//! Everything comes from the driver's per-second snapshot and the store, so serving a scrape
//! never touches the protocol core.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::node::status::Snapshot;
use crate::protocol::refusal::{MessageDrop, RecordRefusal};
use crate::store::DagStore;

/// Counters kept outside the core.
#[derive(Debug, Default)]
pub struct AgentMetrics {
    /// Open `WatchRecords` streams.
    pub grpc_streams: AtomicI64,
    /// Records sent on `WatchRecords` streams.
    pub grpc_records_streamed: AtomicU64,
}

#[derive(Clone)]
struct State {
    snapshot: watch::Receiver<Snapshot>,
    store: Arc<Mutex<DagStore>>,
    metrics: Arc<AgentMetrics>,
}

/// Serves `/metrics` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store_path: PathBuf,
    snapshot: watch::Receiver<Snapshot>,
    metrics: Arc<AgentMetrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = Arc::new(Mutex::new(DagStore::open(&store_path)?));
    let app = Router::new().route("/metrics", get(scrape)).with_state(State { snapshot, store, metrics });
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}

async fn scrape(axum::extract::State(state): axum::extract::State<State>) -> impl IntoResponse {
    let store = state.store.clone();
    let counts =
        tokio::task::spawn_blocking(move || store.lock().ok().and_then(|s| s.counts().ok())).await.ok().flatten();
    // An unreadable store (a full disk can refuse even reads) leaves out only its gauge.
    let stored = counts.map(|c| [c.keep, c.discard, c.crash]);
    let snapshot = state.snapshot.borrow().clone();
    let body = render(&snapshot, stored, &state.metrics);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The exposition text. `stored` is [keep, discard, crash], when the store could be read.
fn render(snapshot: &Snapshot, stored: Option<[u64; 3]>, metrics: &AgentMetrics) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let inbound = snapshot.peers.iter().filter(|p| p.direction == "inbound").count();
    metric(
        "spore_peers",
        "gauge",
        "Connected peers by direction.",
        &[
            ("{direction=\"inbound\"}", inbound.to_string()),
            ("{direction=\"outbound\"}", (snapshot.peers.len() - inbound).to_string()),
        ],
    );
    metric(
        "spore_store_readable",
        "gauge",
        "1 when the store answered this scrape's count.",
        &[("", u8::from(stored.is_some()).to_string())],
    );
    if let Some(stored) = stored {
        metric(
            "spore_records_stored",
            "gauge",
            "Records in the store by status.",
            &[
                ("{status=\"keep\"}", stored[0].to_string()),
                ("{status=\"discard\"}", stored[1].to_string()),
                ("{status=\"crash\"}", stored[2].to_string()),
            ],
        );
    }
    let stats = &snapshot.stats;
    metric(
        "spore_records_received_total",
        "counter",
        "Records received from peers by outcome.",
        &[
            ("{outcome=\"accepted\"}", stats.records_accepted.to_string()),
            ("{outcome=\"duplicate\"}", stats.records_duplicate.to_string()),
            ("{outcome=\"rejected\"}", stats.records_rejected.to_string()),
            ("{outcome=\"ignored\"}", stats.records_ignored.to_string()),
            ("{outcome=\"not_imported\"}", stats.records_not_imported.to_string()),
        ],
    );
    let seconds = |millis: u64| format!("{:.3}", millis as f64 / 1000.0);
    metric(
        "spore_sync_served_seconds",
        "summary",
        "Sync answers served to peers: time from the first page to the end marker.",
        &[("_sum", seconds(stats.sync_served_millis)), ("_count", stats.syncs_served.to_string())],
    );
    metric(
        "spore_sync_received_seconds",
        "summary",
        "Syncs received from peers that send an end marker: time from our request to it.",
        &[("_sum", seconds(stats.sync_received_millis)), ("_count", stats.syncs_received.to_string())],
    );
    let announce = &stats.announce;
    metric(
        "spore_announced_ids_total",
        "counter",
        "Lazy push between our nodes: ids we announced, asked for, queued behind earlier asks, asked again of another announcer, gave up, or ignored with the wanted map full.",
        &[
            ("{event=\"announced\"}", announce.ids_announced.to_string()),
            ("{event=\"requested\"}", announce.ids_requested.to_string()),
            ("{event=\"deferred\"}", announce.deferred.to_string()),
            ("{event=\"retried\"}", announce.retries.to_string()),
            ("{event=\"abandoned\"}", announce.abandoned.to_string()),
            ("{event=\"overflow\"}", announce.overflow.to_string()),
        ],
    );
    let refused: Vec<(String, String)> = RecordRefusal::ALL
        .iter()
        .map(|r| (format!("{{reason=\"{}\"}}", r.label()), stats.records_refused[*r as usize].to_string()))
        .collect();
    let refused: Vec<(&str, String)> = refused.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    metric(
        "spore_records_refused_total",
        "counter",
        "Records from peers not stored, by reason (rejected, ignored and not imported ones).",
        &refused,
    );
    let dropped: Vec<(String, String)> = MessageDrop::ALL
        .iter()
        .map(|d| (format!("{{reason=\"{}\"}}", d.label()), stats.messages_dropped_by[*d as usize].to_string()))
        .collect();
    let dropped: Vec<(&str, String)> = dropped.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    metric("spore_messages_dropped_total", "counter", "Messages dropped unread, by reason.", &dropped);
    let paused: Vec<(String, String)> = crate::protocol::PauseCause::ALL
        .iter()
        .map(|c| {
            let on = snapshot.store_pause.as_ref().is_some_and(|p| p.cause == *c);
            (format!("{{cause=\"{}\"}}", c.label()), u8::from(on).to_string())
        })
        .collect();
    let paused: Vec<(&str, String)> = paused.iter().map(|(l, v)| (l.as_str(), v.clone())).collect();
    metric(
        "spore_store_paused",
        "gauge",
        "1 while ingest is paused for the store, by cause (busy, full, quota, failed).",
        &paused,
    );
    metric(
        "spore_store_pauses_total",
        "counter",
        "Times ingest paused for the store.",
        &[("", stats.store_pauses.to_string())],
    );
    metric(
        "spore_own_waiting",
        "gauge",
        "This node's records and control events waiting for a paused store.",
        &[("", snapshot.own_waiting.to_string())],
    );
    metric(
        "spore_code_over_quota_total",
        "counter",
        "Fetched code not stored: the artifact directory is at its quota.",
        &[("", stats.code_over_quota.to_string())],
    );
    metric(
        "spore_peers_banned_total",
        "counter",
        "Peers banned for misbehaviour.",
        &[("", stats.peers_banned.to_string())],
    );
    metric(
        "spore_grpc_watch_streams",
        "gauge",
        "Open WatchRecords streams.",
        &[("", metrics.grpc_streams.load(Ordering::Relaxed).to_string())],
    );
    metric(
        "spore_grpc_records_streamed_total",
        "counter",
        "Records sent on WatchRecords streams.",
        &[("", metrics.grpc_records_streamed.load(Ordering::Relaxed).to_string())],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::PeerSnapshot;

    #[test]
    fn renders_the_exposition_format() {
        let mut snapshot = Snapshot::default();
        snapshot.peers.push(PeerSnapshot { direction: "inbound", ..PeerSnapshot::default() });
        snapshot.stats.records_accepted = 7;
        snapshot.stats.records_not_imported = 4;
        snapshot.stats.refuse_record(RecordRefusal::RateLimited);
        snapshot.stats.refuse_record(RecordRefusal::BadSignature);
        snapshot.stats.refuse_record(RecordRefusal::BadSignature);
        snapshot.stats.drop_message(MessageDrop::BadFrame);
        snapshot.stats.syncs_served = 2;
        snapshot.stats.sync_served_millis = 1_500;
        snapshot.stats.announce.retries = 5;
        let metrics = AgentMetrics::default();
        metrics.grpc_streams.store(2, Ordering::Relaxed);
        let text = render(&snapshot, Some([3, 2, 1]), &metrics);
        for line in [
            "# TYPE spore_peers gauge",
            "spore_peers{direction=\"inbound\"} 1",
            "spore_peers{direction=\"outbound\"} 0",
            "spore_records_stored{status=\"crash\"} 1",
            "spore_records_received_total{outcome=\"accepted\"} 7",
            "spore_grpc_watch_streams 2",
            "spore_records_received_total{outcome=\"not_imported\"} 4",
            "# TYPE spore_sync_served_seconds summary",
            "spore_sync_served_seconds_sum 1.500",
            "spore_announced_ids_total{event=\"retried\"} 5",
            "spore_sync_served_seconds_count 2",
            "spore_records_refused_total{reason=\"bad_signature\"} 2",
            "spore_records_refused_total{reason=\"rate_limited\"} 1",
            "spore_records_refused_total{reason=\"future_timestamp\"} 0",
            "spore_messages_dropped_total{reason=\"bad_frame\"} 1",
            "spore_messages_dropped_total{reason=\"garbage\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}

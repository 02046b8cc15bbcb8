//! `<data-dir>/node.json`: what a running node is doing, rewritten every second for
//! `spore status` (which reads it beside the store).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::protocol::refusal::RecordRefusal;
use crate::protocol::{Direction, Protocol};

pub const FILE: &str = "node.json";

/// One connected peer, as the status file and the gRPC `Peers` call show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerSnapshot {
    pub id: u64,
    pub address: String,
    pub direction: &'static str,
    pub node_id: Option<String>,
    /// Its `node_id` is proved by the `auth` handshake, not only claimed.
    pub authenticated: bool,
    pub accepted_records: u64,
    pub rejected_records: u64,
    pub misbehaviour: u32,
}

/// What the node is doing, refreshed every second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub node_id: String,
    pub listen: String,
    pub peers: Vec<PeerSnapshot>,
    pub stats: crate::protocol::Stats,
    /// Why ingest is paused, if it is.
    pub store_pause: Option<crate::protocol::StorePause>,
    /// This node's records and control events waiting for a paused store.
    pub own_waiting: usize,
}

/// The snapshot of a core.
pub fn snapshot(core: &Protocol, listen: SocketAddr) -> Snapshot {
    let peers = core
        .peers()
        .map(|(id, p)| PeerSnapshot {
            id: *id,
            address: p.listen_address().unwrap_or_else(|| crate::protocol::format_address(&p.remote)),
            direction: if matches!(p.direction, Direction::Inbound) { "inbound" } else { "outbound" },
            node_id: p.hello.as_ref().map(|h| h.node_id.clone()),
            authenticated: p.authenticated,
            accepted_records: p.accepted_records,
            rejected_records: p.rejected_records,
            misbehaviour: p.misbehaviour,
        })
        .collect();
    Snapshot {
        node_id: core.node_id().to_string(),
        listen: listen.to_string(),
        peers,
        stats: core.stats(),
        store_pause: core.store_pause().cloned(),
        own_waiting: core.own_waiting(),
    }
}

/// Writes the status file atomically; failures are logged, never fatal. `grpc` is the bound
/// gRPC address, when the node serves one.
pub fn write(data_dir: &Path, core: &Protocol, snapshot: &Snapshot, grpc: Option<SocketAddr>) {
    let peers: Vec<serde_json::Value> = snapshot
        .peers
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "address": p.address,
                "direction": p.direction,
                "node_id": p.node_id,
                "authenticated": p.authenticated,
                "accepted_records": p.accepted_records,
                "rejected_records": p.rejected_records,
                "misbehaviour": p.misbehaviour,
            })
        })
        .collect();
    let stats = core.stats();
    let store = match &snapshot.store_pause {
        None => json!({"state": "ok", "own_waiting": snapshot.own_waiting, "pauses": stats.store_pauses}),
        Some(pause) => json!({
            "state": "paused",
            "cause": pause.cause.label(),
            "reason": pause.reason,
            "since": pause.since,
            "own_waiting": snapshot.own_waiting,
            "pauses": stats.store_pauses,
        }),
    };
    let status = json!({
        "node_id": snapshot.node_id,
        "listen": snapshot.listen,
        "grpc": grpc.map(|a| a.to_string()),
        "pid": std::process::id(),
        "peers": peers,
        "store": store,
        "stats": {
            "records_accepted": stats.records_accepted,
            "records_duplicate": stats.records_duplicate,
            "withheld_task_records": stats.withheld_task_records,
            "records_rejected": stats.records_rejected,
            "records_ignored": stats.records_ignored,
            "records_not_imported": stats.records_not_imported,
            "messages_dropped": stats.messages_dropped,
            "peers_banned": stats.peers_banned,
            "controls_accepted": stats.controls_accepted,
            "controls_rejected": stats.controls_rejected,
            "tasks_accepted": stats.tasks_accepted,
            "tasks_rejected": stats.tasks_rejected,
            "records_refused_store_paused": stats.records_refused[RecordRefusal::StorePaused as usize],
            "records_refused_task_lineage": stats.records_refused[RecordRefusal::TaskLineage as usize],
            "code_over_quota": stats.code_over_quota,
        },
    });
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let written = std::fs::write(&tmp, status.to_string()).and_then(|()| std::fs::rename(&tmp, data_dir.join(FILE)));
    // Rewritten every second: a full disk is said once, not every second.
    static FAILING: AtomicBool = AtomicBool::new(false);
    match written {
        Err(e) if !FAILING.swap(true, Ordering::Relaxed) => {
            tracing::warn!(error = %e, "cannot write the status file (said once until it works)");
        }
        Err(_) => {}
        Ok(()) => FAILING.store(false, Ordering::Relaxed),
    }
}

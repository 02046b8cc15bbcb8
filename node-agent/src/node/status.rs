//! `<data-dir>/node.json`: what a running node is doing, rewritten every second for
//! `spore status` (which reads it beside the store).

use std::net::SocketAddr;
use std::path::Path;

use serde_json::json;

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
    Snapshot { node_id: core.node_id().to_string(), listen: listen.to_string(), peers, stats: core.stats() }
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
    let status = json!({
        "node_id": snapshot.node_id,
        "listen": snapshot.listen,
        "grpc": grpc.map(|a| a.to_string()),
        "pid": std::process::id(),
        "peers": peers,
        "stats": {
            "records_accepted": stats.records_accepted,
            "records_duplicate": stats.records_duplicate,
            "records_rejected": stats.records_rejected,
            "records_ignored": stats.records_ignored,
            "records_not_imported": stats.records_not_imported,
            "messages_dropped": stats.messages_dropped,
            "peers_banned": stats.peers_banned,
        },
    });
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    let written = std::fs::write(&tmp, status.to_string()).and_then(|()| std::fs::rename(&tmp, data_dir.join(FILE)));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot write the status file");
    }
}

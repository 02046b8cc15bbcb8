//! The SporeNode's live status, written by its agent — the one that knows it — with server-side
//! apply on the status subresource (field manager `spore-agent`), looked at every few seconds
//! (the store counted again when it grew, and every minute: a verdict moves the frontier
//! without a new record) and written when it changed: connected peers, records by status, the
//! best frontier result overall and per GPU class, and this node's reputation (its score in its own table: what others'
//! verifications of its records and the disputes about them earned it). The operator writes the
//! other status fields (node id, conditions) under its own field manager; neither overwrites the
//! other's. A SporeNode that does not exist (an agent run by hand) is retried quietly.

use std::path::PathBuf;
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use spore_crds::SporeNode;
use tokio_util::sync::CancellationToken;

use super::FIELD_MANAGER;
use crate::node::NodeHandle;
use crate::store::DagStore;

/// How often the status is looked at.
pub const INTERVAL: Duration = Duration::from_secs(3);
/// Looks after which the store is counted again even if it did not grow (a minute).
const RECOUNT_TICKS: u64 = 20;

/// Writes the live status of one SporeNode.
pub struct StatusReporter {
    pub client: kube::Client,
    pub namespace: String,
    pub node_name: String,
    pub node: NodeHandle,
    pub store_path: PathBuf,
    /// The verifier's reputation table (`reputation.json`).
    pub reputation_path: PathBuf,
    pub node_id: String,
}

impl std::fmt::Debug for StatusReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusReporter").field("node_name", &self.node_name).finish_non_exhaustive()
    }
}

/// The live fields of the status, from the store, the peer count and the reputation table.
pub fn live_status(store: &DagStore, peers: usize, reputation: Option<f64>) -> anyhow::Result<Value> {
    let counts = store.counts()?;
    let mut by_class = serde_json::Map::new();
    let mut best: Option<(f64, String, String)> = None;
    for model in store.frontier_by_model()? {
        let class = spore_spec::gpu_class(&model.gpu_model);
        let known = by_class.get(&class).and_then(Value::as_f64);
        if known.is_none_or(|b| model.best_val_bpb < b) {
            by_class.insert(class.clone(), json!(model.best_val_bpb));
        }
        if best.as_ref().is_none_or(|(b, _, _)| model.best_val_bpb < *b) {
            best = Some((model.best_val_bpb, model.best_id.clone(), class));
        }
    }
    let mut status = json!({
        "peers": peers,
        "records": {"total": counts.total, "keep": counts.keep, "discard": counts.discard, "crash": counts.crash},
        "bestValBpbByClass": by_class,
    });
    if let Some((val_bpb, cid, gpu_class)) = best {
        status["best"] = json!({"valBpb": val_bpb, "cid": cid, "gpuClass": gpu_class});
    }
    if let Some(score) = reputation {
        status["reputation"] = json!(score);
    }
    Ok(status)
}

impl StatusReporter {
    fn reputation(&self) -> Option<f64> {
        let text = std::fs::read_to_string(&self.reputation_path).ok()?;
        serde_json::from_str::<Value>(&text).ok()?.get(&self.node_id)?.as_f64()
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let api: Api<SporeNode> = Api::namespaced(self.client.clone(), &self.namespace);
        let store = DagStore::open(&self.store_path)?;
        let mut written: Option<Value> = None;
        let mut said_missing = false;
        // What the status is made of: it is computed again (counting the store) only when one
        // of these moved.
        let mut seen: Option<(i64, usize, Option<f64>, u64)> = None;
        for tick in 0u64.. {
            let peers = self.node.snapshot.borrow().peers.len();
            let inputs = (store.last_seq()?, peers, self.reputation(), tick / RECOUNT_TICKS);
            let status = match (&written, seen == Some(inputs)) {
                (Some(status), true) => status.clone(),
                _ => live_status(&store, peers, inputs.2)?,
            };
            seen = Some(inputs);
            if written.as_ref() != Some(&status) {
                let patch = json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "status": status});
                let params = PatchParams::apply(FIELD_MANAGER).force();
                match api.patch_status(&self.node_name, &params, &Patch::Apply(&patch)).await {
                    Ok(_) => {
                        written = Some(status);
                        said_missing = false;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        if !said_missing {
                            tracing::info!(sporenode = %self.node_name, "no such SporeNode: its status is not written");
                            said_missing = true;
                        }
                    }
                    Err(e) => tracing::warn!(sporenode = %self.node_name, error = %e, "writing the SporeNode's status"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(INTERVAL) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use spore_spec::{Identity, JsonNumber, Status};

    use super::*;
    use crate::store::StoredRecord;

    #[test]
    fn the_status_says_what_the_store_holds() {
        let mut store = DagStore::open_in_memory().unwrap();
        let record = |n: i64, gpu: &str, val: f64, status: Status| {
            let mut r = spore_tests::records::record(n);
            (r.gpu_model, r.val_bpb, r.status) = (gpu.into(), JsonNumber::Float(val), status);
            Identity::from_seed([5; 32]).sign_record(&mut r);
            let mut payload = Vec::new();
            r.write_wire_payload(&mut payload);
            StoredRecord { record: r, payload: String::from_utf8(payload).unwrap(), flags: vec![], received_at: 0 }
        };
        let items = [
            record(1, "NVIDIA_H100_80GB_HBM3", 0.99, Status::Keep),
            record(2, "NVIDIA H100 PCIe", 0.98, Status::Keep),
            record(3, "cpu", 1.5, Status::Keep),
            record(4, "cpu", 1.2, Status::Discard),
        ];
        store.insert_batch(&items).unwrap();
        let status = live_status(&store, 2, Some(1.5)).unwrap();
        assert_eq!(status["peers"], 2);
        assert_eq!(status["records"], json!({"total": 4, "keep": 3, "discard": 1, "crash": 0}));
        assert_eq!(status["bestValBpbByClass"], json!({"H100": 0.98, "CPU": 1.5}));
        assert_eq!(status["best"], json!({"valBpb": 0.98, "cid": items[1].record.id, "gpuClass": "H100"}));
        assert_eq!(status["reputation"], 1.5);
        assert!(live_status(&DagStore::open_in_memory().unwrap(), 0, None).unwrap().get("best").is_none());
    }
}

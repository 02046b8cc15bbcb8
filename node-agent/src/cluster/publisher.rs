//! The watch loop: every Experiment event of this node, and a retry tick for those that wait
//! for their parent record. An apiserver that goes away is retried with backoff; the node keeps
//! running meanwhile.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use spore_crds::Experiment;
use spore_crds::experiment::{Decision, ExperimentCode};
use spore_spec::Identity;
use spore_spec::validate::{ValidationPolicy, validate};
use tokio_util::sync::CancellationToken;

use super::record::{NotYet, publication};
use crate::node::{NodeHandle, unix_now};
use crate::record_tools::signed_line;
use crate::research::artifacts::ArtifactStore;
use crate::store::{DagStore, StoredRecord};

/// Field manager of the status fields the node-agent writes.
pub const FIELD_MANAGER: &str = "spore-agent";
/// How often Experiments waiting for something (a parent record, a failed write) are retried.
const RETRY: Duration = Duration::from_secs(5);

/// Publishes the finished Experiments of one SporeNode.
#[derive(Clone)]
pub struct ClusterPublisher {
    pub client: kube::Client,
    pub namespace: String,
    /// The SporeNode (`spec.node` of its Experiments).
    pub node_name: String,
    pub identity: Identity,
    pub node: NodeHandle,
    pub store_path: PathBuf,
    pub artifacts: ArtifactStore,
}

impl std::fmt::Debug for ClusterPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPublisher")
            .field("namespace", &self.namespace)
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl ClusterPublisher {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let api: Api<Experiment> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut events = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects().boxed();
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        let mut tick = tokio::time::interval(RETRY);
        tracing::info!(namespace = %self.namespace, node = %self.node_name, "publishing this SporeNode's Experiments");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                event = events.next() => match event {
                    Some(Ok(experiment)) => {
                        if let Some(name) = self.consider(&experiment).await {
                            waiting.insert(name);
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "watching Experiments failed; retrying"),
                    None => return Ok(()),
                },
                _ = tick.tick(), if !waiting.is_empty() => {
                    for name in std::mem::take(&mut waiting) {
                        match api.get_opt(&name).await {
                            Ok(Some(experiment)) => {
                                if let Some(name) = self.consider(&experiment).await {
                                    waiting.insert(name);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(experiment = %name, error = %e, "reading an Experiment failed; retrying");
                                waiting.insert(name);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Publishes `experiment` if it is ours and finished; returns its name if it must be
    /// looked at again later.
    async fn consider(&self, experiment: &Experiment) -> Option<String> {
        if experiment.spec.node != self.node_name {
            return None;
        }
        let name = experiment.metadata.name.clone()?;
        match self.publish(experiment).await {
            Ok(()) => None,
            Err(Wait::Skip) => None,
            Err(Wait::Retry(why)) => {
                tracing::info!(experiment = %name, "not published yet: {why}");
                Some(name)
            }
        }
    }

    async fn publish(&self, experiment: &Experiment) -> Result<(), Wait> {
        // Cheap checks first: most events are of unfinished or published runs.
        match publication(experiment, None, None, None) {
            Err(NotYet::Unfinished | NotYet::Published | NotYet::Verification) => return Err(Wait::Skip),
            Ok(_) | Err(NotYet::ParentMissing(_)) => {}
        }
        let parent_cid = experiment.spec.parent_cid.clone();
        let store_path = self.store_path.clone();
        let parent = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let Some(cid) = parent_cid else { return Ok(None) };
            let store = DagStore::open(&store_path).map_err(|e| e.to_string())?;
            store.record(&cid).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| Wait::Retry(e.to_string()))?
        .map_err(Wait::Retry)?;
        let code = self.code(&experiment.spec.code).await?;
        let parent_code = parent.as_ref().and_then(|p| self.artifacts.get(&p.code_cid).ok().flatten());
        let parent_code = parent_code.and_then(|bytes| String::from_utf8(bytes).ok());
        let published = match publication(experiment, parent.as_ref(), code.as_deref(), parent_code.as_deref()) {
            Ok(p) => p,
            Err(NotYet::ParentMissing(cid)) => {
                return Err(Wait::Retry(format!("its parent {} is not in this node's store yet", &cid[..12])));
            }
            Err(_) => return Err(Wait::Skip),
        };
        let mut record = published.record;
        if let Some(code) = &code {
            self.artifacts.put(code.as_bytes()).map_err(|e| Wait::Retry(e.to_string()))?;
        }
        self.identity.sign_record(&mut record);
        let now = unix_now();
        let flags = validate(&record, &ValidationPolicy::default(), now)
            .map_err(|e| Wait::Retry(format!("the record would be invalid: {e}")))?;
        let cid = record.id.clone();
        let payload = signed_line(&record);
        self.node
            .publish(StoredRecord { record, payload, flags, received_at: now })
            .await
            .map_err(|e| Wait::Retry(e.to_string()))?;
        let mut status = serde_json::json!({
            "publishedCid": cid,
            "publishedCidShort": &cid[..12],
            "parentValBpb": published.parent_val_bpb,
            "deltaValBpb": published.delta_val_bpb,
        });
        // A crash is the operator's verdict; keep or discard is ours.
        if published.decision != Decision::Crash {
            status["decision"] = serde_json::to_value(published.decision).unwrap_or_default();
        }
        let patch = serde_json::json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "status": status});
        let name = experiment.metadata.name.clone().unwrap_or_default();
        let api: Api<Experiment> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(|e| Wait::Retry(format!("record {} published; writing the status failed: {e}", &cid[..12])))?;
        tracing::info!(experiment = %name, id = &cid[..12], decision = ?published.decision, "published");
        Ok(())
    }

    /// The run's `train.py`, when the Experiment gives the whole file.
    async fn code(&self, code: &ExperimentCode) -> Result<Option<String>, Wait> {
        if let Some(inline) = &code.inline {
            return Ok(Some(inline.clone()));
        }
        let Some(reference) = &code.config_map_ref else { return Ok(None) };
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let map = maps
            .get_opt(&reference.name)
            .await
            .map_err(|e| Wait::Retry(format!("reading ConfigMap {}: {e}", reference.name)))?;
        Ok(map.and_then(|m| m.data).and_then(|mut d| d.remove(&reference.key)))
    }
}

/// Why an Experiment was not published now.
#[derive(Debug)]
enum Wait {
    /// Nothing to do for it (not finished, already published, a verification run).
    Skip,
    /// Try again later.
    Retry(String),
}

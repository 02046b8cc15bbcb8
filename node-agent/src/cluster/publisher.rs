//! The watch loop: every Experiment event of this node, and a retry tick for those that wait
//! for their parent record. An apiserver that goes away is retried with backoff; the node keeps
//! running meanwhile.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use spore_crds::Experiment;
use spore_crds::experiment::{CODE_KEY, ConfigMapCodeRef, Decision, code_config_map_name};
use spore_spec::validate::{ValidationPolicy, validate};
use spore_spec::{ExperimentRecord, Identity};
use tokio_util::sync::CancellationToken;

use super::candidate::{NotReady, candidate, config_map, needs_candidate, short};
use super::record::{NotYet, publication};
use crate::node::{NodeHandle, unix_now};
use crate::record_tools::signed_line;
use crate::research::artifacts::ArtifactStore;
use crate::research::noise::{NoiseKey, SharedNoise, lock};
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
    /// The node's noise: a child must beat its parent by more than its margin.
    pub noise: SharedNoise,
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
        if needs_candidate(experiment) {
            return match self.write_candidate(experiment).await {
                Ok(()) => None,
                Err(why) => {
                    tracing::info!(experiment = %name, "no candidate yet: {why}");
                    Some(name)
                }
            };
        }
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
        match publication(experiment, None, None, None, 0.0) {
            Err(NotYet::Unfinished | NotYet::Published | NotYet::Verification | NotYet::NeverRan) => {
                return Err(Wait::Skip);
            }
            Ok(_) | Err(NotYet::ParentMissing(_)) => {}
        }
        let parent = self.parent(experiment).await.map_err(Wait::Retry)?;
        let code = self.code(experiment).await?;
        let parent_code = parent.as_ref().and_then(|p| self.artifacts.get(&p.code_cid).ok().flatten());
        let parent_code = parent_code.and_then(|bytes| String::from_utf8(bytes).ok());
        let margin = parent.as_ref().map_or(0.0, |p| lock(&self.noise).margin(&NoiseKey::of(p), unix_now()).value());
        let published = match publication(experiment, parent.as_ref(), code.as_deref(), parent_code.as_deref(), margin)
        {
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

    /// The parent record named by the Experiment, if this node's store has it.
    async fn parent(&self, experiment: &Experiment) -> Result<Option<ExperimentRecord>, String> {
        let parent_cid = experiment.spec.parent_cid.clone();
        let store_path = self.store_path.clone();
        tokio::task::spawn_blocking(move || -> Result<_, String> {
            let Some(cid) = parent_cid else { return Ok(None) };
            let store = DagStore::open(&store_path).map_err(|e| e.to_string())?;
            store.record(&cid).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Applies a diff run's diff to its parent's code and writes the candidate's ConfigMap, or
    /// says in `status.codeError` why it cannot; `Err` when something must be waited for.
    async fn write_candidate(&self, experiment: &Experiment) -> Result<(), String> {
        let name = experiment.metadata.name.clone().unwrap_or_default();
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let map_name = code_config_map_name(&name);
        if maps.get_opt(&map_name).await.map_err(|e| format!("reading ConfigMap {map_name}: {e}"))?.is_some() {
            return Ok(());
        }
        let parent = self.parent(experiment).await?;
        let parent_code = match &parent {
            Some(p) if !p.code_cid.is_empty() => self.artifacts.get(&p.code_cid).map_err(|e| e.to_string())?,
            _ => None,
        };
        let parent_code = parent_code.map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        match candidate(experiment, parent.as_ref(), parent_code.as_deref()) {
            Ok(code) => match maps.create(&PostParams::default(), &config_map(experiment, code)).await {
                Ok(_) => {
                    tracing::info!(experiment = %name, "candidate written from the diff");
                    Ok(())
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(format!("writing ConfigMap {map_name}: {e}")),
            },
            Err(NotReady::NotNeeded) => Ok(()),
            Err(NotReady::ParentMissing(cid)) => {
                Err(format!("its parent {} is not in this node's store yet", short(&cid)))
            }
            Err(NotReady::ParentCodeMissing(code_cid)) => {
                // Ask the peers for it; the next try finds it in the artifact store.
                let _ = self.node.fetch_code(code_cid.clone()).await;
                Err(format!("the parent's code {} is being fetched from peers", short(&code_cid)))
            }
            Err(NotReady::Refused(why)) => {
                tracing::warn!(experiment = %name, "candidate refused: {why}");
                let patch = serde_json::json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
                                               "status": {"codeError": why}});
                let api: Api<Experiment> = Api::namespaced(self.client.clone(), &self.namespace);
                api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("writing status.codeError: {e}"))
            }
        }
    }

    /// The run's `train.py`: inline, from the ConfigMap the spec names, or (for a diff) the
    /// candidate this agent wrote.
    async fn code(&self, experiment: &Experiment) -> Result<Option<String>, Wait> {
        let code = &experiment.spec.code;
        if let Some(inline) = &code.inline {
            return Ok(Some(inline.clone()));
        }
        let candidate_ref = code.diff.as_ref().map(|_| ConfigMapCodeRef {
            name: code_config_map_name(experiment.metadata.name.as_deref().unwrap_or_default()),
            key: CODE_KEY.into(),
        });
        let Some(reference) = code.config_map_ref.as_ref().or(candidate_ref.as_ref()) else { return Ok(None) };
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

//! `SporeNode`: one identity in the Spore Mesh. The operator runs it as a node-agent
//! StatefulSet with its identity Secret, config, Services and storage.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, GpuRequest, SecretKeyRef};

/// Desired state of a node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sporemesh.io",
    version = "v1alpha1",
    kind = "SporeNode",
    namespaced,
    status = "SporeNodeStatus",
    shortname = "snode",
    category = "spore",
    doc = "A Spore Mesh node: one signing identity, run as a node-agent by the operator.",
    printcolumn(name = "Node ID", type_ = "string", json_path = ".status.nodeIdShort"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Peers", type_ = "integer", json_path = ".status.peers"),
    printcolumn(name = "Records", type_ = "integer", json_path = ".status.records.total"),
    printcolumn(name = "Best val_bpb", type_ = "number", json_path = ".status.best.valBpb"),
    printcolumn(name = "Research", type_ = "boolean", json_path = ".spec.research.enabled"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct SporeNodeSpec {
    /// The Secret holding `private_key` (the Ed25519 seed as 64 hex characters). When absent
    /// the operator creates `<name>-identity` with a fresh key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_secret_name: Option<String>,
    /// Node-agent image; the chart's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub gossip: GossipSpec,
    #[serde(default)]
    pub bridge: BridgeSpec,
    #[serde(default)]
    pub research: ResearchSpec,
    #[serde(default)]
    pub gpu: GpuRequest,
    /// Extra node selector for training pods (the GPU class adds its own label).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Extra tolerations for training pods (the `nvidia.com/gpu` taint is tolerated already).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default)]
    pub verification: VerificationSpec,
    #[serde(default)]
    pub storage: StorageSpec,
    #[serde(default)]
    pub retention: RetentionSpec,
    /// The task's data prepared once on a volume, instead of in every training pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataSpec>,
}

/// A data cache on a PersistentVolumeClaim, filled once with `spore data fetch` and `spore data
/// prepare` run with `SPORE_DATA_CACHE=<volume>/data` (its validation shard then lands in
/// `<volume>/data-val`). Training pods mount `data` read-only; only the evaluation step sees the
/// validation shard, copied (and checked) into its own volume by a step before it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSpec {
    /// The claim (ReadOnlyMany or ReadWriteMany where pods run on several nodes).
    #[schemars(length(min = 1, max = 253))]
    pub volume_claim_name: String,
    /// `climbmix` (autoresearch's task) or `python-stdlib`.
    #[serde(default = "default_dataset")]
    #[schemars(regex(pattern = r"^(climbmix|python-stdlib)$"))]
    pub dataset: String,
}

fn default_dataset() -> String {
    "climbmix".into()
}

/// How long this node's finished Experiments stay (their records stay in the store and in
/// Postgres whatever this says).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Seconds after an Experiment finished that it is deleted, with its pod and code
    /// ConfigMap, once nothing is lost: its record is published (a run that never started, its
    /// candidate refused, has none to wait for). 0 keeps them all.
    #[serde(default = "default_finished_experiment_seconds")]
    #[schemars(range(max = 31_536_000))]
    pub finished_experiment_seconds: u32,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec { finished_experiment_seconds: default_finished_experiment_seconds() }
    }
}

/// A week.
fn default_finished_experiment_seconds() -> u32 {
    7 * 86_400
}

/// How the node's gossip port is reachable.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GossipSpec {
    #[serde(default = "default_gossip_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    #[serde(default)]
    pub service_type: ServiceType,
}

impl Default for GossipSpec {
    fn default() -> Self {
        GossipSpec { port: default_gossip_port(), service_type: ServiceType::default() }
    }
}

fn default_gossip_port() -> u16 {
    7470
}

/// Service type of the gossip Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// What crosses between the lab and the public mesh.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeSpec {
    /// Public gossip peers, `host:port`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(regex(pattern = r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$")))]
    pub public_peers: Vec<String>,
    #[serde(default)]
    pub export: ExportPolicy,
    #[serde(default)]
    pub import: ImportPolicy,
    /// Messages per second accepted from each public peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_messages_per_second: Option<u32>,
}

/// Which of our records go to public peers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportPolicy {
    /// Nothing leaves the lab.
    #[default]
    None,
    /// Records this lab's nodes produced.
    Own,
    /// Everything the lab holds.
    All,
}

/// Which public records come into the lab.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportPolicy {
    #[default]
    All,
    /// Only records on the public frontier.
    Frontier,
    None,
}

/// The research loop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResearchSpec {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub proposer: Proposer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,
    /// Training time per experiment.
    #[serde(default = "default_time_budget")]
    #[schemars(range(min = 1, max = 86400))]
    pub time_budget_seconds: u32,
    /// Experiments of this node running at once.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_concurrent_experiments: u32,
}

impl Default for ResearchSpec {
    fn default() -> Self {
        ResearchSpec {
            enabled: false,
            proposer: Proposer::default(),
            llm: None,
            time_budget_seconds: default_time_budget(),
            max_concurrent_experiments: default_max_concurrent(),
        }
    }
}

fn default_time_budget() -> u32 {
    300
}

fn default_max_concurrent() -> u32 {
    1
}

/// Who proposes changes to `train.py`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proposer {
    /// Hyperparameter mutations; needs no key.
    #[default]
    Builtin,
    /// An LLM provider (`llm` must be set).
    Llm,
}

/// An LLM provider and where its key lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmSpec {
    pub provider: LlmProvider,
    #[schemars(length(min = 1, max = 200))]
    pub model: String,
    /// For `openaiCompatible` (Ollama, vLLM, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LlmProvider {
    Groq,
    #[default]
    Anthropic,
    Openai,
    Xai,
    OpenaiCompatible,
}

/// Spot-checks of other nodes' claims.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Base share of incoming records that are re-run.
    #[serde(default = "default_spot_check_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub spot_check_rate: f64,
    #[serde(default = "default_challenge_timeout")]
    #[schemars(range(min = 60, max = 86400))]
    pub challenge_timeout_seconds: u32,
    /// Node ids of verifiers the lab trusts: their votes count in every dispute. Any other node
    /// votes only once this node or a trusted verifier has confirmed its work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(regex(pattern = r"^[0-9a-f]{64}$")))]
    pub trusted_verifiers: Vec<String>,
}

impl Default for VerificationSpec {
    fn default() -> Self {
        VerificationSpec {
            enabled: true,
            spot_check_rate: default_spot_check_rate(),
            challenge_timeout_seconds: default_challenge_timeout(),
            trusted_verifiers: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_spot_check_rate() -> f64 {
    0.05
}

fn default_challenge_timeout() -> u32 {
    1800
}

/// The node's persistent volume (DAG store and artifacts).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec { size: default_storage_size(), storage_class_name: None }
    }
}

fn default_storage_size() -> String {
    "10Gi".into()
}

/// Observed state of a node, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SporeNodeStatus {
    /// The node's Ed25519 public key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The first 12 characters of `nodeId`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id_short: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordCounts>,
    /// Best kept result overall.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestResult>,
    /// Best `val_bpb` per GPU class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub best_val_bpb_by_class: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Records in the node's store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct RecordCounts {
    pub total: u64,
    pub keep: u64,
    pub discard: u64,
    pub crash: u64,
}

/// A frontier record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BestResult {
    pub val_bpb: f64,
    pub cid: String,
    pub gpu_class: String,
}

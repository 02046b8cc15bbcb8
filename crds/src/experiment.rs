//! `Experiment`: one training run. The spec is immutable once created (a different run is a
//! different Experiment); the operator turns it into one GPU training pod and writes the result
//! into the status, and the owning node's agent signs and publishes it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, GpuRequest, TrainingResources};

/// Desired run. Immutable: the apiserver refuses any change (CEL `self == oldSelf`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "sporemesh.io",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "spore",
    doc = "One fixed-budget training run of a candidate train.py, judged against its parent.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "val_bpb", type_ = "number", json_path = ".status.metrics.valBpb"),
    printcolumn(name = "Δ", type_ = "number", json_path = ".status.deltaValBpb"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".status.decision"),
    printcolumn(name = "GPU", type_ = "string", json_path = ".status.gpuClass"),
    printcolumn(name = "CID", type_ = "string", json_path = ".status.publishedCidShort"),
    printcolumn(name = "Description", type_ = "string", json_path = ".spec.description", priority = 1),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("Experiment spec is immutable: create a new Experiment instead"))]
#[x_kube(validation = Rule::new("self.purpose == 'verify' ? has(self.verifyCid) : !has(self.verifyCid)").message("verifyCid is required when purpose is verify, and only then"))]
pub struct ExperimentSpec {
    /// Name of the SporeNode (same namespace) that owns, signs and publishes this run.
    #[schemars(length(min = 1, max = 253))]
    pub node: String,
    /// CID of the parent record whose `train.py` this run changes; absent for a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub parent_cid: Option<String>,
    pub code: ExperimentCode,
    #[serde(default)]
    #[schemars(length(max = 500))]
    pub description: String,
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub hypothesis: String,
    /// Training time; the pod's deadline is this plus a margin.
    #[serde(default = "default_time_budget")]
    #[schemars(range(min = 1, max = 86400))]
    pub time_budget_seconds: u32,
    #[serde(default)]
    pub purpose: Purpose,
    /// The record to re-run, when `purpose` is `verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub verify_cid: Option<String>,
    /// GPUs for the pod; the SporeNode's request when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
    /// CPU, memory and local disk for each step of the pod; the operator's defaults where unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<TrainingResources>,
}

fn default_time_budget() -> u32 {
    300
}

/// Where the candidate `train.py` comes from: exactly one source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.inline), has(self.configMapRef), has(self.diff)].filter(x, x).size() == 1").message("set exactly one of inline, configMapRef, diff"))]
pub struct ExperimentCode {
    /// The whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub inline: Option<String>,
    /// A ConfigMap key holding the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapCodeRef>,
    /// A unified diff against the parent's `train.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub diff: Option<String>,
}

/// A key of a ConfigMap in the Experiment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapCodeRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "default_code_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_code_key() -> String {
    "train.py".into()
}

/// Why the run exists.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// A new candidate from the research loop (or a person).
    #[default]
    Research,
    /// A re-run of someone's claim (`verifyCid`).
    Verify,
}

/// Where a run is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExperimentPhase {
    /// Accepted, not yet considered by the operator.
    #[default]
    Pending,
    /// Waiting for GPUs or for the node's concurrency limit.
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// The keep/discard/crash verdict against the parent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Keep,
    Discard,
    Crash,
}

/// What training reported (from the pod's termination message, never a file the code wrote).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentMetrics {
    pub val_bpb: f64,
    pub num_steps: i64,
    pub num_params: i64,
    pub peak_vram_mb: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_seconds: Option<f64>,
}

/// Where the run happened, as `spore exec` probed it in the pod (the record carries it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunEnvironment {
    /// The CUDA device name with spaces as `_` (as the Python peer records it), or `cpu`.
    pub gpu_model: String,
    pub cuda_version: String,
    pub torch_version: String,
    /// The training data's identity and SHA-256 of `prepare.py`.
    pub dataset_cid: String,
    pub prepare_cid: String,
}

/// Observed state of a run, written by the operator; the node-agent that publishes it writes
/// `publishedCid`, the decision against the parent and the parent's `val_bpb`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(default)]
    pub phase: ExperimentPhase,
    /// The training pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ExperimentMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<RunEnvironment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_val_bpb: Option<f64>,
    /// `metrics.valBpb − parentValBpb`; negative is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_val_bpb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_cid: Option<String>,
    /// The first 12 characters of `publishedCid`, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_cid_short: Option<String>,
    /// A human-readable reason for the current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Why the node-agent could not make the candidate `train.py` of a `diff` run (it applies
    /// the diff to the parent's code); the operator then fails the run without starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_error: Option<String>,
}

/// The ConfigMap holding an Experiment's whole `train.py` when the spec does not name one: the
/// operator's copy of `code.inline`, or the node-agent's result of applying `code.diff`.
pub fn code_config_map_name(experiment: &str) -> String {
    format!("{experiment}-code")
}

/// The key of `train.py` in that ConfigMap.
pub const CODE_KEY: &str = "train.py";

/// Label on an Experiment's training pod and code ConfigMap: the Experiment's name.
pub const EXPERIMENT_LABEL: &str = "sporemesh.io/experiment";

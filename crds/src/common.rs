//! Types shared by both resources: GPU requests and status conditions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// The Kubernetes extended resource that device plugins advertise for NVIDIA GPUs.
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Pattern of a CID: 64 lowercase hex characters.
pub const CID_PATTERN: &str = r"^[0-9a-f]{64}$";

/// How many GPUs of which kind one training pod asks for (by default one GPU of any class).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// GPUs per training pod. 0 runs on CPU (the tiny profile).
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 0, max = 64))]
    pub count: u32,
    /// Extended resource name; `nvidia.com/gpu` unless the cluster's device plugin differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub resource_name: Option<String>,
    /// GPU class (normalised, e.g. `H100`, `RTX_4090`); selects nodes by their
    /// `nvidia.com/gpu.product` label and groups results on the frontier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub gpu_class: Option<String>,
}

fn default_gpu_count() -> u32 {
    1
}

impl Default for GpuRequest {
    fn default() -> Self {
        GpuRequest { count: default_gpu_count(), resource_name: None, gpu_class: None }
    }
}

/// What each step of a training pod may use besides GPUs; each is both the request and the
/// limit of both steps, so a candidate that takes more is throttled (CPU) or killed (memory,
/// local disk) by the kubelet, never its neighbours. Unset fields take the operator's defaults
/// (`--training-cpu`, `--training-memory`, `--training-ephemeral-storage`). Each is a
/// Kubernetes quantity (`4`, `500m`, `32Gi`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"))]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"))]
    pub memory: Option<String>,
    /// Local disk: the containers' writable layers and logs and the pod's volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"))]
    pub ephemeral_storage: Option<String>,
}

impl TrainingResources {
    /// These, with `defaults` where unset.
    pub fn or(&self, defaults: &TrainingResources) -> TrainingResources {
        TrainingResources {
            cpu: self.cpu.clone().or_else(|| defaults.cpu.clone()),
            memory: self.memory.clone().or_else(|| defaults.memory.clone()),
            ephemeral_storage: self.ephemeral_storage.clone().or_else(|| defaults.ephemeral_storage.clone()),
        }
    }
}

/// A key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

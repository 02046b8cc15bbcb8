//! GPU admission: whether the cluster has room for a training pod's GPUs, by the operator's own
//! accounting, before the pod is created.
//!
//! In a burst, creating a pod for every Experiment and letting the scheduler keep the rest
//! `Unschedulable` costs the API server a pod, a ConfigMap, scheduler status writes and events
//! for each waiting Experiment (as batch queueing systems such as Kueue observe). Instead the
//! operator counts, per GPU resource, what the nodes a pod could land on offer and what its own
//! live training pods take, and keeps an Experiment `Queued` without a pod while it would not fit.
//!
//! The accounting may only err towards admitting: pods of other workloads are not counted, nor is
//! node affinity or anything but the node selector and `NoSchedule`/`NoExecute` taints; a pod
//! admitted on a wrong count waits in the scheduler as before, and its Experiment shows `Queued`
//! from the pod's `Unschedulable` condition. Clusters that add GPU nodes on demand (an
//! autoscaler reacts to pending pods) turn admission off.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// What a pod's GPUs meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Room {
    /// The pod asks for no extended GPU resource: nothing to count.
    NotCounted,
    /// Its GPUs are free on the nodes it could land on.
    Fits,
    /// They are not: `taken` of `total` are held by live training pods.
    Full { resource: String, asked: u64, taken: u64, total: u64 },
}

impl Room {
    /// Why an Experiment waits, for its status.
    pub fn reason(&self) -> Option<String> {
        match self {
            Room::Full { resource, total: 0, .. } => {
                Some(format!("no schedulable node it may run on offers {resource}"))
            }
            Room::Full { resource, asked, taken, total } => Some(format!(
                "{taken} of {total} {resource} on the nodes it may run on are taken by training pods; it needs {asked}"
            )),
            Room::NotCounted | Room::Fits => None,
        }
    }
}

/// Whether `pod` fits beside the live training pods `others` on `nodes`.
pub fn room<'a>(pod: &Pod, nodes: &[&Node], others: impl IntoIterator<Item = &'a Pod>) -> Room {
    let Some((resource, asked)) = gpu_request(pod) else { return Room::NotCounted };
    let eligible: Vec<&Node> = nodes.iter().copied().filter(|node| may_run_on(pod, node)).collect();
    let total: u64 = eligible.iter().map(|node| allocatable(node, &resource)).sum();
    let eligible: BTreeSet<&str> = eligible.iter().filter_map(|node| node.metadata.name.as_deref()).collect();
    let selector = node_selector(pod);
    let taken: u64 = others
        .into_iter()
        .filter(|other| other.metadata.name != pod.metadata.name || other.metadata.namespace != pod.metadata.namespace)
        .filter(|other| live(other))
        .filter(|other| match other.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(bound) => eligible.contains(bound),
            None => node_selector(other) == selector,
        })
        .filter_map(|other| gpu_request(other).filter(|(r, _)| *r == resource).map(|(_, n)| n))
        .sum();
    if taken.saturating_add(asked) <= total { Room::Fits } else { Room::Full { resource, asked, taken, total } }
}

/// A pod that is (or may be) pending or running.
pub fn live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Pending" | "Running") | None)
}

/// The GPU resource a pod asks for and how many: as the scheduler counts, the larger of the
/// containers' sum and any one init container (whose requests are not added to the pod's).
pub fn gpu_request(pod: &Pod) -> Option<(String, u64)> {
    let spec = pod.spec.as_ref()?;
    let mut sum: BTreeMap<String, u64> = BTreeMap::new();
    for container in &spec.containers {
        for (resource, count) in gpu_resources(container) {
            *sum.entry(resource).or_default() += count;
        }
    }
    for container in spec.init_containers.iter().flatten() {
        for (resource, count) in gpu_resources(container) {
            let entry = sum.entry(resource).or_default();
            *entry = (*entry).max(count);
        }
    }
    sum.into_iter().find(|(_, count)| *count > 0)
}

/// A container's extended GPU resources (`<vendor>/gpu`), from its limits or else requests.
fn gpu_resources(container: &k8s_openapi::api::core::v1::Container) -> Vec<(String, u64)> {
    let Some(resources) = container.resources.as_ref() else { return Vec::new() };
    let mut found: BTreeMap<String, u64> = BTreeMap::new();
    for map in [resources.requests.as_ref(), resources.limits.as_ref()].into_iter().flatten() {
        for (name, quantity) in map {
            if name.ends_with("/gpu")
                && let Some(count) = whole(quantity)
            {
                found.insert(name.clone(), count);
            }
        }
    }
    found.into_iter().collect()
}

/// An extended resource's quantity: a whole number.
fn whole(quantity: &Quantity) -> Option<u64> {
    quantity.0.trim().parse().ok()
}

fn allocatable(node: &Node, resource: &str) -> u64 {
    node.status.as_ref().and_then(|s| s.allocatable.as_ref()).and_then(|a| a.get(resource)).and_then(whole).unwrap_or(0)
}

fn node_selector(pod: &Pod) -> BTreeMap<String, String> {
    pod.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default()
}

/// The node is schedulable, carries the pod's node selector, meets its required node affinity
/// (the GPU class), and has no taint the pod does not tolerate that keeps pods off.
fn may_run_on(pod: &Pod, node: &Node) -> bool {
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        return false;
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if !node_selector(pod).iter().all(|(k, v)| labels.get(k) == Some(v)) {
        return false;
    }
    if !pod.spec.as_ref().is_none_or(|s| super::gpu_class::affinity_allows(s, node)) {
        return false;
    }
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.clone()).unwrap_or_default();
    spec.and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|taint| matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute"))
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Kubernetes' toleration matching.
fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration.effect.as_deref().is_some_and(|e| !e.is_empty() && e != taint.effect) {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    match toleration.operator.as_deref() {
        Some("Exists") => key.is_empty() || key == taint.key,
        _ => {
            key == taint.key
                && toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests;

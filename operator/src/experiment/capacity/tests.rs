use super::*;

fn node(name: &str, gpus: u64, labels: serde_json::Value, spec: serde_json::Value) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": {"cpu": "32", "nvidia.com/gpu": gpus.to_string()}}
    }))
    .unwrap()
}

fn gpu_node(name: &str, gpus: u64) -> Node {
    node(
        name,
        gpus,
        serde_json::json!({"sporemesh.io/gpu-class": "h100"}),
        serde_json::json!({"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}),
    )
}

/// A training pod as the operator writes it: the GPU limit on both steps, the GPU toleration.
fn pod(name: &str, gpus: u64, selector: serde_json::Value, bound: Option<&str>, phase: Option<&str>) -> Pod {
    let limits = serde_json::json!({"nvidia.com/gpu": gpus.to_string()});
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "lab"},
        "spec": {
            "nodeName": bound,
            "nodeSelector": selector,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "initContainers": [{"name": "train", "resources": {"limits": limits}}],
            "containers": [{"name": "evaluate", "resources": {"limits": limits}}]
        },
        "status": phase.map(|p| serde_json::json!({"phase": p}))
    }))
    .unwrap()
}

fn any() -> serde_json::Value {
    serde_json::json!({})
}

#[test]
fn counts_the_larger_of_init_and_regular_containers() {
    assert_eq!(gpu_request(&pod("a", 2, any(), None, None)), Some(("nvidia.com/gpu".into(), 2)));
    let mut two_containers = pod("b", 1, any(), None, None);
    let spec = two_containers.spec.as_mut().unwrap();
    spec.containers.push(spec.containers[0].clone());
    assert_eq!(gpu_request(&two_containers), Some(("nvidia.com/gpu".into(), 2)));
    assert_eq!(gpu_request(&pod("c", 0, any(), None, None)), None, "no GPU asked, nothing counted");
}

#[test]
fn a_pod_fits_until_the_training_pods_take_every_gpu() {
    let nodes = [gpu_node("g1", 8), gpu_node("g2", 8)];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let running: Vec<Pod> = (0..15).map(|i| pod(&format!("r{i}"), 1, any(), Some("g1"), Some("Running"))).collect();
    let new = pod("new", 1, any(), None, None);
    assert_eq!(room(&new, &nodes, &running), Room::Fits);
    let mut full = running.clone();
    full.push(pod("r15", 1, any(), None, None));
    let verdict = room(&new, &nodes, &full);
    assert_eq!(verdict, Room::Full { resource: "nvidia.com/gpu".into(), asked: 1, taken: 16, total: 16 });
    assert_eq!(
        verdict.reason().unwrap(),
        "16 of 16 nvidia.com/gpu on the nodes it may run on are taken by training pods; it needs 1"
    );
    // A finished or deleting pod frees its GPU; the pod itself is not counted against itself.
    full[0].status = Some(serde_json::from_value(serde_json::json!({"phase": "Succeeded"})).unwrap());
    assert_eq!(room(&new, &nodes, &full), Room::Fits);
    full[0] = new.clone();
    assert_eq!(room(&new, &nodes, &full), Room::Fits);
    let two = room(&pod("two", 2, any(), None, None), &nodes, &full);
    assert_eq!(two, Room::Full { resource: "nvidia.com/gpu".into(), asked: 2, taken: 16, total: 16 });
}

#[test]
fn only_nodes_the_pod_may_run_on_count() {
    let plain = node("cpu", 0, any(), any());
    let other_class = node("a100", 8, serde_json::json!({"sporemesh.io/gpu-class": "a100"}), any());
    let cordoned = node(
        "cordoned",
        8,
        serde_json::json!({"sporemesh.io/gpu-class": "h100"}),
        serde_json::json!({"unschedulable": true}),
    );
    let tainted = node(
        "tainted",
        8,
        serde_json::json!({"sporemesh.io/gpu-class": "h100"}),
        serde_json::json!({"taints": [{"key": "maintenance", "effect": "NoExecute"}]}),
    );
    let soft = node(
        "soft",
        4,
        serde_json::json!({"sporemesh.io/gpu-class": "h100"}),
        serde_json::json!({"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}),
    );
    let h100 = gpu_node("h100", 8);
    let nodes = [&plain, &other_class, &cordoned, &tainted, &soft, &h100];
    let wants_h100 = pod("p", 16, serde_json::json!({"sporemesh.io/gpu-class": "h100"}), None, None);
    assert_eq!(
        room(&wants_h100, &nodes, &[]),
        Room::Full { resource: "nvidia.com/gpu".into(), asked: 16, taken: 0, total: 12 },
        "h100 (8) and the PreferNoSchedule node (4) only"
    );
    // Pods bound elsewhere, or waiting under another selector, do not take from these nodes.
    let elsewhere = pod("x", 8, any(), Some("a100"), Some("Running"));
    let other_selector = pod("y", 8, serde_json::json!({"sporemesh.io/gpu-class": "a100"}), None, Some("Pending"));
    let same_selector = pod("z", 5, serde_json::json!({"sporemesh.io/gpu-class": "h100"}), None, Some("Pending"));
    let wants_eight = pod("q", 8, serde_json::json!({"sporemesh.io/gpu-class": "h100"}), None, None);
    assert_eq!(room(&wants_eight, &nodes, [&elsewhere, &other_selector]), Room::Fits);
    assert_eq!(
        room(&wants_eight, &nodes, [&elsewhere, &other_selector, &same_selector]),
        Room::Full { resource: "nvidia.com/gpu".into(), asked: 8, taken: 5, total: 12 }
    );
    let nowhere = pod("n", 1, serde_json::json!({"sporemesh.io/gpu-class": "b200"}), None, None);
    let verdict = room(&nowhere, &nodes, &[]);
    assert_eq!(verdict.reason().unwrap(), "no schedulable node it may run on offers nvidia.com/gpu");
}

#[test]
fn tolerations_match_as_kubernetes_matches_them() {
    let taint = |key: &str, value: Option<&str>, effect: &str| Taint {
        key: key.into(),
        value: value.map(Into::into),
        effect: effect.into(),
        time_added: None,
    };
    let toleration = |key: Option<&str>, operator: &str, value: Option<&str>, effect: Option<&str>| Toleration {
        key: key.map(Into::into),
        operator: Some(operator.into()),
        value: value.map(Into::into),
        effect: effect.map(Into::into),
        toleration_seconds: None,
    };
    let gpu = taint("nvidia.com/gpu", Some("present"), "NoSchedule");
    assert!(tolerates(&toleration(Some("nvidia.com/gpu"), "Exists", None, Some("NoSchedule")), &gpu));
    assert!(tolerates(&toleration(Some("nvidia.com/gpu"), "Equal", Some("present"), None), &gpu));
    assert!(!tolerates(&toleration(Some("nvidia.com/gpu"), "Equal", Some("absent"), None), &gpu));
    assert!(!tolerates(&toleration(Some("nvidia.com/gpu"), "Exists", None, Some("NoExecute")), &gpu));
    assert!(tolerates(&toleration(None, "Exists", None, None), &gpu), "an empty key with Exists tolerates all");
    assert!(!tolerates(&toleration(Some("other"), "Exists", None, None), &gpu));
}

#[test]
fn a_gpu_class_counts_the_nodes_whose_product_normalises_to_it() {
    let taint = serde_json::json!({"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]});
    let product = |name: &str, product: &str| {
        node(name, 8, serde_json::json!({"nvidia.com/gpu.product": product}), taint.clone())
    };
    let (sxm, pcie, a100) = (
        product("sxm", "NVIDIA-H100-80GB-HBM3"),
        product("pcie", "NVIDIA-H100-PCIe"),
        product("a100", "NVIDIA-A100-SXM4-80GB"),
    );
    let nodes = [&sxm, &pcie, &a100];
    let products = crate::experiment::gpu_class::products_of_class("H100", nodes.iter().copied());
    let mut wants_h100 = pod("p", 24, any(), None, None);
    wants_h100.spec.as_mut().unwrap().affinity = Some(crate::experiment::gpu_class::class_affinity("H100", &products));
    assert_eq!(
        room(&wants_h100, &nodes, &[]),
        Room::Full { resource: "nvidia.com/gpu".into(), asked: 24, taken: 0, total: 16 },
        "the two H100 products, not the A100"
    );
}

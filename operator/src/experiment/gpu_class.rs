//! Which nodes a GPU class means. A standard GPU cluster labels its nodes with the device name
//! (the NVIDIA GPU Operator's feature discovery: `nvidia.com/gpu.product`, e.g.
//! `NVIDIA-H100-80GB-HBM3`); the frontier groups results by the class that name normalises to
//! (`spore_spec::gpu_class`: `H100`). A training pod of class C may run on a node labelled
//! `sporemesh.io/gpu-class=C` (the lab's override, which wins), or on a node without that label
//! whose product normalises to C. The products come from the nodes the operator sees when it
//! creates the pod; the scheduler and the operator's GPU admission read the same node affinity.

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSpec,
};

use super::pod::GPU_CLASS_LABEL;

/// The device name label of NVIDIA's GPU feature discovery.
pub const PRODUCT_LABEL: &str = "nvidia.com/gpu.product";

/// The distinct products among `nodes` that normalise to `class`, sorted.
pub fn products_of_class<'a>(class: &str, nodes: impl IntoIterator<Item = &'a Node>) -> Vec<String> {
    let mut products: Vec<String> = nodes
        .into_iter()
        .filter_map(|node| node.metadata.labels.as_ref()?.get(PRODUCT_LABEL).cloned())
        .filter(|product| spore_spec::gpu_class(product) == class)
        .collect();
    products.sort();
    products.dedup();
    products
}

fn requirement(key: &str, operator: &str, values: Option<Vec<String>>) -> NodeSelectorRequirement {
    NodeSelectorRequirement { key: key.into(), operator: operator.into(), values }
}

/// The node affinity of a pod of `class`, given the products that normalise to it.
pub fn class_affinity(class: &str, products: &[String]) -> Affinity {
    let mut terms = vec![NodeSelectorTerm {
        match_expressions: Some(vec![requirement(GPU_CLASS_LABEL, "In", Some(vec![class.into()]))]),
        ..NodeSelectorTerm::default()
    }];
    if !products.is_empty() {
        terms.push(NodeSelectorTerm {
            match_expressions: Some(vec![
                requirement(GPU_CLASS_LABEL, "DoesNotExist", None),
                requirement(PRODUCT_LABEL, "In", Some(products.to_vec())),
            ]),
            ..NodeSelectorTerm::default()
        });
    }
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector { node_selector_terms: terms }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// Whether the pod's required node affinity lets it onto `node` (the scheduler's rule: any term,
/// every expression of it).
pub fn affinity_allows(spec: &PodSpec, node: &Node) -> bool {
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
    else {
        return true;
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    required.node_selector_terms.iter().any(|term| {
        term.match_expressions.iter().flatten().all(|e| {
            let value = labels.get(&e.key);
            let listed = || value.is_some_and(|v| e.values.iter().flatten().any(|w| w == v));
            match e.operator.as_str() {
                "In" => listed(),
                "NotIn" => !listed(),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: &[(&str, &str)]) -> Node {
        let mut node = Node::default();
        node.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        node
    }

    #[test]
    fn a_class_means_its_override_label_or_a_product_that_normalises_to_it() {
        let nodes = [
            node(&[(PRODUCT_LABEL, "NVIDIA-H100-80GB-HBM3")]),
            node(&[(PRODUCT_LABEL, "NVIDIA-H100-PCIe")]),
            node(&[(PRODUCT_LABEL, "NVIDIA-A100-SXM4-80GB")]),
            // The lab says this H100 node is another class: the override wins.
            node(&[(PRODUCT_LABEL, "NVIDIA-H100-80GB-HBM3"), (GPU_CLASS_LABEL, "H100_SHARED")]),
            node(&[(GPU_CLASS_LABEL, "H100")]),
            node(&[]),
        ];
        let products = products_of_class("H100", &nodes);
        assert_eq!(products, ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"]);
        let spec = PodSpec { affinity: Some(class_affinity("H100", &products)), ..PodSpec::default() };
        let allowed: Vec<bool> = nodes.iter().map(|n| affinity_allows(&spec, n)).collect();
        assert_eq!(allowed, [true, true, false, false, true, false]);
        // No product of the class in the cluster: the override label alone.
        let spec = PodSpec { affinity: Some(class_affinity("L40S", &[])), ..PodSpec::default() };
        assert!(nodes.iter().all(|n| !affinity_allows(&spec, n)));
        assert!(affinity_allows(&PodSpec::default(), &nodes[5]), "no affinity, no constraint");
    }
}

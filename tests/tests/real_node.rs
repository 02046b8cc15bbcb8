//! The real node: a kubelet and containerd beside the fake GPU nodes, running the project's
//! images as real containers. An Experiment becomes a training pod the kubelet runs under the
//! restricted Pod Security Standard: its train step trains the workspace's model on CPU, its
//! evaluate step measures it with `spore-eval`, and the operator reads the result back from the
//! containers' termination messages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spore_tests::oci::image;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;
use spore_tests::testenv::ports::free_port;
use spore_tests::testenv::real_node::{NODE_LABEL, NODE_NAME};

/// The operator, out of the cluster (the in-cluster install is the chart's test).
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_operator(env: &TestEnv, log: &std::path::Path) -> Operator {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(spore_tests::bins::workspace_bin("spore-operator", "spore-operator"))
        .args(["run", "--leader-election=false"])
        .args(["--agent-image", &image("spore").reference])
        .args(["--training-image", &image("spore-trainer").reference])
        .args(["--metrics-address", &format!("127.0.0.1:{}", free_port().unwrap())])
        .args(["--health-address", &format!("127.0.0.1:{}", free_port().unwrap())])
        .env("KUBECONFIG", env.kubeconfig().unwrap())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start spore-operator");
    Operator(child)
}

fn jsonpath(kubectl: &Kubectl, namespace: &str, what: &str, path: &str) -> String {
    kubectl.run(&["get", "-n", namespace, what, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

#[test]
fn an_experiment_trains_and_is_evaluated_in_real_containers_on_the_real_node() {
    let env = TestEnv::real_node_with_crds("real-node").expect("a control plane with a real node");
    let kubectl = env.kubectl().unwrap();
    let nodes =
        kubectl.run(&["get", "node", NODE_NAME, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}"], None);
    assert!(nodes.unwrap().starts_with("containerd://"));

    kubectl.run(&["create", "namespace", "lab"], None).unwrap();
    kubectl.run(&["label", "namespace", "lab", "pod-security.kubernetes.io/enforce=restricted"], None).unwrap();
    let _operator = start_operator(&env, &env.dir().join("logs/operator.log"));
    let train_py = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../workspace/train.py")).unwrap();
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "lab"},
             "spec": {"research": {"enabled": false}, "gpu": {"count": 0},
                      "nodeSelector": {NODE_LABEL: "true"}}},
            {"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "baseline"},
             "spec": {"node": "lab", "code": {"inline": train_py}, "timeBudgetSeconds": 20,
                      "description": "the workspace's train.py on CPU"}}
        ]
    });
    kubectl.run(&["apply", "-n", "lab", "-f", "-"], Some(&manifest.to_string())).unwrap();

    let deadline = Instant::now() + Duration::from_secs(420);
    let phase = loop {
        let phase = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.phase}");
        if phase == "Succeeded" || phase == "Failed" || Instant::now() > deadline {
            break phase;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let pod = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.pod}");
    let logs = |container: &str| {
        kubectl.run(&["logs", "-n", "lab", &pod, "-c", container], None).unwrap_or_else(|e| e.to_string())
    };
    let status = kubectl.run(&["get", "-n", "lab", "experiment/baseline", "-o", "yaml"], None).unwrap_or_default();
    assert_eq!(
        phase,
        "Succeeded",
        "{status}\n--- train ---\n{}\n--- evaluate ---\n{}",
        logs("train"),
        logs("evaluate")
    );

    // It ran on the real node, as the restricted standard demands.
    assert_eq!(jsonpath(&kubectl, "lab", &format!("pod/{pod}"), "{.spec.nodeName}"), NODE_NAME);
    // The numbers came from real training and spore-eval's measurement.
    let val_bpb: f64 = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.metrics.valBpb}").parse().unwrap();
    assert!(val_bpb > 1.0 && val_bpb < 9.0, "{status}");
    assert!(logs("evaluate").contains("[spore] evaluator: val_bpb"), "{}", logs("evaluate"));
    let listed = kubectl.run(&["get", "experiments", "-n", "lab"], None).unwrap();
    assert!(listed.contains("Succeeded") && listed.contains(&format!("{val_bpb}")[..4]), "{listed}");
}

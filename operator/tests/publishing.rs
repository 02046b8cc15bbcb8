//! Publishing by the node-agent, on a real control plane with kwok GPU nodes: the operator
//! runs Experiments as pods (completion driven by pod annotations), a real `spore run
//! --kubernetes-node` signs and publishes each finished one and writes the CID and its
//! decision against the parent back into the status; for a diff run it first writes the
//! candidate the pod mounts. The operator holds no key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_operator::experiment::controller;
use spore_spec::ExperimentRecord;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, free_port, wait_until_or};
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";

fn experiment(name: &str, parent: Option<&str>, code: &str, description: &str) -> String {
    let parent = parent.map(|p| format!("  parentCid: {p}\n")).unwrap_or_default();
    format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata:\n  name: {name}\n  annotations: \
         {{sporemesh.io/agent-model: test-llm}}\nspec:\n  node: lab-node\n{parent}  code: {{inline: {code:?}}}\n  \
         description: {description:?}\n  timeBudgetSeconds: 300\n  gpu: {{count: 1, gpuClass: H100}}\n"
    )
}

/// An Experiment whose candidate is a diff against `parent`'s `train.py`.
fn diff_experiment(name: &str, parent: &str, diff: &str) -> String {
    let yaml = experiment(name, Some(parent), "", "a diff");
    assert!(yaml.contains(r#"code: {inline: ""}"#), "{yaml}");
    yaml.replace(r#"code: {inline: ""}"#, &format!("code: {{diff: {diff:?}}}"))
}

fn field(kubectl: &Kubectl, name: &str, path: &str) -> String {
    kubectl.run(&["get", "experiment", "-n", NS, name, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

/// Waits for the Experiment's pod to run, then ends it as `spore exec` would.
fn finish(kubectl: &Kubectl, name: &str, exit_code: i32, message: &str) {
    wait_until_or(
        Duration::from_secs(60),
        &format!("{name} to run"),
        || field(kubectl, name, "{.status.phase}") == "Running",
        || field(kubectl, name, "{.status}"),
    );
    support::end_pod(kubectl, NS, &format!("{name}-train"), exit_code, message);
}

fn published(kubectl: &Kubectl, node: &SporeNode, name: &str) -> String {
    let mut cid = String::new();
    wait_until_or(
        Duration::from_secs(60),
        &format!("{name} to be published"),
        || {
            cid = field(kubectl, name, "{.status.publishedCid}");
            !cid.is_empty()
        },
        || format!("{}\n{}", field(kubectl, name, "{.status}"), node.log()),
    );
    cid
}

fn stored(node: &SporeNode, cid: &str) -> ExperimentRecord {
    let line = node.export().into_iter().find(|l| l.contains(cid)).expect("the record is in the node's store");
    let record = ExperimentRecord::from_json(&line).unwrap();
    assert_eq!(record.compute_cid(), cid);
    record
}

const METRICS: &str = r#""num_steps": 953, "num_params": 50331648, "peak_vram_mb": 45060.2, "gpu_model": "NVIDIA_H100_80GB_HBM3", "cuda_version": "12.8", "torch_version": "2.13.0", "dataset_cid": "7f07aa68", "prepare_cid": "pp""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_agent_signs_and_publishes_finished_experiments() {
    let env = TestEnv::kubernetes_with_crds("publish-test", 4).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let ctx = support::operator_context(&env).await;
    let operator = tokio::spawn(controller::run(ctx));

    // The SporeNode whose live status its agent writes (no SporeNode controller runs here).
    let sporenode = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec: {}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(sporenode)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let kubeconfig = env.kubeconfig().unwrap().to_string_lossy().into_owned();
    let agent_args: Vec<String> =
        ["--kubernetes-node", "lab-node", "--kubernetes-namespace", NS].iter().map(|s| s.to_string()).collect();
    let mut node = SporeNode::start_with_env(
        &workspace_bin("spore-agent", "spore"),
        data.path(),
        free_port().unwrap(),
        &agent_args,
        &[("KUBECONFIG", &kubeconfig)],
    );
    let k = kubectl.clone();
    let node = tokio::task::spawn_blocking(move || {
        // A baseline: kept, with what the pod reported.
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&experiment("baseline", None, "LR = 0.04\n", "baseline"))).unwrap();
        finish(&k, "baseline", 0, &format!(r#"{{"val_bpb": 0.9931, {METRICS}}}"#));
        let base = published(&k, &node, "baseline");
        assert_eq!(field(&k, "baseline", "{.status.decision}"), "keep");
        let condition = |name: &str| field(&k, name, r#"{.status.conditions[?(@.type=="Published")].reason}"#);
        wait_until_or(
            Duration::from_secs(30),
            "the Published condition",
            || condition("baseline") == "Published",
            || field(&k, "baseline", "{.status.conditions}"),
        );
        assert_eq!(field(&k, "baseline", "{.status.publishedCidShort}"), &base[..12]);
        let record = stored(&node, &base);
        assert_eq!(record.val_bpb.as_f64(), 0.9931);
        assert_eq!(record.gpu_model, "NVIDIA_H100_80GB_HBM3");
        assert_eq!((record.torch_version.as_str(), record.dataset_cid.as_str()), ("2.13.0", "7f07aa68"));
        assert_eq!(record.agent_model, "test-llm");
        assert_eq!(record.code_cid, spore_spec::cid::cid_of(b"LR = 0.04\n"));
        assert_eq!(record.node_id, std::fs::read_to_string(node.data_dir.join("identity/node_id")).unwrap().trim());

        // A worse child: discarded, with its diff and the delta against the parent.
        let child = experiment("child", Some(&base), "LR = 0.05\n", "raise LR");
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&child)).unwrap();
        finish(&k, "child", 0, &format!(r#"{{"val_bpb": 0.9990, {METRICS}}}"#));
        let child_cid = published(&k, &node, "child");
        assert_eq!(field(&k, "child", "{.status.decision}"), "discard");
        assert_eq!(field(&k, "child", "{.status.parentValBpb}"), "0.9931");
        let delta: f64 = field(&k, "child", "{.status.deltaValBpb}").parse().unwrap();
        assert!((delta - 0.0059).abs() < 1e-9, "{delta}");
        let record = stored(&node, &child_cid);
        assert_eq!((record.parent.as_deref(), record.depth.as_i64()), (Some(base.as_str()), Some(1)));
        assert!(record.diff.contains("-LR = 0.04") && record.diff.contains("+LR = 0.05"), "{}", record.diff);

        // A crash is published as one.
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&experiment("oom", Some(&base), "LR = 9\n", "huge LR"))).unwrap();
        finish(&k, "oom", 3, "CUDA out of memory");
        let crash = published(&k, &node, "oom");
        assert_eq!(field(&k, "oom", "{.status.decision}"), "crash");
        assert_eq!(stored(&node, &crash).val_bpb.as_f64(), 0.0);

        // A diff run: the agent applies the diff to the baseline's code from its store, the pod
        // mounts that candidate, and the record carries the candidate's CID and the diff as given.
        let diff = "--- train.py\n+++ train.py\n@@ -1 +1 @@\n-LR = 0.04\n+LR = 0.03";
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&diff_experiment("lower", &base, diff))).unwrap();
        finish(&k, "lower", 0, &format!(r#"{{"val_bpb": 0.9900, {METRICS}}}"#));
        let code = k.run(&["get", "configmap", "-n", NS, "lower-code", "-o", "jsonpath={.data.train\\.py}"], None);
        assert_eq!(code.unwrap(), "LR = 0.03\n");
        let lower = published(&k, &node, "lower");
        assert_eq!(field(&k, "lower", "{.status.decision}"), "keep");
        let record = stored(&node, &lower);
        assert_eq!(record.code_cid, spore_spec::cid::cid_of(b"LR = 0.03\n"));
        assert_eq!(record.diff, diff);

        // A diff that does not apply to its parent: refused, failed without a pod, not published.
        let wrong = "@@ -1 +1 @@\n-LR = 0.07\n+LR = 0.08";
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&diff_experiment("wrong", &base, wrong))).unwrap();
        wait_until_or(
            Duration::from_secs(60),
            "the refused diff to fail",
            || field(&k, "wrong", "{.status.phase}") == "Failed",
            || format!("{}\n{}", field(&k, "wrong", "{.status}"), node.log()),
        );
        let message = field(&k, "wrong", "{.status.message}");
        assert!(
            message.starts_with("the candidate could not be made: the diff does not apply to the parent"),
            "{message}"
        );
        assert_eq!(field(&k, "wrong", r#"{.status.conditions[?(@.type=="Succeeded")].reason}"#), "CandidateRefused");
        assert!(k.run(&["get", "pod", "-n", NS, "wrong-train"], None).is_err(), "nothing ran");

        // A parent this node does not hold: the run waits, unpublished, and says so.
        let orphan = experiment("orphan", Some(&"ab".repeat(32)), "LR = 1\n", "orphan");
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&orphan)).unwrap();
        finish(&k, "orphan", 0, &format!(r#"{{"val_bpb": 0.9, {METRICS}}}"#));
        wait_until_or(
            Duration::from_secs(30),
            "the orphan to finish",
            || field(&k, "orphan", "{.status.phase}") == "Succeeded",
            String::new,
        );
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(field(&k, "orphan", "{.status.publishedCid}"), "");
        assert!(node.log().contains("is not in this node's store yet"), "{}", node.log());

        // Restarted, the agent publishes nothing twice.
        node.stop();
        node.restart();
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(node.record_count(), 4, "baseline, child, oom, lower: {}", node.log());
        assert_eq!(field(&k, "wrong", "{.status.publishedCid}"), "", "a run that never ran is not published");
        assert_eq!(field(&k, "baseline", "{.status.publishedCid}"), base);

        // The SporeNode's status says what its agent holds.
        let status = |path: &str| {
            k.run(&["get", "sporenode", "-n", NS, "lab-node", "-o", &format!("jsonpath={path}")], None)
                .unwrap_or_default()
        };
        wait_until_or(
            Duration::from_secs(30),
            "the SporeNode's status to count the records",
            || status("{.status.records.total}") == "4",
            || format!("{}\n{}", status("{.status}"), node.log()),
        );
        assert_eq!(status("{.status.records.keep}/{.status.records.discard}/{.status.records.crash}"), "2/1/1");
        assert_eq!(status("{.status.best.cid}/{.status.best.gpuClass}"), format!("{lower}/H100"));
        assert_eq!(status("{.status.bestValBpbByClass.H100}"), "0.99");
        assert_eq!(status("{.status.peers}"), "0");
        node
    })
    .await
    .unwrap();
    operator.abort();
    drop(node);
    drop(env);
}

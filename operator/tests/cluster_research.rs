//! The research loop in a cluster, on a real control plane with kwok GPU nodes: a real `spore
//! run --kubernetes-node` with training on (and no torch) proposes each run as an Experiment of
//! its SporeNode; the operator runs it as a GPU pod with the SporeNode's request (completion
//! driven by pod annotations); the same agent publishes the finished Experiment, and its loop
//! counts that record, picks it as a parent, keeps `--parallel` runs in flight, and stops after
//! `--max-experiments`. Before the first child it measures its noise: two re-runs of the
//! baseline as `purpose: verify` Experiments, never published, whose spread sets the margin a
//! child must beat its parent by.

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
const BASELINE: &str = include_str!("../../workspace/train.py");
const PREPARE: &[u8] = include_bytes!("../../workspace/prepare.py");

fn field(kubectl: &Kubectl, name: &str, path: &str) -> String {
    kubectl.run(&["get", "experiment", "-n", NS, name, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

/// The research loop's Experiments.
fn loop_runs(kubectl: &Kubectl) -> Vec<String> {
    let path = "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}";
    let listed =
        kubectl.run(&["get", "experiments", "-n", NS, "-l", "sporemesh.io/origin=research-loop", "-o", path], None);
    listed.unwrap_or_default().lines().map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_research_loop_runs_its_experiments_through_the_operator() {
    let env = TestEnv::kubernetes_with_crds("research-test", 4).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let sporenode = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec:\n  \
                     gpu: {count: 1, gpuClass: H100}\n  research: {enabled: true, maxConcurrentExperiments: 2}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(sporenode)).unwrap();
    let ctx = support::operator_context(&env).await;
    let operator = tokio::spawn(controller::run(ctx));

    let data = tempfile::tempdir().unwrap();
    let kubeconfig = env.kubeconfig().unwrap().to_string_lossy().into_owned();
    let args: Vec<String> =
        ["--kubernetes-node", "lab-node", "--kubernetes-namespace", NS, "--max-experiments", "4", "--parallel", "2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    // No --python: the agent never prepares a workspace or runs train.py itself.
    let mut node = SporeNode::start_training_with_env(
        &workspace_bin("spore-agent", "spore"),
        data.path(),
        free_port().unwrap(),
        &args,
        &[("KUBECONFIG", &kubeconfig), ("SPORE_PYTHON", "/nonexistent/python")],
    );
    let k = kubectl.clone();
    let node = tokio::task::spawn_blocking(move || {
        let prepare_cid = spore_spec::cid::cid_of(PREPARE);
        let report = |val_bpb: f64| {
            format!(
                r#"{{"val_bpb": {val_bpb}, "num_steps": 953, "num_params": 50331648, "peak_vram_mb": 45060.2, "gpu_model": "NVIDIA_H100_80GB_HBM3", "cuda_version": "12.8", "torch_version": "2.13.0", "dataset_cid": "7f07aa68", "prepare_cid": "{prepare_cid}"}}"#
            )
        };
        // Waits for `count` new runs of the loop to be running at once, and returns them.
        let mut runs: Vec<String> = Vec::new();
        let mut next_running = |count: usize, what: &str| -> Vec<String> {
            let mut new = Vec::new();
            wait_until_or(
                Duration::from_secs(60),
                what,
                || {
                    new = loop_runs(&k).into_iter().filter(|n| !runs.contains(n)).collect();
                    new.len() == count && new.iter().all(|n| field(&k, n, "{.status.phase}") == "Running")
                },
                || format!("{:?}\n{}", loop_runs(&k), node.log()),
            );
            new.sort_by_key(|n| !n.contains("baseline"));
            runs.extend(new.iter().cloned());
            new
        };
        let end = |name: &str, exit_code: i32, message: &str| {
            let pod = field(&k, name, "{.status.pod}");
            let path = "jsonpath={.spec.initContainers[0].resources.limits}";
            let pod_gpus = k.run(&["get", "pod", "-n", NS, &pod, "-o", path], None).unwrap();
            assert!(pod_gpus.contains(r#""nvidia.com/gpu":"1""#), "the SporeNode's request: {pod_gpus}");
            support::end_pod(&k, NS, &pod, exit_code, message);
            wait_until_or(
                Duration::from_secs(60),
                &format!("{name} to be published"),
                || !field(&k, name, "{.status.publishedCid}").is_empty(),
                || format!("{}\n{}", field(&k, name, "{.status}"), node.log()),
            );
        };
        // The baseline runs alone and keeps.
        let baseline = next_running(1, "the baseline to run");
        assert!(baseline[0].starts_with("lab-node-baseline-"), "{baseline:?}");
        end(&baseline[0], 0, &report(1.0));
        let base = field(&k, &baseline[0], "{.status.publishedCid}");
        // Two re-measurements of the baseline's code, one at a time: σ = 0.002 from three runs,
        // so a child must beat its parent by t(0.95, 2)·√2·σ = 0.0083.
        for (n, val_bpb) in [(1, 1.002), (2, 0.998)] {
            let again = next_running(1, "a re-measurement of the baseline");
            assert!(again[0].starts_with(&format!("lab-node-remeasure{n}-")), "{again:?}");
            assert_eq!(field(&k, &again[0], "{.spec.purpose}"), "verify");
            assert_eq!(field(&k, &again[0], "{.spec.verifyCid}"), base);
            assert_eq!(field(&k, &again[0], "{.spec.code.inline}"), BASELINE);
            let pod = field(&k, &again[0], "{.status.pod}");
            support::end_pod(&k, NS, &pod, 0, &report(val_bpb));
            wait_until_or(
                Duration::from_secs(60),
                "the re-measurement to finish",
                || field(&k, &again[0], "{.status.phase}") == "Succeeded",
                || field(&k, &again[0], "{.status}"),
            );
        }
        // Then two children at once (--parallel 2): one crashes, one beats the baseline.
        let pair = next_running(2, "two children to run at once");
        assert!(pair.iter().all(|n| n.starts_with("lab-node-exp-")), "{pair:?}");
        end(&pair[0], 3, "CUDA out of memory");
        end(&pair[1], 0, &report(0.98));
        // The fourth and last crashes.
        let last = next_running(1, "the fourth run");
        end(&last[0], 3, "CUDA out of memory");
        let stopping = std::time::Instant::now();
        while node.is_running() {
            assert!(stopping.elapsed() < Duration::from_secs(30), "the loop did not stop after 4 runs:\n{}", node.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = node.log();
        assert!(log.contains("research finished experiments=4 keep=2 discard=0 crash=2 remeasured=2"), "{log}");
        assert_eq!(loop_runs(&k).len(), 6, "one Experiment per run, none twice");
        let remeasures: Vec<String> = runs.iter().filter(|n| n.contains("-remeasure")).cloned().collect();
        runs.retain(|n| !n.contains("-remeasure"));
        for again in &remeasures {
            assert_eq!(field(&k, again, "{.status.publishedCid}"), "", "a re-measurement is never published");
        }

        let cid = |name: &str| field(&k, name, "{.status.publishedCid}");
        let base = cid(&runs[0]);
        assert_eq!(field(&k, &runs[0], "{.spec.code.inline}"), BASELINE, "the baseline is the built-in train.py");
        assert_eq!(field(&k, &runs[0], "{.spec.parentCid}"), "");
        assert_eq!(field(&k, &runs[0], "{.metadata.annotations.sporemesh\\.io/agent-model}"), "baseline");
        for child in &runs[1..3] {
            assert_eq!(field(&k, child, "{.spec.parentCid}"), base, "the only comparable parent");
            assert_eq!(field(&k, child, "{.metadata.annotations.sporemesh\\.io/agent-model}"), "spore-mutator");
            assert!(!field(&k, child, "{.spec.description}").is_empty());
        }
        let decisions: Vec<String> = runs.iter().map(|r| field(&k, r, "{.status.decision}")).collect();
        assert_eq!(decisions, ["keep", "crash", "keep", "crash"]);

        // Each run is one signed record in the agent's store, published by the agent once.
        let lines = node.export();
        assert_eq!(lines.len(), 4, "{lines:?}");
        let records: Vec<ExperimentRecord> = lines.iter().map(|l| ExperimentRecord::from_json(l).unwrap()).collect();
        let best = records.iter().find(|r| r.id == cid(&runs[2])).expect("the keep is stored");
        assert_eq!((best.parent.as_deref(), best.val_bpb.as_f64()), (Some(base.as_str()), 0.98));
        assert_eq!((best.prepare_cid.as_str(), best.dataset_cid.as_str()), (prepare_cid.as_str(), "7f07aa68"));
        assert!(best.diff.starts_with("--- "), "the diff against the baseline: {}", best.diff);
        node
    })
    .await
    .unwrap();
    operator.abort();
    drop(node);
    drop(env);
}

//! Retention of finished Experiments on a real control plane (kube-controller-manager's garbage
//! collector included): a run whose record was published goes, with its pod and code
//! ConfigMap, once its SporeNode's `retention.finishedExperimentSeconds` has passed; a finished
//! run that is not published yet stays (its result would be lost).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_operator::experiment::controller;
use spore_tests::nodes::wait_until_or;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";

fn exists(kubectl: &Kubectl, kind: &str, name: &str) -> bool {
    kubectl.run(&["get", kind, "-n", NS, name], None).is_ok()
}

fn phase(kubectl: &Kubectl, name: &str) -> String {
    support::field(kubectl, NS, "experiment", name, "{.status.phase}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_runs_go_after_their_retention_and_unpublished_ones_stay() {
    let env = TestEnv::kubernetes_with_crds("retention", 1).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let node = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec:\n  \
                retention: {finishedExperimentSeconds: 3}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(node)).unwrap();
    let ctx = support::operator_context(&env).await;
    let operator = tokio::spawn(controller::run(ctx));

    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        for name in ["published", "unpublished"] {
            k.run(&["apply", "-n", NS, "-f", "-"], Some(&support::inline_experiment(name))).unwrap();
            wait_until_or(
                Duration::from_secs(60),
                &format!("{name} to run"),
                || phase(&k, name) == "Running",
                || phase(&k, name),
            );
            support::end_pod(&k, NS, &format!("{name}-train"), 0, r#"{"val_bpb": 0.99, "num_steps": 1}"#);
            wait_until_or(
                Duration::from_secs(60),
                &format!("{name} to finish"),
                || phase(&k, name) == "Succeeded",
                || phase(&k, name),
            );
        }
        assert!(exists(&k, "configmap", "published-code") && exists(&k, "pod", "published-train"));
        // The node-agent publishes one of them.
        let published = format!(r#"{{"status": {{"publishedCid": "{}"}}}}"#, "ab".repeat(32));
        k.run(
            &["patch", "experiment", "-n", NS, "published", "--subresource=status", "--type=merge", "-p", &published],
            None,
        )
        .unwrap();
        wait_until_or(
            Duration::from_secs(60),
            "the published run, its pod and its ConfigMap to go",
            || {
                !exists(&k, "experiment", "published")
                    && !exists(&k, "pod", "published-train")
                    && !exists(&k, "configmap", "published-code")
            },
            || k.run(&["get", "experiments,pods,configmaps", "-n", NS], None).unwrap_or_default(),
        );
        // Well past its retention, the unpublished run is still there, with its pod.
        std::thread::sleep(Duration::from_secs(4));
        assert!(exists(&k, "experiment", "unpublished") && exists(&k, "pod", "unpublished-train"));
    })
    .await
    .unwrap();
    operator.abort();
    drop(env);
}

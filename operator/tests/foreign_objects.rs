//! Objects in an Experiment's place, on a real control plane with kwok GPU nodes: a pod named
//! like its training pod that reports a fabulous `val_bpb`, and a ConfigMap named like its code
//! ConfigMap, both made by someone else before the Experiment. Neither is adopted: the
//! Experiment waits, blocked, and says which object is in the way; once the foreign pod is gone
//! it runs in its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_operator::experiment::controller;
use spore_tests::nodes::wait_until_or;
use spore_tests::testenv::TestEnv;

const NS: &str = "lab";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_an_experiment_does_not_own_are_never_adopted() {
    let env = TestEnv::kubernetes_with_crds("foreign-objects", 1).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let ctx = support::operator_context(&env).await;
    let operator = tokio::spawn(controller::run(ctx));

    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        // A pod in the training pod's place, set to end with a fabricated result.
        let sneaky = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sneaky-train\n  labels: {sporemesh.io/experiment: sneaky}\n  \
                      annotations: {sim.sporemesh.io/exit-code: \"0\", sim.sporemesh.io/message: '{\"val_bpb\": 0.01}'}\n\
                      spec: {containers: [{name: train, image: example.invalid/train}]}\n";
        k.run(&["apply", "-n", NS, "-f", "-"], Some(sneaky)).unwrap();
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&support::inline_experiment("sneaky"))).unwrap();
        let blocked = |name: &str, object: &str| {
            wait_until_or(
                Duration::from_secs(60),
                &format!("{name} to be blocked by {object}"),
                || support::field(&k, NS, "experiment", name, "{.status.message}").starts_with(&format!("blocked: a {object}")),
                || support::field(&k, NS, "experiment", name, "{.status}"),
            );
            assert_eq!(support::field(&k, NS, "experiment", name, "{.status.phase}"), "Queued");
            let reason = support::field(&k, NS, "experiment", name, r#"{.status.conditions[?(@.type=="Scheduled")].reason}"#);
            assert_eq!(reason, "ForeignObject");
        };
        blocked("sneaky", "pod named sneaky-train");
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(support::field(&k, NS, "experiment", "sneaky", "{.status.phase}"), "Queued", "nothing was read from it");
        assert_eq!(support::field(&k, NS, "experiment", "sneaky", "{.status.metrics}"), "");

        // Code in the code ConfigMap's place: no pod is made to run it.
        let trojan = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: trojan-code}\ndata: {train.py: \"steal()\"}\n";
        k.run(&["apply", "-n", NS, "-f", "-"], Some(trojan)).unwrap();
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&support::inline_experiment("trojan"))).unwrap();
        blocked("trojan", "ConfigMap named trojan-code");
        assert!(k.run(&["get", "pod", "-n", NS, "trojan-train"], None).is_err(), "nothing ran");

        // The foreign pod removed, the Experiment runs in a pod of its own.
        k.run(&["delete", "pod", "-n", NS, "sneaky-train", "--wait=true"], None).unwrap();
        wait_until_or(
            Duration::from_secs(60),
            "sneaky to run in its own pod",
            || support::field(&k, NS, "experiment", "sneaky", "{.status.phase}") == "Running",
            || support::field(&k, NS, "experiment", "sneaky", "{.status}"),
        );
        let owner = support::field(&k, NS, "pod", "sneaky-train", "{.metadata.ownerReferences[0].uid}");
        assert_eq!(owner, support::field(&k, NS, "experiment", "sneaky", "{.metadata.uid}"));
    })
    .await
    .unwrap();
    operator.abort();
    drop(env);
}

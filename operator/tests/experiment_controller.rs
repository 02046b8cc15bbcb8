//! The Experiment controller against a real control plane with kwok GPU nodes (16 GPUs):
//! scheduling through `nvidia.com/gpu`, queueing, results from termination messages, crashes,
//! deletion, and a run past its deadline. (A restarted operator — a new process taking over
//! without duplicate pods — is in `leader_election.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::time::Duration;

use spore_operator::experiment::controller;
use spore_tests::nodes::{wait_until, wait_until_or};
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";

fn experiment(name: &str) -> String {
    format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  node: lab-node\n  \
         code: {{inline: \"LR = 0.05\\n\"}}\n  timeBudgetSeconds: 300\n  gpu: {{count: 1, gpuClass: H100}}\n"
    )
}

fn phases(kubectl: &Kubectl) -> Vec<String> {
    kubectl
        .run(&["get", "experiments", "-n", NS, "-o", "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}"], None)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count(items: &[String], value: &str) -> usize {
    items.iter().filter(|p| *p == value).count()
}

fn pod_phases(kubectl: &Kubectl) -> Vec<String> {
    kubectl
        .run(
            &[
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                "sporemesh.io/experiment",
                "-o",
                "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}",
            ],
            None,
        )
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn field(kubectl: &Kubectl, kind: &str, name: &str, path: &str) -> String {
    kubectl.run(&["get", kind, "-n", NS, name, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_become_gpu_pods_and_their_results_come_back() {
    // The operator's log, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_env_filter("spore_operator=debug").with_test_writer().try_init();
    let env = TestEnv::kubernetes_with_crds("operator-test", 16).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();

    let ctx = support::operator_context(&env).await;
    let running = tokio::spawn(controller::run(ctx.clone()));

    let all: String = (0..20).map(|i| experiment(&format!("exp-{i:02}"))).collect::<Vec<_>>().join("---\n");
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(&all)).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(90), "16 running and 4 queued", || {
            let p = phases(&k);
            count(&p, "Running") == 16 && count(&p, "Queued") == 4
        })
    })
    .await
    .unwrap();
    let bound: Vec<String> = kubectl
        .run(&["get", "pods", "-n", NS, "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}"], None)
        .unwrap()
        .lines()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(bound.len(), 16);
    assert!(bound.iter().all(|n| n.starts_with("sim-gpu-")), "{bound:?}");
    let queued_message = kubectl
        .run(
            &["get", "experiments", "-n", NS, "-o", r#"jsonpath={.items[?(@.status.phase=="Queued")].status.message}"#],
            None,
        )
        .unwrap();
    // The operator counts the GPUs itself: the four wait without a pod, saying why.
    assert_eq!(
        queued_message
            .matches("waiting for GPUs: 16 of 16 nvidia.com/gpu on the nodes it may run on are taken")
            .count(),
        4,
        "{queued_message}"
    );
    let pods = pod_phases(&kubectl);
    assert_eq!(pods.len(), 16, "no pod for a queued Experiment: {pods:?}");
    // Each pod has its own deny-all policy, in and out, whatever its SporeNode's state.
    let policies = kubectl
        .run(
            &[
                "get",
                "networkpolicies",
                "-n",
                NS,
                "-l",
                "sporemesh.io/experiment",
                "-o",
                "jsonpath={range .items[*]}{.spec.policyTypes}{\"\\n\"}{end}",
            ],
            None,
        )
        .unwrap();
    assert_eq!(policies.lines().filter(|l| l.contains("Ingress") && l.contains("Egress")).count(), 16, "{policies}");

    // Two runs end: one with metrics, one crashing; their GPUs go to queued runs.
    let running_pods: Vec<String> = kubectl
        .run(
            &[
                "get",
                "pods",
                "-n",
                NS,
                "--field-selector=status.phase=Running",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
            None,
        )
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let (good, bad) = (&running_pods[0], &running_pods[1]);
    let metrics = r#"{"val_bpb": 0.9931, "num_steps": 953, "num_params": 50331648, "peak_vram_mb": 45060.2}"#;
    support::end_pod(&kubectl, NS, good, 0, metrics);
    support::end_pod(&kubectl, NS, bad, 3, "CUDA out of memory");
    let good_exp = good.trim_end_matches("-train").to_string();
    let bad_exp = bad.trim_end_matches("-train").to_string();
    let k = kubectl.clone();
    let (g, b) = (good_exp.clone(), bad_exp.clone());
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(90), "results and two more runs started", || {
            let p = phases(&k);
            field(&k, "experiment", &g, "{.status.phase}") == "Succeeded"
                && field(&k, "experiment", &b, "{.status.phase}") == "Failed"
                && count(&p, "Running") == 16
                && count(&p, "Queued") == 2
        })
    })
    .await
    .unwrap();
    assert_eq!(field(&kubectl, "experiment", &good_exp, "{.status.metrics.valBpb}"), "0.9931");
    assert_eq!(field(&kubectl, "experiment", &bad_exp, "{.status.decision}"), "crash");
    // Conditions in the Kubernetes convention (`kubectl wait --for=condition=Succeeded` works).
    let succeeded = r#"{.status.conditions[?(@.type=="Succeeded")].status}"#;
    assert_eq!(field(&kubectl, "experiment", &good_exp, succeeded), "True");
    assert_eq!(field(&kubectl, "experiment", &bad_exp, succeeded), "False");
    let queued = kubectl
        .run(
            &[
                "get",
                "experiments",
                "-n",
                NS,
                "-o",
                r#"jsonpath={.items[?(@.status.phase=="Queued")].status.conditions[?(@.type=="Scheduled")].status}"#,
            ],
            None,
        )
        .unwrap();
    assert!(!queued.is_empty() && queued.split_whitespace().all(|s| s == "False"), "{queued}");
    assert_eq!(
        field(&kubectl, "experiment", &bad_exp, "{.status.message}"),
        "training exited with code 3: CUDA out of memory"
    );
    // The phase changes are Kubernetes Events on the Experiment (`kubectl describe` shows them);
    // they are written beside the reconcile, so they may trail the status a little.
    let k = kubectl.clone();
    let failed = bad_exp.clone();
    tokio::task::spawn_blocking(move || {
        let selector = format!("involvedObject.name={failed}");
        let format = "jsonpath={range .items[*]}{.type} {.reason}: {.message}{\"\\n\"}{end}";
        let events = std::cell::RefCell::new(String::new());
        wait_until_or(
            Duration::from_secs(30),
            "the failed run's events",
            || {
                let seen = k
                    .run(&["get", "events", "-n", NS, "--field-selector", &selector, "-o", format], None)
                    .unwrap_or_default();
                let ok =
                    seen.contains("Warning Failed: training exited with code 3") && seen.contains("Normal Started");
                *events.borrow_mut() = seen;
                ok
            },
            || events.borrow().clone(),
        );
    })
    .await
    .unwrap();

    // Deleting an Experiment removes its pod (owner reference, garbage collector).
    let victim = running_pods[2].clone();
    kubectl.run(&["delete", "experiment", "-n", NS, victim.trim_end_matches("-train")], None).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "the pod of a deleted Experiment to go", || {
            k.run(&["get", "pod", "-n", NS, &victim], None).is_err()
        })
    })
    .await
    .unwrap();
    running.abort();
    let _ = running.await;

    // A pod that outlives its deadline (kwok, like a node that went away, never ends it) is
    // failed by the operator and removed. Here the margin and grace are 1 s: deadline 2 s.
    let mut settings = spore_operator::experiment::pod::PodSettings::new("spore:test");
    (settings.deadline_margin_seconds, settings.overdue_grace_seconds) = (1, 1);
    let short = tokio::spawn(controller::run(support::operator_context_with(&env, settings, &[]).await));
    let slow = "apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {name: slow}\nspec:\n  node: lab-node\n  \
                code: {inline: \"import time\\ntime.sleep(3600)\\n\"}\n  timeBudgetSeconds: 1\n  gpu: {count: 0}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(slow)).unwrap();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), "the overdue run to fail and its pod to go", || {
            field(&k, "experiment", "slow", "{.status.phase}") == "Failed"
                && k.run(&["get", "pod", "-n", NS, "slow-train"], None).is_err()
        })
    })
    .await
    .unwrap();
    let message = field(&kubectl, "experiment", "slow", "{.status.message}");
    assert!(message.starts_with("exceeded its deadline of 2 s"), "{message}");
    assert_eq!(
        field(&kubectl, "experiment", "slow", r#"{.status.conditions[?(@.type=="Succeeded")].reason}"#),
        "DeadlineExceeded"
    );
    assert_eq!(field(&kubectl, "experiment", "slow", "{.status.decision}"), "crash");
    assert!(!field(&kubectl, "experiment", "slow", "{.status.startTime}").is_empty(), "it did start");
    short.abort();
    drop(env);
}

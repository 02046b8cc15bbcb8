//! The Experiment reconcile against a fake API server: which calls it makes, in which order,
//! and what it writes, for each situation an Experiment can be in. Pods and SporeNodes come
//! from the controller's cache (seeded here as its watches would fill it), never from a GET.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use spore_crds::Experiment;

use super::{Context, reconcile};
use crate::experiment::pod::PodSettings;
use crate::mock_api::{Call, client, echo, not_found};

const POD: &str = "/api/v1/namespaces/lab/pods/lr-train";
const PODS: &str = "/api/v1/namespaces/lab/pods";
const STATUS: &str = "/apis/sporemesh.io/v1alpha1/namespaces/lab/experiments/lr/status";
const CONFIGMAPS: &str = "/api/v1/namespaces/lab/configmaps";
const POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/lab/networkpolicies";

fn experiment_json(code: Value, status: Option<Value>) -> Value {
    let mut object = json!({
        "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "lr", "namespace": "lab", "uid": "u-1", "generation": 1},
        "spec": {"node": "lab-node", "code": code, "timeBudgetSeconds": 300, "gpu": {"count": 1}}
    });
    if let Some(status) = status {
        object["status"] = status;
    }
    object
}

fn by_ref() -> Value {
    json!({"configMapRef": {"name": "cand"}})
}

fn running_pod(started: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "lr-train", "namespace": "lab", "labels": {"sporemesh.io/node": "lab-node"},
                        "ownerReferences": [{"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "name": "lr",
                                             "uid": "u-1", "controller": true}]},
           "spec": {"containers": [{"name": "evaluate", "image": "spore:test"}], "activeDeadlineSeconds": 420},
           "status": {"phase": "Running", "startTime": started}})
}

/// A status write is answered with the Experiment carrying that status.
fn status_written(experiment: &Value, call: &Call) -> (StatusCode, Value) {
    let mut answer = experiment.clone();
    answer["status"] = call.body["status"].clone();
    (StatusCode::OK, answer)
}

/// Reconciles `experiment` with `cached` pods and SporeNodes in the cache (and no cluster
/// nodes known: GPUs not counted).
async fn run(
    experiment: Value,
    cached: (Vec<Value>, Vec<Value>),
    handler: impl Fn(&Call) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (String, crate::mock_api::Calls) {
    run_in_cluster(experiment, cached, None, handler).await
}

/// [`run`] with the cluster's nodes known, when `cluster_nodes` is given.
async fn run_in_cluster(
    experiment: Value,
    cached: (Vec<Value>, Vec<Value>),
    cluster_nodes: Option<Vec<Value>>,
    handler: impl Fn(&Call) -> (StatusCode, Value) + Send + Sync + 'static,
) -> (String, crate::mock_api::Calls) {
    let (client, calls) = client(Box::new(handler));
    let mut ctx = Context::new(client, PodSettings::new("spore:test"), Arc::default());
    // GPUs are counted only where the test gives the nodes.
    ctx.gpu_admission = cluster_nodes.is_some();
    let ctx = Arc::new(ctx);
    let pods = cached.0.into_iter().map(|p| serde_json::from_value(p).expect("a Pod")).collect();
    let nodes = cached.1.into_iter().map(|n| serde_json::from_value(n).expect("a SporeNode")).collect();
    ctx.cache.seed(pods, nodes);
    if let Some(cluster_nodes) = cluster_nodes {
        ctx.cache.seed_cluster_nodes(
            cluster_nodes.into_iter().map(|n| serde_json::from_value(n).expect("a Node")).collect(),
        );
    }
    let object: Experiment = serde_json::from_value(experiment).expect("an Experiment");
    let action = reconcile(Arc::new(object), ctx).await.expect("the reconcile succeeds");
    (format!("{action:?}"), calls)
}

#[tokio::test]
async fn a_new_experiment_gets_its_code_and_one_pod_then_a_pending_status() {
    let experiment = experiment_json(json!({"inline": "print(1)\n"}), None);
    let answer = experiment.clone();
    let (action, calls) =
        run(experiment, (vec![], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("POST", CONFIGMAPS) | ("POST", PODS) => echo(call),
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call), // Events
        })
        .await;
    assert_eq!(
        calls.lines(),
        [format!("POST {POLICIES}"), format!("POST {CONFIGMAPS}"), format!("POST {PODS}"), format!("PATCH {STATUS}")]
    );
    let code = calls.body(&format!("POST {CONFIGMAPS}")).unwrap();
    assert_eq!((code["metadata"]["name"].as_str(), code["immutable"].as_bool()), (Some("lr-code"), Some(true)));
    assert_eq!(code["data"]["train.py"], "print(1)\n");
    let pod = calls.body(&format!("POST {PODS}")).unwrap();
    assert_eq!(pod["metadata"]["labels"]["sporemesh.io/experiment"], "lr");
    // The pod's network is closed both ways by a policy of its own, made before it.
    let policy = calls.body(&format!("POST {POLICIES}")).unwrap();
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"]["sporemesh.io/experiment"], "lr");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!((policy["spec"]["ingress"].clone(), policy["spec"]["egress"].clone()), (json!([]), json!([])));
    assert_eq!(policy["metadata"]["ownerReferences"][0]["uid"], "u-1");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap();
    assert_eq!(status["status"]["phase"], "Pending");
    assert_eq!(status["status"]["pod"], "lr-train");
    assert_eq!(action, format!("{:?}", Action::requeue(Duration::from_secs(300))));
}

#[tokio::test]
async fn a_node_at_its_limit_queues_the_experiment_and_creates_no_pod() {
    let experiment = experiment_json(by_ref(), None);
    let answer = experiment.clone();
    let node = json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode",
                      "metadata": {"name": "lab-node", "namespace": "lab"},
                      "spec": {"research": {"maxConcurrentExperiments": 1}}});
    // Another run of the node holds its one slot.
    let mut other = running_pod("2026-12-01T10:00:00Z");
    other["metadata"]["name"] = json!("other-train");
    let (action, calls) = run(experiment, (vec![other], vec![node]), status_patches(answer)).await;
    assert_queued_only(&action, &calls, "waiting for a slot: SporeNode lab-node runs at most 1 experiments at once");
}

/// Answers status writes with the Experiment carrying them, anything else with its own body.
fn status_patches(answer: Value) -> impl Fn(&Call) -> (StatusCode, Value) + Send + Sync + 'static {
    move |call| match call.method.as_str() {
        "PATCH" => status_written(&answer, call),
        _ => echo(call),
    }
}

/// The reconcile wrote only a `Queued` status with `message`, and looks again in 5 s.
fn assert_queued_only(action: &str, calls: &crate::mock_api::Calls, message: &str) {
    assert_eq!(calls.lines(), [format!("PATCH {STATUS}")]);
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap();
    assert_eq!(status["status"]["phase"], "Queued");
    assert_eq!(status["status"]["message"], message);
    assert_eq!(action, format!("{:?}", Action::requeue(Duration::from_secs(5))));
}

#[tokio::test]
async fn no_free_gpu_queues_the_experiment_with_no_code_and_no_pod() {
    let experiment = experiment_json(json!({"inline": "print(1)\n"}), None);
    let answer = experiment.clone();
    let gpu_node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "g1"},
                          "status": {"allocatable": {"nvidia.com/gpu": "1"}}});
    // Another Experiment's pod holds the cluster's one GPU.
    let mut other = running_pod("2026-12-01T10:00:00Z");
    other["metadata"]["name"] = json!("other-train");
    other["spec"]["nodeName"] = json!("g1");
    other["spec"]["containers"][0]["resources"] = json!({"limits": {"nvidia.com/gpu": "1"}});
    let cached = (vec![other.clone()], vec![]);
    let (action, calls) =
        run_in_cluster(experiment.clone(), cached, Some(vec![gpu_node.clone()]), status_patches(answer)).await;
    let message =
        "waiting for GPUs: 1 of 1 nvidia.com/gpu on the nodes it may run on are taken by training pods; it needs 1";
    assert_queued_only(&action, &calls, message);

    // Once that pod has finished, the Experiment gets its code and its pod.
    other["status"]["phase"] = json!("Succeeded");
    let answer = experiment.clone();
    let (_, calls) =
        run_in_cluster(experiment, (vec![other], vec![]), Some(vec![gpu_node]), status_patches(answer)).await;
    assert_eq!(
        calls.lines(),
        [format!("POST {POLICIES}"), format!("POST {CONFIGMAPS}"), format!("POST {PODS}"), format!("PATCH {STATUS}")]
    );
}

#[tokio::test]
async fn a_finished_run_whose_pod_is_gone_is_left_alone() {
    let done = json!({"phase": "Succeeded", "message": "training finished"});
    let (action, calls) =
        run(experiment_json(by_ref(), Some(done)), (vec![], vec![]), |call| panic!("unexpected call {}", call.line()))
            .await;
    assert!(calls.lines().is_empty(), "never re-run, never rewritten");
    assert_eq!(action, format!("{:?}", Action::await_change()));
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    // First pass: a running pod gives a Running status.
    // The API server keeps whole seconds.
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let pod = running_pod(&k8s_openapi::jiff::Timestamp::from_second(now).unwrap().to_string());
    let experiment = experiment_json(by_ref(), None);
    let (answer, served) = (experiment.clone(), pod.clone());
    let (_, calls) =
        run(experiment, (vec![served], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    let written = calls.body(&format!("PATCH {STATUS}")).expect("the first status")["status"].clone();
    assert_eq!(written["phase"], "Running");
    // Second pass with that status stored: no call at all.
    let (action, calls) = run(experiment_json(by_ref(), Some(written)), (vec![pod], vec![]), |call| {
        panic!("unexpected call {}", call.line())
    })
    .await;
    assert!(calls.lines().is_empty());
    // It looks again in five minutes (the pod is overdue only 450 s from now)...
    assert_eq!(action, format!("{:?}", Action::requeue(Duration::from_secs(300))));
    // ...or when it will be overdue, if that is sooner: started 400 s ago, due in 50 s.
    let started = k8s_openapi::jiff::Timestamp::from_second(now - 400).unwrap();
    let pod = running_pod(&started.to_string());
    let experiment = experiment_json(by_ref(), Some(json!({"phase": "Running", "pod": "lr-train"})));
    let answer = experiment.clone();
    let (action, _) =
        run(experiment, (vec![pod], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    let seconds: u64 = action
        .trim_start_matches("Action { requeue_after: Some(")
        .trim_end_matches("s) }")
        .parse()
        .unwrap_or_else(|_| panic!("{action}"));
    assert!((49..=51).contains(&seconds), "{action}");
}

#[tokio::test]
async fn a_pod_past_its_deadline_fails_the_run_then_is_deleted() {
    let experiment = experiment_json(by_ref(), Some(json!({"phase": "Running", "pod": "lr-train"})));
    let answer = experiment.clone();
    let overdue = running_pod("2026-01-01T00:00:00Z");
    let (action, calls) =
        run(experiment, (vec![overdue], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("DELETE", POD) => (StatusCode::OK, running_pod("2026-01-01T00:00:00Z")),
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    assert_eq!(calls.lines(), [format!("PATCH {STATUS}"), format!("DELETE {POD}")]);
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap()["status"].clone();
    assert_eq!((status["phase"].as_str(), status["decision"].as_str()), (Some("Failed"), Some("crash")));
    assert!(status["message"].as_str().unwrap().starts_with("exceeded its deadline of 420 s"), "{status}");
    assert_eq!(action, format!("{:?}", Action::await_change()));
}

#[tokio::test]
async fn a_diff_run_waits_for_its_candidate_and_fails_when_the_agent_refuses_it() {
    const CANDIDATE: &str = "/api/v1/namespaces/lab/configmaps/lr-code";
    let diff = json!({"diff": "@@ -1 +1 @@\n-a\n+b"});
    let experiment = experiment_json(diff.clone(), None);
    let answer = experiment.clone();
    let (action, calls) =
        run(experiment, (vec![], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", CANDIDATE) => not_found(),
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    assert_eq!(calls.lines(), [format!("GET {CANDIDATE}"), format!("PATCH {STATUS}")], "no pod");
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap()["status"].clone();
    assert_eq!(status["phase"], "Pending");
    assert!(status["message"].as_str().unwrap().starts_with("waiting for SporeNode lab-node's agent"), "{status}");
    assert_eq!(action, format!("{:?}", Action::requeue(Duration::from_secs(3))));

    // The agent said why it cannot: the run fails, and is never looked at again.
    let refused =
        experiment_json(diff.clone(), Some(json!({"phase": "Pending", "codeError": "the diff does not apply"})));
    let answer = refused.clone();
    let (action, calls) =
        run(refused, (vec![], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", CANDIDATE) => not_found(),
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap()["status"].clone();
    assert_eq!((status["phase"].as_str(), status["decision"].as_str()), (Some("Failed"), Some("crash")));
    assert_eq!(status["message"], "the candidate could not be made: the diff does not apply");
    assert_eq!(action, format!("{:?}", Action::await_change()));

    // A ConfigMap in the candidate's place that the agent did not write for this run: no pod
    // is made to train it.
    let waiting = experiment_json(diff, None);
    let answer = waiting.clone();
    let planted = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "lr-code", "namespace": "lab"}, "data": {"train.py": "steal()"}});
    let (action, calls) =
        run(waiting, (vec![], vec![]), move |call| match (call.method.as_str(), call.path.as_str()) {
            ("GET", CANDIDATE) => (StatusCode::OK, planted.clone()),
            ("PATCH", STATUS) => status_written(&answer, call),
            _ => echo(call),
        })
        .await;
    assert_eq!(calls.lines(), [format!("GET {CANDIDATE}"), format!("PATCH {STATUS}")], "no pod");
    let status = calls.body(&format!("PATCH {STATUS}")).unwrap()["status"].clone();
    assert_eq!(status["phase"], "Queued");
    assert!(status["message"].as_str().unwrap().starts_with("blocked: a ConfigMap named lr-code"), "{status}");
    assert_eq!(action, format!("{:?}", Action::requeue(Duration::from_secs(5))));
}

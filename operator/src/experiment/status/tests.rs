//! Unit tests: pod states to Experiment status, and the pod itself.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use spore_crds::experiment::Decision;
use spore_crds::{Experiment, ExperimentPhase, ExperimentStatus};

use super::{desired_status, differs, overdue_at, overdue_status, published_condition, with_conditions};
use crate::experiment::pod::{DEADLINE_MARGIN_SECONDS, PodSettings, training_pod, training_pod_on};

fn experiment() -> Experiment {
    serde_json::from_value(json!({
        "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "lr", "namespace": "lab", "uid": "u-1", "generation": 1},
        "spec": {"node": "lab-node", "code": {"configMapRef": {"name": "cand"}}, "timeBudgetSeconds": 300,
                 "gpu": {"count": 2, "gpuClass": "H100"}}
    }))
    .unwrap()
}

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "lr-train"}, "status": status})).unwrap()
}

fn terminated(phase: &str, code: i32, message: &str) -> Pod {
    pod(json!({"phase": phase, "containerStatuses": [{"name": "train", "image": "x", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "message": message, "finishedAt": "2026-11-25T12:00:00Z"}}}]}))
}

#[test]
fn unschedulable_pods_mean_queued_with_the_schedulers_reason() {
    let status = desired_status(
        &experiment(),
        Some(&pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/5 nodes are available: 4 Insufficient nvidia.com/gpu."}
        ]}))),
    );
    assert_eq!(status.phase, ExperimentPhase::Queued);
    assert!(status.message.unwrap().contains("Insufficient nvidia.com/gpu"));
    assert_eq!(desired_status(&experiment(), None).phase, ExperimentPhase::Pending);
}

#[test]
fn success_reads_metrics_from_the_termination_message() {
    let message = r#"{"val_bpb": 0.9931, "num_steps": 953, "num_params": 50331648, "peak_vram_mb": 45060.2}"#;
    let status = desired_status(&experiment(), Some(&terminated("Succeeded", 0, message)));
    assert_eq!(status.phase, ExperimentPhase::Succeeded);
    let metrics = status.metrics.unwrap();
    assert_eq!((metrics.val_bpb, metrics.num_steps), (0.9931, 953));
    assert_eq!(status.decision, None, "keep or discard is judged against the parent by the node");
}

#[test]
fn failures_are_crashes_with_a_reason() {
    let crashed = desired_status(&experiment(), Some(&terminated("Failed", 3, "CUDA out of memory")));
    assert_eq!((crashed.phase, crashed.decision), (ExperimentPhase::Failed, Some(Decision::Crash)));
    assert_eq!(crashed.message.as_deref(), Some("training exited with code 3: CUDA out of memory"));

    let garbage = desired_status(&experiment(), Some(&terminated("Succeeded", 0, "val_bpb: 0.99")));
    assert_eq!(garbage.decision, Some(Decision::Crash), "no trusted metrics, no result");

    // The training step (init container) failed: its message, not the waiting container's.
    let init_failed = pod(json!({"phase": "Failed",
        "initContainerStatuses": [{"name": "train", "image": "x", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "message": "train.py exited with code 1\nCUDA out of memory"}}}],
        "containerStatuses": [{"name": "evaluate", "image": "x", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}]}));
    let status = desired_status(&experiment(), Some(&init_failed));
    assert_eq!(status.decision, Some(Decision::Crash));
    assert_eq!(
        status.message.as_deref(),
        Some("training exited with code 1: train.py exited with code 1\nCUDA out of memory")
    );

    let late = desired_status(&experiment(), Some(&pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}))));
    assert_eq!(late.message, Some(format!("exceeded its deadline of {} s", 300 + DEADLINE_MARGIN_SECONDS)));
}

#[test]
fn the_pod_asks_for_gpus_and_runs_restricted() {
    let pod = training_pod(&experiment(), None, &PodSettings::new("spore:test"));
    let spec = pod.spec.unwrap();
    let container = &spec.containers[0];
    let limits = container.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["nvidia.com/gpu"].0, "2");
    // Its GPU class: the override label, or (given the cluster's products) a product of the class.
    assert_eq!(spec.affinity, Some(crate::experiment::gpu_class::class_affinity("H100", &[])));
    let products = ["NVIDIA-H100-80GB-HBM3".to_string()];
    let on_products = training_pod_on(&experiment(), None, &PodSettings::new("spore:test"), &products);
    let affinity = on_products.spec.unwrap().affinity;
    assert_eq!(affinity, Some(crate::experiment::gpu_class::class_affinity("H100", &products)));
    assert_eq!(spec.active_deadline_seconds, Some(300 + DEADLINE_MARGIN_SECONDS));
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_eq!(spec.tolerations.unwrap()[0].key.as_deref(), Some("nvidia.com/gpu"));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    let train = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(train.resources, container.resources, "both steps see the GPUs");
    assert_eq!(train.volume_mounts.as_ref().unwrap()[0].read_only, Some(true));
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("Experiment", Some(true)));
}

#[test]
fn conditions_follow_the_phase_and_keep_their_transition_time() {
    let status = |phase, message: &str| ExperimentStatus { phase, message: Some(message.into()), ..Default::default() };
    let queued = with_conditions(&[], status(ExperimentPhase::Queued, "waiting for GPUs"));
    let get = |s: &ExperimentStatus, t: &str| s.conditions.iter().find(|c| c.type_ == t).cloned().unwrap();
    assert_eq!(
        (get(&queued, "Scheduled").status.as_str(), get(&queued, "Succeeded").status.as_str()),
        ("False", "Unknown")
    );
    let failed = with_conditions(&queued.conditions, status(ExperimentPhase::Failed, "exceeded its deadline of 420 s"));
    assert_eq!(get(&failed, "Succeeded").reason, "DeadlineExceeded");
    assert_eq!(get(&failed, "Scheduled").status, "True");
    let again = with_conditions(&failed.conditions, status(ExperimentPhase::Failed, "exceeded its deadline of 420 s"));
    assert_eq!(again.conditions, failed.conditions, "rewriting the same status moves nothing");
    assert!(!differs(Some(&failed), &again));
    let done = with_conditions(&[], status(ExperimentPhase::Succeeded, "training finished"));
    assert_eq!(
        (get(&done, "Succeeded").status.as_str(), get(&done, "Succeeded").reason.as_str()),
        ("True", "Measured")
    );
}

#[test]
fn a_live_pod_is_overdue_after_its_deadline_and_grace_and_an_ended_one_never() {
    let running = |started: &str| {
        let mut pod = pod(json!({"phase": "Running", "startTime": started}));
        pod.spec =
            Some(k8s_openapi::api::core::v1::PodSpec { active_deadline_seconds: Some(420), ..Default::default() });
        pod
    };
    let at = overdue_at(&running("2026-12-01T10:00:00Z"), 30).unwrap();
    assert_eq!(at.to_string(), "2026-12-01T10:07:30Z", "start + 420 s deadline + 30 s grace");
    let mut ended = running("2026-12-01T10:00:00Z");
    ended.status.as_mut().unwrap().phase = Some("Failed".into());
    assert_eq!(overdue_at(&ended, 30), None, "the kubelet ended it");
    let mut unstarted = running("2026-12-01T10:00:00Z");
    unstarted.status.as_mut().unwrap().start_time = None;
    assert_eq!(overdue_at(&unstarted, 30), None, "not started: no clock runs");

    let status = overdue_status(&experiment(), &running("2026-12-01T10:00:00Z"));
    assert_eq!(status.phase, ExperimentPhase::Failed);
    assert_eq!(status.decision, Some(Decision::Crash));
    assert!(status.message.as_deref().unwrap().starts_with("exceeded its deadline of 420 s"), "{status:?}");
    let with = with_conditions(&[], status);
    let succeeded = with.conditions.iter().find(|c| c.type_ == "Succeeded").unwrap();
    assert_eq!((succeeded.status.as_str(), succeeded.reason.as_str()), ("False", "DeadlineExceeded"));
}

#[test]
fn the_gpu_column_says_what_was_asked_then_what_it_ran_on() {
    let with_gpu = |gpu: serde_json::Value| {
        let mut e = experiment();
        e.spec.gpu = serde_json::from_value(gpu).unwrap();
        e
    };
    let class = |e: &Experiment, pod: Option<&Pod>| desired_status(e, pod).gpu_class.unwrap_or_default();
    assert_eq!(class(&experiment(), None), "H100");
    assert_eq!(class(&with_gpu(json!({"count": 0})), None), "CPU");
    assert_eq!(class(&with_gpu(json!({"count": 1})), None), "any");
    // Finished: the class of the device it reported, whatever was asked.
    let message = r#"{"val_bpb": 0.99, "num_steps": 9, "num_params": 5, "peak_vram_mb": 1.0, "gpu_model": "NVIDIA_A100-SXM4-80GB"}"#;
    assert_eq!(class(&with_gpu(json!({"count": 1})), Some(&terminated("Succeeded", 0, message))), "A100");
}

#[test]
fn published_says_whether_the_record_is_out_will_be_or_never_will() {
    let mut experiment: Experiment = serde_json::from_value(serde_json::json!({
        "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e", "uid": "u"},
        "spec": {"node": "n", "code": {"inline": "x"}, "description": "", "timeBudgetSeconds": 60}
    }))
    .unwrap();
    let status = |phase, message: &str| ExperimentStatus { phase, message: Some(message.into()), ..Default::default() };
    let reason = |e: &Experiment, s: &ExperimentStatus| {
        let c = published_condition(e, s, &[]);
        (c.status, c.reason)
    };
    let running = status(ExperimentPhase::Running, "training");
    let done = status(ExperimentPhase::Succeeded, "training finished");
    assert_eq!(reason(&experiment, &running), ("Unknown".into(), "NotFinished".into()));
    assert_eq!(reason(&experiment, &done), ("Unknown".into(), "Awaiting".into()));
    let refused = status(ExperimentPhase::Failed, "the candidate could not be made: no parent");
    assert_eq!(reason(&experiment, &refused), ("False".into(), "NeverPublished".into()));
    experiment.status = Some(ExperimentStatus { published_cid: Some("ab".repeat(32)), ..done.clone() });
    assert_eq!(reason(&experiment, &done), ("True".into(), "Published".into()));
    experiment.status = None;
    experiment.spec.purpose = spore_crds::experiment::Purpose::Verify;
    assert_eq!(reason(&experiment, &done), ("False".into(), "NeverPublished".into()));
}

//! From a finished Experiment to the record its node publishes: pure, so every case is tested
//! without a cluster. The decision against the parent is made here (the operator does not hold
//! the DAG): keep when it beats the parent's `val_bpb` by more than the node's noise margin
//! ([`noise`](crate::research::noise)), or when it is a baseline.

use spore_crds::Experiment;
use spore_crds::experiment::{Decision, ExperimentPhase, Purpose};
use spore_spec::{ExperimentRecord, JsonNumber, Status};

use crate::research::artifacts::cid_of;
use crate::research::diff::unified_diff;

/// Annotation naming who proposed the change (an LLM, a person); `kubernetes` when absent.
pub const AGENT_MODEL_ANNOTATION: &str = "sporemesh.io/agent-model";

/// Why an Experiment is not published (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotYet {
    /// Still pending, queued or running.
    Unfinished,
    /// Already published (`status.publishedCid`).
    Published,
    /// A re-run of someone's claim: the verifier reports it, not the research DAG.
    Verification,
    /// The parent record is not in this node's store yet (it may still be syncing).
    ParentMissing(String),
    /// Its candidate could not be made (`status.codeError`): nothing ran, nothing to publish.
    NeverRan,
}

/// An unsigned record and the status fields the node-agent writes back.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub record: ExperimentRecord,
    pub decision: Decision,
    pub parent_val_bpb: Option<f64>,
    pub delta_val_bpb: Option<f64>,
}

/// The record for `experiment`, given its parent record (when it names one), its `train.py`
/// (when known: inline or a ConfigMap) and the parent's `train.py` (for the diff, when the
/// Experiment gave a whole file). A child is kept when it beats the parent by more than `margin`.
pub fn publication(
    experiment: &Experiment,
    parent: Option<&ExperimentRecord>,
    code: Option<&str>,
    parent_code: Option<&str>,
    margin: f64,
) -> Result<Publication, NotYet> {
    let spec = &experiment.spec;
    let status = experiment.status.clone().unwrap_or_default();
    if status.published_cid.is_some() {
        return Err(NotYet::Published);
    }
    if spec.purpose == Purpose::Verify {
        return Err(NotYet::Verification);
    }
    if status.code_error.is_some() {
        return Err(NotYet::NeverRan);
    }
    if !matches!(status.phase, ExperimentPhase::Succeeded | ExperimentPhase::Failed) {
        return Err(NotYet::Unfinished);
    }
    let parent = match (&spec.parent_cid, parent) {
        (Some(cid), None) => return Err(NotYet::ParentMissing(cid.clone())),
        (_, parent) => parent,
    };
    let parent_val = parent.map(|p| p.val_bpb.as_f64());
    let metrics = status.metrics.clone().filter(|_| status.phase == ExperimentPhase::Succeeded);
    let (decision, val_bpb) = match &metrics {
        Some(m) if parent_val.is_none_or(|p| m.val_bpb < p - margin) => (Decision::Keep, m.val_bpb),
        Some(m) => (Decision::Discard, m.val_bpb),
        None => (Decision::Crash, 0.0),
    };
    let environment = status.environment.clone();
    let gpu_class = status.gpu_class.clone().or_else(|| spec.gpu.as_ref().and_then(|g| g.gpu_class.clone()));
    let text = |value: Option<String>| value.unwrap_or_else(|| "unknown".into());
    let diff = match (&spec.code.diff, code, parent_code) {
        (Some(diff), _, _) => diff.clone(),
        (None, Some(code), Some(parent_code)) => unified_diff(parent_code, code),
        _ => String::new(),
    };
    let timestamp = status
        .completion_time
        .as_ref()
        .or(experiment.metadata.creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second());
    let agent_model = experiment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AGENT_MODEL_ANNOTATION).cloned())
        .unwrap_or_else(|| "kubernetes".into());
    // A child signs its parent's task when the parent signed it (`research::task_scope`).
    let task_id = crate::research::task_scope::task_to_sign(parent, None);
    let record = ExperimentRecord {
        parent: parent.map(|p| p.id.clone()),
        depth: JsonNumber::from(parent.and_then(|p| p.depth.as_i64()).map_or(0, |d| d + 1)),
        code_cid: code.map(|c| cid_of(c.as_bytes())).unwrap_or_default(),
        diff,
        dataset_cid: environment.as_ref().map(|e| e.dataset_cid.clone()).unwrap_or_default(),
        prepare_cid: environment.as_ref().map(|e| e.prepare_cid.clone()).unwrap_or_default(),
        time_budget: JsonNumber::from(i64::from(spec.time_budget_seconds)),
        val_bpb: JsonNumber::from(val_bpb),
        peak_vram_mb: JsonNumber::from(metrics.as_ref().map_or(0.0, |m| m.peak_vram_mb)),
        num_steps: JsonNumber::from(metrics.as_ref().map_or(0, |m| m.num_steps)),
        num_params: JsonNumber::from(metrics.as_ref().map_or(0, |m| m.num_params)),
        status: match decision {
            Decision::Keep => Status::Keep,
            Decision::Discard => Status::Discard,
            Decision::Crash => Status::Crash,
        },
        description: spec.description.clone(),
        hypothesis: spec.hypothesis.clone(),
        agent_model,
        gpu_model: environment.as_ref().map(|e| e.gpu_model.clone()).or(gpu_class).unwrap_or_else(|| "unknown".into()),
        cuda_version: text(environment.as_ref().map(|e| e.cuda_version.clone())),
        torch_version: text(environment.as_ref().map(|e| e.torch_version.clone())),
        node_id: String::new(),
        task_id: task_id.clone(),
        timestamp: JsonNumber::from(timestamp),
        signature: String::new(),
        id: String::new(),
        version: JsonNumber::from(if task_id.is_some() { 2 } else { 1 }),
    };
    let (parent_val_bpb, delta_val_bpb) = match (parent_val, &metrics) {
        (Some(p), Some(m)) => (Some(p), Some(m.val_bpb - p)),
        (p, _) => (p, None),
    };
    Ok(Publication { record, decision, parent_val_bpb, delta_val_bpb })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use spore_crds::ExperimentStatus;
    use spore_crds::experiment::{ExperimentCode, ExperimentMetrics, RunEnvironment};

    fn finished(val_bpb: Option<f64>) -> Experiment {
        let mut experiment = Experiment::new(
            "exp-1",
            spore_crds::ExperimentSpec {
                node: "lab".into(),
                code: ExperimentCode { inline: Some("LR = 0.05\n".into()), ..ExperimentCode::default() },
                description: "raise LR".into(),
                time_budget_seconds: 300,
                ..Default::default()
            },
        );
        experiment.status = Some(ExperimentStatus {
            phase: if val_bpb.is_some() { ExperimentPhase::Succeeded } else { ExperimentPhase::Failed },
            metrics: val_bpb.map(|v| ExperimentMetrics {
                val_bpb: v,
                num_steps: 10,
                num_params: 7,
                ..Default::default()
            }),
            environment: val_bpb.map(|_| RunEnvironment {
                gpu_model: "NVIDIA_H100_80GB_HBM3".into(),
                cuda_version: "12.8".into(),
                torch_version: "2.13.0".into(),
                dataset_cid: "d".into(),
                prepare_cid: "p".into(),
            }),
            completion_time: Some(Time("2026-11-25T20:00:00Z".parse().unwrap())),
            gpu_class: Some("H100".into()),
            ..Default::default()
        });
        experiment
    }

    fn parent(val_bpb: f64) -> ExperimentRecord {
        let mut record = spore_tests::records::record(1);
        record.id = "ab".repeat(32);
        record.val_bpb = JsonNumber::Float(val_bpb);
        record.depth = JsonNumber::from(4);
        record
    }

    #[test]
    fn a_baseline_keeps_and_carries_what_the_pod_reported() {
        let p = publication(&finished(Some(0.99)), None, Some("LR = 0.05\n"), None, 0.0).unwrap();
        assert_eq!(p.decision, Decision::Keep);
        let r = &p.record;
        assert_eq!((r.parent.clone(), r.depth.as_i64(), r.status), (None, Some(0), Status::Keep));
        assert_eq!(r.code_cid, cid_of(b"LR = 0.05\n"));
        assert_eq!(
            (r.gpu_model.as_str(), r.torch_version.as_str(), r.dataset_cid.as_str()),
            ("NVIDIA_H100_80GB_HBM3", "2.13.0", "d")
        );
        assert_eq!(r.timestamp.as_i64(), Some(1_795_636_800), "the completion time: republishing gives the same CID");
        assert_eq!((r.num_steps.as_i64(), r.agent_model.as_str()), (Some(10), "kubernetes"));
    }

    #[test]
    fn children_are_judged_against_their_parent() {
        let mut child = finished(Some(0.98));
        child.spec.parent_cid = Some("ab".repeat(32));
        let better = publication(&child, Some(&parent(0.99)), Some("LR = 0.05\n"), Some("LR = 0.04\n"), 0.0).unwrap();
        assert_eq!(better.decision, Decision::Keep);
        assert_eq!(better.record.depth.as_i64(), Some(5));
        assert!(better.record.diff.contains("-LR = 0.04") && better.record.diff.contains("+LR = 0.05"));
        assert!((better.delta_val_bpb.unwrap() + 0.01).abs() < 1e-12);
        let worse = publication(&child, Some(&parent(0.97)), None, None, 0.0).unwrap();
        assert_eq!((worse.decision, worse.record.status), (Decision::Discard, Status::Discard));
        assert_eq!(worse.record.code_cid, "", "no code known: no code_cid");
        assert_eq!(publication(&child, None, None, None, 0.0), Err(NotYet::ParentMissing("ab".repeat(32))));
        // Beating the parent by less than the noise margin is a discard.
        let inside = publication(&child, Some(&parent(0.99)), None, None, 0.02).unwrap();
        assert_eq!((inside.decision, inside.record.status), (Decision::Discard, Status::Discard));
        let clear = publication(&child, Some(&parent(1.01)), None, None, 0.02).unwrap();
        assert_eq!(clear.decision, Decision::Keep);
        // A version-1 parent has a version-1 child; a parent that signs its task passes it on.
        assert_eq!((clear.record.task_id.clone(), clear.record.version.as_i64()), (None, Some(1)));
        let mut tasked = parent(1.01);
        (tasked.task_id, tasked.version) = (Some("7".repeat(64)), JsonNumber::from(2));
        let in_task = publication(&child, Some(&tasked), None, None, 0.0).unwrap();
        assert_eq!((in_task.record.task_id, in_task.record.version.as_i64()), (Some("7".repeat(64)), Some(2)));
    }

    #[test]
    fn crashes_publish_zero_and_the_rest_waits_or_is_skipped() {
        let crash = publication(&finished(None), None, None, None, 0.0).unwrap();
        assert_eq!((crash.decision, crash.record.val_bpb.as_f64()), (Decision::Crash, 0.0));
        assert_eq!(crash.record.gpu_model, "H100", "the GPU class when the pod reported nothing");
        let mut running = finished(Some(1.0));
        running.status.as_mut().unwrap().phase = ExperimentPhase::Running;
        assert_eq!(publication(&running, None, None, None, 0.0), Err(NotYet::Unfinished));
        let mut done = finished(Some(1.0));
        done.status.as_mut().unwrap().published_cid = Some("cd".repeat(32));
        assert_eq!(publication(&done, None, None, None, 0.0), Err(NotYet::Published));
        let mut verify = finished(Some(1.0));
        verify.spec.purpose = Purpose::Verify;
        assert_eq!(publication(&verify, None, None, None, 0.0), Err(NotYet::Verification));
    }
}

//! From the training pod's state to the Experiment's status: phase, times, the metrics from the
//! termination message, and `crash` when training failed. Pure, so it is tested without a cluster.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use spore_crds::common::Condition;
use spore_crds::experiment::{Decision, ExperimentMetrics, RunEnvironment};
use spore_crds::{Experiment, ExperimentPhase, ExperimentStatus};

use crate::conditions::{State, condition};

/// What `spore exec` writes to the termination message on success.
#[derive(Debug, Deserialize)]
struct TerminationMetrics {
    val_bpb: f64,
    num_steps: i64,
    #[serde(default)]
    num_params: i64,
    #[serde(default)]
    peak_vram_mb: f64,
    #[serde(default)]
    training_seconds: Option<f64>,
    /// Where it ran (absent from messages of older `spore exec` builds).
    #[serde(default)]
    gpu_model: Option<String>,
    #[serde(default)]
    cuda_version: Option<String>,
    #[serde(default)]
    torch_version: Option<String>,
    #[serde(default)]
    dataset_cid: Option<String>,
    #[serde(default)]
    prepare_cid: Option<String>,
}

impl TerminationMetrics {
    fn environment(&self) -> Option<RunEnvironment> {
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        Some(RunEnvironment {
            gpu_model: self.gpu_model.clone()?,
            cuda_version: text(&self.cuda_version),
            torch_version: text(&self.torch_version),
            dataset_cid: self.dataset_cid.clone().unwrap_or_default(),
            prepare_cid: self.prepare_cid.clone().unwrap_or_default(),
        })
    }
}

/// The step that ended the pod: a failed init container (the training step), else the
/// container (the evaluation step).
fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    let status = pod.status.as_ref()?;
    let failed_init = ended(&status.init_container_statuses).find(|t| t.exit_code != 0);
    failed_init.or_else(|| ended(&status.container_statuses).next())
}

fn ended(steps: &Option<Vec<ContainerStatus>>) -> impl Iterator<Item = &ContainerStateTerminated> {
    steps.iter().flatten().filter_map(|c| c.state.as_ref()?.terminated.as_ref())
}

/// The scheduler's reason for not placing the pod, if it gave one.
fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let scheduled = conditions.iter().find(|c| c.type_ == "PodScheduled")?;
    (scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable"))
        .then(|| scheduled.message.clone().unwrap_or_default())
}

/// The GPU column until the run says what it ran on: the class asked for, `CPU` for no GPU, or
/// `any` for a GPU of any class.
fn requested_class(experiment: &Experiment) -> String {
    let request = experiment.spec.gpu.clone().unwrap_or_default();
    match request.gpu_class {
        Some(class) => class,
        None if request.count == 0 => "CPU".into(),
        None => "any".into(),
    }
}

/// The status this operator owns for `experiment`, given its pod (if any).
pub fn desired_status(experiment: &Experiment, pod: Option<&Pod>) -> ExperimentStatus {
    let mut status = ExperimentStatus {
        observed_generation: experiment.metadata.generation,
        gpu_class: Some(requested_class(experiment)),
        ..ExperimentStatus::default()
    };
    let Some(pod) = pod else {
        status.phase = ExperimentPhase::Pending;
        status.message = Some("creating the training pod".into());
        return status;
    };
    status.pod = pod.metadata.name.clone();
    status.start_time = pod.status.as_ref().and_then(|s| s.start_time.clone());
    let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
    match phase.as_str() {
        "Running" => status.phase = ExperimentPhase::Running,
        "Succeeded" => {
            let finished = terminated(pod);
            status.completion_time = finished.and_then(|t| t.finished_at.clone());
            let message = finished.and_then(|t| t.message.clone()).unwrap_or_default();
            match serde_json::from_str::<TerminationMetrics>(message.trim()) {
                Ok(m) if m.val_bpb.is_finite() && m.val_bpb > 0.0 => {
                    status.phase = ExperimentPhase::Succeeded;
                    status.environment = m.environment();
                    // What it ran on, in the frontier's classes.
                    if let Some(environment) = &status.environment {
                        status.gpu_class = Some(spore_spec::gpu_class(&environment.gpu_model));
                    }
                    status.metrics = Some(ExperimentMetrics {
                        val_bpb: m.val_bpb,
                        num_steps: m.num_steps,
                        num_params: m.num_params,
                        peak_vram_mb: m.peak_vram_mb,
                        training_seconds: m.training_seconds,
                    });
                    status.message = Some("training finished".into());
                }
                _ => {
                    status.phase = ExperimentPhase::Failed;
                    status.decision = Some(Decision::Crash);
                    status.message = Some("training exited 0 but reported no valid metrics".into());
                }
            }
        }
        "Failed" => {
            status.phase = ExperimentPhase::Failed;
            status.decision = Some(Decision::Crash);
            let finished = terminated(pod);
            status.completion_time = finished.and_then(|t| t.finished_at.clone());
            let reason = pod.status.as_ref().and_then(|s| s.reason.clone()).unwrap_or_default();
            status.message = Some(if reason == "DeadlineExceeded" {
                format!("exceeded its deadline of {} s", deadline_of(experiment, pod))
            } else {
                match finished {
                    Some(t) => format!(
                        "training exited with code {}{}{}",
                        t.exit_code,
                        // The kubelet's word for a step killed at its memory limit.
                        if t.reason.as_deref() == Some("OOMKilled") {
                            " (OOMKilled: over its memory limit)"
                        } else {
                            ""
                        },
                        t.message.as_deref().map(|m| format!(": {}", m.trim())).unwrap_or_default()
                    ),
                    None => format!("the pod failed: {reason}"),
                }
            });
        }
        _ => match unschedulable(pod) {
            Some(why) => {
                status.phase = ExperimentPhase::Queued;
                status.message = Some(format!("waiting for GPUs: {why}"));
            }
            None => {
                status.phase = ExperimentPhase::Pending;
                status.message = Some("the training pod is starting".into());
            }
        },
    }
    status
}

/// The pod's `activeDeadlineSeconds` (what the kubelet enforced), else the budget plus the
/// default margin.
fn deadline_of(experiment: &Experiment, pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
        .unwrap_or_else(|| i64::from(experiment.spec.time_budget_seconds) + super::pod::DEADLINE_MARGIN_SECONDS)
}

/// When a live pod must be over: its start plus its deadline plus `grace`; `None` for a pod
/// that ended, has not started, or has no deadline.
pub fn overdue_at(pod: &Pod, grace_seconds: i64) -> Option<Timestamp> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let Time(started) = status.start_time.clone()?;
    let deadline = pod.spec.as_ref()?.active_deadline_seconds?;
    started.checked_add(SignedDuration::from_secs(deadline.saturating_add(grace_seconds))).ok()
}

/// The status of a run whose pod outlived its deadline without the kubelet ending it (its
/// node is gone or unresponsive): failed, as the kubelet would have reported it.
pub fn overdue_status(experiment: &Experiment, pod: &Pod) -> ExperimentStatus {
    let mut status = desired_status(experiment, Some(pod));
    status.phase = ExperimentPhase::Failed;
    status.decision = Some(Decision::Crash);
    status.completion_time = Some(Time(Timestamp::now()));
    status.message = Some(format!(
        "exceeded its deadline of {} s; the pod never ended, so the operator stopped it",
        deadline_of(experiment, pod)
    ));
    status
}

/// The status of a `diff` run whose candidate the SporeNode's agent has not written yet: pending,
/// or failed when the agent said why it cannot (`status.codeError`).
pub fn awaiting_candidate(experiment: &Experiment) -> ExperimentStatus {
    let mut status = desired_status(experiment, None);
    let parent = experiment.spec.parent_cid.as_deref().unwrap_or("(none)");
    match experiment.status.as_ref().and_then(|s| s.code_error.clone()) {
        Some(why) => {
            status.phase = ExperimentPhase::Failed;
            status.decision = Some(Decision::Crash);
            status.message = Some(format!("the candidate could not be made: {why}"));
        }
        None => {
            status.message = Some(format!(
                "waiting for SporeNode {}'s agent to apply the diff to parent {}",
                experiment.spec.node,
                &parent[..12.min(parent.len())]
            ));
        }
    }
    status
}

/// The conditions of `status` (what `kubectl wait --for=condition=Succeeded` reads):
/// `Scheduled` (the pod has a node; False while queued) and `Succeeded` (True when the run
/// measured a result, False when it failed, Unknown before).
pub fn with_conditions(previous: &[Condition], mut status: ExperimentStatus) -> ExperimentStatus {
    let message = status.message.clone().unwrap_or_default();
    let generation = status.observed_generation;
    let (scheduled, scheduled_reason) = match status.phase {
        ExperimentPhase::Pending => (State::Unknown, "PodStarting"),
        ExperimentPhase::Queued if message.starts_with(super::ownership::BLOCKED) => (State::False, "ForeignObject"),
        ExperimentPhase::Queued => (State::False, "WaitingForCapacity"),
        ExperimentPhase::Running | ExperimentPhase::Succeeded | ExperimentPhase::Failed => (State::True, "Scheduled"),
    };
    let (succeeded, succeeded_reason) = match status.phase {
        ExperimentPhase::Succeeded => (State::True, "Measured"),
        ExperimentPhase::Failed if message.starts_with("exceeded its deadline") => (State::False, "DeadlineExceeded"),
        ExperimentPhase::Failed if message.starts_with("the candidate could not be made") => {
            (State::False, "CandidateRefused")
        }
        ExperimentPhase::Failed => (State::False, "TrainingFailed"),
        ExperimentPhase::Running => (State::Unknown, "Training"),
        ExperimentPhase::Pending | ExperimentPhase::Queued => (State::Unknown, "NotStarted"),
    };
    status.conditions = vec![
        condition(previous, "Scheduled", scheduled, scheduled_reason, &message, generation),
        condition(previous, "Succeeded", succeeded, succeeded_reason, &message, generation),
    ];
    status
}

/// `Published`: True once the node-agent published the run's record (its `publishedCid`),
/// False for a run that will never have one (a `purpose: verify` re-run, or one that never
/// ran), Unknown until then. Read from the Experiment as stored, as the agent writes it.
pub fn published_condition(experiment: &Experiment, desired: &ExperimentStatus, previous: &[Condition]) -> Condition {
    let current = experiment.status.as_ref();
    let cid = current.and_then(|s| s.published_cid.clone());
    let never_ran = desired.phase == ExperimentPhase::Failed
        && desired.message.as_deref().is_some_and(|m| m.starts_with("the candidate could not be made"));
    let verify = experiment.spec.purpose == spore_crds::experiment::Purpose::Verify;
    let (state, reason, message) = match (cid, is_terminal(desired)) {
        (Some(cid), _) => (State::True, "Published", format!("record {cid}")),
        (None, _) if verify => {
            (State::False, "NeverPublished", "a re-run to verify a record is never published".into())
        }
        (None, true) if never_ran => (State::False, "NeverPublished", "nothing ran".into()),
        (None, true) => (State::Unknown, "Awaiting", "waiting for the SporeNode's agent to publish the record".into()),
        (None, false) => (State::Unknown, "NotFinished", "the run has not finished".into()),
    };
    condition(previous, "Published", state, reason, &message, desired.observed_generation)
}

/// True once nothing will change any more.
pub fn is_terminal(status: &ExperimentStatus) -> bool {
    matches!(status.phase, ExperimentPhase::Succeeded | ExperimentPhase::Failed)
}

/// Whether the fields this operator owns differ between `current` and `desired`.
pub fn differs(current: Option<&ExperimentStatus>, desired: &ExperimentStatus) -> bool {
    let Some(current) = current else { return true };
    (&current.phase, &current.pod, &current.message, &current.metrics, &current.start_time, &current.completion_time)
        != (
            &desired.phase,
            &desired.pod,
            &desired.message,
            &desired.metrics,
            &desired.start_time,
            &desired.completion_time,
        )
        || current.environment != desired.environment
        || current.conditions != desired.conditions
        || current.observed_generation != desired.observed_generation
        || (desired.decision.is_some() && current.decision != desired.decision)
}

#[cfg(test)]
mod tests;

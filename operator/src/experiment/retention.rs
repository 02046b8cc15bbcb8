//! Retention of finished Experiments: a lab's namespace must not fill with months of finished
//! runs, their pods and code ConfigMaps. An Experiment of a SporeNode is deleted
//! `spec.retention.finishedExperimentSeconds` after it finished (its pod and ConfigMaps go with
//! it: they are owned by it), and only once nothing is lost: its record was published
//! (`status.publishedCid`), or it never ran (its candidate refused: nothing to publish). The
//! records stay in the node's store and in Postgres. An Experiment of no SporeNode, or with a
//! retention of 0, is kept.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use spore_crds::{Experiment, ExperimentPhase, SporeNode};

/// When `experiment` may be deleted; `None`: keep it.
pub fn expires_at(experiment: &Experiment, node: Option<&SporeNode>) -> Option<Timestamp> {
    let seconds = node?.spec.retention.finished_experiment_seconds;
    let status = experiment.status.as_ref()?;
    if seconds == 0 || !matches!(status.phase, ExperimentPhase::Succeeded | ExperimentPhase::Failed) {
        return None;
    }
    let never_ran = status.phase == ExperimentPhase::Failed
        && status.conditions.iter().any(|c| c.type_ == "Succeeded" && c.reason == "CandidateRefused");
    if status.published_cid.is_none() && !never_ran {
        return None;
    }
    let finished = status
        .completion_time
        .as_ref()
        .or(experiment.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    finished.checked_add(SignedDuration::from_secs(i64::from(seconds))).ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use spore_crds::ExperimentStatus;
    use spore_crds::common::Condition;

    use super::*;

    fn node(seconds: u32) -> SporeNode {
        let mut node = SporeNode::new("lab", serde_json::from_value(serde_json::json!({})).unwrap());
        node.spec.retention.finished_experiment_seconds = seconds;
        node
    }

    fn finished(phase: ExperimentPhase, published: bool) -> Experiment {
        let mut e: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"},
            "spec": {"node": "lab", "code": {"inline": "x"}, "description": "", "timeBudgetSeconds": 60}
        }))
        .unwrap();
        e.status = Some(ExperimentStatus {
            phase,
            completion_time: Some(Time(Timestamp::from_second(1_000).unwrap())),
            published_cid: published.then(|| "a".repeat(64)),
            ..ExperimentStatus::default()
        });
        e
    }

    #[test]
    fn only_finished_runs_whose_records_are_safe_expire() {
        let at = |s: i64| Some(Timestamp::from_second(s).unwrap());
        assert_eq!(expires_at(&finished(ExperimentPhase::Succeeded, true), Some(&node(60))), at(1_060));
        assert_eq!(expires_at(&finished(ExperimentPhase::Failed, true), Some(&node(60))), at(1_060));
        // Unpublished: its result would be lost.
        assert_eq!(expires_at(&finished(ExperimentPhase::Succeeded, false), Some(&node(60))), None);
        // A run that never started has nothing to publish.
        let mut refused = finished(ExperimentPhase::Failed, false);
        refused.status.as_mut().unwrap().conditions.push(Condition {
            type_: "Succeeded".into(),
            status: "False".into(),
            reason: "CandidateRefused".into(),
            message: String::new(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        });
        assert_eq!(expires_at(&refused, Some(&node(60))), at(1_060));
        assert_eq!(expires_at(&finished(ExperimentPhase::Succeeded, true), Some(&node(0))), None, "0 keeps");
        assert_eq!(expires_at(&finished(ExperimentPhase::Succeeded, true), None), None, "no SporeNode");
        assert_eq!(expires_at(&finished(ExperimentPhase::Running, true), Some(&node(60))), None);
    }
}

//! An Experiment reads results only from objects it owns. Its pod (`<name>-train`), code
//! ConfigMap (`<name>-code`) and network policy have names anyone can guess, and anyone who may
//! create pods or ConfigMaps in the namespace could otherwise put one there first: a pod whose
//! termination message reports any `val_bpb`, or a ConfigMap of code the run would train. An
//! object of that name without this Experiment's controller owner reference is never adopted:
//! the Experiment waits `Queued`, blocked, and says which object is in the way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use spore_crds::{Experiment, ExperimentPhase, ExperimentStatus};

use super::status::desired_status;

/// How a blocked Experiment's message starts (its `Scheduled` condition says `ForeignObject`).
pub const BLOCKED: &str = "blocked:";

/// Whether `meta` names `experiment` as its controller.
pub fn owned_by(meta: &ObjectMeta, experiment: &Experiment) -> bool {
    let Some(uid) = experiment.metadata.uid.as_deref() else { return false };
    meta.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
}

/// The status of an Experiment that a foreign `kind` named `name` blocks.
pub fn blocked(experiment: &Experiment, kind: &str, name: &str) -> ExperimentStatus {
    let mut status = desired_status(experiment, None);
    status.phase = ExperimentPhase::Queued;
    status.message = Some(format!(
        "{BLOCKED} a {kind} named {name} exists that this Experiment does not own; nothing is read from it or run \
         until it is removed"
    ));
    status
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    #[test]
    fn only_an_object_this_experiment_controls_is_its_own() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e", "uid": "u-1"},
            "spec": {"node": "n", "code": {"inline": "x"}, "description": "", "timeBudgetSeconds": 60}
        }))
        .unwrap();
        let reference = |uid: &str, controller: bool| OwnerReference {
            uid: uid.into(),
            controller: Some(controller),
            ..OwnerReference::default()
        };
        let meta = |refs: Vec<OwnerReference>| ObjectMeta { owner_references: Some(refs), ..ObjectMeta::default() };
        assert!(owned_by(&meta(vec![reference("u-1", true)]), &experiment));
        assert!(!owned_by(&meta(vec![reference("u-2", true)]), &experiment), "another Experiment's");
        assert!(!owned_by(&meta(vec![reference("u-1", false)]), &experiment), "not its controller");
        assert!(!owned_by(&ObjectMeta::default(), &experiment), "nobody's");
        let status = blocked(&experiment, "pod", "e-train");
        assert_eq!(status.phase, ExperimentPhase::Queued);
        assert!(status.message.unwrap().starts_with("blocked: a pod named e-train exists"));
    }
}

//! The candidate `train.py` of a `diff` Experiment. The operator holds no DAG, so the
//! SporeNode's agent applies the diff to the parent's code (from its store) and writes the
//! result into the ConfigMap `<experiment>-code` (owned by the Experiment, immutable) that the
//! training pod mounts. A diff that cannot be applied is said in `status.codeError`, and the
//! operator fails the run without starting it. Pure, so every case is tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use spore_crds::Experiment;
use spore_crds::experiment::{CODE_KEY, EXPERIMENT_LABEL, ExperimentPhase, code_config_map_name};
use spore_spec::ExperimentRecord;

use crate::research::patch::apply;

/// Annotation of the candidate's ConfigMap: the parent the diff was applied to.
pub const PARENT_ANNOTATION: &str = "sporemesh.io/parent-cid";

/// Why the candidate cannot be made now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// Not a diff run, already started or finished, or already refused: nothing to do.
    NotNeeded,
    /// The parent record is not in the store yet.
    ParentMissing(String),
    /// The parent's code artifact is not here yet (`code_cid`).
    ParentCodeMissing(String),
    /// It never will be: the reason goes into `status.codeError`.
    Refused(String),
}

/// Whether `experiment` is a diff run whose candidate has not been made or refused yet.
pub fn needs_candidate(experiment: &Experiment) -> bool {
    let code = &experiment.spec.code;
    let status = experiment.status.clone().unwrap_or_default();
    code.diff.is_some()
        && code.inline.is_none()
        && code.config_map_ref.is_none()
        && status.code_error.is_none()
        && !matches!(status.phase, ExperimentPhase::Succeeded | ExperimentPhase::Failed)
}

/// The candidate `train.py`: the diff applied to the parent's `train.py`.
pub fn candidate(
    experiment: &Experiment,
    parent: Option<&ExperimentRecord>,
    parent_code: Option<&str>,
) -> Result<String, NotReady> {
    if !needs_candidate(experiment) {
        return Err(NotReady::NotNeeded);
    }
    let spec = &experiment.spec;
    let diff = spec.code.diff.as_deref().unwrap_or_default();
    let Some(parent_cid) = &spec.parent_cid else {
        return Err(NotReady::Refused("a diff needs spec.parentCid, the record whose train.py it changes".into()));
    };
    let parent = parent.ok_or_else(|| NotReady::ParentMissing(parent_cid.clone()))?;
    if parent.code_cid.is_empty() {
        return Err(NotReady::Refused(format!("the parent {} carries no code_cid", short(parent_cid))));
    }
    let parent_code = parent_code.ok_or_else(|| NotReady::ParentCodeMissing(parent.code_cid.clone()))?;
    apply(parent_code, diff)
        .map_err(|e| NotReady::Refused(format!("the diff does not apply to the parent {}: {e}", short(parent_cid))))
}

/// The ConfigMap the training pod mounts.
pub fn config_map(experiment: &Experiment, code: String) -> ConfigMap {
    let name = experiment.metadata.name.clone().unwrap_or_default();
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(code_config_map_name(&name)),
            namespace: experiment.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(EXPERIMENT_LABEL.to_string(), name)])),
            annotations: experiment
                .spec
                .parent_cid
                .clone()
                .map(|cid| BTreeMap::from([(PARENT_ANNOTATION.to_string(), cid)])),
            // Deleted with the Experiment; not blocking its deletion (which would need more rights).
            owner_references: experiment
                .controller_owner_ref(&())
                .map(|r| vec![OwnerReference { block_owner_deletion: None, ..r }]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(CODE_KEY.to_string(), code)])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

/// The first 12 characters of a CID, for messages.
pub fn short(cid: &str) -> &str {
    &cid[..12.min(cid.len())]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn experiment(code: serde_json::Value, status: Option<serde_json::Value>) -> Experiment {
        let mut object = json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "lr", "namespace": "lab", "uid": "u-1"},
            "spec": {"node": "n", "parentCid": "ab".repeat(32), "code": code}
        });
        if let Some(status) = status {
            object["status"] = status;
        }
        serde_json::from_value(object).unwrap()
    }

    fn parent() -> ExperimentRecord {
        let mut record = spore_tests::records::record(1);
        record.code_cid = "cd".repeat(32);
        record
    }

    #[test]
    fn the_diff_applied_to_the_parents_code_is_the_candidate() {
        let diff = json!({"diff": "--- train.py\n+++ train.py\n@@ -1 +1 @@\n-LR = 0.04\n+LR = 0.05"});
        let run = experiment(diff.clone(), None);
        assert_eq!(candidate(&run, Some(&parent()), Some("LR = 0.04\n")).unwrap(), "LR = 0.05\n");
        let map = config_map(&run, "LR = 0.05\n".into());
        assert_eq!(map.metadata.name.as_deref(), Some("lr-code"));
        assert_eq!(map.data.unwrap()[CODE_KEY], "LR = 0.05\n");
        assert_eq!(map.metadata.owner_references.unwrap()[0].uid, "u-1", "deleted with the Experiment");
        assert_eq!(map.metadata.annotations.unwrap()[PARENT_ANNOTATION], "ab".repeat(32));

        // What is missing is waited for; what cannot work is refused.
        assert_eq!(candidate(&run, None, None), Err(NotReady::ParentMissing("ab".repeat(32))));
        assert_eq!(candidate(&run, Some(&parent()), None), Err(NotReady::ParentCodeMissing("cd".repeat(32))));
        let refused = candidate(&run, Some(&parent()), Some("LR = 0.03\n")).unwrap_err();
        assert!(
            matches!(&refused, NotReady::Refused(why) if why.starts_with("the diff does not apply to the parent abababababab")),
            "{refused:?}"
        );
        let mut orphan = run.clone();
        orphan.spec.parent_cid = None;
        assert!(matches!(candidate(&orphan, None, None), Err(NotReady::Refused(_))));
    }

    #[test]
    fn only_unstarted_diff_runs_need_a_candidate() {
        let diff = json!({"diff": "@@ -1 +1 @@\n-a\n+b"});
        assert!(needs_candidate(&experiment(diff.clone(), None)));
        assert!(needs_candidate(&experiment(diff.clone(), Some(json!({"phase": "Pending"})))));
        assert!(!needs_candidate(&experiment(json!({"inline": "x"}), None)));
        assert!(!needs_candidate(&experiment(diff.clone(), Some(json!({"phase": "Failed"})))));
        assert!(!needs_candidate(&experiment(diff, Some(json!({"phase": "Pending", "codeError": "no"})))));
    }
}

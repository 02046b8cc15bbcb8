//! A SporeNode's data volume (`spec.data`) in its training pods: data prepared once (`spore data
//! fetch` + `spore data prepare` into `<volume>/data`), read by every pod instead of prepared (or,
//! for climbmix, downloaded) in each.
//!
//! - The training step mounts the volume's `data` read-only: the candidate trains from it and can
//!   change nothing of it (the tokenizer and token-byte table the evaluator trusts live there).
//! - For climbmix a first step, `validation-data`, mounts the volume's `data-val` (the validation
//!   shard) and nothing of the candidate's, and imports the shard, checked against its
//!   `SHA256SUMS`, into the evaluation step's own volume; the training step never sees it.
//! - The evaluation step mounts `data` read-only too, cuts the validation rows from its copy of
//!   the shard (checked against the digest the data's manifest pins) and deletes them before the
//!   model is loaded, as without a volume.
//!
//! `python-stdlib` needs no shard: its evaluation step keeps preparing its own split.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaimVolumeSource, PodSpec, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use spore_crds::SporeNode;

use super::pod::{PodSettings, VALIDATION_DIR};

/// Where the volume's `data` directory is mounted (the data cache of the steps).
pub const DATA_MOUNT: &str = "/spore/data";
/// Where the copy step mounts the volume's `data-val` directory.
pub const DATA_VAL_MOUNT: &str = "/spore/data-val";
/// The evaluation step's validation cache, in its own volume.
pub const VAL_CACHE: &str = "/validation/data-val";
const VOLUME: &str = "data";
/// The climbmix shard directory, as `spore data fetch` lays it out.
const SHARDS: &str = "climbmix-400b-shuffle";

fn env(container: &mut Container, name: &str, value: &str) {
    let vars = container.env.get_or_insert_with(Vec::new);
    vars.retain(|v| v.name != name);
    vars.push(EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() });
}

fn data_mount(sub_path: &str, mount_path: &str) -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: mount_path.into(),
        sub_path: Some(sub_path.into()),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

fn use_data(container: &mut Container, dataset: &str) {
    container.volume_mounts.get_or_insert_with(Vec::new).push(data_mount("data", DATA_MOUNT));
    env(container, "SPORE_DATA_CACHE", DATA_MOUNT);
    env(container, "SPORE_DATASET", dataset);
}

/// Adds `node`'s data volume to a training pod built by [`super::pod::training_pod_on`]; nothing
/// when the SporeNode names none.
pub fn mount_data(spec: &mut PodSpec, node: Option<&SporeNode>, settings: &PodSettings) {
    let Some(data) = node.and_then(|n| n.spec.data.as_ref()) else { return };
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: data.volume_claim_name.clone(),
            read_only: Some(true),
        }),
        ..Volume::default()
    });
    let dataset = data.dataset.as_str();
    let steps = spec.init_containers.get_or_insert_with(Vec::new);
    let Some(train) = steps.iter_mut().find(|c| c.name == "train") else { return };
    use_data(train, dataset);
    let template = train.clone();
    if dataset != "climbmix" {
        return;
    }
    for evaluate in spec.containers.iter_mut().filter(|c| c.name == "evaluate") {
        use_data(evaluate, dataset);
        env(evaluate, "SPORE_VAL_CACHE", VAL_CACHE);
    }
    let limits = std::collections::BTreeMap::from([
        ("cpu".to_string(), Quantity("1".into())),
        ("memory".to_string(), Quantity("1Gi".into())),
    ]);
    let copy = Container {
        name: "validation-data".into(),
        image: Some(settings.training_image.clone()),
        command: Some(vec!["spore".into(), "data".into(), "import".into()]),
        args: Some(vec![format!("{DATA_VAL_MOUNT}/{SHARDS}")]),
        env: Some(vec![
            EnvVar {
                name: "SPORE_DATA_CACHE".into(),
                value: Some(format!("{VALIDATION_DIR}/data")),
                ..EnvVar::default()
            },
            EnvVar { name: "SPORE_VAL_CACHE".into(), value: Some(VAL_CACHE.into()), ..EnvVar::default() },
        ]),
        resources: Some(ResourceRequirements {
            limits: Some(limits.clone()),
            requests: Some(limits),
            ..ResourceRequirements::default()
        }),
        security_context: template.security_context,
        volume_mounts: Some(vec![
            data_mount("data-val", DATA_VAL_MOUNT),
            VolumeMount { name: "validation".into(), mount_path: VALIDATION_DIR.into(), ..VolumeMount::default() },
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    steps.insert(0, copy);
}

#[cfg(test)]
mod tests {
    use spore_crds::Experiment;

    use super::*;

    fn pod(node: serde_json::Value) -> PodSpec {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e1", "namespace": "lab", "uid": "u-1"},
            "spec": {"node": "n1", "code": {"inline": "LR = 0.05\n"}}
        }))
        .unwrap();
        let node: SporeNode = serde_json::from_value(node).unwrap();
        super::super::pod::training_pod(&experiment, Some(&node), &PodSettings::new("trainer:1")).spec.unwrap()
    }

    fn mounts(container: &Container) -> Vec<(String, String, Option<String>, bool)> {
        container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.clone(), m.mount_path.clone(), m.sub_path.clone(), m.read_only == Some(true)))
            .collect()
    }

    fn env_of(container: &Container, name: &str) -> Option<String> {
        container.env.iter().flatten().find(|v| v.name == name).and_then(|v| v.value.clone())
    }

    #[test]
    fn climbmix_data_is_read_only_and_only_the_copy_step_sees_the_validation_shard() {
        let spec = pod(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "n1", "namespace": "lab"},
            "spec": {"data": {"volumeClaimName": "climbmix"}}
        }));
        let claim = spec.volumes.iter().flatten().find(|v| v.name == "data").unwrap();
        let source = claim.persistent_volume_claim.as_ref().unwrap();
        assert_eq!((source.claim_name.as_str(), source.read_only), ("climbmix", Some(true)));
        let steps = spec.init_containers.as_ref().unwrap();
        let names: Vec<&str> = steps.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["validation-data", "train"]);
        let (copy, train) = (&steps[0], &steps[1]);
        let evaluate = &spec.containers[0];
        let data = ("data".to_string(), DATA_MOUNT.to_string(), Some("data".to_string()), true);
        let val = ("data".to_string(), DATA_VAL_MOUNT.to_string(), Some("data-val".to_string()), true);
        assert!(mounts(train).contains(&data) && !mounts(train).contains(&val));
        assert!(mounts(evaluate).contains(&data) && !mounts(evaluate).contains(&val));
        assert!(mounts(copy).contains(&val) && !mounts(copy).contains(&data));
        assert!(
            mounts(copy).iter().all(|m| m.0 != "candidate" && m.0 != "scratch"),
            "the copy step sees nothing of the candidate's"
        );
        for step in [train, evaluate] {
            assert_eq!(env_of(step, "SPORE_DATA_CACHE").as_deref(), Some(DATA_MOUNT));
            assert_eq!(env_of(step, "SPORE_DATASET").as_deref(), Some("climbmix"));
        }
        assert_eq!(env_of(evaluate, "SPORE_VAL_CACHE").as_deref(), Some(VAL_CACHE));
        assert_eq!(env_of(copy, "SPORE_VAL_CACHE").as_deref(), Some(VAL_CACHE));
        assert_eq!(copy.args.as_ref().unwrap(), &vec![format!("{DATA_VAL_MOUNT}/climbmix-400b-shuffle")]);
        assert_eq!(copy.security_context, train.security_context, "restricted like the other steps");
    }

    #[test]
    fn without_a_volume_nothing_changes_and_python_stdlib_needs_no_copy_step() {
        let plain = pod(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "n1", "namespace": "lab"},
            "spec": {}
        }));
        assert!(plain.volumes.iter().flatten().all(|v| v.name != "data"));
        assert_eq!(plain.init_containers.as_ref().unwrap().len(), 1);
        let stdlib = pod(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "n1", "namespace": "lab"},
            "spec": {"data": {"volumeClaimName": "corpus", "dataset": "python-stdlib"}}
        }));
        let steps = stdlib.init_containers.as_ref().unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(env_of(&steps[0], "SPORE_DATA_CACHE").as_deref(), Some(DATA_MOUNT));
        // Its evaluation step keeps preparing its own split.
        assert_eq!(env_of(&stdlib.containers[0], "SPORE_DATA_CACHE").as_deref(), Some("/validation/data"));
    }
}

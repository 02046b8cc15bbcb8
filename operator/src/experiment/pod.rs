//! The training pod of an Experiment: requests GPUs through the device plugin's extended
//! resource, tolerates the GPU taint, runs under Pod Security `restricted` with no API token,
//! and returns its result through its termination message.
//!
//! Two steps, so that the code being judged never sees the validation split: the init container
//! `train` (`spore exec --phase train`) trains the candidate with only training data and leaves
//! the exported model in the shared scratch volume; the container `evaluate` (`spore exec
//! --phase evaluate`), the only one that mounts the `validation` volume, prepares the split
//! there and has the trusted evaluator measure the model. Both see the GPUs (an init
//! container's request does not add to the pod's).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, KeyToPath,
    LocalObjectReference, Pod, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Resource;
use spore_crds::common::{DEFAULT_GPU_RESOURCE, TrainingResources};
use spore_crds::experiment::{CODE_KEY, ConfigMapCodeRef, code_config_map_name};
use spore_crds::{Experiment, SporeNode};

pub use spore_crds::experiment::EXPERIMENT_LABEL;
/// Label carrying the owning SporeNode.
pub const NODE_LABEL: &str = "sporemesh.io/node";
/// Node label the GPU class is matched against.
pub const GPU_CLASS_LABEL: &str = "sporemesh.io/gpu-class";
/// Seconds a pod may run beyond the training budget (start-up, evaluation, reporting).
pub const DEADLINE_MARGIN_SECONDS: i64 = 120;
/// Seconds past its deadline a pod may still look live before the operator ends the run itself
/// (the kubelet enforces the deadline; a node that went away never reports).
pub const OVERDUE_GRACE_SECONDS: i64 = 30;
/// Where the candidate code is mounted, read-only.
pub const CODE_DIR: &str = "/spore/candidate";
/// The pod's shared writable directory (an emptyDir): the run, its data cache, the model.
pub const SCRATCH_DIR: &str = "/scratch";
/// The evaluation container's own volume: its data cache with the validation split.
pub const VALIDATION_DIR: &str = "/validation";
/// Where the evaluation container writes the harness it runs, in its own volume.
pub const EVAL_HARNESS_DIR: &str = "/validation/harness";
/// Size limits of the pod's volumes: the training step's scratch (its run, data cache and
/// model) and the evaluation step's own (the validation split and the harness).
pub const SCRATCH_SIZE: &str = "32Gi";
pub const VALIDATION_SIZE: &str = "8Gi";
/// The training step's output (the exported model and its summary, `<work-dir>/out`): a volume
/// of its own, the only thing of the training step's that the evaluation step sees, read-only.
pub const OUTPUT_DIR: &str = "/scratch/out";
pub const OUTPUT_SIZE: &str = "16Gi";
/// Each step's own `/tmp` (the image's `$HOME` and `$TMPDIR` under a read-only root: torch's
/// and Triton's caches), not shared, so nothing the training step leaves there reaches the
/// evaluation step.
pub const TMP_SIZE: &str = "4Gi";

/// Each step's CPU, memory and local disk unless the Experiment or the operator's flags say
/// otherwise: a share of a GPU node (the training data cache, the model and its compile cache
/// fit the disk; the volumes' own size limits total 48Gi).
pub const TRAINING_CPU: &str = "4";
pub const TRAINING_MEMORY: &str = "32Gi";
pub const TRAINING_EPHEMERAL_STORAGE: &str = "64Gi";

pub fn default_training_resources() -> TrainingResources {
    TrainingResources {
        cpu: Some(TRAINING_CPU.into()),
        memory: Some(TRAINING_MEMORY.into()),
        ephemeral_storage: Some(TRAINING_EPHEMERAL_STORAGE.into()),
    }
}

pub use super::quantity::is_quantity;

/// What the controller needs besides the Experiment itself.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// The node-agent image (`spore`), for SporeNodes that name none.
    pub image: String,
    /// The training pods' image: `spore exec`, `spore-eval`, Python and torch.
    pub training_image: String,
    /// Secrets for pulling both images, given to every pod the operator creates.
    pub image_pull_secrets: Vec<String>,
    /// The pod's `activeDeadlineSeconds` is the training budget plus this.
    pub deadline_margin_seconds: i64,
    /// A pod still live this long past its deadline is failed by the operator.
    pub overdue_grace_seconds: i64,
    /// CPU, memory and local disk of each step where the Experiment names none.
    pub training_resources: TrainingResources,
}

impl PodSettings {
    /// Settings with `image` and the default deadline margin and grace.
    pub fn new(image: impl Into<String>) -> Self {
        let image = image.into();
        PodSettings {
            training_image: image.clone(),
            image,
            image_pull_secrets: Vec::new(),
            deadline_margin_seconds: DEADLINE_MARGIN_SECONDS,
            overdue_grace_seconds: OVERDUE_GRACE_SECONDS,
            training_resources: default_training_resources(),
        }
    }

    /// These settings with their own training image.
    pub fn with_training_image(mut self, image: impl Into<String>) -> Self {
        self.training_image = image.into();
        self
    }

    /// The pods' `imagePullSecrets`, none when no secret is named.
    pub fn pull_secrets(&self) -> Option<Vec<LocalObjectReference>> {
        (!self.image_pull_secrets.is_empty())
            .then(|| self.image_pull_secrets.iter().map(|name| LocalObjectReference { name: name.clone() }).collect())
    }
}

/// The deterministic pod name: one pod per Experiment, whatever restarts.
pub fn pod_name(experiment: &Experiment) -> String {
    let name = experiment.metadata.name.as_deref().unwrap_or_default();
    format!("{}-train", name.chars().take(57).collect::<String>())
}

/// The pod for `experiment` of `node` (its SporeNode, when it exists: the GPU request when the
/// Experiment names none, and the node's extra node selector and tolerations), with no node
/// known to carry its GPU class's products.
pub fn training_pod(experiment: &Experiment, node: Option<&SporeNode>, settings: &PodSettings) -> Pod {
    training_pod_on(experiment, node, settings, &[])
}

/// [`training_pod`], where `products` are the `nvidia.com/gpu.product` values of the cluster's
/// nodes that normalise to the requested GPU class (see `gpu_class.rs`).
pub fn training_pod_on(
    experiment: &Experiment,
    node: Option<&SporeNode>,
    settings: &PodSettings,
    products: &[String],
) -> Pod {
    let spec = &experiment.spec;
    let name = experiment.metadata.name.clone().unwrap_or_default();
    let gpu = spec.gpu.clone().or_else(|| node.map(|n| n.spec.gpu.clone())).unwrap_or_default();
    let resource = gpu.resource_name.clone().unwrap_or_else(|| DEFAULT_GPU_RESOURCE.to_string());
    let mut limits = BTreeMap::new();
    if gpu.count > 0 {
        limits.insert(resource.clone(), Quantity(gpu.count.to_string()));
    }
    let own = spec.resources.clone().unwrap_or_default().or(&settings.training_resources);
    for (name, quantity) in [("cpu", own.cpu), ("memory", own.memory), ("ephemeral-storage", own.ephemeral_storage)] {
        if let Some(quantity) = quantity {
            limits.insert(name.to_string(), Quantity(quantity));
        }
    }
    let mut labels = BTreeMap::from([(EXPERIMENT_LABEL.to_string(), name.clone())]);
    labels.insert(NODE_LABEL.to_string(), spec.node.clone());
    let node_selector = node.map(|n| n.spec.node_selector.clone()).unwrap_or_default();
    let affinity = gpu.gpu_class.as_deref().map(|class| super::gpu_class::class_affinity(class, products));
    let mut tolerations = vec![Toleration {
        key: Some(resource.clone()),
        operator: Some("Exists".into()),
        effect: Some("NoSchedule".into()),
        ..Toleration::default()
    }];
    tolerations.extend(node.map(|n| n.spec.tolerations.clone()).unwrap_or_default());
    let scratch_volume = Volume { name: "scratch".into(), empty_dir: Some(bounded(SCRATCH_SIZE)), ..Volume::default() };
    let scratch_mount =
        VolumeMount { name: "scratch".into(), mount_path: SCRATCH_DIR.into(), ..VolumeMount::default() };
    let (volumes, mounts) = match code_config_map(experiment) {
        Some(reference) => (
            Some(vec![Volume {
                name: "candidate".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: reference.name.clone(),
                    items: Some(vec![KeyToPath { key: reference.key.clone(), path: "train.py".into(), mode: None }]),
                    default_mode: Some(0o444),
                    optional: Some(false),
                }),
                ..Volume::default()
            }]),
            Some(vec![VolumeMount {
                name: "candidate".into(),
                mount_path: CODE_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]),
        ),
        None => (None, None),
    };
    let mut volumes = volumes.unwrap_or_default();
    volumes.push(scratch_volume);
    volumes.push(Volume { name: "output".into(), empty_dir: Some(bounded(OUTPUT_SIZE)), ..Volume::default() });
    volumes.push(Volume { name: "validation".into(), empty_dir: Some(bounded(VALIDATION_SIZE)), ..Volume::default() });
    volumes.push(Volume { name: "tmp-train".into(), empty_dir: Some(bounded(TMP_SIZE)), ..Volume::default() });
    volumes.push(Volume { name: "tmp-evaluate".into(), empty_dir: Some(bounded(TMP_SIZE)), ..Volume::default() });
    let output_mount = |read_only: bool| VolumeMount {
        name: "output".into(),
        mount_path: OUTPUT_DIR.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    };
    let mut mounts = mounts.unwrap_or_default();
    mounts.push(scratch_mount);
    mounts.push(output_mount(false));
    mounts.push(tmp_mount("tmp-train"));
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(experiment)),
            namespace: experiment.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: experiment.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(i64::from(spec.time_budget_seconds) + settings.deadline_margin_seconds),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            affinity,
            tolerations: Some(tolerations),
            image_pull_secrets: settings.pull_secrets(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(65532),
                run_as_group: Some(65532),
                seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(vec![step(
                "train",
                settings,
                spec.time_budget_seconds,
                // The pod is this step's jail (restricted, no token, no egress): a container
                // cannot nest the node-agent's user-namespace jail, so it is waived explicitly.
                ["--phase", "train", "--code-dir", CODE_DIR, "--unsandboxed"].map(String::from).to_vec(),
                format!("{SCRATCH_DIR}/data"),
                mounts,
                &limits,
            )]),
            containers: vec![step(
                "evaluate",
                settings,
                spec.time_budget_seconds,
                // The harness runs from the validation volume, which the train step never mounts;
                // of the train step's files it sees only its output, read-only.
                ["--phase", "evaluate", "--eval-harness-dir", EVAL_HARNESS_DIR].map(String::from).to_vec(),
                format!("{VALIDATION_DIR}/data"),
                vec![
                    output_mount(true),
                    tmp_mount("tmp-evaluate"),
                    VolumeMount {
                        name: "validation".into(),
                        mount_path: VALIDATION_DIR.into(),
                        ..VolumeMount::default()
                    },
                ],
                &limits,
            )],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        status: None,
    };
    if let Some(spec) = pod.spec.as_mut() {
        super::data_volume::mount_data(spec, node, settings);
    }
    pod
}

/// An emptyDir that the kubelet evicts the pod for filling past `size`.
fn tmp_mount(volume: &str) -> VolumeMount {
    VolumeMount { name: volume.into(), mount_path: "/tmp".into(), ..VolumeMount::default() }
}

fn bounded(size: &str) -> EmptyDirVolumeSource {
    EmptyDirVolumeSource { size_limit: Some(Quantity(size.into())), ..EmptyDirVolumeSource::default() }
}

/// One `spore exec` step of the pod, restricted, its data cache at `data_cache`.
fn step(
    name: &str,
    settings: &PodSettings,
    budget_seconds: u32,
    phase_args: Vec<String>,
    data_cache: String,
    mounts: Vec<VolumeMount>,
    limits: &BTreeMap<String, Quantity>,
) -> Container {
    let mut args = vec!["--budget-seconds".into(), budget_seconds.to_string()];
    args.extend(phase_args);
    args.extend(["--work-dir".into(), SCRATCH_DIR.into()]);
    Container {
        name: name.into(),
        image: Some(settings.training_image.clone()),
        command: Some(vec!["spore".into(), "exec".into()]),
        args: Some(args),
        env: Some(vec![EnvVar { name: "SPORE_DATA_CACHE".into(), value: Some(data_cache), ..EnvVar::default() }]),
        // Requests equal to limits: the scheduler places the pod where all of it fits, and the
        // kubelet holds the candidate to it.
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits.clone()),
            requests: Some(limits.clone()),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("File".into()),
        ..Container::default()
    }
}

/// The name of the policy that isolates an Experiment's pod.
pub fn isolation_policy_name(experiment: &Experiment) -> String {
    let name = experiment.metadata.name.as_deref().unwrap_or_default();
    format!("{}-isolated", name.chars().take(54).collect::<String>())
}

/// No traffic in or out of the Experiment's pod, whether or not its SporeNode (and that node's
/// egress policy) exists: owned by the Experiment, created before the pod.
pub fn isolation_policy(experiment: &Experiment) -> NetworkPolicy {
    let name = experiment.metadata.name.clone().unwrap_or_default();
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(isolation_policy_name(experiment)),
            namespace: experiment.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(EXPERIMENT_LABEL.to_string(), name.clone())])),
            owner_references: experiment.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(EXPERIMENT_LABEL.to_string(), name)])),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![]),
            egress: Some(vec![]),
        }),
    }
}

/// The ConfigMap holding an inline `train.py`, created by the operator beside the pod.
pub fn inline_code_name(experiment: &Experiment) -> String {
    code_config_map_name(experiment.metadata.name.as_deref().unwrap_or_default())
}

/// Whether the candidate is a diff, whose whole file the SporeNode's agent writes into
/// [`inline_code_name`] (the operator does not hold the parent's code).
pub fn is_diff(experiment: &Experiment) -> bool {
    let code = &experiment.spec.code;
    code.diff.is_some() && code.inline.is_none() && code.config_map_ref.is_none()
}

/// The ConfigMap key the pod mounts as `train.py`: the referenced one, else the operator's copy
/// of inline code or the agent's candidate made from a diff.
pub fn code_config_map(experiment: &Experiment) -> Option<ConfigMapCodeRef> {
    let code = &experiment.spec.code;
    match (&code.config_map_ref, code.inline.is_some() || code.diff.is_some()) {
        (Some(reference), _) => Some(reference.clone()),
        (None, true) => Some(ConfigMapCodeRef { name: inline_code_name(experiment), key: CODE_KEY.into() }),
        (None, false) => None,
    }
}

/// The ConfigMap for inline code, owned by the Experiment (deleted with it).
pub fn inline_code(experiment: &Experiment) -> Option<ConfigMap> {
    let code = experiment.spec.code.inline.clone()?;
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(inline_code_name(experiment)),
            namespace: experiment.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([(
                EXPERIMENT_LABEL.to_string(),
                experiment.metadata.name.clone().unwrap_or_default(),
            )])),
            owner_references: experiment.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(CODE_KEY.to_string(), code)])),
        immutable: Some(true),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_code_goes_into_an_owned_configmap_that_the_pod_mounts() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e2", "namespace": "lab", "uid": "u-2"},
            "spec": {"node": "n1", "code": {"inline": "LR = 0.05\n"}}
        }))
        .unwrap();
        let map = inline_code(&experiment).unwrap();
        assert_eq!(map.metadata.name.as_deref(), Some("e2-code"));
        assert_eq!(map.data.unwrap()["train.py"], "LR = 0.05\n");
        assert_eq!(map.metadata.owner_references.unwrap()[0].uid, "u-2", "deleted with the Experiment");
        let pod = training_pod(&experiment, None, &PodSettings::new("img"));
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let candidate = volumes.iter().find(|v| v.name == "candidate").unwrap();
        assert_eq!(candidate.config_map.as_ref().unwrap().name, "e2-code");
        // A diff's whole file is the agent's to write, under the same name.
        let mut with_diff = experiment.clone();
        with_diff.spec.code =
            spore_crds::experiment::ExperimentCode { diff: Some("+x\n".into()), ..Default::default() };
        assert!(inline_code(&with_diff).is_none() && is_diff(&with_diff));
        assert_eq!(code_config_map(&with_diff).unwrap().name, "e2-code");
    }

    #[test]
    fn training_pods_use_the_training_image_and_the_pull_secrets() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e4", "namespace": "lab", "uid": "u-4"},
            "spec": {"node": "n1", "code": {"inline": "x = 1\n"}}
        }))
        .unwrap();
        let mut settings = PodSettings::new("registry.lab/spore:1").with_training_image("registry.lab/spore-trainer:1");
        settings.image_pull_secrets = vec!["regcred".into()];
        let spec = training_pod(&experiment, None, &settings).spec.unwrap();
        assert_eq!(spec.image_pull_secrets.unwrap()[0].name, "regcred");
        let steps = [spec.init_containers.unwrap().remove(0), spec.containers[0].clone()];
        for step in &steps {
            assert_eq!(step.image.as_deref(), Some("registry.lab/spore-trainer:1"));
        }
        // Each step has a /tmp of its own under the read-only root.
        let tmp =
            |c: &Container| c.volume_mounts.clone().unwrap().into_iter().find(|m| m.mount_path == "/tmp").unwrap().name;
        assert_eq!((tmp(&steps[0]), tmp(&steps[1])), ("tmp-train".to_string(), "tmp-evaluate".to_string()));
        let no_secrets = training_pod(&experiment, None, &PodSettings::new("img")).spec.unwrap();
        assert!(no_secrets.image_pull_secrets.is_none());
    }

    #[test]
    fn each_step_is_held_to_cpu_memory_and_disk_from_the_experiment_or_the_defaults() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e4", "namespace": "lab", "uid": "u-4"},
            "spec": {"node": "n1", "code": {"inline": "x = 1\n"}, "resources": {"memory": "1Gi"}}
        }))
        .unwrap();
        let mut settings = PodSettings::new("img");
        settings.training_resources.cpu = Some("2".into());
        let spec = training_pod(&experiment, None, &settings).spec.unwrap();
        for step in [&spec.init_containers.unwrap()[0], &spec.containers[0]] {
            let resources = step.resources.clone().unwrap();
            let limits = resources.limits.unwrap();
            assert_eq!(limits["memory"], Quantity("1Gi".into()), "the Experiment's own");
            assert_eq!(limits["cpu"], Quantity("2".into()), "the operator's flag");
            assert_eq!(limits["ephemeral-storage"], Quantity(TRAINING_EPHEMERAL_STORAGE.into()), "the default");
            assert_eq!(resources.requests.unwrap(), limits, "requests equal limits");
        }
    }

    #[test]
    fn without_its_own_request_the_run_takes_its_sporenodes() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e3", "namespace": "lab", "uid": "u-3"},
            "spec": {"node": "n1", "code": {"inline": "x = 1\n"}}
        }))
        .unwrap();
        let node: SporeNode = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "n1"},
            "spec": {"gpu": {"count": 2, "gpuClass": "H100"}, "nodeSelector": {"pool": "train"},
                     "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "spore", "effect": "NoSchedule"}]}
        }))
        .unwrap();
        let spec = training_pod(&experiment, Some(&node), &PodSettings::new("img")).spec.unwrap();
        let limits = spec.init_containers.unwrap()[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["nvidia.com/gpu"], Quantity("2".into()));
        assert_eq!(spec.node_selector.unwrap()["pool"], "train");
        assert_eq!(spec.affinity, Some(crate::experiment::gpu_class::class_affinity("H100", &[])));
        let keys: Vec<_> = spec.tolerations.unwrap().iter().filter_map(|t| t.key.clone()).collect();
        assert_eq!(keys, ["nvidia.com/gpu", "dedicated"]);
        // The Experiment's own request wins; without a SporeNode, one GPU of any class.
        let mut own = experiment.clone();
        own.spec.gpu = Some(spore_crds::common::GpuRequest { count: 0, ..Default::default() });
        let spec = training_pod(&own, Some(&node), &PodSettings::new("img")).spec.unwrap();
        let limits = spec.init_containers.unwrap()[0].resources.clone().unwrap().limits.unwrap();
        assert!(!limits.contains_key("nvidia.com/gpu"), "a CPU run asks for no GPU");
        let spec = training_pod(&experiment, None, &PodSettings::new("img")).spec.unwrap();
        assert_eq!(
            spec.init_containers.unwrap()[0].resources.clone().unwrap().limits.unwrap()["nvidia.com/gpu"],
            Quantity("1".into())
        );
        assert_eq!(spec.node_selector, None);
    }

    #[test]
    fn the_pod_runs_spore_exec_with_a_read_only_candidate_and_a_writable_scratch() {
        let experiment: Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "e1", "namespace": "lab", "uid": "u-1"},
            "spec": {"node": "n1", "timeBudgetSeconds": 300, "description": "d", "purpose": "research",
                     "code": {"configMapRef": {"name": "cm", "key": "train.py"}}}
        }))
        .unwrap();
        let pod = training_pod(&experiment, None, &PodSettings::new("img"));
        let spec = pod.spec.unwrap();
        let train = &spec.init_containers.as_deref().unwrap()[0];
        let container = &spec.containers[0];
        assert_eq!((train.name.as_str(), container.name.as_str()), ("train", "evaluate"));
        assert_eq!(train.command.as_deref().unwrap(), ["spore", "exec"]);
        assert_eq!(container.command.as_deref().unwrap(), ["spore", "exec"]);
        let args = train.args.as_deref().unwrap();
        assert_eq!(
            args,
            [
                "--budget-seconds",
                "300",
                "--phase",
                "train",
                "--code-dir",
                CODE_DIR,
                "--unsandboxed",
                "--work-dir",
                SCRATCH_DIR
            ]
        );
        let args = container.args.as_deref().unwrap();
        assert_eq!(
            args,
            [
                "--budget-seconds",
                "300",
                "--phase",
                "evaluate",
                "--eval-harness-dir",
                EVAL_HARNESS_DIR,
                "--work-dir",
                SCRATCH_DIR
            ]
        );
        let cache = |c: &Container| c.env.as_deref().unwrap()[0].clone();
        assert_eq!(
            (cache(train).name.as_str(), cache(train).value.as_deref()),
            ("SPORE_DATA_CACHE", Some("/scratch/data"))
        );
        assert_eq!(cache(container).value.as_deref(), Some("/validation/data"));
        let mounts = |c: &Container| c.volume_mounts.clone().unwrap();
        let mount = |c: &Container, path: &str| mounts(c).into_iter().find(|m| m.mount_path == path);
        assert_eq!(mount(train, CODE_DIR).unwrap().read_only, Some(true));
        assert_ne!(mount(train, SCRATCH_DIR).unwrap().read_only, Some(true));
        assert_ne!(mount(train, OUTPUT_DIR).unwrap().read_only, Some(true));
        // Of the training step's files the evaluation step sees only its output, read-only.
        assert!(mount(container, SCRATCH_DIR).is_none());
        assert_eq!(mount(container, OUTPUT_DIR).unwrap().read_only, Some(true));
        assert_eq!(mounts(container).iter().filter(|m| m.mount_path.starts_with(SCRATCH_DIR)).count(), 1);
        assert_eq!(OUTPUT_DIR, format!("{SCRATCH_DIR}/out"), "where spore exec leaves the model");
        // Only the evaluation step sees the validation volume; it does not see the candidate.
        assert!(mount(train, VALIDATION_DIR).is_none());
        assert!(mount(container, VALIDATION_DIR).is_some());
        assert!(mount(container, CODE_DIR).is_none());
        let volumes = spec.volumes.unwrap();
        assert!(volumes.iter().any(|v| v.name == "scratch" && v.empty_dir.is_some()));
        assert!(volumes.iter().any(|v| v.name == "validation" && v.empty_dir.is_some()));
        // Every emptyDir is bounded; the harness the evaluation runs lives where training never
        // writes.
        assert!(volumes.iter().filter_map(|v| v.empty_dir.as_ref()).all(|d| d.size_limit.is_some()));
        assert!(EVAL_HARNESS_DIR.starts_with(VALIDATION_DIR));
        assert_eq!(train.security_context, container.security_context);
        let security = container.security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(spec.automount_service_account_token, Some(false));
    }
}

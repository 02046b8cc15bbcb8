//! What the research loop compares against when its runs are Experiments: the agent's pod has
//! no torch and no GPU, so it cannot prepare a workspace and probe the machine itself. The
//! harness is the one built into `spore` (the training pods run the same image, so
//! `prepare_cid` is that `prepare.py`'s); the GPU class and the profile come from the
//! SporeNode's GPU request; the data's CID, the GPU model and the versions from the latest
//! finished run of this SporeNode that reported them. What is not known yet stays empty, and
//! the loop learns it from the first record its runs publish.

use std::path::Path;

use kube::api::{Api, ListParams};
use spore_crds::experiment::ExperimentPhase;
use spore_crds::{Experiment, SporeNode};

use crate::research::artifacts::cid_of;
use crate::research::workspace::{self, Contract, Machine, Workspace};

/// The embedded `prepare.py`: the harness the training pods run.
fn harness_prepare() -> &'static str {
    workspace::FILES.iter().find(|(name, _)| *name == "prepare.py").map(|(_, text)| *text).unwrap_or_default()
}

/// The description from the SporeNode (when it can be read) and this node's Experiments.
pub fn describe(dir: &Path, node: Option<&SporeNode>, node_name: &str, runs: &[Experiment]) -> Workspace {
    let prepare_cid = cid_of(harness_prepare().as_bytes());
    let gpu = node.map(|n| n.spec.gpu.clone());
    let mut machine = Machine {
        torch_version: String::new(),
        cuda_version: String::new(),
        gpu_model: String::new(),
        gpu_class: gpu.as_ref().and_then(|g| g.gpu_class.clone()).unwrap_or_default(),
        profile: if gpu.as_ref().is_some_and(|g| g.count == 0) { "cpu" } else { "gpu" }.into(),
    };
    let latest = runs
        .iter()
        .filter(|e| e.spec.node == node_name)
        .filter_map(|e| {
            let status = e.status.as_ref()?;
            let environment = status.environment.as_ref()?;
            let finished = status.phase == ExperimentPhase::Succeeded;
            (finished && environment.prepare_cid == prepare_cid)
                .then_some((status.completion_time.clone(), environment))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, environment)| environment.clone());
    let mut dataset_cid = String::new();
    if let Some(env) = latest {
        let class = spore_spec::gpu_class(&env.gpu_model);
        if machine.gpu_class.is_empty() || machine.gpu_class == class {
            machine.gpu_class = class;
            machine.gpu_model = env.gpu_model;
            machine.torch_version = env.torch_version;
            machine.cuda_version = env.cuda_version;
            dataset_cid = env.dataset_cid;
        }
    }
    Workspace { dir: dir.to_path_buf(), prepare_cid, dataset_cid, machine, eval: None, contract: Contract::Spore }
}

/// Writes the embedded files into `dir` (the baseline's `train.py` comes from there) and
/// describes the cluster's runs from the API.
pub async fn discover(
    client: &kube::Client,
    namespace: &str,
    node_name: &str,
    dir: &Path,
) -> anyhow::Result<Workspace> {
    workspace::materialize(dir)?;
    let nodes: Api<SporeNode> = Api::namespaced(client.clone(), namespace);
    let node = match nodes.get_opt(node_name).await {
        Ok(node) => node,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read SporeNode {node_name}; its GPU class is learned from its runs");
            None
        }
    };
    let experiments: Api<Experiment> = Api::namespaced(client.clone(), namespace);
    let runs = experiments.list(&ListParams::default()).await?.items;
    Ok(describe(dir, node.as_ref(), node_name, &runs))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use spore_crds::experiment::RunEnvironment;
    use spore_crds::{ExperimentStatus, SporeNodeSpec};

    use super::*;

    fn run(node: &str, at: &str, gpu_model: &str, dataset: &str, prepare_cid: &str) -> Experiment {
        let mut e = Experiment::new("r", spore_crds::ExperimentSpec { node: node.into(), ..Default::default() });
        e.status = Some(ExperimentStatus {
            phase: ExperimentPhase::Succeeded,
            completion_time: Some(Time(at.parse().unwrap())),
            environment: Some(RunEnvironment {
                gpu_model: gpu_model.into(),
                cuda_version: "12.8".into(),
                torch_version: "2.13.0".into(),
                dataset_cid: dataset.into(),
                prepare_cid: prepare_cid.into(),
            }),
            ..Default::default()
        });
        e
    }

    fn node(class: Option<&str>, count: u32) -> SporeNode {
        let mut spec = SporeNodeSpec::default();
        spec.gpu.gpu_class = class.map(String::from);
        spec.gpu.count = count;
        SporeNode::new("lab", spec)
    }

    #[test]
    fn before_any_run_only_the_harness_and_the_request_are_known() {
        let w = describe(Path::new("/w"), Some(&node(Some("H100"), 1)), "lab", &[]);
        assert_eq!(w.prepare_cid, cid_of(harness_prepare().as_bytes()));
        assert!(harness_prepare().contains("dataset_cid"));
        assert_eq!((w.machine.gpu_class.as_str(), w.machine.profile.as_str()), ("H100", "gpu"));
        assert_eq!((w.dataset_cid.as_str(), w.machine.gpu_model.as_str()), ("", ""));
        let cpu = describe(Path::new("/w"), Some(&node(None, 0)), "lab", &[]);
        assert_eq!((cpu.machine.gpu_class.as_str(), cpu.machine.profile.as_str()), ("", "cpu"));
    }

    #[test]
    fn the_latest_run_of_this_node_with_this_harness_tells_the_rest() {
        let ours = cid_of(harness_prepare().as_bytes());
        let runs = [
            run("lab", "2026-11-25T10:00:00Z", "NVIDIA_H100_80GB_HBM3", "old", &ours),
            run("lab", "2026-11-25T12:00:00Z", "NVIDIA_H100_80GB_HBM3", "new", &ours),
            run("lab", "2026-11-25T13:00:00Z", "NVIDIA_H100_80GB_HBM3", "other-harness", "pp"),
            run("elsewhere", "2026-11-25T14:00:00Z", "NVIDIA_H100_80GB_HBM3", "not-ours", &ours),
        ];
        let w = describe(Path::new("/w"), None, "lab", &runs);
        assert_eq!((w.dataset_cid.as_str(), w.machine.gpu_class.as_str()), ("new", "H100"));
        assert_eq!(
            (w.machine.gpu_model.as_str(), w.machine.torch_version.as_str()),
            ("NVIDIA_H100_80GB_HBM3", "2.13.0")
        );
        // A SporeNode now asking for another class does not take that run's data for its own.
        let w = describe(Path::new("/w"), Some(&node(Some("A100"), 1)), "lab", &runs);
        assert_eq!((w.dataset_cid.as_str(), w.machine.gpu_class.as_str()), ("", "A100"));
    }
}

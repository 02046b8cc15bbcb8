//! The real node: a kubelet and containerd beside the fake GPU nodes, running the project's
//! images as real containers under the restricted Pod Security Standard.
//!
//! - An Experiment becomes a training pod: its train step trains the workspace's model on CPU
//!   (after planting modules in its /tmp and the scratch volume, which must never run in the
//!   evaluate step), its evaluate step measures it with `spore-eval`, and the operator reads the
//!   result back from the containers' termination messages.
//! - A climbmix Experiment of a SporeNode with a data volume (a claim bound to data prepared
//!   once on the node) trains from it read-only, and only its evaluation step gets the
//!   validation shard.
//! - `helm install` of the chart with the built images: the operator runs in its pod and leads;
//!   a SporeNode becomes an agent pod (ready by its probe) that gossips with a real Python peer
//!   on the host and publishes an Experiment's record to it; killed, the agent comes back with
//!   its identity and store; the operator mirrors the record into PostgreSQL through the
//!   agent's gRPC API, found by the cluster's DNS; an upgrade hands the Lease to the new
//!   operator pod; `helm uninstall` leaves nothing running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spore_tests::climbmix::{prepared_volume, snapshot};
use spore_tests::nodes::{PythonNode, PythonNodeOptions};
use spore_tests::oci::image;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;
use spore_tests::testenv::ports::free_port;
use spore_tests::testenv::real_node::{NODE_IP, NODE_LABEL, NODE_NAME};

/// The operator, out of the cluster (the in-cluster install is the chart's test).
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_operator(env: &TestEnv, log: &std::path::Path) -> Operator {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(spore_tests::bins::workspace_bin("spore-operator", "spore-operator"))
        .args(["run", "--leader-election=false"])
        .args(["--agent-image", &image("spore").reference])
        .args(["--training-image", &image("spore-trainer").reference])
        // Sized for this 2-core machine (whose kubelet reports no ephemeral storage); the greedy
        // Experiment asks for less.
        .args(["--training-cpu", "1", "--training-memory", "4Gi", "--training-ephemeral-storage="])
        // The climbmix evaluation takes about 75 s on one core, past the default 120 s margin;
        // a CI run once saw that pod pass 350 s (2.5 times its usual time, its cause unseen:
        // the failure messages now carry the events and the kubelet's log).
        .args(["--training-deadline-margin", "600"])
        .args(["--metrics-address", &format!("127.0.0.1:{}", free_port().unwrap())])
        .args(["--health-address", &format!("127.0.0.1:{}", free_port().unwrap())])
        .env("KUBECONFIG", env.kubeconfig().unwrap())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start spore-operator");
    Operator(child)
}

/// Python that writes modules a careless evaluate step would import (the harness's own names,
/// `sitecustomize`) into every directory of the train step's /tmp and scratch volume.
const PLANT: &str = r#"
import pathlib
for _dir in ["/tmp", "/scratch", "/scratch/harness", "/scratch/out", "/scratch/data", "/scratch/run"]:
    for _name in ["prepare.py", "json.py", "hashlib.py", "batching.py", "sitecustomize.py"]:
        try:
            pathlib.Path(_dir).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(_dir) / _name).write_text("import sys\nprint('PLANTED MODULE RAN', file=sys.stderr)\nraise SystemExit(3)\n")
            print("PLANTED", pathlib.Path(_dir) / _name)
        except OSError:
            pass
"#;

fn jsonpath(kubectl: &Kubectl, namespace: &str, what: &str, path: &str) -> String {
    kubectl.run(&["get", "-n", namespace, what, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

#[test]
fn an_experiment_trains_and_is_evaluated_in_real_containers_on_the_real_node() {
    let env = TestEnv::real_node_with_crds("real-node", false).expect("a control plane with a real node");
    let kubectl = env.kubectl().unwrap();
    let nodes =
        kubectl.run(&["get", "node", NODE_NAME, "-o", "jsonpath={.status.nodeInfo.containerRuntimeVersion}"], None);
    assert!(nodes.unwrap().starts_with("containerd://"));

    kubectl.run(&["create", "namespace", "lab"], None).unwrap();
    kubectl.run(&["label", "namespace", "lab", "pod-security.kubernetes.io/enforce=restricted"], None).unwrap();
    let _operator = start_operator(&env, &env.dir().join("logs/operator.log"));
    // A hostile candidate: before training it plants modules wherever the train step can write
    // (its /tmp, the scratch volume the evaluate step shares); none of them may run there.
    let train_py = format!("{PLANT}\n{}", workspace_train_py());
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "lab"},
             "spec": {"research": {"enabled": false}, "gpu": {"count": 0},
                      "nodeSelector": {NODE_LABEL: "true"}}},
            {"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "baseline"},
             "spec": {"node": "lab", "code": {"inline": train_py}, "timeBudgetSeconds": 20,
                      "description": "the workspace's train.py on CPU"}},
            // A candidate that takes three times its memory limit.
            {"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "greedy"},
             "spec": {"node": "lab", "code": {"inline": GREEDY}, "timeBudgetSeconds": 20,
                      "resources": {"cpu": "500m", "memory": "1Gi"}, "description": "takes 3 GiB"}}
        ]
    });
    kubectl.run(&["apply", "-n", "lab", "-f", "-"], Some(&manifest.to_string())).unwrap();

    let deadline = Instant::now() + Duration::from_secs(900);
    let phase = loop {
        let phase = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.phase}");
        if phase == "Succeeded" || phase == "Failed" || Instant::now() > deadline {
            break phase;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    let pod = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.pod}");
    let logs = |container: &str| {
        kubectl.run(&["logs", "-n", "lab", &pod, "-c", container], None).unwrap_or_else(|e| e.to_string())
    };
    let status = kubectl.run(&["get", "-n", "lab", "experiment/baseline", "-o", "yaml"], None).unwrap_or_default();
    assert_eq!(
        phase,
        "Succeeded",
        "{status}\n--- train ---\n{}\n--- evaluate ---\n{}\n{}",
        logs("train"),
        logs("evaluate"),
        story(&env, &kubectl, "lab")
    );

    // It ran on the real node, as the restricted standard demands.
    assert_eq!(jsonpath(&kubectl, "lab", &format!("pod/{pod}"), "{.spec.nodeName}"), NODE_NAME);
    // The numbers came from real training and spore-eval's measurement.
    let val_bpb: f64 = jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.metrics.valBpb}").parse().unwrap();
    assert!(val_bpb > 1.0 && val_bpb < 9.0, "{status}");
    assert!(logs("evaluate").contains("[spore] evaluator: val_bpb"), "{}", logs("evaluate"));
    assert!(logs("train").contains("PLANTED /tmp/sitecustomize.py"), "the candidate planted: {}", logs("train"));
    assert!(!logs("evaluate").contains("PLANTED MODULE RAN"), "{}", logs("evaluate"));
    let listed = kubectl.run(&["get", "experiments", "-n", "lab"], None).unwrap();
    assert!(listed.contains("Succeeded") && listed.contains(&format!("{val_bpb}")[..4]), "{listed}");

    // The greedy candidate (run after the baseline: one run at a time per SporeNode) was killed
    // at its memory limit, and the run says so.
    wait_for(
        "the greedy Experiment to fail",
        Duration::from_secs(240),
        || jsonpath(&kubectl, "lab", "experiment/greedy", "{.status.phase}") == "Failed",
        || kubectl.run(&["get", "-n", "lab", "experiment/greedy", "-o", "yaml"], None).unwrap_or_default(),
    );
    let greedy_pod = jsonpath(&kubectl, "lab", "experiment/greedy", "{.status.pod}");
    let limit =
        jsonpath(&kubectl, "lab", &format!("pod/{greedy_pod}"), "{.spec.initContainers[0].resources.limits.memory}");
    assert_eq!(limit, "1Gi");
    let message = jsonpath(&kubectl, "lab", "experiment/greedy", "{.status.message}");
    let train_log =
        kubectl.run(&["logs", "-n", "lab", &greedy_pod, "-c", "train"], None).unwrap_or_else(|e| e.to_string());
    assert!(message.contains("OOMKilled") || message.contains("SIGKILL"), "{message}\n{train_log}");
    assert!(train_log.contains("GREEDY: taking 3 GiB"), "{train_log}");
    assert!(!train_log.contains("GREEDY: holding 3 GiB"), "the limit held: {train_log}");
}

/// A candidate on the climbmix task that tries the lab's data volume: it would rewrite the
/// token-byte table the evaluator trusts and a training shard, and looks for the validation
/// shard, before it trains as the workspace's `train.py` does.
const TRY_THE_VOLUME: &str = r#"
import os
for _path in ["/spore/data/climbmix-v1-s2/token_bytes.bin", "/spore/data/climbmix-400b-shuffle/shard_00000.parquet"]:
    try:
        with open(_path, "r+b") as _f:
            _f.write(b"\0")
        print("WROTE", _path, flush=True)
    except OSError as _e:
        print("REFUSED", _path, _e.strerror, flush=True)
print("VALIDATION SHARD SEEN:", [p for p in ["/spore/data-val", "/validation"] if os.path.exists(p)], flush=True)
"#;

#[test]
fn a_climbmix_experiment_trains_from_the_labs_data_volume_on_the_real_node() {
    let env = TestEnv::real_node_with_crds("real-node-data", false).expect("a control plane with a real node");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", "lab"], None).unwrap();
    kubectl.run(&["label", "namespace", "lab", "pod-security.kubernetes.io/enforce=restricted"], None).unwrap();
    // The lab's volume, prepared once on the node (shards, tokenizer, training tokens).
    let volume = env.dir().join("climbmix-volume");
    prepared_volume(&volume);
    let before = snapshot(&volume);
    let _operator = start_operator(&env, &env.dir().join("logs/operator.log"));
    let train_py = format!("{TRY_THE_VOLUME}\n{}", workspace_train_py());
    let manifest = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        host_volume("climbmix", "climbmix", &volume),
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "climbmix", "namespace": "lab"},
         "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": "climbmix",
                  "resources": {"requests": {"storage": "1Gi"}}}},
        {"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "lab", "namespace": "lab"},
         "spec": {"research": {"enabled": false}, "gpu": {"count": 0}, "nodeSelector": {NODE_LABEL: "true"},
                  "data": {"volumeClaimName": "climbmix", "dataset": "climbmix"}}},
        {"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "climbmix", "namespace": "lab"},
         "spec": {"node": "lab", "code": {"inline": train_py}, "timeBudgetSeconds": 20,
                  "description": "the workspace's train.py on climbmix, CPU"}}
    ]});
    kubectl.run(&["apply", "-f", "-"], Some(&manifest.to_string())).unwrap();

    let experiment =
        || kubectl.run(&["get", "-n", "lab", "experiment/climbmix", "-o", "yaml"], None).unwrap_or_default();
    let phase = || jsonpath(&kubectl, "lab", "experiment/climbmix", "{.status.phase}");
    wait_for(
        "the climbmix Experiment to end",
        Duration::from_secs(900),
        || ["Succeeded", "Failed"].contains(&phase().as_str()),
        experiment,
    );
    let pod = jsonpath(&kubectl, "lab", "experiment/climbmix", "{.status.pod}");
    let logs = |container: &str| {
        kubectl.run(&["logs", "-n", "lab", &pod, "-c", container], None).unwrap_or_else(|e| e.to_string())
    };
    let all_logs = || {
        format!(
            "{}\n--- validation-data ---\n{}\n--- train ---\n{}\n--- evaluate ---\n{}\n{}",
            experiment(),
            logs("validation-data"),
            logs("train"),
            logs("evaluate"),
            story(&env, &kubectl, "lab")
        )
    };
    assert_eq!(phase(), "Succeeded", "{}", all_logs());
    assert_eq!(jsonpath(&kubectl, "lab", &format!("pod/{pod}"), "{.spec.nodeName}"), NODE_NAME);
    // The budget plus the operator's --training-deadline-margin.
    assert_eq!(jsonpath(&kubectl, "lab", &format!("pod/{pod}"), "{.spec.activeDeadlineSeconds}"), "620");
    // The shard reached the evaluation step through the copy step, checked; the candidate saw
    // no copy of it, and the volume refused its writes.
    assert_eq!(
        jsonpath(&kubectl, "lab", &format!("pod/{pod}"), "{.spec.initContainers[*].name}"),
        "validation-data train"
    );
    assert!(logs("validation-data").contains("imported 1 shards"), "{}", all_logs());
    let train_log = logs("train");
    assert!(train_log.contains("VALIDATION SHARD SEEN: []"), "{}", all_logs());
    assert!(!train_log.contains("WROTE"), "{}", all_logs());
    assert_eq!(train_log.matches("REFUSED /spore/data/").count(), 2, "{}", all_logs());
    // Measured by spore-eval on the task the volume holds.
    assert!(logs("evaluate").contains("[spore] evaluator: val_bpb"), "{}", all_logs());
    let val_bpb: f64 = jsonpath(&kubectl, "lab", "experiment/climbmix", "{.status.metrics.valBpb}").parse().unwrap();
    assert!(val_bpb > 0.5 && val_bpb < 20.0, "{}", all_logs());
    let prepared: serde_json::Value =
        serde_json::from_slice(&std::fs::read(volume.join("data/climbmix-v1-s2/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        jsonpath(&kubectl, "lab", "experiment/climbmix", "{.status.environment.datasetCid}"),
        prepared["dataset_cid"].as_str().unwrap()
    );
    // Nothing on the volume changed.
    assert_eq!(snapshot(&volume), before);
}

/// A candidate that writes to 3 GiB of memory, page by page.
const GREEDY: &str = "print('GREEDY: taking 3 GiB', flush=True)\n\
                      block = bytearray(3 << 30)\n\
                      for i in range(0, len(block), 4096):\n    block[i] = 1\n\
                      print('GREEDY: holding 3 GiB', flush=True)\n";

/// A volume of 1Gi on the node at `path`, bound in advance to the claim `claim` of `lab`.
fn host_volume(name: &str, claim: &str, path: &Path) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "claimRef": {"namespace": "lab", "name": claim},
                 "hostPath": {"path": path, "type": "Directory"}}})
}

/// The workspace's `train.py`, as the research loop's first Experiment runs it.
fn workspace_train_py() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../workspace/train.py")).unwrap()
}

/// What the cluster and the node said about `namespace`, for a failure's message: its events
/// (they outlive a pod the operator removed), and the tails of the operator's and kubelet's logs.
fn story(env: &TestEnv, kubectl: &Kubectl, namespace: &str) -> String {
    let events = kubectl
        .run(&["get", "events", "-n", namespace, "--sort-by=.lastTimestamp", "-o", "wide"], None)
        .unwrap_or_else(|e| e.to_string());
    let tail = |name: &str| {
        let text = std::fs::read_to_string(env.dir().join("logs").join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "--- events ---\n{events}\n--- operator.log ---\n{}\n--- kubelet.log ---\n{}",
        tail("operator.log"),
        tail("kubelet.log")
    )
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool, why: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{}", why());
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn helm(env: &TestEnv, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env.bin("helm").unwrap())
        .args(args)
        .env("KUBECONFIG", env.kubeconfig().unwrap())
        .env("HELM_CACHE_HOME", env.dir().join("helm/cache"))
        .env("HELM_CONFIG_HOME", env.dir().join("helm/config"))
        .env("HELM_DATA_HOME", env.dir().join("helm/data"))
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// The records in an agent's store (its volume), read with the host's `spore`.
fn stored_ids(data_dir: &Path) -> String {
    let out = Command::new(spore_tests::bins::workspace_bin("spore-agent", "spore"))
        .args(["record", "export", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn helm_install_runs_the_operator_and_an_agent_that_publishes_to_a_python_peer() {
    let env = TestEnv::real_node_with_crds("real-node-helm", true).expect("a control plane with a real node");
    let kubectl = env.kubectl().unwrap();
    let k = |args: &[&str]| kubectl.run(args, None).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    // Only the real node takes the pods that have no GPU (the fake CPU node would only pretend).
    k(&["cordon", "sim-cpu-0"]);
    for namespace in ["spore-system", "lab"] {
        k(&["create", "namespace", namespace]);
        k(&["label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"]);
    }
    // The mirror's database, where the node's pods reach it.
    let database_url = env.database_url().unwrap().replace("127.0.0.1", NODE_IP);
    k(&[
        "create",
        "secret",
        "generic",
        "spore-mirror-db",
        "-n",
        "spore-system",
        &format!("--from-literal=url={database_url}"),
    ]);
    let tag = image("spore").reference.rsplit_once(':').unwrap().1.to_string();
    let set = |key: &str, value: &str| format!("--set={key}={value}");
    helm(
        &env,
        &[
            "install",
            "spore",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/spore"),
            "--namespace",
            "spore-system",
            &set("image.tag", &tag),
            &set("agentImage.tag", &tag),
            &set("trainingImage.tag", &tag),
            // Sized for this 2-core machine.
            "--set-string=trainingResources.cpu=1",
            "--set=trainingResources.memory=4Gi",
            "--set=trainingResources.ephemeralStorage=",
            "--set-string=nodeSelector.sporemesh\\.io/real-node=true",
            "--set=mirror.enabled=true",
            "--wait",
            "--timeout=120s",
        ],
    )
    .unwrap();
    // The operator's pod is ready by its own probe and holds the Lease.
    let operator_pod = k(&["get", "pods", "-n", "spore-system", "-o", "jsonpath={.items[0].metadata.name}"]);
    wait_for(
        "the operator to lead",
        Duration::from_secs(60),
        || jsonpath(&kubectl, "spore-system", "lease/spore-operator", "{.spec.holderIdentity}") == operator_pod,
        || kubectl.run(&["logs", "-n", "spore-system", &operator_pod], None).unwrap_or_default(),
    );

    // A real Python 0.1.2 peer on the host, where the node's pods reach it: the lab's public peer.
    let python_port = free_port().unwrap();
    let python = PythonNode::start(
        &env.dir().join("python"),
        python_port,
        &PythonNodeOptions { genesis: true, host: Some(NODE_IP.into()), ..Default::default() },
    );
    // The agent's store: a volume on the node that outlives the pod.
    let store = env.dir().join("agent-store");
    std::fs::create_dir_all(&store).unwrap();
    nix::unistd::chown(&store, Some(nix::unistd::Uid::from_raw(65532)), Some(nix::unistd::Gid::from_raw(65532)))
        .unwrap();
    let train_py = workspace_train_py();
    let manifest = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        host_volume("lab-agent-store", "data-lab-0", &store),
        {"apiVersion": "sporemesh.io/v1alpha1", "kind": "SporeNode", "metadata": {"name": "lab", "namespace": "lab"},
         "spec": {"research": {"enabled": false}, "gpu": {"count": 0}, "nodeSelector": {NODE_LABEL: "true"},
                  "storage": {"size": "1Gi", "storageClassName": ""},
                  "bridge": {"publicPeers": [format!("{NODE_IP}:{python_port}")], "export": "own"}}}
    ]});
    kubectl.run(&["apply", "-f", "-"], Some(&manifest.to_string())).unwrap();
    let agent_log = || kubectl.run(&["logs", "-n", "lab", "lab-0"], None).unwrap_or_else(|e| e.to_string());
    let ready =
        || jsonpath(&kubectl, "lab", "pod/lab-0", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True";
    wait_for("the agent pod to be ready", Duration::from_secs(90), ready, agent_log);
    assert_eq!(jsonpath(&kubectl, "lab", "pod/lab-0", "{.spec.nodeName}"), NODE_NAME);
    let node_id = jsonpath(&kubectl, "lab", "sporenode/lab", "{.status.nodeId}");

    let experiment = serde_json::json!({"apiVersion": "sporemesh.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "baseline", "namespace": "lab"},
        "spec": {"node": "lab", "code": {"inline": train_py}, "timeBudgetSeconds": 20, "description": "baseline on CPU"}});
    kubectl.run(&["apply", "-f", "-"], Some(&experiment.to_string())).unwrap();
    let published = || jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.publishedCid}");
    wait_for(
        "the agent to publish the Experiment",
        Duration::from_secs(420),
        || published().len() == 64,
        || {
            format!(
                "{}\n{}",
                kubectl.run(&["get", "-n", "lab", "experiment/baseline", "-o", "yaml"], None).unwrap_or_default(),
                agent_log()
            )
        },
    );
    let cid = published();
    assert_eq!(jsonpath(&kubectl, "lab", "experiment/baseline", "{.status.decision}"), "keep");
    // Gossip: the record reached the Python peer outside the cluster.
    wait_for(
        "the Python peer to hold the record",
        Duration::from_secs(60),
        || python.ids().contains(&cid),
        || python.log(),
    );

    // The operator mirrored it into PostgreSQL (it found the agent by its Service's DNS name).
    let mirrored = || {
        let out = Command::new("psql")
            .args([env.database_url().unwrap(), "-tAc", "SELECT id FROM experiments"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for(
        "the mirror to hold the record",
        Duration::from_secs(90),
        || mirrored().contains(&cid),
        || kubectl.run(&["logs", "-n", "spore-system", &operator_pod], None).unwrap_or_default(),
    );

    // An upgrade (CRDs first, as the README says) rolls the operator; the new pod takes the Lease.
    k(&["apply", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/spore/crds")]);
    helm(
        &env,
        &[
            "upgrade",
            "spore",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/spore"),
            "--namespace",
            "spore-system",
            "--reuse-values",
            "--set=logLevel=debug",
            "--wait",
            "--timeout=120s",
        ],
    )
    .unwrap();
    let upgraded = || {
        let pods = k(&["get", "pods", "-n", "spore-system", "-o", "jsonpath={.items[*].metadata.name}"]);
        let holder = jsonpath(&kubectl, "spore-system", "lease/spore-operator", "{.spec.holderIdentity}");
        pods.split_whitespace().collect::<Vec<_>>() == [holder.as_str()] && holder != operator_pod
    };
    wait_for("the upgraded operator to lead", Duration::from_secs(90), upgraded, || k(&["get", "pods,lease", "-A"]));

    // Killed, the agent comes back with its identity and its store.
    let agent_pid = k(&["get", "pod", "-n", "lab", "lab-0", "-o", "jsonpath={.metadata.uid}"]);
    k(&["delete", "pod", "-n", "lab", "lab-0", "--grace-period=0", "--force"]);
    wait_for(
        "a new agent pod to be ready",
        Duration::from_secs(90),
        || {
            jsonpath(&kubectl, "lab", "pod/lab-0", "{.metadata.uid}") != agent_pid
                && jsonpath(&kubectl, "lab", "pod/lab-0", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
        },
        agent_log,
    );
    assert!(agent_log().contains(&format!("node_id=\"{}", &node_id[..16])), "{}", agent_log());
    assert!(stored_ids(&store).contains(&cid), "the store kept the record");

    // Uninstalled (after the lab's own objects), nothing of it runs on the node.
    k(&["delete", "sporenode", "-n", "lab", "lab", "--wait=true"]);
    k(&["delete", "experiment", "-n", "lab", "baseline", "--wait=true"]);
    helm(&env, &["uninstall", "spore", "--namespace", "spore-system", "--wait", "--timeout=120s"]).unwrap();
    wait_for(
        "every pod to be gone",
        Duration::from_secs(120),
        || {
            k(&["get", "pods", "-n", "spore-system", "-o", "name"]).trim().is_empty()
                && k(&["get", "pods", "-n", "lab", "-o", "name"]).trim().is_empty()
        },
        || k(&["get", "pods", "-A"]),
    );
}

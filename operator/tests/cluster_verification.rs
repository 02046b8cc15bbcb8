//! Verification in a cluster, on a real control plane with kwok GPU nodes: a SporeNode's agent
//! (`spore run --kubernetes-node`, no torch, research off) re-runs each peer's record it can
//! check as an Experiment of `purpose: verify` on the SporeNode's GPUs; the operator runs it as a
//! GPU pod (completion driven by pod annotations); the agent publishes no record for it and
//! turns the measurement into a signed event — a `verification` when the re-run reproduces the
//! claim, a `challenge` when it does not.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::process::Command;
use std::time::Duration;

use spore_operator::experiment::controller;
use spore_spec::{ExperimentRecord, Identity, JsonNumber};
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, free_port, wait_until_or};
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

const NS: &str = "lab";
const PREPARE: &[u8] = include_bytes!("../../workspace/prepare.py");
const GPU: &str = "NVIDIA_H100_80GB_HBM3";

fn metrics(val_bpb: f64) -> String {
    format!(
        r#"{{"val_bpb": {val_bpb}, "num_steps": 953, "num_params": 50331648, "peak_vram_mb": 45060.2, "gpu_model": "{GPU}", "cuda_version": "12.8", "torch_version": "2.13.0", "dataset_cid": "{}", "prepare_cid": "{}"}}"#,
        "d".repeat(64),
        spore_spec::cid::cid_of(PREPARE)
    )
}

/// Waits for `name` to run, then ends its pod with `val_bpb`.
fn finish(kubectl: &Kubectl, name: &str, val_bpb: f64) {
    wait_until_or(
        Duration::from_secs(60),
        &format!("{name} to run"),
        || support::field(kubectl, NS, "experiment", name, "{.status.phase}") == "Running",
        || support::field(kubectl, NS, "experiment", name, "{.status}"),
    );
    support::end_pod(kubectl, NS, &format!("{name}-train"), 0, &metrics(val_bpb));
}

/// A peer's record of this harness, data and GPU class, its code `code`.
fn peer_record(author: &Identity, n: i64, val_bpb: f64, code: &str) -> ExperimentRecord {
    let mut r = spore_tests::records::record(n);
    r.gpu_model = GPU.into();
    r.prepare_cid = spore_spec::cid::cid_of(PREPARE);
    r.dataset_cid = "d".repeat(64);
    r.val_bpb = JsonNumber::Float(val_bpb);
    r.code_cid = spore_spec::cid::cid_of(code.as_bytes());
    author.sign_record(&mut r);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_re_runs_peers_records_as_verify_experiments() {
    let env = TestEnv::kubernetes_with_crds("verify-test", 4).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    kubectl.run(&["create", "namespace", NS], None).unwrap();
    let sporenode = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec:\n  \
                     gpu: {count: 1, gpuClass: H100}\n";
    kubectl.run(&["apply", "-n", NS, "-f", "-"], Some(sporenode)).unwrap();
    let ctx = support::operator_context(&env).await;
    let operator = tokio::spawn(controller::run(ctx));

    let data = tempfile::tempdir().unwrap();
    // The peers' code is here already (as if fetched by code_cid).
    let (honest_code, lying_code) = ("LR = 0.03\n", "LR = 0.3\n");
    for code in [honest_code, lying_code] {
        let cid = spore_spec::cid::cid_of(code.as_bytes());
        let dir = data.path().join("artifact").join(&cid[..2]).join(&cid[2..4]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&cid), code).unwrap();
    }
    let kubeconfig = env.kubeconfig().unwrap().to_string_lossy().into_owned();
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        // A run of this SporeNode tells the agent its harness and data.
        k.run(&["apply", "-n", NS, "-f", "-"], Some(&support::inline_experiment("warmup"))).unwrap();
        finish(&k, "warmup", 0.99);
        let args: Vec<String> =
            ["--kubernetes-node", "lab-node", "--kubernetes-namespace", NS, "--no-train", "--spot-check-rate", "1"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let node = SporeNode::start_training_with_env(
            &workspace_bin("spore-agent", "spore"),
            data.path(),
            free_port().unwrap(),
            &args,
            &[("KUBECONFIG", &kubeconfig)],
        );
        wait_until_or(
            Duration::from_secs(60),
            "the warm-up to be published",
            || node.record_count() == 1,
            || node.log(),
        );
        let author = Identity::from_seed([77; 32]);
        let honest = peer_record(&author, 1, 0.9931, honest_code);
        let lie = peer_record(&author, 2, 0.5, lying_code);
        node.push(&[honest.clone(), lie.clone()], 3);
        // Each becomes a re-run on the SporeNode's GPUs; both codes really give 0.9931.
        for record in [&honest, &lie] {
            let mut name = String::new();
            wait_until_or(
                Duration::from_secs(60),
                "a verify Experiment for the record",
                || {
                    let path = format!("{{.items[?(@.spec.verifyCid==\"{}\")].metadata.name}}", record.id);
                    name = k
                        .run(&["get", "experiments", "-n", NS, "-o", &format!("jsonpath={path}")], None)
                        .unwrap_or_default();
                    !name.is_empty()
                },
                || format!("{}\n{}", k.run(&["get", "experiments", "-n", NS], None).unwrap_or_default(), node.log()),
            );
            assert_eq!(support::field(&k, NS, "experiment", &name, "{.spec.purpose}"), "verify");
            finish(&k, &name, 0.9931);
            let published = r#"{.status.conditions[?(@.type=="Published")].reason}"#;
            wait_until_or(
                Duration::from_secs(30),
                "the re-run to say it is never published",
                || support::field(&k, NS, "experiment", &name, published) == "NeverPublished",
                || support::field(&k, NS, "experiment", &name, "{.status.conditions}"),
            );
        }
        // The honest record is verified; the lie is challenged; no record was published for either.
        wait_until_or(
            Duration::from_secs(60),
            "the honest record to be verified and the lie challenged",
            || {
                let out = Command::new(workspace_bin("spore-agent", "spore"))
                    .args(["frontier", "--json", "--data-dir"])
                    .arg(data.path())
                    .output()
                    .unwrap();
                let frontier: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                let verified = |id: &str| {
                    frontier.as_array().into_iter().flatten().any(|r| r["id"] == id && r["verified"] == true)
                };
                verified(&honest.id) && !verified(&lie.id) && node.log().contains("challenging")
            },
            || node.log(),
        );
        assert_eq!(node.record_count(), 3, "re-runs publish nothing");
    })
    .await
    .unwrap();
    operator.abort();
}

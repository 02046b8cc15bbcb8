//! Upgrading an installed release, on a real control plane with kwok nodes: the chart as it was
//! at 0.1.0 (taken from the repository's history) is installed with `helm install`, a SporeNode
//! and an Experiment are written against its CRDs, then the current CRDs are applied
//! (server-side: Helm never upgrades CRDs) and the release upgraded with `helm upgrade`. The old
//! objects stay valid and keep their values, fields added since read with their defaults, a new
//! field can be set on an old object, and the operator runs the new chart's arguments.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use spore_tests::testenv::{TestEnv, TestEnvOptions};

/// The last commit whose chart was 0.1.0.
const CHART_0_1_0: &str = "15679d7";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn a_release_of_the_0_1_0_chart_upgrades_with_its_objects_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.kubernetes = true;
    let env = TestEnv::up(&options).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    let helm = |args: &[&str]| {
        let out = Command::new(env.bin("helm").unwrap())
            .args(args)
            .env("KUBECONFIG", env.kubeconfig().unwrap())
            .env("HELM_CACHE_HOME", tmp.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", tmp.path().join("helm/config"))
            .env("HELM_DATA_HOME", tmp.path().join("helm/data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The 0.1.0 chart, from history.
    let archive = Command::new("git")
        .args(["archive", "--format=tar", CHART_0_1_0, "charts/spore"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(archive.status.success(), "git archive {CHART_0_1_0}: {}", String::from_utf8_lossy(&archive.stderr));
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let mut untar =
        Command::new("tar").arg("-x").current_dir(&old).stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(untar.stdin.as_mut().unwrap(), &archive.stdout).unwrap();
    assert!(untar.wait().unwrap().success());
    let old_chart = old.join("charts/spore");
    let installed = helm(&[
        "install",
        "spore",
        old_chart.to_str().unwrap(),
        "-n",
        "spore-system",
        "--create-namespace",
        "--wait",
        "--timeout",
        "2m",
    ]);
    assert!(installed.contains("STATUS: deployed"), "{installed}");

    // Objects written against the 0.1.0 CRDs.
    kubectl.run(&["create", "namespace", "lab"], None).unwrap();
    let objects = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec:\n  \
                   verification: {spotCheckRate: 0.1}\n---\n\
                   apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {name: old-run}\nspec:\n  \
                   node: lab-node\n  code: {inline: \"LR = 0.05\\n\"}\n  timeBudgetSeconds: 300\n  gpu: {count: 0}\n";
    kubectl.run(&["apply", "--server-side", "--field-manager=gitops", "-n", "lab", "-f", "-"], Some(objects)).unwrap();

    // The upgrade: CRDs first, then the release.
    let crds = repo().join("charts/spore/crds");
    kubectl.run(&["apply", "--server-side", "--force-conflicts", "-f", crds.to_str().unwrap()], None).unwrap();
    let chart = repo().join("charts/spore");
    let upgraded =
        helm(&["upgrade", "spore", chart.to_str().unwrap(), "-n", "spore-system", "--wait", "--timeout", "2m"]);
    assert!(upgraded.contains("STATUS: deployed") && upgraded.contains("REVISION: 2"), "{upgraded}");

    let get = |kind: &str, name: &str, path: &str| {
        kubectl.run(&["get", kind, "-n", "lab", name, "-o", &format!("jsonpath={path}")], None).unwrap()
    };
    assert_eq!(get("sporenode", "lab-node", "{.spec.verification.spotCheckRate}"), "0.1", "old values kept");
    assert_eq!(get("sporenode", "lab-node", "{.spec.retention.finishedExperimentSeconds}"), "604800");
    assert_eq!(get("experiment", "old-run", "{.spec.code.inline}"), "LR = 0.05\n");
    // A field added since, set on the old object.
    let trusted = format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {{name: lab-node}}\nspec:\n  \
                           verification: {{spotCheckRate: 0.1, trustedVerifiers: [\"{}\"]}}\n",
        "ab".repeat(32)
    );
    kubectl.run(&["apply", "--server-side", "--field-manager=gitops", "-n", "lab", "-f", "-"], Some(&trusted)).unwrap();
    assert_eq!(get("sporenode", "lab-node", "{.spec.verification.trustedVerifiers[0]}"), "ab".repeat(32));
    // The operator runs the new chart's arguments.
    let deployment = ["get", "deployment", "-n", "spore-system", "spore", "-o"];
    let args =
        kubectl.run(&[&deployment[..], &["jsonpath={.spec.template.spec.containers[0].args}"]].concat(), None).unwrap();
    assert!(args.contains("--allowed-image-prefix=ghcr.io/spore-mesh/spore:"), "{args}");
    drop(env);
}

//! A namespaced install on a real control plane: `helm install` with `watchNamespace: lab`
//! gives the operator's ServiceAccount its rights by a Role in `lab` (and cluster-wide only the
//! reading of nodes), checked with `kubectl auth can-i`; the operator's controllers, running as
//! that ServiceAccount (impersonated), reconcile the SporeNode in `lab` and leave the one in
//! `other` alone — they never ask for what the Role does not grant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use spore_operator::experiment::controller::Context;
use spore_operator::experiment::pod::PodSettings;
use spore_tests::nodes::wait_until_or;
use spore_tests::testenv::TestEnv;

const OPERATOR: &str = "system:serviceaccount:spore-system:spore";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_install_acts_in_its_namespace_only() {
    let env = TestEnv::kubernetes_with_crds("namespaced", 1).expect("test control plane");
    let kubectl = env.kubectl().unwrap();
    for namespace in ["spore-system", "lab", "other"] {
        kubectl.run(&["create", "namespace", namespace], None).unwrap();
    }
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/spore");
    let helm_home = tempfile::tempdir().unwrap();
    let installed = std::process::Command::new(env.bin("helm").unwrap())
        .args(["install", "spore"])
        .arg(&chart)
        .args(["-n", "spore-system", "--set", "watchNamespace=lab", "--skip-crds"])
        .env("KUBECONFIG", env.kubeconfig().unwrap())
        .env("HELM_CACHE_HOME", helm_home.path().join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.path().join("config"))
        .env("HELM_DATA_HOME", helm_home.path().join("data"))
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));

    // What the operator's account may do.
    let can = |args: &[&str]| {
        let who = format!("--as={OPERATOR}");
        kubectl.run(&[&["auth", "can-i"], args, &[who.as_str()]].concat(), None).is_ok_and(|out| out.trim() == "yes")
    };
    assert!(can(&["create", "pods", "-n", "lab"]) && can(&["create", "secrets", "-n", "lab"]));
    assert!(can(&["patch", "sporenodes.sporemesh.io/status", "-n", "lab"]));
    assert!(!can(&["create", "pods", "-n", "other"]) && !can(&["get", "secrets", "-n", "other"]));
    assert!(!can(&["list", "sporenodes.sporemesh.io", "--all-namespaces"]), "nothing cluster-wide");
    assert!(can(&["list", "nodes"]), "but the nodes, for GPU placement");

    // The controllers as that account, watching `lab`.
    let nodes = "apiVersion: sporemesh.io/v1alpha1\nkind: SporeNode\nmetadata: {name: lab-node}\nspec: {}\n";
    kubectl.run(&["apply", "-n", "lab", "-f", "-"], Some(nodes)).unwrap();
    kubectl.run(&["apply", "-n", "other", "-f", "-"], Some(nodes)).unwrap();
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig().unwrap()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.auth_info.impersonate = Some(OPERATOR.into());
    let client = kube::Client::try_from(config).unwrap();
    let mut ctx = Context::new(client, PodSettings::new("spore:test"), Arc::default());
    ctx.watch_namespace = Some("lab".into());
    let controllers = tokio::spawn(spore_operator::run_controllers(Arc::new(ctx)));
    let k = kubectl.clone();
    tokio::task::spawn_blocking(move || {
        wait_until_or(
            Duration::from_secs(60),
            "the SporeNode in lab to be reconciled",
            || support::field(&k, "lab", "sporenode", "lab-node", "{.status.nodeId}").len() == 64,
            || support::field(&k, "lab", "sporenode", "lab-node", "{.status}"),
        );
        assert!(k.run(&["get", "statefulset", "-n", "lab", "lab-node"], None).is_ok());
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(support::field(&k, "other", "sporenode", "lab-node", "{.status}"), "", "other is not ours");
        assert!(k.run(&["get", "secret", "-n", "other", "lab-node-identity"], None).is_err());
    })
    .await
    .unwrap();
    controllers.abort();
}

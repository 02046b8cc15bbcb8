//! Shared by the operator's tests: the controllers' context against a test control plane.

use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use spore_operator::experiment::controller::Context;
use spore_operator::experiment::pod::PodSettings;
use spore_tests::testenv::TestEnv;

/// A context whose client is the control plane's admin, with the image `spore:test`.
pub async fn operator_context(env: &TestEnv) -> Arc<Context> {
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig().expect("a kubeconfig")).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    Arc::new(Context::new(client, PodSettings { image: "spore:test".into() }, Arc::default()))
}

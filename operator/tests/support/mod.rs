//! Shared by the operator's tests: the controllers' context against a test control plane, and
//! ending a kwok training pod as `spore exec` would.

pub mod poll;

use std::sync::Arc;

use kube::config::{KubeConfigOptions, Kubeconfig};
use spore_operator::experiment::controller::Context;
use spore_operator::experiment::pod::PodSettings;
use spore_tests::testenv::TestEnv;
use spore_tests::testenv::kubernetes::Kubectl;

/// A context whose client is the control plane's admin, with the image `spore:test`.
#[allow(dead_code)] // each test binary compiles this module; one sets its own pod settings
pub async fn operator_context(env: &TestEnv) -> Arc<Context> {
    operator_context_with(env, PodSettings::new("spore:test"), &[]).await
}

/// [`operator_context`] with other pod settings, and SporeNodes' images limited to
/// `allowed_images` (none: any).
pub async fn operator_context_with(env: &TestEnv, settings: PodSettings, allowed_images: &[&str]) -> Arc<Context> {
    let kubeconfig = Kubeconfig::read_from(env.kubeconfig().expect("a kubeconfig")).expect("read the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client configuration");
    let client = kube::Client::try_from(config).expect("a client");
    let mut ctx = Context::new(client, settings, Arc::default());
    ctx.allowed_image_prefixes = allowed_images.iter().map(|p| p.to_string()).collect();
    Arc::new(ctx)
}

/// Ends a (kwok) training pod with `exit_code` and `message` as its termination message.
#[allow(dead_code)] // each test binary compiles this module; not every one ends pods
pub fn end_pod(kubectl: &Kubectl, namespace: &str, pod: &str, exit_code: i32, message: &str) {
    let code = format!("sim.sporemesh.io/exit-code={exit_code}");
    let message = format!("sim.sporemesh.io/message={message}");
    kubectl.run(&["annotate", "pod", "-n", namespace, pod, &code, &message], None).expect("annotate the pod");
}

/// An Experiment of SporeNode `lab-node` with inline code and one GPU of any class.
#[allow(dead_code)] // each test binary compiles this module; not every one makes these
pub fn inline_experiment(name: &str) -> String {
    format!(
        "apiVersion: sporemesh.io/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  node: lab-node\n  \
         code: {{inline: \"LR = 0.05\\n\"}}\n  timeBudgetSeconds: 300\n  gpu: {{count: 1}}\n"
    )
}

/// A field of an object (`kubectl get KIND NAME -o jsonpath=PATH`), empty when it is not there.
#[allow(dead_code)] // each test binary compiles this module; not every one reads fields
pub fn field(kubectl: &Kubectl, namespace: &str, kind: &str, name: &str, path: &str) -> String {
    kubectl.run(&["get", kind, "-n", namespace, name, "-o", &format!("jsonpath={path}")], None).unwrap_or_default()
}

/// One integer from the database at `url` (plain text), `None` when it cannot be had.
#[allow(dead_code)] // each test binary compiles this module; not every one reads Postgres
pub async fn query_i64(url: &str, sql: &str) -> Option<i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
    let task = tokio::spawn(connection);
    let value = client.query_one(sql, &[]).await.ok().and_then(|row| row.try_get::<_, i64>(0).ok());
    task.abort();
    value
}

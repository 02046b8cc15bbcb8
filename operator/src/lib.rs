//! `spore-operator`: the Kubernetes side of Spore.
//!
//! The `Experiment` controller ([`experiment`]): one training pod per Experiment, placed on GPU
//! nodes through the device plugin's extended resource, created only when a SporeNode's limit and
//! the GPUs allow (else `Queued`), its outcome read back from the pod's termination message into
//! the Experiment's status, with Events and conditions. The `SporeNode` controller
//! ([`sporenode`]): identity Secret, config, Services, node-agent StatefulSet, training egress
//! policy. Leader election on a Lease ([`leader`]), the health and metrics endpoints ([`serve`]),
//! and the Postgres mirror of every node's records ([`mirror`]). It never imports the node
//! agent: the two talk over the Kubernetes API and gRPC.

pub mod conditions;
pub mod experiment;
pub mod histogram;
pub mod leader;
pub mod mirror;
#[cfg(test)]
mod mock_api;
pub mod serve;
pub mod sporenode;

/// Drives a controller's result stream, counting each reconcile in the metrics.
pub(crate) async fn report<S, T, E>(results: S, controller: &'static str, metrics: std::sync::Arc<serve::Metrics>)
where
    S: futures_util::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    use futures_util::StreamExt;
    results
        .for_each(|result| {
            metrics.record_reconcile(controller, result.is_ok());
            if let Err(e) = &result {
                tracing::debug!(controller, error = %e, "reconcile error");
            }
            std::future::ready(())
        })
        .await;
}

/// The API of a namespaced kind in `namespace`, or in every namespace (a cluster-wide install).
pub fn scoped<K>(client: kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => kube::Api::namespaced(client, namespace),
        None => kube::Api::all(client),
    }
}

/// Runs every controller until they stop.
pub async fn run_controllers(ctx: std::sync::Arc<experiment::controller::Context>) {
    tokio::join!(experiment::controller::run(ctx.clone()), sporenode::controller::run(ctx));
}

/// The field manager of every server-side apply this operator makes.
pub const FIELD_MANAGER: &str = "spore-operator";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Experiment has no namespace or name")]
    MissingName,
}

//! `spore-operator`: the Kubernetes side of Spore.
//!
//! Built so far: the `Experiment` controller ([`experiment`]) — one training pod per Experiment,
//! placed on GPU nodes through the device plugin's extended resource, its outcome read back from
//! the pod's termination message into the Experiment's status — leader election on a Lease
//! ([`leader`]), the health and metrics endpoints ([`serve`]), and the `SporeNode` controller
//! ([`sporenode`]): identity Secret, config, Services, node-agent StatefulSet, training egress
//! policy. Still to come (issue 8): per-node concurrency limits, events; and (issue 9) the Postgres mirror. It never imports the node agent: the two talk over the
//! Kubernetes API and gRPC.

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

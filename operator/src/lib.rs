//! `spore-operator`: the Kubernetes side of Spore.
//!
//! Built so far: the `Experiment` controller ([`experiment`]) — one training pod per Experiment,
//! placed on GPU nodes through the device plugin's extended resource, its outcome read back from
//! the pod's termination message into the Experiment's status — leader election on a Lease
//! ([`leader`]) and the health and metrics endpoints ([`serve`]). Still to come (issue 8): the
//! `SporeNode` controller and per-node concurrency limits; and (issue 9) the Postgres mirror. It never imports the node agent: the two talk over the
//! Kubernetes API and gRPC.

pub mod experiment;
pub mod leader;
pub mod serve;

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

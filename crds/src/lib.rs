//! `spore-crds`: the custom resources of group `sporemesh.io`, version `v1alpha1`.
//!
//! - [`SporeNode`]: one identity in the mesh, run by the operator as a node-agent StatefulSet;
//! - [`Experiment`]: one training run on a GPU, with an immutable spec;
//! - [`SporeTrustPolicy`]: the verifiers a lab trusts, cluster-wide.
//!
//! The CRD manifests are generated from these types ([`manifests`]) by `spore-crdgen` and
//! committed at the top of `crds/` and in `charts/spore/crds/`; a test fails when they are stale.

// `#[kube(printcolumn(...))]` repeats `type_ = ...` once per column by design.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod experiment;
pub mod manifests;
pub mod sporenode;
pub mod trust;

pub use experiment::{Experiment, ExperimentPhase, ExperimentSpec, ExperimentStatus};
pub use sporenode::{SporeNode, SporeNodeSpec, SporeNodeStatus};
pub use trust::{SporeTrustPolicy, SporeTrustPolicySpec};

/// The API group of every Spore resource.
pub const GROUP: &str = "sporemesh.io";
/// The version served and stored.
pub const VERSION: &str = "v1alpha1";

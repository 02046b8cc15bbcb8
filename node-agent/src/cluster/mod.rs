//! The node-agent's side of the operator (`spore run --kubernetes-node NAME`): it watches the
//! Experiments of its SporeNode and, as each finishes, signs and publishes its record — the
//! operator holds no signing key — then writes the CID, the decision against the parent and
//! the parent's `val_bpb` into the Experiment's status (server-side apply, field manager
//! `spore-agent`). Experiments created by hand with kubectl are published the same way. For a
//! `diff` Experiment it first writes the candidate `train.py` (the diff applied to the parent's
//! code from its store) into the ConfigMap the training pod mounts.
//!
//! With training on, the research loop runs through the [`KubernetesExecutor`]: each run is an
//! Experiment of the SporeNode, published like any other; [`workspace::discover`] says what the
//! loop compares against without a local torch.
//!
//! The agent also writes its SporeNode's live status ([`status`]: peers, records, best results,
//! reputation).
//!
//! The record's timestamp is the run's completion time, so publishing again after a crash
//! between the publication and the status write yields the same bytes, the same CID, and a
//! duplicate the store ignores — never a second record.

mod candidate;
mod executor;
mod publisher;
mod record;
pub mod status;
pub mod workspace;

pub use executor::{KubernetesExecutor, ORIGIN_LABEL, ORIGIN_RESEARCH};
pub use publisher::{ClusterPublisher, FIELD_MANAGER};
pub use record::{AGENT_MODEL_ANNOTATION, NotYet, Publication, publication};

//! Where an experiment's `train.py` runs. [`LocalExecutor`](super::local::LocalExecutor) runs
//! it as a child process on this machine; the
//! [`KubernetesExecutor`](crate::cluster::KubernetesExecutor) makes it an `Experiment` that the
//! operator runs as a pod and this node's cluster publisher signs and publishes. Both take a
//! [`RunSpec`] and give back a [`RunOutcome`].

use std::future::Future;

use thiserror::Error;

use super::summary::Summary;

/// Held while a run uses the device: the research loop and the verifier share one, so a
/// spot-check never trains beside an experiment.
pub type GpuLock = std::sync::Arc<tokio::sync::Mutex<()>>;

/// One training run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Names the run (its working directory, its pod): letters, digits, `-` and `_` only.
    pub label: String,
    /// The complete `train.py` to run.
    pub code: String,
    /// Seconds of training (`SPORE_TIME_BUDGET`).
    pub time_budget: u64,
    /// Percent of the device to use, 1..=100 (`SPORE_RESOURCE`).
    pub resource: u8,
    /// What the run is for: a local run ignores it; the Kubernetes executor writes it into the
    /// Experiment, whose record is published from it.
    pub about: RunAbout,
}

/// The proposal behind a run, as its record will carry it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunAbout {
    /// The parent record's CID; `None` for a baseline.
    pub parent: Option<String>,
    pub description: String,
    pub hypothesis: String,
    pub agent_model: String,
    /// A re-measurement of the parent's code (its noise), not an experiment: nothing is
    /// published for it.
    pub remeasure: bool,
}

/// How a run ended. A run that trained, printed its summary and was measured is a success;
/// anything else is a crash with the reason in `error`.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub summary: Option<Summary>,
    /// The metric: the trusted evaluator's measurement, or on self-reported metrics the value
    /// the script printed.
    pub val_bpb: Option<f64>,
    /// Why the run failed: exit status and the tail of its log, a missing summary, the deadline.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    /// Where the full output of the run is: a file, or how to read the pod's log.
    pub log: String,
    /// Set when the run was already signed and published by someone else (the cluster
    /// publisher, for an Experiment): the research loop then only counts it.
    pub published: Option<Published>,
}

/// A run's record, published by the executor's side (it is in this node's store).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub cid: String,
}

impl RunOutcome {
    /// Trained, printed a summary, and the metric is positive.
    pub fn success(&self) -> bool {
        self.error.is_none() && self.summary.is_some() && self.val_bpb.is_some_and(|v| v > 0.0)
    }
}

/// Failures of the machinery, not of the experiment: no record is published for them.
#[derive(Debug, Error)]
pub enum ExecutorError {
    #[error("cannot start {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("run directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("invalid run label {0:?}")]
    BadLabel(String),
    #[error("{0}")]
    Other(String),
}

/// Runs experiments. Implementations must enforce the deadline themselves and never leave a
/// process behind, also when the returned future is dropped.
pub trait Executor: Send + Sync {
    fn run(&self, spec: &RunSpec) -> impl Future<Output = Result<RunOutcome, ExecutorError>> + Send;

    /// Whether runs use this machine's device (then they take the [`GpuLock`] it shares with
    /// the verifier's re-runs).
    fn uses_local_device(&self) -> bool {
        true
    }
}

/// True for labels that are safe as a directory or pod name.
pub fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-')
}

//! Spore's trusted evaluator. The code being judged (`train.py`) only trains and exports its
//! model (TorchScript); this crate, on libtorch through `tch`, measures `val_bpb` on a
//! validation split the training process could not read ([`bpb`]), refuses models that look
//! ahead ([`causal`]) or that reach outside the model ([`graph`]), and probes the GPU
//! ([`probe`]). It runs as its own process (`spore-eval`), so a model that crashes libtorch
//! takes down the evaluation, never the node.

pub mod bpb;
pub mod causal;
pub mod graph;
pub mod probe;
pub mod tokens;

use thiserror::Error;

/// Why an evaluation gave no number.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The caller's mistake (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The validation data is missing, altered or unusable.
    #[error("validation data: {0}")]
    Data(String),
    /// The exported model is missing, corrupt, or produced unusable output: the run is a crash.
    #[error("model: {0}")]
    Model(String),
    /// libtorch failed on an operation of the evaluator itself.
    #[error("libtorch: {0}")]
    Torch(String),
}

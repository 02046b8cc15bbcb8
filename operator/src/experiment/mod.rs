//! The `Experiment` controller: [`pod`] builds the training pod, [`status`] reads its outcome,
//! [`cache`] holds what the watches see, [`capacity`] says whether a pod's GPUs are free,
//! [`controller`] ties them to the API server.

pub mod cache;
pub mod capacity;
pub mod controller;
pub mod gpu_class;
pub mod pod;
pub mod status;

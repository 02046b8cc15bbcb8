//! The `Experiment` controller: [`pod`] builds the training pod, [`status`] reads its outcome,
//! [`cache`] holds what the watches see, [`capacity`] says whether a pod's GPUs are free,
//! [`retention`] says when a finished run goes, [`controller`] ties them to the API server.

pub mod cache;
pub mod capacity;
pub mod controller;
pub mod data_volume;
pub mod gpu_class;
pub mod ownership;
pub mod pod;
pub mod quantity;
pub mod retention;
pub mod status;

//! The `Experiment` controller: [`pod`] builds the training pod, [`status`] reads its outcome,
//! [`controller`] ties them to the API server.

pub mod controller;
pub mod pod;
pub mod status;

//! The `SporeNode` controller: [`children`] builds what a node owns, [`controller`] keeps it
//! applied and reports the node's identity and readiness.

pub mod children;
pub mod controller;

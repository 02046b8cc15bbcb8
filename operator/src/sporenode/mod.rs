//! The `SporeNode` controller: [`children`] builds what a node owns, [`access`] what its
//! node-agent may do with the API, [`research`] how its research settings reach the agent,
//! [`controller`] keeps it all applied and reports the node's identity and readiness.

pub mod access;
pub mod children;
pub mod consent;
pub mod controller;
pub mod health;
pub mod research;

//! `spore-tests`: cross-component tests and the harnesses that start real components for them.
//!
//! The Python reference peer harness lives in [`python`]; the Kubernetes control plane and
//! Postgres harness (`spore-testenv`) arrive with issue 7.

pub mod python;

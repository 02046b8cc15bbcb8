//! `spore-tests`: cross-component tests and the harnesses that start real components for them.
//!
//! - [`bins`]: the workspace's binaries for tests of other packages;
//! - [`climbmix`]: the climbmix task's data, small, and a lab's data volume prepared from it;
//! - [`fake_llm`]: a local server speaking LLM providers' wire formats;
//! - [`oci`]: the project's container images, run under runc as a pod runs them;
//! - [`nodes`]: real `spore run` and Python node processes for end-to-end tests;
//! - [`records`]: records for tests;
//! - [`seed`]: a plausible research DAG (explorer tests and benchmarks), also `spore-seed`;
//! - [`python`]: the real Python reference peer (`sporemesh` 0.1.2) as an oracle;
//! - [`shard_server`]: the climbmix dataset's host on loopback, with faults on request;
//! - [`wire`]: a blocking client that speaks the wire protocol to a node (as a peer or an
//!   attacker);
//! - [`testenv`]: a real Kubernetes control plane (with fake GPU nodes) and PostgreSQL, also
//!   usable from the shell as `spore-testenv`.

pub mod bins;
pub mod climbmix;
pub mod fake_llm;
pub mod nodes;
pub mod oci;
pub mod python;
pub mod records;
pub mod seed;
pub mod shard_server;
pub mod testenv;
pub mod wire;

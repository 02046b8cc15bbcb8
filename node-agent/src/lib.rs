//! `spore-agent`: a Spore Mesh node.
//!
//! - [`protocol`] (the sans-IO gossip core) and [`node`] (its tokio driver), over the SQLite
//!   DAG [`store`];
//! - [`research`]: the runner, the proposers and the research loop; [`verification`]: spot
//!   checks, challenges, disputes and reputation;
//! - [`grpc`] (`AgentService`), [`metrics`] (`/metrics`) and [`explorer`] (the web UI and its
//!   JSON API);
//! - [`cluster`]: publishing the operator's finished Experiments (`--kubernetes-node`);
//! - [`identity_file`] and [`record_tools`] (`spore record …`).

pub mod autoresearch;
pub mod cluster;
pub mod data;
pub mod explorer;
pub mod grpc;
pub mod identity_file;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod record_tools;
pub mod research;
pub mod store;
pub mod verification;

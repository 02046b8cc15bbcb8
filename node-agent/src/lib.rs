//! `spore-agent`: a Spore Mesh node.
//!
//! Today it holds the node's identity on disk ([`identity_file`]) and the record tools behind
//! `spore record check|sign` ([`record_tools`]). Gossip networking and the DAG store (issue 4),
//! the runner, research loop and full CLI (issue 5), verification (issue 6), the gRPC service
//! (issue 9) and the explorer (issue 10) grow here, each in its own module.

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

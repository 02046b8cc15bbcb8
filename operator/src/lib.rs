//! `spore-operator`: the Kubernetes side of Spore (not built yet).
//!
//! It will own the `SporeNode` and `Experiment` controllers (identity Secret, StatefulSet,
//! Services and NetworkPolicy per node; one GPU training pod per experiment), leader election,
//! metrics and probes, and the Postgres mirror of every node-agent's DAG. See issues 8 and 9.
//! It never imports the node agent: the two talk over the Kubernetes API and gRPC.

//! `spore-crds`: the custom resources of group `sporemesh.io` (not built yet).
//!
//! It will own the Rust types of `SporeNode` and `Experiment` (kube `CustomResource` + schemars),
//! their validation and printer columns, and the generated CRD YAML at the top of `crds/`, with a
//! test that fails when that YAML is stale. See issue 7.

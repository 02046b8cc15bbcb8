//! The committed CRD manifests must be what the Rust types generate now.

#![allow(clippy::unwrap_used)] // a test fails loudly on bad fixtures

use std::path::Path;

#[test]
fn committed_crd_yaml_is_up_to_date() {
    // At run time, not compile time: a target directory shared by two checkouts may run a
    // binary built in the other one.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let root = Path::new(&manifest_dir);
    for dir in [root.to_path_buf(), root.join("../charts/spore/crds")] {
        for (name, yaml) in spore_crds::manifests::crd_files() {
            let path = dir.join(&name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(committed == yaml, "{} is stale: run `cargo run -p spore-crds --bin spore-crdgen`", path.display());
        }
    }
}

#[test]
fn experiment_schema_carries_immutability_and_cid_rules() {
    let files = spore_crds::manifests::crd_files();
    let (_, experiment) = files.iter().find(|(n, _)| n.starts_with("experiments.")).unwrap();
    assert!(experiment.contains("self == oldSelf"));
    assert!(experiment.contains("^[0-9a-f]{64}$"));
    assert!(experiment.contains("set exactly one of inline, configMapRef, diff"));
}

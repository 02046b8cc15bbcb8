//! Writes the CRD manifests to `crds/` and `charts/spore/crds/` (or the directories given).
//!
//! `cargo run -p spore-crds --bin spore-crdgen`

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let dirs = if args.is_empty() { vec![root.clone(), root.join("../charts/spore/crds")] } else { args };
    for dir in dirs {
        std::fs::create_dir_all(&dir)?;
        for (name, yaml) in spore_crds::manifests::crd_files() {
            let path = dir.join(&name);
            std::fs::write(&path, yaml)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

//! `train.py`'s device choice, CUDA → MPS → CPU, with torch's availability checks replaced: the
//! `gpu` profile takes CUDA, the `cpu` profile takes Apple's MPS where it is present and the
//! CPU otherwise. (MPS cannot run on this machine; the choice and the export path are what is
//! checked.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::process::Command;

use spore_tests::python::workspace_python;

const PROBE: &str = r#"
import torch, train
choices = [train.pick_device("gpu"), train.pick_device("cpu")]
torch.backends.mps.is_available = lambda: True
choices += [train.pick_device("gpu"), train.pick_device("cpu")]
print(" ".join(choices))
"#;

#[test]
fn the_gpu_profile_takes_cuda_and_the_cpu_profile_takes_mps_where_present() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(workspace_python())
        .arg("-c")
        .arg(PROBE)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../workspace"))
        .env("SPORE_PROFILE", "cpu")
        .env("SPORE_DATA_CACHE", cache.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // This machine has no MPS: CPU until the check says otherwise.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "cuda cpu cuda mps");
}

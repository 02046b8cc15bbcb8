#![allow(clippy::unwrap_used)]
//! `spore exec`, the training pod's entrypoint: the candidate from a read-only code directory,
//! the harness built into spore, the result in the termination message in the form the
//! operator reads (metrics JSON on success, the reason and log tail on failure).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn exec(code: &str, dir: &Path, budget: &str) -> (Output, String) {
    let code_dir = dir.join("candidate");
    std::fs::create_dir_all(&code_dir).unwrap();
    std::fs::write(code_dir.join("train.py"), code).unwrap();
    let log = dir.join("termination-log");
    let out = Command::new(env!("CARGO_BIN_EXE_spore"))
        .args([
            "exec",
            "--budget-seconds",
            budget,
            "--python",
            "python3",
            "--metric",
            "reported",
            "--margin-seconds",
            "2",
        ])
        .arg("--code-dir")
        .arg(&code_dir)
        .arg("--work-dir")
        .arg(dir.join("scratch"))
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn success_writes_the_metrics_the_operator_reads() {
    let dir = tempfile::tempdir().unwrap();
    // The harness is there (prepare.py from spore itself), beside the candidate.
    let code = "import batching, os\nassert os.path.exists('prepare.py')\n\
        print('budget', os.environ['SPORE_TIME_BUDGET'])\nprint('---')\nprint('val_bpb:          1.250000')\n\
        print('training_seconds: 3.0')\nprint('peak_vram_mb:     512.0')\nprint('num_steps:        12')\n\
        print('num_params_M:     0.9')\n";
    let (out, message) = exec(code, dir.path(), "3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget 3"), "the run's log goes to the pod log");
    let metrics: Value = serde_json::from_str(&message).unwrap();
    assert_eq!(metrics["val_bpb"], 1.25);
    assert_eq!(metrics["num_steps"], 12);
    assert_eq!(metrics["num_params"], 900_000);
    assert_eq!(metrics["peak_vram_mb"], 512.0);
    assert_eq!(metrics["training_seconds"], 3.0);
    // Where it ran, for the record the node-agent publishes.
    for key in ["gpu_model", "cuda_version", "torch_version", "dataset_cid", "prepare_cid"] {
        assert!(metrics[key].as_str().is_some_and(|v| !v.is_empty()), "{key} missing: {metrics}");
    }
}

#[test]
fn failures_write_the_reason_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = exec("print('x' * 10000)\nraise RuntimeError('CUDA out of memory')\n", dir.path(), "3");
    assert_eq!(out.status.code(), Some(1));
    assert!(message.starts_with("train.py exited with code 1") || message.contains("CUDA out of memory"), "{message}");
    assert!(message.contains("RuntimeError: CUDA out of memory"), "{message}");
    assert!(message.len() <= 4096, "Kubernetes keeps 4,096 bytes: {}", message.len());
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = exec("import time\ntime.sleep(600)\n", dir.path(), "1");
    assert_eq!(out.status.code(), Some(1));
    assert!(message.starts_with("killed at the deadline"), "{message}");
}

#[test]
fn a_missing_candidate_is_reported_in_the_termination_message() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let out = Command::new(env!("CARGO_BIN_EXE_spore"))
        .args(["exec", "--budget-seconds", "3", "--python", "python3", "--metric", "reported"])
        .arg("--code-dir")
        .arg(dir.path().join("nothing-here"))
        .arg("--work-dir")
        .arg(dir.path().join("scratch"))
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = std::fs::read_to_string(&log).unwrap();
    assert!(message.starts_with("spore exec: read ") && message.contains("train.py"), "{message}");
}

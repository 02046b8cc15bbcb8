#![allow(clippy::unwrap_used)]
//! The climbmix task's metric, offline: `prepare.py` (SPORE_DATASET=climbmix) trains the BPE
//! tokenizer on small shards in the dataset's layout, packs the validation rows as autoresearch's
//! loader does and writes the token-byte table; `train.py` trains on it; `spore-eval` measures
//! the exported model with the packed rows and the table and agrees with `prepare.py`'s
//! `evaluate_bpb` to 1e-4; an altered table is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use spore_tests::bins::workspace_bin;
use spore_tests::climbmix::{ok, prepared_volume, shards_in, snapshot, spore};
use spore_tests::python::workspace_python;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn python(dir: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(workspace_python())
        .args(args)
        .current_dir(dir)
        .env("SPORE_DATA_CACHE", cache)
        .env("SPORE_PROFILE", "cpu")
        .env("SPORE_DATASET", "climbmix")
        .env("SPORE_TIME_BUDGET", "3")
        .output()
        .unwrap()
}

fn bpb(model: &Path, plan: &Value, token_bytes: &Path) -> Output {
    let arg = |key: &str| plan[key].to_string().trim_matches('"').to_string();
    Command::new(workspace_bin("spore-eval", "spore-eval"))
        .args(["bpb", "--model"])
        .arg(model)
        .args(["--val", &arg("val_path"), "--val-sha256", &arg("val_sha256")])
        .args(["--seq-len", &arg("seq_len"), "--eval-tokens", &arg("eval_tokens")])
        .args(["--vocab-size", &arg("vocab_size"), "--bos", &arg("bos"), "--layout", &arg("layout")])
        .arg("--token-bytes")
        .arg(token_bytes)
        .args(["--token-bytes-sha256", &arg("token_bytes_sha256"), "--device", "cpu", "--batch-size", "5"])
        .output()
        .unwrap()
}

#[test]
fn spore_eval_agrees_with_python_on_the_climbmix_metric() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("data");
    shards_in(&cache);
    for file in ["prepare.py", "climbmix.py", "batching.py", "train.py"] {
        std::fs::copy(repo("workspace").join(file), dir.path().join(file)).unwrap();
    }
    let manifest: Value = serde_json::from_slice(&python(dir.path(), &cache, &["prepare.py"]).stdout).unwrap();
    let plan = &manifest["eval"];
    assert_eq!(
        (plan["dataset"].as_str(), plan["layout"].as_str(), plan["vocab_size"].as_i64(), plan["bos"].as_i64()),
        (Some("climbmix"), Some("rows"), Some(8192), Some(8188)),
        "{manifest}"
    );
    // 512 packed rows of 257 tokens, each starting with BOS.
    let val = std::fs::read(plan["val_path"].as_str().unwrap()).unwrap();
    assert_eq!(val.len(), 512 * 257 * 2);
    assert!(val.chunks(257 * 2).all(|row| u16::from_le_bytes([row[0], row[1]]) == 8188));
    // The validation rows live apart from the training data.
    assert!(!plan["val_path"].as_str().unwrap().starts_with(plan["train_dir"].as_str().unwrap()));

    let log = ok(&python(dir.path(), &cache, &["train.py"]));
    let model = dir.path().join("model.pt");
    assert!(model.is_file(), "train.py exported no model:\n{log}");
    let script = "import torch, prepare; print(prepare.evaluate_bpb(torch.jit.load('model.pt'), 16, 'cpu'))";
    let expected: f64 =
        ok(&python(dir.path(), &cache, &["-c", script])).trim().lines().last().unwrap().parse().unwrap();

    let token_bytes = PathBuf::from(plan["token_bytes_path"].as_str().unwrap());
    let measured: Value = serde_json::from_str(ok(&bpb(&model, plan, &token_bytes)).lines().next().unwrap()).unwrap();
    let val_bpb = measured["val_bpb"].as_f64().unwrap();
    assert!((val_bpb - expected).abs() < 1e-4, "spore-eval {val_bpb} vs Python evaluate_bpb {expected}");
    assert_eq!(measured["rows"], 512);
    // Targets weigh the bytes their tokens stand for: more bytes than targets.
    assert!(measured["bytes"].as_i64().unwrap() > 2 * 512 * 256, "{measured}");

    let altered = dir.path().join("token_bytes.bin");
    let mut table = std::fs::read(&token_bytes).unwrap();
    table[2 * 300] ^= 1;
    std::fs::write(&altered, table).unwrap();
    let refused = bpb(&model, plan, &altered);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHA-256"), "{refused:?}");
}

#[test]
fn a_pods_steps_read_data_prepared_once_and_only_the_evaluation_step_gets_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    // The lab's volume: shards, then `spore data prepare`, once.
    let volume = dir.path().join("volume");
    prepared_volume(&volume);
    let (data, data_val) = (volume.join("data"), volume.join("data-val"));
    let before = snapshot(&data);

    // The training step: the volume's `data` only (its `data-val` is not mounted).
    let work = dir.path().join("scratch");
    let code = dir.path().join("candidate");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::copy(repo("workspace/train.py"), code.join("train.py")).unwrap();
    let exec = |phase: &str, val: &Path, extra: &[&str]| {
        let log = dir.path().join(format!("{phase}.termination-log"));
        let mut args = vec!["exec", "--budget-seconds", "3", "--margin-seconds", "300", "--phase", phase];
        args.extend(["--work-dir", work.to_str().unwrap(), "--termination-log", log.to_str().unwrap()]);
        args.extend(extra);
        let out = spore(&args, &data, val);
        (out, std::fs::read_to_string(&log).unwrap_or_default())
    };
    let absent = dir.path().join("not-mounted");
    let (out, message) = exec("train", &absent, &["--code-dir", code.to_str().unwrap(), "--unsandboxed"]);
    assert!(out.status.success(), "{message}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(work.join("out/model.pt").is_file());

    // The copy step: the shard, checked, into the evaluation step's own volume.
    let own = dir.path().join("validation");
    let copied = spore(
        &["data", "import", data_val.join("climbmix-400b-shuffle").to_str().unwrap()],
        &own.join("data"),
        &own.join("data-val"),
    );
    assert!(ok(&copied).contains("imported 1 shards"));
    // The evaluation step: the volume's `data`, its own copy of the shard.
    let harness = own.join("harness");
    let (out, message) = exec("evaluate", &own.join("data-val"), &["--eval-harness-dir", harness.to_str().unwrap()]);
    assert!(out.status.success(), "{message}\n{}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_str(&message).unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(data.join("climbmix-v1-s2/manifest.json")).unwrap()).unwrap();
    assert_eq!(result["dataset_cid"], manifest["dataset_cid"]);
    assert!(result["val_bpb"].as_f64().unwrap() > 0.5, "{result}");
    // The same rows as the lab's own, cut in the evaluation step's volume (unless deleted there
    // because no jail could hold the model).
    let rows = |root: &Path| std::fs::read_to_string(root.join("climbmix-v1-s2/val-256.bin.sha256")).ok();
    let theirs = rows(&own.join("data-val"));
    assert!(theirs.is_none() || theirs == rows(&data_val), "{theirs:?}");
    // Nothing was written into the volume by either step.
    assert_eq!(snapshot(&data), before);
}

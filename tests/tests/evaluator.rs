#![allow(clippy::unwrap_used)]
//! Trusted evaluation end to end on CPU: the real workspace's `train.py` trains and exports,
//! `spore-eval` (libtorch) measures, and what it measures is what `prepare.py`'s
//! `evaluate_bpb` defines; a printed fake metric changes nothing; the training process cannot
//! read the validation split; a missing or corrupt export is a crash that says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use spore_tests::bins::workspace_bin;
use spore_tests::python::workspace_python;

fn repo_workspace(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workspace").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn spore_eval() -> PathBuf {
    workspace_bin("spore-eval", "spore-eval")
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// `python prepare.py` in `dir` with its data under `cache`: the manifest with the eval block.
fn prepare(dir: &Path, cache: &Path) -> Value {
    std::fs::write(dir.join("prepare.py"), repo_workspace("prepare.py")).unwrap();
    std::fs::write(dir.join("batching.py"), repo_workspace("batching.py")).unwrap();
    let out = Command::new(workspace_python())
        .arg("prepare.py")
        .current_dir(dir)
        .env("SPORE_DATA_CACHE", cache)
        .env("SPORE_PROFILE", "cpu")
        .output()
        .unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bpb_args(plan: &Value) -> Vec<String> {
    ["seq_len", "eval_tokens", "vocab_size", "bos"]
        .iter()
        .flat_map(|key| [format!("--{}", key.replace('_', "-")), plan[*key].to_string()])
        .collect()
}

#[test]
fn spore_eval_agrees_with_python_evaluate_bpb_on_a_trained_model() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("data");
    let manifest = prepare(dir.path(), &cache);
    let plan = &manifest["eval"];
    assert_eq!((plan["profile"].as_str(), plan["seq_len"].as_i64()), (Some("cpu"), Some(256)));
    std::fs::write(dir.path().join("train.py"), repo_workspace("train.py")).unwrap();
    let trained = Command::new(workspace_python())
        .arg("train.py")
        .current_dir(dir.path())
        .env("SPORE_DATA_CACHE", &cache)
        .env("SPORE_PROFILE", "cpu")
        .env("SPORE_TIME_BUDGET", "3")
        .output()
        .unwrap();
    let log = ok(&trained);
    assert!(!log.contains("val_bpb"), "train.py no longer measures itself:\n{log}");
    let model = dir.path().join("model.pt");
    assert!(model.is_file(), "train.py exported no model:\n{log}");

    let python = Command::new(workspace_python())
        .args(["-c", "import torch, prepare; print(prepare.evaluate_bpb(torch.jit.load('model.pt'), 16, 'cpu'))"])
        .current_dir(dir.path())
        .env("SPORE_DATA_CACHE", &cache)
        .env("SPORE_PROFILE", "cpu")
        .output()
        .unwrap();
    let expected: f64 = ok(&python).trim().lines().last().unwrap().parse().unwrap();

    let rust = Command::new(spore_eval())
        .args(["bpb", "--model"])
        .arg(&model)
        .arg("--val")
        .arg(plan["val_path"].as_str().unwrap())
        .args(["--val-sha256", plan["val_sha256"].as_str().unwrap(), "--device", "cpu", "--batch-size", "7"])
        .args(bpb_args(plan))
        .output()
        .unwrap();
    let measured: Value = serde_json::from_str(ok(&rust).lines().next().unwrap()).unwrap();
    let val_bpb = measured["val_bpb"].as_f64().unwrap();
    assert!((val_bpb - expected).abs() < 1e-4, "spore-eval {val_bpb} vs Python evaluate_bpb {expected}");
    assert!(val_bpb > 1.0 && val_bpb < 8.0, "an under-trained byte model: {val_bpb}");
    // Every byte target of the 512 rows of 256 tokens, none of the BOS targets.
    assert_eq!(measured["rows"], 512);
    assert!(measured["bytes"].as_i64().unwrap() > 130_000 && measured["bytes"].as_i64().unwrap() < 131_072);

    // Altered validation data is refused, not measured.
    let altered = dir.path().join("altered.bin");
    let mut bytes = std::fs::read(plan["val_path"].as_str().unwrap()).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&altered, bytes).unwrap();
    let refused = Command::new(spore_eval())
        .args(["bpb", "--model"])
        .arg(&model)
        .arg("--val")
        .arg(&altered)
        .args(["--val-sha256", plan["val_sha256"].as_str().unwrap()])
        .args(bpb_args(plan))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHA-256"), "{refused:?}");
}

/// `spore run --genesis` for one experiment with `train_py` as the workspace's train.py.
fn run_one(dir: &Path, train_py: &str) -> (Vec<Value>, String, String) {
    let (data, workspace) = (dir.join("node"), dir.join("ws"));
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("train.py"), train_py).unwrap();
    let out = Command::new(workspace_bin("spore-agent", "spore"))
        .args(["run", "--genesis", "--time-budget", "3", "--max-experiments", "1", "--no-explorer", "--no-bootstrap"])
        .args(["--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", "--metrics-port", "0", "--python"])
        .arg(workspace_python())
        .arg("--workspace")
        .arg(&workspace)
        .arg("--data-dir")
        .arg(&data)
        .env("SPORE_EVAL", spore_eval())
        .env("SPORE_DATA_CACHE", dir.join("cache"))
        .env("SPORE_PROFILE", "cpu")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let export = Command::new(workspace_bin("spore-agent", "spore"))
        .args(["record", "export", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let records = String::from_utf8_lossy(&export.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let runs: Vec<PathBuf> = std::fs::read_dir(data.join("run")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(runs.len(), 1, "{stderr}");
    let run_log = std::fs::read_to_string(runs[0].join("run.log")).unwrap();
    (records, stderr, run_log)
}

#[test]
fn a_printed_fake_val_bpb_is_replaced_by_the_measured_one() {
    let dir = tempfile::tempdir().unwrap();
    let cheating = repo_workspace("train.py")
        .replace("    print(\"---\")\n", "    print(\"---\")\n    print(\"val_bpb:          0.100000\")\n");
    assert!(cheating.contains("0.100000"));
    let (records, stderr, run_log) = run_one(dir.path(), &cheating);
    assert_eq!(records.len(), 1, "{stderr}");
    let record = &records[0];
    assert_eq!(record["status"], "keep", "{stderr}");
    let val_bpb = record["val_bpb"].as_f64().unwrap();
    assert!(val_bpb > 1.0, "the record carries the measurement, not the claim: {record}");
    assert!(run_log.contains("train.py claimed 0.100000: MISMATCH"), "{run_log}");
    assert!(stderr.contains("does not confirm"), "{stderr}");
}

/// Lines a `train.py` prints about what it could reach of the data.
const DATA_PROBE: &str = r#"
import glob, os, prepare
for name, attempt in (("load_tokens", lambda: prepare.load_tokens("val")),
                      ("open", lambda: open(str(prepare.VAL_DIR / "val.bin"), "rb").read())):
    try:
        print("VAL_READ", name, len(attempt()))
    except OSError as e:
        print("VAL_HIDDEN", name, type(e).__name__)
print("VAL_FILES", len(glob.glob(str(prepare.VAL_ROOT) + "/**/*", recursive=True)))
try:
    open(str(prepare.DATA_DIR / "train.bin"), "r+b").write(b"x")
    print("TRAIN_WRITABLE")
except OSError as e:
    print("TRAIN_READ_ONLY", type(e).__name__)
print("VAL_CACHE_ENV", os.environ.get("SPORE_VAL_CACHE"))
"#;

/// Lines a hostile `train.py` runs first: a module that announces itself, under the names the
/// harness imports, in every directory of the scratch volume it can write.
const PLANT: &str = r#"
import os, pathlib
_scratch = pathlib.Path(os.getcwd()).parents[1]
for _dir in [_scratch, _scratch / "harness", _scratch / "out", _scratch / "data", _scratch / "run"]:
    for _name in ["prepare.py", "json.py", "hashlib.py", "batching.py", "sitecustomize.py"]:
        try:
            _dir.mkdir(parents=True, exist_ok=True)
            (_dir / _name).write_text("import sys\nprint('PLANTED MODULE RAN', file=sys.stderr)\nraise SystemExit(3)\n")
            print("PLANTED", _dir / _name)
        except OSError:
            pass
"#;

/// The real train.py with [`DATA_PROBE`] run before training.
fn probing_train_py() -> String {
    let train_py = repo_workspace("train.py").replace("\ndef main():\n", &format!("{DATA_PROBE}\n\ndef main():\n"));
    assert!(train_py.contains("VAL_HIDDEN"));
    train_py
}

#[test]
fn the_training_process_cannot_read_the_validation_split_or_alter_the_training_data() {
    let dir = tempfile::tempdir().unwrap();
    let train_py = probing_train_py();
    let (records, stderr, run_log) = run_one(dir.path(), &train_py);
    assert!(run_log.contains("VAL_HIDDEN load_tokens FileNotFoundError"), "{run_log}");
    assert!(run_log.contains("VAL_HIDDEN open FileNotFoundError"), "{run_log}");
    assert!(run_log.contains("VAL_FILES 0"), "{run_log}");
    assert!(run_log.contains("TRAIN_READ_ONLY"), "{run_log}");
    assert!(run_log.contains("VAL_CACHE_ENV None"), "{run_log}");
    assert!(!run_log.contains("VAL_READ") && !run_log.contains("TRAIN_WRITABLE"), "{run_log}");
    // The split is intact outside, and the run was measured on it.
    let val_files = glob_val(&dir.path().join("cache-val"));
    assert_eq!(val_files.len(), 1, "{val_files:?}");
    assert_eq!(records.len(), 1, "{stderr}");
    assert!(records[0]["val_bpb"].as_f64().unwrap() > 1.0, "{}", records[0]);
}

fn glob_val(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|dirs| dirs.flatten().map(|d| d.path().join("val.bin")).filter(|p| p.is_file()).collect())
        .unwrap_or_default()
}

/// `spore exec` (a training pod's entrypoint) with the evaluator, on `train_py`.
fn exec(dir: &Path, cache: &Path, train_py: &str) -> (Option<i32>, String) {
    let code = dir.join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("train.py"), train_py).unwrap();
    let (code, message, _) = spore_exec("all", &code, &dir.join("work"), cache);
    (code, message)
}

/// `spore exec --phase PHASE` on `code/train.py` in `work`: exit code, termination message, log.
fn spore_exec(phase: &str, code: &Path, work: &Path, cache: &Path) -> (Option<i32>, String, String) {
    spore_exec_with(phase, code, work, cache, &[])
}

/// [`spore_exec`] with more arguments.
fn spore_exec_with(
    phase: &str,
    code: &Path,
    work: &Path,
    cache: &Path,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let message = work.with_extension(format!("{phase}-termination-log"));
    let out = Command::new(workspace_bin("spore-agent", "spore"))
        .args(["exec", "--budget-seconds", "3", "--margin-seconds", "120", "--phase", phase])
        .args(extra)
        .arg("--python")
        .arg(workspace_python())
        .arg("--code-dir")
        .arg(code)
        .arg("--work-dir")
        .arg(work)
        .arg("--termination-log")
        .arg(&message)
        .env("SPORE_EVAL", spore_eval())
        .env("SPORE_DATA_CACHE", cache)
        .env("SPORE_PROFILE", "cpu")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), std::fs::read_to_string(&message).unwrap_or_default(), log)
}

const SUMMARY: &str = "print('---')\nprint('training_seconds: 1.0')\nprint('num_steps:        3')\n";

#[test]
fn a_missing_or_corrupt_export_is_a_crash_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (code, message) = exec(&dir.path().join("missing"), &cache, SUMMARY);
    assert_eq!(code, Some(1), "{message}");
    assert!(message.contains("evaluation: model: no exported model at"), "{message}");

    let corrupt = format!("import os\nopen(os.environ['SPORE_MODEL_PATH'], 'wb').write(b'PK not a model')\n{SUMMARY}");
    let (code, message) = exec(&dir.path().join("corrupt"), &cache, &corrupt);
    assert_eq!(code, Some(1), "{message}");
    assert!(message.contains("is not a loadable TorchScript model"), "{message}");

    // A model of the wrong shape loads but is refused with the shapes it gave.
    let wrong = format!(
        "import os, torch\nclass M(torch.nn.Module):\n    def forward(self, x):\n        return x.float()\n\
         torch.jit.trace(M(), torch.zeros(1, 256, dtype=torch.long)).save(os.environ['SPORE_MODEL_PATH'])\n{SUMMARY}"
    );
    let (code, message) = exec(&dir.path().join("wrong"), &cache, &wrong);
    assert_eq!(code, Some(1), "{message}");
    assert!(message.contains("returned logits of shape"), "{message}");

    // The real train.py passes through the same path and reports the measurement.
    let (code, message) = exec(&dir.path().join("real"), &cache, &repo_workspace("train.py"));
    assert_eq!(code, Some(0), "{message}");
    let metrics: Value = serde_json::from_str(&message).unwrap();
    assert!(metrics["val_bpb"].as_f64().unwrap() > 1.0, "{metrics}");
}

#[test]
fn in_a_pod_training_and_evaluation_are_separate_steps_and_only_the_second_has_the_split() {
    let dir = tempfile::tempdir().unwrap();
    let (scratch, validation) = (dir.path().join("scratch"), dir.path().join("validation"));
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    // The candidate also plants modules wherever it can write in the scratch volume, where the
    // evaluate step once ran the harness from.
    std::fs::write(code.join("train.py"), format!("{PLANT}\n{}", probing_train_py())).unwrap();
    let step = |phase: &str, cache: &Path| spore_exec(phase, &code, &scratch, cache);
    // The operator's pod: the train step's cache in the scratch volume, the evaluate step's in
    // the validation volume; the train step runs as the pod runs it, outside the jail.
    let (code_rc, message, log) = spore_exec_with("train", &code, &scratch, &scratch.join("data"), &["--unsandboxed"]);
    assert_eq!(code_rc, Some(0), "{message}\n{log}");
    let trained: Value = serde_json::from_str(&message).unwrap();
    assert!(trained["num_steps"].as_i64().unwrap() > 0 && trained.get("val_bpb").is_none(), "{trained}");
    // The split was prepared, and deleted before train.py ran: it found nothing.
    assert!(log.contains("VAL_HIDDEN load_tokens FileNotFoundError"), "{log}");
    assert!(log.contains("VAL_FILES 0") && !log.contains("VAL_READ"), "{log}");
    assert!(!scratch.join("data-val").exists());
    assert!(scratch.join("out/model.pt").is_file() && scratch.join("out/summary.json").is_file());

    assert!(log.contains("PLANTED"), "the candidate planted its modules: {log}");
    let (code_rc, message, log) = step("evaluate", &validation.join("data"));
    assert_eq!(code_rc, Some(0), "{message}\n{log}");
    assert!(!log.contains("PLANTED MODULE RAN"), "the evaluate step ran a planted module: {log}");
    let measured: Value = serde_json::from_str(&message).unwrap();
    assert!(measured["val_bpb"].as_f64().unwrap() > 1.0, "{measured}");
    assert_eq!(measured["num_steps"], trained["num_steps"]);

    // Without a model from the train step, evaluation fails and says why.
    std::fs::remove_file(scratch.join("out/model.pt")).unwrap();
    let (code_rc, message, _) = step("evaluate", &validation.join("data"));
    assert_eq!(code_rc, Some(1));
    assert!(message.contains("no exported model"), "{message}");
}

/// TorchScript models that cheat: one reads the next token (every position, or only in the last
/// quarter of each row), one reads a file; and an honest causal one.
const CHEATING_MODELS: &str = r#"
import torch
class Causal(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(257, 257)
    def forward(self, x):
        return self.emb(x)
class Peek(torch.nn.Module):
    def __init__(self, start: int):
        super().__init__()
        self.start = start
    def forward(self, x):
        following = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        peek = torch.nn.functional.one_hot(following, 257).float() * 20.0
        position = torch.arange(x.size(1)).view(1, -1, 1)
        return torch.where(position >= self.start, peek, torch.zeros_like(peek))
class ReadsFiles(torch.nn.Module):
    def forward(self, x):
        t = torch.from_file("/etc/hostname", False, 1, dtype=torch.uint8)
        return torch.zeros(x.size(0), x.size(1), 257) + t.float().sum()
torch.jit.script(Causal()).save("causal.pt")
torch.jit.script(Peek(0)).save("peek.pt")
torch.jit.script(Peek(3 * 256 // 4)).save("peek_late.pt")
torch.jit.script(ReadsFiles()).save("files.pt")
"#;

#[test]
fn models_that_look_ahead_or_read_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = prepare(dir.path(), &dir.path().join("data"));
    let plan = &manifest["eval"];
    // torch.jit.script reads the classes' source: a file, not `-c`.
    std::fs::write(dir.path().join("models.py"), CHEATING_MODELS).unwrap();
    let made = Command::new(workspace_python()).arg("models.py").current_dir(dir.path()).output().unwrap();
    ok(&made);
    let measure = |model: &str| {
        Command::new(spore_eval())
            .args(["bpb", "--model", model, "--val"])
            .arg(plan["val_path"].as_str().unwrap())
            .args(["--val-sha256", plan["val_sha256"].as_str().unwrap(), "--device", "cpu"])
            .args(bpb_args(plan))
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let honest = measure("causal.pt");
    let measured: Value = serde_json::from_str(ok(&honest).lines().next().unwrap()).unwrap();
    assert!(measured["val_bpb"].as_f64().unwrap() > 1.0, "{measured}");
    for (model, why) in [("peek.pt", "looks ahead"), ("peek_late.pt", "looks ahead"), ("files.pt", "from_file")] {
        // Several times: the checked batches and cuts are random; a cheat must never pass.
        for _ in 0..3 {
            let out = measure(model);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{model} was measured: {}", String::from_utf8_lossy(&out.stdout));
            assert!(stderr.contains(why), "{model}: {stderr}");
        }
    }
}

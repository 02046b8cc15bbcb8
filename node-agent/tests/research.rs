#![allow(clippy::unwrap_used)]
//! `spore run` doing research for real: the embedded workspace on the offline corpus with the
//! built-in mutator (what a fresh machine with no GPU, network or key does), and the loop's
//! judging and lineage with an LLM proposer served by a local fake provider.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use spore_agent::research::artifacts::{ArtifactStore, cid_of};
use spore_tests::bins::workspace_bin;
use spore_tests::fake_llm::{FakeLlm, Reply};
use spore_tests::python::{python_verdicts, workspace_python};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn export(data_dir: &Path) -> Vec<String> {
    let out = Command::new(SPORE).args(["record", "export", "--data-dir"]).arg(data_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

fn run_spore(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(SPORE)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--no-explorer",
            "--no-bootstrap",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--python",
        ])
        .arg(workspace_python())
        .env("SPORE_EVAL", workspace_bin("spore-eval", "spore-eval"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// `spore set custom …`: the fake provider as this node's LLM.
fn set_llm(data_dir: &Path, fake: &FakeLlm) {
    let set = Command::new(SPORE)
        .args(["set", "custom", "sk-local-0123456789", "--model", "local-model", "--base-url"])
        .arg(fake.base_url())
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
}

/// `spore status --json`.
fn status_json(data_dir: &Path) -> Value {
    let out = Command::new(SPORE).args(["status", "--json", "--data-dir"]).arg(data_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `measured_by` of each record of `spore frontier --json`.
fn frontier_measured_by(data_dir: &Path) -> Vec<String> {
    let out = Command::new(SPORE).args(["frontier", "--json", "--data-dir"]).arg(data_dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter().map(|r| r["measured_by"].as_str().unwrap_or("unknown").to_string()).collect()
}

/// Records by timestamp order of publication (export is in arrival order).
fn records(data_dir: &Path) -> Vec<Value> {
    export(data_dir).iter().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_fresh_cpu_machine_does_real_research_with_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let out = run_spore(&["run", "--genesis", "--time-budget", "20", "--max-experiments", "3"], &data);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spore run failed:\n{log}");
    let lines = export(&data);
    let records: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3, "{log}");
    let baseline = &records[0];
    assert_eq!(baseline["parent"], Value::Null);
    assert_eq!(baseline["description"], "baseline");
    assert_eq!(baseline["status"], "keep");
    assert_eq!(baseline["gpu_model"], "cpu");
    // The machine as the evaluator's probe sees it: the torch it links, no CUDA here.
    assert!(baseline["torch_version"].as_str().unwrap().starts_with("2.13"), "{baseline}");
    assert_eq!(baseline["cuda_version"], "none");
    // Every successful run was measured by the evaluator (its note is in the run's log).
    // (Besides them, the two re-measurements of the baseline, measured the same way.)
    let runs: Vec<_> = std::fs::read_dir(data.join("run")).unwrap().map(|e| e.unwrap().path()).collect();
    let measured = |remeasures: bool| {
        runs.iter()
            .filter(|run| run.file_name().unwrap().to_string_lossy().starts_with("remeasure") == remeasures)
            .filter(|run| {
                std::fs::read_to_string(run.join("run.log")).unwrap_or_default().contains("[spore] evaluator: val_bpb")
            })
            .count()
    };
    let successes = records.iter().filter(|r| r["status"] != "crash").count();
    assert_eq!((measured(false), measured(true)), (successes, 2), "{log}");
    assert!(runs.iter().all(|run| !run.join("model.pt").exists()), "exported models are deleted after evaluation");
    assert_eq!(baseline["time_budget"], 20);
    assert!(frontier_measured_by(&data).iter().all(|by| by == "evaluator"), "the evaluator measured every record");
    // Before the first child the node re-ran the baseline twice to measure its noise (runs that
    // publish nothing); the estimate is in `spore status --json`.
    assert!(log.contains("remeasured=2"), "{log}");
    let noise = status_json(&data)["noise"].clone();
    let cpu = &noise["settings"][0];
    assert_eq!(
        (&cpu["gpu_class"], &cpu["time_budget"], &cpu["dof"]),
        (&json!("CPU"), &json!(20), &json!(2)),
        "{noise}"
    );
    let (sigma, margin) = (cpu["sigma"].as_f64().unwrap(), cpu["margin"].as_f64().unwrap());
    assert!(sigma > 0.0 && (margin - 2.920 * std::f64::consts::SQRT_2 * sigma).abs() < 1e-12, "{noise}");
    let artifacts = ArtifactStore::new(&data);
    for r in &records {
        assert!(r["num_steps"].as_i64().unwrap() > 0, "{r}");
        assert!(r["num_params"].as_i64().unwrap() > 0, "{r}");
        if r["status"] != "crash" {
            assert!(r["val_bpb"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert_eq!(r["agent_model"], if r == baseline { "baseline" } else { "spore-mutator" });
        // The code is stored under its CID; children are built from the parent's code.
        let code = artifacts.get(r["code_cid"].as_str().unwrap()).unwrap().expect("code artifact");
        assert_eq!(cid_of(&code), r["code_cid"]);
        if r != baseline {
            // The parent is an earlier record (the baseline, or a child that beat it), and the
            // child is its code with one constant changed.
            let parent = records
                .iter()
                .take_while(|p| *p != r)
                .find(|p| p["id"] == r["parent"])
                .unwrap_or_else(|| panic!("the parent of {r} is not an earlier record"));
            assert_eq!(r["depth"].as_i64().unwrap(), parent["depth"].as_i64().unwrap() + 1);
            let parent_code = artifacts.get(parent["code_cid"].as_str().unwrap()).unwrap().unwrap();
            let (old, new) = (String::from_utf8(parent_code).unwrap(), String::from_utf8(code).unwrap());
            let changed: Vec<(&str, &str)> = old.lines().zip(new.lines()).filter(|(a, b)| a != b).collect();
            assert_eq!((changed.len(), old.lines().count()), (1, new.lines().count()), "{changed:?}");
            let diff = r["diff"].as_str().unwrap();
            assert!(diff.starts_with("--- train.py\n+++ train.py\n@@ "), "{diff}");
            assert!(diff.contains(&format!("-{}\n+{}", changed[0].0, changed[0].1)), "{diff}");
            assert!(artifacts.get(&cid_of(diff.as_bytes())).unwrap().is_some(), "the diff is stored too");
            let description = r["description"].as_str().unwrap();
            assert!(description.starts_with("set CPU_"), "{description}");
            // Kept only when it beat its parent by more than the noise the node measured.
            let status = r["status"].as_str().unwrap();
            let gain = parent["val_bpb"].as_f64().unwrap() - r["val_bpb"].as_f64().unwrap();
            assert_eq!(status == "keep", gain > margin && status != "crash", "{r} (margin {margin})");
        }
    }
    // Every record verifies with the real Python package.
    for verdict in python_verdicts(&lines) {
        let v: Value = serde_json::from_str(&verdict).unwrap();
        assert_eq!((v["verify_cid"].as_bool(), v["verify_signature"].as_bool()), (Some(true), Some(true)), "{v}");
    }
}

const FAKE_PREPARE: &str = "import json\nDATA = 1\nif __name__ == '__main__':\n    \
    print(json.dumps({'dataset_cid': 'd' * 64}))\n";

fn fake_train(score: &str) -> String {
    format!(
        "from prepare import DATA\nSCORE = {score}\nprint('---')\nprint(f'val_bpb:          {{SCORE:.6f}}')\n\
         print('num_steps:        10')\nprint('num_params_M:     1.0')\n"
    )
}

fn chat(content: &str) -> Reply {
    Reply::json(200, json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
}

/// A data directory and a workspace of `prepare` and `train`, in `dir`.
fn node_and_workspace(dir: &Path, workspace: &str, prepare: &str, train: &str) -> (std::path::PathBuf, String) {
    let data = dir.join("node");
    let ws = dir.join(workspace);
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("prepare.py"), prepare).unwrap();
    std::fs::write(ws.join("train.py"), train).unwrap();
    (data, ws.display().to_string())
}

#[test]
fn an_llm_proposer_drives_the_loop_and_children_build_on_their_parents_code() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ws) = node_and_workspace(dir.path(), "ws", FAKE_PREPARE, &fake_train("2.0"));
    let crashing = fake_train("1.0").replace("print('---')", "raise SystemExit('boom: val_bpb never printed')");
    let fake = FakeLlm::start(vec![
        chat(&format!("Description: lower the score\nHypothesis: h1\n```python\n{}```", fake_train("1.5"))),
        Reply::json(429, json!({"error": {"message": "slow down"}})).with_header("retry-after", "0"),
        chat(&format!("Description: a bit worse\nHypothesis: h2\n```python\n{}```", fake_train("1.7"))),
        chat(&format!("Description: crash it\n```python\n{crashing}```")),
    ])
    .unwrap();
    set_llm(&data, &fake);
    let out = run_spore(
        &[
            "run",
            "--genesis",
            "--time-budget",
            "5",
            "--max-experiments",
            "4",
            "--metric",
            "reported",
            "--workspace",
            &ws,
        ],
        &data,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spore run failed:\n{log}");
    let records = records(&data);
    let summary: Vec<(&str, f64, &str)> = records
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["val_bpb"].as_f64().unwrap(), r["description"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("keep", 2.0, "baseline"),
            ("keep", 1.5, "lower the score"),
            ("discard", 1.7, "a bit worse"),
            ("crash", 0.0, "crash it")
        ]
    );
    // The keep became the parent of the next two: built from its code, not the workspace's.
    assert_eq!(records[1]["parent"], records[0]["id"]);
    assert_eq!(records[2]["parent"], records[1]["id"]);
    assert_eq!(records[3]["parent"], records[1]["id"]);
    assert_eq!(
        records[2]["diff"],
        "--- train.py\n+++ train.py\n@@ -1,5 +1,5 @@\n from prepare import DATA\n-SCORE = 1.5\n+SCORE = 1.7\n print('---')\n print(f'val_bpb:          {SCORE:.6f}')\n print('num_steps:        10')"
    );
    assert_eq!(records[1]["agent_model"], "local-model");
    assert_eq!(records[1]["hypothesis"], "h1");
    let requests = fake.requests();
    assert_eq!(requests.len(), 4, "three proposals and one retry");
    let second_prompt = requests[2].json()["messages"][1]["content"].as_str().unwrap().to_string();
    assert!(
        second_prompt.contains("SCORE = 1.5") && second_prompt.contains("Parent val_bpb: 1.500000"),
        "{second_prompt}"
    );
    let third_prompt = requests[3].json()["messages"][1]["content"].as_str().unwrap().to_string();
    assert!(
        third_prompt.contains("## Already Tried from This Parent (1 experiments)\n- [discard] a bit worse"),
        "{third_prompt}"
    );
    assert!(log.contains("boom: val_bpb never printed"), "the crash's reason is logged:\n{log}");
    // llm.toml keeps the key to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("llm.toml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

/// A baseline whose score moves between repeats as wall-time noise would: the first
/// re-measurement scores 2.02, the second 1.98, every other run 2.0 (σ = 0.02 from three runs).
const NOISY_BASELINE: &str = "import os\nfrom prepare import DATA\nRUN = os.path.basename(os.getcwd())\n\
    SCORE = 2.02 if RUN.startswith('remeasure1-') else 1.98 if RUN.startswith('remeasure2-') else 2.0\n\
    print('---')\nprint(f'val_bpb:          {SCORE:.6f}')\nprint('num_steps:        10')\n\
    print('num_params_M:     1.0')\n";

#[test]
fn a_gain_inside_the_measured_noise_is_discarded_and_the_estimate_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ws) = node_and_workspace(dir.path(), "ws", FAKE_PREPARE, NOISY_BASELINE);
    let fake = FakeLlm::start(vec![
        chat(&format!("Description: a little lower\n```python\n{}```", fake_train("1.95"))),
        chat(&format!("Description: much lower\n```python\n{}```", fake_train("1.8"))),
        chat(&format!("Description: a little lower again\n```python\n{}```", fake_train("1.75"))),
        chat(&format!("Description: lower by 0.03\n```python\n{}```", fake_train("1.77"))),
    ])
    .unwrap();
    set_llm(&data, &fake);
    let run = |extra: &[&str], experiments: &str| {
        let mut args = vec!["run", "--time-budget", "5", "--max-experiments", experiments, "--metric", "reported"];
        args.extend_from_slice(&["--workspace", &ws]);
        args.extend_from_slice(extra);
        let out = run_spore(&args, &data);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "spore run failed:\n{log}");
        log
    };
    let log = run(&["--genesis"], "3");
    // The baseline, two unpublished re-runs of its code, then the children judged against
    // t(0.95, 2)·√2·0.02 = 0.0826: a gain of 0.05 is noise, one of 0.2 is not.
    assert!(log.contains("remeasured=2"), "{log}");
    assert!(log.contains("better than the parent, but within the noise: discard"), "{log}");
    let summary = |records: &[Value]| -> Vec<(String, f64)> {
        records.iter().map(|r| (r["status"].as_str().unwrap().to_owned(), r["val_bpb"].as_f64().unwrap())).collect()
    };
    let first = records(&data);
    let expected = vec![("keep".to_owned(), 2.0), ("discard".to_owned(), 1.95), ("keep".to_owned(), 1.8)];
    assert_eq!(summary(&first), expected, "re-measurements publish nothing");
    let noise = status_json(&data)["noise"].clone();
    let setting = &noise["settings"][0];
    assert_eq!((&setting["dof"], &setting["runs"]), (&json!(2), &json!(3)), "{noise}");
    assert!((setting["sigma"].as_f64().unwrap() - 0.02).abs() < 1e-9, "{noise}");
    assert!((setting["margin"].as_f64().unwrap() - 2.920 * std::f64::consts::SQRT_2 * 0.02).abs() < 1e-9);

    // A restart knows its noise: no re-measurement, and the next gain of 0.05 is still noise.
    let log = run(&[], "1");
    assert!(log.contains("remeasured=0"), "{log}");
    let all = records(&data);
    assert_eq!(summary(&all[3..]), [("discard".to_owned(), 1.75)]);
    assert_eq!(all[3]["parent"], first[2]["id"], "built on the clear improvement");

    let status = Command::new(SPORE).args(["status", "--data-dir"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("sigma 0.020000 (3 runs, 2 dof), keep margin 0.082590"), "{text}");

    // --keep-margin replaces the measured margin (and says so): a gain of 0.03 now keeps.
    let log = run(&["--keep-margin", "0.01"], "1");
    assert!(log.contains("remeasured=0"), "{log}");
    assert_eq!(summary(&records(&data)[4..]), [("keep".to_owned(), 1.77)]);
    let status = Command::new(SPORE).args(["status", "--data-dir"]).arg(&data).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("keep      a child must beat its parent by more than 0.01 (--keep-margin)"), "{text}");
}

#[test]
fn a_node_that_joins_builds_on_the_mesh_s_frontier_with_the_code_it_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ws) = node_and_workspace(dir.path(), "ws", FAKE_PREPARE, &fake_train("2.0"));
    // A's baseline, then A serving it (and its code) to whoever dials.
    let a = dir.path().join("a");
    let out = run_spore(
        &[
            "run",
            "--genesis",
            "--time-budget",
            "5",
            "--max-experiments",
            "1",
            "--metric",
            "reported",
            "--workspace",
            &ws,
        ],
        &a,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let baseline = records(&a).remove(0);
    let port = spore_tests::nodes::free_port().unwrap();
    let serving = spore_tests::nodes::SporeNode::start(std::path::Path::new(SPORE), &a, port, &[]);
    // B starts empty, syncs A's record, has no code for it, asks A for it, and builds on it.
    let b = dir.path().join("b");
    let fake = FakeLlm::start(vec![chat(&format!("Description: lower\n```python\n{}```", fake_train("1.5")))]).unwrap();
    set_llm(&b, &fake);
    let peer = format!("127.0.0.1:{port}");
    let out = run_spore(
        &[
            "run",
            "--peer",
            &peer,
            "--time-budget",
            "5",
            "--max-experiments",
            "1",
            "--metric",
            "reported",
            "--keep-margin",
            "0",
            "--workspace",
            &ws,
        ],
        &b,
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spore run failed:\n{log}");
    drop(serving);
    let mine: Vec<Value> = records(&b).into_iter().filter(|r| r["id"] != baseline["id"]).collect();
    assert_eq!(mine.len(), 1, "one experiment, no baseline of its own:\n{log}");
    assert_eq!(mine[0]["parent"], baseline["id"], "{log}");
    assert_eq!((mine[0]["status"].as_str(), mine[0]["val_bpb"].as_f64()), (Some("keep"), Some(1.5)));
    assert!(
        ArtifactStore::new(&b).get(baseline["code_cid"].as_str().unwrap()).unwrap().is_some(),
        "the parent's code came from A"
    );
}

#[test]
fn the_loop_works_in_the_task_it_is_given_and_signs_it_where_the_lineage_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ws) = node_and_workspace(dir.path(), "ws", FAKE_PREPARE, &fake_train("2.0"));
    let fake = FakeLlm::start(vec![
        chat(&format!("Description: in the task\n```python\n{}```", fake_train("1.5"))),
        chat(&format!("Description: back in the legacy task\n```python\n{}```", fake_train("1.6"))),
    ])
    .unwrap();
    set_llm(&data, &fake);
    let run = |extra: &[&str], budget: &str, experiments: &str| {
        let mut args = vec!["run", "--time-budget", budget, "--max-experiments", experiments, "--metric", "reported"];
        args.extend_from_slice(&["--keep-margin", "0", "--workspace", &ws]);
        args.extend_from_slice(extra);
        run_spore(&args, &data)
    };
    let task_cli = |args: &[&str]| {
        let out = Command::new(SPORE).arg("task").args(args).arg("--data-dir").arg(&data).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // A plain baseline starts a legacy task (named by its CID), in a version-1 record.
    assert!(run(&["--genesis"], "5", "1").status.success());
    // A task of our own, for this harness and budget; a run with another budget is refused.
    let prepare_cid = cid_of(FAKE_PREPARE.as_bytes());
    let task =
        task_cli(&["create", "--name", "ours", "--time-budget", "5", "--prepare-cid", &prepare_cid]).trim().to_string();
    let refused = run(&[], "6", "1");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--time-budget 5"));
    let out = run(&[], "5", "2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Then the legacy task again, by a prefix of its root's id.
    let all = records(&data);
    task_cli(&["use", &all[0]["id"].as_str().unwrap()[..12]]);
    let out = run(&[], "5", "1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let all = records(&data);
    let summary: Vec<(&str, &Value, &Value, &Value)> =
        all.iter().map(|r| (r["description"].as_str().unwrap(), &r["parent"], &r["task_id"], &r["version"])).collect();
    let (legacy_root, task_root) = (&all[0]["id"], &all[1]["id"]);
    assert_eq!(
        summary,
        [
            ("baseline", &Value::Null, &Value::Null, &json!(1)),
            // The task's root signs the task (the task had no records: it runs its own baseline).
            ("baseline", &Value::Null, &json!(task), &json!(2)),
            ("in the task", task_root, &json!(task), &json!(2)),
            // A child in a legacy task stays version 1: every release can take it.
            ("back in the legacy task", legacy_root, &Value::Null, &json!(1)),
        ]
    );
}

/// A `prepare.py` of the seed's contract: it prepares its data and prints what it likes.
const SEED_PREPARE: &str = "import os\nDATA = 1\nif __name__ == '__main__':\n    \
    os.makedirs('data', exist_ok=True)\n    open('data/shard_00000.txt', 'w').write('tokens')\n    \
    print('Downloading shards... done')\n";

#[test]
fn a_workspace_of_the_seeds_contract_is_researched_on_its_printed_metric() {
    let dir = tempfile::tempdir().unwrap();
    let (data, ws) = node_and_workspace(dir.path(), "autoresearch", SEED_PREPARE, &fake_train("2.0"));
    let fake = FakeLlm::start(vec![chat(&format!("Description: lower\n```python\n{}```", fake_train("1.5")))]).unwrap();
    set_llm(&data, &fake);
    // The default metric is the evaluator's; this workspace has none to offer.
    let args = ["run", "--genesis", "--time-budget", "5", "--max-experiments", "2", "--keep-margin", "0"];
    let out = run_spore(&[&args[..], &["--workspace", &ws]].concat(), &data);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spore run failed:\n{log}");
    assert!(log.contains("the workspace follows the seed's contract"), "{log}");
    let all = records(&data);
    let summary: Vec<(&str, f64)> =
        all.iter().map(|r| (r["status"].as_str().unwrap(), r["val_bpb"].as_f64().unwrap())).collect();
    assert_eq!(summary, [("keep", 2.0), ("keep", 1.5)]);
    // What a Python node of the same workspace writes: its dataset name and prepare.py's hash.
    for r in &all {
        assert_eq!(r["dataset_cid"], "climbmix-400b-shuffle");
        assert_eq!(r["prepare_cid"], cid_of(SEED_PREPARE.as_bytes()));
    }
    // The frontier says how the metric was measured: the value train.py printed.
    assert_eq!(frontier_measured_by(&data), ["train.py"]);
    // Nothing of ours was written into the user's directory.
    let mut files: Vec<String> =
        std::fs::read_dir(&ws).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["data", "prepare.py", "train.py"]);
}

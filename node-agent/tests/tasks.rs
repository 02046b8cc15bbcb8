//! Tasks across real nodes on 127.0.0.1: a task made with `spore task create` reaches our other
//! nodes and real `sporemesh` 0.5.0 and 0.6.3 nodes; records of a task reach them under it; a
//! record that breaks its task's lineage is refused and goes nowhere, and no one is punished.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use spore_spec::{ExperimentRecord, Identity, JsonNumber};
use spore_tests::nodes::{PythonNode, PythonNodeOptions, SporeNode, free_port, test_dir, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn spore(data_dir: &Path, peers: &[String]) -> SporeNode {
    SporeNode::start(Path::new(SPORE), data_dir, free_port().unwrap(), peers)
}

/// `spore task ARGS --data-dir DIR`, which must succeed; its standard output.
fn spore_task(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(SPORE).arg("task").args(args).arg("--data-dir").arg(data_dir).output().unwrap();
    assert!(out.status.success(), "spore task {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Record `n` of `identity`, child of `parent`, signing `task` (version 2) when given.
fn record(identity: &Identity, n: i64, parent: Option<&ExperimentRecord>, task: Option<&str>) -> ExperimentRecord {
    let mut r = spore_tests::records::record(n);
    r.parent = parent.map(|p| p.id.clone());
    r.depth = JsonNumber::from(parent.map_or(0, |p| p.depth.as_i64().unwrap() + 1));
    if let Some(task) = task {
        r.task_id = Some(task.to_string());
        r.version = JsonNumber::from(2);
    }
    identity.sign_record(&mut r);
    r
}

/// The ids of the task manifests `spore task list --json` shows.
fn listed_tasks(data_dir: &Path) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(&spore_task(data_dir, &["list", "--json"])).unwrap();
    listed.as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_created_task_reaches_our_other_nodes_and_task_use_picks_tasks_by_prefix() {
    let (_tmp, root) = test_dir("tasks-ours");
    let a_dir = root.join("a");
    let task = spore_task(&a_dir, &["create", "--name", "ours", "--time-budget", "20"]).trim().to_string();
    assert_eq!(task.len(), 64, "{task}");
    assert!(spore_task(&a_dir, &["list"]).starts_with(&format!("*{}", &task[..16])), "the new task is in use");
    let a = spore(&a_dir, &[]);
    let b = spore(&root.join("b"), &[a.address()]);
    wait_until_or(
        Duration::from_secs(20),
        "the other node to hold the task",
        || listed_tasks(&b.data_dir).contains(&task),
        || format!("{}\n--- a\n{}", b.log(), a.log()),
    );
    // The manifest as its creator signed it.
    let shown = spore_task(&b.data_dir, &["show", &task[..10]]);
    let manifest = spore_spec::TaskManifest::from_value(&spore_spec::json::parse(shown.trim()).unwrap()).unwrap();
    assert_eq!((manifest.verify(), manifest.text("name"), manifest.time_budget()), (Ok(()), "ours", Some(20)));
    spore_task(&b.data_dir, &["use", &task[..12]]);
    assert!(spore_task(&b.data_dir, &["list"]).starts_with(&format!("*{}", &task[..16])));
    spore_task(&b.data_dir, &["use", "auto"]);
    assert!(!spore_task(&b.data_dir, &["list"]).contains('*'));
    let unknown =
        Command::new(SPORE).args(["task", "use", "feed"]).arg("--data-dir").arg(&b.data_dir).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown task"));
}

/// A node of `version` that joins a Rust node holding a task of ours, its records, and one
/// record that breaks the task's lineage.
fn a_task_and_its_records_reach(version: &'static str) {
    let (_tmp, root) = test_dir(&format!("tasks-{version}"));
    let rust_dir = root.join("r");
    let task = spore_task(&rust_dir, &["create", "--name", "rust-task"]).trim().to_string();
    let rust = spore(&rust_dir, &[]);
    let author = Identity::from_seed([31; 32]);
    let task_root = record(&author, 0, None, Some(&task));
    let task_child = record(&author, 1, Some(&task_root), Some(&task));
    let legacy_root = record(&author, 2, None, None);
    // Signs our task, but its parent is in the legacy task of `legacy_root`.
    let stray = record(&author, 3, Some(&legacy_root), Some(&task));
    rust.push(&[task_root.clone(), task_child.clone(), legacy_root.clone(), stray.clone()], 3);
    wait_until_or(
        Duration::from_secs(10),
        "the node to refuse the stray record",
        || rust.status()["stats"]["records_refused_task_lineage"] == 1,
        || rust.log(),
    );
    let python = PythonNode::start(
        &root.join("p"),
        free_port().unwrap(),
        &PythonNodeOptions { peers: vec![rust.address()], version: Some(version), ..Default::default() },
    );
    let wanted = [&task_root.id, &task_child.id, &legacy_root.id];
    wait_until_or(
        Duration::from_secs(60),
        "the Python node to hold our task and its records",
        || python.tasks().contains(&task) && wanted.iter().all(|id| python.ids().contains(id)),
        || format!("{}\n--- rust\n{}", python.log(), rust.log()),
    );
    assert!(!python.ids().contains(&stray.id));
    // It files the records under our task, and the legacy root under its own.
    for line in python.dump() {
        let stored: serde_json::Value = serde_json::from_str(&line).unwrap();
        let expected = if stored["id"] == legacy_root.id.as_str() { &legacy_root.id } else { &task };
        assert_eq!(stored["task_id"], expected.as_str(), "{line}");
    }
    let status = rust.status();
    assert_eq!(status["stats"]["peers_banned"], 0, "{status}");
    for peer in status["peers"].as_array().unwrap() {
        assert_eq!(peer["misbehaviour"], 0, "{peer}\n{}", rust.log());
    }
}

#[test]
fn a_task_and_its_records_reach_0_5_0_and_a_stray_record_does_not() {
    a_task_and_its_records_reach("0.5.0");
}

#[test]
fn a_task_and_its_records_reach_0_6_3_and_a_stray_record_does_not() {
    a_task_and_its_records_reach("0.6.3");
}

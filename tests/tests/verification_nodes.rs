#![allow(clippy::unwrap_used)]
//! Verification with real processes on CPU: two verifying nodes and one that lies. The liar
//! runs on self-reported metrics with a `train.py` that prints `val_bpb: 0.5` (its model is
//! far worse). The verifiers re-run every record that would lead their frontier (with a base
//! rate of 0 nothing else, which keeps two cores free enough for the test), fetch the code
//! from the liar by `code_cid`, re-run it sandboxed and measured by the evaluator, challenge,
//! answer each other's challenges, and each rejects the record from the signed evidence — as
//! does a gossip-only node that re-runs nothing but holds the same evidence. The verifiers
//! trust each other (`--trust-verifier`), the judge trusts both: a vote counts only from a
//! node with standing. A forged unsigned
//! `dispute` sent to a verifier changes neither its frontier nor its reputation table.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, wait_until_or};
use spore_tests::python::workspace_python;
use spore_tests::testenv::ports::free_port;

fn repo_workspace(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workspace").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn frontier_ids(node: &SporeNode, bin: &std::path::Path) -> Vec<String> {
    let out = Command::new(bin).args(["frontier", "--json", "--data-dir"]).arg(&node.data_dir).output().unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list.as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect()
}

#[test]
fn verifiers_reject_a_result_that_does_not_reproduce() {
    let spore = workspace_bin("spore-agent", "spore");
    let python = workspace_python().display().to_string();
    let evaluator = workspace_bin("spore-eval", "spore-eval").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Prepare the shared data cache once, before three nodes want it at the same time.
    let warm = dir.path().join("warm");
    std::fs::create_dir_all(&warm).unwrap();
    std::fs::write(warm.join("prepare.py"), repo_workspace("prepare.py")).unwrap();
    let prepared =
        Command::new(&python).arg("prepare.py").current_dir(&warm).env("SPORE_PROFILE", "cpu").output().unwrap();
    assert!(prepared.status.success(), "{}", String::from_utf8_lossy(&prepared.stderr));

    let common = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["--python", &python, "--evaluator", &evaluator, "--time-budget", "3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // The lab's verifiers trust each other (and the judge trusts both): fresh keys would not
    // count in a dispute.
    let node_id = |dir: &std::path::Path| -> String {
        let out = Command::new(&spore).args(["info", "--json", "--data-dir"]).arg(dir).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["node_id"].as_str().unwrap().to_string()
    };
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a_id, b_id) = (node_id(&a_dir), node_id(&b_dir));
    let verify = |trusted: &str| {
        common(&["--verify-only", "--spot-check-rate", "0", "--challenge-timeout", "20", "--trust-verifier", trusted])
    };
    let a = SporeNode::start_training(&spore, &a_dir, free_port().unwrap(), &[], &verify(&b_id));
    let b = SporeNode::start_training(&spore, &b_dir, free_port().unwrap(), &[a.address()], &verify(&a_id));
    let judge_args: Vec<String> =
        ["--challenge-timeout", "20", "--trust-verifier", &a_id, "--trust-verifier", &b_id].map(String::from).to_vec();
    let judge =
        SporeNode::start_with_args(&spore, &dir.path().join("d"), free_port().unwrap(), &[b.address()], &judge_args);

    let liar_ws = dir.path().join("liar-ws");
    std::fs::create_dir_all(&liar_ws).unwrap();
    let lying = repo_workspace("train.py")
        .replace("    print(\"---\")\n", "    print(\"---\")\n    print(\"val_bpb:          0.500000\")\n");
    assert!(lying.contains("0.500000"));
    std::fs::write(liar_ws.join("train.py"), lying).unwrap();
    let liar_args = common(&["--metric", "reported", "--workspace", liar_ws.to_str().unwrap()]);
    let c = SporeNode::start_training(&spore, &dir.path().join("c"), free_port().unwrap(), &[a.address()], &liar_args);

    // The liar's baseline reaches the verifiers.
    let mut lie = String::new();
    wait_until_or(
        Duration::from_secs(120),
        "the liar's baseline on A",
        || {
            let records: Vec<Value> = a.export().iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
            match records.iter().find(|r| r["description"] == "baseline") {
                Some(r) => {
                    lie = r["id"].as_str().unwrap().to_string();
                    assert_eq!(r["val_bpb"], 0.5, "{r}");
                    true
                }
                None => false,
            }
        },
        || format!("A:\n{}\nC:\n{}", a.log(), c.log()),
    );

    // Both verifiers reject it from the signed challenges and responses.
    for node in [&a, &b, &judge] {
        wait_until_or(
            Duration::from_secs(300),
            "the lie rejected",
            || node.status()["rejected"].as_array().is_some_and(|r| r.iter().any(|x| x["id"] == lie.as_str())),
            || format!("{}\n--- C:\n{}", node.log(), c.log()),
        );
        let status = node.status();
        let liar_id = c.status()["node_id"].as_str().unwrap().to_string();
        let score = status["reputation"][&liar_id].as_f64().unwrap();
        assert!(score < -4.9, "the publisher of a rejected record pays (−5, decaying slowly): {status}");
        let rejected = status["rejected"].as_array().unwrap().iter().find(|x| x["id"] == lie.as_str()).unwrap().clone();
        assert!(rejected["ground_truth"].as_f64().unwrap() > 1.0, "{rejected}");
        assert!(!frontier_ids(node, &spore).contains(&lie), "a rejected record is off the frontier");
    }

    // A forged unsigned dispute (0.1.2's format) claiming the record was upheld.
    let before = (a.status()["rejected"].clone(), a.status()["reputation"].clone(), frontier_ids(&a, &spore));
    let body = format!(
        "{{\"type\":\"dispute\",\"payload\":{{\"experiment_id\":\"{lie}\",\"challenger_id\":\"{}\",\
         \"challenger_bpb\":0.5,\"outcome\":\"upheld\",\"ground_truth_bpb\":0.5,\"verifier_count\":3}}}}",
        "0".repeat(64)
    );
    let mut stream = std::net::TcpStream::connect(a.address()).unwrap();
    stream.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = (a.status()["rejected"].clone(), a.status()["reputation"].clone(), frontier_ids(&a, &spore));
    assert_eq!(before, after);
    drop(c);
    drop(b);
    drop(judge);
}

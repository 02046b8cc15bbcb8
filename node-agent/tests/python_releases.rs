//! Interop with the Python releases the public mesh runs today (`sporemesh` 0.3.10, 0.5.0 and
//! 0.6.3, each the real package in its own virtualenv), with real processes on 127.0.0.1: a Rust
//! node relays their records byte-exact both ways, syncs history both ways, and a mixed line
//! 0.1.2 – Rust – 0.5.0 – Rust converges with no peer punished, and signed control events cross
//! both ways. From 0.5.0 on, the Python nodes
//! publish signed task manifests and version-2 records that sign their `task_id`; the manifests
//! relay and sync through the Rust node too.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::Duration;

use spore_spec::{ExperimentRecord, Identity};
use spore_tests::nodes::{PythonNode, PythonNodeOptions, SporeNode, free_port, test_dir, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn spore(data_dir: &Path, peers: &[String]) -> SporeNode {
    SporeNode::start(Path::new(SPORE), data_dir, free_port().unwrap(), peers)
}

fn python(data_dir: &Path, options: PythonNodeOptions) -> PythonNode {
    PythonNode::start(data_dir, free_port().unwrap(), &options)
}

/// A Python node of `version` that joins through `rust` alone (its origin is gone).
fn fresh_python_behind(rust: &SporeNode, root: &Path, version: &'static str) -> PythonNode {
    python(
        &root.join("p2"),
        PythonNodeOptions { peers: vec![rust.address()], version: Some(version), ..Default::default() },
    )
}

fn exported(node: &SporeNode) -> Vec<ExperimentRecord> {
    node.export().iter().map(|line| ExperimentRecord::from_json(line).unwrap()).collect()
}

fn ids(records: &[ExperimentRecord]) -> HashSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// No peer of `node` was punished, banned or refused a record.
fn assert_no_one_punished(node: &SporeNode) {
    let status = node.status();
    assert_eq!(status["stats"]["peers_banned"], 0, "{status}\n{}", node.log());
    assert_eq!(status["stats"]["records_rejected"], 0, "{status}\n{}", node.log());
    for peer in status["peers"].as_array().unwrap() {
        assert_eq!(peer["misbehaviour"], 0, "{peer}\n{}", node.log());
    }
}

/// The records a publisher of `version` made went through a Rust node to another Python node of
/// that release: the receiver stores exactly what the publisher stored (every field, `task_id`
/// and `version` included), and so does the Rust node.
fn relay_through_rust(version: &'static str) {
    let (_tmp, root) = test_dir(&format!("relay-{version}"));
    let publisher = python(
        &root.join("p1"),
        PythonNodeOptions {
            genesis: true,
            publish: 20,
            publish_delay: Duration::from_secs(2),
            version: Some(version),
            ..Default::default()
        },
    );
    let receiver =
        python(&root.join("p2"), PythonNodeOptions { genesis: true, version: Some(version), ..Default::default() });
    // Genesis Python nodes dial nobody, so everything p2 gets comes through the Rust node.
    let relay = spore(&root.join("r"), &[publisher.address(), receiver.address()]);
    wait_until_or(
        Duration::from_secs(40),
        "the receiver to hold all 20 records",
        || receiver.ids().len() == 20,
        || format!("receiver has {}\n{}\n--- rust\n{}", receiver.ids().len(), receiver.log(), relay.log()),
    );
    let published: BTreeSet<String> = publisher.dump().into_iter().collect();
    assert_eq!(receiver.dump().into_iter().collect::<BTreeSet<_>>(), published, "byte-exact relay");
    let held = exported(&relay);
    assert_eq!(ids(&held), publisher.ids().into_iter().collect::<HashSet<_>>());
    if version != "0.3.10" {
        assert!(held.iter().all(|r| r.signs_task_id() && r.task_id.as_deref().is_some_and(|t| t.len() == 64)));
        // The publisher's signed task manifest went the same way.
        let task = publisher.tasks();
        assert_eq!(task.len(), 1);
        wait_until_or(
            Duration::from_secs(10),
            "the receiver to hold the task",
            || receiver.tasks() == task,
            || format!("{}\n--- rust\n{}", receiver.log(), relay.log()),
        );
        assert_eq!(relay.status()["stats"]["tasks_accepted"], 1);
        // And `spore task` shows it as its creator signed it.
        let spore_task = |args: &[&str]| {
            let out = std::process::Command::new(SPORE)
                .arg("task")
                .args(args)
                .arg("--data-dir")
                .arg(&relay.data_dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        assert!(spore_task(&["list"]).contains(&task[0][..16]));
        let shown = spore_task(&["show", &task[0][..12]]);
        assert!(shown.contains(&format!("\"task_id\":\"{}\"", task[0])), "{shown}");
        let manifest = spore_spec::TaskManifest::from_value(&spore_spec::json::parse(shown.trim()).unwrap()).unwrap();
        assert_eq!(manifest.verify(), Ok(()));
    }
    assert_no_one_punished(&relay);
}

/// Records pushed into a Rust node by one of ours (version 1, no task) reach a Python node of
/// `version` dialed by it, which keeps them under their original ids.
fn rust_records_reach(version: &'static str) {
    let (_tmp, root) = test_dir(&format!("to-{version}"));
    let receiver =
        python(&root.join("p"), PythonNodeOptions { genesis: true, version: Some(version), ..Default::default() });
    let rust = spore(&root.join("r"), &[receiver.address()]);
    let ours = rust.push_records(&Identity::from_seed([21; 32]), 0..12, 12);
    wait_until_or(
        Duration::from_secs(40),
        "the Python node to hold our 12 records",
        || receiver.ids().len() == 12,
        || format!("python has {}\n{}\n--- rust\n{}", receiver.ids().len(), receiver.log(), rust.log()),
    );
    assert_eq!(receiver.ids().into_iter().collect::<HashSet<_>>(), ours.into_iter().collect::<HashSet<_>>());
    assert_no_one_punished(&rust);
}

/// A Rust node syncs a Python node's history, the Python node goes away, and a fresh Python
/// node of the same release syncs that history from the Rust node, byte-exact.
fn sync_both_ways(version: &'static str) {
    let (_tmp, root) = test_dir(&format!("sync-{version}"));
    let origin = python(
        &root.join("p1"),
        PythonNodeOptions { genesis: true, publish: 25, version: Some(version), ..Default::default() },
    );
    wait_until_or(Duration::from_secs(20), "the origin to publish", || origin.ids().len() == 25, || origin.log());
    let published: BTreeSet<String> = origin.dump().into_iter().collect();
    let task = origin.tasks();
    let rust = spore(&root.join("r"), &[origin.address()]);
    wait_until_or(
        Duration::from_secs(30),
        "the Rust node to sync 25 records",
        || rust.record_count() == 25,
        || rust.log(),
    );
    drop(origin);
    let fresh = fresh_python_behind(&rust, &root, version);
    wait_until_or(
        Duration::from_secs(40),
        "the fresh Python node to sync 25 records",
        || fresh.ids().len() == 25,
        || format!("fresh has {}\n{}\n--- rust\n{}", fresh.ids().len(), fresh.log(), rust.log()),
    );
    assert_eq!(fresh.dump().into_iter().collect::<BTreeSet<_>>(), published, "byte-exact sync");
    if version != "0.3.10" {
        // The task too, by the fresh node's task sync.
        wait_until_or(
            Duration::from_secs(10),
            "the fresh node to hold the task",
            || fresh.tasks() == task,
            || fresh.log(),
        );
    }
    assert_no_one_punished(&rust);
}

/// Signed control events (0.3.10's native form) cross both ways: a Rust node asks a Python node
/// of `version` for its events and keeps every one, and a fresh Python node of that release gets
/// them all from the Rust node by its own control sync.
fn control_events_cross(version: &'static str) {
    let (_tmp, root) = test_dir(&format!("control-{version}"));
    let origin = python(
        &root.join("p1"),
        PythonNodeOptions { genesis: true, publish: 5, verify: 5, version: Some(version), ..Default::default() },
    );
    wait_until_or(
        Duration::from_secs(20),
        "the origin to sign 5 events",
        || origin.controls().len() == 5,
        || origin.log(),
    );
    let events: BTreeSet<String> = origin.controls().into_iter().collect();
    let rust = spore(&root.join("r"), &[origin.address()]);
    wait_until_or(
        Duration::from_secs(30),
        "the Rust node to keep the 5 events",
        || rust.status()["stats"]["controls_accepted"] == 5,
        || format!("{}\n{}", rust.status(), rust.log()),
    );
    drop(origin);
    let fresh = fresh_python_behind(&rust, &root, version);
    wait_until_or(
        Duration::from_secs(40),
        "the fresh Python node to get the 5 events",
        || fresh.controls().len() == 5,
        || format!("fresh has {:?}\n{}\n--- rust\n{}", fresh.controls(), fresh.log(), rust.log()),
    );
    assert_eq!(fresh.controls().into_iter().collect::<BTreeSet<_>>(), events);
    assert_eq!(rust.status()["stats"]["controls_rejected"], 0);
    assert_no_one_punished(&rust);
}

#[test]
fn control_events_cross_both_ways_with_0_3_10() {
    control_events_cross("0.3.10");
}

#[test]
fn control_events_cross_both_ways_with_0_5_0() {
    control_events_cross("0.5.0");
}

#[test]
fn control_events_cross_both_ways_with_0_6_3() {
    control_events_cross("0.6.3");
}

#[test]
fn records_of_0_3_10_relay_byte_exact_through_a_rust_node() {
    relay_through_rust("0.3.10");
}

#[test]
fn records_of_0_5_0_relay_byte_exact_through_a_rust_node() {
    relay_through_rust("0.5.0");
}

#[test]
fn records_of_0_6_3_relay_byte_exact_through_a_rust_node() {
    relay_through_rust("0.6.3");
}

#[test]
fn our_records_reach_0_3_10() {
    rust_records_reach("0.3.10");
}

#[test]
fn our_records_reach_0_5_0() {
    rust_records_reach("0.5.0");
}

#[test]
fn our_records_reach_0_6_3() {
    rust_records_reach("0.6.3");
}

#[test]
fn history_syncs_both_ways_with_0_3_10() {
    sync_both_ways("0.3.10");
}

#[test]
fn history_syncs_both_ways_with_0_5_0() {
    sync_both_ways("0.5.0");
}

#[test]
fn history_syncs_both_ways_with_0_6_3() {
    sync_both_ways("0.6.3");
}

/// 0.1.2 – Rust – 0.5.0 – Rust, each Python node publishing: the Rust nodes and the 0.5.0 node
/// end with every record; the 0.1.2 node with every record it can read (its own, never a
/// version-2 record, which would make it disconnect); nobody is punished.
#[test]
fn a_line_of_0_1_2_rust_0_5_0_rust_converges_without_a_disconnect() {
    let (_tmp, root) = test_dir("line");
    let old = python(
        &root.join("p1"),
        PythonNodeOptions { genesis: true, publish: 12, publish_delay: Duration::from_secs(3), ..Default::default() },
    );
    let r1 = spore(&root.join("r1"), &[old.address()]);
    let new = python(
        &root.join("p2"),
        PythonNodeOptions {
            peers: vec![r1.address()],
            publish: 12,
            publish_delay: Duration::from_secs(3),
            offset: 1000,
            version: Some("0.5.0"),
            ..Default::default()
        },
    );
    let r2 = spore(&root.join("r2"), &[new.address()]);
    // The connection that brings the 0.1.2 node's first record (each connection has its own id).
    let to_old = |status: &serde_json::Value| {
        let peers = status["peers"].as_array().cloned().unwrap_or_default();
        peers.into_iter().filter(|p| p["address"] == old.address().as_str()).collect::<Vec<_>>()
    };
    let mut first_connection = None;
    wait_until_or(
        Duration::from_secs(30),
        "r1 to accept a record from the 0.1.2 node",
        || {
            let peers = to_old(&r1.status());
            first_connection =
                peers.iter().find(|p| p["accepted_records"].as_u64() >= Some(1)).map(|p| p["id"].clone());
            first_connection.is_some()
        },
        || r1.status().to_string(),
    );
    wait_until_or(
        Duration::from_secs(60),
        "the Rust nodes and the 0.5.0 node to hold all 24 records",
        || new.ids().len() == 24 && r1.record_count() == 24 && r2.record_count() == 24,
        || format!("0.5.0 has {}\n--- r1\n{}\n--- r2\n{}", new.ids().len(), r1.log(), r2.log()),
    );
    assert_eq!(ids(&exported(&r1)), ids(&exported(&r2)));
    assert_eq!(old.ids().len(), 12, "the 0.1.2 node holds its own records only");
    // The status file's counters are written once a second.
    wait_until_or(
        Duration::from_secs(10),
        "r1 to withhold the 12 version-2 records from the 0.1.2 node",
        || r1.status()["stats"]["withheld_task_records"].as_u64().unwrap_or(0) >= 12,
        || r1.status().to_string(),
    );
    // The 0.1.2 node never dropped r1: the connection that brought its first record is still up
    // (some of its records may reach r1 first through the others, which connect to it by
    // peer exchange).
    let status = r1.status();
    let to_old = to_old(&status);
    assert_eq!(to_old.len(), 1, "{status}");
    assert_eq!(Some(&to_old[0]["id"]), first_connection.as_ref(), "{status}");
    assert!(to_old[0]["accepted_records"].as_u64() >= Some(1), "{status}");
    assert_no_one_punished(&r1);
    assert_no_one_punished(&r2);
}

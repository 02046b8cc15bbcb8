//! The lab's bridge to the public mesh, against real Python peers (0.1.2, and 0.5.0 as the mesh
//! runs today) standing in for public nodes: with export `own` a record imported from one public
//! peer never reaches another, while the lab's own records do; with import `frontier` the public
//! mesh's discards stay out; a public peer's task manifest is kept but never passed on.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use spore_spec::{ExperimentRecord, Identity, JsonNumber, Message, Status};
use spore_tests::nodes::{PythonNode, PythonNodeOptions, SporeNode, free_port, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

/// Python's test records are "python record N", a discard when N is a multiple of 3.
fn python_number(record: &ExperimentRecord) -> Option<u64> {
    record.description.strip_prefix("python record ")?.parse().ok()
}

fn stored(node: &SporeNode) -> Vec<ExperimentRecord> {
    node.export().iter().filter_map(|line| ExperimentRecord::from_json(line).ok()).collect()
}

#[test]
fn the_bridge_exports_only_its_own_records_and_imports_only_keeps() {
    bridge_to_public_peers_of("0.1.2");
}

#[test]
fn the_bridge_to_0_5_0_public_peers_exports_only_its_own_records_and_tasks() {
    bridge_to_public_peers_of("0.5.0");
}

fn bridge_to_public_peers_of(version: &'static str) {
    spore_tests::python::require_python_of(version);
    let root = tempfile::tempdir().unwrap();
    let options = |publish| PythonNodeOptions {
        genesis: true,
        publish,
        publish_delay: Duration::from_secs(4),
        version: Some(version),
        ..Default::default()
    };
    let source = PythonNode::start(&root.path().join("p1"), free_port().unwrap(), &options(12));
    let other = PythonNode::start(&root.path().join("p2"), free_port().unwrap(), &options(0));
    let args: Vec<String> = [
        "--public-peer",
        &source.address(),
        "--public-peer",
        &other.address(),
        "--export",
        "own",
        "--import",
        "frontier",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bridge =
        SporeNode::start_with_args(Path::new(SPORE), &root.path().join("bridge"), free_port().unwrap(), &[], &args);
    wait_until_or(
        Duration::from_secs(20),
        "the bridge to reach both public peers",
        || bridge.status()["peers"].as_array().is_some_and(|p| p.len() == 2),
        || bridge.log(),
    );

    // The lab's own records, from a lab peer (any connection the bridge did not dial).
    let lab = Identity::from_seed([7; 32]);
    let mut stream = TcpStream::connect(("127.0.0.1", bridge.port)).unwrap();
    let mut lab_ids = HashSet::new();
    for n in 0..5 {
        let mut record = spore_tests::records::record(500 + n);
        record.status = if n % 2 == 0 { Status::Keep } else { Status::Discard };
        record.val_bpb = JsonNumber::Float(0.9 + n as f64 / 100.0);
        lab.sign_record(&mut record);
        lab_ids.insert(record.id.clone());
        let frame = spore_spec::frame::frame_bytes(&Message::Experiment(Box::new(record)).encode_body());
        stream.write_all(&frame).unwrap();
    }

    // Everything settles: the source published its 12, the bridge took its keeps.
    wait_until_or(
        Duration::from_secs(30),
        "the source's keeps and the lab's records at the bridge",
        || {
            let records = stored(&bridge);
            records.iter().filter(|r| python_number(r).is_some()).count() == 8
                && lab_ids.iter().all(|id| records.iter().any(|r| &r.id == id))
        },
        || bridge.log(),
    );
    wait_until_or(
        Duration::from_secs(30),
        "the lab's records at both public peers",
        || {
            let at_source: HashSet<String> = source.ids().into_iter().collect();
            let at_other: HashSet<String> = other.ids().into_iter().collect();
            lab_ids.is_subset(&at_source) && lab_ids.is_subset(&at_other)
        },
        || format!("{}\n{}", bridge.log(), other.log()),
    );
    // Time for any leak to show.
    std::thread::sleep(Duration::from_secs(3));

    let records = stored(&bridge);
    let imported: Vec<u64> = records.iter().filter_map(python_number).collect();
    assert_eq!(imported.len(), 8, "{imported:?}");
    assert!(imported.iter().all(|n| n % 3 != 0), "a public discard came in: {imported:?}");
    assert_eq!(source.ids().len(), 12 + 5, "the source has its own and the lab's records");
    let at_other: HashSet<String> = other.ids().into_iter().collect();
    assert_eq!(at_other, lab_ids, "export own: nothing imported from the source reached the other public peer");
    let stats = &bridge.status()["stats"];
    assert!(stats["records_not_imported"].as_u64().unwrap_or(0) >= 4, "{stats}");
    if version != "0.1.2" {
        // The source's task came in and stayed in the lab.
        assert_eq!(stats["tasks_accepted"], 1, "{stats}");
        assert_eq!(source.tasks().len(), 1);
        assert!(
            !other.tasks().contains(&source.tasks()[0]),
            "export own: the source's task reached the other public peer: {:?} {:?}\n{}",
            other.tasks(),
            source.tasks(),
            bridge.log()
        );
    }
    drop(stream);
}

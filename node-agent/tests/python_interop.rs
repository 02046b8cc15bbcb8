//! Interop with the real Python peer (`sporemesh` 0.1.2): relay, sync both ways, a mixed line
//! converging, and PEX, with real processes on 127.0.0.1.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use spore_tests::nodes::{PythonNode, PythonNodeOptions, SporeNode, free_port, test_dir, wait_until, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn spore(data_dir: &Path, peers: &[String]) -> SporeNode {
    SporeNode::start(Path::new(SPORE), data_dir, free_port().unwrap(), peers)
}

fn exported_ids(node: &SporeNode) -> HashSet<String> {
    node.export().iter().filter_map(|line| spore_spec::ExperimentRecord::from_json(line).ok()).map(|r| r.id).collect()
}

#[test]
fn python_records_relay_through_a_rust_node_to_another_python_node() {
    let (_tmp, root) = test_dir("relay");
    let publisher = PythonNode::start(
        &root.join("p1"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, publish: 30, publish_delay: Duration::from_secs(2), ..Default::default() },
    );
    let receiver = PythonNode::start(
        &root.join("p2"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, ..Default::default() },
    );
    // Genesis Python nodes dial nobody, so everything p2 gets comes through the Rust node.
    let relay = spore(&root.join("r"), &[publisher.address(), receiver.address()]);
    wait_until(Duration::from_secs(30), "p2 to receive all 30 records", || receiver.ids().len() == 30);
    assert_eq!(relay.record_count(), 30, "{}", relay.log());
    let published: HashSet<String> = publisher.ids().into_iter().collect();
    assert_eq!(receiver.ids().into_iter().collect::<HashSet<_>>(), published);
    assert_eq!(exported_ids(&relay), published);
    assert_eq!(relay.status()["stats"]["records_rejected"], 0);
}

#[test]
fn rust_syncs_from_python_and_a_fresh_python_node_syncs_from_rust() {
    let (_tmp, root) = test_dir("sync");
    let origin = PythonNode::start(
        &root.join("p1"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, publish: 40, ..Default::default() },
    );
    wait_until(Duration::from_secs(20), "the origin to publish", || origin.ids().len() == 40);
    let rust = spore(&root.join("r"), &[origin.address()]);
    wait_until(Duration::from_secs(20), "the Rust node to sync 40 records", || rust.record_count() == 40);
    drop(origin);
    let fresh = PythonNode::start(
        &root.join("p2"),
        free_port().unwrap(),
        &PythonNodeOptions { peers: vec![rust.address()], ..Default::default() },
    );
    wait_until_or(
        Duration::from_secs(30),
        "the fresh Python node to sync 40 records",
        || fresh.ids().len() == 40,
        || format!("fresh has {}\n--- python log\n{}\n--- rust log\n{}", fresh.ids().len(), fresh.log(), rust.log()),
    );
    assert_eq!(fresh.ids().into_iter().collect::<HashSet<_>>(), exported_ids(&rust));
    // The Rust node stored each record as it arrived: every payload still verifies.
    for line in rust.export() {
        let record = spore_spec::ExperimentRecord::from_json(&line).unwrap();
        assert!(spore_spec::verify_record(&record).is_ok());
    }
}

#[test]
fn a_line_of_python_and_rust_nodes_converges() {
    let (_tmp, root) = test_dir("line");
    let p1 = PythonNode::start(
        &root.join("p1"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, publish: 15, publish_delay: Duration::from_secs(3), ..Default::default() },
    );
    let r1 = spore(&root.join("r1"), &[p1.address()]);
    let p2 = PythonNode::start(
        &root.join("p2"),
        free_port().unwrap(),
        &PythonNodeOptions {
            peers: vec![r1.address()],
            publish: 15,
            publish_delay: Duration::from_secs(3),
            offset: 1000,
            ..Default::default()
        },
    );
    let r2 = spore(&root.join("r2"), &[p2.address()]);
    wait_until(Duration::from_secs(40), "every node to hold all 30 records", || {
        p1.ids().len() == 30 && p2.ids().len() == 30 && r1.record_count() == 30 && r2.record_count() == 30
    });
    assert_eq!(exported_ids(&r1), exported_ids(&r2));
}

#[test]
fn pex_hands_python_only_dialable_addresses() {
    let (_tmp, root) = test_dir("pex");
    let far = spore(&root.join("r2"), &[]);
    let near = spore(&root.join("r1"), &[far.address()]);
    wait_until(Duration::from_secs(10), "r1 to connect to r2", || {
        near.status()["peers"].as_array().is_some_and(|p| !p.is_empty())
    });
    let python = PythonNode::start(
        &root.join("p"),
        free_port().unwrap(),
        &PythonNodeOptions { peers: vec![near.address()], ..Default::default() },
    );
    // The Python node asks r1 for peers, learns r2's listen address, dials it and remembers it.
    let known_file = root.join("p").join("known_peer");
    wait_until(Duration::from_secs(20), "the Python node to remember r2", || {
        std::fs::read_to_string(&known_file).unwrap_or_default().lines().any(|l| l == far.address())
    });
    let known: Vec<String> = std::fs::read_to_string(&known_file).unwrap().lines().map(str::to_owned).collect();
    let dialable = [near.address(), far.address()];
    assert!(known.iter().all(|a| dialable.contains(a)), "only listen addresses are advertised: {known:?}");
    wait_until(Duration::from_secs(10), "r2 to see the Python node", || {
        far.status()["peers"].as_array().is_some_and(|peers| peers.iter().any(|p| p["node_id"].is_null()))
    });
    drop(python);
}

#[test]
fn python_peers_tolerate_signed_control_events_and_code_messages() {
    use std::io::Write;

    use spore_spec::{ControlEvent, Identity, Message};
    let (_tmp, root) = test_dir("control");
    let python = PythonNode::start(
        &root.join("p"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, ..Default::default() },
    );
    let identity = Identity::from_seed([5; 32]);
    let mut record = spore_tests::records::record(1);
    identity.sign_record(&mut record);
    let exp = record.id.clone();
    // What a Rust verifier sends: signed challenge (with the 0.1.2 fields), response,
    // verification, and code requests/answers; then a record on the same connection.
    let messages = [
        Message::Signed(Box::new(ControlEvent::challenge(&identity, &exp, 1.5, "cpu", 1_773_000_000))),
        Message::Signed(Box::new(ControlEvent::response(&identity, &exp, &"c".repeat(64), 1.5, "cpu", 1_773_000_000))),
        Message::Signed(Box::new(ControlEvent::verification(&identity, &exp, &"p".repeat(64), 1.5, "cpu", 1))),
        Message::CodeRequest { code_cid: "a".repeat(64) },
        Message::CodeResponse { code_cid: "a".repeat(64), code: "cHJpbnQoMSkK".into() },
        Message::Experiment(Box::new(record)),
    ];
    let mut stream = std::net::TcpStream::connect(python.address()).unwrap();
    for message in &messages {
        stream.write_all(&message.encode_frame()).unwrap();
    }
    // The connection survived all of it: the record that came last is stored.
    wait_until_or(
        Duration::from_secs(20),
        "the Python node to store the record sent after the control messages",
        || python.ids().contains(&exp),
        || python.log(),
    );
}

/// Sends `records` to `node` as a newer (0.5.0) peer would, over one raw connection kept open.
fn push_as_newer_peer(node: &SporeNode, records: &[spore_spec::ExperimentRecord]) -> std::net::TcpStream {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    for record in records {
        let message = spore_spec::Message::Experiment(Box::new(record.clone()));
        stream.write_all(&spore_spec::frame::frame_bytes(&message.encode_body())).unwrap();
    }
    stream
}

#[test]
fn a_0_1_2_peer_never_receives_a_record_that_would_make_it_disconnect() {
    let (_tmp, root) = test_dir("tasks");
    let python = PythonNode::start(
        &root.join("p"),
        free_port().unwrap(),
        &PythonNodeOptions { genesis: true, ..Default::default() },
    );
    let rust = spore(&root.join("r"), &[python.address()]);
    wait_until(Duration::from_secs(20), "the Rust node to dial the Python node", || {
        rust.status()["peers"].as_array().is_some_and(|p| !p.is_empty())
    });
    // A 0.5.0 peer's records: version 1 stamped with a task id (unsigned), version 2 (signed).
    let identity = spore_spec::Identity::from_seed([50; 32]);
    let task = "c".repeat(64);
    let sign = |n: i64, version: i64| {
        let mut r = spore_tests::records::record(n);
        r.task_id = Some(task.clone());
        r.version = spore_spec::JsonNumber::from(version);
        identity.sign_record(&mut r);
        r
    };
    let (stamped, signed, plain) = (sign(1, 1), sign(2, 2), {
        let mut r = spore_tests::records::record(3);
        identity.sign_record(&mut r);
        r
    });
    let _newer = push_as_newer_peer(&rust, &[stamped.clone(), signed.clone(), plain.clone()]);
    wait_until_or(
        Duration::from_secs(30),
        "the Python node to receive the two records it can take",
        || python.ids().len() == 2,
        || format!("{}\n{}", python.log(), rust.log()),
    );
    // The Rust node keeps all three as signed; the 0.1.2 node got the version-1 record without
    // its task id (same CID) and the plain one, and is still connected.
    assert_eq!(rust.record_count(), 3);
    let kept: Vec<String> = rust.export();
    assert!(kept.iter().any(|l| l.contains(&signed.id) && l.contains(&task)), "{kept:?}");
    assert_eq!(python.ids().into_iter().collect::<HashSet<_>>(), HashSet::from([stamped.id.clone(), plain.id.clone()]));
    wait_until(Duration::from_secs(10), "the node to count the record it withheld", || {
        rust.status()["stats"]["withheld_task_records"] == 1
    });
    let later = {
        let mut r = spore_tests::records::record(4);
        identity.sign_record(&mut r);
        r
    };
    let _again = push_as_newer_peer(&rust, std::slice::from_ref(&later));
    wait_until_or(
        Duration::from_secs(30),
        "the Python node to stay connected and receive a later record",
        || python.ids().contains(&later.id),
        || format!("{}\n{}", python.log(), rust.log()),
    );
    assert!(!python.log().contains("TypeError"), "{}", python.log());
}

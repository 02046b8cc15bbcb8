//! Fresh keys voting in a dispute, for real: a challenge and three responses, each signed by a
//! key made for the attack, against an honest record held by a running node. Counted as
//! anyone's (a quorum of three), they would reject it; a node counts votes only from nodes with
//! standing, so the record stands — unless the lab told the node to trust those keys, which
//! shows the same evidence does decide when its signers are believed.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use spore_spec::{ControlEvent, Identity, Message};
use spore_tests::nodes::{SporeNode, free_port, test_dir, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn rejected(node: &SporeNode) -> Vec<String> {
    let status = node.status();
    status["rejected"].as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect()
}

/// Sends the honest record, then the attack, and waits until the node holds all four events.
fn attack(node: &SporeNode, sybils: &[Identity]) -> String {
    let mut honest = spore_tests::records::record(1);
    Identity::from_seed([50; 32]).sign_record(&mut honest);
    node.push(std::slice::from_ref(&honest), 1);
    let claimed = honest.val_bpb.as_f64();
    let challenger = sybils[0].node_id();
    let mut events = vec![ControlEvent::challenge(&sybils[0], &honest.id, claimed + 0.5, "cpu", 1_773_000_100)];
    for sybil in &sybils[1..] {
        events.push(ControlEvent::response(sybil, &honest.id, &challenger, claimed + 0.5, "cpu", 1_773_000_200));
    }
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    for event in events {
        stream.write_all(&Message::Signed(Box::new(event)).encode_frame()).unwrap();
    }
    wait_until_or(
        Duration::from_secs(20),
        "the node to keep the 4 events",
        || node.status()["stats"]["controls_accepted"] == 4,
        || node.log(),
    );
    honest.id
}

#[test]
fn four_fresh_keys_cannot_reject_an_honest_record() {
    let (_tmp, root) = test_dir("sybil-votes");
    let sybils: Vec<Identity> = (0..4u8).map(|i| Identity::from_seed([60 + i; 32])).collect();

    let node = SporeNode::start(Path::new(SPORE), &root.join("n"), free_port().unwrap(), &[]);
    let honest = attack(&node, &sybils);
    wait_until_or(
        Duration::from_secs(20),
        "the node to drop the dispute",
        || node.log().contains("dispute dropped"),
        || node.log(),
    );
    assert!(node.log().contains("is not an eligible node"), "{}", node.log());
    assert_eq!(rejected(&node), Vec::<String>::new(), "fresh keys rejected an honest record");

    // The same evidence at a node told to trust those keys decides at once.
    let trust: Vec<String> = sybils.iter().flat_map(|s| ["--trust-verifier".to_string(), s.node_id()]).collect();
    let lab = SporeNode::start_with_args(Path::new(SPORE), &root.join("lab"), free_port().unwrap(), &[], &trust);
    let same = attack(&lab, &sybils);
    assert_eq!(same, honest);
    wait_until_or(
        Duration::from_secs(20),
        "the trusting node to reject the record",
        || rejected(&lab) == [honest.clone()],
        || lab.log(),
    );
}

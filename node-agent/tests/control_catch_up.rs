//! A node that was not there when the evidence of a dispute went round gets it when it joins:
//! our nodes catch up on control events by the server's rows (`control-seq`), so an event signed
//! with an old timestamp reaches the newcomer too. Real processes on 127.0.0.1.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use spore_spec::{ControlEvent, Identity, Message};
use spore_tests::nodes::{SporeNode, free_port, wait_until_or};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn accepted(node: &SporeNode) -> u64 {
    node.status()["stats"]["controls_accepted"].as_u64().unwrap_or(0)
}

#[test]
fn a_node_that_joins_later_gets_the_control_events_it_missed() {
    let tmp = tempfile::tempdir().unwrap();
    let first = SporeNode::start(Path::new(SPORE), &tmp.path().join("a"), free_port().unwrap(), &[]);
    let challenger = Identity::from_seed([31; 32]);
    let verifier = Identity::from_seed([32; 32]);
    let experiment = "e".repeat(64);
    // A challenge, a response and a verification, the last signed a day before the others.
    let events = [
        ControlEvent::challenge(&challenger, &experiment, 1.5, "cpu", 1_773_000_000),
        ControlEvent::response(&verifier, &experiment, &challenger.node_id(), 1.2, "cpu", 1_773_000_100),
        ControlEvent::verification(&verifier, &"f".repeat(64), &challenger.node_id(), 1.1, "cpu", 1_772_913_600),
    ];
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", first.port)).unwrap();
    for event in &events {
        stream.write_all(&Message::Signed(Box::new(event.clone())).encode_frame()).unwrap();
    }
    wait_until_or(
        Duration::from_secs(20),
        "the first node to keep the 3 events",
        || accepted(&first) == 3,
        || first.log(),
    );
    drop(stream);

    let newcomer = SporeNode::start(Path::new(SPORE), &tmp.path().join("b"), free_port().unwrap(), &[first.address()]);
    wait_until_or(
        Duration::from_secs(30),
        "the newcomer to get the 3 events",
        || accepted(&newcomer) == 3,
        || format!("{}\n--- first\n{}", newcomer.status(), first.log()),
    );
    assert_eq!(newcomer.status()["stats"]["controls_rejected"], 0);
}

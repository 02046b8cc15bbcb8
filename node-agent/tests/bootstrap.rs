//! The bootstrap peer (`SPORE_BOOTSTRAP_PEER` stands in for the public one, on loopback): a node
//! with no configured, remembered or public peer dials it, and dials it again after a restart
//! because it never writes it to `known_peer` or its config; a node with a peer never dials it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spore_tests::nodes::{SporeNode, wait_until};
use spore_tests::testenv::ports::free_port;

fn peers(node: &SporeNode) -> usize {
    node.status()["peers"].as_array().map_or(0, Vec::len)
}

#[test]
fn only_a_node_without_peers_dials_the_bootstrap_peer_and_never_remembers_it() {
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_spore"));
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = SporeNode::start(&bin, &dir.path().join("bootstrap"), free_port().unwrap(), &[]);
    let env = [("SPORE_BOOTSTRAP_PEER", bootstrap.address())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let mut lonely = SporeNode::start_with_env(&bin, &dir.path().join("lonely"), free_port().unwrap(), &[], &env);
    wait_until(Duration::from_secs(30), "the lonely node to reach the bootstrap peer", || peers(&bootstrap) == 1);
    // Stopped (everything it writes is written), it has not taken the bootstrap peer for its own.
    lonely.stop();
    let remembered = std::fs::read_to_string(lonely.data_dir.join("known_peer")).unwrap_or_default();
    assert!(!remembered.contains(&bootstrap.address()), "known_peer: {remembered}");
    let config = std::fs::read_to_string(lonely.data_dir.join("config.toml")).unwrap_or_default();
    assert!(!config.contains(&bootstrap.address()), "config.toml: {config}");
    // Restarted, it has still no peer of its own: the bootstrap again.
    wait_until(Duration::from_secs(30), "the bootstrap peer to see it go", || peers(&bootstrap) == 0);
    lonely.restart();
    wait_until(Duration::from_secs(30), "the restarted node to reach the bootstrap peer", || peers(&bootstrap) == 1);

    // A node with a peer of its own leaves the bootstrap alone (a listener counts any dial).
    let stand_in = TcpListener::bind("127.0.0.1:0").unwrap();
    stand_in.set_nonblocking(true).unwrap();
    let dials = Arc::new(AtomicUsize::new(0));
    let counter = dials.clone();
    let stand_in_address = stand_in.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        loop {
            if stand_in.accept().is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let peered = SporeNode::start_with_env(
        &bin,
        &dir.path().join("peered"),
        free_port().unwrap(),
        &["--peer".to_string(), lonely.address()],
        &[("SPORE_BOOTSTRAP_PEER", stand_in_address.as_str())],
    );
    wait_until(Duration::from_secs(30), "the peered node to reach its peer", || peers(&peered) >= 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(dials.load(Ordering::SeqCst), 0, "a node with a peer dialed the bootstrap peer");
}

//! `kill -9` during ingest: every record the node acknowledged (relayed, which it does only
//! after the record is committed to the store) is still there after a restart, and everything
//! stored verifies.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spore_spec::frame::{FrameCheck, check, frame_bytes};
use spore_spec::{ExperimentRecord, Identity, Message, Status};
use spore_tests::nodes::{SporeNode, free_port, wait_until};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");
const RECORDS: i64 = 20_000;

fn record(identity: &Identity, n: i64) -> ExperimentRecord {
    let mut r = spore_tests::records::record(n);
    r.diff = "x".repeat(500);
    r.status = Status::Discard;
    identity.sign_record(&mut r);
    r
}

#[test]
fn acknowledged_records_survive_kill_9_and_the_store_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = SporeNode::start(Path::new(SPORE), tmp.path(), free_port().unwrap(), &[]);
    let port = node.port;

    // The observer sees what the node relays, i.e. what it has committed.
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let observer = {
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            let mut chunk = vec![0u8; 1 << 16];
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    Err(_) => continue,
                }
                while let Ok(FrameCheck::Complete(len)) = check(&buffer) {
                    let body: Vec<u8> = buffer.drain(..4 + len).skip(4).collect();
                    if let Ok(Message::Experiment(r)) = Message::decode(&body) {
                        acknowledged.lock().unwrap().insert(r.id);
                    }
                }
            }
        })
    };

    let identity = Identity::from_seed([3; 32]);
    let frames: Vec<u8> = (0..RECORDS)
        .flat_map(|n| frame_bytes(&Message::Experiment(Box::new(record(&identity, n))).encode_body()))
        .collect();
    let publisher = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = stream.write_all(&frames);
    });
    wait_until(Duration::from_secs(60), "the node to acknowledge some records", || {
        acknowledged.lock().unwrap().len() >= 2_000
    });
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    let _ = observer.join();
    let _ = publisher.join();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!((acknowledged.len() as i64) < RECORDS, "the kill must land mid-ingest to test anything");

    node.restart();
    let stored: Vec<ExperimentRecord> = node.export().iter().map(|l| ExperimentRecord::from_json(l).unwrap()).collect();
    let stored_ids: HashSet<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored_ids.contains(id.as_str())).collect();
    assert!(lost.is_empty(), "{} acknowledged records lost", lost.len());
    assert!(stored.iter().all(|r| spore_spec::verify_record(r).is_ok()), "every stored record verifies");
    assert_eq!(node.record_count(), stored.len() as u64);
}

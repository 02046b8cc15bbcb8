//! A stranger on the wire, for real: attacks sent to a running `spore run --no-train` on
//! loopback. For each one a well-behaved peer keeps pinging, and the test measures the worst
//! time it waited for a pong (target: under 1 s) and the node's peak memory (target: under
//! 256 MB); nothing unrequested may reach the disk. Every attack is bounded in count and time.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use spore_spec::{ExperimentRecord, Identity, JsonNumber, Message};
use spore_tests::nodes::{SporeNode, free_port};
use spore_tests::wire::Client;

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

/// Worst pong wait a well-behaved peer may see during an attack.
const MAX_PONG_WAIT: Duration = Duration::from_secs(1);
/// Peak resident memory the node may reach under every attack together.
const MAX_PEAK_RSS_KIB: u64 = 256 * 1024;

/// A well-behaved peer pinging every 50 ms on its own connection until stopped; it reports
/// the worst round trip it saw (a missing pong counts as the 5 s it waited).
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Duration>,
}

impl Watcher {
    fn start(port: u16) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut client = Client::connect(port).unwrap();
            let mut worst = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                worst = worst.max(client.ping(Duration::from_secs(5)).unwrap_or(Duration::from_secs(5)));
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        });
        Watcher { stop, thread }
    }

    fn worst(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Runs `attack` while a watcher pings, and checks the watcher's worst wait.
fn during(name: &str, port: u16, attack: impl FnOnce()) {
    let watcher = Watcher::start(port);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    attack();
    std::thread::sleep(Duration::from_millis(300));
    let worst = watcher.worst();
    eprintln!("{name}: attack took {:?}, worst pong wait {worst:?}", started.elapsed());
    assert!(worst < MAX_PONG_WAIT, "{name}: a well-behaved peer waited {worst:?} for a pong");
}

/// An object of `keys` members as a ping's payload: `{"0":0,"1":0,...}`.
fn wide_body(message_type: &str, keys: usize) -> Vec<u8> {
    let mut body = format!(r#"{{"type":"{message_type}","payload":{{"#).into_bytes();
    for i in 0..keys {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!("\"{i}\":0").as_bytes());
    }
    body.extend_from_slice(b"}}");
    body
}

/// A signed record whose diff makes its message about `size` bytes.
fn big_record(size: usize) -> ExperimentRecord {
    let mut record = spore_tests::records::record(1);
    record.diff = "+x\n".repeat(size / 4);
    record.val_bpb = JsonNumber::Float(0.97);
    Identity::from_seed([9; 32]).sign_record(&mut record);
    record
}

fn artifact_count(data_dir: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map_or(0, |entries| entries.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
    }
    walk(&data_dir.join("artifact"))
}

#[test]
fn a_hostile_peer_can_neither_freeze_flood_nor_fill_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = SporeNode::start(Path::new(SPORE), tmp.path(), free_port().unwrap(), &[]);
    let port = node.port;

    // One 8 MiB ping of 800,000 keys, from four connections at once: refused by its size before
    // it is parsed (it once took the node minutes).
    during("wide pings", port, || {
        let body = wide_body("ping", 800_000);
        assert!(body.len() > 8 * 1024 * 1024 && body.len() < 10 * 1024 * 1024);
        let senders: Vec<JoinHandle<()>> = (0..4)
            .map(|_| {
                let body = body.clone();
                std::thread::spawn(move || {
                    let mut client = Client::connect(port).unwrap();
                    client.send_body(&body);
                    assert!(client.ping(Duration::from_secs(5)).is_some(), "kept, and answered");
                })
            })
            .collect();
        senders.into_iter().for_each(|s| s.join().unwrap());
    });

    // Under the record size cap, the widest object a body can hold: parsed in linear time, or
    // refused as too many values; either way the sender is dropped as sending garbage.
    during("wide records", port, || {
        for keys in [60_000, 90_000] {
            let mut client = Client::connect(port).unwrap();
            let body = wide_body("experiment", keys);
            assert!(body.len() < 1024 * 1024);
            client.send_body(&body);
            let _ = client.ping(Duration::from_secs(3));
        }
    });

    // A second `type` key used to be charged as the first and handled as the last: 5,000
    // pings for free. Now the first such frame is garbage and ends the connection.
    during("a second type key", port, || {
        let mut client = Client::connect(port).unwrap();
        let frame = spore_spec::frame::frame_bytes(br#"{"type":"experiment","type":"ping","payload":{}}"#);
        let mut sent = 0;
        while sent < 5_000 && client.send_raw(&frame) {
            sent += 1;
        }
        assert_eq!(client.count_type("pong", Duration::from_secs(2)), 0, "no pong for a two-typed frame");
    });

    // Amplification: a 900 KB record stored by the attacker, then asked for 256 times in one
    // 17 KB request, on 40 connections that never read. Each id is answered once and the
    // answers stop at the asker's unread bytes.
    let record = big_record(900 * 1024);
    let record_body = Message::Experiment(Box::new(record.clone())).encode_body();
    assert!(record_body.len() < 1024 * 1024);
    let mut owner = Client::connect(port).unwrap();
    owner.send_body(&record_body);
    assert!(owner.ping(Duration::from_secs(5)).is_some());
    spore_tests::nodes::wait_until(Duration::from_secs(10), "the big record stored", || node.record_count() == 1);
    during("get_records amplification", port, || {
        let ask = Message::GetRecords { ids: vec![record.id.clone(); 256] }.encode_body();
        assert!(ask.len() < 20 * 1024);
        let slow: Vec<Client> = (0..40)
            .map(|_| {
                let mut client = Client::connect(port).unwrap();
                client.stream.set_nodelay(true).unwrap();
                for _ in 0..8 {
                    client.send_body(&ask);
                }
                client
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        drop(slow);
    });

    // Unsolicited code: 200 `code_response`s of 0.7 MB that hash to their CIDs; nobody asked.
    during("pushed code", port, || {
        let mut client = Client::connect(port).unwrap();
        for i in 0..200u32 {
            let code = format!("# {i}\n{}", "x = 1\n".repeat(90_000));
            let cid = hex::encode(Sha256::digest(code.as_bytes()));
            let push = Message::CodeResponse { code_cid: cid, code: STANDARD.encode(code) };
            if !client.send_body(&push.encode_body()) {
                break;
            }
        }
        let _ = client.ping(Duration::from_secs(5));
    });
    assert_eq!(artifact_count(tmp.path()), 0, "no unrequested artifact stored");

    // An unasked pex_response naming a listener of ours: the node never dials it.
    let bait = TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let mut client = Client::connect(port).unwrap();
    let offer = Message::PexResponse { peer: vec![format!("127.0.0.1:{}", bait.local_addr().unwrap().port())] };
    client.send_body(&offer.encode_body());
    assert!(client.ping(Duration::from_secs(3)).is_some());
    std::thread::sleep(Duration::from_secs(3));
    assert!(bait.accept().is_err(), "the node dialed an address nobody asked it for");

    let peak = node.peak_rss_kib().unwrap();
    eprintln!("peak RSS over all attacks: {} MiB", peak / 1024);
    assert!(peak < MAX_PEAK_RSS_KIB, "peak RSS {} MiB", peak / 1024);
    assert!(node.is_running(), "{}", node.log());
    let unsolicited = node.metric("spore_messages_dropped_total{reason=\"unsolicited\"}").unwrap_or(0.0);
    assert!(unsolicited >= 1.0, "the pushed code and the unasked PEX were counted: {unsolicited}");
    node.stop();
}

/// A `hello` naming another node, as a stranger would send it to lock that node out.
fn impersonation(node_id: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"hello","payload":{{"node_id":"{node_id}","listen_port":7470,"capabilities":["sync-seq"],"agent":"x"}}}}"#
    )
    .into_bytes()
}

#[test]
fn a_stranger_claiming_a_nodes_id_cannot_lock_it_out() {
    let tmp = tempfile::tempdir().unwrap();
    let mut target = SporeNode::start(Path::new(SPORE), &tmp.path().join("a"), free_port().unwrap(), &[]);
    // The honest node's identity exists before it runs; the stranger claims it first.
    let honest_dir = tmp.path().join("b");
    spore_tests::nodes::init_identity(Path::new(SPORE), &honest_dir);
    let honest_id = std::fs::read_to_string(honest_dir.join("identity/node_id")).unwrap().trim().to_string();
    let mut stranger = Client::connect(target.port).unwrap();
    stranger.send_body(&impersonation(&honest_id));
    assert!(stranger.ping(Duration::from_secs(5)).is_some(), "a bare claim is taken at first");
    // The honest node dials in and proves its key: it is kept, the stranger is dropped.
    let mut honest = SporeNode::start(Path::new(SPORE), &honest_dir, free_port().unwrap(), &[target.address()]);
    let proven = || {
        target.status()["peers"]
            .as_array()
            .is_some_and(|peers| peers.iter().any(|p| p["node_id"] == honest_id.as_str() && p["authenticated"] == true))
    };
    spore_tests::nodes::wait_until(Duration::from_secs(15), "the honest node connected and proved its key", proven);
    assert_eq!(stranger.wait_for_type("pong", Duration::from_secs(3)), None, "the stranger's connection is closed");
    // A stranger who claims it again now is refused at once.
    let mut again = Client::connect(target.port).unwrap();
    again.send_body(&impersonation(&honest_id));
    assert_eq!(again.wait_for_type("pong", Duration::from_secs(3)), None);
    assert!(proven(), "the honest node stays");
    honest.stop();
    target.stop();
}

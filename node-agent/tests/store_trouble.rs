//! The node's store in trouble, for real: a running `spore run --no-train` whose disk fills up
//! under a peer's records, whose database another process locks, and whose quota a peer
//! reaches. Each time the node keeps answering, says why ingest is paused (metrics and
//! `spore status`), refuses records it cannot keep, and takes them once the store is back.

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use spore_spec::{Identity, Message};
use spore_tests::nodes::{SporeNode, free_port, wait_until_or};
use spore_tests::wire::Client;

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

/// Sends records `range`, each with a description of `pad` bytes, signed by `identity`, on
/// one connection kept open (and read) until the returned stream is dropped.
fn send_records(port: u16, identity: &Identity, range: std::ops::Range<i64>, pad: usize) -> (TcpStream, Vec<String>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = stream.try_clone().unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for n in range {
        let mut r = spore_tests::records::record(n);
        r.description = format!("record {n} {}", "x".repeat(pad));
        identity.sign_record(&mut r);
        ids.push(r.id.clone());
        out.extend(spore_spec::frame::frame_bytes(&Message::Experiment(Box::new(r)).encode_body()));
    }
    stream.write_all(&out).unwrap();
    (stream, ids)
}

fn paused(node: &SporeNode, cause: &str) -> bool {
    node.metric(&format!("spore_store_paused{{cause=\"{cause}\"}}")) == Some(1.0)
}

fn stored(node: &SporeNode) -> f64 {
    ["keep", "discard", "crash"]
        .iter()
        .filter_map(|s| node.metric(&format!("spore_records_stored{{status=\"{s}\"}}")))
        .sum()
}

fn pong_within(port: u16, limit: Duration) {
    let wait = Client::connect(port).unwrap().ping(Duration::from_secs(10));
    assert!(wait.is_some_and(|w| w < limit), "the node answered a ping in {wait:?}");
}

/// A tmpfs of `size` mounted on `path` for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "spore-test-full"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs on {}", path.display());
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_pauses_ingest_and_ingest_resumes_when_space_returns() {
    assert!(nix::unistd::geteuid().is_root(), "this test mounts a small tmpfs for the store: run it as root");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // The store's directory is an 8 MiB disk of its own (the log and status stay readable).
    let _disk = Tmpfs::mount(&data.join("db"), "8m");
    // Ballast the test frees later, to give the disk its space back: more than twice what
    // the records fill, since the log's pages are then copied into the database.
    let ballast = data.join("db/ballast");
    std::fs::write(&ballast, vec![0u8; 5632 * 1024]).unwrap();

    let mut node = SporeNode::start_with_args(
        Path::new(SPORE),
        &data,
        free_port().unwrap(),
        &[],
        &["--store-max-mb".into(), "0".into()],
    );
    let port = node.port;
    let hostile = Identity::from_seed([7; 32]);

    // 60 records of 150 KB: about 9 MB for a disk with under 2.5 MiB left.
    let (flood, _) = send_records(port, &hostile, 0..60, 150_000);
    wait_until_or(Duration::from_secs(60), "ingest pauses for a full disk", || paused(&node, "full"), || node.log());
    pong_within(port, Duration::from_secs(1));
    assert!(node.is_running(), "the node lives on a full disk");
    let refused = node.metric("spore_records_refused_total{reason=\"store_paused\"}").unwrap();
    assert!(refused > 0.0, "records were refused while paused");
    drop(flood);

    // Space comes back: ingest resumes, and a record refused on the full disk is taken now.
    std::fs::remove_file(&ballast).unwrap();
    wait_until_or(
        Duration::from_secs(30),
        "ingest resumes",
        || node.metric("spore_store_paused{cause=\"full\"}") == Some(0.0),
        || node.log(),
    );
    let before = stored(&node);
    let (_again, _) = send_records(port, &hostile, 59..60, 150_000);
    let (_small, _) = send_records(port, &hostile, 100..105, 10);
    wait_until_or(
        Duration::from_secs(30),
        "records are stored again",
        || stored(&node) >= before + 5.0,
        || format!("stored {} (before {before})\n{}", stored(&node), node.log()),
    );
    pong_within(port, Duration::from_secs(1));
    node.stop();
}

/// `python3` holding an exclusive transaction on the store until its stdin closes.
fn lock_store(store: &Path) -> Child {
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN EXCLUSIVE')\n\
                  print('locked', flush=True)\n\
                  sys.stdin.read()\n\
                  c.execute('ROLLBACK')\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(store)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[test]
fn a_store_locked_by_another_process_pauses_ingest_until_it_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = SporeNode::start(Path::new(SPORE), tmp.path(), free_port().unwrap(), &[]);
    let port = node.port;
    let peer = Identity::from_seed([8; 32]);
    node.push_records(&peer, 0..3, 3);

    let mut locker = lock_store(&node.data_dir.join("db/dag.sqlite"));
    let (_first, ids) = send_records(port, &peer, 3..6, 10);
    wait_until_or(Duration::from_secs(30), "ingest pauses for a busy store", || paused(&node, "busy"), || node.log());
    pong_within(port, Duration::from_secs(1));
    let status = Command::new(SPORE).args(["status", "--data-dir"]).arg(&node.data_dir).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("store     PAUSED (busy)"), "spore status says why:\n{text}");

    drop(locker.stdin.take());
    assert!(locker.wait().unwrap().success());
    wait_until_or(
        Duration::from_secs(30),
        "ingest resumes",
        || node.metric("spore_store_paused{cause=\"busy\"}") == Some(0.0),
        || node.log(),
    );
    // What was refused while paused is taken when offered again.
    let (_again, again) = send_records(port, &peer, 3..6, 10);
    assert_eq!(ids, again);
    wait_until_or(
        Duration::from_secs(30),
        "the refused records are stored",
        || node.record_count() == 6,
        || node.log(),
    );
    node.stop();
}

#[test]
fn past_its_quota_the_store_refuses_records_from_peers_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = SporeNode::start_with_args(
        Path::new(SPORE),
        tmp.path(),
        free_port().unwrap(),
        &[],
        &["--store-max-mb".into(), "1".into()],
    );
    let port = node.port;
    let peer = Identity::from_seed([9; 32]);
    // 40 records of 50 KB: 2 MB for a 1 MiB quota (the quota is looked at every 100 ms, so a
    // burst may pass it by what arrives in between).
    let (_flood, _) = send_records(port, &peer, 0..40, 50_000);
    wait_until_or(Duration::from_secs(30), "ingest pauses at the quota", || paused(&node, "quota"), || node.log());
    pong_within(port, Duration::from_secs(1));
    let json = node.status();
    assert_eq!(json["store"]["state"], "paused", "{json}");
    assert_eq!(json["store"]["cause"], "quota", "{json}");
    assert!(json["store"]["reason"].as_str().unwrap().contains("--store-max-mb"), "{json}");

    // From now on records are refused, and the store does not grow.
    std::thread::sleep(Duration::from_millis(500));
    let kept = node.record_count();
    let refused = node.metric("spore_records_refused_total{reason=\"store_paused\"}").unwrap_or(0.0);
    let (_more, _) = send_records(port, &peer, 40..60, 50_000);
    wait_until_or(
        Duration::from_secs(30),
        "the next records are refused",
        || node.metric("spore_records_refused_total{reason=\"store_paused\"}").unwrap_or(0.0) >= refused + 20.0,
        || node.log(),
    );
    assert_eq!(node.record_count(), kept);
    assert!(paused(&node, "quota"));
    node.stop();
}

#![allow(clippy::unwrap_used)]
//! The administrative commands, each honouring `--data-dir`: init, info, connect, disconnect,
//! peer, set, start, stop, log, clean, explorer; and the log format.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use spore_tests::nodes::{free_port, wait_until};

const SPORE: &str = env!("CARGO_BIN_EXE_spore");

fn spore(args: &[&str], data_dir: &Path) -> Output {
    Command::new(SPORE).args(args).arg("--data-dir").arg(data_dir).stdin(Stdio::null()).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_info_and_the_peer_list_live_in_the_given_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    assert!(stdout(&spore(&["init"], &data)).contains("initialised"));
    assert!(data.join("identity/private_key").is_file() && data.join("config.toml").is_file());
    let info: Value = serde_json::from_str(&stdout(&spore(&["info", "--json"], &data))).unwrap();
    assert_eq!(info["experiments"], 0);
    assert_eq!(info["listen"], "0.0.0.0:7470");
    assert_eq!(info["node_id"].as_str().unwrap().len(), 64);

    stdout(&spore(&["connect", "10.0.0.1:7470"], &data));
    stdout(&spore(&["connect", "peer.example:7471"], &data));
    let bad = spore(&["connect", "no-port"], &data);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("not host:port"));
    std::fs::write(data.join("known_peer"), "10.0.0.1:7470\n10.0.0.9:7470\n").unwrap();
    let peers: Value = serde_json::from_str(&stdout(&spore(&["peer", "--json"], &data))).unwrap();
    assert_eq!(peers["configured"], serde_json::json!(["10.0.0.1:7470", "peer.example:7471"]));
    assert_eq!(peers["discovered"], serde_json::json!(["10.0.0.9:7470"]));
    stdout(&spore(&["disconnect", "10.0.0.1:7470"], &data));
    assert!(!spore(&["disconnect", "10.0.0.1:7470"], &data).status.success());
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(config.contains("peer.example:7471") && !config.contains("10.0.0.1"), "{config}");

    // `spore explorer` serves this data directory's store; a wrong directory is an error.
    let missing = spore(&["explorer", "--web-port", "0"], &dir.path().join("nowhere"));
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no node store"));
    let port = free_port().unwrap();
    let mut explorer = Command::new(SPORE)
        .args(["explorer", "--web-port", &port.to_string(), "--data-dir"])
        .arg(&data)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answer = String::new();
    wait_until(Duration::from_secs(20), "the explorer to answer", || {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
        let request = format!("GET /api/stat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        answer.clear();
        stream.write_all(request.as_bytes()).is_ok() && stream.read_to_string(&mut answer).is_ok()
    });
    let _ = explorer.kill();
    let _ = explorer.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""experiment_count":0"#), "{answer}");
}

#[test]
fn set_shows_providers_saves_masked_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let table = stdout(&spore(&["set"], &data));
    assert!(table.contains("built-in mutator") && table.contains("anthropic") && table.contains("groq"), "{table}");
    let saved = stdout(&spore(&["set", "openai", "sk-abcdefgh12345678wxyz"], &data));
    assert!(saved.contains("sk-abcde...wxyz") && !saved.contains("12345678"), "{saved}");
    let shown = stdout(&spore(&["set"], &data));
    assert!(shown.contains("provider: openai") && shown.contains("model:    gpt-4o") && !shown.contains("12345678"));
    let bad = spore(&["set", "custom", "key-0123456789abc"], &data);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--base-url"));
    stdout(&spore(&["set", "--clear"], &data));
    assert!(!data.join("llm.toml").exists());
}

#[test]
fn start_runs_a_background_node_that_stop_stops_and_log_shows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let port = free_port().unwrap().to_string();
    // Host and port come from config.toml when no flag gives them (Python ignores the file's port).
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("config.toml"), format!("host = \"127.0.0.1\"\nport = {port}\npeer = []\n")).unwrap();
    let args = ["start", "--no-train", "--no-explorer", "--no-bootstrap", "--grpc-port", "0", "--metrics-port", "0"];
    assert!(stdout(&spore(&args, &data)).contains("started a node"));
    let pid: i32 = std::fs::read_to_string(data.join("spore.pid")).unwrap().trim().parse().unwrap();
    wait_until(Duration::from_secs(20), "the node listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok()
    });
    let again = spore(&args, &data);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already runs"));
    let log = stdout(&spore(&["log", "-n", "20"], &data));
    assert!(log.contains("node listening"), "{log}");
    assert!(stdout(&spore(&["stop"], &data)).contains(&format!("stopped the node (pid {pid})")));
    assert!(!data.join("spore.pid").exists());
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap().is_empty()
    );
    assert!(stdout(&spore(&["stop"], &data)).contains("no node runs"));
}

#[test]
fn clean_asks_first_and_deletes_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    stdout(&spore(&["init"], &data));
    // No answer on stdin: nothing is deleted.
    let refused = spore(&["clean"], &data);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stdout).contains("nothing deleted"));
    assert!(data.join("identity").exists());
    let mut child = Command::new(SPORE)
        .args(["clean", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(!data.exists());
    stdout(&spore(&["init"], &data));
    stdout(&spore(&["clean", "--yes"], &data));
    assert!(!data.exists());
}

/// `SPORE_LOG_FORMAT=json` (or `--log-format json`): the running node logs one JSON object per
/// line, the event's fields at the top level.
#[test]
fn a_node_logs_json_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let node = spore_tests::nodes::SporeNode::start_with_env(
        Path::new(SPORE),
        tmp.path(),
        free_port().unwrap(),
        &[],
        &[("SPORE_LOG_FORMAT", "json")],
    );
    wait_until(Duration::from_secs(10), "the node to say it listens", || node.log().contains("node listening"));
    let log = node.log();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string() && event["message"].is_string(), "{line}");
    }
    let listening = log.lines().find(|l| l.contains("node listening")).unwrap();
    let event: Value = serde_json::from_str(listening).unwrap();
    assert_eq!(event["local"], format!("127.0.0.1:{}", node.port), "{listening}");
}

#![allow(clippy::unwrap_used)]
//! `spore-operator mirror` between a real `spore` agent and a real PostgreSQL: records gossiped
//! into the agent arrive in Postgres exactly once, through a database outage, a `kill -9` of
//! the mirror in the middle of its batches, and a restart of the agent.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use spore_spec::Identity;
use spore_tests::bins::workspace_bin;
use spore_tests::nodes::{SporeNode, wait_until};
use spore_tests::testenv::{TestEnv, TestEnvOptions};

struct Mirror {
    child: Child,
    metrics_port: u16,
}

impl Mirror {
    fn start(agent_port: u16, database_url: &str, log: &Path, token_file: &Path) -> Mirror {
        let metrics_port = spore_tests::nodes::free_port().unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(workspace_bin("spore-operator", "spore-operator"))
            .args(["mirror", "--agent", &format!("http://127.0.0.1:{agent_port}"), "--database-url", database_url])
            .args(["--batch", "500", "--max-backoff-seconds", "1"])
            .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
            .arg("--agent-token-file")
            .arg(token_file)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Mirror { child, metrics_port }
    }

    /// The value of a metric on `/metrics` (the one mirror's line, labelled with its agent).
    fn metric(&self, name: &str) -> Option<i64> {
        use std::io::Read;
        let mut stream = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix("{agent=\"")?.rsplit(' ').next()?.parse().ok())
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn query_i64(runtime: &tokio::runtime::Runtime, url: &str, sql: &str) -> Option<i64> {
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.ok()?;
        let task = tokio::spawn(connection);
        let value = client.query_one(sql, &[]).await.ok().map(|row| row.get::<_, i64>(0));
        drop(client);
        task.abort();
        value
    })
}

fn wait_for_rows(runtime: &tokio::runtime::Runtime, url: &str, want: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    while Instant::now() < deadline {
        last = query_i64(runtime, url, "SELECT count(*) FROM experiments");
        if last == Some(want) {
            return;
        }
        assert!(last.is_none_or(|n| n <= want), "more rows than records: {last:?} > {want}");
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "Postgres has {last:?} rows, want {want}; mirror log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn every_record_arrives_exactly_once_through_outages_kills_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut options = TestEnvOptions::new(tmp.path().join("env"));
    options.postgres = true;
    let mut env = TestEnv::up(&options).expect("PostgreSQL");
    let url = env.database_url().unwrap().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let spore = workspace_bin("spore-agent", "spore");
    let port = spore_tests::nodes::free_port().unwrap();
    // The agent's API requires a token; the mirror presents it.
    let token = tmp.path().join("token");
    std::fs::write(&token, "mirror-token").unwrap();
    let extra = ["--grpc-token-file".to_string(), token.display().to_string()];
    let mut node = SporeNode::start_with_args(&spore, &tmp.path().join("agent"), port, &[], &extra);
    let log = tmp.path().join("mirror.log");
    let mut mirror = Mirror::start(node.grpc_port, &url, &log, &token);
    let identity = Identity::generate();

    // 10,000 records gossiped into the agent arrive exactly once, byte for byte.
    let mut ids = node.push_records(&identity, 0..10_000, 10_000);
    wait_for_rows(&runtime, &url, 10_000, &log);
    assert_eq!(query_i64(&runtime, &url, "SELECT last_seq FROM mirror_cursors"), Some(10_000));
    let exported = node.export();
    let same = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let rows = client.query("SELECT payload FROM experiments ORDER BY source_seq", &[]).await.unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>() == exported
    });
    assert!(same, "Postgres holds the exact payloads, in the agent's order");

    // Postgres stops for 30 s while records keep arriving; after its restart the table converges.
    env.stop_service("postgres").unwrap();
    ids.extend(node.push_records(&identity, 10_000..12_000, 12_000));
    std::thread::sleep(Duration::from_secs(30));
    env.start_service("postgres").unwrap();
    wait_for_rows(&runtime, &url, 12_000, &log);

    // kill -9 in the middle of the batches, restart: the same.
    ids.extend(node.push_records(&identity, 12_000..17_000, 17_000));
    let deadline = Instant::now() + Duration::from_secs(60);
    while query_i64(&runtime, &url, "SELECT count(*) FROM experiments").is_none_or(|n| n <= 12_000) {
        assert!(Instant::now() < deadline, "the mirror did not resume after the outage");
        std::thread::sleep(Duration::from_millis(20));
    }
    mirror.kill9();
    let at_kill = query_i64(&runtime, &url, "SELECT count(*) FROM experiments").unwrap();
    mirror = Mirror::start(node.grpc_port, &url, &log, &token);
    wait_for_rows(&runtime, &url, 17_000, &log);

    // The agent restarts: the stream resumes from the cursor.
    node.stop();
    node.restart();
    ids.extend(node.push_records(&identity, 17_000..18_000, 18_000));
    wait_for_rows(&runtime, &url, 18_000, &log);

    assert_eq!(query_i64(&runtime, &url, "SELECT count(DISTINCT id) FROM experiments"), Some(18_000));
    assert_eq!(query_i64(&runtime, &url, "SELECT sum(records)::bigint FROM nodes"), Some(18_000), "no double counting");
    assert_eq!(query_i64(&runtime, &url, "SELECT last_seq FROM mirror_cursors"), Some(18_000));
    let all_present = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let rows = client.query("SELECT id FROM experiments", &[]).await.unwrap();
        let stored: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        ids.iter().all(|id| stored.contains(id))
    });
    assert!(all_present, "every pushed record is in Postgres");
    // The views work on what arrived: every record here is a root keep with val_bpb 1.0.
    assert_eq!(query_i64(&runtime, &url, "SELECT count(*) FROM frontier"), Some(18_000));
    assert_eq!(query_i64(&runtime, &url, "SELECT count(*) FROM best_per_gpu_class"), Some(1));
    eprintln!("the mirror was killed with {at_kill} rows written");
    // Its metrics: caught up (lag polled every 2 s), and the agent restart counted as an error.
    wait_until(Duration::from_secs(10), "the mirror reports no lag", || {
        mirror.metric("spore_mirror_cursor") == Some(18_000) && mirror.metric("spore_mirror_lag_records") == Some(0)
    });
    assert!(mirror.metric("spore_mirror_errors_total").unwrap() >= 1);
    assert_eq!(mirror.metric("spore_mirror_rows_written_total"), Some(18_000 - at_kill));
    drop(mirror);
    drop(node);
}

#[test]
fn an_empty_token_file_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "\n").unwrap();
    let out = Command::new(workspace_bin("spore-operator", "spore-operator"))
        .args(["mirror", "--database-url", "postgres://nobody@127.0.0.1:1/none", "--metrics-address", "127.0.0.1:0"])
        .arg("--agent-token-file")
        .arg(&token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `--log-format json`: every line the operator logs (on standard output) is one JSON object a
/// log pipeline can index (here the mirror's retries while its database is unreachable).
#[test]
fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "t\n").unwrap();
    let mut child = Command::new(workspace_bin("spore-operator", "spore-operator"))
        .args(["--log-format", "json", "mirror", "--agent", "http://127.0.0.1:1"])
        .args(["--database-url", "postgres://nobody@127.0.0.1:1/none", "--metrics-address", "127.0.0.1:0"])
        .arg("--agent-token-file")
        .arg(&token)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["level"].is_string() && event["message"].is_string() && event["timestamp"].is_string(), "{line}");
    }
    assert!(text.contains("\"message\":\"metrics listening\""), "{text}");
}

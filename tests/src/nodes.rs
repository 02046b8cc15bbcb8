//! Real node processes for end-to-end tests: our `spore run` and the Python reference node
//! (`tests/python/python_node.py`), on 127.0.0.1, each in its own data directory. Dropping a
//! handle stops its process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use crate::testenv::ports::free_port;

/// A temporary directory named after the test (removed when the handle drops), and its path.
pub fn test_dir(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir().expect("create a temporary directory");
    let path = tmp.path().to_path_buf();
    (tmp, path)
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, check: impl FnMut() -> bool) {
    wait_until_or(timeout, what, check, String::new);
}

/// [`wait_until`], adding `diagnose()` (logs, state) to the panic message.
pub fn wait_until_or(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    diagnose: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}\n{}", diagnose());
}

fn stop_child(child: &mut Child, signal: Signal) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `spore init --data-dir D`: the identity, store and config of a node that has not run yet.
pub fn init_identity(bin: &Path, data_dir: &Path) {
    let status = Command::new(bin).args(["init", "--data-dir"]).arg(data_dir).status().expect("run spore init");
    assert!(status.success(), "spore init --data-dir {} failed", data_dir.display());
}

/// A `spore run --no-train` process.
#[derive(Debug)]
pub struct SporeNode {
    child: Option<Child>,
    bin: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    /// The gRPC API's port (on 127.0.0.1), the same across restarts.
    pub grpc_port: u16,
    /// The `/metrics` port (on 127.0.0.1), the same across restarts.
    pub metrics_port: u16,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl SporeNode {
    /// Starts a gossip node listening on 127.0.0.1:`port` and waits until it listens.
    pub fn start(bin: &Path, data_dir: &Path, port: u16, peers: &[String]) -> SporeNode {
        SporeNode::start_with_args(bin, data_dir, port, peers, &[])
    }

    /// [`SporeNode::start`] with more `spore run` arguments.
    pub fn start_with_args(bin: &Path, data_dir: &Path, port: u16, peers: &[String], extra: &[String]) -> SporeNode {
        let mut with_no_train = vec!["--no-train".to_string()];
        with_no_train.extend(extra.iter().cloned());
        SporeNode::start_training(bin, data_dir, port, peers, &with_no_train)
    }

    /// [`SporeNode::start_with_args`] with environment variables (e.g. `KUBECONFIG`; with
    /// `SPORE_BOOTSTRAP_PEER` the node may dial that stand-in bootstrap peer).
    pub fn start_with_env(bin: &Path, data_dir: &Path, port: u16, extra: &[String], env: &[(&str, &str)]) -> SporeNode {
        let mut args = vec!["--no-train".to_string()];
        args.extend(extra.iter().cloned());
        SporeNode::start_training_with_env(bin, data_dir, port, &args, env)
    }

    /// A `spore run` that may train (unless `extra` says `--no-train`): it prepares its
    /// workspace before it listens.
    pub fn start_training(bin: &Path, data_dir: &Path, port: u16, peers: &[String], extra: &[String]) -> SporeNode {
        SporeNode::launch(bin, data_dir, port, peers, extra, Vec::new())
    }

    /// [`SporeNode::start_training`] with environment variables and no peers.
    pub fn start_training_with_env(
        bin: &Path,
        data_dir: &Path,
        port: u16,
        extra: &[String],
        env: &[(&str, &str)],
    ) -> SporeNode {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SporeNode::launch(bin, data_dir, port, &[], extra, env)
    }

    fn launch(
        bin: &Path,
        data_dir: &Path,
        port: u16,
        peers: &[String],
        extra: &[String],
        env: Vec<(String, String)>,
    ) -> SporeNode {
        // No explorer unless the test asks for one on its own port.
        let explorer = extra.iter().any(|a| a == "--web-port");
        // Never the public bootstrap peer; a stand-in only where the test names one.
        let mut args: Vec<String> = vec!["run".into()];
        if !env.iter().any(|(k, _)| k == "SPORE_BOOTSTRAP_PEER") {
            args.push("--no-bootstrap".into());
        }
        if !explorer {
            args.push("--no-explorer".into());
        }
        args.extend(["--host".into(), "127.0.0.1".into(), "--port".into(), port.to_string()]);
        args.extend(["--data-dir".into(), data_dir.display().to_string()]);
        let grpc_port = free_port().expect("a free port for gRPC");
        args.extend(["--grpc-port".into(), grpc_port.to_string()]);
        let metrics_port = free_port().expect("a free port for metrics");
        args.extend(["--metrics-port".into(), metrics_port.to_string()]);
        for peer in peers {
            args.extend(["--peer".into(), peer.clone()]);
        }
        args.extend(extra.iter().cloned());
        let mut node = SporeNode {
            child: None,
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            port,
            grpc_port,
            metrics_port,
            args,
            env,
        };
        node.restart();
        node
    }

    /// Starts the process again (after [`SporeNode::kill9`] or [`SporeNode::stop`]).
    pub fn restart(&mut self) {
        std::fs::create_dir_all(&self.data_dir).expect("create data dir");
        let log = std::fs::File::create(self.data_dir.join("node.log")).expect("create log");
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env("RUST_LOG", "info,spore_agent=debug")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start spore");
        self.child = Some(child);
        let port = self.port;
        // A training node prepares its workspace (probe, data) first.
        wait_until(Duration::from_secs(90), "spore to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `spore status --json`.
    pub fn status(&self) -> serde_json::Value {
        let output = Command::new(&self.bin)
            .args(["status", "--json", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("run spore status");
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub fn record_count(&self) -> u64 {
        self.status()["experiments"].as_u64().unwrap_or(0)
    }

    /// Sends the records `range` of [`crate::records::record`], signed by `identity`, as a 0.1.2
    /// peer would, and keeps the connection (reading what the node says) until the node holds
    /// `total` records: closing a socket with unread data resets it, and the node would lose
    /// what it had not read yet. Returns the records' ids.
    pub fn push_records(
        &self,
        identity: &spore_spec::Identity,
        range: std::ops::Range<i64>,
        total: u64,
    ) -> Vec<String> {
        let records: Vec<spore_spec::ExperimentRecord> = range
            .map(|n| {
                let mut r = crate::records::record(n);
                identity.sign_record(&mut r);
                r
            })
            .collect();
        self.push(&records, total)
    }

    /// Sends signed `records` over one connection and waits until the node stores `total`.
    pub fn push(&self, records: &[spore_spec::ExperimentRecord], total: u64) -> Vec<String> {
        use std::io::Write as _;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to the node: {e}\n{}", self.log()));
        let mut reader = stream.try_clone().expect("clone the socket");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let mut ids = Vec::new();
        let mut out = Vec::new();
        for r in records {
            ids.push(r.id.clone());
            let message = spore_spec::Message::Experiment(Box::new(r.clone()));
            out.extend(spore_spec::frame::frame_bytes(&message.encode_body()));
        }
        if let Err(e) = stream.write_all(&out).and_then(|()| stream.flush()) {
            panic!("send the records: {e}\n{}", self.log());
        }
        wait_until_or(
            Duration::from_secs(60),
            "the node stores the records",
            || self.record_count() >= total,
            || self.log(),
        );
        ids
    }

    /// A sample of the node's `/metrics`: `name` with its labels as written (e.g.
    /// `spore_records_refused_total{reason="bad_id"}`); `None` when the node does not answer or
    /// has no such line.
    pub fn metric(&self, name_and_labels: &str) -> Option<f64> {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.parse().ok())
    }

    /// `spore record export`: the stored payloads.
    pub fn export(&self) -> Vec<String> {
        let output = Command::new(&self.bin)
            .args(["record", "export", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("run spore record export");
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
    }

    /// SIGTERM and wait (a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Signal::SIGTERM);
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The node's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }
}

impl Drop for SporeNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real `sporemesh` node (0.1.2 unless [`PythonNodeOptions::version`] names another release).
#[derive(Debug)]
pub struct PythonNode {
    child: Child,
    pub data_dir: PathBuf,
    pub port: u16,
    /// The interpreter of its release's virtualenv.
    python: PathBuf,
}

/// How to start a [`PythonNode`].
#[derive(Debug, Clone, Default)]
pub struct PythonNodeOptions {
    pub peers: Vec<String>,
    /// Listen only (`start(skip_peer=True)`).
    pub genesis: bool,
    /// Records to publish after `publish_delay`, chained keeps with some discards.
    pub publish: usize,
    pub publish_delay: Duration,
    /// Offset of the published records' numbers (distinct nodes publish distinct records).
    pub offset: usize,
    /// Where it listens (default 127.0.0.1).
    pub host: Option<String>,
    /// The `sporemesh` release (default 0.1.2); later ones are installed by
    /// `scripts/python-ref.sh VERSION`.
    pub version: Option<&'static str>,
    /// Signed `verification` events to make and broadcast for its first records (0.3.10 and
    /// later).
    pub verify: usize,
}

impl PythonNode {
    pub fn start(data_dir: &Path, port: u16, options: &PythonNodeOptions) -> PythonNode {
        let python = crate::python::require_python_of(options.version.unwrap_or("0.1.2"));
        let mut command = Command::new(&python);
        command
            .arg(crate::python::script("python_node.py"))
            .args(["run", "--port", &port.to_string(), "--host", options.host.as_deref().unwrap_or("127.0.0.1")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--publish", &options.publish.to_string()])
            .args(["--publish-delay", &options.publish_delay.as_secs_f64().to_string()])
            .args(["--offset", &options.offset.to_string()])
            .args(["--verify", &options.verify.to_string()]);
        for peer in &options.peers {
            command.args(["--peer", peer]);
        }
        if options.genesis {
            command.arg("--genesis");
        }
        std::fs::create_dir_all(data_dir).expect("create data dir");
        let log = std::fs::File::create(data_dir.join("python.log")).expect("create log");
        let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().expect("start the Python node");
        let stdout = child.stdout.take().expect("stdout");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = ready_tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ready_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("READY") => break,
                Ok(_) => continue,
                Err(_) => {
                    let log = std::fs::read_to_string(data_dir.join("python.log")).unwrap_or_default();
                    panic!("the Python node did not start:\n{log}");
                }
            }
        }
        PythonNode { child, data_dir: data_dir.to_path_buf(), port, python }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The Python node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("python.log")).unwrap_or_default()
    }

    /// Ids of the records in the Python node's graph.
    pub fn ids(&self) -> Vec<String> {
        self.query("ids")
    }

    /// The records in the Python node's graph as its release writes them (keys sorted), one
    /// JSON object each.
    pub fn dump(&self) -> Vec<String> {
        self.query("dump")
    }

    /// Ids of the signed control events the Python node stored (0.3.10 and later).
    pub fn controls(&self) -> Vec<String> {
        self.query("controls")
    }

    /// Ids of the signed task manifests the Python node stored (0.5.0 and later).
    pub fn tasks(&self) -> Vec<String> {
        self.query("tasks")
    }

    fn query(&self, command: &str) -> Vec<String> {
        let output = Command::new(&self.python)
            .arg(crate::python::script("python_node.py"))
            .args([command, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("query the Python node's records");
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
    }
}

impl Drop for PythonNode {
    fn drop(&mut self) {
        stop_child(&mut self.child, Signal::SIGTERM);
    }
}

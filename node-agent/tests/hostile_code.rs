//! Hostile `train.py` files, run for real through the runner in the jail, each trying one attack
//! on the node that runs it: read its signing key, its LLM key or its environment; plant a
//! module where the harness or the next run would load it; unmount what hides the validation
//! split; reach the node's ports or the outside; outlive the run; fork a thousand processes;
//! fill the disk; take the machine's memory. Every attack must fail, and the runner must report
//! the run (never hang, never lose the node). The suite runs as whoever runs the tests and, when
//! that is root, once more as an ordinary user (uid 65534), where the jail is built from an
//! unprivileged user namespace and limits come from rlimits instead of cgroups.
//!
//! The scripts need only the system's `python3` (no torch).

#![allow(clippy::unwrap_used)] // a test fails loudly

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spore_agent::research::executor::{Executor, RunAbout, RunOutcome, RunSpec};
use spore_agent::research::jail::{Jail, Limits, PythonInstall};
use spore_agent::research::local::{LocalExecutor, Measure};

const PYTHON: &str = "/usr/bin/python3";
const SECRET_KEY: &str = "SECRET-SIGNING-KEY-6f1d";
const SECRET_LLM: &str = "SECRET-LLM-KEY-93ab";
const SECRET_ENV: &str = "SECRET-ENV-TOKEN-55c2";
const SECRET_VAL: &str = "SECRET-VALIDATION-SPLIT-0e7a";
/// Set in the environment of the process that runs the suite: `train.py` must not inherit it.
const SECRET_ENV_NAME: &str = "SPORE_TEST_API_TOKEN";
/// Marks the process that runs the suite (a child of the test, with the secret in its
/// environment).
const CHILD: &str = "SPORE_HOSTILE_SUITE";

const SUMMARY: &str = "print('---')\nprint('val_bpb:          1.5')\nprint('training_seconds: 1.0')\n\
    print('total_seconds:    1.0')\nprint('peak_vram_mb:     0.0')\nprint('mfu_percent:      0.00')\n\
    print('total_tokens_M:   0.1')\nprint('num_steps:        1')\nprint('num_params_M:     0.1')\n\
    print('depth:            1')\n";

/// A node's data directory as `spore run` lays it out, with secrets where an attacker looks.
struct Node {
    root: PathBuf,
    data: PathBuf,
    workspace: PathBuf,
    train_data: PathBuf,
    val: PathBuf,
}

impl Node {
    fn new(root: &Path) -> Node {
        let data = root.join("spore");
        let workspace = data.join("workspace");
        let train_data = root.join("cache/data/corpus-v1");
        let val = root.join("cache/data-val/corpus-v1");
        for dir in [&workspace, &data.join("identity"), &train_data, &val] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(data.join("identity/private_key"), SECRET_KEY).unwrap();
        std::fs::write(data.join("llm.toml"), format!("api_key = \"{SECRET_LLM}\"\n")).unwrap();
        std::fs::write(data.join("config.toml"), format!("token = \"{SECRET_LLM}\"\n")).unwrap();
        std::fs::write(workspace.join("prepare.py"), "VALUE = 7\n").unwrap();
        std::fs::write(workspace.join("train.py"), "raise SystemExit('the workspace copy never runs')\n").unwrap();
        std::fs::write(train_data.join("train.bin"), "training bytes").unwrap();
        std::fs::write(val.join("val.bin"), SECRET_VAL).unwrap();
        Node { root: root.to_path_buf(), data, workspace, train_data, val }
    }

    fn executor(&self) -> LocalExecutor {
        let install = PythonInstall::probe(Path::new(PYTHON), &[&self.data]).unwrap();
        let mut read_only = install.paths;
        read_only.push(self.train_data.clone());
        let limits =
            Limits { memory_mb: Some(512), processes: 64, file_size_mb: 64, open_files: 256, tmp_mb: 16, disk_mb: 100 };
        LocalExecutor {
            python: install.executable,
            workspace: self.workspace.clone(),
            runs_dir: self.data.join("run"),
            margin: Duration::from_secs(20),
            env: Vec::new(),
            show_progress: false,
            measure: Measure::Reported,
            jail: Some(Jail { read_only, writable: Vec::new(), limits }),
        }
    }

    /// Every file under the data directory but the runs, with its contents.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![self.data.clone(), self.root.join("cache")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.starts_with(self.data.join("run")) {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push((path.clone(), std::fs::read(&path).unwrap()));
                }
            }
        }
        files.sort();
        files
    }
}

fn run(executor: &LocalExecutor, label: &str, code: &str) -> (RunOutcome, String) {
    let spec =
        RunSpec { label: label.into(), code: code.into(), time_budget: 20, resource: 100, about: RunAbout::default() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let outcome = runtime.block_on(executor.run(&spec)).unwrap();
    let log = std::fs::read_to_string(&outcome.log).unwrap();
    eprintln!("--- {label}: {:?}\n{log}", outcome.error);
    (outcome, log)
}

/// The log holds no secret and no line the script prints when an attack worked.
fn assert_clean(label: &str, log: &str) {
    for secret in [SECRET_KEY, SECRET_LLM, SECRET_ENV, SECRET_VAL] {
        assert!(!log.contains(secret), "{label}: the run read {secret}:\n{log}");
    }
    assert!(!log.contains("LEAK"), "{label}: an attack worked:\n{log}");
}

fn suite() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::new(tmp.path());
    let executor = node.executor();
    let before = node.snapshot();
    let key = node.data.join("identity/private_key");
    let (llm, val) = (node.data.join("llm.toml"), node.val.join("val.bin"));

    // Secrets by every path: relative from the run directory, absolute, through /proc.
    let read = format!(
        r#"import glob, os
paths = ["../../identity/private_key", "../../llm.toml", "../../config.toml", {key:?}, {llm:?}, {val:?}]
paths += [p + {key:?} for p in glob.glob("/proc/*/root")]
paths += ["/proc/%d/root%s" % (os.getppid(), {key:?}), "/proc/1/root" + {llm:?}]
paths += glob.glob("/proc/*/environ")
for path in paths:
    try:
        content = open(path, "rb").read()
    except OSError:
        continue
    if b"SECRET" in content:
        print("LEAK", path, content[:200])
for name, value in os.environ.items():
    if "SECRET" in value or "TOKEN" in name:
        print("LEAK env", name, value)
print("environment:", sorted(os.environ))
{SUMMARY}"#
    );
    let (outcome, log) = run(&executor, "read-secrets", &read);
    assert!(outcome.success(), "{:?}", outcome.error);
    assert_clean("read-secrets", &log);

    // Plant modules in every place the harness, the evaluator or the next run could load from.
    let plant = format!(
        r#"import os, site, sys, sysconfig
targets = [".", "prepare.py", {workspace:?}, {data:?}, {run:?}, "/tmp", os.path.expanduser("~")]
targets += site.getsitepackages() + [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]]
for target in targets:
    for name in ["json.py", "sitecustomize.py", "prepare.py", "hashlib.py"]:
        path = target if target.endswith(".py") else os.path.join(target, name)
        try:
            with open(path, "w") as f:
                f.write("raise SystemExit('planted')\n")
            print("PLANTED", os.path.realpath(path))
        except OSError:
            pass
{SUMMARY}"#,
        workspace = node.workspace,
        data = node.data,
        run = node.data.join("run"),
    );
    let (outcome, log) = run(&executor, "plant", &plant);
    assert!(outcome.success(), "{:?}", outcome.error);
    assert_clean("plant", &log);
    // What it could write is its own run directory and its private /tmp: nothing it wrote
    // elsewhere exists outside the jail, and its copy of the harness is intact.
    let own = node.data.join("run/plant");
    for line in log.lines().filter_map(|l| l.strip_prefix("PLANTED ")) {
        let path = Path::new(line);
        assert!(path.starts_with(&own) || !path.exists(), "planted outside its own run: {line}");
    }
    assert_eq!(std::fs::read_to_string(own.join("prepare.py")).unwrap(), "VALUE = 7\n");
    let next = format!(
        "import json, prepare, hashlib\nprint('json from', json.__file__)\nprint('VALUE', prepare.VALUE)\n{SUMMARY}"
    );
    let (outcome, log) = run(&executor, "next", &next);
    assert!(outcome.success(), "the next run is not affected: {:?}", outcome.error);
    assert!(log.contains("json from /usr/lib/python3") && log.contains("VALUE 7"), "{log}");

    // No capabilities: nothing can be unmounted, remounted or mounted.
    let mounts = format!(
        r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for target in [b"/tmp", b"/usr", b"/proc", {data:?}.encode(), os.getcwd().encode()]:
    if libc.umount2(target, 2) == 0:
        print("LEAK unmounted", target)
    if libc.mount(b"none", target, b"tmpfs", 0, None) == 0:
        print("LEAK mounted over", target)
if os.path.exists({val:?}) or os.path.exists({val_dir:?}):
    print("LEAK the validation split is visible")
print("uid", os.getuid(), "caps", open("/proc/self/status").read().split("CapEff:")[1].split()[0])
{SUMMARY}"#,
        data = node.data.display().to_string(),
        val_dir = node.val,
    );
    let (outcome, log) = run(&executor, "mounts", &mounts);
    assert!(outcome.success(), "{:?}", outcome.error);
    assert_clean("mounts", &log);
    assert!(log.contains("caps 0000000000000000"), "{log}");

    // No network: not the node's own ports, not the outside (the jail's namespace has no route,
    // so nothing leaves it).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let network = format!(
        r#"import socket
for host, port in [("127.0.0.1", {port}), ("192.0.2.1", 80)]:
    try:
        socket.create_connection((host, port), timeout=2)
        print("LEAK connected to", host, port)
    except OSError as e:
        print("refused", host, e)
{SUMMARY}"#
    );
    let (outcome, log) = run(&executor, "network", &network);
    assert!(outcome.success(), "{:?}", outcome.error);
    assert_clean("network", &log);
    assert!(listener.accept().is_err(), "the node's port was reached from the jail");

    // A daemon that calls setsid dies with the run.
    let daemon = format!(
        r#"import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(600):
            with open("heartbeat", "a") as f:
                f.write(".")
            time.sleep(0.1)
    os._exit(0)
time.sleep(0.5)
{SUMMARY}"#
    );
    let (outcome, _) = run(&executor, "daemon", &daemon);
    assert!(outcome.success(), "{:?}", outcome.error);
    let heartbeat = node.data.join("run/daemon/heartbeat");
    let beats = std::fs::metadata(&heartbeat).unwrap().len();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(std::fs::metadata(&heartbeat).unwrap().len(), beats, "the daemon outlived its run");

    // A thousand processes: the limit (64) stops them.
    let fork = format!(
        r#"import subprocess
started = []
for _ in range(1000):
    try:
        started.append(subprocess.Popen(["sleep", "30"]))
    except OSError:
        break
print("STARTED", len(started))
{SUMMARY}"#
    );
    let (outcome, log) = run(&executor, "fork", &fork);
    let started: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("STARTED "))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no count: {:?}\n{log}", outcome.error));
    assert!(started < 64, "{started} processes started");

    // Filling the disk: one big file stops at the file-size limit, many files at the run
    // directory's limit (the runner kills the run).
    let big_file = format!(
        r#"try:
    with open("big", "wb") as f:
        for _ in range(200):
            f.write(b"x" * (1 << 20))
    print("LEAK wrote 200 MiB in one file")
except OSError as e:
    print("refused", e)
{SUMMARY}"#
    );
    let (_, log) = run(&executor, "big-file", &big_file);
    assert_clean("big-file", &log);
    let fill = "import itertools\nfor i in itertools.count():\n    with open('fill%d' % i, 'wb') as f:\n        f.write(b'x' * (32 << 20))\n";
    let (outcome, _) = run(&executor, "fill", fill);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("100 MiB limit"), "{error}");

    // Memory past the limit: the run fails, the node does not.
    let memory = format!(
        "chunks = []\nfor _ in range(64):\n    chunks.append(bytearray(64 << 20))\nprint('LEAK 4 GiB allocated')\n{SUMMARY}"
    );
    let (outcome, log) = run(&executor, "memory", &memory);
    assert!(!outcome.success(), "allocating 4 GiB under a 512 MiB limit succeeded:\n{log}");
    assert_clean("memory", &log);

    // Nothing of the node changed.
    assert_eq!(node.snapshot(), before, "a run changed the node's files");
}

/// Runs this test binary again, as `uid` when given, with a secret in its environment, to run
/// [`suite`] there.
fn suite_in_a_child(uid: Option<u32>) {
    // A copy every user can read and run.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("hostile_code");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let mut command = match uid {
        Some(uid) => {
            let mut setpriv = std::process::Command::new("setpriv");
            setpriv.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "--".into()]);
            setpriv.arg(&copy);
            setpriv
        }
        None => std::process::Command::new(&copy),
    };
    let status = command
        .args(["--exact", "every_hostile_train_py_fails_as_root_and_as_an_ordinary_user", "--nocapture"])
        .env(CHILD, "1")
        .env(SECRET_ENV_NAME, SECRET_ENV)
        .env("TMPDIR", "/tmp")
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the suite failed (uid {uid:?})");
}

#[test]
fn every_hostile_train_py_fails_as_root_and_as_an_ordinary_user() {
    if std::env::var_os(CHILD).is_some() {
        assert_eq!(std::env::var(SECRET_ENV_NAME).as_deref(), Ok(SECRET_ENV), "the node holds a secret");
        suite();
        return;
    }
    suite_in_a_child(None);
    if nix::unistd::geteuid().is_root() {
        suite_in_a_child(Some(65534));
    }
}

//! Service processes of a test environment: started detached with their output in a log file,
//! tracked by pid (never by name), checked against their recorded command line before any
//! signal so a recycled pid is never hit, stopped with SIGTERM and then SIGKILL.

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::TestEnvError;

/// How long a service gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Everything needed to (re)start a service the same way, persisted in the env's state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    /// Run as this user (name) when the harness runs as root; PostgreSQL refuses root.
    pub run_as: Option<String>,
    /// The TCP port that answers once the service listens.
    pub port: u16,
}

/// A running (or stopped) service and its pid.
#[derive(Debug, Serialize, Deserialize)]
pub struct Service {
    pub spec: ServiceSpec,
    pub pid: Option<i32>,
    /// The handle, when this process started it (needed to reap it).
    #[serde(skip)]
    child: Option<Child>,
}

/// Waits until `127.0.0.1:port` accepts connections.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Service {
    pub fn new(spec: ServiceSpec) -> Self {
        Service { spec, pid: None, child: None }
    }

    /// Starts the service in its own process group, output appended to its log.
    pub fn start(&mut self) -> Result<(), TestEnvError> {
        if self.is_running() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(|e| TestEnvError::io(format!("open {}", self.spec.log.display()), e))?;
        let err_log = log.try_clone().map_err(|e| TestEnvError::io("clone log handle", e))?;
        let mut command = match (&self.spec.run_as, nix::unistd::geteuid().is_root()) {
            (Some(user), true) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={user}"), format!("--regid={user}"), "--init-groups".into()]);
                c.args(&self.spec.argv);
                c
            }
            _ => {
                let mut c = Command::new(&self.spec.argv[0]);
                c.args(&self.spec.argv[1..]);
                c
            }
        };
        command.envs(self.spec.env.iter().cloned()).stdin(Stdio::null()).stdout(log).stderr(err_log);
        command.process_group(0);
        let child = command.spawn().map_err(|e| TestEnvError::io(format!("start {}", self.spec.name), e))?;
        self.pid = Some(child.id() as i32);
        self.child = Some(child);
        Ok(())
    }

    /// True if the recorded pid is alive and still runs our command.
    pub fn is_running(&mut self) -> bool {
        if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
            self.child = None;
            self.pid = None;
            return false;
        }
        let Some(pid) = self.pid else { return false };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let program = Path::new(&self.spec.argv[0]).file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = program.is_some_and(|p| String::from_utf8_lossy(&cmdline).contains(&p));
        // A zombie's cmdline is empty: it has exited.
        ours && !cmdline.is_empty()
    }

    /// SIGTERM, then SIGKILL after the grace period; reaps it when it is our child.
    pub fn stop(&mut self) {
        if !self.is_running() {
            self.pid = None;
            return;
        }
        let Some(pid) = self.pid else { return };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_running() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        } else {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && self.is_running() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.pid = None;
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

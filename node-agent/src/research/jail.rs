//! [`Jail`]: where untrusted code runs — every `train.py` (our own loop's candidates, a
//! stranger's code re-run for verification, `spore exec`) and the evaluator that loads the model
//! such code exported.
//!
//! Built on bubblewrap (Debian's `bubblewrap`), the sandbox Flatpak runs untrusted applications
//! in, rather than on mounts of our own: it has been attacked for years, works the same as root
//! and as an ordinary user (unprivileged user namespaces), and leaves nothing mounted on the host.
//! The child gets a new, empty root with only:
//! - `/usr` (and the `/bin`, `/lib*` links), `/etc/ld.so.cache`, a fresh `/proc` and a minimal
//!   `/dev` (plus `/dev/nvidia*` where the machine has them);
//! - the paths it is given read-only (the Python installation, the training data, the harness)
//!   or read-write (its run directory), each at its own path;
//! - a private `/tmp` of bounded size, which is also `$HOME`; the rest of the new root is
//!   read-only.
//!
//! It never sees the data directory (identity, `llm.toml`, the store, other runs), the caller's
//! `$HOME`, or the validation split. Its environment is cleared (no API keys, no tokens), it has
//! no network (a new network namespace holds only a loopback nobody listens on), no capabilities
//! (it runs as uid 65534 of its own user namespace and cannot mount or unmount anything), and its
//! own PID namespace: when the run ends, by exit or at the deadline, every process in it dies,
//! daemons that called `setsid` included. Limits ([`Limits`]): memory, processes, file size,
//! open files, `/tmp` size; the run directory's size is watched by the runner.
//!
//! Where the jail cannot be built, [`check`] says why and the caller refuses to run untrusted code
//! (unless the user passed `--unsandboxed`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sandbox program.
const BWRAP: &str = "bwrap";
/// The user the code runs as inside its user namespace.
const JAIL_UID: &str = "65534";

/// Resource limits of one jailed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory of the whole run, MiB: a memory cgroup where we may make one (root), else the
    /// address-space limit of each process (not with a GPU: CUDA reserves far more address space
    /// than it uses). `None`: unlimited.
    pub memory_mb: Option<u64>,
    /// Processes and threads of the run at once.
    pub processes: u64,
    /// Largest file the run may write, MiB.
    pub file_size_mb: u64,
    /// Files open at once per process.
    pub open_files: u64,
    /// Size of the private `/tmp`, MiB (held in memory).
    pub tmp_mb: u64,
    /// Size of the run directory, MiB, enforced by the runner while the run goes on.
    pub disk_mb: u64,
}

impl Default for Limits {
    /// Room for a training run: three quarters of the machine's memory, 4,096 threads (torch
    /// starts one per core per pool, `torch.compile` a worker per core), files up to 8 GiB,
    /// a 16 GiB run directory, a 2 GiB `/tmp` (the compiler's caches).
    fn default() -> Self {
        Limits {
            memory_mb: total_memory_mb().map(|mb| mb * 3 / 4),
            processes: 4096,
            file_size_mb: 8 * 1024,
            open_files: 4096,
            tmp_mb: 2 * 1024,
            disk_mb: 16 * 1024,
        }
    }
}

/// The machine's memory, from `/proc/meminfo`.
fn total_memory_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? / 1024)
}

/// What a jailed program may see and use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jail {
    /// Files and directories visible read-only, each at its own path.
    pub read_only: Vec<PathBuf>,
    /// Directories visible read-write, each at its own path.
    pub writable: Vec<PathBuf>,
    pub limits: Limits,
}

/// Whether a jail can be built on this machine: `Err` says why not and what to change
/// (checked once per process, by building one).
pub fn check() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let output = std::process::Command::new(BWRAP)
                .args(base_args(&Limits { tmp_mb: 1, ..Limits::default() }))
                .args(["--", "/usr/bin/true"])
                .env_clear()
                .stdin(std::process::Stdio::null())
                .output();
            match output {
                Err(e) => Err(format!(
                    "cannot run {BWRAP} ({e}): install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; \
                     Fedora: dnf install bubblewrap)"
                )),
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!(
                    "{BWRAP} cannot create the jail's namespaces here ({}): allow unprivileged user namespaces \
                     (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or on Ubuntu \
                     kernel.apparmor_restrict_unprivileged_userns=0); in a container, allow the unshare, mount and \
                     pivot_root system calls",
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        })
        .clone()
}

/// The options every jail has: namespaces, identity, the system's read-only files, `/proc`,
/// `/dev`, `/tmp`.
fn base_args(limits: &Limits) -> Vec<String> {
    let mut args: Vec<String> = [
        "--unshare-user",
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--uid",
        JAIL_UID,
        "--gid",
        JAIL_UID,
        "--hostname",
        "spore-jail",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .map(String::from)
    .to_vec();
    // Merged-/usr systems link these into /usr; others have them as directories.
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        match std::fs::read_link(dir) {
            Ok(target) => args.extend(["--symlink".into(), target.display().to_string(), dir.into()]),
            Err(_) if Path::new(dir).is_dir() => args.extend(["--ro-bind".into(), dir.into(), dir.into()]),
            Err(_) => {}
        }
    }
    args.extend(["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"].map(String::from));
    args.extend(["--proc", "/proc", "--dev", "/dev"].map(String::from));
    for device in gpu_devices() {
        let device = device.display().to_string();
        args.extend(["--dev-bind".into(), device.clone(), device]);
    }
    if has_gpu() {
        args.extend(["--ro-bind", "/sys", "/sys"].map(String::from));
    }
    args.extend(["--size".into(), (limits.tmp_mb * 1024 * 1024).to_string(), "--tmpfs".into(), "/tmp".into()]);
    args
}

/// `/dev/nvidia*` (the GPUs, their control and UVM devices).
fn gpu_devices() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut devices: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("nvidia"))
        .map(|e| e.path())
        .filter(|p| !p.is_dir())
        .collect();
    devices.sort();
    devices
}

fn has_gpu() -> bool {
    Path::new("/dev/nvidiactl").exists()
}

/// Environment variables passed into the jail when the node has them (the GPU runtime's).
const PASSED_ENV: [&str; 3] = ["CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"];

impl Jail {
    /// A command that runs `program` in the jail with `cwd` as its working directory. Its
    /// environment starts empty but for `PATH`, `HOME` and `TMPDIR` (the private `/tmp`), the
    /// locale and the GPU runtime's variables: add what the program needs with `.env()`. Keep
    /// the returned [`JailRun`] until the program has exited (it removes the run's cgroups).
    pub fn command(&self, program: &Path, cwd: &Path) -> Result<(tokio::process::Command, JailRun), String> {
        check()?;
        let run = JailRun::new(&self.limits);
        // `sh` moves itself into the run's cgroups, `prlimit` sets the rlimits, both `exec` on:
        // what bwrap starts inherits all of it.
        let mut command = tokio::process::Command::new("/bin/sh");
        command.args(["-c", ENTER, "sh"]).args(run.procs_files()).arg("--");
        command.arg("prlimit").args(run.rlimits(&self.limits)).arg("--");
        command.arg(BWRAP).args(base_args(&self.limits));
        // Parents before children, so a read-only file inside a writable directory stays
        // read-only; at the same path, read-only wins.
        let mut binds: Vec<(&Path, bool)> = self
            .writable
            .iter()
            .map(|p| (p.as_path(), true))
            .chain(self.read_only.iter().map(|p| (p.as_path(), false)))
            .filter(|(p, _)| p.exists())
            .collect();
        binds.sort_by_key(|(p, writable)| (p.components().count(), !writable));
        for (path, writable) in binds {
            command.arg(if writable { "--bind" } else { "--ro-bind" }).arg(path).arg(path);
        }
        // The new root (a tmpfs holding the mount points' parents) becomes read-only: only the
        // writable binds and the size-limited /tmp take writes.
        command.args(["--remount-ro", "/"]).arg("--chdir").arg(cwd).arg("--").arg(program);
        command.env_clear();
        command.envs([
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/tmp"),
            ("TMPDIR", "/tmp"),
            ("USER", "spore"),
            ("LOGNAME", "spore"),
            ("LANG", "C.UTF-8"),
        ]);
        for name in PASSED_ENV {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        Ok((command, run))
    }
}

/// Writes the shell's pid into each file argument (the run's `cgroup.procs`) up to `--`, then
/// runs the rest.
const ENTER: &str = r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@""#;

/// The cgroups of one run (as root, where cgroup v1's `pids` and `memory` controllers can be
/// written), removed when dropped.
#[derive(Debug, Default)]
pub struct JailRun {
    pids: Option<PathBuf>,
    memory: Option<PathBuf>,
}

impl JailRun {
    fn new(limits: &Limits) -> JailRun {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!("spore-jail-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let make = |controller: &str, file: &str, value: u64| -> Option<PathBuf> {
            let dir = Path::new("/sys/fs/cgroup").join(controller).join(&name);
            std::fs::create_dir(&dir).ok()?;
            match std::fs::write(dir.join(file), value.to_string()) {
                Ok(()) => Some(dir),
                Err(_) => {
                    let _ = std::fs::remove_dir(&dir);
                    None
                }
            }
        };
        if !nix::unistd::geteuid().is_root() {
            return JailRun::default();
        }
        JailRun {
            pids: make("pids", "pids.max", limits.processes),
            memory: limits.memory_mb.and_then(|mb| make("memory", "memory.limit_in_bytes", mb * 1024 * 1024)),
        }
    }

    /// The `cgroup.procs` files the child moves itself into.
    fn procs_files(&self) -> Vec<PathBuf> {
        [&self.pids, &self.memory].into_iter().flatten().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// `prlimit` options for the rlimits the child sets before it becomes bwrap. The process
    /// count is a cgroup's where there is one; otherwise `RLIMIT_NPROC`, which counts every
    /// task of the user (the node's own threads too), so it is set that far above what the user
    /// runs now. Memory is the address space only where no cgroup holds it and no GPU needs the
    /// room.
    fn rlimits(&self, limits: &Limits) -> Vec<String> {
        let mib = 1024 * 1024;
        let mut out = vec![
            format!("--fsize={}", limits.file_size_mb * mib),
            format!("--nofile={}", limits.open_files),
            "--core=0".to_string(),
        ];
        if self.pids.is_none() {
            out.push(format!("--nproc={}", settled_tasks_of_this_user() + limits.processes));
        }
        if let (None, Some(mb), false) = (&self.memory, limits.memory_mb, has_gpu()) {
            out.push(format!("--as={}", mb * mib));
        }
        out
    }
}

impl Drop for JailRun {
    fn drop(&mut self) {
        // The PID namespace is gone with the run; its tasks may take a moment to leave. The
        // retries run on a thread of their own: this drop happens inside async runners.
        let dirs: Vec<PathBuf> = [self.pids.take(), self.memory.take()].into_iter().flatten().collect();
        if dirs.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            for dir in dirs {
                for _ in 0..50 {
                    if std::fs::remove_dir(&dir).is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        });
    }
}

/// [`tasks_of_this_user`] once it has held still for 75 ms (at most about 1 s). The tasks of a
/// run that just ended, and the threads of a runtime just dropped, take a moment to go: counted
/// while they go, each would be one more process the next run may start.
fn settled_tasks_of_this_user() -> u64 {
    let mut last = tasks_of_this_user();
    let mut still = 0;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(25));
        let now = tasks_of_this_user();
        if now == last {
            still += 1;
            if still == 3 {
                break;
            }
        } else {
            (last, still) = (now, 0);
        }
    }
    last
}

/// Tasks (threads) of this process's real user, the count `RLIMIT_NPROC` is checked against.
fn tasks_of_this_user() -> u64 {
    let uid = nix::unistd::getuid().as_raw().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(uid.as_str()))
        })
        .map(|status| {
            status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(1)
        })
        .sum()
}

/// A Python installation as the jail must show it: the interpreter to run, and the directories
/// it loads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInstall {
    /// `sys.executable`: the interpreter itself, past any launcher script (pyenv's shims).
    pub executable: PathBuf,
    /// Its prefixes and `sys.path` entries, without nesting.
    pub paths: Vec<PathBuf>,
}

const PYTHON_PROBE: &str = "import json, os, sys\n\
print(json.dumps([sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix, \
sys.exec_prefix, sys.base_exec_prefix] + sys.path))";

impl PythonInstall {
    /// Asks `python` (isolated mode, empty environment but `PATH`) where it lives. Directories
    /// that hold `private` (the data directory) or are the user's home are refused: showing
    /// them would show everything.
    pub fn probe(python: &Path, private: &[&Path]) -> Result<PythonInstall, String> {
        let output = std::process::Command::new(python)
            .args(["-I", "-c", PYTHON_PROBE])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !output.status.success() {
            return Err(format!("{} failed: {}", python.display(), String::from_utf8_lossy(&output.stderr).trim()));
        }
        let listed: Vec<String> = serde_json::from_slice(&output.stdout)
            .map_err(|e| format!("{} printed no path list: {e}", python.display()))?;
        let executable = PathBuf::from(listed.first().ok_or("no sys.executable")?);
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in listed.iter().filter(|p| !p.is_empty()).map(PathBuf::from) {
            let exists = entry.exists();
            let exposes = private.iter().any(|p| p.starts_with(&entry)) || home.as_deref() == Some(entry.as_path());
            if !exists || !entry.is_absolute() || entry == Path::new("/") {
                continue;
            }
            if exposes {
                return Err(format!(
                    "{} loads from {}, which holds private files of the node: use an interpreter installed elsewhere",
                    python.display(),
                    entry.display()
                ));
            }
            paths.push(entry);
        }
        paths.sort();
        paths.dedup();
        let nested: Vec<PathBuf> =
            paths.iter().filter(|p| paths.iter().any(|q| q != *p && p.starts_with(q))).cloned().collect();
        paths.retain(|p| !nested.contains(p));
        Ok(PythonInstall { executable, paths })
    }
}

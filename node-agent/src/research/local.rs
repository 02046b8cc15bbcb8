//! [`LocalExecutor`]: runs `python -u train.py` on this machine.
//!
//! Every run gets its own directory (`<runs>/<label>/`) with the harness files copied from the
//! workspace and the run's own `train.py`, so the loop, spot-checks and the user's workspace
//! never overwrite each other's code. The child runs in its own process group with stdout and
//! stderr merged into one pipe (so the log keeps their order), every line goes to `run.log` as it
//! arrives, and a timer — not the arrival of output — enforces the deadline
//! (`time_budget + margin`): a run that hangs silently is killed with its whole process group.
//! Dropping the future (shutdown) kills the group too.
//!
//! The child runs in a [`Jail`] unless the user opted out (`--unsandboxed`): it sees its run
//! directory (read-write, its size watched here), the harness files in it read-only, the Python
//! installation and the training data read-only, and nothing else of the machine; no network,
//! no capabilities, its own PID namespace, resource limits. Jailed or not, its environment is
//! only what the runner sets (no API keys or tokens of the node reach it).
//!
//! How the run is measured is its [`Measure`]. With an [`Evaluator`], after the child exits the
//! model it exported (`SPORE_MODEL_PATH`, in the run directory) is measured by the evaluator and
//! then deleted. The `val_bpb` the script printed is kept only as a hint; a large difference is
//! logged and written to `run.log`.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::evaluator::Evaluator;
use super::executor::{Executor, ExecutorError, RunOutcome, RunSpec, valid_label};
use super::jail::{Jail, JailRun};
use super::progress::{ProgressReporter, parse_progress};
use super::summary::{Summary, parse_summary};

/// Output kept in memory for the summary and the crash tail (the log file has all of it).
const TAIL_BYTES: usize = 256 * 1024;
/// Lines of the log that explain a crash.
const CRASH_TAIL_LINES: usize = 10;
/// How long the output may keep coming after the child exited (stray grandchildren).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// A printed `val_bpb` further than this from the measured one is reported as a mismatch.
const HINT_TOLERANCE: f64 = 0.01;
/// The model file's name in the run directory.
pub const MODEL_FILE: &str = "model.pt";

/// Where a run's `val_bpb` comes from.
#[derive(Debug, Clone)]
pub enum Measure {
    /// The value the script prints (Python 0.1.2's behaviour).
    Reported,
    /// The trusted evaluator's measurement of the exported model, which is then deleted.
    Evaluator(Box<Evaluator>),
    /// Nothing yet: the exported model is kept in the run directory for an evaluation step that
    /// runs elsewhere (a training pod's evaluation container); the run succeeds without a metric.
    ExportOnly,
}

/// Runs experiments as child processes.
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// The Python interpreter (with torch).
    pub python: PathBuf,
    /// Where the harness (`prepare.py` and the other `*.py` but `train.py`) is copied from.
    pub workspace: PathBuf,
    /// Parent of the per-run directories.
    pub runs_dir: PathBuf,
    /// Time allowed beyond the budget (start-up, compilation, evaluation).
    pub margin: Duration,
    /// The child's environment beyond what the runner sets (it inherits nothing of the node's).
    pub env: Vec<(String, String)>,
    /// Show a progress bar / progress lines.
    pub show_progress: bool,
    /// How the run is measured.
    pub measure: Measure,
    /// Where the child runs; `None` only when the user chose `--unsandboxed`.
    pub jail: Option<Jail>,
}

/// How often the run directory's size is checked against the jail's disk limit.
const DISK_CHECK: Duration = Duration::from_millis(250);
/// Files a run directory may hold (a run that makes millions of empty files fills the disk's
/// inode table, not its bytes).
const MAX_RUN_FILES: u64 = 100_000;

/// Kills the process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

impl LocalExecutor {
    fn prepare_dir(&self, spec: &RunSpec) -> Result<PathBuf, ExecutorError> {
        if !valid_label(&spec.label) {
            return Err(ExecutorError::BadLabel(spec.label.clone()));
        }
        let dir = self.runs_dir.join(&spec.label);
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ExecutorError::Io { path, source }
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let entries = std::fs::read_dir(&self.workspace).map_err(io(&self.workspace))?;
        for entry in entries {
            let entry = entry.map_err(io(&self.workspace))?;
            let name = entry.file_name();
            let is_harness = Path::new(&name).extension().is_some_and(|e| e == "py") && name != "train.py";
            if is_harness && entry.file_type().map_err(io(&entry.path()))?.is_file() {
                std::fs::copy(entry.path(), dir.join(&name)).map_err(io(&entry.path()))?;
            }
        }
        std::fs::write(dir.join("train.py"), &spec.code).map_err(io(&dir))?;
        Ok(dir)
    }
}

impl Executor for LocalExecutor {
    async fn run(&self, spec: &RunSpec) -> Result<RunOutcome, ExecutorError> {
        let dir = self.prepare_dir(spec)?;
        let log_path = dir.join("run.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|source| ExecutorError::Io { path: log_path.display().to_string(), source })?;
        let (reader, writer) = std::io::pipe().map_err(|source| ExecutorError::Io { path: "pipe".into(), source })?;
        let writer_err = writer.try_clone().map_err(|source| ExecutorError::Io { path: "pipe".into(), source })?;
        let (mut command, _jail_run) = self.command(&dir)?;
        command
            .env("SPORE_MODEL_PATH", dir.join(MODEL_FILE))
            .arg("-u")
            .arg("train.py")
            .current_dir(&dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("SPORE_TIME_BUDGET", spec.time_budget.to_string())
            .env("SPORE_RESOURCE", spec.resource.clamp(1, 100).to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_err))
            .process_group(0);
        let spawned = command.spawn();
        // The command holds the pipe's write ends: drop it so the pipe ends with the child.
        drop(command);
        let mut child =
            spawned.map_err(|source| ExecutorError::Spawn { program: self.python.display().to_string(), source })?;
        let mut guard = GroupGuard(child.id().map(|pid| pid as i32));
        let reporter = self.show_progress.then(|| Arc::new(ProgressReporter::new(&spec.label)));
        let reading = tokio::task::spawn_blocking({
            let reporter = reporter.clone();
            move || read_output(reader, log, reporter.as_deref())
        });

        let deadline = Duration::from_secs(spec.time_budget) + self.margin;
        let disk_mb = self.jail.as_ref().map(|j| j.limits.disk_mb);
        let waited = tokio::time::timeout(deadline, async {
            tokio::select! {
                status = child.wait() => Ok(status),
                over = over_quota(&dir, disk_mb) => Err(over),
            }
        })
        .await;
        let mut over_disk = None;
        let (exit_code, killed_at_deadline) = match waited {
            Ok(Ok(Ok(status))) => (status.code().or_else(|| signal_of(&status).map(|s| 128 + s)), false),
            Ok(Ok(Err(e))) => return Err(ExecutorError::Other(format!("waiting for train.py: {e}"))),
            Ok(Err(ref over)) => {
                guard.kill();
                let _ = child.wait().await;
                over_disk = Some(over.clone());
                (None, false)
            }
            Err(_) => {
                guard.kill();
                let _ = child.wait().await;
                (None, true)
            }
        };
        // Whatever the child left behind in its group goes with it.
        let signal = match &waited {
            Ok(Ok(Ok(status))) => signal_of(status),
            _ => None,
        };
        guard.kill();
        let tail = match tokio::time::timeout(DRAIN_TIMEOUT, reading).await {
            Ok(Ok(tail)) => tail,
            _ => String::new(),
        };
        if let Some(reporter) = &reporter {
            reporter.finish();
        }

        let parsed = parse_summary(&tail);
        let mut val_bpb = None;
        let error = if let Some(over) = over_disk {
            Some(format!("killed: {over}\n{}", last_lines(&tail, CRASH_TAIL_LINES)))
        } else if killed_at_deadline {
            Some(format!(
                "killed at the deadline: no result after {} s (time budget {} s + margin {} s)\n{}",
                deadline.as_secs(),
                spec.time_budget,
                self.margin.as_secs(),
                last_lines(&tail, CRASH_TAIL_LINES)
            ))
        } else if let Some(signal) = signal {
            let name = Signal::try_from(signal).map(|s| s.as_str()).unwrap_or("unknown");
            Some(format!("terminated by signal {signal} ({name})\n{}", last_lines(&tail, CRASH_TAIL_LINES)))
        } else if exit_code != Some(0) {
            Some(format!(
                "train.py exited with code {}\n{}",
                exit_code.unwrap_or(-1),
                last_lines(&tail, CRASH_TAIL_LINES)
            ))
        } else {
            match &parsed {
                Ok(summary) => match self.measured(&dir, summary, &log_path).await {
                    Ok(measured) => {
                        val_bpb = measured;
                        None
                    }
                    Err(e) => Some(e),
                },
                Err(e) => Some(format!("train.py exited 0 but {e}")),
            }
        };
        // The model has served its purpose; experiments must not fill the disk with them.
        if !matches!(self.measure, Measure::ExportOnly) {
            let _ = std::fs::remove_file(dir.join(MODEL_FILE));
        }
        Ok(RunOutcome {
            summary: parsed.ok(),
            val_bpb,
            error,
            exit_code,
            log: log_path.display().to_string(),
            published: None,
        })
    }
}

impl LocalExecutor {
    /// The command that runs `train.py` in `dir`: in the jail (its run directory writable, the
    /// harness files in it read-only) or, opted out, directly; either way with a clean
    /// environment.
    fn command(&self, dir: &Path) -> Result<(tokio::process::Command, Option<JailRun>), ExecutorError> {
        let Some(jail) = &self.jail else {
            let mut command = tokio::process::Command::new(&self.python);
            command.current_dir(dir).env_clear();
            for name in ["PATH", "HOME", "LANG", "CUDA_VISIBLE_DEVICES"] {
                if let Some(value) = std::env::var_os(name) {
                    command.env(name, value);
                }
            }
            return Ok((command, None));
        };
        let mut jail = jail.clone();
        jail.writable.push(dir.to_path_buf());
        let entries =
            std::fs::read_dir(dir).map_err(|source| ExecutorError::Io { path: dir.display().to_string(), source })?;
        let harness = entries.flatten().map(|e| e.path()).filter(|p| p.file_name() != Some(OsStr::new("train.py")));
        jail.read_only.extend(harness);
        let (command, run) = jail.command(&self.python, dir).map_err(ExecutorError::Other)?;
        Ok((command, Some(run)))
    }

    /// The run's metric as its [`Measure`] says (none for [`Measure::ExportOnly`]).
    async fn measured(&self, dir: &Path, summary: &Summary, log_path: &Path) -> Result<Option<f64>, String> {
        let evaluator = match &self.measure {
            Measure::Reported => {
                return match summary.reported_val_bpb {
                    Some(v) if v > 0.0 => Ok(Some(v)),
                    Some(v) => Err(format!("train.py reported val_bpb {v} (must be positive)")),
                    None => Err("train.py printed no val_bpb in its summary".into()),
                };
            }
            Measure::ExportOnly if dir.join(MODEL_FILE).is_file() => return Ok(None),
            Measure::ExportOnly => return Err("train.py exported no model (call export_model(model))".into()),
            Measure::Evaluator(evaluator) => evaluator,
        };
        let evaluation = evaluator.evaluate(&dir.join(MODEL_FILE)).await.map_err(|e| format!("evaluation: {e}"))?;
        let mut note = format!(
            "[spore] evaluator: val_bpb {:.6} ({} bytes, {:.1} s)",
            evaluation.val_bpb, evaluation.bytes, evaluation.seconds
        );
        if let Some(claimed) = summary.reported_val_bpb
            && (claimed - evaluation.val_bpb).abs() > HINT_TOLERANCE
        {
            tracing::warn!(
                claimed,
                measured = evaluation.val_bpb,
                "train.py printed a val_bpb the evaluator does not confirm; the record carries the measurement"
            );
            note.push_str(&format!("; train.py claimed {claimed:.6}: MISMATCH, ignored"));
        }
        if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(log_path) {
            let _ = writeln!(log, "{note}");
        }
        Ok(Some(evaluation.val_bpb))
    }
}

/// Resolves (with the reason) once `dir` holds more than `disk_mb` MiB or [`MAX_RUN_FILES`]
/// files; never without a limit.
async fn over_quota(dir: &Path, disk_mb: Option<u64>) -> String {
    let Some(disk_mb) = disk_mb else { return std::future::pending().await };
    loop {
        tokio::time::sleep(DISK_CHECK).await;
        let walk = dir.to_path_buf();
        let Ok((bytes, files)) = tokio::task::spawn_blocking(move || usage(&walk)).await else { continue };
        if bytes > disk_mb * 1024 * 1024 {
            return format!("the run directory passed its {disk_mb} MiB limit ({} MiB)", bytes / (1024 * 1024));
        }
        if files > MAX_RUN_FILES {
            return format!("the run directory passed {MAX_RUN_FILES} files");
        }
    }
}

/// Bytes and files under `dir` (stopping early past the file limit): each file counts its
/// length or its allocated blocks, whichever is more. Symbolic links are not followed.
fn usage(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            files += 1;
            if files > MAX_RUN_FILES {
                return (bytes, files);
            }
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) => bytes += meta.len().max(std::os::unix::fs::MetadataExt::blocks(&meta) * 512),
                Err(_) => {}
            }
        }
    }
    (bytes, files)
}

fn signal_of(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Copies the child's output to the log line by line (`\r` and `\n` both end a line), reports
/// progress, and returns the last [`TAIL_BYTES`] of it.
fn read_output(mut reader: std::io::PipeReader, log: std::fs::File, reporter: Option<&ProgressReporter>) -> String {
    let mut log = std::io::BufWriter::new(log);
    let mut tail: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let end_line = |line: &mut Vec<u8>, tail: &mut Vec<u8>, log: &mut std::io::BufWriter<std::fs::File>| {
        let text = String::from_utf8_lossy(line);
        if !text.trim().is_empty() {
            if let (Some(reporter), Some(progress)) = (reporter, parse_progress(&text)) {
                reporter.update(&progress);
            }
            let _ = writeln!(log, "{}", text.trim_end());
            let _ = log.flush();
            tail.extend_from_slice(text.trim_end().as_bytes());
            tail.push(b'\n');
            if tail.len() > 2 * TAIL_BYTES {
                tail.drain(..tail.len() - TAIL_BYTES);
            }
        }
        line.clear();
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &byte in &buf[..n] {
            if byte == b'\n' || byte == b'\r' {
                end_line(&mut line, &mut tail, &mut log);
            } else if line.len() < 64 * 1024 {
                line.push(byte);
            }
        }
    }
    end_line(&mut line, &mut tail, &mut log);
    let start = tail.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&tail[start..]).into_owned()
}

/// The last `n` non-empty lines, the explanation of a crash.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

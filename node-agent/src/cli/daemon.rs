//! `spore start`, `spore stop`, `spore log`: a node in the background, with its pid and log in
//! the data directory it was given (`<data_dir>/spore.pid`, `<data_dir>/spore.log`; Python
//! always uses `~/.spore`). A pid is only signalled after checking that it still runs `spore`.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::DataDir;
use super::run::RunArgs;

/// How long `stop` waits for the node to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    data_dir: DataDir,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing what the node writes.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Lines to print from the end.
    #[arg(short = 'n', long, default_value_t = 50)]
    tail: usize,
    #[command(flatten)]
    data_dir: DataDir,
}

fn pid_path(data_dir: &Path) -> PathBuf {
    data_dir.join("spore.pid")
}

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("spore.log")
}

/// The pid in the pid file, if that process is alive and is a `spore` process.
fn running_pid(data_dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_path(data_dir)).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = cmdline.split(|b| *b == 0).next().is_some_and(|argv0| String::from_utf8_lossy(argv0).contains("spore"));
    ours.then_some(pid)
}

pub fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.run.data_dir().to_path_buf();
    if let Some(pid) = running_pid(&data_dir) {
        bail!("a node already runs for {} (pid {pid}); `spore stop` first", data_dir.display());
    }
    std::fs::create_dir_all(&data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    // The same arguments, with `start` replaced by `run`.
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let position = argv.iter().position(|a| a == "start").context("cannot find `start` in the arguments")?;
    argv[position] = "run".into();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(&data_dir))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start the node")?;
    std::fs::write(pid_path(&data_dir), format!("{}\n", child.id()))?;
    println!("started a node (pid {}); log: {}", child.id(), log_path(&data_dir).display());
    Ok(ExitCode::SUCCESS)
}

pub fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let data_dir = &args.data_dir.data_dir;
    let Some(pid) = running_pid(data_dir) else {
        let _ = std::fs::remove_file(pid_path(data_dir));
        println!("no node runs for {}", data_dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    kill(Pid::from_raw(pid), Signal::SIGTERM).with_context(|| format!("signal pid {pid}"))?;
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline && running_pid(data_dir) == Some(pid) && !is_zombie(pid) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if running_pid(data_dir) == Some(pid) && !is_zombie(pid) {
        bail!("the node (pid {pid}) did not stop within {} s", STOP_WAIT.as_secs());
    }
    let _ = std::fs::remove_file(pid_path(data_dir));
    println!("stopped the node (pid {pid})");
    Ok(ExitCode::SUCCESS)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}

pub fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    let path = log_path(&args.data_dir.data_dir);
    let mut file = std::fs::File::open(&path).with_context(|| format!("no log at {}", path.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(&mut file).lines().collect::<Result<_, _>>()?;
    let mut out = std::io::stdout().lock();
    for line in &lines[lines.len().saturating_sub(args.tail)..] {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut position = file.seek(SeekFrom::End(0))?;
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let len = std::fs::metadata(&path)?.len();
        if len < position {
            position = 0; // truncated
        }
        if len > position {
            file.seek(SeekFrom::Start(position))?;
            let mut chunk = Vec::new();
            position += Read::by_ref(&mut file).take(len - position).read_to_end(&mut chunk)? as u64;
            out.write_all(&chunk)?;
            out.flush()?;
        }
    }
}

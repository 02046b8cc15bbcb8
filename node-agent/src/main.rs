//! The `spore` command line.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spore_agent::{identity_file, record_tools};

#[derive(Debug, Parser)]
#[command(name = "spore", version, about = "A Spore Mesh node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Check and sign experiment records (interop debugging).
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RecordCommand {
    /// Read one wire record JSON per line; print one verdict line per record.
    Check {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Read record fields (without node_id) one JSON object per line; print each signed record.
    Sign {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Data directory holding `identity/private_key` (created if absent).
        #[arg(long, default_value_os_t = default_data_dir())]
        data_dir: PathBuf,
    },
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".spore")
}

fn open_input(file: &str) -> anyhow::Result<Box<dyn BufRead>> {
    if file == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
    Ok(Box::new(BufReader::new(f)))
}

/// Calls `each` with every non-blank line (without its line ending).
fn for_each_line(mut input: impl BufRead, mut each: impl FnMut(&[u8]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input.by_ref().take(u64::MAX).read_until(b'\n', &mut line).context("cannot read input")?;
        if n == 0 {
            return Ok(());
        }
        let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        each(trimmed)?;
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Version => {
            writeln!(stdout, "spore {}", env!("CARGO_PKG_VERSION"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Record { command: RecordCommand::Check { file } } => {
            let now = now_unix();
            for_each_line(open_input(&file)?, |line| {
                writeln!(stdout, "{}", record_tools::check_line(line, now).to_json_line())?;
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Record { command: RecordCommand::Sign { file, data_dir } } => {
            let identity = identity_file::load_or_create(&data_dir)?;
            let now = now_unix();
            let mut failed = 0usize;
            for_each_line(open_input(&file)?, |line| {
                match record_tools::sign_line(line, &identity, now) {
                    Ok(record) => writeln!(stdout, "{}", record_tools::signed_line(&record))?,
                    Err(e) => {
                        failed += 1;
                        writeln!(stdout, "{}", record_tools::error_line(&e.to_string()))?;
                    }
                }
                Ok(())
            })?;
            if failed > 0 {
                eprintln!("spore: {failed} record(s) could not be signed");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spore: {e:#}");
            ExitCode::from(2)
        }
    }
}

//! `spore record check|sign|export`.

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use spore_agent::{identity_file, record_tools};

use super::{DataDir, open_input};

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
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
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Print every stored record's exact signed JSON, one per line, in arrival order.
    Export {
        #[command(flatten)]
        data_dir: DataDir,
    },
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

pub fn run(command: RecordCommand) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match command {
        RecordCommand::Check { file } => {
            let now = super::now_unix();
            for_each_line(open_input(&file)?, |line| {
                writeln!(stdout, "{}", record_tools::check_line(line, now).to_json_line())?;
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        RecordCommand::Sign { file, data_dir } => {
            let identity = identity_file::load_or_create(&data_dir.data_dir)?;
            let now = super::now_unix();
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
        RecordCommand::Export { data_dir } => {
            let store = super::query::open_store(&data_dir)?;
            let mut failure = None;
            store.for_each_payload(|payload| {
                if failure.is_none() {
                    failure = writeln!(stdout, "{payload}").err();
                }
            })?;
            match failure {
                Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
                Some(e) => Err(e.into()),
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

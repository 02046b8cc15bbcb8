//! `spore record check|sign|export|import`.

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
    /// Store signed records (one wire JSON per line, e.g. an export) after the checks gossip
    /// applies: CID, signature, validation. Bad lines are counted and skipped.
    Import {
        /// Input file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
}

/// Records stored per transaction by `import`.
const IMPORT_BATCH: usize = 10_000;
/// Lines `check` reads before it checks them, spread over every core.
const CHECK_CHUNK: usize = 4_096;

/// `record check` on every core: lines are gathered in chunks, each chunk split into one slice
/// per thread, and the verdicts printed in input order. Each thread keeps its publishers' keys
/// prepared across chunks.
struct ParallelCheck {
    now: i64,
    lines: Vec<Vec<u8>>,
    keys: Vec<spore_spec::verify_chunk::PreparedKeyCache>,
}

impl ParallelCheck {
    fn new(now: i64) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParallelCheck { now, lines: Vec::new(), keys: (0..threads).map(|_| Default::default()).collect() }
    }

    fn push(&mut self, line: &[u8]) {
        self.lines.push(line.to_vec());
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= CHECK_CHUNK
    }

    fn flush(&mut self, out: &mut impl Write) -> anyhow::Result<()> {
        let lines: Vec<&[u8]> = self.lines.iter().map(Vec::as_slice).collect();
        let per_thread = lines.len().div_ceil(self.keys.len()).max(1);
        let now = self.now;
        let reports: Vec<Vec<record_tools::CheckReport>> = std::thread::scope(|scope| {
            let workers: Vec<_> = lines
                .chunks(per_thread)
                .zip(self.keys.iter_mut())
                .map(|(slice, keys)| scope.spawn(move || record_tools::check_lines(slice, now, keys)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().map_err(|_| anyhow::anyhow!("a check thread failed")))
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        for report in reports.iter().flatten() {
            writeln!(out, "{}", report.to_json_line())?;
        }
        self.lines.clear();
        Ok(())
    }
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
            let now = spore_agent::node::unix_now();
            let mut checker = ParallelCheck::new(now);
            for_each_line(open_input(&file)?, |line| {
                checker.push(line);
                if checker.is_full() {
                    checker.flush(&mut stdout)?;
                }
                Ok(())
            })?;
            checker.flush(&mut stdout)?;
            Ok(ExitCode::SUCCESS)
        }
        RecordCommand::Sign { file, data_dir } => {
            let identity = identity_file::load_or_create(&data_dir.data_dir)?;
            let now = spore_agent::node::unix_now();
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
        RecordCommand::Import { file, data_dir } => import(&file, &data_dir),
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

fn import(file: &str, data_dir: &DataDir) -> anyhow::Result<ExitCode> {
    use spore_agent::store::{DagStore, InsertOutcome, StoredRecord};
    use spore_spec::{ExperimentRecord, KeyCache, ValidationPolicy, validate};
    let path = super::run::store_path(&data_dir.data_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut store = DagStore::open(&path)?;
    let mut keys = KeyCache::new(KeyCache::DEFAULT_CAPACITY);
    let policy = ValidationPolicy::default();
    let now = spore_agent::node::unix_now();
    let (mut stored, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    let mut batch: Vec<StoredRecord> = Vec::with_capacity(IMPORT_BATCH);
    // Records that break a task lineage rule are refused by the store itself.
    let mut outside = 0u64;
    let mut flush = |batch: &mut Vec<StoredRecord>, stored: &mut u64, duplicates: &mut u64| -> anyhow::Result<()> {
        for outcome in store.insert_batch(batch)? {
            match outcome {
                InsertOutcome::Inserted { .. } => *stored += 1,
                InsertOutcome::Duplicate => *duplicates += 1,
                InsertOutcome::OutsideTask => outside += 1,
            }
        }
        batch.clear();
        Ok(())
    };
    for_each_line(open_input(file)?, |line| {
        let Ok(text) = std::str::from_utf8(line) else {
            rejected += 1;
            return Ok(());
        };
        let checked = ExperimentRecord::from_json(text)
            .map_err(|e| e.to_string())
            .and_then(|record| keys.verify_record(&record).map(|()| record).map_err(|e| e.to_string()))
            .and_then(|record| validate(&record, &policy, now).map(|flags| (record, flags)).map_err(|e| e.to_string()));
        match checked {
            Ok((record, flags)) => {
                batch.push(StoredRecord { record, payload: text.to_string(), flags, received_at: now });
                if batch.len() >= IMPORT_BATCH {
                    flush(&mut batch, &mut stored, &mut duplicates)?;
                }
            }
            Err(reason) => {
                rejected += 1;
                if rejected <= 10 {
                    eprintln!("spore: skipping a record: {reason}");
                }
            }
        }
        Ok(())
    })?;
    flush(&mut batch, &mut stored, &mut duplicates)?;
    if outside > 0 {
        eprintln!("spore: {outside} records break their task's lineage (a signed task that is not the parent's)");
    }
    let rejected = rejected + outside;
    println!("imported {stored}, already stored {duplicates}, rejected {rejected}");
    Ok(if rejected > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

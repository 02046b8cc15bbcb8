//! `spore exec`: the entrypoint of a training pod. Runs the candidate `train.py` (from
//! `--code-dir`, read-only) with the harness built into `spore` (or `--harness-dir`) under the
//! deadline, through the same runner as `spore run`, and writes the result to the termination
//! message, where the operator reads it: the metrics as JSON on success (exit 0), the reason
//! and the log's tail on failure (exit 1). Kubernetes keeps at most 4,096 bytes of it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use spore_agent::research::executor::{Executor, RunSpec};
use spore_agent::research::local::LocalExecutor;
use spore_agent::research::workspace::{self, Workspace};

use super::metric::MetricArgs;

/// Kubernetes's limit on a termination message.
const MAX_MESSAGE: usize = 4096;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Seconds of training.
    #[arg(long)]
    budget_seconds: u64,
    /// Directory holding the candidate `train.py`.
    #[arg(long)]
    code_dir: PathBuf,
    /// Writable scratch directory for the run.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    work_dir: PathBuf,
    /// Directory with the harness (`prepare.py`, …); default: the files built into spore.
    #[arg(long)]
    harness_dir: Option<PathBuf>,
    /// Python interpreter with torch.
    #[arg(long, env = "SPORE_PYTHON", default_value = "python3")]
    python: PathBuf,
    /// Percent of the device to use.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(1..=100))]
    resource: u8,
    /// Seconds allowed beyond the budget (start-up, evaluation); keep it below the pod's own
    /// deadline margin so this wrapper, not the kubelet, reports the timeout.
    #[arg(long, default_value_t = 100)]
    margin_seconds: u64,
    /// Where the result goes.
    #[arg(long, default_value = "/dev/termination-log")]
    termination_log: PathBuf,
    #[command(flatten)]
    metric: MetricArgs,
}

fn truncated(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    // The end of the log says the most; cut at a character boundary.
    let mut start = text.len() - MAX_MESSAGE;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs the candidate; any failure of the wrapper itself (no code, no interpreter, no scratch
/// space) also goes to the termination message, so the Experiment says why.
pub fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let termination_log = args.termination_log.clone();
    match run(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            let message = format!("spore exec: {e:#}");
            std::fs::write(&termination_log, truncated(&message))
                .with_context(|| format!("write {}", termination_log.display()))?;
            Err(e)
        }
    }
}

fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let code_path = args.code_dir.join("train.py");
    let code = std::fs::read_to_string(&code_path).with_context(|| format!("read {}", code_path.display()))?;
    let harness = match &args.harness_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.work_dir.join("harness");
            workspace::materialize(&dir)?;
            dir
        }
    };
    let margin = Duration::from_secs(args.margin_seconds);
    // With the evaluator, the data (the pod's scratch cache) and the evaluation plan are prepared
    // here, before the candidate runs; on self-reported metrics train.py prepares what it needs.
    let (evaluator, sandbox) = match args.metric.program() {
        Some(program) => {
            let prepared = Workspace::prepare(&harness, &args.python, Some(&program))?;
            args.metric.executor_parts(&prepared, margin)?
        }
        None => (None, None),
    };
    let executor = LocalExecutor {
        python: args.python.clone(),
        workspace: harness,
        runs_dir: args.work_dir.join("run"),
        margin,
        env: Vec::new(),
        show_progress: false,
        evaluator,
        sandbox,
    };
    let spec = RunSpec { label: "train".into(), code, time_budget: args.budget_seconds, resource: args.resource };
    let outcome = tokio::runtime::Runtime::new()?.block_on(executor.run(&spec))?;
    // The pod's log shows the whole run.
    if let Ok(log) = std::fs::read_to_string(&outcome.log) {
        eprint!("{log}");
    }
    let (message, code) = match (outcome.success(), outcome.summary, outcome.val_bpb) {
        (true, Some(s), Some(val_bpb)) => (
            serde_json::json!({
                "val_bpb": val_bpb,
                "num_steps": s.num_steps,
                "num_params": s.num_params,
                "peak_vram_mb": s.peak_vram_mb,
                "training_seconds": s.training_seconds,
            })
            .to_string(),
            ExitCode::SUCCESS,
        ),
        _ => (outcome.error.unwrap_or_else(|| "the run failed".into()), ExitCode::from(1)),
    };
    std::fs::write(&args.termination_log, truncated(&message))
        .with_context(|| format!("write {}", args.termination_log.display()))?;
    Ok(code)
}
